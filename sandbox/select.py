"""Pick a backend by name, or Docker when an engine answers and local otherwise."""

from __future__ import annotations

from labwarden.errors import InputError
from sandbox.backend import SandboxBackend

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
