"""The typed patch model: a unified diff parsed into files, hunks and numbered lines.

Parsing is strict because the sandbox applies patches with `git apply` (`-p1`: the first
path component is always stripped, whatever it is). Interpreting paths any other way would
let a patch that looks like it edits `trainer/x.py` land somewhere else. Hunk bodies are
parsed by `unidiff`; the git extended headers (modes, renames, binary markers) are read
here from the raw text, so a patch cannot hide a mode change or a binary blob from us.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from labwarden.errors import InputError

FileStatus = Literal["added", "removed", "modified", "renamed"]
SYMLINK_MODE = "120000"
GITLINK_MODE = "160000"

_DIFF_GIT = re.compile(r"^diff --git (\S+|\"(?:[^\"\\]|\\.)*\") (\S+|\"(?:[^\"\\]|\\.)*\")$")
_HEADER_RULES = (
    ("old_mode", re.compile(r"^old mode (\d+)$")),
    ("new_mode", re.compile(r"^new mode (\d+)$")),
    ("new_file_mode", re.compile(r"^new file mode (\d+)$")),
    ("deleted_file_mode", re.compile(r"^deleted file mode (\d+)$")),
    ("rename_from", re.compile(r"^rename from (.+)$")),
    ("rename_to", re.compile(r"^rename to (.+)$")),
    ("copy_from", re.compile(r"^copy from (.+)$")),
    ("copy_to", re.compile(r"^copy to (.+)$")),
    ("index_mode", re.compile(r"^index [0-9a-f]+\.\.[0-9a-f]+ (\d+)$")),
)
_BINARY = re.compile(r"^(GIT binary patch|Binary files? .* differ|Binary files? .* has changed)$")


class PatchError(InputError):
    """The text is not a unified diff we can read (empty, garbage, miscounted hunks, NUL bytes)."""


@dataclass(frozen=True)
class PatchLine:
    kind: Literal["+", "-", " "]
    text: str
    """The line's content with its newline, exactly as it would appear in the file."""
    old_no: int | None
    new_no: int | None


@dataclass(frozen=True)
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: tuple[PatchLine, ...]

    @property
    def leading_context(self) -> int:
        n = 0
        for line in self.lines:
            if line.kind != " ":
                break
            n += 1
        return n

    @property
    def trailing_context(self) -> int:
        n = 0
        for line in reversed(self.lines):
            if line.kind != " ":
                break
            n += 1
        return n


@dataclass(frozen=True)
class FileChange:
    """One file in the patch. Paths are workspace-relative after git's `-p1` stripping."""

    old_path: str | None
    new_path: str | None
    status: FileStatus
    hunks: tuple[Hunk, ...] = ()
    binary: bool = False
    old_mode: str | None = None
    new_mode: str | None = None
    copied: bool = False
    raw_names: tuple[str, ...] = ()
    """Every name the headers mention (before stripping), for path validation."""
    bad_names: tuple[str, ...] = ()
    """Names that cannot be stripped with `-p1` (no `/`): git would refuse or misplace them."""

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for p in (self.old_path, self.new_path) if p))

    @property
    def is_symlink(self) -> bool:
        return SYMLINK_MODE in (self.old_mode, self.new_mode)

    @property
    def is_gitlink(self) -> bool:
        return GITLINK_MODE in (self.old_mode, self.new_mode)

    @property
    def mode_changed(self) -> bool:
        return self.old_mode is not None and self.new_mode is not None and (
            self.old_mode != self.new_mode
        )

    def added_lines(self) -> list[tuple[int, str]]:
        """(line number after the patch, text without newline) for every `+` line."""
        return [
            (ln.new_no or 0, ln.text.rstrip("\r\n"))
            for h in self.hunks
            for ln in h.lines
            if ln.kind == "+"
        ]

    def removed_lines(self) -> list[tuple[int, str]]:
        """(line number before the patch, text without newline) for every `-` line."""
        return [
            (ln.old_no or 0, ln.text.rstrip("\r\n"))
            for h in self.hunks
            for ln in h.lines
            if ln.kind == "-"
        ]


