"""LocalBackend: a subprocess per step, contained as far as this machine allows.

Always: its own process group and view folder (symlinks to exactly what the step
mounts), rlimits (private writable memory, file size, CPU time, processes), a scrubbed
environment, the validation split absent from the training step's view, and a
wall-clock kill from outside. Where the kernel allows (probed, see `isolation`): user,
network, pid and mount namespaces (no network; host processes hidden; the tree dies with
the step; the workspace and staged code read-only and the validation split covered by an
empty tmpfs even by absolute path) and a pids cgroup (the process limit holds for root
too, and the sandbox kills whatever the step left).

Not given, named in the conformance suite and the doctor: per-experiment GPU selection,
a non-root user when labwarden runs as root, and a cap on touched memory (RLIMIT_DATA
counts memory reserved for writing, so it stops a bomb but is no cgroup).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

from sandbox.backend import SandboxBackend, StepOutcome, StepSpec
from sandbox.local.isolation import (
    StepCgroup,
    has_mount_namespace,
    mount_script,
    pids_cgroup_root,
    set_rlimits,
    unshare_prefix,
)

_OOM_MARKERS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "can't allocate memory")


def local_python(argv: tuple[str, ...]) -> tuple[str, ...]:
    """A workspace's "python" is the interpreter running labwarden (it has torch)."""
    if argv and argv[0] in ("python", "python3"):
        return (sys.executable, *argv[1:])
    return argv


def build_view(step: StepSpec, view: Path) -> None:
    """The sandbox root as a folder of symlinks: only what the step mounts is there."""
    view.mkdir(parents=True, exist_ok=False)
    for mount in step.mounts:
        link = view / mount.target
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(mount.source.resolve())
    (view / "tmp").mkdir()


def scrubbed_env(step: StepSpec, root: str) -> dict[str, str]:
    """Only what a step needs: no credentials, tokens or proxies leak from the host."""
    env = {
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        ),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    env.update({k: v.replace("{root}", root) for k, v in step.env.items()})
    env["HOME"] = env["TMPDIR"] = f"{root}/tmp"
    if step.gpus is not None and step.gpus != "all":
        # Selection only, not isolation: the other devices stay reachable to a determined step.
        ids = step.gpus.split(",") if isinstance(step.gpus, str) else [str(g) for g in step.gpus]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(i.strip() for i in ids)
    return env


class LocalBackend(SandboxBackend):
    name: ClassVar[str] = "local"

    def run_step(self, step: StepSpec) -> StepOutcome:
        began = time.monotonic()
        view = step.log_path.parent / f"{step.name}-view"
        build_view(step, view)
        root = str(view)
        argv = [a.replace("{root}", root) for a in local_python(step.argv)]
        prefix = unshare_prefix()
        if has_mount_namespace(prefix):
            script = mount_script(
                read_only=[
                    *step.protect,
                    *(m.source.resolve() for m in step.mounts if m.read_only),
                ],
                hidden=[p.resolve() for p in step.hide],
                writable=[m.source.resolve() for m in step.mounts if not m.read_only],
                cwd=view / step.workdir,
            )
            argv = [*prefix, "/bin/sh", "-c", script, "labwarden-step", *argv]
        else:
            argv = [*prefix, *argv]
        cgroup = StepCgroup.create(step.name, step.limits.pids)

        def in_child() -> None:
            if cgroup is not None:
                cgroup.join()
            set_rlimits(step.limits, step.time_limit_s)

        log = step.log_path.open("ab")
        try:
            started = time.monotonic()
            proc = subprocess.Popen(
                argv,
                cwd=view / step.workdir,
                env=scrubbed_env(step, root),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=in_child,
            )
            status, rusage, timed_out = _wait(proc, step.time_limit_s)
            ended = time.monotonic()
        finally:
            log.close()
            if cgroup is not None:
                cgroup.remove()
        exit_code = None if timed_out else _exit_code(status)
        tail = step.log_path.read_bytes()[-8192:].decode("utf-8", errors="replace")
        oom = not timed_out and exit_code != 0 and any(m in tail for m in _OOM_MARKERS)
        return StepOutcome(
            exit_code=exit_code,
            timed_out=timed_out,
            oom=oom,
            wall_seconds=ended - started,
            overhead_seconds=(started - began) + (time.monotonic() - ended),
            started_at=started,
            ended_at=ended,
            peak_memory_mb=rusage.ru_maxrss / 1024 if rusage else None,
        )

    def guarantees(self) -> list[tuple[str, bool, str]]:
        prefix = unshare_prefix()
        return [
            (
                "network blocked",
                "--net" in prefix,
                "unshare --net works here" if "--net" in prefix else "unshare --net failed here",
            ),
            (
                "host processes hidden, tree killed",
                "--pid" in prefix,
                "pid namespace" if "--pid" in prefix else "process group kill only",
            ),
            (
                "process limit",
                pids_cgroup_root() is not None or os.geteuid() != 0,
                "pids cgroup" if pids_cgroup_root() else "RLIMIT_NPROC (ignored for root)",
            ),
            ("memory limit", True, "RLIMIT_DATA (private writable memory)"),
            ("wall-clock budget", True, "process group killed from outside"),
            ("validation split not in training view", True, "not linked into the step's view"),
            (
                "val unreachable by absolute path",
                has_mount_namespace(prefix),
                "empty tmpfs over it (mount namespace)"
                if has_mount_namespace(prefix)
                else "no mount namespace here: same file system as the host",
            ),
            (
                "frozen code read-only",
                has_mount_namespace(prefix),
                "read-only binds over the workspace and staged code"
                if has_mount_namespace(prefix)
                else "no mount namespace: writes caught afterwards by the frozen-file check",
            ),
            ("runs as non-root", os.geteuid() != 0, f"uid {os.geteuid()}"),
            (
                "GPU passthrough",
                Path("/dev/nvidiactl").exists(),
                "the host's devices, all of them"
                if Path("/dev/nvidiactl").exists()
                else "no NVIDIA device on this host",
            ),
        ]


def _wait(proc: subprocess.Popen[bytes], limit_s: float) -> tuple[int, object, bool]:
    """Wait for the step, killing its process group at the limit: TERM, then KILL."""
    deadline = time.monotonic() + limit_s
    timed_out = False
    delay = 0.005
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = _exit_code(status)
            return status, rusage, timed_out
        now = time.monotonic()
        if now >= deadline and not timed_out:
            timed_out = True
            _killpg(proc.pid, signal.SIGTERM)
            deadline = now + 2.0
        elif now >= deadline:
            _killpg(proc.pid, signal.SIGKILL)
            deadline = now + 3600
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
