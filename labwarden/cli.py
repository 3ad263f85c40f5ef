"""`labwarden` console entry: a dispatcher that imports only the command it runs.

Each command lives in the package that owns it, as a module exposing
`add_arguments(parser)` and `run(args) -> int`. Importing one command never imports
another's dependencies, so `labwarden guards check` stays far from torch and langgraph:
this module imports nothing beyond the standard library at load time.

Exit codes: 0 success or patch passed, 1 patch blocked or experiment rejected, 2 usage
or input error with a one-line reason, 70 an internal error (one line; set
LABWARDEN_DEBUG=1 for the traceback), 130 interrupted. A closed output pipe (`| head`)
ends the command quietly with 0, as Unix tools do.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

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

EXIT_INPUT = 2
EXIT_INTERNAL = 70
DEBUG_ENV = "LABWARDEN_DEBUG"


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (no usage block), exit 2.

    `add_subparsers` builds sub-parsers of the parser's own class, so every level of a
    command gets the same behaviour.
    """

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_INPUT)


def _command_parser(prog: str, name: str) -> tuple[argparse.ArgumentParser, object]:
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = OneLineParser(prog=f"{prog} {name}", description=help_text)
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
    lines = [f"usage: {prog} COMMAND [options]   ({prog} COMMAND --help for more)",
             f"       {prog} --version", "", "commands:"]
    for name, help_text in _available().items():
        lines.append(f"  {name:<10} {help_text}")
    return "\n".join(lines)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("labwarden")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None, prog: str = "labwarden") -> int:
    """Run one command; every failure becomes one line on stderr and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _dispatch(args, prog)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: list[str], prog: str) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(_usage(prog))
        return 0 if args else EXIT_INPUT
    if args[0] in ("-V", "--version"):
        print(f"{prog} {version()}")
        return 0
    name = args[0]
    if name not in _available():
        print(f"{prog}: error: unknown command {name!r}; run '{prog} --help' for the list.",
              file=sys.stderr)
        return EXIT_INPUT
    where = f"{prog} {name}"
    try:
        parser, module = _command_parser(prog, name)
        try:
            ns = parser.parse_args(args[1:])
        except SystemExit as e:  # --help (0) or a usage error already printed (2)
            return 0 if e.code in (0, None) else EXIT_INPUT
        return int(module.run(ns))  # type: ignore[attr-defined]
    except (BrokenPipeError, KeyboardInterrupt):
        raise
    except Exception as e:  # the catch-all: one line, never a traceback
        code, line = describe_error(e)
        print(f"{where}: error: {line}", file=sys.stderr)
        if os.environ.get(DEBUG_ENV):
            import traceback

            traceback.print_exc()
        return code


def describe_error(e: BaseException) -> tuple[int, str]:
    """(exit code, one-line reason) for an exception that escaped a command.

    Input errors say what to fix; the standard library's failures on bad input (a file
    that is a folder, bytes that are not UTF-8, a database that is not one) are input
    errors too. Anything else is a bug, still reported on one line.
    """
    from labwarden.errors import InputError

    if isinstance(e, InputError):
        return EXIT_INPUT, one_line(str(e))
    if isinstance(e, UnicodeDecodeError):
        return EXIT_INPUT, (f"input is not UTF-8 text (byte {e.start}: "
                            f"{e.object[e.start:e.start + 1]!r}).")
    if isinstance(e, OSError):
        name = e.filename if e.filename is not None else ""
        reason = e.strerror or type(e).__name__
        return EXIT_INPUT, one_line(f"{name}: {reason}." if name else f"{reason}.")
    if type(e).__module__ == "sqlite3":  # without importing sqlite3 here
        return EXIT_INPUT, one_line(f"a database is unreadable or corrupt ({e}).")
    hint = f" (set {DEBUG_ENV}=1 for the traceback)"
    return EXIT_INTERNAL, one_line(f"internal error: {type(e).__name__}: {e}") + hint


def one_line(text: str, limit: int = 400) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
