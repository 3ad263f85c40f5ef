"""Files a command reads or writes, checked up front with one-line `InputError`s.

Kept dependency-free: every command may use it without pulling anything heavy in.
"""

from __future__ import annotations

import sys
from pathlib import Path

from labwarden.errors import InputError


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
