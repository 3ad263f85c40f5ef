"""How a step becomes a container: the locked-down settings, in one pure function."""

from __future__ import annotations

from typing import Any

from sandbox.backend import StepSpec

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


def container_kwargs(step: StepSpec, image: str) -> dict[str, Any]:
    """Arguments for `client.containers.create`: no network, read-only root, no
    capabilities, no new privileges, non-root, init, pids/memory/CPU limits."""
    from docker.types import Mount as DockerMount

    limits = step.limits
    mounts = [
        DockerMount(
            target=f"{ROOT}/{m.target}",
            source=str(m.source.resolve()),
            type="bind",
            read_only=m.read_only,
        )
        for m in step.mounts
    ]
    kwargs: dict[str, Any] = dict(
        image=image,
        command=[a.replace("{root}", ROOT) for a in step.argv],
        working_dir=f"{ROOT}/{step.workdir}",
        environment={k: v.replace("{root}", ROOT) for k, v in step.env.items()},
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
