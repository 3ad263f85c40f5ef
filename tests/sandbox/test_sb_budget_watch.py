"""The inotify claim the budget rests on, checked for real on both backends: a watch on
the step's own folder of links sees the step's reads through a Docker bind mount and
through the local backend's view, and does not see reads of the same files by any other
path (the shared shards, another run's links) or a mere listing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sandbox.backend import Mount, SandboxBackend, StepSpec
from sandbox.datalinks import link_split
from sandbox.watch import READS, WRITES, FolderWatch, Watch

SHARD = "shard_00000.parquet"
# Sleeps first, so its read comes at least 2 s after the command started.
STEP = (
    "import time; time.sleep(2); "
    f"data = open('{{root}}/data/train/{SHARD}', 'rb').read(); "
    "open('{root}/out/model.pt2', 'wb').write(data[:64]); print('STEP_DONE', len(data))"
)


def _watch_a_step(backend: SandboxBackend, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / SHARD).write_bytes(os.urandom(64 * 1024))
    links = link_split(shared, tmp_path / "links")
    other = link_split(shared, tmp_path / "other-run")
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    watch = FolderWatch(
        [Watch("data", links, READS, first_only=True), Watch("out", out, WRITES)]
    ).start()
    assert watch.available, watch.why_unavailable
    # None of these is this step reading its data.
    (shared / SHARD).read_bytes()
    (other / SHARD).read_bytes()
    assert os.listdir(links) == [SHARD] and (links / SHARD).stat().st_size == 64 * 1024
    step = StepSpec(
        name="train",
        argv=("python", "-c", STEP),
        env={},
        mounts=(Mount(links, "data/train"), Mount(out, "out", read_only=False)),
        workdir="out",
        time_limit_s=120,
        log_path=tmp_path / "step.log",
    )
    try:
        outcome = backend.run_step(step)
        watch.mark_end()
        (out / "late.txt").write_text("as a process that outlived the step would\n")
    finally:
        seen = watch.stop()
        backend.cleanup()
    log = step.log_path.read_text()
    assert outcome.exit_code == 0 and "STEP_DONE 65536" in log, log
    data = seen["data"]
    assert data.first_at is not None, "the step's read was not seen"
    assert outcome.started_at + 1.5 <= data.first_at <= outcome.ended_at
    assert data.events == 1 and list(data.files) == [SHARD]
    written = seen["out"]
    assert "model.pt2" in written.files
    assert written.late == ["late.txt"]


def test_local_step_reads_are_seen_through_its_view(tmp_path: Path) -> None:
    from sandbox.local import LocalBackend

    _watch_a_step(LocalBackend(), tmp_path)


@pytest.mark.docker
def test_docker_step_reads_are_seen_through_a_bind_mount(
    tmp_path: Path, docker_engine  # noqa: ANN001
) -> None:
    from sandbox.docker import DockerBackend

    backend = DockerBackend(client=docker_engine)
    backend.setup()
    _watch_a_step(backend, tmp_path)


def test_without_inotify_the_watch_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    watch = FolderWatch([Watch("data", tmp_path, READS)]).start()
    assert not watch.available
    assert watch.why_unavailable == "inotify is Linux only (this is darwin)"
    watch.mark_end()
    assert watch.stop()["data"].first_at is None


def test_a_missing_folder_makes_the_watch_unavailable(tmp_path: Path) -> None:
    watch = FolderWatch([Watch("data", tmp_path / "absent", READS)]).start()
    assert not watch.available and "No such file or directory" in watch.why_unavailable
