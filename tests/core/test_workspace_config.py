"""The workspace config: glob semantics and one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from labwarden.config import glob_match, load_config
from labwarden.errors import ConfigError, InputError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("trainer/train.py", "trainer/**", True),
        ("trainer/a/b.py", "trainer/**", True),
        ("trainer", "trainer/**", True),
        ("trainerx/train.py", "trainer/**", False),
        ("train.py", "*.py", True),
        ("trainer/train.py", "*.py", False),
        ("x.py", "**/x.py", True),
        ("a/b/x.py", "**/x.py", True),
        (".labwarden/data/tiny/val/shard.parquet", ".labwarden/data/*/val/**", True),
        (".labwarden/data/tiny/train/shard.parquet", ".labwarden/data/*/val/**", False),
    ],
)
def test_glob_match(path: str, pattern: str, expected: bool) -> None:
    assert glob_match(path, pattern) is expected


def test_repo_config_describes_this_workspace() -> None:
    cfg = load_config(REPO)
    assert cfg.is_editable("trainer/train.py")
    assert not cfg.is_editable("eval_frozen/evaluate.py")
    assert cfg.is_frozen("eval_frozen/evaluate.py") and cfg.is_frozen("program.md")
    assert cfg.is_hidden(".labwarden/data/tiny/val/shard_00000.parquet")
    assert cfg.data_path("tiny") == REPO / ".labwarden" / "data" / "tiny"
    assert cfg.metric == "val_bpb" and cfg.direction == "minimize"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[workspace\n", "not valid TOML"),
        ('[run]\ndirection = "up"\n', "direction"),
        ("[run]\ntime_budget_s = -1\n", "time_budget_s"),
        ("[workspace]\neditable = 3\n", "editable"),
        ('workspace = "x"\n', "[workspace]: must be a table"),
    ],
)
def test_bad_config_is_one_line_input_error(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "labwarden.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, InputError)


def test_missing_config_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="not a folder"):
        load_config(tmp_path / "nope")


def test_cli_maps_input_errors_to_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from labwarden.cli import main

    assert main(["no-such-command"]) == 2
    assert main(["guards", "list", "--workspace", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all("error" in line for line in err)
