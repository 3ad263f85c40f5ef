"""The patch model and the in-memory applier: strict like `git apply --check`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from guards_helpers import diff, edit

from guards.apply import ApplyError, apply_file
from guards.engine import check_patch
from guards.patch import PatchError, parse_patch

BASE = "".join(f"line {i}\n" for i in range(1, 21))


def test_parse_modified_file_lines() -> None:
    p = parse_patch(diff("trainer/x.py", BASE, BASE.replace("line 5\n", "line five\n")))
    (f,) = p.files
    assert (f.old_path, f.new_path, f.status) == ("trainer/x.py", "trainer/x.py", "modified")
    assert f.added_lines() == [(5, "line five")]
    assert f.removed_lines() == [(5, "line 5")]


def test_parse_git_headers_mode_symlink_rename_binary() -> None:
    text = (
        "diff --git a/trainer/run.sh b/trainer/run.sh\nold mode 100644\nnew mode 100755\n"
        "diff --git a/trainer/link b/trainer/link\nnew file mode 120000\nindex 0000000..1111111\n"
        "--- /dev/null\n+++ b/trainer/link\n@@ -0,0 +1 @@\n+../.labwarden/data/tiny/val\n"
        "\\ No newline at end of file\n"
        "diff --git a/trainer/a.py b/trainer/b.py\nsimilarity index 100%\n"
        "rename from trainer/a.py\nrename to trainer/b.py\n"
        "diff --git a/trainer/w.bin b/trainer/w.bin\nnew file mode 100644\n"
        "Binary files /dev/null and b/trainer/w.bin differ\n"
    )
    files = {f.path: f for f in parse_patch(text).files}
    assert files["trainer/run.sh"].mode_changed
    assert files["trainer/link"].is_symlink and files["trainer/link"].status == "added"
    assert files["trainer/link"].hunks[0].lines[0].text == "../.labwarden/data/tiny/val"
    assert files["trainer/b.py"].status == "renamed"
    assert files["trainer/b.py"].old_path == "trainer/a.py"
    assert files["trainer/w.bin"].binary


@pytest.mark.parametrize("text, why", [
    ("", "empty"),
    ("   \n\n", "empty"),
    ("hello, this is not a diff\n", "no unified diff"),
    ("--- a/x.py\n+++ b/x.py\n@@ -1,3 +1,3 @@\n-a\n+b\n", "malformed"),
    ("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\x00\n+b\n", "NUL"),
])
def test_unreadable_patches_raise_patch_error(text: str, why: str) -> None:
    with pytest.raises(PatchError, match=why):
        parse_patch(text)


def test_p1_strips_first_component_like_git() -> None:
    # An unprefixed name would be stripped by git; we must see what git will write.
    (f,) = parse_patch("--- trainer/x.py\n+++ trainer/x.py\n@@ -1 +1 @@\n-a\n+b\n").files
    assert f.path == "x.py"
    (g,) = parse_patch("--- x.py\n+++ x.py\n@@ -1 +1 @@\n-a\n+b\n").files
    assert g.bad_names


def test_apply_matches_offsets_and_rejects_mismatch() -> None:
    after = BASE.replace("line 10\n", "line ten\n")
    (f,) = parse_patch(diff("t.py", BASE, after)).files
    assert apply_file(f, BASE) == after
    shifted = "header\n" * 3 + BASE  # same hunk, three lines lower: git applies with offset
    assert apply_file(f, shifted) == "header\n" * 3 + after
    with pytest.raises(ApplyError, match="hunk #1"):
        apply_file(f, BASE.replace("line 9\n", "line nine\n"))


def test_apply_rejects_crlf_patch_against_lf_file() -> None:
    text = diff("t.py", BASE, BASE.replace("line 3\n", "line three\n")).replace("\n", "\r\n")
    (f,) = parse_patch(text).files
    with pytest.raises(ApplyError, match="CRLF"):
        apply_file(f, BASE)


def test_apply_new_file_that_exists_and_missing_file() -> None:
    (new,) = parse_patch(diff("t.py", "", "x = 1\n")).files
    with pytest.raises(ApplyError, match="already exists"):
        apply_file(new, "x = 0\n")
    (mod,) = parse_patch(diff("t.py", BASE, BASE + "more\n")).files
    with pytest.raises(ApplyError, match="does not exist"):
        apply_file(mod, None)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("shift", [0, 2, 7])
def test_applier_agrees_with_git_apply(tmp_path: Path, shift: int) -> None:
    after = BASE.replace("line 1\n", "line one\n").replace("line 20\n", "line 20\nend\n")
    patch = diff("t.py", BASE, after)
    target = "pad\n" * shift + BASE
    (tmp_path / "t.py").write_text(target)
    (tmp_path / "p.patch").write_text(patch)
    git = subprocess.run(["git", "apply", "--check", "p.patch"], cwd=tmp_path,
                         capture_output=True)
    (f,) = parse_patch(patch).files
    try:
        apply_file(f, target)
        ours = True
    except ApplyError:
        ours = False
    assert ours == (git.returncode == 0)


def test_malformed_and_non_applying_patches_block_with_clear_findings(config) -> None:  # type: ignore[no-untyped-def]
    report = check_patch("--- a/x\n+++ b/x\n@@ -1,5 +1,5 @@\n-a\n+b\n", config)
    assert report.blocked and report.findings[-1].rule_id == "patch.malformed"
    stale = edit(config.root, "trainer/train.py", "LR = 0.02 ", "LR = 0.03 ").replace(
        "LR = 0.02 ", "LR = 0.05 ")
    report = check_patch(stale, config)
    assert [f.rule_id for f in report.findings] == ["patch.does_not_apply"]


def test_syntax_error_after_patch_blocks(config) -> None:  # type: ignore[no-untyped-def]
    report = check_patch(edit(config.root, "trainer/train.py", "LR = 0.02 ", "LR = (0.02 "),
                         config)
    assert [f.rule_id for f in report.findings] == ["patch.syntax"]


@pytest.mark.parametrize("name, rule", [
    ("../outside.py", "paths.invalid"),
    ("trainer/../eval_frozen/x.py", "paths.invalid"),
    ("trainer\\\\evil.py", "paths.invalid"),
    (".git/hooks/pre-commit", "paths.invalid"),
    ("eval_frozen/evaluate.py", "paths.protected"),
    ("labwarden.toml", "paths.protected"),
    (".labwarden/ledger.sqlite", "paths.protected"),
    ("tests/test_x.py", "paths.protected"),
])
def test_hostile_paths_are_blocked_without_being_read(name: str, rule: str, config) -> None:  # type: ignore[no-untyped-def]
    report = check_patch(diff(name, "", "x = 1\n"), config)
    assert report.blocked
    assert rule in {f.rule_id for f in report.findings}


def test_symlinked_folder_is_refused(config) -> None:  # type: ignore[no-untyped-def]
    (config.root / "trainer" / "data").symlink_to(config.root / "eval_frozen")
    report = check_patch(diff("trainer/data/x.py", "", "x = 1\n"), config)
    assert "paths.invalid" in {f.rule_id for f in report.findings}
    assert not (config.root / "eval_frozen" / "x.py").exists()


def test_file_type_rules(config) -> None:  # type: ignore[no-untyped-def]
    text = (
        "diff --git a/trainer/train.py b/trainer/train.py\nold mode 100644\nnew mode 100755\n"
        "diff --git a/trainer/val_link b/trainer/val_link\nnew file mode 120000\n"
        "--- /dev/null\n+++ b/trainer/val_link\n@@ -0,0 +1 @@\n+../.labwarden/data/tiny/val\n"
        "\\ No newline at end of file\n"
        "diff --git a/trainer/w.bin b/trainer/w.bin\nnew file mode 100644\n"
        "Binary files /dev/null and b/trainer/w.bin differ\n"
    )
    rules = {f.rule_id for f in check_patch(text, config).findings}
    assert {"paths.mode", "paths.symlink", "paths.binary"} <= rules


def test_size_limit_and_deletion_review(config) -> None:  # type: ignore[no-untyped-def]
    big = diff("trainer/big.py", "", "".join(f"x{i} = {i}\n" for i in range(3500)))
    assert "patch.size" in {f.rule_id for f in check_patch(big, config).findings}
    (config.root / "trainer" / "old.py").write_text("x = 1\n")
    gone = ("diff --git a/trainer/old.py b/trainer/old.py\ndeleted file mode 100644\n"
            "--- a/trainer/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x = 1\n")
    report = check_patch(gone, config)
    assert report.verdict == "passed"
    assert [(f.rule_id, f.severity) for f in report.findings] == [("paths.deleted", "review")]


def test_every_builtin_rule_meets_the_contract(config) -> None:  # type: ignore[no-untyped-def]
    import re

    from guards.engine import build_registry

    registry = build_registry(config)
    assert not registry.errors
    for rule_id, entry in registry.rules.items():
        rule = entry.rule
        assert re.fullmatch(r"[a-z0-9_.\-]+", rule_id) and rule.id == rule_id
        assert rule.severity in ("block", "review", "note")
        assert rule.description.strip().endswith(".") or len(rule.description) > 20
        assert rule.check(parse_patch(diff("trainer/n.py", "", "x = 1\n")), _ctx(config)) == []


def _ctx(config):  # type: ignore[no-untyped-def]
    from guards.context import CheckContext
    from guards.settings import load_settings

    return CheckContext(config, load_settings(config), parse_patch(diff("trainer/n.py", "",
                                                                       "x = 1\n")), [])