@dataclass(frozen=True)
class Patch:
    text: str
    files: tuple[FileChange, ...] = field(default_factory=tuple)

    @property
    def size_bytes(self) -> int:
        return len(self.text.encode("utf-8", "surrogateescape"))

    @property
    def has_crlf(self) -> bool:
        return "\r\n" in self.text

    def added_line_count(self) -> int:
        return sum(len(f.added_lines()) for f in self.files)


def _unquote(name: str) -> str:
    """Git C-quotes names with unusual characters: `"a/t\\303\\251st"`."""
    if len(name) >= 2 and name[0] == name[-1] == '"':
        body = name[1:-1]
        raw = body.encode("latin-1", "backslashreplace").decode("unicode_escape")
        try:
            return raw.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return raw
    return name


def strip_p1(name: str) -> str | None:
    """Drop the first path component as `git apply -p1` does; None when there is none."""
    name = _unquote(name.strip())
    if name == "/dev/null":
        return None
    if "/" not in name:
        return ""
    return name.split("/", 1)[1]


@dataclass
class _Header:
    names: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    binary: bool = False


def _scan_headers(lines: list[str]) -> list[_Header]:
    """The git extended header of each `diff --git` section, in order."""
    headers: list[_Header] = []
    current: _Header | None = None
    in_hunk = False
    for line in lines:
        stripped = line.rstrip("\r\n")
        if stripped.startswith("diff --git "):
            current = _Header()
            headers.append(current)
            in_hunk = False
            m = _DIFF_GIT.match(stripped)
            if m:
                current.names.extend([m.group(1), m.group(2)])
            else:
                current.names.append(stripped[len("diff --git "):])
            continue
        if current is None:
            continue
        if stripped.startswith("@@"):
            in_hunk = True
            continue
        if in_hunk:
            continue
        if _BINARY.match(stripped):
            current.binary = True
            continue
        for key, rx in _HEADER_RULES:
            m = rx.match(stripped)
            if m:
                current.values[key] = m.group(1)
                break
    return headers


def parse_patch(text: str) -> Patch:
    """Parse a unified diff. Raises `PatchError` (one line) when it cannot be read at all.

    A patch that parses but does not apply to the workspace is not an error here; the
    engine reports it as a finding.
    """
    import unidiff  # light, but only needed when a patch is actually parsed

    if not text.strip():
        raise PatchError("empty patch: nothing to check.")
    if "\x00" in text:
        raise PatchError("patch contains NUL bytes; send a text unified diff, not binary data.")
    lines = text.splitlines(keepends=True)
    headers = _scan_headers(lines)
    try:
        patchset = unidiff.PatchSet(lines)
    except unidiff.UnidiffParseError as e:
        raise PatchError(f"malformed unified diff: {e}.") from None
    except (ValueError, IndexError) as e:  # unidiff's own parser can trip on odd input
        raise PatchError(f"malformed unified diff: {e}.") from None
    if not patchset and not headers:
        raise PatchError(
            "no unified diff found (expected 'diff --git', '--- a/FILE', '+++ b/FILE' "
            "and @@ hunks)."
        )

    files: list[FileChange] = []
    unmatched = list(headers)
    for pf in patchset:
        header = _match_header(pf, unmatched)
        files.append(_file_change(pf, header))
    # Sections git would apply that carry no hunks at all (pure mode changes, binaries
    # without a "Binary files" line unidiff understood) must still be seen.
    seen = {tuple(f.raw_names[:2]) for f in files}
    for header in headers:
        if len(header.names) >= 2 and tuple(header.names[:2]) not in seen and not _header_used(
            header, files
        ):
            files.append(_file_change(None, header))
    if not files:
        raise PatchError("no file changes found in the patch.")
    return Patch(text=text, files=tuple(files))


def _header_used(header: _Header, files: list[FileChange]) -> bool:
    return any(set(header.names) <= set(f.raw_names) for f in files)


