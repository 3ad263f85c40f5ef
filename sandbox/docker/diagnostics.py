"""What the Docker backend guarantees here, measured from inside a real container."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.backend import Limits, Mount, StepSpec

if TYPE_CHECKING:
    from sandbox.docker.backend import DockerBackend

# Runs inside the container and reports what it could do.
_PROBE = r"""
import json, os, socket
out = {"uid": os.getuid()}
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2); out["network"] = True
except OSError:
    out["network"] = False
try:
    open("/etc/labwarden-probe", "w"); out["root_writable"] = True
except OSError:
    out["root_writable"] = False
try:
    open("/sandbox/ws/probe", "w"); out["ro_mount_writable"] = True
except OSError:
    out["ro_mount_writable"] = False
status = dict(l.split(":", 1) for l in open("/proc/self/status"))
out["caps"] = int(status["CapEff"].strip(), 16)
out["nnp"] = status["NoNewPrivs"].strip() == "1"
print("PROBE" + json.dumps(out))
"""


def measured_guarantees(
    backend: DockerBackend, state_dir: Path | None = None
) -> list[tuple[str, bool, str]]:
    """The image checked, then two probe containers: what the container may do, and what
    it can read (`sandbox.exposure.probe_exposure`; `state_dir` gets its marker)."""
    from sandbox.docker import prereqs
    from sandbox.docker.images import OFFLINE_TAG, image_label, offline_inputs_hash
    from sandbox.exposure import probe_exposure

    # The doctor reports; it never starts a build behind the user's back.
    label = image_label(backend.client, backend.image)
    if label is None or (backend.image == OFFLINE_TAG and label != offline_inputs_hash()):
        state = "missing" if label is None else "stale"
        return [
            (
                "image built and current",
                False,
                f"{backend.image} is {state}; run 'labwarden sandbox build'",
            )
        ]
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        step = StepSpec(
            name="doctor",
            argv=("python", "-c", _PROBE),
            env={},
            mounts=(Mount(ws, "ws"),),
            workdir="ws",
            time_limit_s=60,
            log_path=Path(tmp) / "probe.log",
            limits=Limits(memory_mb=512, pids=64),
        )
        outcome = backend.run_step(step)
        text = step.log_path.read_text(errors="replace")
    found = [line[5:] for line in text.splitlines() if line.startswith("PROBE")]
    if outcome.exit_code != 0 or not found:
        return [("probe container ran", False, f"exit {outcome.exit_code}: {text.strip()[-200:]}")]
    seen = json.loads(found[0])
    nvidia = prereqs.has_nvidia_runtime(backend.client)
    exposed = probe_exposure(backend, state_dir)
    ran = "" if exposed.ran else f"probe container failed: {exposed.detail}"
    return [
        ("isolation level", True, "a container: its own root file system, from the image"),
        (
            "network blocked",
            not seen["network"],
            "connect from inside failed"
            if not seen["network"]
            else "connect from inside succeeded",
        ),
        (
            "host processes hidden, tree killed",
            True,
            "pid namespace; container removed after each step",
        ),
        ("process limit", True, "pids cgroup (pids_limit)"),
        ("memory limit", True, "memory cgroup, no swap; OOM kill reported"),
        ("wall-clock budget", True, "container stopped, then killed"),
        ("validation split not in training view", True, "not mounted"),
        ("val unreachable by absolute path", True, "own root file system"),
        (
            "built-in validation text unreadable",
            exposed.ran and not exposed.pydoc_readable,
            ran or (f"probe container read {', '.join(exposed.pydoc_readable)}; rebuild the image "
                    "('labwarden sandbox build --force')" if exposed.pydoc_readable
                    else "image built without pydoc_data; the probe container found none"),
        ),
        (
            "state folder unreadable (earlier runs)",
            exposed.ran and not exposed.state_readable,
            ran or ("probe container read a marker left there" if exposed.state_readable
                    else "not mounted: a marker left there was not readable"),
        ),
        (
            "/dev/shm private",
            exposed.ran and not exposed.shm_shared,
            ran or ("the host's /dev/shm is shared" if exposed.shm_shared
                    else "the container's own (shm_size); a host marker was not seen"),
        ),
        (
            "frozen code read-only",
            not seen["ro_mount_writable"] and not seen["root_writable"],
            "read-only mounts and root file system",
        ),
        (
            "runs as non-root",
            seen["uid"] != 0,
            f"uid {seen['uid']}, capabilities {seen['caps']:#x}, no_new_privs {seen['nnp']}",
        ),
        (
            "GPU passthrough",
            nvidia,
            "NVIDIA runtime present"
            if nvidia
            else "no NVIDIA runtime (install the NVIDIA Container Toolkit)",
        ),
    ]
