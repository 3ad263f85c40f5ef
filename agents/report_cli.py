"""`labwarden report`: a self-contained HTML report of a workspace, and the plot as PNG.

Reads the ledger and the audit trail read-only, so it can run beside a `labwarden run`
that is still writing them. No ledger and no audit trail at all is an input error (exit
2: most likely the wrong workspace); an existing but empty ledger gives a valid page that
says nothing has been recorded yet, so a report regenerated in a loop from the start of a
run always works.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from labwarden.config import load_config
from labwarden.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None,
                        help="HTML file to write (default: report.html unless only --png is given)")
    parser.add_argument("--png", type=Path, default=None,
                        help="also write the progress plot alone as a PNG")
    parser.add_argument("--profile", default=None,
                        help="profile to show (default: the one of the latest experiment)")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="workspace root (default: nearest folder with labwarden.toml)")


def run(args: argparse.Namespace) -> int:
    from agents.report import load_report, render_html, write_png

    config = load_config(args.workspace)
    data = load_report(config, profile=args.profile)
    out: Path | None = args.out
    if out is None and args.png is None:
        out = Path("report.html")
    for path in (out, args.png):
        if path is not None and not path.resolve().parent.is_dir():
            raise InputError(f"cannot write {path}: folder {path.resolve().parent} does not exist.")
    if out is not None:
        out.write_text(render_html(data), encoding="utf-8")
        print(f"wrote {out} ({len(data.experiments)} experiments, "
              f"{len(data.attempts)} blocked or rejected attempts)")
    if args.png is not None:
        write_png(data, args.png)
        print(f"wrote {args.png}")
    return 0
