"""Which files a patch may touch, and how. These rules need no parsing of the code.

Patches are read the way the sandbox applies them (`git apply -p1`), and every name in a
file's headers is checked, so a rename or copy cannot smuggle a protected path in.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from guards.context import CheckContext
from guards.findings import Finding
from guards.patch import FileChange, Patch
from guards.rules.base import Rule
from labwarden.config import matches_any

_CONTROL_CHARS = {chr(c) for c in range(32)} | {"\x7f"}


def path_problem(rel: str, root: Path) -> str | None:
    """Why `rel` is not a safe workspace-relative path, or None."""
    if not rel:
        return "empty path"
    if any(c in _CONTROL_CHARS for c in rel):
        return "control character in path"
    if "\\" in rel:
        return "backslash in path (Windows separators are not accepted)"
    if rel.startswith("/") or PurePosixPath(rel).is_absolute():
        return "absolute path"
    parts = PurePosixPath(rel).parts
    if ".." in parts:
        return "'..' in path (leaves the workspace)"
    if any(p.lower() == ".git" for p in parts):
        return "path inside .git"
    # A symlink anywhere on the way would make git write outside the folder we checked.
    cur = root
    for part in parts[:-1]:
        cur = cur / part
        if cur.is_symlink():
            return f"path goes through the symlink {cur.relative_to(root)}"
    final = root / rel
    if final.is_symlink():
        return "the target is a symlink in the workspace"
    try:
        resolved = final.resolve()
    except OSError:
        return "path cannot be resolved"
    if resolved != root.resolve() and root.resolve() not in resolved.parents:
        return "path resolves outside the workspace"
    return None


def safe_paths(change: FileChange, root: Path) -> bool:
    return not change.bad_names and all(path_problem(p, root) is None for p in change.paths)


class InvalidPathRule(Rule):
    id = "paths.invalid"
    description = ("Absolute paths, '..', backslashes, .git, symlinked folders or names git "
                   "would strip differently: ways to write outside the files the guards checked.")

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        out = []
        for change in patch.files:
            for raw in change.bad_names:
                out.append(self.finding(raw, 0, raw, "file name has no 'a/' or 'b/' component; "
                                        "git apply -p1 would strip or misplace it."))
            for p in change.paths:
                problem = path_problem(p, context.root)
                if problem:
                    out.append(self.finding(p, 0, p, f"unsafe path: {problem}."))
        return out


class ProtectedPathRule(Rule):
    id = "paths.protected"
    description = ("Editing the evaluator, data prep, tokenizer, seal, program.md, the config, "
                   "the ledger or the tests, or anything else outside the editable globs.")

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        cfg = context.config
        state = cfg.state_dir.strip("/")
        rules_file = context.settings.rules_file
        out = []
        for change in patch.files:
            for p in change.paths:
                reason = None
                if p == "labwarden.toml" or p.endswith("/labwarden.toml"):
                    reason = "the workspace config is not editable by patches"
                elif rules_file and os.path.normpath(p) == os.path.normpath(rules_file):
                    reason = "the guard rules file is not editable by patches"
                elif state and (p == state or p.startswith(state + "/")):
                    reason = f"{state}/ holds the data, seal, ledger and audit trail"
                elif cfg.is_hidden(p):
                    reason = "hidden file (never shown to agents)"
                elif cfg.is_frozen(p):
                    reason = "frozen file"
                elif not cfg.is_editable(p):
                    reason = "outside the editable globs " + ", ".join(cfg.editable or ("(none)",))
                if reason:
                    out.append(self.finding(p, 0, f"{change.status} {p}", f"{reason}."))
        return out


class NewFileRule(Rule):
    id = "paths.new_file"
    description = "Creating files outside the allowed set (new modules, data or configs)."

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        allowed = context.settings.new_files
        globs = allowed if allowed is not None else context.config.editable
        out = []
        for change in patch.files:
            created = change.status == "added" or change.copied or change.status == "renamed"
            if created and change.new_path and not matches_any(change.new_path, globs):
                out.append(self.finding(change.new_path, 0, change.new_path,
                                        "new files are allowed only under " + ", ".join(globs)
                                        + "."))
        return out


class BinaryRule(Rule):
    id = "paths.binary"
    description = "Binary patches: content the guards cannot read (weights, data, compiled code)."

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        return [self.finding(c.path, 0, c.path, "binary content cannot be checked.")
                for c in patch.files if c.binary]


class SymlinkRule(Rule):
    id = "paths.symlink"
    description = "Symlinks and submodules: a link can point the trainer at the val split."

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        out = []
        for c in patch.files:
            if c.is_symlink:
                out.append(self.finding(c.path, 0, f"mode {c.new_mode or c.old_mode}",
                                        "symlinks are not allowed."))
            elif c.is_gitlink:
                out.append(self.finding(c.path, 0, "mode 160000", "submodules are not allowed."))
        return out


class ModeRule(Rule):
    id = "paths.mode"
    description = "File mode changes (making files executable)."

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        out = []
        for c in patch.files:
            if c.mode_changed and not (c.is_symlink or c.is_gitlink):
                out.append(self.finding(c.path, 0, f"{c.old_mode} -> {c.new_mode}",
                                        "file mode changes are not allowed."))
            elif c.status == "added" and c.new_mode not in (None, "100644") and not (
                    c.is_symlink or c.is_gitlink):
                out.append(self.finding(c.path, 0, f"new file mode {c.new_mode}",
                                        "new files must have mode 100644."))
        return out


class DeletedFileRule(Rule):
    id = "paths.deleted"
    severity = "review"
    description = "Deleting whole files; allowed, but a reviewer should see it."

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        return [self.finding(c.path, 0, f"deleted {c.path}", "the patch deletes a file.")
                for c in patch.files if c.status == "removed"]


class SizeRule(Rule):
    id = "patch.size"
    description = "Oversized patches: too large to review or to check quickly."

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        s = context.settings
        out = []
        if patch.size_bytes > s.max_patch_bytes:
            out.append(self.finding("", 0, f"{patch.size_bytes} bytes",
                                    f"patch is larger than {s.max_patch_bytes} bytes."))
        if len(patch.files) > s.max_files:
            out.append(self.finding("", 0, f"{len(patch.files)} files",
                                    f"patch touches more than {s.max_files} files."))
        changed = sum(len(c.added_lines()) + len(c.removed_lines()) for c in patch.files)
        if changed > s.max_changed_lines:
            out.append(self.finding("", 0, f"{changed} changed lines",
                                    f"patch changes more than {s.max_changed_lines} lines."))
        return out


_IMPORTABLE = (".py", ".pyc", ".pyw", ".pyi", ".so", ".pyd")
_STARTUP = frozenset({"sitecustomize", "usercustomize", "__pycache__", "__main__"})


def entry_module(command: tuple[str, ...]) -> str | None:
    """The module the train command runs: `python -m trainer.train` -> trainer.train,
    `uv run train.py` -> train."""
    for i, arg in enumerate(command):
        if arg == "-m" and i + 1 < len(command):
            return command[i + 1]
        if arg.endswith(".py") and not arg.startswith("-"):
            return arg.removesuffix(".py").replace("/", ".").lstrip(".")
    return None


def shadow_problem(rel: str, root: Path, entry: str | None,
                   taken: frozenset[str]) -> str | None:
    """Why creating `rel` would change what an import or the entry point finds, or None."""
    path = PurePosixPath(rel)
    if path.suffix == ".pth":
        return "a .pth file runs code at interpreter start-up"
    if entry:
        entry_path = entry.replace(".", "/")
        if rel != entry_path + ".py" and (rel.startswith(entry_path + "/") or (
                str(path.with_suffix("")) == entry_path)):
            return f"it would shadow the train entry point {entry} ({entry_path}.py)"
    parts = path.parts
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if last:
            if path.suffix not in _IMPORTABLE:
                return None
            name = part.split(".", 1)[0]
        else:
            if (root / Path(*parts[: i + 1])).is_dir():
                continue  # an existing folder: nothing new is importable under its name
            name = part
        if name in _STARTUP:
            return f"{name!r} is run or searched by the interpreter itself"
        if name in taken:
            return (f"{name!r} is the name of an importable module (standard library, "
                    "installed or frozen): a file or folder of that name can shadow it")
    return None


class ShadowRule(Rule):
    id = "paths.shadow"
    description = ("New modules or packages that shadow the train entry point, a frozen, "
                   "standard-library or installed module, or run at start-up (.pth, "
                   "sitecustomize).")

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        created = [c.new_path for c in patch.files if c.new_path and (
            c.status in ("added", "renamed") or c.copied)]
        if not created:
            return []
        from guards.modules import top_level_names

        taken = top_level_names() | {m.split(".")[0] for m in context.settings.frozen_modules}
        entry = entry_module(context.config.train_command)
        out = []
        for rel in created:
            why = shadow_problem(rel, context.root, entry, taken)
            if why:
                out.append(self.finding(rel, 0, rel, f"cannot create {rel}: {why}."))
        return out
