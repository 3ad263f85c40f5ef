"""The budget's parts without a step: the judge, the settings, the link folder, the record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from labwarden.config import load_config
from labwarden.errors import ConfigError
from sandbox.budget import JUDGES, Budget, Measured, judge
from sandbox.datalinks import link_split, remove_links
from sandbox.settings import SandboxSettings
from sandbox.spec import ExperimentResult

BUDGET = Budget(budget_s=10.0, startup_allowance_s=6.0, export_allowance_s=3.0)


def _seen(**kw: object) -> Measured:
    base = dict(started_at=100.0, ended_at=113.0, killed=False, first_data_at=102.0,
                data_seen_by="inotify")
    return Measured(**{**base, **kw})  # type: ignore[arg-type]


def test_limits_are_the_budget_plus_the_allowances() -> None:
    assert BUDGET.window_limit_s == 13.0
    assert BUDGET.kill_limit_s == 19.0


def test_a_window_inside_the_limit_passes_and_is_recorded() -> None:
    v = judge(BUDGET, _seen(model_created_at=111.5, model_written_at=112.0,
                            model_changed_at=112.0))
    assert v.reason == ""
    t = v.timing
    assert t.within_budget and not t.killed
    assert (t.step_s, t.startup_s, t.window_s, t.over_budget_s) == (13.0, 2.0, 11.0, 1.0)
    assert (t.model_created_before_end_s, t.model_written_before_end_s) == (1.5, 1.0)
    assert (t.window_limit_s, t.kill_limit_s, t.mode) == (13.0, 19.0, "time")


def test_training_past_the_window_is_a_budget_violation() -> None:
    # Data first read at 101, exit at 115: 14 s of training against 10 + 3.
    v = judge(BUDGET, _seen(first_data_at=101.0, ended_at=115.0))
    assert not v.timing.within_budget and v.timing.window_s == 14.0
    assert v.reason == (
        "training ran 14.0 s from its first read of the training data to its exit, "
        "past its budget of 10 s plus 3 s export allowance"
    )


def test_training_before_the_first_read_counts_only_towards_the_kill_limit() -> None:
    # 5 s of start-up (over the 6 s allowance would be a kill, not this) then 12 s.
    assert judge(BUDGET, _seen(first_data_at=105.0, ended_at=117.0)).reason == ""


def test_no_read_seen_counts_from_the_step_start() -> None:
    v = judge(BUDGET, _seen(first_data_at=None, ended_at=114.0,
                            data_seen_by="step start: inotify is Linux only"))
    assert v.timing.startup_s is None and v.timing.window_s == 14.0
    assert "from its start (no read of the training data was seen)" in v.reason
    assert v.timing.data_seen_by.startswith("step start:")


def test_a_killed_step_names_its_limit() -> None:
    v = judge(BUDGET, _seen(ended_at=121.0, killed=True))
    assert v.timing.killed and not v.timing.within_budget
    assert v.reason.startswith("training ran 21.0 s and was killed at its limit of 19 s")
    assert "budget 10 s + start-up 6 s + export 3 s" in v.reason


def test_a_model_changed_after_the_window_limit_is_not_scored() -> None:
    # The step kept to its window, yet its model changed at 116 > 102 + 13 (a process
    # that outlived the step).
    v = judge(BUDGET, _seen(model_changed_at=116.0))
    assert not v.timing.within_budget
    assert v.reason.startswith("model.pt2 was written 1.0 s after the budget of 10 s")


def test_unknown_mode_is_refused_and_the_mode_table_is_the_plug_point() -> None:
    assert set(JUDGES) == {"time"}
    with pytest.raises(ValueError, match="budget mode must be one of time, but got 'tokens'"):
        judge(Budget(1.0, 1.0, 1.0, mode="tokens"), _seen())


def test_result_json_carries_the_timing(tmp_path: Path) -> None:
    v = judge(BUDGET, _seen())
    result = ExperimentResult(status="ok", val_bpb=2.0, metrics={}, reason="",
                              train_seconds=13.0, eval_seconds=1.0, overhead_seconds=0.5,
                              peak_memory_mb=None, run_dir=tmp_path, timing=v.timing)
    timing = json.loads(result.to_json())["timing"]
    assert timing["window_s"] == 11.0 and timing["startup_s"] == 2.0
    assert timing["export_allowance_s"] == 3.0 and timing["kill_limit_s"] == 19.0


TOML = """
[workspace]
editable = ["trainer/**"]
frozen = ["labwarden.toml"]
"""


def _config(root: Path, sandbox: str):  # noqa: ANN202
    root.mkdir(parents=True)
    (root / "labwarden.toml").write_text(TOML + "[sandbox]\n" + sandbox)
    return load_config(root)


def test_allowances_parse_and_grace_is_gone(tmp_path: Path) -> None:
    s = SandboxSettings.from_config(
        _config(tmp_path / "a", "startup_allowance_s = 7\nexport_allowance_s = 2.5\n")
    )
    assert (s.startup_allowance_s, s.export_allowance_s) == (7.0, 2.5)
    assert SandboxSettings.from_config(_config(tmp_path / "b", "")).export_allowance_s is None
    with pytest.raises(ConfigError, match="grace_s was replaced by startup_allowance_s"):
        SandboxSettings.from_config(_config(tmp_path / "c", "grace_s = 60\n"))
    for bad in ("0", "-1", "true", '"5"'):
        with pytest.raises(ConfigError, match="export_allowance_s must be a positive number"):
            SandboxSettings.from_config(
                _config(tmp_path / f"d{len(bad)}{bad[0]}", f"export_allowance_s = {bad}\n")
            )


def test_allowances_come_from_the_profile_unless_overridden(tmp_path: Path) -> None:
    from eval_frozen.profiles import get_profile
    from sandbox.pipeline import resolve_allowances
    from sandbox.spec import ExperimentSpec

    cfg = _config(tmp_path / "ws", "")
    spec = ExperimentSpec(config=cfg, patch=None, profile="tiny", experiment_id="x")
    tiny = get_profile("tiny")
    b = resolve_allowances(spec, SandboxSettings(), 4.0)
    assert (b.budget_s, b.startup_allowance_s, b.export_allowance_s) == (
        4.0, tiny.startup_allowance_s, tiny.export_allowance_s)
    b = resolve_allowances(spec, SandboxSettings(export_allowance_s=1.5), 4.0)
    assert b.export_allowance_s == 1.5 and b.startup_allowance_s == tiny.startup_allowance_s


def test_link_split_links_each_shard_and_nothing_else(tmp_path: Path) -> None:
    split = tmp_path / "train"
    split.mkdir()
    (split / "shard_00000.parquet").write_bytes(b"a" * 100)
    (split / "shard_00001.parquet").write_bytes(b"b" * 50)
    (split / "sub").mkdir()
    (split / "alias.parquet").symlink_to(split / "shard_00000.parquet")
    dest = link_split(split, tmp_path / "links")
    assert sorted(p.name for p in dest.iterdir()) == ["shard_00000.parquet", "shard_00001.parquet"]
    for name in ("shard_00000.parquet", "shard_00001.parquet"):
        assert os.stat(dest / name).st_ino == os.stat(split / name).st_ino
    remove_links(dest)
    assert not dest.exists() and (split / "shard_00000.parquet").read_bytes() == b"a" * 100


def test_link_split_copies_across_file_systems(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system here to link across")
    split = tmp_path / "train"
    split.mkdir()
    (split / "shard_00000.parquet").write_bytes(b"c" * 10)
    dest = shm / f"labwarden-test-{os.getpid()}"
    try:
        link_split(split, dest)
        copy = dest / "shard_00000.parquet"
        assert copy.read_bytes() == b"c" * 10
        assert os.stat(copy).st_ino != os.stat(split / "shard_00000.parquet").st_ino
    finally:
        remove_links(dest)
