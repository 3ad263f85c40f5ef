"""The doctor's quick probe: one short step that says what it can read.

Not the full scan (`sandbox.scan`): it tries the host's `pydoc_data` folders (the
built-in validation text), a marker in a host folder outside the step's mounts (the state
folder with its earlier runs) and a marker in the host's /dev/shm. Both backends' doctors
use it, and the local backend uses it to decide whether built-in data may run at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.scan import host_pydoc_dirs

if TYPE_CHECKING:
    from sandbox.backend import SandboxBackend


_EXPOSURE_PROBE = r"""
import importlib.util, json, os, sys
paths = json.loads(sys.argv[1])
def readable(p):
    try:
        if os.path.isdir(p):
            os.listdir(p)
        else:
            open(p, "rb").read(16)
        return True
    except OSError:
        return False
spec = importlib.util.find_spec("pydoc_data")
own = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
print("EXPOSURE" + json.dumps({
    "pydoc": [p for p in paths["pydoc"] if readable(p)] + own,
    "state": readable(paths["state"]),
    "shm": readable(paths["shm"]),
}), flush=True)
"""


@dataclass(frozen=True)
class Exposure:
    """What a short probe step could read (measured by running one)."""

    ran: bool
    pydoc_readable: tuple[str, ...] = ()
    """`pydoc_data` folders (the built-in validation text) the step could open."""
    state_readable: bool = False
    """A marker in a host folder outside the step's mounts (the state folder, if given)."""
    shm_shared: bool = False
    """A marker in the host's /dev/shm."""
    detail: str = ""


def probe_exposure(backend: SandboxBackend, state_dir: Path | None = None) -> Exposure:
    """Run the probe as a real step of `backend`: can it open the host's `pydoc_data`
    folders (or import one of its own), a marker in `state_dir` (a fresh host folder by
    default), a marker in the host's /dev/shm?"""
    import json
    import secrets
    import tempfile

    from sandbox.backend import Limits, Mount, StepSpec

    token = secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="labwarden-probe-") as tmp:
        where = Path(state_dir) if state_dir else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        state_marker = where / f"doctor-probe-{token}"
        shm_marker = Path("/dev/shm") / f"labwarden-probe-{token}"
        ws = Path(tmp) / "ws"
        ws.mkdir()
        ws.chmod(0o755)
        try:
            state_marker.write_text(token)
            if shm_marker.parent.is_dir():
                shm_marker.write_text(token)
            paths = {"pydoc": [str(p) for p in host_pydoc_dirs()], "state": str(state_marker),
                     "shm": str(shm_marker)}
            step = StepSpec(
                name="probe",
                argv=("python", "-I", "-c", _EXPOSURE_PROBE, json.dumps(paths)),
                env={},
                mounts=(Mount(ws, "ws"),),
                workdir="ws",
                time_limit_s=60,
                log_path=Path(tmp) / "probe.log",
                limits=Limits(memory_mb=1024, pids=64),
            )
            outcome = backend.run_step(step)
            text = step.log_path.read_text(errors="replace")
        finally:
            state_marker.unlink(missing_ok=True)
            shm_marker.unlink(missing_ok=True)
    found = [line[8:] for line in text.splitlines() if line.startswith("EXPOSURE")]
    if outcome.exit_code != 0 or not found:
        return Exposure(False, detail=f"exit {outcome.exit_code}: {text.strip()[-200:]}")
    seen = json.loads(found[0])
    return Exposure(True, tuple(dict.fromkeys(seen["pydoc"])), seen["state"], seen["shm"])
