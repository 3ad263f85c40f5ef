"""Experiments in flight on Ray: submit, wait for the next to finish, shut down.

`RayPool(address=None)` starts a private local Ray instance (and stops it at `close`);
`address="auto"` or `"HOST:PORT"` joins a cluster started with `ray start --head`. Each
experiment is one task asking for `gpus_per_experiment` GPUs (Ray hands out whole GPUs,
so two experiments never share one) and `cpus_per_experiment` CPUs. A task whose worker
process or node dies is re-run once elsewhere by Ray (`max_retries=1`); a second loss is
a result with status `error` and the reason, so no experiment is lost or counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labwarden.errors import InputError
from labwarden.scale.bundle import Bundle
from labwarden.scale.worker import Request, refused, run_experiment

RAY_MISSING = ("--workers and --ray need Ray: pip install 'labwarden[ray]' "
               "(or pip install 'ray>=2.40').")


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(RAY_MISSING) from None
    return ray


@dataclass
class Finished:
    experiment_id: str
    result: dict[str, Any]


@dataclass
class RayPool:
    address: str | None = None
    """None: a private local instance; "auto" or HOST:PORT: an existing cluster."""
    workers: int = 1
    """How many experiments may be in flight at once."""
    gpus_per_experiment: float | None = None
    """None: 1 where the cluster has GPUs, else 0."""
    cpus_per_experiment: float = 1.0
    local_gpus: int | None = None
    """GPUs a private local instance declares (None: Ray detects them)."""
    env: dict[str, str] | None = None
    """Environment variables set for every task on the workers (Ray's runtime_env)."""
    _ray: Any = field(default=None, init=False, repr=False)
    _task: Any = field(default=None, init=False, repr=False)
    _started: bool = field(default=False, init=False)
    _refs: dict[Any, Request] = field(default_factory=dict, init=False, repr=False)
    _bundles: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def open(self) -> RayPool:
        ray = import_ray()
        if self.workers < 1:
            raise InputError(f"--workers must be at least 1, but got {self.workers}.")
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if self.address is None:
                kwargs["num_cpus"] = max(self.workers * self.cpus_per_experiment, 1)
                if self.local_gpus is not None:
                    kwargs["num_gpus"] = self.local_gpus
            else:
                kwargs["address"] = self.address
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise InputError(f"could not reach the Ray cluster at {self.address!r}: "
                                 f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
                                 ) from None
            self._started = True
        self._ray = ray
        gpus = self.gpus_per_experiment
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        self.gpus_per_experiment = gpus
        options: dict[str, Any] = {"num_gpus": gpus, "num_cpus": self.cpus_per_experiment,
                                   "max_retries": 1, "retry_exceptions": False}
        if self.env:
            options["runtime_env"] = {"env_vars": dict(self.env)}
        self._task = ray.remote(run_experiment).options(**options)
        return self

    def __enter__(self) -> RayPool:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._ray is not None and self._started:
            self._ray.shutdown()
        self._ray = None
        self._refs.clear()
        self._bundles.clear()

    # ------------------------------------------------------------------ in flight
    @property
    def in_flight(self) -> list[str]:
        return [r.experiment_id for r in self._refs.values()]

    @property
    def has_room(self) -> bool:
        return len(self._refs) < self.workers

    def submit(self, bundle: Bundle, request: Request) -> None:
        if self._ray is None:
            raise RuntimeError("RayPool.submit before open()")
        ref = self._bundles.get(bundle.digest)
        if ref is None:
            # One copy per base tree in the object store, shared by its experiments.
            ref = self._bundles[bundle.digest] = self._ray.put(bundle)
        self._refs[self._task.remote(ref, request)] = request

    def wait(self, timeout: float | None = None) -> Finished | None:
        """The next experiment to finish (None if none did within `timeout`)."""
        if not self._refs:
            return None
        done, _ = self._ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if not done:
            return None
        ref = done[0]
        request = self._refs.pop(ref)
        try:
            result = self._ray.get(ref)
        except Exception as e:  # the worker died twice, the node went away, ...
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            result = refused(request, f"lost on Ray after a retry: {type(e).__name__}: "
                             f"{first}", {"node": "", "host": "", "gpu_ids": []})
        return Finished(request.experiment_id, result)

    def nodes(self) -> list[dict[str, Any]]:
        """The cluster's live nodes (for the progress line and the doctor)."""
        return [n for n in self._ray.nodes() if n.get("Alive")] if self._ray else []
