"""`labwarden guards check PATCH` and `labwarden guards list`.

Import-light on purpose: this module, `guards` and the rules import nothing heavier than
`unidiff` and `sqlite3`, so a check answers in well under 100 ms as a whole process.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{check,list}")
    check = sub.add_parser("check", help="check a unified diff; exit 0 passed, 1 blocked, "
                           "2 input error")
    check.add_argument("patch", help="the patch file ('-' reads standard input)")
    check.add_argument("--workspace", metavar="DIR", help="workspace root (default: the "
                       "nearest folder with labwarden.toml)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--no-audit", action="store_true", help="do not record the check in "
                       "the audit trail")
    check.add_argument("--experiment-id", help="recorded with the check")
    check.add_argument("--agent-role", help="recorded with the check")
    check.add_argument("--agent-model", help="recorded with the check")
    check.add_argument("--hypothesis", help="recorded with the check")
    lst = sub.add_parser("list", help="every active rule with its id, source and severity")
    lst.add_argument("--workspace", metavar="DIR", help="workspace root")
    lst.add_argument("--json", action="store_true", help="print the rules as JSON")


def read_patch_text(arg: str) -> str:
    """The patch as text; one-line InputErrors for a missing file, a folder, unreadable,
    binary or non-UTF-8 input (`-` reads standard input)."""
    from labwarden.inputs import read_text

    return read_text(arg, "patch file", stdin_dash=True)


def run(args: argparse.Namespace) -> int:
    from labwarden.config import load_config

    config = load_config(args.workspace)
    if args.action == "list":
        return _list(config, as_json=args.json)
    return _check(config, args)


def _check(config, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from guards.engine import check_patch
    from guards.findings import AttemptMeta
    from guards.patch import parse_patch
    from guards.settings import load_settings

    text = read_patch_text(args.patch)
    if len(text.encode("utf-8", "surrogatepass")) <= load_settings(config).max_patch_bytes:
        # Not a diff at all: exit 2, nothing recorded. An oversize one is refused unread.
        parse_patch(text)
    meta = AttemptMeta(args.experiment_id, args.agent_role, args.agent_model, args.hypothesis)
    audit = None
    if not args.no_audit:
        from guards.audit import AuditStore

        audit = AuditStore.for_workspace(config)
    try:
        report = check_patch(text, config, meta=meta, audit=audit)
    finally:
        if audit is not None:
            audit.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.render())
    return 1 if report.blocked else 0


def _list(config, *, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    from guards.engine import CORE_RULES, build_registry

    registry = build_registry(config)
    rows = [{"id": k, "severity": "block", "source": "core", "description": v}
            for k, v in CORE_RULES.items()]
    rows += [{"id": rid, "severity": e.rule.severity, "source": e.source,
              "description": e.rule.description} for rid, e in registry.rules.items()]
    errors = [{"source": e.source, "spec": e.spec, "error": e.message} for e in registry.errors]
    if as_json:
        print(json.dumps({"rules": rows, "errors": errors}, indent=2))
        return 0
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        print(f"{r['id']:<{width}}  {r['severity']:<6}  {r['source']:<10}  {r['description']}")
    for e in errors:
        print(f"ERROR {e['source']} ({e['spec']}): {e['error']} -- every patch is blocked "
              "until this is fixed.")
    return 0
