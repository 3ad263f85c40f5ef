"""Validation text shipped inside the editable files is found before training (guards
bypassed: the trainer itself carries it)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sandbox.carried import CARRIED_LIMIT, carried_val_text
from sandbox.scan import _split_texts


def _val_text(ws: Path) -> str:
    return "\n\n".join(_split_texts(ws / ".labwarden" / "data" / "tiny" / "val"))


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    (tmp_path / "trainer").mkdir()
    return tmp_path


def test_the_honest_trainer_carries_nothing(tiny_workspace: Path) -> None:
    val = tiny_workspace / ".labwarden" / "data" / "tiny" / "val"
    assert carried_val_text(tiny_workspace, ["trainer/train.py"], val) is None


@pytest.mark.parametrize("form", ["text file", "string literal", "comments"])
def test_carried_validation_text_is_found(tiny_workspace: Path, tree: Path, form: str) -> None:
    text = _val_text(tiny_workspace)[:20_000]
    if form == "text file":
        (tree / "trainer" / "notes.txt").write_text(text)
        files = ["trainer/notes.txt"]
    elif form == "string literal":
        (tree / "trainer" / "corpus.py").write_text(f"CORPUS = {text!r}\n")
        files = ["trainer/corpus.py"]
    else:
        (tree / "trainer" / "train.py").write_text(
            "".join(f"# {line}\n" for line in text.splitlines()))
        files = ["trainer/train.py"]
    val = tiny_workspace / ".labwarden" / "data" / "tiny" / "val"
    reason = carried_val_text(tree, files, val)
    assert reason and "carry validation text" in reason and files[0] in reason


def test_a_chance_phrase_is_not_carried_text(tiny_workspace: Path, tree: Path) -> None:
    lines = [line for line in _val_text(tiny_workspace).splitlines() if len(line) > 60]
    # A few quoted sentences (fewer windows than the limit) are not a copy of the split.
    (tree / "trainer" / "train.py").write_text(f"# {lines[0][:45]}\n")
    val = tiny_workspace / ".labwarden" / "data" / "tiny" / "val"
    assert carried_val_text(tree, ["trainer/train.py"], val) is None
    assert CARRIED_LIMIT >= 5


def test_the_sandbox_voids_a_trainer_that_carries_it(suite_config) -> None:  # noqa: ANN001
    from sandbox.conformance import WELL_BEHAVED, _attack
    from sandbox.local import LocalBackend

    text = _val_text(suite_config.root)[:20_000]
    source = textwrap.dedent(WELL_BEHAVED) + f"\nCORPUS = {text!r}\n"
    r = _attack(LocalBackend(), suite_config, source, "carried", budget=3.0)
    assert r.status == "violation" and r.val_bpb is None, (r.status, r.reason)
    assert "carry validation text" in r.reason
    assert not (r.run_dir / "train.log").exists() or "STANDIN_OK" not in (
        r.run_dir / "train.log").read_text()
