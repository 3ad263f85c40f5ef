"""`labwarden audit list|show|export|replay`: read the audit trail of guard checks.

Read-only: none of these commands creates or writes the database.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from labwarden.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True,
                                metavar="{list,show,export,replay}")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--workspace", metavar="DIR", help="workspace root")

    lst = sub.add_parser("list", help="recorded checks, newest first")
    common(lst)
    lst.add_argument("--verdict", choices=("passed", "blocked"))
    lst.add_argument("--rule", metavar="ID", help="only attempts with a finding of this rule "
                     "(a trailing * matches a prefix)")
    lst.add_argument("--experiment", metavar="ID")
    lst.add_argument("--kind", choices=("patch", "runtime"))
    lst.add_argument("--limit", type=int, default=50)
    lst.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one attempt: its findings and the patch with the "
                          "offending lines marked")
    common(show)
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    exp = sub.add_parser("export", help="every attempt as JSON lines")
    common(exp)
    exp.add_argument("--jsonl", action="store_true", required=True,
                     help="JSON lines, one attempt per line (the only format)")
    exp.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    rep = sub.add_parser("replay", help="re-check stored patches against today's rules and "
                         "show which verdicts change")
    common(rep)
    rep.add_argument("--limit", type=int, default=None)
    rep.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from guards.audit import AuditStore, default_path
    from labwarden.config import load_config

    config = load_config(args.workspace)
    path = default_path(config.state_path)
    if not path.is_file():
        if args.action == "show":
            raise InputError(f"no audit entry with id {args.id}: {path} does not exist.")
        if getattr(args, "json", False):
            print("[]")
        else:
            print(f"no audit trail at {path} (nothing checked yet).", file=sys.stderr)
        return 0
    with AuditStore(path) as store:
        if args.action == "list":
            return _list(store, args)
        if args.action == "show":
            return _show(store, args)
        if args.action == "export":
            return _export(store, args)
        return _replay(store, config, args)


def _list(store: Any, args: argparse.Namespace) -> int:
    entries = store.list(verdict=args.verdict, rule=args.rule, experiment_id=args.experiment,
                         kind=args.kind, limit=args.limit)
    if args.json:
        print(json.dumps([_summary(e) for e in entries], indent=2))
        return 0
    for e in entries:
        rules = ",".join(sorted({f.rule_id for f in e.findings if f.severity == "block"})) or "-"
        who = e.meta.experiment_id or "-"
        print(f"{e.id:>6}  {e.created_at[:19]}  {e.kind:<7}  {e.verdict:<7}  {who:<12}  {rules}")
    return 0


def _summary(e: Any) -> dict[str, Any]:
    d = e.to_dict()
    d.pop("patch")
    return d


def mark_patch(patch: str, findings: list[Any]) -> str:
    """The patch text with `>>` before every added line a finding points at."""
    where: dict[tuple[str, int], list[str]] = {}
    for f in findings:
        if f.line:
            where.setdefault((f.file, f.line), []).append(f.rule_id)
    out, current, new_no = [], "", 0
    for line in patch.splitlines():
        if line.startswith("+++ "):
            name = line[4:].split("\t")[0].strip()
            current = name.split("/", 1)[1] if "/" in name else name
        elif line.startswith("@@"):
            try:
                new_no = int(line.split("+")[1].split(",")[0].split(" ")[0])
            except (IndexError, ValueError):
                new_no = 0
            out.append(f"   {line}")
            continue
        elif line.startswith("+") or line.startswith(" "):
            rules = where.get((current, new_no))
            new_no += 1
            if rules:
                out.append(f">> {line}    <-- {', '.join(sorted(set(rules)))}")
                continue
        out.append(f"   {line}")
    return "\n".join(out)


def _show(store: Any, args: argparse.Namespace) -> int:
    e = store.get(args.id)
    if args.json:
        print(json.dumps(e.to_dict(), indent=2))
        return 0
    print(f"attempt {e.id}  {e.created_at}  {e.kind}  {e.verdict}  workspace {e.workspace}")
    for label, value in (("experiment", e.meta.experiment_id), ("agent", e.meta.agent_role),
                         ("model", e.meta.agent_model), ("hypothesis", e.meta.hypothesis)):
        if value:
            print(f"{label}: {value}")
    print(f"findings ({len(e.findings)}):")
    for f in e.findings:
        print("  " + f.render().replace("\n", "\n  "))
    if e.log_tail:
        print("log tail:\n" + e.log_tail)
    if e.patch:
        print("patch:")
        print(mark_patch(e.patch, e.findings))
    return 0


def _export(store: Any, args: argparse.Namespace) -> int:
    if args.out:
        with Path(args.out).open("w", encoding="utf-8") as fh:
            n = store.export_jsonl(fh)
        print(f"exported {n} attempt(s) to {args.out}", file=sys.stderr)
    else:
        store.export_jsonl(sys.stdout)
    return 0


def _replay(store: Any, config: Any, args: argparse.Namespace) -> int:
    from guards.engine import build_registry, check_patch

    registry = build_registry(config)
    results = []
    for e in store.iter_all():
        if e.kind != "patch":
            continue
        report = check_patch(e.patch, config, registry=registry)
        old_rules = {f.rule_id for f in e.findings if f.severity == "block"}
        new_rules = {f.rule_id for f in report.findings if f.severity == "block"}
        results.append({
            "id": e.id, "was": e.verdict, "now": report.verdict,
            "changed": e.verdict != report.verdict,
            "added_rules": sorted(new_rules - old_rules),
            "dropped_rules": sorted(old_rules - new_rules),
        })
        if args.limit and len(results) >= args.limit:
            break
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    changed = [r for r in results if r["changed"]]
    for r in results:
        mark = "CHANGED" if r["changed"] else "same   "
        extra = ""
        if r["added_rules"]:
            extra += " +" + ",".join(r["added_rules"])
        if r["dropped_rules"]:
            extra += " -" + ",".join(r["dropped_rules"])
        print(f"{r['id']:>6}  {mark}  {r['was']:<7} -> {r['now']:<7}{extra}")
    print(f"{len(results)} replayed, {len(changed)} verdict(s) changed.")
    return 0
