"""The Ray task: one sandboxed experiment on whichever node Ray chose.

The worker unpacks the bundle into a private folder, checks the seal before and (through
the sandbox's own checks) after, and runs the same `SandboxBackend.run` as the
single-machine path, with the GPUs Ray assigned it and no others. It never writes the
driver's ledger or audit trail: it returns the result, with the node and GPU ids added.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labwarden.scale.bundle import Bundle, check_seal, unpack


@dataclass(frozen=True)
class Request:
    """One experiment for a worker (the driver's spec, without the driver's paths)."""

    experiment_id: str
    patch: str | None
    profile: str
    time_budget_s: float | None
    backend: str | None
    image: str | None = None


def _placement() -> dict[str, Any]:
    """Where this task runs, as Ray assigned it."""
    try:
        import ray

        ctx = ray.get_runtime_context()
        node = ctx.get_node_id()
        gpus = [int(g) for g in ray.get_gpu_ids()]
    except Exception:  # not inside Ray (a direct call)
        node, gpus = "", []
    return {"node": node, "host": socket.gethostname(), "gpu_ids": gpus,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def has_cuda_devices() -> bool:
    """Whether this node has NVIDIA devices at all. Ray's GPUs can be logical (declared
    with `num_gpus` on a CPU node, as in tests and for scheduling only): those are
    assigned and recorded, but the sandbox is not asked for a GPU it cannot give."""
    return Path("/dev/nvidiactl").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def refused(request: Request, reason: str, placement: dict[str, Any]) -> dict[str, Any]:
    """A result for an experiment the worker would not or could not run."""
    return {"status": "error", "val_bpb": None, "metrics": None, "reason": reason,
            "train_seconds": 0.0, "eval_seconds": 0.0, "overhead_seconds": 0.0,
            "peak_memory_mb": None, "violations": [], "log_tail": "", "run_dir": "",
            "timing": None, "experiment_id": request.experiment_id, **placement}


def run_experiment(bundle: Bundle, request: Request) -> dict[str, Any]:
    """Unpack, check the seal, run the sandbox; the result as a dict (never raises for
    a refusal: a broken worker is a reason on that experiment, not a lost one)."""
    from labwarden.config import load_config
    from labwarden.errors import LabwardenError
    from sandbox import get_backend
    from sandbox.spec import ExperimentSpec

    placement = _placement()
    base = Path(os.environ.get("LABWARDEN_WORKER_DIR") or tempfile.gettempdir())
    root = Path(tempfile.mkdtemp(prefix=f"labwarden-{request.experiment_id}-", dir=base))
    try:
        data_dir = unpack(bundle, root)
        problem = check_seal(bundle, root, data_dir)
        if problem:
            return refused(request, problem, placement)
        try:
            backend = get_backend(request.backend, image=request.image)
            spec = ExperimentSpec(
                config=load_config(root), patch=request.patch, profile=request.profile,
                experiment_id=request.experiment_id, time_budget_s=request.time_budget_s,
                gpus=(placement["gpu_ids"] or None) if has_cuda_devices() else None)
            result = backend.run(spec).to_dict()
        except LabwardenError as e:  # no Docker engine there, a bad patch path, ...
            return refused(request, f"worker {placement['host']}: {e}", placement)
        result.update(placement)
        result["experiment_id"] = request.experiment_id
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)
