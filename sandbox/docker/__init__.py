"""The Docker backend, split by concern: prerequisites, container settings, images,
diagnostics, and the thin backend class that calls into them."""

from sandbox.docker.backend import DockerBackend

__all__ = ["DockerBackend"]
