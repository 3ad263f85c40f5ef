"""The report opened in a real headless Chromium: it renders, runs its script cleanly,
fetches nothing, shows the plot and the blocked attempts, and never runs patch text."""

from __future__ import annotations

import sys
from pathlib import Path

from agents.cli import main


def _report(ws: Path, out: Path) -> None:
    assert main(["report", "--workspace", str(ws), "--out", str(out)]) == 0


def test_report_renders_cleanly_in_chromium(night_workspace, browser, artifacts, tmp_path):
    page = tmp_path / "report.html"
    _report(night_workspace, page)
    browser.goto(page.as_uri())

    assert browser.console_errors() == []
    # Self-contained: the only thing loaded is the file itself.
    assert [u for u in browser.requested_urls() if u != page.as_uri()] == []

    # The patch text `<script>document.title='pwned'</script>` must not have run or parsed.
    assert browser.evaluate("document.title") == "labwarden report: night-of-research"
    assert browser.evaluate("document.scripts.length") == 1
    assert browser.evaluate("document.querySelectorAll('img').length") == 0
    assert "<script>document.title='pwned'</script>" in browser.evaluate("document.body.innerText")

    # The plot is on screen, with a point per experiment and the running best drawn.
    box = browser.evaluate(
        "(() => { const r = document.getElementById('progress-plot').getBoundingClientRect();"
        " return [r.width, r.height]; })()")
    assert box[0] > 600 and box[1] > 200
    assert browser.evaluate("document.querySelectorAll('#progress-plot .pt[data-x]').length") == 16
    kept = browser.evaluate("document.querySelectorAll('#progress-plot .pt-keep[data-x]').length")
    assert kept == 3
    assert browser.evaluate("document.querySelector('#progress-plot polyline.best') !== null")
    assert browser.evaluate("document.querySelector('#progress-plot > rect.band') !== null")

    # Blocked attempts are listed, grouped by rule, with the offending line marked.
    rules = browser.evaluate(
        "Array.from(document.querySelectorAll('#attempts .rule')).map(r => r.dataset.rule)")
    # Groups by blocking rule (a note never makes a group); the reviewer's rejection comes
    # from the ledger, the others from the audit trail, the CLI check included.
    assert sorted(rules) == ["introspection.frames", "metric.spoof", "paths.protected", "reviewer",
                             "runtime.evaluator", "time.budget"]
    marked = browser.evaluate(
        "Array.from(document.querySelectorAll("
        "'.rule[data-rule=\"time.budget\"] .ln.mark')).map(l => l.textContent)")
    assert marked == ['41+TIME_BUDGET = 10 * float(os.environ.get("LABWARDEN_TIME_BUDGET", "20"))']

    # The experiments table sorts by val_bpb when its header is clicked.
    browser.evaluate("document.querySelectorAll('#experiments-table th')[4].click()")
    first = browser.evaluate(
        "document.querySelector('#experiments-table tbody tr td:nth-child(2)').textContent")
    assert first == "exp-012"  # 2.3871, the best
    browser.evaluate("document.querySelectorAll('#experiments-table th')[4].click()")
    first = browser.evaluate(
        "document.querySelector('#experiments-table tbody tr td:nth-child(2)').textContent")
    assert first == "exp-005"  # 3.9, the diverged run
    browser.evaluate("document.querySelectorAll('#experiments-table th')[0].click()")
    assert browser.console_errors() == []

    shot = artifacts / "report-night.png"
    browser.screenshot(shot)
    assert shot.stat().st_size > 50_000
    print(f"screenshot: {shot}", file=sys.stderr)
