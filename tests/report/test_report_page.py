"""The report's pieces without a browser: escaping, self-containment, the plot numbers,
line marking, the CLI's errors, and reading a ledger another process is still writing."""

from __future__ import annotations

import re
import sqlite3
import struct
import subprocess
import sys
import textwrap
from html import escape
from pathlib import Path

from agents.cli import main
from agents.ledger import Ledger, ledger_path
from agents.report import Experiment, Finding, ReportData, load_report, render_html
from agents.report.patchview import mark, parse
from agents.report.series import build_series
from labwarden.config import load_config


def _html(ws: Path) -> str:
    return render_html(load_report(load_config(ws)))


def test_patch_and_agent_text_are_escaped(night_workspace):
    page = _html(night_workspace)
    # One script element: ours. The patch's and the hypothesis's show as text.
    assert len(re.findall(r"<script\b", page)) == 1
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_page_loads_nothing_from_anywhere(night_workspace):
    page = _html(night_workspace)
    # The only URL is the SVG namespace, which is a name, not a fetch.
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"\b(src|href)=\"(?!#)", page)
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page


def test_page_lists_experiments_attempts_and_seal(night_workspace):
    page = _html(night_workspace)
    assert page.count('<tr class="st-') == 16
    # Four guard blocks and a runtime refusal from the audit trail, one reviewer rejection
    # from the ledger; the audit's passed check of exp-001 is not an attempt to show.
    assert page.count('class="attempt"') == 6
    assert 'data-audit-id="1"' not in page
    assert 'data-rule="time.budget"' in page
    assert 'data-rule="reviewer"' in page
    assert "No audit trail" not in page
    # The reviewer's own words, not just the status line.
    assert "the hypothesis names validation data" in page
    assert "5e1a" + "0" * 56 + "c0de" in page
    assert "matches seal.json" in page
    assert "10,872" in page  # LLM tokens summed from the ledger's token columns


def test_ledger_alone_still_lists_every_stop(ledger_only_workspace):
    data = load_report(load_config(ledger_only_workspace))
    assert any("No audit trail" in n for n in data.notes)
    groups = {f.rule for a in data.attempts for f in a.findings}
    assert groups == {"time.budget", "metric.spoof", "introspection.frames", "reviewer",
                      "evaluator-probe"}
    probe = next(a for a in data.attempts if a.experiment_id == "exp-011")
    assert probe.verdict == "rejected" and "is_causal=False" in probe.patch


def test_one_profile_at_a_time(night_workspace, tmp_path):
    """Metrics of different profiles do not compare: the latest profile is shown, the
    others are named, and --profile picks one."""
    led = Ledger(ledger_path(night_workspace / ".labwarden"))
    led.start_run("r9", "t9", {})
    led.open_experiment("gpu-1", run_id="r9", kind="baseline", profile="gpu", agent="tuner",
                        parent=None)
    led.store_result("gpu-1", {"status": "ok", "val_bpb": 0.998, "metrics": None})
    led.finish("gpu-1", "keep", "baseline measurement")
    led.finish_run("r9", "done")
    led.close()
    data = load_report(load_config(night_workspace))
    assert [e.id for e in data.experiments] == ["gpu-1"] and data.baseline == 0.998
    assert any("the ledger also holds tiny" in n for n in data.notes)
    out = tmp_path / "tiny.html"
    assert main(["report", "--workspace", str(night_workspace), "--profile", "tiny",
                 "--out", str(out)]) == 0
    page = out.read_text()
    assert page.count('<tr class="st-') == 16 and "gpu-1" not in page
    assert "also holds gpu" in page
    assert "has not finished" not in page  # every run in this ledger finished


