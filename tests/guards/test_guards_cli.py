"""`labwarden guards` and `labwarden audit` end to end, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from guards_helpers import REPO, edit

from agents.cli import main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agents.cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def test_check_exit_codes_json_and_audit(workspace: Path, tmp_path: Path) -> None:
    ok = tmp_path / "ok.patch"
    ok.write_text(edit(workspace, "trainer/train.py", "LR = 0.02 ", "LR = 0.03 "))
    bad = tmp_path / "bad.patch"
    bad.write_text(edit(workspace, "trainer/train.py", "import math\n",
                        "import math\nimport subprocess\n"))
    r = _run("guards", "check", str(ok), "--workspace", str(workspace), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["verdict"] == "passed"
    r = _run("guards", "check", str(bad), "--workspace", str(workspace), "--json",
             "--experiment-id", "e1", "--hypothesis", "shell out")
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["verdict"] == "blocked"
    assert {"rule_id": "escape.process", "severity": "block", "file": "trainer/train.py",
            "line": 20, "evidence": "import subprocess"}.items() <= data["findings"][0].items()
    assert (workspace / ".labwarden" / "audit.sqlite").is_file()

    r = _run("audit", "list", "--workspace", str(workspace), "--verdict", "blocked", "--json")
    rows = json.loads(r.stdout)
    assert [(x["experiment_id"], x["verdict"]) for x in rows] == [("e1", "blocked")]
    r = _run("audit", "show", str(rows[0]["id"]), "--workspace", str(workspace))
    assert r.returncode == 0
    assert ">> +import subprocess    <-- escape.process" in r.stdout
    r = _run("audit", "export", "--jsonl", "--workspace", str(workspace))
    assert len(r.stdout.splitlines()) == 2


def test_replay_shows_changed_verdicts(workspace: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    patch = tmp_path / "todo.patch"
    patch.write_text(edit(workspace, "trainer/train.py", "LR = 0.02 ", "LR = 0.02 # TODO"))
    assert main(["guards", "check", str(patch), "--workspace", str(workspace)]) == 0
    with (workspace / "labwarden.toml").open("a") as fh:
        fh.write('\n[[guards.rules]]\nid = "lab.no-todo"\nadded_regex = ["TODO"]\n')
    capsys.readouterr()
    assert main(["audit", "replay", "--workspace", str(workspace), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["was"], row["now"], row["changed"]) == ("passed", "blocked", True)
    assert row["added_rules"] == ["lab.no-todo"]


@pytest.mark.parametrize("content", [b"", b"garbage\n", b"\xff\xfe\x00binary",
                                     b"--- a/x\n+++ b/x\n@@ -1,9 +1,9 @@\n-a\n"])
def test_input_errors_exit_2_and_write_nothing(workspace: Path, tmp_path: Path,
                                               content: bytes) -> None:
    p = tmp_path / "in.patch"
    p.write_bytes(content)
    r = _run("guards", "check", str(p), "--workspace", str(workspace))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "error" in r.stderr
    assert not (workspace / ".labwarden").exists()


def test_missing_patch_file_and_unknown_audit_id(workspace: Path) -> None:
    r = _run("guards", "check", "/nonexistent.patch", "--workspace", str(workspace))
    assert r.returncode == 2 and "not found" in r.stderr
    r = _run("audit", "show", "99", "--workspace", str(workspace))
    assert r.returncode == 2


def test_list_shows_rules_with_source_and_severity(workspace: Path) -> None:
    r = _run("guards", "list", "--workspace", str(workspace), "--json")
    rules = {x["id"]: x for x in json.loads(r.stdout)["rules"]}
    assert rules["time.budget"]["source"] == "builtin"
    assert rules["seed.fishing"]["severity"] == "review"
    assert rules["guards.error"]["source"] == "core"
    assert len(rules) >= 25


def test_check_imports_nothing_heavy(tmp_path: Path) -> None:
    from build import LEGIT, make_patch

    patch = tmp_path / "lr.patch"
    patch.write_text(make_patch(LEGIT["lr_increase"]))
    code = ("import sys; from agents.cli import main; "
            f"rc = main(['guards', 'check', {str(patch)!r}, '--no-audit']); "
            "heavy = [m for m in ('torch', 'langgraph', 'docker', 'anthropic', 'numpy') "
            "if m in sys.modules]; print(rc, heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert r.stdout.strip().splitlines()[-1] == "0 []", r.stdout + r.stderr


def test_check_reads_standard_input(workspace: Path) -> None:
    patch = edit(workspace, "trainer/train.py", "import math\n", "import math\nimport pty\n")
    r = subprocess.run([sys.executable, "-m", "agents.cli", "guards", "check", "-",
                        "--workspace", str(workspace), "--no-audit"], input=patch,
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 1 and "escape.process" in r.stdout
    assert not (workspace / ".labwarden").exists()


def test_an_oversize_patch_is_refused_unread(tmp_path):
    """Over the size limit nothing is parsed: one patch.size finding, whatever the body."""
    import subprocess
    import sys

    big = tmp_path / "big.patch"
    body = "".join(f"+x{i} = {i}\n" for i in range(40_000))
    big.write_text("--- a/trainer/train.py\n+++ b/trainer/train.py\n@@ -1,1 +1,9 @@\n"
                   + body)
    proc = subprocess.run([sys.executable, "-m", "labwarden", "guards", "check", "--json",
                           "--no-audit", str(big)], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    import json

    findings = json.loads(proc.stdout)["findings"]
    assert [f["rule_id"] for f in findings] == ["patch.size"]
    assert "not parsed" in findings[0]["message"]


def test_a_folder_is_not_a_patch(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "labwarden", "guards", "check", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "is a folder" in proc.stderr
