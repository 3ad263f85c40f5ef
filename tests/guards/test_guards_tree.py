"""The guards judge the tree `git apply` writes: stacked sections, encodings, shadowing."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from guards_helpers import diff

from guards.apply import ApplyError, apply_file
from guards.engine import check_patch
from guards.patch import parse_patch
from guards.source import decode_python


def _blocks(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.rule_id for f in report.findings if f.severity == "block"}


def test_two_sections_for_one_file_are_refused_even_when_each_is_harmless(config) -> None:  # type: ignore[no-untyped-def]
    path = config.root / "trainer/train.py"
    text = path.read_text()
    first = text.replace("LR = 0.02 ", "LR = 0.03 ")
    # the second section is diffed against the first one's result, as git would stack it
    second = first.replace("SEED = 1337 ", "SEED = 7    ")
    patch = diff("trainer/train.py", text, first) + diff("trainer/train.py", first, second)
    report = check_patch(patch, config)
    assert _blocks(report) == {"patch.duplicate"}, report.render()


@pytest.mark.parametrize("cookie, ok", [
    ("# -*- coding: utf-8 -*-\n", True),
    ("#!/usr/bin/env python\n# vim: set fileencoding=utf-8 :\n", True),
    ("# coding: utf-7\n", False),
    ("#!/usr/bin/env python\n# -*- coding: latin-1 -*-\n", False),
    ("# coding=cp1252\n", False),
])
def test_only_utf8_coding_cookies_are_accepted(config, cookie: str, ok: bool) -> None:  # type: ignore[no-untyped-def]
    body = cookie + '"""Helpers."""\n\n\ndef double(x):\n    return 2 * x\n'
    report = check_patch(diff("trainer/helpers2.py", "", body), config)
    assert (report.verdict == "passed") == ok, report.render()
    if not ok:
        assert _blocks(report) == {"patch.encoding"}


def test_decoding_follows_the_interpreter() -> None:
    text, why = decode_python(b"\xef\xbb\xbfx = 1\n")
    assert (text, why) == ("x = 1\n", None)  # a UTF-8 BOM is fine and not part of the code
    text, why = decode_python(b"x = '\xff'\n")
    assert text is None and "UTF-8" in (why or "")
    text, why = decode_python("s = 'a\u2067b'\n".encode())
    assert text is None and "U+2067" in (why or "")


@pytest.mark.parametrize("name, ok", [
    ("trainer/optim_utils.py", True),
    ("trainer/models/gpt.py", True),
    ("trainer/notes.md", True),
    ("trainer/torch.py", False),
    ("trainer/numpy/__init__.py", False),
    ("trainer/typing.py", False),
    ("trainer/train/__init__.py", False),
    ("trainer/train/__main__.py", False),
    ("trainer/usercustomize.py", False),
    ("trainer/fast.pth", False),
    ("trainer/eval_frozen.py", False),
    ("trainer/__pycache__/train.cpython-311.py", False),
])
def test_new_files_may_not_shadow_modules_or_the_entry_point(config, name: str, ok: bool) -> None:  # type: ignore[no-untyped-def]
    report = check_patch(diff(name, "", "X = 1\n"), config)
    assert ("paths.shadow" not in _blocks(report)) == ok, report.render()


def test_entry_point_is_read_from_the_train_command(tmp_path: Path) -> None:
    from guards_helpers import FIXTURES, REPO

    from labwarden.config import load_config

    for name in ("prepare.py", "train.py"):
        shutil.copy(FIXTURES / "autoresearch" / name, tmp_path / name)
    shutil.copy(REPO / "examples" / "autoresearch" / "labwarden.toml", tmp_path / "labwarden.toml")
    text = (tmp_path / "labwarden.toml").read_text().replace('editable = ["train.py"]',
                                                              'editable = ["train.py", "train/**"]')
    (tmp_path / "labwarden.toml").write_text(text)
    report = check_patch(diff("train/__main__.py", "", "X = 1\n"), load_config(tmp_path))
    assert "paths.shadow" in _blocks(report), report.render()


def _git_apply(tmp: Path, base: str, patch: str) -> str | None:
    (tmp / "t.py").write_text(base)
    (tmp / "p.diff").write_text(patch)
    r = subprocess.run(["git", "apply", "p.diff"], cwd=tmp, capture_output=True,
                       env={"GIT_CEILING_DIRECTORIES": str(tmp.parent), "PATH": "/usr/bin:/bin"})
    return (tmp / "t.py").read_text() if r.returncode == 0 else None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_in_memory_applier_agrees_with_git_where_it_accepts(tmp_path: Path) -> None:
    """Randomised: repeated lines (ambiguous context) and misstated hunk positions. Where
    the in-memory applier accepts a patch, git writes exactly the same file; the engine
    also compares the two on every real check."""
    rng = random.Random(1234)
    words = ["a\n", "b\n", "c\n", "x = 1\n", "pass\n"]
    checked = 0
    for case in range(120):
        base = "".join(rng.choice(words) for _ in range(rng.randint(8, 30)))
        lines = base.splitlines(keepends=True)
        new = list(lines)
        i = rng.randrange(len(new))
        new.insert(i, f"added {case}\n")
        if rng.random() < 0.5 and len(new) > 6:
            j = rng.randrange(len(new))
            new[j] = f"changed {case}\n"
        patch = diff("t.py", base, "".join(new))
        if rng.random() < 0.5:  # misstate where the hunk starts, as hand-edited diffs do
            shift = rng.choice([-3, -2, -1, 1, 2, 3])
            head = patch.splitlines(keepends=True)
            head = [_shift_hunk(h, shift) if h.startswith("@@") else h for h in head]
            patch = "".join(head)
        (change,) = parse_patch(patch).files
        try:
            ours = apply_file(change, base)
        except ApplyError:
            continue
        theirs = _git_apply(tmp_path, base, patch)
        assert theirs == ours, patch
        checked += 1
    assert checked > 60


def _shift_hunk(header: str, by: int) -> str:
    import re

    m = re.match(r"@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@(.*)", header, re.DOTALL)
    assert m
    old, new = max(2, int(m.group(1)) + by), max(2, int(m.group(3)) + by)
    return f"@@ -{old}{m.group(2) or ''} +{new}{m.group(4) or ''} @@{m.group(5)}"
