"""Pick a backend by name, or Docker when an engine answers and local otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labwarden.errors import InputError
from sandbox.backend import SandboxBackend

if TYPE_CHECKING:
    from labwarden.config import WorkspaceConfig

BACKENDS = ("docker", "local")


def get_backend(name: str | None = None, *, image: str | None = None) -> SandboxBackend:
    if name is None:
        from sandbox.docker.prereqs import engine_answers

        name = "docker" if engine_answers() else "local"
    if name == "docker":
        from sandbox.docker import DockerBackend

        return DockerBackend(image=image) if image else DockerBackend()
    if name == "local":
        from sandbox.local import LocalBackend

        return LocalBackend()
    raise InputError(f"backend must be one of {', '.join(BACKENDS)}, but got {name!r}.")


def backend_for(config: WorkspaceConfig, name: str | None = None) -> SandboxBackend:
    """The backend a command names, else the workspace's `[sandbox] backend`, else Docker
    when an engine answers; Docker runs the `[sandbox] image`."""
    from sandbox.settings import SandboxSettings

    settings = SandboxSettings.from_config(config)
    return get_backend(name or settings.backend, image=settings.image)
