"""The GPU setup of the Docker backend, on a machine without a GPU: which image `--gpus`
picks, what the container's create-kwargs become (limits following the GPU setup, the
compile cache mount), and how the per-image compile cache is kept from carrying
anything between experiments but a trusted run's kernels."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sandbox.backend import Limits, Mount, StepSpec
from sandbox.docker import images
from sandbox.docker.containers import Host, compile_workers, container_kwargs, gpu_limits
from sandbox.docker.images import CUDA_TAG, OFFLINE_TAG, image_for

BIG = Host(cpus=128, memory_mb=1_000_000)
SMALL = Host(cpus=2, memory_mb=8000)


def _step(tmp_path: Path, gpus=None, limits: Limits | None = None,  # noqa: ANN001
          name: str = "train") -> StepSpec:
    return StepSpec(
        name=name,
        argv=("python", "-m", "trainer.train"),
        env={"LABWARDEN_OUT_DIR": "{root}/out"},
        mounts=(Mount(tmp_path, "ws"), Mount(tmp_path, "out", read_only=False)),
        workdir="ws",
        time_limit_s=10,
        log_path=tmp_path / "train.log",
        limits=limits or Limits(),
        gpus=gpus,
    )


# ---- image -------------------------------------------------------------------------------

@pytest.mark.parametrize(("configured", "gpus", "expected"), [
    (OFFLINE_TAG, "all", CUDA_TAG),
    (OFFLINE_TAG, [0, 1], CUDA_TAG),
    (OFFLINE_TAG, None, OFFLINE_TAG),
    (OFFLINE_TAG, [], OFFLINE_TAG),
    ("my/cuda:1", "all", "my/cuda:1"),  # named in [sandbox] image: kept
])
def test_gpus_select_the_cuda_image(configured, gpus, expected):  # noqa: ANN001
    assert image_for(configured, gpus) == expected


TOML = """
[workspace]
editable = ["trainer/**"]
frozen = ["eval_frozen/**", "labwarden.toml"]
"""


def _workspace(root: Path):  # noqa: ANN202 - a WorkspaceConfig
    from labwarden.config import load_config

    (root / "trainer").mkdir(parents=True)
    (root / "trainer" / "train.py").write_text("LR = 0.02\n")
    (root / "eval_frozen").mkdir()
    (root / "eval_frozen" / "evaluate.py").write_text("X = 1\n")
    (root / "labwarden.toml").write_text(TOML)
    return load_config(root)


def test_a_docker_run_with_gpus_runs_in_the_cuda_image(tmp_path):
    from labwarden.errors import InputError
    from sandbox.docker import DockerBackend
    from sandbox.spec import ExperimentSpec

    config = _workspace(tmp_path / "ws")
    backend = DockerBackend(client=object())  # no step runs: the data is not prepared
    for gpus, expected in (("all", CUDA_TAG), (None, OFFLINE_TAG)):
        spec = ExperimentSpec(config=config, patch=None, profile="tiny",
                              experiment_id=f"e{gpus}", gpus=gpus)
        with pytest.raises(InputError, match="no prepared data"):
            backend.run(spec)
        assert backend.active_image == expected
        assert backend.image == OFFLINE_TAG  # the configured one is kept for the next run


# ---- limits ------------------------------------------------------------------------------

def test_gpu_limits_follow_the_host():
    big = gpu_limits(Limits(), BIG)
    assert compile_workers(Limits(), BIG) == 32  # inductor's own ceiling
    assert big.pids == 1024 + 64 * 128
    assert big.memory_mb == 16384 + 1024 * 32
    assert big.shm_mb == 16384
    small = gpu_limits(Limits(), SMALL)
    assert compile_workers(Limits(), SMALL) == 2
    # Never below the CPU defaults; memory stays under three quarters of a small host
    # only where the default already is.
    assert small.pids == 1024 + 128 and small.memory_mb == 8192 and small.shm_mb == 1024
    assert small.tmpfs_mb == Limits().tmpfs_mb


def test_limits_set_in_the_workspace_are_kept():
    mine = Limits(pids=300, memory_mb=20000, shm_mb=512, cpus=4)
    got = gpu_limits(mine, BIG)
    assert (got.pids, got.memory_mb, got.shm_mb) == (300, 20000, 512)
    assert compile_workers(mine, BIG) == 4  # a CPU cap bounds the compile workers


def test_gpu_step_create_kwargs(tmp_path):
    kw = container_kwargs(_step(tmp_path, "all"), CUDA_TAG, host=BIG)
    assert kw["image"] == CUDA_TAG
    assert kw["pids_limit"] == 1024 + 64 * 128
    assert kw["mem_limit"] == kw["memswap_limit"] == f"{16384 + 32 * 1024}m"
    assert kw["shm_size"] == "16384m"
    assert kw["environment"]["TORCHINDUCTOR_COMPILE_THREADS"] == "32"
    (request,) = kw["device_requests"]
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]
    # The lock-down is the same as for a CPU step.
    assert kw["read_only"] is True and kw["network_mode"] == "none"
    assert kw["user"] == "65534:65534" and kw["cap_drop"] == ["ALL"]
    assert "exec" in kw["tmpfs"]["/tmp"].split(",")


def test_cpu_step_create_kwargs_are_unchanged(tmp_path):
    kw = container_kwargs(_step(tmp_path), OFFLINE_TAG, host=BIG)
    assert kw["pids_limit"] == 512 and kw["mem_limit"] == "8192m" and kw["shm_size"] == "1024m"
    assert "TORCHINDUCTOR_COMPILE_THREADS" not in kw["environment"]
    assert "device_requests" not in kw
    assert not any(m["Target"] == "/sandbox/cache" for m in kw["mounts"])


def test_compile_cache_mount(tmp_path):
    cache = tmp_path / "compile-cache"
    cache.mkdir()
    kw = container_kwargs(_step(tmp_path, "all"), CUDA_TAG, host=SMALL, compile_cache=cache)
    (mount,) = [m for m in kw["mounts"] if m["Target"] == "/sandbox/cache"]
    assert mount["Source"] == str(cache.resolve()) and mount["ReadOnly"] is False
    env = kw["environment"]
    assert env["TORCHINDUCTOR_CACHE_DIR"] == "/sandbox/cache/inductor"
    assert env["TRITON_CACHE_DIR"] == "/sandbox/cache/triton"
    # Outside the workspace tree the step runs in.
    assert not mount["Target"].startswith(kw["working_dir"])


@pytest.mark.docker
def test_the_engine_accepts_the_gpu_kwargs(tmp_path, docker_engine):
    """The engine takes the GPU step's settings as given (created, never started: no GPU
    here), device requests aside."""
    cache = tmp_path / "compile-cache"
    cache.mkdir()
    kw = container_kwargs(_step(tmp_path, "all"), OFFLINE_TAG, host=BIG, compile_cache=cache)
    kw.pop("device_requests")
    container = docker_engine.containers.create(**kw)
    try:
        host = docker_engine.api.inspect_container(container.id)["HostConfig"]
        assert host["PidsLimit"] == 1024 + 64 * 128
        assert host["Memory"] == (16384 + 32 * 1024) * 2**20
        assert host["ShmSize"] == 16384 * 2**20
        assert host["ReadonlyRootfs"] is True
        assert any(m["Target"] == "/sandbox/cache" and not m.get("ReadOnly")
                   for m in host["Mounts"])
    finally:
        docker_engine.api.remove_container(container.id, force=True)


# ---- compile cache -----------------------------------------------------------------------

def _write(path: Path, data: bytes = b"kernel") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_cache_is_keyed_by_image_id(tmp_path, monkeypatch):
    monkeypatch.setenv("LABWARDEN_CACHE", str(tmp_path))
    a = images.compile_cache_dir("sha256:" + "a" * 64)
    b = images.compile_cache_dir("sha256:" + "b" * 64)
    assert a != b and a.parent == b.parent == tmp_path / "compile"
    assert images.compile_cache_dir("sha256:../../etc").name == "ec"  # hex digits only


def test_seeded_cache_is_read_only_links_in_writable_folders(tmp_path):
    shared, private = tmp_path / "shared", tmp_path / "private"
    kernel = _write(shared / "triton" / "abc" / "k.cubin")
    kernel.chmod(0o444)
    _write(shared / "elsewhere" / "x.bin")  # not a cache folder: not given
    assert images.seed_compile_cache(shared, private) == 1
    given = private / "triton" / "abc" / "k.cubin"
    assert given.read_bytes() == b"kernel"
    assert given.stat().st_mode & 0o777 == 0o444
    if given.stat().st_ino == kernel.stat().st_ino:  # a link: the shared content is 0444
        assert kernel.stat().st_mode & 0o222 == 0
    assert (private / "triton" / "abc").stat().st_mode & 0o777 == 0o777
    assert (private / "inductor").is_dir()
    assert not (private / "elsewhere").exists()


def test_promotion_adds_new_kernel_files_only(tmp_path, monkeypatch):
    shared, private = tmp_path / "shared", tmp_path / "private"
    _write(shared / "inductor" / "ab" / "cab.py", b"old")
    images.seed_compile_cache(shared, private)
    # What a run left: a new kernel, a replaced existing name, a link, a lock and a temp,
    # a file outside the cache folders, and one too large.
    _write(private / "inductor" / "cd" / "ccd.py", b"new kernel")
    existing = private / "inductor" / "ab" / "cab.py"
    existing.unlink()
    _write(existing, b"replaced")
    os.symlink("/etc/passwd", private / "triton" / "link.json")
    _write(private / "triton" / "k" / "k.lock")
    _write(private / "triton" / "k" / "tmpabc123")
    _write(private / "weights.pt", b"w" * 10)
    monkeypatch.setattr(images, "CACHE_FILE_MAX_MB", 1)
    _write(private / "triton" / "big" / "big.cubin", b"x" * (2 * 2**20))
    assert images.promote_compile_cache(private, shared) == 1
    assert (shared / "inductor" / "cd" / "ccd.py").read_bytes() == b"new kernel"
    assert (shared / "inductor" / "cd" / "ccd.py").stat().st_mode & 0o777 == 0o444
    assert (shared / "inductor" / "ab" / "cab.py").read_bytes() == b"old"
    found = sorted(str(p.relative_to(shared)) for p in shared.rglob("*") if p.is_file())
    assert found == ["inductor/ab/cab.py", "inductor/cd/ccd.py"]


def test_promotion_stops_at_the_total_cap(tmp_path, monkeypatch):
    shared, private = tmp_path / "shared", tmp_path / "private"
    monkeypatch.setattr(images, "CACHE_TOTAL_MAX_MB", 1)
    for i in range(5):
        _write(private / "triton" / f"k{i}" / "k.cubin", b"x" * (300 * 2**10))
    assert images.promote_compile_cache(private, shared) == 3
    assert sum(p.stat().st_size for p in shared.rglob("*") if p.is_file()) <= 2**20


def test_only_the_users_own_trainer_feeds_the_shared_cache(tmp_path):
    from sandbox.docker.backend import _users_own_trainer
    from sandbox.spec import ExperimentSpec

    config = _workspace(tmp_path / "ws")

    def spec(**kw) -> ExperimentSpec:  # noqa: ANN003
        return ExperimentSpec(config=config, profile="tiny", experiment_id="e", **kw)

    assert _users_own_trainer(spec(patch=None))
    assert not _users_own_trainer(spec(patch="--- a/trainer/train.py\n"))
    tree = tmp_path / "tree"
    shutil.copytree(config.root, tree)
    assert _users_own_trainer(spec(patch=None, base_dir=tree))  # a research tree, unchanged
    (tree / "trainer" / "train.py").write_text("LR = 0.03\n")
    assert not _users_own_trainer(spec(patch=None, base_dir=tree))  # an agent's best
    (tree / "trainer" / "train.py").write_text("LR = 0.02\n")
    (tree / "trainer" / "extra.py").write_text("")
    assert not _users_own_trainer(spec(patch=None, base_dir=tree))
