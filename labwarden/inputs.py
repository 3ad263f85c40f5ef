"""Files a command reads or writes, checked up front with one-line `InputError`s.

Kept dependency-free: every command may use it without pulling anything heavy in.
"""

from __future__ import annotations

import sys
from pathlib import Path

from labwarden.errors import InputError

SQLITE_MAGIC = b"SQLite format 3\x00"


def read_text(arg: str | Path, what: str = "file", *, stdin_dash: bool = False) -> str:
    """A UTF-8 text file (or standard input for '-'), else a one-line InputError that says
    what is wrong: missing, a folder, unreadable, not UTF-8 (with the byte offset)."""
    if stdin_dash and str(arg) == "-":
        data, where = sys.stdin.buffer.read(), "standard input"
    else:
        path = Path(arg)
        where = f"{what} {arg}"
        if path.is_dir():
            raise InputError(f"{where} is a folder; give a file.")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{where} not found.") from None
        except OSError as e:
            raise InputError(f"cannot read {where}: {e.strerror or type(e).__name__}.") from None
    return decode_utf8(data, where)


def decode_utf8(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"{where} is not UTF-8 text (byte {e.start}, line {line}: "
                         f"{data[e.start:e.start + 1]!r}); save it as UTF-8.") from None


def check_output(arg: str | Path, what: str = "output") -> Path:
    """A path a command may write a file to: not a folder, its parent folder exists."""
    path = Path(arg)
    if path.is_dir():
        raise InputError(f"cannot write {what} {arg}: it is a folder; give a file name.")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise InputError(f"cannot write {what} {arg}: folder {parent} does not exist.")
    return path


def write_text(arg: str | Path, text: str, what: str = "output") -> Path:
    path = check_output(arg, what)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot write {what} {arg}: {e.strerror or type(e).__name__}.") from None
    return path


def check_database_file(path: Path, what: str) -> None:
    """One-line InputErrors for a store that is missing, a folder, empty or not SQLite
    (SQLite itself would open an empty file as a new database, and garbage only fails
    later, with a message that names no file)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder, not a database file.")
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise InputError(f"no {what} at {path}.") from None
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}.") from None
    if not head:
        raise InputError(f"{what} {path} is empty (0 bytes): truncated, or never written; "
                         "move it aside to start a new one.")
    if head != SQLITE_MAGIC:
        raise InputError(f"{what} {path} is not a readable SQLite database (corrupt or "
                         "overwritten); "
                         "move it aside to start a new one.")


def check_stores(state_path: Path) -> None:
    """The workspace's ledger and audit trail, where they exist, are sound SQLite files:
    checked before a command writes anything (a writer would otherwise fail halfway)."""
    for name, what in (("ledger.sqlite", "ledger"), ("audit.sqlite", "audit trail")):
        path = Path(state_path) / name
        if path.exists():
            check_database_file(path, what)
