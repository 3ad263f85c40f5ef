"""The dispatcher's own behaviour, `audit list` and `audit show` as a person reads them,
a 10 MB patch in the trail, `--profile` checked, the sandbox settings honoured."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from clikit import GOOD_TOML, lw, workspace

from labwarden.cli import main

HEAVY = ("torch", "langgraph", "docker", "anthropic")


def _store(ws: Path, *, big: bool = False) -> Path:
    from guards.audit import AuditStore
    from guards.findings import AttemptMeta, Finding, GuardReport

    (ws / ".labwarden").mkdir(exist_ok=True)
    with AuditStore(ws / ".labwarden" / "audit.sqlite") as store:
        store.record(GuardReport(findings=[Finding(
            "paths.frozen", "block", "eval_frozen/evaluate.py", 3, "x = 1",
            "eval_frozen/evaluate.py is frozen\nsecond line of the reason")]),
            "--- a/x\n+++ b/x\n", str(ws), AttemptMeta("e1", "coder", "m", "h"))
        store.record(GuardReport(), "--- a/y\n+++ b/y\n", str(ws), AttemptMeta(None, "human"))
        if big:
            text = "--- a/trainer/train.py\n+++ b/trainer/train.py\n@@ -1,1 +1,150001 @@\n x\n"
            text += "".join(f"+x{i} = {i} * 3 + 123456789012345678901234567890123\n"
                            for i in range(150_000))
            store.record(GuardReport(findings=[Finding(
                "patch.size", "block", "", 0, f"{len(text)} bytes", "patch too big")]),
                text, str(ws))
            return ws, text  # type: ignore[return-value]
    return ws


def test_version_and_module_entry(tmp_path: Path) -> None:
    proc = lw(["--version"], tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("labwarden ")
    proc = lw(["--help"], tmp_path)
    assert proc.returncode == 0 and "try" in proc.stdout and "--version" in proc.stdout


def test_the_dispatcher_path_imports_nothing_heavy(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    _store(ws)
    code = (
        "import sys\nfrom labwarden.cli import main\n"
        f"for argv in (['guards', 'list', '--workspace', {str(ws)!r}],"
        f" ['audit', 'list', '--workspace', {str(ws)!r}], ['--help']):\n"
        "    assert main(argv) == 0, argv\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_an_internal_error_is_one_line_exit_70(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "boom_cmd.py").write_text(
        "def add_arguments(parser):\n    pass\n\n"
        "def run(args):\n    raise RuntimeError('a bug\\nwith two lines')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from labwarden import cli

    monkeypatch.setitem(cli.COMMANDS, "boom", ("boom_cmd", "raises"))
    assert main(["boom"]) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: a bug with two lines" in err


def test_audit_list_has_a_header_and_says_why(tmp_path: Path) -> None:
    ws = _store(workspace(tmp_path / "ws"))
    proc = lw(["audit", "list", "--workspace", str(ws)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    for column in ("ID", "TIME", "VERDICT", "ROLE", "RULES", "FILE", "REASON"):
        assert column in header
    blocked = next(r for r in rows if "blocked" in r)
    assert "coder" in blocked and "paths.frozen" in blocked
    assert "eval_frozen/evaluate.py:3" in blocked
    assert "is frozen" in blocked and "second line" not in blocked
    assert "human" in next(r for r in rows if "passed" in r)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--rule", "no.such-rule"], "no such rule"),
    (["--rule", "nosuchprefix.*"], "no such rule"),
    (["--limit", "-1"], "--limit must be >= 0"),
])
def test_audit_list_input_errors(tmp_path: Path, args: list[str], fragment: str) -> None:
    ws = _store(workspace(tmp_path / "ws"))
    proc = lw(["audit", "list", *args, "--workspace", str(ws)], tmp_path)
    assert proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr


def test_audit_list_rule_filters_known_ids(tmp_path: Path) -> None:
    ws = _store(workspace(tmp_path / "ws"))
    for rule in ("paths.frozen", "paths.*", "runtime.budget"):
        proc = lw(["audit", "list", "--rule", rule, "--json", "--workspace", str(ws)], tmp_path)
        assert proc.returncode == 0, proc.stderr
        ids = [e["id"] for e in json.loads(proc.stdout)]
        assert ids == ([] if rule.startswith("runtime") else [1])


def test_a_huge_patch_is_stored_bounded_and_shown_bounded(tmp_path: Path) -> None:
    from guards.audit import EXCERPT_BYTES, AuditStore

    ws, text = _store(workspace(tmp_path / "ws"), big=True)
    whole = text.encode()
    assert len(whole) > 8_000_000
    with AuditStore(ws / ".labwarden" / "audit.sqlite", readonly=True) as store:
        entry = store.get(3)
    assert entry.patch_bytes == len(whole) and entry.patch_cut
    assert entry.patch_sha256 == hashlib.sha256(whole).hexdigest()
    assert len(entry.patch.encode()) <= EXCERPT_BYTES and entry.patch.endswith("\n")
    assert (ws / ".labwarden" / "audit.sqlite").stat().st_size < 2 * EXCERPT_BYTES + 200_000

    show = lw(["audit", "show", "3", "--workspace", str(ws)], tmp_path)
    assert show.returncode == 0, show.stderr
    assert len(show.stdout.splitlines()) < 450
    assert "... cut:" in show.stdout and f"{len(whole):,}-byte patch" in show.stdout

    replay = lw(["audit", "replay", "--json", "--workspace", str(ws)], tmp_path)
    assert replay.returncode == 0, replay.stderr
    row = next(r for r in json.loads(replay.stdout) if r["id"] == 3)
    assert row["now"] == "blocked" and not row["changed"]

    report = lw(["report", "--out", str(tmp_path / "r.html"), "--workspace", str(ws)],
                tmp_path)
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "r.html").read_text()
    assert len(html) < 1_500_000 and "Cut:" in html and "audit trail keeps only" in html
    assert ">blocked<" not in html.split('id="summary"')[1].split("</section>")[0]


@pytest.mark.parametrize("command", [["report", "--out", "r.html"], ["try"], ["results"],
                                     ["baseline"], ["run"]])
def test_profile_is_checked_everywhere(tmp_path: Path, command: list[str]) -> None:
    ws = _store(workspace(tmp_path / "ws"))
    proc = lw([*command, "--profile", "bogus", "--workspace", str(ws)], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "'bogus': unknown profile; known: tiny" in proc.stderr
    assert not (tmp_path / "r.html").exists()


def test_run_and_try_take_the_sandbox_table(tmp_path: Path) -> None:
    from agents.run_cli import _with_sandbox
    from labwarden.config import load_config
    from sandbox.select import backend_for

    ws = workspace(tmp_path / "ws", GOOD_TOML + '[sandbox]\nbackend = "docker"\n'
                   'image = "someone/else:1"\n')
    config = load_config(ws)
    assert _with_sandbox({"backend": None}, config)["backend"] == "docker"
    assert _with_sandbox({"backend": "local"}, config)["backend"] == "local"
    backend = backend_for(config)
    assert type(backend).__name__ == "DockerBackend" and backend.image == "someone/else:1"
    assert type(backend_for(config, "local")).__name__ == "LocalBackend"


def test_doctor_reports_the_configured_backend(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws", GOOD_TOML + '[sandbox]\nbackend = "local"\n')
    proc = lw(["sandbox", "doctor", "--workspace", str(ws)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("backend: local  ([sandbox] backend)")


def test_a_truncated_audit_trail_is_said_so(tmp_path: Path) -> None:
    import os

    from guards.audit import AuditStore
    from guards.findings import Finding, GuardReport

    ws = workspace(tmp_path / "ws")
    (ws / ".labwarden").mkdir()
    path = ws / ".labwarden" / "audit.sqlite"
    with AuditStore(path) as store:
        for _ in range(200):
            store.record(GuardReport(findings=[Finding("paths.frozen", "block", "x", 1, "e",
                                                       "m")]), "x" * 5000, str(ws))
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.truncate(path, path.stat().st_size // 2)
    for args in (["list"], ["show", "150"], ["export", "--jsonl"], ["replay"]):
        proc = lw(["audit", *args, "--workspace", str(ws)], tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "corrupt or truncated" in proc.stderr
