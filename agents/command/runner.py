"""Run the user's command once: time limit, clean environment, bounded output, isolation.

Isolation (`[agents.command] isolation`):
- `fresh-root`: the local sandbox's fresh root (`sandbox.local.rootfs`, entered by
  `sandbox.local.enter`) in new user, mount and pid namespaces, with the network left on
  (agents call their APIs). It shows the scratch copy (writable, at `/sandbox/work`, the
  working folder), the system's programs and libraries, the interpreter and its
  site-packages, DNS and TLS certificates, the extra read-only `mounts`, an empty `/tmp`
  (HOME), and nothing else: no workspace, no data, no `.labwarden/` (ledger, audit trail,
  runs), no home folder. Everything dies with the namespace.
- `none`: the user's rights on the host (for agents that need the home folder); the
  command could then read anything the user can.

A failed command is a returned `CommandOutcome`; a fresh root that cannot be built raises.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from labwarden.errors import ConfigError, LabwardenError

KEEP_BYTES = 64 * 1024
"""The log keeps this much of the output's start and of its end."""
FILE_SIZE_MB = 512
"""No file the command writes may be larger (RLIMIT_FSIZE)."""
GRACE_S = 2.0
"""After the command exits, how long its leftover children may hold the output open."""
UNSHARE_AGENT = ("unshare", "--map-root-user", "--pid", "--fork", "--kill-child",
                 "--mount-proc")
"""The sandbox's namespaces without `--net`: an agent needs its API."""
NETWORK_FILES = ("/etc/resolv.conf", "/etc/ssl", "/etc/ca-certificates",
                 "/usr/share/ca-certificates", "/etc/pki", "/etc/gai.conf", "/etc/host.conf")
BASE_ENV = ("PATH", "LANG", "LC_ALL")
PR_SET_PDEATHSIG = 1


class IsolationError(LabwardenError):
    """The fresh root was asked for and cannot be built here."""


@dataclass(frozen=True)
class CommandOutcome:
    exit_code: int | None
    """None when labwarden killed it."""
    seconds: float
    output_bytes: int
    head: bytes
    tail: bytes
    killed: str = ""
    """Why it was killed: '' (it was not), 'time limit' or 'output limit'."""

    def text(self) -> str:
        """The kept output, with a marker where the middle was dropped."""
        if self.output_bytes <= len(self.head):
            return self.head.decode("utf-8", "replace")
        gap = self.output_bytes - len(self.head) - len(self.tail)
        middle = f"\n[... {gap} bytes not kept ...]\n" if gap > 0 else ""
        return self.head.decode("utf-8", "replace") + middle + self.tail.decode("utf-8",
                                                                                "replace")

    def last_line(self) -> str:
        lines = [ln.strip() for ln in self.tail.decode("utf-8", "replace").splitlines()]
        lines = [ln for ln in lines if ln]
        return lines[-1] if lines else ""


def fresh_root_available() -> tuple[bool, str]:
    """Whether the local sandbox's fresh root works here (probed once per process)."""
    from sandbox.local.isolation import fresh_root_probe

    return fresh_root_probe()


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_mounts(mounts: tuple[str, ...], workspace: Path) -> list[Path]:
    """Extra read-only folders for the fresh root; none may hold or sit in the workspace."""
    out = []
    ws = workspace.resolve()
    for m in mounts:
        path = Path(os.path.expanduser(m)).resolve()
        if _under(path, ws) or _under(ws, path):
            raise ConfigError(f"labwarden.toml [agents.command]: mounts: {m} holds or is "
                              f"inside the workspace {ws}; the agent may not see it.")
        if not path.exists():
            raise ConfigError(f"labwarden.toml [agents.command]: mounts: {m} does not exist.")
        out.append(path)
    return out


def _root_plan(scratch_work: Path, mount_point: Path, extra: list[Path]) -> dict[str, object]:
    from sandbox.backend import Limits, Mount, StepSpec
    from sandbox.local.rootfs import step_plan

    step = StepSpec(name="agent", argv=(), env={}, mounts=(Mount(scratch_work, "work", False),),
                    workdir="work", time_limit_s=1, log_path=mount_point / "unused",
                    limits=Limits(tmpfs_mb=1024, shm_mb=64))
    plan = step_plan(step, mount_point)
    entries: list[list[object]] = plan["entries"]  # type: ignore[assignment]
    for name in NETWORK_FILES:
        if os.path.exists(name):
            entries.append(["bind", os.path.realpath(name), name, True])
    for path in extra:
        entries.append(["bind", str(path), str(path), True])
    return plan


