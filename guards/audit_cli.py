"""`labwarden audit list|show|export|replay`: read the audit trail of guard checks.

Read-only: none of these commands creates or writes the database.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
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


SHOW_PATCH_LINES = 400
"""`audit show` prints at most this many lines of a patch (`--json` has the stored text)."""
SHOW_FINDINGS = 100
REASON_WIDTH = 60


def run(args: argparse.Namespace) -> int:
    from guards.audit import AuditStore, default_path
    from labwarden.config import load_config

    config = load_config(args.workspace)
    if getattr(args, "limit", None) is not None and args.limit < 0:
        raise InputError(f"--limit must be >= 0 (0: no limit), but got {args.limit}.")
    out_path = None
    if args.action == "export" and args.out:
        from labwarden.inputs import check_output

        out_path = check_output(args.out, "export")
    path = default_path(config.state_path)
    if not path.exists():
        if args.action == "show":
            raise InputError(f"no audit entry with id {args.id}: {path} does not exist.")
        if args.action == "list" and args.rule:
            _check_rule(args.rule, config, set())
        if getattr(args, "json", False):
            print("[]")
        else:
            print(f"no audit trail at {path} (nothing checked yet).", file=sys.stderr)
        return 0
    with AuditStore(path, readonly=True) as store:
        try:
            if args.action == "list":
                return _list(store, config, args)
            if args.action == "show":
                return _show(store, args)
            if args.action == "export":
                return _export(store, args, out_path)
            return _replay(store, config, args)
        except sqlite3.DatabaseError as e:
            raise InputError(f"{path}: the audit trail is corrupt or truncated ({e}); move it "
                             "aside to start a new one.") from None


def _check_rule(rule: str, config: Any, recorded: set[str]) -> None:
    """`--rule` names a rule that exists (active today or recorded), or a prefix of one."""
    from guards.engine import CORE_RULES, build_registry

    known = set(CORE_RULES) | set(build_registry(config).rules) | recorded
    if rule.startswith("runtime."):
        return  # the sandbox's kinds; a kind never seen yet is still a fair question
    if rule.endswith("*"):
        if any(k.startswith(rule[:-1]) for k in known):
            return
    elif rule in known:
        return
    import difflib

    close = difflib.get_close_matches(rule, sorted(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise InputError(f"--rule {rule!r}: no such rule (not active, not in the trail){hint} "
                     "'labwarden guards list' shows the rules.")


def _list(store: Any, config: Any, args: argparse.Namespace) -> int:
    if args.rule:
        _check_rule(args.rule, config, store.rule_ids())
    entries = store.list(verdict=args.verdict, rule=args.rule, experiment_id=args.experiment,
                         kind=args.kind, limit=args.limit)
    if args.json:
        print(json.dumps([_summary(e) for e in entries], indent=2))
        return 0
    if not entries:
        print("no attempts match." if store.count() else "the audit trail is empty.",
              file=sys.stderr)
        return 0
    print(f"{'ID':>6}  {'TIME (UTC)':<19}  {'VERDICT':<7}  {'ROLE':<9}  {'EXPERIMENT':<26}  "
          f"{'RULES':<24}  {'FILE':<28}  REASON")
    for e in entries:
        blocking = [f for f in e.findings if f.severity == "block"] or e.findings
        rules = ",".join(sorted({f.rule_id for f in blocking})) or "-"
        first = blocking[0] if blocking else None
        where = "-"
        if first is not None and first.file:
            where = f"{first.file}:{first.line}" if first.line else first.file
        reason = _first_line(first.message) if first is not None else "-"
        print(f"{e.id:>6}  {e.created_at[:19].replace('T', ' '):<19}  {e.verdict:<7}  "
              f"{_cell(e.meta.agent_role or '-', 9)}  {_cell(e.meta.experiment_id or '-', 26)}  "
              f"{_cell(rules, 24)}  {_cell(where, 28, keep_end=True)}  {reason}")
    return 0


def _cell(text: str, width: int, *, keep_end: bool = False) -> str:
    """`text` in a column of `width`, cut with `~` (at the start for paths: the file name
    and line are the useful end)."""
    if len(text) > width:
        text = "~" + text[-(width - 1):] if keep_end else text[: width - 1] + "~"
    return text.ljust(width)


def _first_line(text: str) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else "-"
    return line if len(line) <= REASON_WIDTH else line[: REASON_WIDTH - 3] + "..."


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
    for f in e.findings[:SHOW_FINDINGS]:
        print("  " + f.render().replace("\n", "\n  "))
    if len(e.findings) > SHOW_FINDINGS:
        print(f"  ... {len(e.findings) - SHOW_FINDINGS} more finding(s) cut "
              f"(audit show {e.id} --json has them all)")
    if e.log_tail:
        print("log tail:\n" + e.log_tail)
    if e.patch:
        size = f"{e.patch_bytes:,} bytes" if e.patch_bytes is not None else "size not recorded"
        print(f"patch ({size}, sha256 {e.patch_sha256[:16]}):")
        lines = mark_patch(e.patch, e.findings).splitlines()
        print("\n".join(lines[:SHOW_PATCH_LINES]))
        cut = []
        if len(lines) > SHOW_PATCH_LINES:
            cut.append(f"{len(lines) - SHOW_PATCH_LINES:,} more line(s) of the stored text "
                       f"not shown (audit show {e.id} --json prints it)")
        if e.patch_cut:
            cut.append(f"the trail stores only the first {len(e.patch.encode()):,} bytes of "
                       f"this {e.patch_bytes:,}-byte patch")
        if cut:
            print("... cut: " + "; ".join(cut) + ".")
    return 0


def _export(store: Any, args: argparse.Namespace, out_path: Path | None) -> int:
    if out_path is not None:
        try:
            with out_path.open("w", encoding="utf-8") as fh:
                n = store.export_jsonl(fh)
        except OSError as e:
            raise InputError(f"cannot write {args.out}: {e.strerror}.") from None
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
        old_rules = {f.rule_id for f in e.findings if f.severity == "block"}
        if e.patch_cut:
            # Only an excerpt is stored: the whole patch cannot be re-checked, but its size
            # alone decides it under today's limit (the check refuses before parsing).
            now, new_rules = _replay_by_size(e, config, old_rules)
        else:
            report = check_patch(e.patch, config, registry=registry)
            now = report.verdict
            new_rules = {f.rule_id for f in report.findings if f.severity == "block"}
        results.append({
            "id": e.id, "was": e.verdict, "now": now,
            "changed": e.verdict != now,
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
        print(f"{r['id']:>6}  {mark}  {r['was']:<7} -> {r['now']:<8}{extra}")
    print(f"{len(results)} replayed, {len(changed)} verdict(s) changed.")
    return 0


def _replay_by_size(e: Any, config: Any, old_rules: set[str]) -> tuple[str, set[str]]:
    """(verdict, blocking rules) of a patch stored as an excerpt: blocked by its size when
    it is over today's limit, else 'unknown' (raised limit: the whole text is gone)."""
    from guards.settings import load_settings

    if e.patch_bytes > load_settings(config).max_patch_bytes:
        return "blocked", {"patch.size"}
    return "unknown", set(old_rules)
