"""`labwarden results`: the ledger as autoresearch's results.tsv, or a readable table.

Reads the ledger read-only, so it works while a run is writing it.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tsv", action="store_true",
                        help="results.tsv columns: commit, val_bpb, memory_gb, status, description")
    parser.add_argument("--profile", help="only this profile (default: every profile)")
    parser.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument("--workspace", metavar="DIR", help="workspace root (default: nearest "
                        "folder with labwarden.toml)")


def run(args: argparse.Namespace) -> int:
    import sqlite3

    from agents.ledger import Ledger, ledger_path
    from agents.summary import one_line, to_tsv, tsv_rows
    from labwarden.config import load_config
    from labwarden.errors import InputError
    from labwarden.inputs import check_database_file, check_output, write_text

    config = load_config(args.workspace)
    if args.profile is not None:
        from labwarden.profiles import check_profile

        check_profile(args.profile)
    if args.out:
        check_output(args.out, "results")
    path = ledger_path(config.state_path)
    if not path.exists():
        raise InputError(f"no ledger at {path}; run 'labwarden run' first.")
    check_database_file(path, "ledger")
    try:
        ledger = Ledger(path, readonly=True)
        try:
            if args.tsv:
                text = to_tsv(tsv_rows(ledger, args.profile))
            else:
                rows = ledger.experiments(profile=args.profile)
                w = max([10, *(len(r["id"]) for r in rows)])
                lines = [f"{'id':<{w}} {'status':<9} {'val_bpb':>8} {'margin':>8}  hypothesis"]
                for r in rows:
                    val = "-" if r["val_bpb"] is None else f"{r['val_bpb']:.4f}"
                    margin = "-" if r["margin"] is None else f"{r['margin']:+.4f}"
                    lines.append(f"{r['id']:<{w}} {r['status']:<9} {val:>8} {margin:>8}  "
                                 f"{one_line(r['hypothesis'], 70)}")
                text = "\n".join(lines) + "\n"
        finally:
            ledger.close()
    except sqlite3.DatabaseError as e:
        raise InputError(f"{path}: the ledger is corrupt or truncated ({e}).") from None
    if args.out:
        write_text(args.out, text, "results")
    else:
        sys.stdout.write(text)
    return 0
