"""Apply a parsed patch to file texts in memory, as strictly as `git apply --check`.

Same matching rules as git: every context and removed line must match exactly (no fuzz),
a hunk may sit at an offset from its stated line when the text still matches there, a
hunk starting at line 0 or 1 must match at the beginning, a hunk without trailing context
must match at the end, and hunks apply in order without overlapping. Rules need the file
as it will be after the patch, so a patch the sandbox would refuse must not look valid here.
"""

from __future__ import annotations

from guards.patch import FileChange, Hunk


class ApplyError(Exception):
    """The patch does not apply; the message says which file and hunk."""


def apply_file(change: FileChange, before: str | None) -> str | None:
    """The file's text after the patch (None when the patch deletes it).

    `before` is the current text, None when the file does not exist.
    """
    path = change.path
    if change.status == "added":
        if before is not None:
            raise ApplyError(f"{path}: already exists in the workspace; the patch creates it.")
        before = ""
    elif before is None:
        raise ApplyError(f"{change.old_path}: does not exist in the workspace.")
    if change.binary:
        raise ApplyError(f"{path}: binary patches cannot be applied or checked.")
    after = apply_hunks(before, change.hunks, path=path)
    if change.status == "removed":
        if after != "":
            raise ApplyError(f"{path}: the deletion does not remove the whole file.")
        return None
    return after


def apply_hunks(text: str, hunks: tuple[Hunk, ...] | list[Hunk], *, path: str = "") -> str:
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    cursor = 0  # first original line not yet copied
    for number, hunk in enumerate(hunks, 1):
        pre = [ln.text for ln in hunk.lines if ln.kind != "+"]
        post = [ln.text for ln in hunk.lines if ln.kind != "-"]
        # git: a hunk with old_start <= 1 must match at the top; one without trailing
        # context must match at the very end of the file.
        match_beginning = hunk.old_start <= 1
        match_end = hunk.trailing_context == 0
        expected = hunk.old_start - 1 if hunk.old_len else hunk.old_start
        pos = _find(lines, pre, expected, cursor, match_beginning, match_end)
        if pos is None:
            hint = ""
            if any("\r" in t for t in pre) != ("\r\n" in text):
                hint = " (line endings differ: CRLF in one, LF in the other)"
            raise ApplyError(
                f"{path}: hunk #{number} (@@ -{hunk.old_start},{hunk.old_len} "
                f"+{hunk.new_start},{hunk.new_len} @@) does not match the current file{hint}."
            )
        out.extend(lines[cursor:pos])
        out.extend(post)
        cursor = pos + len(pre)
    out.extend(lines[cursor:])
    return "".join(out)


def _find(
    lines: list[str],
    pre: list[str],
    expected: int,
    floor: int,
    match_beginning: bool,
    match_end: bool,
) -> int | None:
    n = len(pre)

    def fits(pos: int) -> bool:
        if pos < floor or pos + n > len(lines):
            return False
        if match_beginning and pos != 0:
            return False
        if match_end and pos + n != len(lines):
            return False
        return lines[pos:pos + n] == pre

    if match_beginning:
        return 0 if fits(0) else None
    if match_end:
        pos = len(lines) - n
        return pos if fits(pos) else None
    expected = max(expected, floor)
    limit = max(len(lines), expected) + 1
    for offset in range(limit):
        # git tries the line after before the line before (apply.c find_pos)
        for pos in (expected + offset, expected - offset) if offset else (expected,):
            if fits(pos):
                return pos
    return None
