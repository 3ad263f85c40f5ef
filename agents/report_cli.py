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
    from labwarden.inputs import check_output, write_text

    config = load_config(args.workspace)
    if args.profile is not None:
        from labwarden.profiles import check_profile

        check_profile(args.profile)
    out: Path | None = args.out
    if out is None and args.png is None:
        out = Path("report.html")
    for path, what in ((out, "report"), (args.png, "plot")):
        if path is not None:
            check_output(path, what)
    data = load_report(config, profile=args.profile)
    if out is not None:
        write_text(out, render_html(data), "report")
        print(f"wrote {out} ({len(data.experiments)} experiments, "
              f"{len(data.attempts)} attempts stopped)")
    if args.png is not None:
        write_png(data, args.png)
        print(f"wrote {args.png}")
    return 0