def _child_setup() -> None:
    """In the child before exec: die with labwarden (a kill -9 of the run leaves no agent
    behind), no core files, bounded file sizes."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    size = FILE_SIZE_MB * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if hard != resource.RLIM_INFINITY:
        size = min(size, hard)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_command(argv: tuple[str, ...], *, scratch: Path, isolation: str, time_limit_s: float,
                max_output_bytes: int, env_names: tuple[str, ...], extra_mounts: list[Path],
                log_path: Path) -> CommandOutcome:
    """Run `argv` in `scratch/ws` (the copy); `isolation` is `fresh-root` or `none`."""
    work = scratch / "ws"
    env = {k: os.environ[k] for k in (*BASE_ENV, *env_names) if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env["TERM"] = "dumb"
    # `{work}` in an argument is the copy's path as the command sees it (a `docker run -v`).
    seen_as = "/sandbox/work" if isolation == "fresh-root" else str(work)
    argv = tuple(a.replace("{work}", seen_as) for a in argv)
    program = shutil.which(argv[0], path=env["PATH"]) or argv[0]
    ready_r = ready_w = -1
    if isolation == "fresh-root":
        env.update(HOME="/tmp", TMPDIR="/tmp")
        root = scratch / "root"
        root.mkdir()
        plan_file = scratch / "root-plan.json"
        plan_file.write_text(json.dumps(_root_plan(work, root, extra_mounts)), encoding="utf-8")
        from sandbox.local.isolation import ENTER

        ready_r, ready_w = os.pipe()
        full = [*UNSHARE_AGENT, sys.executable, "-I", "-S", str(ENTER), str(plan_file),
                str(ready_w), "--", program, *argv[1:]]
        cwd = scratch
    else:
        for name in ("home", "tmp"):
            (scratch / name).mkdir(exist_ok=True)
        env.update(HOME=str(scratch / "home"), TMPDIR=str(scratch / "tmp"))
        full = [program, *argv[1:]]
        cwd = work
    head = bytearray()
    tail = bytearray()
    total = 0
    killed = ""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(full, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_child_setup,
                                pass_fds=(ready_w,) if ready_w >= 0 else ())
    except OSError as e:
        if ready_w >= 0:
            os.close(ready_r)
            os.close(ready_w)
        return CommandOutcome(127, 0.0, 0, f"cannot start {argv[0]}: {e.strerror}".encode(),
                              b"")
    if ready_w >= 0:
        os.close(ready_w)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    exited_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if now - start > time_limit_s:
                killed = "time limit"
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > GRACE_S:
                break  # a leftover child holds the output open: it is killed below
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            total += len(chunk)
            if len(head) < KEEP_BYTES:
                head += chunk[: KEEP_BYTES - len(head)]
            tail += chunk
            del tail[:-KEEP_BYTES]
            if total > max_output_bytes:
                killed = "output limit"
                break
    finally:
        _kill(proc)
        proc.stdout.close()
        code = proc.wait()
    seconds = time.monotonic() - start
    built = True
    if ready_r >= 0:
        os.set_blocking(ready_r, False)
        try:
            built = os.read(ready_r, 1) == b"1"
        except BlockingIOError:
            built = False
        os.close(ready_r)
    outcome = CommandOutcome(None if killed else code, seconds, total, bytes(head), bytes(tail),
                             killed)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(f"$ {' '.join(argv)}\nisolation: {isolation}\nexit: {outcome.exit_code}"
                        f"\nkilled: {killed or '-'}\nseconds: {seconds:.1f}\noutput bytes: "
                        f"{total}\n\n{outcome.text()}", encoding="utf-8")
    if not built and not killed:
        raise IsolationError(f"the agent's fresh root could not be built: "
                             f"{outcome.last_line() or f'exit {code}'}")
    return outcome
