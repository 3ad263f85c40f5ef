"""`labwarden` console entry: a dispatcher that imports only the command it runs.

Each command lives in the package that owns it, as a module exposing
`add_arguments(parser)` and `run(args) -> int`. Importing one command never imports
another's dependencies, so `labwarden guards check` stays far from torch and langgraph.

Exit codes: 0 success or patch passed, 1 patch blocked or experiment rejected, 2 usage
or input error with a one-line reason.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help). Modules are imported lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("eval_frozen.prepare", "make data, tokenizer and seal for a profile (idempotent)"),
    "seal": ("eval_frozen.seal", "write or --verify the hash manifest of the frozen files"),
    "evaluate": ("eval_frozen.evaluate", "score an exported model with the frozen evaluator"),
    "baseline": ("labwarden.baseline_cli", "train and score the unmodified trainer (sandboxed)"),
    "guards": ("guards.cli", "check a patch against the diff guards; list rules"),
    "audit": ("guards.audit_cli", "read, export and replay the audit trail"),
    "sandbox": ("sandbox.cli", "build the sandbox image; show which backend runs"),
    "try": ("labwarden.try_cli", "run one experiment end to end: guards, sandbox, evaluator"),
    "run": ("agents.run_cli", "research unattended: plan, code, guard, review, run, decide"),
    "results": ("agents.results_cli", "export the ledger (results.tsv columns)"),
    "report": ("agents.report_cli", "write a self-contained HTML report of a workspace"),
}


def _command_parser(prog: str, name: str) -> tuple[argparse.ArgumentParser, object]:
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"{prog} {name}", description=help_text)
    module.add_arguments(parser)  # type: ignore[attr-defined]
    return parser, module


def _available() -> dict[str, str]:
    """Commands whose module exists (later issues add modules as they land)."""
    from importlib.util import find_spec

    out = {}
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            if find_spec(module_name) is not None:
                out[name] = help_text
        except ModuleNotFoundError:
            pass
    return out


def _usage(prog: str) -> str:
    lines = [f"usage: {prog} COMMAND [options]   ({prog} COMMAND --help for more)", "", "commands:"]
    for name, help_text in _available().items():
        lines.append(f"  {name:<10} {help_text}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = "labwarden") -> int:
    from labwarden.errors import InputError

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage(prog))
        return 0 if args else 2
    name = args[0]
    if name not in _available():
        print(f"{prog}: error: unknown command {name!r}; run '{prog} --help' for the list.",
              file=sys.stderr)
        return 2
    parser, module = _command_parser(prog, name)
    try:
        ns = parser.parse_args(args[1:])
    except SystemExit as e:  # argparse already printed the one-line reason
        return 0 if e.code == 0 else 2
    try:
        return int(module.run(ns))  # type: ignore[attr-defined]
    except InputError as e:
        print(f"{prog} {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog} {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