def test_active_guards_come_from_the_guards_registry(night_workspace):
    data = load_report(load_config(night_workspace))
    ids = {r.id for r in data.rules}
    assert "guards.error" in ids and "patch.malformed" in ids  # the engine's own findings
    assert len(ids) > 10  # and the built-in rules, each with what it stops
    assert all(r.description for r in data.rules)
    assert data.rules_source.startswith("Active today")
    # A rule group is explained by the rule's own sentence, not by one finding's message.
    budget = next(r for r in data.rules if r.id == "time.budget")
    page = render_html(data)
    group = page[page.index('data-rule="time.budget"'):]
    assert group[:2000].count(f'<p class="explain">{escape(budget.description)}</p>') == 1


def test_running_best_follows_kept_experiments_only():
    data = ReportData(workspace="w", baseline=2.5, noise=0.01, experiments=[
        Experiment("a", "keep", value=2.4),
        Experiment("b", "discard", value=2.3),  # better but discarded: the best stays
        Experiment("c", "crash", value=1.0),     # a crash's number is void
        Experiment("d", "keep", value=2.35),
        Experiment("e", "blocked"),
        Experiment("f", "discard", value=40.0),  # diverged: clipped, does not set the scale
    ])
    s = build_series(data)
    assert s.best_steps == [(0, 2.5), (1, 2.4), (4, 2.35), (6, 2.35)]
    assert [p.y for p in s.points] == [2.4, 2.3, None, 2.35, None, 40.0]
    assert [p.clipped for p in s.points] == [False, False, False, False, False, True]
    assert 2.51 < s.y_hi < 3.2 and s.y_lo < 2.3  # 40 would flatten everything else
    assert s.band == (2.49, 2.51)


def test_running_best_when_maximizing():
    data = ReportData(workspace="w", direction="maximize", experiments=[
        Experiment("a", "baseline", value=0.5), Experiment("b", "keep", value=0.6),
        Experiment("c", "keep", value=0.55)])
    assert build_series(data).best_steps == [(1, 0.5), (2, 0.6), (3, 0.6)]


PATCH = textwrap.dedent("""\
    --- a/trainer/train.py
    +++ b/trainer/train.py
    @@ -10,3 +10,4 @@
     A = 1
    -B = 2
    +B = 3
    +C = 4
     D = 5
    --- a/trainer/other.py
    +++ b/trainer/other.py
    @@ -1,2 +1,1 @@
    -import gc
     x = 1
""")


def test_findings_mark_added_removed_and_file_lines():
    lines = parse(PATCH)
    kinds = [ln.kind for ln in lines]
    # The second file's "---" header is a header, not a removed line of the first hunk.
    assert kinds == ["file", "file", "hunk", "ctx", "del", "add", "add", "ctx",
                     "file", "file", "hunk", "del", "ctx"]
    findings = [
        Finding("r.add", "block", "trainer/train.py", 12, "C = 4", ""),
        Finding("r.del", "block", "trainer/other.py", 1, "import gc", ""),
        Finding("r.file", "block", "b/trainer/other.py", None, "", ""),
        Finding("r.none", "block", "trainer/train.py", 99, "", ""),
        # The guards' way of pointing at a line the patch took away: its text, new numbering.
        Finding("r.gone", "block", "trainer/train.py", 11, "(removed) B = 2", ""),
    ]
    marked = {ln.text: ln.notes for ln in mark(lines, findings) if ln.marked}
    assert marked == {
        "+C = 4": ("r.add",),
        "-B = 2": ("r.gone",),
        # Line 1 of the new other.py is the context line "x = 1"; a finding on an added or
        # context line wins over the old file's line 1.
        " x = 1": ("r.del",),
        "--- a/trainer/other.py": ("r.file",),
        "+++ b/trainer/other.py": ("r.file",),
    }


def test_malformed_patch_never_raises():
    junk = "@@ nonsense @@\n+++\n---\n@@ -x +y @@\n+<b>\n\x00binary"
    lines = mark(parse(junk), [Finding("r", "block", None, 3, "", "")])
    assert [ln.text for ln in lines] == junk.splitlines()


