"""DockerBackend: each step in a fresh locked-down container (see `containers`)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from sandbox.backend import SandboxBackend, StepOutcome, StepSpec
from sandbox.docker import prereqs
from sandbox.docker.containers import container_kwargs
from sandbox.docker.images import OFFLINE_TAG, ensure_image
from sandbox.errors import SandboxError, SandboxUnavailable
from sandbox.spec import ExperimentResult, ExperimentSpec


class DockerBackend(SandboxBackend):
    name: ClassVar[str] = "docker"

    def __init__(self, *, image: str = OFFLINE_TAG, client: Any = None) -> None:
        self.image = image
        self._client = client
        self._ready = False
        self._live: set[str] = set()
        self._removals: list[threading.Thread] = []

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = prereqs.connect()
        return self._client

    def setup(self) -> None:
        if not self._ready:
            self.image = ensure_image(self.client, self.image, log=lambda _: None)
            self._ready = True

    def run(self, spec: ExperimentSpec) -> ExperimentResult:
        try:
            return super().run(spec)
        finally:
            # Removing the training container overlapped the evaluation; wait for the
            # rest so no exited container outlives the experiment.
            self._join_removals()

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
        container = self.client.containers.create(**container_kwargs(step, self.image))
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
