"""How a step becomes a container: the locked-down settings, in one pure function."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sandbox.backend import Limits, StepSpec
from sandbox.docker.images import COMPILE_CACHE_ENV, COMPILE_CACHE_MOUNT

ROOT = "/sandbox"
"""Where a step's mounts appear inside the container."""
USER = "65534:65534"
"""nobody:nogroup; the image has no other account."""
LABEL = "labwarden.sandbox"


def device_requests(gpus: str | list[int] | None) -> list[Any]:
    """All GPUs ("all"), the given indices, or none."""
    if gpus is None or gpus == []:
        return []
    from docker.types import DeviceRequest

    if gpus == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if isinstance(gpus, str):
        ids = [g.strip() for g in gpus.split(",") if g.strip()]
    else:
        ids = [str(int(g)) for g in gpus]
    return [DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]


@dataclass(frozen=True)
class Host:
    """What the engine's machine has: the GPU limits scale with it."""

    cpus: int
    memory_mb: int

    @classmethod
    def of_engine(cls, client: Any) -> Host:
        info = client.info()
        local = cls.local()
        return cls(cpus=int(info.get("NCPU") or local.cpus),
                   memory_mb=int(info.get("MemTotal") or 0) // 2**20 or local.memory_mb)

    @classmethod
    def local(cls) -> Host:
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        except (ValueError, OSError):
            memory = 0
        return cls(cpus=os.cpu_count() or 1, memory_mb=int(memory) or 8192)


def compile_workers(limits: Limits, host: Host) -> int:
    """Inductor's compile worker processes: its own default (one per core, at most 32),
    set explicitly so the limits below and the workers agree; a CPU cap bounds it."""
    cores = math.ceil(limits.cpus) if limits.cpus else host.cpus
    return max(1, min(32, cores))


def gpu_limits(limits: Limits, host: Host) -> Limits:
    """Limits for a GPU step. A limit left at its default follows the machine; one set in
    `[sandbox]` is kept as set.

    pids: every thread counts, and a compiling trainer runs OpenMP and tokenizer pools
    (a thread per core), the CUDA runtime's threads, and inductor's worker processes with
    their own threads and gcc children: 512 starves a large host. memory: each compile
    worker is a Python with torch loaded (about 0.5 to 1 GiB) on top of the trainer and
    the CUDA context; at most three quarters of the host. shm: pinned and shared buffers
    of data loading and NCCL."""
    default = Limits()
    workers = compile_workers(limits, host)

    def chosen(name: str, value: int) -> int:
        current = getattr(limits, name)
        return current if current != getattr(default, name) else max(current, value)

    return replace(
        limits,
        pids=chosen("pids", 1024 + 64 * host.cpus),
        memory_mb=chosen("memory_mb", min(host.memory_mb * 3 // 4, 16384 + 1024 * workers)),
        shm_mb=chosen("shm_mb", min(host.memory_mb // 8, 16384)),
    )


def container_kwargs(step: StepSpec, image: str, *, host: Host | None = None,
                     compile_cache: Path | None = None) -> dict[str, Any]:
    """Arguments for `client.containers.create`: no network, read-only root, no
    capabilities, no new privileges, non-root, init, pids/memory/CPU limits.

    A step with GPUs gets limits that follow the GPU setup (`gpu_limits` on `host`, the
    engine's machine) and inductor's worker count; `compile_cache` (a training step's
    private copy of the image's compile cache, see `images`) is mounted read-write at
    `{ROOT}/cache`, outside the workspace tree, and named to torch and Triton."""
    from docker.types import Mount as DockerMount

    limits = step.limits
    env = dict(step.env)
    if step.gpus:
        host = host or Host.local()
        limits = gpu_limits(limits, host)
        env["TORCHINDUCTOR_COMPILE_THREADS"] = str(compile_workers(limits, host))
    mounts = [
        DockerMount(
            target=f"{ROOT}/{m.target}",
            source=str(m.source.resolve()),
            type="bind",
            read_only=m.read_only,
        )
        for m in step.mounts
    ]
    if compile_cache is not None:
        mounts.append(DockerMount(target=f"{ROOT}/{COMPILE_CACHE_MOUNT}",
                                  source=str(compile_cache.resolve()), type="bind",
                                  read_only=False))
        env.update(COMPILE_CACHE_ENV)
    kwargs: dict[str, Any] = dict(
        image=image,
        command=[a.replace("{root}", ROOT) for a in step.argv],
        working_dir=f"{ROOT}/{step.workdir}",
        environment={k: v.replace("{root}", ROOT) for k, v in env.items()},
        user=USER,
        network_mode="none",
        read_only=True,
        # exec: compiled kernels (torch.compile, triton) are loaded from scratch space.
        tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={limits.tmpfs_mb}m,mode=1777"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        init=True,
        pids_limit=limits.pids,
        mem_limit=f"{limits.memory_mb}m",
        memswap_limit=f"{limits.memory_mb}m",  # no swap: over the limit is an OOM kill
        shm_size=f"{limits.shm_mb}m",
        mounts=mounts,
        labels={LABEL: "step", "labwarden.step": step.name,
                # Which experiment a container belongs to, so cleanup checks on a shared
                # engine look at their own containers only.
                "labwarden.run": str(step.log_path.parent)},
        detach=True,
    )
    if limits.cpus:
        kwargs["nano_cpus"] = int(limits.cpus * 1e9)
    requests = device_requests(step.gpus)
    if requests:
        kwargs["device_requests"] = requests
    return kwargs
