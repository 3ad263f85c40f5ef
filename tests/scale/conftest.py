"""Fixtures of the scale-out tests: a real Ray cluster on this machine (a head and two worker
nodes in their own processes, with logical GPUs), shared by the tests of this folder."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="Ray is the optional extra labwarden[ray]; "
                          "pip install 'labwarden[ray]' to run the scale-out tests")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Head (no CPUs, so no experiment lands there) + node A with 2 logical GPUs and 2
    CPUs + node B with 1 GPU and 1 CPU."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "num_gpus": 0,
        "include_dashboard": False})
    c.add_node(num_cpus=2, num_gpus=2)
    c.add_node(num_cpus=1, num_gpus=1)
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def scale_workspace(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny workspace with allowances wide enough for three trainings at once on a
    busy 2-core machine: these tests are about placement and faults, not timing."""
    ws = tmp_path_factory.mktemp("scale") / "ws"
    shutil.copytree(tiny_workspace, ws)
    with (ws / "labwarden.toml").open("a") as f:
        f.write("\n[sandbox]\nstartup_allowance_s = 120\nexport_allowance_s = 120\n")
    return ws
