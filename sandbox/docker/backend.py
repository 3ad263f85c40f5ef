"""DockerBackend: each step in a fresh locked-down container (see `containers`).

With GPUs requested, steps run in the CUDA image (unless `[sandbox] image` names another
than the offline one), with limits that follow the GPU setup, and the training step gets
a private copy of the image's compile cache (see `images` for how that cache is kept
from carrying anything but kernels between experiments).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from sandbox.backend import SandboxBackend, StepOutcome, StepSpec
from sandbox.docker import prereqs
from sandbox.docker.containers import Host, container_kwargs
from sandbox.docker.images import (
    OFFLINE_TAG,
    compile_cache_dir,
    ensure_image,
    image_for,
    promote_compile_cache,
    seed_compile_cache,
)
from sandbox.errors import SandboxError, SandboxUnavailable
from sandbox.spec import ExperimentResult, ExperimentSpec

PRIVATE_CACHE = "compile-cache"
"""A training step's copy of the compile cache, in its run folder (removed after the run)."""


class DockerBackend(SandboxBackend):
    name: ClassVar[str] = "docker"

    def __init__(self, *, image: str = OFFLINE_TAG, client: Any = None) -> None:
        self.image = image
        """The configured image; `image_for` swaps the offline one for CUDA with GPUs."""
        self._client = client
        self._ensured: dict[str, str] = {}  # tag -> image id
        self._active: str | None = None
        self._trusted = False
        self._host: Host | None = None
        self._live: set[str] = set()
        self._removals: list[threading.Thread] = []

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = prereqs.connect()
        return self._client

    @property
    def active_image(self) -> str:
        """The image the current experiment's steps run in."""
        return self._active or self.image

    def setup(self) -> None:
        tag = self.active_image
        if tag not in self._ensured:
            ensure_image(self.client, tag, log=lambda _: None)
            self._ensured[tag] = str(self.client.images.get(tag).id)

    def run(self, spec: ExperimentSpec) -> ExperimentResult:
        self._active = image_for(self.image, spec.gpus)
        self._trusted = bool(spec.gpus) and _users_own_trainer(spec)
        try:
            result = super().run(spec)
            private = result.run_dir / PRIVATE_CACHE if result.run_dir else None
            if private is not None and private.is_dir():
                if self._trusted and result.status == "ok":
                    promote_compile_cache(private, self.shared_compile_cache())
                shutil.rmtree(private, ignore_errors=True)
            return result
        finally:
            # Removing the training container overlapped the evaluation; wait for the
            # rest so no exited container outlives the experiment.
            self._join_removals()

    def shared_compile_cache(self) -> Path:
        """The current image's shared compile cache (after `setup`)."""
        return compile_cache_dir(self._ensured.get(self.active_image, self.active_image))

    def _private_cache(self, step: StepSpec) -> Path | None:
        """A GPU training step's private copy of the compile cache, made now."""
        if step.name != "train" or not step.gpus:
            return None
        private = step.log_path.parent / PRIVATE_CACHE
        shutil.rmtree(private, ignore_errors=True)
        seed_compile_cache(self.shared_compile_cache(), private)
        return private

    def _join_removals(self) -> None:
        for thread in self._removals:
            thread.join(timeout=60)
        self._removals.clear()

    def cleanup(self) -> None:
        self._join_removals()
        for cid in list(self._live):
            _remove(self.client, cid)
            self._live.discard(cid)

    def create(self, step: StepSpec) -> Any:
        """Create (not start) the step's container; callers inspect or start it."""
        if step.gpus and self._host is None:
            self._host = Host.of_engine(self.client)
        kwargs = container_kwargs(step, self.active_image, host=self._host,
                                  compile_cache=self._private_cache(step))
        container = self.client.containers.create(**kwargs)
        self._live.add(container.id)
        return container

    def run_step(self, step: StepSpec) -> StepOutcome:
        import docker

        began = time.monotonic()
        container = self.create(step)
        try:
            try:
                container.start()
            except docker.errors.APIError as e:
                if prereqs.is_gpu_refusal(e):
                    raise SandboxUnavailable(prereqs.NO_NVIDIA) from None
                raise SandboxError(
                    f"could not start the {step.name} container: {e.explanation or e}"
                ) from None
            started = time.monotonic()
            logs = threading.Thread(
                target=_stream_logs, args=(container, step.log_path), daemon=True
            )
            peak = _PeakMemory(container)
            logs.start()
            peak.start()
            exit_code, timed_out = _wait(container, step.time_limit_s)
            ended = time.monotonic()
            logs.join(timeout=10)
            container.reload()
            oom = bool(container.attrs["State"].get("OOMKilled"))
        except BaseException:
            _remove(self.client, container.id)
            self._live.discard(container.id)
            raise
        # The container has exited and everything is collected: removing it is off the
        # critical path (~0.2 s of engine time), so the next step need not wait for it.
        self._remove_later(container.id)
        return StepOutcome(
            exit_code=None if timed_out else exit_code,
            timed_out=timed_out,
            oom=oom and not timed_out,
            wall_seconds=ended - started,
            overhead_seconds=(started - began) + (time.monotonic() - ended),
            started_at=started,
            ended_at=ended,
            peak_memory_mb=peak.mb,
        )

    def _remove_later(self, cid: str) -> None:
        def remove() -> None:
            _remove(self.client, cid)
            self._live.discard(cid)

        self._removals = [t for t in self._removals if t.is_alive()]
        thread = threading.Thread(target=remove, daemon=True)
        thread.start()
        self._removals.append(thread)

    def guarantees(self) -> list[tuple[str, bool, str]]:
        from sandbox.docker.diagnostics import measured_guarantees

        return measured_guarantees(self)


def _wait(container: Any, limit_s: float) -> tuple[int | None, bool]:
    """Exit code, or stop-then-kill at the limit (SIGTERM, 2 s, SIGKILL)."""
    import requests

    try:
        return int(container.wait(timeout=limit_s)["StatusCode"]), False
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
        container.stop(timeout=2)
        container.wait(timeout=30)
        return None, True


def _stream_logs(container: Any, path: Path) -> None:
    with path.open("ab") as out:
        for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
            out.write(chunk)
            out.flush()


class _PeakMemory(threading.Thread):
    """Largest memory use the engine reports while the container runs."""

    def __init__(self, container: Any) -> None:
        super().__init__(daemon=True)
        self.container = container
        self.mb: float | None = None

    def run(self) -> None:
        try:
            for sample in self.container.stats(stream=True, decode=True):
                mem = sample.get("memory_stats") or {}
                used = mem.get("max_usage") or mem.get("usage")  # v1 keeps the max itself
                if used:
                    self.mb = max(self.mb or 0.0, used / 2**20)
        except Exception:  # the stream ends with an error once the container is gone
            return


def _remove(client: Any, cid: str) -> None:
    import docker

    try:
        client.api.remove_container(cid, force=True)
    except docker.errors.NotFound:
        pass


def _users_own_trainer(spec: ExperimentSpec) -> bool:
    """No patch, and the editable files are the workspace's own: code the user wrote."""
    from sandbox.staging import code_files

    if spec.patch:
        return False
    root = spec.config.root.resolve()
    base = (spec.base_dir or root).resolve()
    if base == root:
        return True
    ours, theirs = code_files(spec.config, root)[0], code_files(spec.config, base)[0]
    return sorted(ours) == sorted(theirs) and all(
        (root / rel).read_bytes() == (base / rel).read_bytes() for rel in ours)
