"""LocalBackend: a subprocess per step, contained as far as this machine allows.

Always: its own process group, rlimits (private writable memory, file size, CPU time,
processes), a scrubbed environment, the validation split absent from the training
step's view, and a wall-clock kill from outside. The rest depends on the isolation
level the kernel allows (probed, see `isolation`):

- `fresh-root` (the default where it works): user, network, pid and mount namespaces
  and a root built from an allow-list (`rootfs`, `enter.py`): the step's mounts under
  `/sandbox` as in the container, the system and interpreter folders it needs
  read-only, a private `/tmp` and `/dev/shm`, its own `/proc`, no capabilities. The
  workspace, the state folder (earlier runs, ledger, audit), home folders, other Python
  installations and the interpreter's `pydoc_data` (the built-in validation text) do
  not exist there. A pids cgroup where one can be made (the process limit holds for
  root too, and the sandbox kills whatever the step left).
- `namespaces`: the same namespaces on the host's root, with the workspace and staged
  code bound read-only and the hidden folders covered by an empty tmpfs; the rest of
  the host stays readable, so data prepared from the built-in source is refused.
- `none`: no namespaces; the step sees a view folder of symlinks to its mounts and the
  host as it is; built-in data refused too.

Not given, named in the conformance suite and the doctor: per-experiment GPU selection,
a non-root user when labwarden runs as root (the step is root of its user namespace
only, without capabilities), and a cap on touched memory (RLIMIT_DATA counts memory
reserved for writing, so it stops a bomb but is no cgroup).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from sandbox.backend import SandboxBackend, StepOutcome, StepSpec
from sandbox.errors import SandboxError, SandboxUnavailable
from sandbox.local.isolation import (
    LEVELS,
    UNSHARE_NET,
    StepCgroup,
    best_level,
    enter_argv,
    fresh_root_probe,
    mount_script,
    pids_cgroup_root,
    set_rlimits,
    unshare_prefix,
)
from sandbox.spec import ExperimentResult, ExperimentSpec

if TYPE_CHECKING:
    from sandbox.exposure import Exposure

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


RUN_MARKER = "LABWARDEN_SANDBOX_RUN"
"""Names the step's run folder in its environment, so a check from outside can find a
process of that step that outlived it (inside a fresh root its working folder reads
`/sandbox/...` from the host, like a container's)."""


def scrubbed_env(step: StepSpec, root: str, scratch: str | None = None) -> dict[str, str]:
    """Only what a step needs: no credentials, tokens or proxies leak from the host."""
    env = {
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        ),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    env.update({k: v.replace("{root}", root) for k, v in step.env.items()})
    env["HOME"] = env["TMPDIR"] = scratch or f"{root}/tmp"
    env[RUN_MARKER] = str(step.log_path.parent)
    if step.gpus is not None and step.gpus != "all":
        # Selection only, not isolation: the other devices stay reachable to a determined step.
        ids = step.gpus.split(",") if isinstance(step.gpus, str) else [str(g) for g in step.gpus]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(i.strip() for i in ids)
    return env


class LocalBackend(SandboxBackend):
    name: ClassVar[str] = "local"

    def __init__(self, *, isolation: str = "auto") -> None:
        """`isolation`: "auto" (the strongest level that works here) or one of `LEVELS`,
        to run a weaker one on purpose (the tests of the fallbacks)."""
        if isolation != "auto" and isolation not in LEVELS:
            raise ValueError(
                f"isolation must be 'auto' or one of {', '.join(LEVELS)}, but got {isolation!r}."
            )
        self._wanted = isolation

    @property
    def isolation(self) -> str:
        """The level steps run at: the one asked for, or the strongest that works here."""
        if self._wanted == "auto":
            return best_level()
        if self._wanted == "fresh-root" and not fresh_root_probe()[0]:
            raise SandboxUnavailable(
                f"the local backend cannot build a fresh root here ({fresh_root_probe()[1]}); "
                "use isolation='auto' or the Docker backend."
            )
        return self._wanted

    def run(self, spec: ExperimentSpec) -> ExperimentResult:
        refuse_exposed_builtin(self, spec)
        return super().run(spec)

    def _command(
        self, step: StepSpec, ready_fd: int | None
    ) -> tuple[list[str], Path, dict[str, str]]:
        """(argv, host working folder, environment) for the step at this level;
        `ready_fd` (fresh root only): where the prologue says the root was built."""
        argv = list(local_python(step.argv))
        level = self.isolation
        if level == "fresh-root" and ready_fd is not None:
            from sandbox.local.rootfs import ROOT, step_plan

            mount_point = step.log_path.parent / f"{step.name}-root"
            mount_point.mkdir(parents=True, exist_ok=False)
            plan_file = step.log_path.parent / f"{step.name}-root.json"
            plan_file.write_text(json.dumps(step_plan(step, mount_point)), encoding="utf-8")
            argv = [a.replace("{root}", ROOT) for a in argv]
            return enter_argv(plan_file, ready_fd, argv), step.log_path.parent, scrubbed_env(
                step, ROOT, scratch="/tmp"
            )
        view = step.log_path.parent / f"{step.name}-view"
        build_view(step, view)
        root = str(view)
        argv = [a.replace("{root}", root) for a in argv]
        if level == "namespaces":
            script = mount_script(
                read_only=[
                    *step.protect,
                    *(m.source.resolve() for m in step.mounts if m.read_only),
                ],
                hidden=[p.resolve() for p in step.hide],
                writable=[m.source.resolve() for m in step.mounts if not m.read_only],
                cwd=view / step.workdir,
            )
            argv = [*unshare_prefix(), "/bin/sh", "-c", script, "labwarden-step", *argv]
        elif "--net" in unshare_prefix():
            argv = [*UNSHARE_NET, *argv]  # no file-system isolation, but still no network
        return argv, view / step.workdir, scrubbed_env(step, root)

    def run_step(self, step: StepSpec) -> StepOutcome:
        began = time.monotonic()
        ready_read, ready_write = os.pipe() if self.isolation == "fresh-root" else (-1, -1)
        try:
            argv, cwd, env = self._command(step, ready_write if ready_write >= 0 else None)
            outcome = self._run(step, argv, cwd, env, began, ready_write)
            # Read once the step is over: the child's copies are closed, nothing blocks.
            root_built = ready_read < 0 or _ready(ready_read)
        finally:
            _close(ready_read)
            _close(ready_write)
        if not root_built and not outcome.timed_out:
            lines = [x for x in step.log_path.read_text(errors="replace").splitlines()
                     if x.startswith("labwarden-root:")]
            raise SandboxError(
                f"the {step.name} step's fresh root could not be built: "
                f"{lines[-1] if lines else f'exit {outcome.exit_code}'}"
            )
        return outcome

    def _run(self, step: StepSpec, argv: list[str], cwd: Path, env: dict[str, str],
             began: float, pass_fd: int) -> StepOutcome:
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
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=in_child,
                pass_fds=(pass_fd,) if pass_fd >= 0 else (),
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

    def guarantees(self, state_dir: Path | None = None) -> list[tuple[str, bool, str]]:
        """Measured here: the namespaces and the fresh root probed, then one quick probe
        step at that level (what it can read). `state_dir`: the workspace's state folder,
        where the probe leaves a marker the step must not see."""
        from sandbox.exposure import probe_exposure

        prefix = unshare_prefix()
        level = self.isolation
        namespaced = level in ("fresh-root", "namespaces")
        net = namespaced or "--net" in prefix
        fresh, why_not = fresh_root_probe()
        seen = probe_exposure(self, state_dir)
        ran = f"probe step failed: {seen.detail}" if not seen.ran else ""
        return [
            ("isolation level", level == "fresh-root",
             "fresh root from an allow-list (user, mount, pid, net namespaces)"
             if level == "fresh-root" else f"{level}, asked for" if fresh
             else f"{level}: no fresh root here ({why_not})"),
            ("network blocked", net,
             "network namespace (unshare --net)" if net else "unshare --net failed here"),
            ("host processes hidden, tree killed", namespaced,
             "pid namespace" if namespaced else "process group kill only"),
            (
                "process limit",
                pids_cgroup_root() is not None or os.geteuid() != 0,
                "pids cgroup" if pids_cgroup_root() else "RLIMIT_NPROC (ignored for root)",
            ),
            ("memory limit", True, "RLIMIT_DATA (private writable memory)"),
            ("wall-clock budget", True, "process group killed from outside"),
            ("validation split not in training view", True, "not mounted in the step's root"
             if level == "fresh-root" else "not linked into the step's view"),
            ("val unreachable by absolute path", namespaced,
             {"fresh-root": "not in the step's root",
              "namespaces": "empty tmpfs over it (mount namespace)"}.get(
                 level, "no mount namespace here: same file system as the host")),
            ("built-in validation text unreadable", seen.ran and not seen.pydoc_readable,
             ran or (f"probe step read {', '.join(seen.pydoc_readable)}; experiments on "
                     "builtin data are refused (use Docker or a local:DIR source)"
                     if seen.pydoc_readable else "probe step found no pydoc_data")),
            ("state folder unreadable (earlier runs)", seen.ran and not seen.state_readable,
             ran or ("probe step read a marker left there" if seen.state_readable
                     else "a marker left there was not readable from the probe step")),
            ("/dev/shm private", seen.ran and not seen.shm_shared,
             ran or ("the host's /dev/shm is shared" if seen.shm_shared
                     else "a marker in the host's /dev/shm was not seen")),
            ("frozen code read-only", namespaced,
             "read-only binds (mount namespace)" if namespaced
             else "no mount namespace: writes caught afterwards by the frozen-file check"),
            ("runs as non-root", os.geteuid() != 0,
             f"uid {os.geteuid()}" + (", root of its own user namespace without capabilities"
                                      if level == "fresh-root" else "")),
            (
                "GPU passthrough",
                Path("/dev/nvidiactl").exists(),
                "the host's devices, all of them"
                if Path("/dev/nvidiactl").exists()
                else "no NVIDIA device on this host",
            ),
        ]


_EXPOSURES: dict[str, Exposure] = {}


def exposure(backend: LocalBackend) -> Exposure:
    """The quick probe's answer at the backend's level (`sandbox.exposure.Exposure`),
    measured once per process and level: a real step that tries to open the host's
    `pydoc_data`, a host folder outside its mounts and the host's /dev/shm."""
    from sandbox.exposure import probe_exposure

    level = backend.isolation
    if level not in _EXPOSURES:
        _EXPOSURES[level] = probe_exposure(backend)
    return _EXPOSURES[level]


def refuse_exposed_builtin(backend: LocalBackend, spec: ExperimentSpec) -> None:
    """Raise SandboxUnavailable when the data was prepared from the built-in source and a
    step here could read the interpreter's `pydoc_data`, which holds its validation text."""
    try:
        meta = json.loads((spec.config.data_path(spec.profile) / "source.json").read_text())
    except (OSError, ValueError):
        return  # unprepared or damaged: the pipeline says so in its own words
    if not isinstance(meta, dict) or (meta.get("source") or {}).get("spec") != "builtin":
        return
    seen = exposure(backend)
    if not seen.ran:
        why = f"its probe step failed: {seen.detail}"
    elif seen.pydoc_readable:
        why = f"a step can read {seen.pydoc_readable[0]}"
    else:
        return
    raise SandboxUnavailable(
        f"the local backend cannot hide the built-in validation text here ({why}, "
        f"isolation {backend.isolation}); use the Docker backend, or prepare the data "
        f"from your own text with 'labwarden prepare --source local:DIR'."
    )


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


def _ready(fd: int) -> bool:
    """Whether the prologue wrote its byte (read after the step ended: nothing blocks)."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1) == b"1"
    except BlockingIOError:
        return False


def _close(fd: int) -> None:
    if fd >= 0:
        os.close(fd)


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