def _match_header(pf: object, headers: list[_Header]) -> _Header | None:
    """The `diff --git` section unidiff folded into this file's `patch_info`."""
    info = "".join(str(x) for x in getattr(pf, "patch_info", []) or [])
    for header in headers:
        if header.names and f"diff --git {' '.join(header.names)}" in info:
            headers.remove(header)
            return header
    return None


def _file_change(pf: object | None, header: _Header | None) -> FileChange:
    header = header or _Header()
    raw: list[str] = list(header.names)
    if pf is not None:
        raw += [pf.source_file, pf.target_file]  # type: ignore[attr-defined]
    for key in ("rename_from", "rename_to", "copy_from", "copy_to"):
        if key in header.values:
            # rename/copy headers carry names without the a/ b/ prefix
            raw.append("x/" + _unquote(header.values[key]))
    raw = [r for r in dict.fromkeys(raw) if r]

    bad = tuple(r for r in raw if r.strip() != "/dev/null" and strip_p1(r) == "")

    def side(name: str | None) -> str | None:
        if name is None:
            return None
        stripped = strip_p1(name)
        return stripped or None

    if pf is not None:
        old_path = side(pf.source_file)  # type: ignore[attr-defined]
        new_path = side(pf.target_file)  # type: ignore[attr-defined]
    elif len(header.names) >= 2:
        old_path, new_path = side(header.names[0]), side(header.names[1])
    else:
        old_path = new_path = None
    if "rename_from" in header.values:
        old_path = _unquote(header.values["rename_from"])
    if "rename_to" in header.values:
        new_path = _unquote(header.values["rename_to"])
    if "copy_from" in header.values:
        old_path = _unquote(header.values["copy_from"])
    if "copy_to" in header.values:
        new_path = _unquote(header.values["copy_to"])
    if "new_file_mode" in header.values:
        old_path = None
    if "deleted_file_mode" in header.values:
        new_path = None

    if old_path is None and new_path is not None:
        status: FileStatus = "added"
    elif new_path is None:
        status = "removed"
    elif old_path != new_path:
        status = "renamed"
    else:
        status = "modified"

    old_mode = header.values.get("old_mode") or header.values.get("deleted_file_mode")
    new_mode = header.values.get("new_mode") or header.values.get("new_file_mode")
    if old_mode is None and new_mode is None and "index_mode" in header.values:
        old_mode = new_mode = header.values["index_mode"]

    hunks: list[Hunk] = []
    binary = header.binary
    if pf is not None:
        binary = binary or bool(getattr(pf, "is_binary_file", False))
        for h in pf:  # type: ignore[attr-defined]
            hunks.append(_hunk(h))
    return FileChange(
        old_path=old_path,
        new_path=new_path,
        status=status,
        hunks=tuple(hunks),
        binary=binary,
        old_mode=old_mode,
        new_mode=new_mode,
        copied="copy_to" in header.values,
        raw_names=tuple(raw),
        bad_names=bad,
    )


def _hunk(h: object) -> Hunk:
    out: list[PatchLine] = []
    for line in h:  # type: ignore[attr-defined]
        kind = line.line_type
        if kind == "\\":
            # "\ No newline at end of file" applies to the line just before it.
            if out:
                prev = out[-1]
                text = prev.text[:-1] if prev.text.endswith("\n") else prev.text
                out[-1] = PatchLine(prev.kind, text, prev.old_no, prev.new_no)
            continue
        if kind == "":  # an empty body line is context for an empty line
            kind = " "
        text = line.value
        out.append(PatchLine(kind, text, line.source_line_no, line.target_line_no))
    return Hunk(
        old_start=h.source_start,  # type: ignore[attr-defined]
        old_len=h.source_length,  # type: ignore[attr-defined]
        new_start=h.target_start,  # type: ignore[attr-defined]
        new_len=h.target_length,  # type: ignore[attr-defined]
        lines=tuple(out),
    )
