"""The report: ledger and audit trail in, one self-contained HTML page (and a PNG) out.

`load.py` is the only module that knows the SQLite schemas; `series.py` turns the data
into plot numbers; `svg.py`, `page.py` and `png.py` draw; `patchview.py` marks the lines
a finding points at.
"""

from agents.report.load import load_report
from agents.report.model import Attempt, Experiment, Finding, ReportData, Rule
from agents.report.page import render_html
from agents.report.png import write_png

__all__ = [
    "Attempt", "Experiment", "Finding", "ReportData", "Rule",
    "load_report", "render_html", "write_png",
]
