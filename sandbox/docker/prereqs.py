"""Is there a Docker engine, and can it do what a step asks? One actionable line if not."""

from __future__ import annotations

import functools
from typing import Any

from sandbox.errors import SandboxUnavailable

NO_ENGINE = (
    "no Docker engine answers ({why}); start one (e.g. 'dockerd &' as root) "
    "or run with --backend local."
)
NO_NVIDIA = (
    "the Docker engine has no NVIDIA runtime, so it cannot pass GPUs through; "
    "install the NVIDIA Container Toolkit (nvidia-container-toolkit) and restart "
    "dockerd, or run without --gpus."
)


def connect(timeout: float = 5.0) -> Any:
    """A docker SDK client whose engine answered a ping; SandboxUnavailable otherwise."""
    try:
        import docker
    except ImportError:
        raise SandboxUnavailable(
            "the 'docker' Python package is missing; pip install docker."
        ) from None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as e:  # the SDK raises DockerException, requests and OS errors alike
        raise SandboxUnavailable(NO_ENGINE.format(why=_one_line(e))) from None
    return client


@functools.cache
def engine_answers() -> bool:
    try:
        connect(timeout=2.0).close()
    except SandboxUnavailable:
        return False
    return True


def has_nvidia_runtime(client: Any) -> bool:
    info = client.info()
    return "nvidia" in (info.get("Runtimes") or {})


def is_gpu_refusal(error: Exception) -> bool:
    """The engine's words when a GPU device request has no driver to go to."""
    text = str(error)
    return "could not select device driver" in text or "nvidia-container-cli" in text


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:200] if text else type(error).__name__
