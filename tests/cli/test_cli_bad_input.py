"""Every command of the dispatcher answers bad input with one line on stderr, never a
traceback: one test per class of bad input, each running EVERY command in `COMMANDS` as a
real process (`python -m labwarden ...`).

Each class is a table with one entry per command; a test checks the table covers the
dispatcher's table, so a new command cannot land without saying how it meets each class.
Nothing here trains: every invocation fails (or prints) before a sandbox would start.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from clikit import BAD_PATCH, DATA, GOOD_PATCH, GOOD_TOML, assert_one_line, lw, workspace

from labwarden.cli import COMMANDS

# Each case: command -> a function of the scratch folder giving (argv, allowed exit codes).
Case = Callable[[Path], tuple[list[str], tuple[int, ...]]]


def _bad_bytes_cases() -> dict[str, Case]:
    def bad_ws(tmp: Path) -> str:
        return str(workspace(tmp / "badws", b"# caf\xe9 in a comment\n" + GOOD_TOML.encode()))

    def bad_patch(tmp: Path) -> str:
        (tmp / "bad.patch").write_bytes(BAD_PATCH)
        return str(tmp / "bad.patch")

    def src(tmp: Path) -> str:
        (tmp / "src").mkdir()
        (tmp / "src" / "a.txt").write_bytes(b"caf\xe9 " * 100)
        return f"local:{tmp / 'src'}"

    def seal(tmp: Path) -> str:
        (tmp / "d").mkdir()
        (tmp / "d" / "seal.json").write_bytes(b'{"version": "\xff"}')
        return str(tmp / "d")

    def model(tmp: Path) -> str:
        (tmp / "model.pt2").write_bytes(b"\xff\xfe not a model")
        return str(tmp / "model.pt2")

    return {
        "prepare": lambda t: (["prepare", "--source", src(t), "--data-dir", str(t / "out")],
                              (2,)),
        "seal": lambda t: (["seal", "--verify", "--data-dir", seal(t)], (2,)),
        "evaluate": lambda t: (["evaluate", "--model", model(t), "--data-dir",
                                str(DATA / "tiny"), "--out", str(t / "m.json")], (2,)),
        "baseline": lambda t: (["baseline", "--workspace", bad_ws(t)], (2,)),
        "guards": lambda t: (["guards", "check", bad_patch(t), "--no-audit", "--workspace",
                              str(workspace(t / "ws"))], (2,)),
        "audit": lambda t: (["audit", "list", "--workspace", bad_ws(t)], (2,)),
        "sandbox": lambda t: (["sandbox", "doctor", "--workspace", bad_ws(t)], (2,)),
        "try": lambda t: (["try", bad_patch(t), "--workspace", str(workspace(t / "ws"))], (2,)),
        "run": lambda t: (["run", "--workspace", bad_ws(t)], (2,)),
        "results": lambda t: (["results", "--workspace", bad_ws(t)], (2,)),
        "report": lambda t: (["report", "--workspace", bad_ws(t), "--out",
                              str(t / "r.html")], (2,)),
    }


def _with_ledger(tmp: Path) -> Path:
    ws = workspace(tmp / "ws")
    (ws / ".labwarden").mkdir()
    return ws


def _bad_output_cases() -> dict[str, Case]:
    def ws_with_stores(tmp: Path) -> Path:
        """A workspace whose ledger and audit trail exist, so the output step is reached."""
        import sqlite3

        ws = _with_ledger(tmp)
        from guards.audit import AuditStore

        AuditStore(ws / ".labwarden" / "audit.sqlite").close()
        db = sqlite3.connect(ws / ".labwarden" / "ledger.sqlite")
        db.close()
        return ws

    def a_file(tmp: Path) -> str:
        (tmp / "plain").write_text("a file, not a folder\n")
        return str(tmp / "plain")

    return {
        # No output file option: a folder option given a file, or a missing parent.
        "prepare": lambda t: (["prepare", "--data-dir", a_file(t)], (2,)),
        "seal": lambda t: (["seal", "--data-dir", a_file(t)], (2,)),
        "evaluate": lambda t: (["evaluate", "--model", str(t / "nope.pt2"), "--data-dir",
                                str(DATA / "tiny"), "--out", str(t / "no" / "m.json")], (2,)),
        "baseline": lambda t: (["baseline", "--workspace", a_file(t)], (2,)),
        "guards": lambda t: (["guards", "list", "--workspace", str(t / "missing" / "ws")], (2,)),
        "audit": lambda t: (["audit", "export", "--jsonl", "--out", str(t), "--workspace",
                             str(ws_with_stores(t))], (2,)),
        "sandbox": lambda t: (["sandbox", "doctor", "--workspace", a_file(t)], (2,)),
        "try": lambda t: (["try", "--workspace", a_file(t)], (2,)),
        "run": lambda t: (["run", "--workspace", a_file(t)], (2,)),
        "results": lambda t: (["results", "--out", str(t / "no" / "r.tsv"), "--workspace",
                               str(ws_with_stores(t))], (2,)),
        "report": lambda t: (["report", "--out", str(t), "--workspace",
                              str(ws_with_stores(t))], (2,)),
    }


def _corrupt_store_cases() -> dict[str, Case]:
    garbage = os.urandom(4096)

    def ws(tmp: Path, *, ledger: bytes | None = None, audit: bytes | None = None) -> str:
        root = _with_ledger(tmp)
        if ledger is not None:
            (root / ".labwarden" / "ledger.sqlite").write_bytes(ledger)
        if audit is not None:
            (root / ".labwarden" / "audit.sqlite").write_bytes(audit)
        return str(root)

    def corrupt_file(tmp: Path) -> str:
        (tmp / "blob").write_bytes(garbage)
        return str(tmp / "blob")

    return {
        # eval_frozen's stores are the data folder and its seal.
        "prepare": lambda t: (["prepare", "--data-dir", corrupt_file(t)], (2,)),
        "seal": lambda t: (["seal", "--verify", "--data-dir", corrupt_file(t)], (1, 2)),
        "evaluate": lambda t: (["evaluate", "--model", corrupt_file(t), "--data-dir",
                                str(DATA / "tiny"), "--out", str(t / "m.json")], (2,)),
        "baseline": lambda t: (["baseline", "--workspace", ws(t, audit=garbage)], (2,)),
        "guards": lambda t: (["guards", "check", _patch(t), "--workspace",
                              ws(t, audit=garbage)], (2,)),
        "audit": lambda t: (["audit", "list", "--workspace", ws(t, audit=b"")], (2,)),
        "sandbox": lambda t: (["sandbox", "doctor", "--workspace",
                               str(workspace(t / "w2", garbage))], (2,)),
        "try": lambda t: (["try", "--workspace", ws(t, ledger=garbage)], (2,)),
        "run": lambda t: (["run", "--workspace", ws(t, ledger=garbage)], (2,)),
        "results": lambda t: (["results", "--tsv", "--workspace", ws(t, ledger=b"")], (2,)),
        "report": lambda t: (["report", "--out", str(t / "r.html"), "--workspace",
                              ws(t, ledger=garbage)], (2,)),
    }


def _patch(tmp: Path) -> str:
    (tmp / "good.patch").write_text(GOOD_PATCH)
    return str(tmp / "good.patch")


def _folder_for_file_cases() -> dict[str, Case]:
    def folder_store(tmp: Path, name: str) -> str:
        root = _with_ledger(tmp)
        (root / ".labwarden" / name).mkdir()
        return str(root)

    return {
        "prepare": lambda t: (["prepare", "--source", f"local:{_patch(t)}", "--data-dir",
                               str(t / "out")], (2,)),
        "seal": lambda t: (["seal", "--verify", "--data-dir", _patch(t)], (1, 2)),
        "evaluate": lambda t: (["evaluate", "--model", str(t), "--data-dir",
                                str(DATA / "tiny"), "--out", str(t / "m.json")], (2,)),
        "baseline": lambda t: (["baseline", "--workspace", folder_store(t, "audit.sqlite")],
                               (2,)),
        "guards": lambda t: (["guards", "check", str(t), "--workspace",
                              str(workspace(t / "ws"))], (2,)),
        "audit": lambda t: (["audit", "list", "--workspace", folder_store(t, "audit.sqlite")],
                            (2,)),
        "sandbox": lambda t: (["sandbox", "doctor", "--workspace", _patch(t)], (2,)),
        "try": lambda t: (["try", str(t), "--workspace", str(workspace(t / "ws"))], (2,)),
        "run": lambda t: (["run", "--workspace", folder_store(t, "ledger.sqlite")], (2,)),
        "results": lambda t: (["results", "--workspace", folder_store(t, "ledger.sqlite")],
                              (2,)),
        "report": lambda t: (["report", "--out", str(t / "r.html"), "--workspace",
                              folder_store(t, "ledger.sqlite")], (2,)),
    }


def _closed_pipe_cases() -> dict[str, Case]:
    """A printing invocation per command; the cheap ones print their real output."""

    def stores(tmp: Path) -> str:
        import sqlite3

        from guards.audit import AuditStore
        from guards.findings import Finding, GuardReport

        root = _with_ledger(tmp)
        with AuditStore(root / ".labwarden" / "audit.sqlite") as store:
            report = GuardReport(findings=[Finding("paths.frozen", "block", "x.py", 1, "e",
                                                   "frozen file")])
            for _ in range(3):
                store.record(report, GOOD_PATCH * 50, str(root))
        sqlite3.connect(root / ".labwarden" / "ledger.sqlite").close()
        return str(root)

    return {
        "prepare": lambda t: (["prepare", "--help"], (0,)),
        "seal": lambda t: (["seal", "--help"], (0,)),
        "evaluate": lambda t: (["evaluate", "--help"], (0,)),
        "baseline": lambda t: (["baseline", "--help"], (0,)),
        "guards": lambda t: (["guards", "list", "--workspace", str(workspace(t / "ws"))], (0,)),
        "audit": lambda t: (["audit", "show", "1", "--workspace", stores(t)], (0,)),
        "sandbox": lambda t: (["sandbox", "--help"], (0,)),
        "try": lambda t: (["try", "--help"], (0,)),
        "run": lambda t: (["run", "--help"], (0,)),
        "results": lambda t: (["results", "--help"], (0,)),
        "report": lambda t: (["report", "--help"], (0,)),
    }


def _usage_cases() -> dict[str, Case]:
    return {name: (lambda t, n=name: ([n, "--no-such-option"], (2,))) for name in COMMANDS}


CLASSES: dict[str, dict[str, Case]] = {
    "bad_bytes": _bad_bytes_cases(),
    "bad_output_path": _bad_output_cases(),
    "corrupt_store": _corrupt_store_cases(),
    "folder_for_file": _folder_for_file_cases(),
    "closed_pipe": _closed_pipe_cases(),
    "usage_error": _usage_cases(),
}


@pytest.mark.parametrize("klass", sorted(CLASSES))
def test_every_command_is_covered(klass: str) -> None:
    assert set(CLASSES[klass]) == set(COMMANDS), (
        f"class {klass}: add the new command(s) {set(COMMANDS) - set(CLASSES[klass])}")


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("klass", sorted(CLASSES))
def test_bad_input_is_one_line(klass: str, command: str, tmp_path: Path) -> None:
    argv, codes = CLASSES[klass][command](tmp_path)
    proc = lw(argv, tmp_path, close_stdout=klass == "closed_pipe")
    assert_one_line(proc, codes)


@pytest.mark.parametrize("args", [["audit", "list"], ["audit", "export", "--jsonl"],
                                  ["guards", "list"], ["--help"], ["--version"]])
def test_closed_pipe_on_listing_commands(args: list[str], tmp_path: Path) -> None:
    ws = CLASSES["closed_pipe"]["audit"](tmp_path)[0][-1]
    extra = [] if args[0].startswith("--") else ["--workspace", ws]
    proc = lw([*args, *extra], tmp_path, close_stdout=True)
    assert_one_line(proc, (0,))