def test_no_state_at_all_is_an_input_error(tmp_path, capsys):
    (tmp_path / "labwarden.toml").write_text("[workspace]\nname='empty'\n")
    assert main(["report", "--workspace", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing to report" in err
    assert not (tmp_path / "r.html").exists()
    assert not (tmp_path / ".labwarden").exists()  # a reader creates nothing


def test_corrupt_ledger_is_an_input_error(tmp_path, capsys):
    (tmp_path / "labwarden.toml").write_text("[workspace]\nname='bad'\n")
    (tmp_path / ".labwarden").mkdir()
    (tmp_path / ".labwarden" / "ledger.sqlite").write_bytes(b"not a database" * 100)
    assert main(["report", "--workspace", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "not a readable SQLite database" in capsys.readouterr().err


def test_empty_ledger_gives_a_page_that_says_so(tmp_path):
    (tmp_path / "labwarden.toml").write_text("[workspace]\nname='fresh'\n")
    Ledger(ledger_path(tmp_path / ".labwarden")).close()
    out, png = tmp_path / "r.html", tmp_path / "p.png"
    assert main(["report", "--workspace", str(tmp_path), "--out", str(out),
                 "--png", str(png)]) == 0
    page = out.read_text()
    assert "No experiments recorded yet" in page
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_is_the_plot_alone(night_workspace, tmp_path):
    png = tmp_path / "progress.png"
    assert main(["report", "--workspace", str(night_workspace), "--png", str(png)]) == 0
    raw = png.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", raw[16:24])
    assert (width, height) == (1600, 700)
    assert len(raw) > 30_000  # points, lines and labels, not a blank canvas
    assert not (tmp_path / "report.html").exists()


def test_missing_output_folder_is_an_input_error(night_workspace, tmp_path, capsys):
    out = tmp_path / "nope" / "r.html"
    assert main(["report", "--workspace", str(night_workspace), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


WRITER = textwrap.dedent("""\
    import sys, time
    from agents.ledger import Ledger
    led = Ledger(sys.argv[1])
    led.start_run("live", "t", {})
    led.open_experiment("live-1", run_id="live", kind="experiment", profile="tiny",
                        agent="tuner", parent=None)
    led.update("live-1", hypothesis="still training")
    led._db.execute("BEGIN IMMEDIATE")  # hold the write lock, as a writer mid-transaction
    led._db.execute("UPDATE experiments SET hypothesis='uncommitted' WHERE id='live-1'")
    print("ready", flush=True)
    sys.stdin.readline()
    led._db.rollback()
    led.close()
""")


def test_reads_a_ledger_another_process_is_writing(night_workspace, tmp_path):
    """A run in progress holds the write lock; the report still reads the committed rows
    and leaves the ledger exactly as it found it."""
    state = night_workspace / ".labwarden"
    path = ledger_path(state)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        before = {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()}
        out = tmp_path / "live.html"
        done = subprocess.run(
            [sys.executable, "-m", "agents.cli", "report", "--workspace", str(night_workspace),
             "--out", str(out)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        page = out.read_text()
        assert "still training" in page and "uncommitted" not in page
        assert "Run live has not finished" in page
        assert '<span class="badge b-planned">planned</span>' in page
        # Drawn as under way on the no-score lane, not as one more blocked attempt.
        assert re.search(r'<circle class="pt pt-planned" data-x="17"', page)
        after = {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()}
        # Every file that was there is byte for byte the same. SQLite itself may add the
        # sidecars of a WAL database nobody had open (the audit trail here): an empty -wal
        # and the -shm index, both of which the next writer simply reuses.
        assert {k: after[k] for k in before} == before
        new = set(after) - set(before)
        assert new <= {"audit.sqlite-wal", "audit.sqlite-shm"}
        assert after.get("audit.sqlite-wal", b"") == b""
    finally:
        writer.stdin.write("\n")
        writer.stdin.flush()
        writer.wait(timeout=30)
    # And the writer's transaction was not disturbed by the reader.
    db = sqlite3.connect(path)
    assert db.execute("SELECT hypothesis FROM experiments WHERE id='live-1'").fetchone() == (
        "still training",)
    db.close()
