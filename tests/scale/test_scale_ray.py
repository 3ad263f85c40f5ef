"""One sandboxed experiment per Ray task, on a real cluster: GPU ids handed out whole, the
seal checked on the worker, a lost worker re-run once, a lost-twice one a clear result."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from labwarden.config import load_config
from labwarden.scale.bundle import pack
from labwarden.scale.pool import RayPool
from labwarden.scale.worker import Request

BUDGET = 2.0


def _request(exp_id: str, backend: str = "local") -> Request:
    return Request(experiment_id=exp_id, patch=None, profile="tiny", time_budget_s=BUDGET,
                   backend=backend)


def _drain(pool: RayPool, timeout: float = 600) -> dict[str, dict]:
    out: dict[str, dict] = {}
    deadline = time.time() + timeout
    while pool.in_flight and time.time() < deadline:
        done = pool.wait(timeout=5)
        if done is not None:
            assert done.experiment_id not in out, "an experiment came back twice"
            out[done.experiment_id] = done.result
    assert not pool.in_flight, f"still in flight after {timeout} s: {pool.in_flight}"
    return out


def test_experiments_get_their_own_gpus_and_run_the_real_sandbox(cluster, scale_workspace):
    bundle = pack(load_config(scale_workspace), "tiny")
    assert bundle.data and "labwarden.toml" in bundle.files
    assert not any(k.startswith(".labwarden/") for k in bundle.files)
    with RayPool(address="auto", workers=3) as pool:
        assert pool.gpus_per_experiment == 1
        for i in range(3):
            pool.submit(bundle, _request(f"g{i}"))
        results = _drain(pool)
    assert set(results) == {"g0", "g1", "g2"}
    for r in results.values():
        assert r["status"] == "ok", r["reason"]
        assert 0.5 < r["val_bpb"] < 10 and len(r["gpu_ids"]) == 1
        assert r["cuda_visible_devices"] == str(r["gpu_ids"][0])  # only its own id
    # Three experiments at once on three GPUs: no (node, GPU) pair shared.
    placed = {(r["node"], r["gpu_ids"][0]) for r in results.values()}
    assert len(placed) == 3 and len({r["node"] for r in results.values()}) == 2


def test_a_worker_refuses_data_sealed_differently(cluster, scale_workspace):
    bundle = dataclasses.replace(pack(load_config(scale_workspace), "tiny"),
                                 seal_hash="0" * 64, digest="other")
    with RayPool(address="auto", workers=1) as pool:
        pool.submit(bundle, _request("s1"))
        result = _drain(pool)["s1"]
    assert result["status"] == "error" and "prepared differently" in result["reason"]
    assert result["node"]  # it did reach a worker


def test_a_worker_without_docker_says_so(cluster, scale_workspace):
    bundle = pack(load_config(scale_workspace), "tiny")
    with RayPool(address="auto", workers=1,
                 env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}) as pool:
        pool.submit(bundle, _request("d1", backend="docker"))
        result = _drain(pool, timeout=120)["d1"]
    assert result["status"] == "error"
    assert "docker" in result["reason"].lower() and "worker" in result["reason"]


def _task_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "ray::run_experiment"], capture_output=True,
                         text=True).stdout.split()
    return [int(p) for p in out]


def _kill_task_when_training(ws_hint: str, timeout: float = 300) -> None:
    """SIGKILL the Ray worker process of the running task once its training step runs."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        steps = subprocess.run(["pgrep", "-f", "trainer.train"], capture_output=True,
                               text=True).stdout.split()
        pids = _task_pids()
        if steps and pids:
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.2)
    pytest.fail(f"no training step of {ws_hint} seen within {timeout} s")


def test_a_killed_worker_is_rerun_once_then_reported(cluster, scale_workspace):
    bundle = pack(load_config(scale_workspace), "tiny")
    with RayPool(address="auto", workers=1) as pool:
        pool.submit(bundle, _request("k1"))
        _kill_task_when_training("k1")
        once = _drain(pool)["k1"]  # Ray re-ran it: one result, a real one
        assert once["status"] == "ok", once["reason"]
        pool.submit(bundle, _request("k2"))
        _kill_task_when_training("k2")
        time.sleep(1.0)
        _kill_task_when_training("k2 (retry)")
        twice = _drain(pool)["k2"]
    assert twice["status"] == "error" and "lost on Ray after a retry" in twice["reason"]


def test_without_ray_the_extra_is_named(monkeypatch, tmp_path: Path):
    import sys

    from labwarden.errors import InputError

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(InputError, match=r"labwarden\[ray\]"):
        RayPool(workers=2).open()
