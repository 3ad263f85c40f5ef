"""What the local backend can use on this machine, measured by trying it.

Nothing here is assumed from the kernel version: each mechanism is probed once (a real
`unshare`, a real fresh root built and entered, a real cgroup created and removed) and
the answer cached for the process.

Isolation levels, strongest first (`LEVELS`):
- `fresh-root`: user, network, pid and mount namespaces, and a root assembled from an
  allow-list (`rootfs`): the step sees its mounts and the system and interpreter
  folders it needs, and nothing else;
- `namespaces`: the same namespaces on the host's own root, with read-only binds over
  the workspace and an empty tmpfs over the hidden folders (a list of what to hide):
  everything else on the host stays readable;
- `none`: the host's file system and network as they are.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from sandbox.backend import Limits

# New user, network, pid and mount namespaces: no network but loopback, no view of host
# processes, and everything inside dies with the namespace's first process.
UNSHARE_FULL = (
    "unshare",
    "--map-root-user",
    "--net",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
)
UNSHARE_NET = ("unshare", "--map-root-user", "--net")


@functools.cache
def unshare_prefix() -> tuple[str, ...]:
    """The strongest `unshare` prefix that works here, or () where none does."""
    if shutil.which("unshare") is None:
        return ()
    for prefix in (UNSHARE_FULL, UNSHARE_NET):
        try:
            done = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return prefix
    return ()


def has_mount_namespace(prefix: tuple[str, ...]) -> bool:
    return "--mount-proc" in prefix


LEVELS = ("fresh-root", "namespaces", "none")
ENTER = Path(__file__).resolve().parent / "enter.py"


def enter_argv(plan_file: Path, ready_fd: int, argv: list[str]) -> list[str]:
    """The command that builds the root described in `plan_file`, writes a byte to
    `ready_fd` once it has, and runs argv in it."""
    return [*UNSHARE_FULL, sys.executable, "-I", "-S", str(ENTER), str(plan_file),
            str(ready_fd), "--", *argv]


@functools.cache
def fresh_root_probe() -> tuple[bool, str]:
    """(works, why not): a real root built from this machine's allow-list and a real
    interpreter started in it, importing what every step imports first."""
    import json
    import tempfile

    from sandbox.backend import Mount, StepSpec
    from sandbox.local.rootfs import step_plan

    if unshare_prefix() != UNSHARE_FULL:
        return False, "no user, mount and pid namespaces here (unshare failed)"
    with tempfile.TemporaryDirectory(prefix="labwarden-root-probe-") as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        step = StepSpec(name="probe", argv=(), env={}, mounts=(Mount(ws, "ws"),),
                        workdir="ws", time_limit_s=30, log_path=Path(tmp) / "probe.log")
        (Path(tmp) / "root").mkdir()
        plan = Path(tmp) / "plan.json"
        plan.write_text(json.dumps(step_plan(step, Path(tmp) / "root")), encoding="utf-8")
        code = "import json, os, encodings, ctypes; print('ROOT_OK', json.dumps(os.listdir('/')))"
        read_end, write_end = os.pipe()
        try:
            done = subprocess.run(
                enter_argv(plan, write_end, [sys.executable, "-I", "-c", code]),
                capture_output=True, text=True, timeout=60, check=False,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, pass_fds=(write_end,),
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return False, f"the fresh root did not start: {e}"
        finally:
            os.close(write_end)
            os.close(read_end)
    if done.returncode == 0 and "ROOT_OK" in done.stdout:
        return True, ""
    lines = (done.stderr or done.stdout).strip().splitlines()
    return False, (lines[-1] if lines else f"exit {done.returncode}")


def best_level() -> str:
    """The strongest isolation level that works here."""
    if fresh_root_probe()[0]:
        return "fresh-root"
    return "namespaces" if has_mount_namespace(unshare_prefix()) else "none"


def mount_script(read_only: list[Path], hidden: list[Path], writable: list[Path], cwd: Path) -> str:
    """A shell prologue, run inside the new mount namespace before the step's command:
    read-only binds over what must not change, empty tmpfs over what must not be read,
    then writable binds back over the step's output folders."""
    import shlex

    lines = ["set -e"]
    for path in dict.fromkeys(read_only):
        q = shlex.quote(str(path))
        lines.append(f"mount --bind {q} {q}; mount -o remount,bind,ro {q}")
    for path in dict.fromkeys(hidden):
        if path.is_dir():
            lines.append(f"mount -t tmpfs -o size=4k,ro labwarden-hidden {shlex.quote(str(path))}")
    for path in dict.fromkeys(writable):
        q = shlex.quote(str(path))
        lines.append(f"mount --bind {q} {q}; mount -o remount,bind,rw {q}")
    # The working folder was entered before these mounts: enter it again, by path, or
    # relative writes would still reach the writable file system underneath.
    lines.append(f"cd {shlex.quote(str(cwd))}")
    lines.append('exec "$@"')
    return "\n".join(lines)


@functools.cache
def pids_cgroup_root() -> Path | None:
    """A cgroup folder where a per-step child with `pids.max` can be made, or None."""
    candidates = [Path("/sys/fs/cgroup/pids")]  # cgroup v1
    unified = Path("/sys/fs/cgroup")
    if (unified / "cgroup.controllers").is_file():  # cgroup v2: ours must delegate pids
        own = Path("/proc/self/cgroup").read_text().strip().splitlines()[-1].split(":", 2)[2]
        candidates.insert(0, unified / own.lstrip("/"))
    for root in candidates:
        probe = root / f"labwarden-probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.mkdir()
        except OSError:
            continue
        try:
            if (probe / "pids.max").is_file():
                return root
        finally:
            probe.rmdir()
    return None


@dataclass
class StepCgroup:
    """A per-step pids cgroup: caps processes, and lets the sandbox kill every one of them."""

    path: Path

    @classmethod
    def create(cls, name: str, pids: int) -> StepCgroup | None:
        root = pids_cgroup_root()
        if root is None:
            return None
        path = root / f"labwarden-{name}-{uuid.uuid4().hex[:8]}"
        path.mkdir()
        (path / "pids.max").write_text(str(pids))
        return cls(path)

    def join(self) -> None:
        """Called in the child before exec."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def kill_all(self) -> None:
        for _ in range(50):
            try:
                pids = [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
            except OSError:
                return
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            _sleep(0.02)

    def remove(self) -> None:
        self.kill_all()
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:  # still busy for a moment after the last kill
                _sleep(0.02)


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)


def set_rlimits(limits: Limits, time_limit_s: float) -> None:
    """Called in the child before exec. The wall-clock kill is the real budget; the CPU
    limit only backs it up, so it allows every core for the whole step."""
    mb = 1024 * 1024
    cpu = int(time_limit_s * (os.cpu_count() or 1)) + 60
    for what, value in (
        (resource.RLIMIT_DATA, limits.memory_mb * mb),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * mb),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, limits.pids),
    ):
        _, hard = resource.getrlimit(what)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(what, (value, value))
