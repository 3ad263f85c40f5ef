"""`check_patch`: parse, apply in memory, run every active rule, decide, record.

Order matters for safety: paths are validated before any workspace file is read, so a
patch naming `../../etc/passwd` is judged without touching it; the files are then applied
twice, in memory (which maps hunks to lines) and by real `git apply` in a scratch folder
(what the sandbox runs, started first so it runs while the rules work); the rules analyse
the text decoded as the interpreter will decode it, and any file where git's tree differs
blocks, so a patch passes only when what was checked is exactly what git writes. A rule
that raises, or a plugin that failed to load, is a `guards.error` finding that blocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from guards.apply import ApplyError, apply_file
from guards.context import CheckContext, FileState
from guards.findings import SEVERITIES, AttemptMeta, Finding, GuardReport
from guards.gitapply import GitTree, PendingGit, start_git_apply
from guards.patch import FileChange, Patch, PatchError, parse_patch
from guards.registry import (
    BUILTIN_SPEC,
    ENTRY_POINT_GROUP,
    LoadError,
    RuleRegistry,
    autoload_enabled,
)
from guards.rules.paths import safe_paths
from guards.settings import GuardSettings, load_settings
from guards.source import decode_python
from labwarden.config import WorkspaceConfig

if TYPE_CHECKING:
    from guards.audit import AuditStore

# Findings the engine itself produces (listed by `labwarden guards list`).
CORE_RULES = {
    "patch.malformed": "The text is not a unified diff we can read (garbage, miscounted hunks).",
    "patch.does_not_apply": "The patch does not apply to the workspace as `git apply` would.",
    "patch.syntax": "A Python file would not parse after the patch, so it cannot be checked.",
    "patch.duplicate": "Two sections for one file: git stacks them, so each alone is not "
                       "what runs.",
    "patch.divergent": "git apply produces a tree other than the patch shows (placement, "
                       "parsing): the guards judge what git writes, and block the difference.",
    "patch.encoding": "A Python file the interpreter would decode differently from the guards "
                      "(a non-UTF-8 coding cookie, invalid UTF-8, bidi control characters).",
    "guards.error": "A rule or plugin failed to load or raised: blocked until it is fixed.",
}

_CACHE: dict[tuple[object, ...], RuleRegistry] = {}
ExpectedFile = tuple[FileChange, "str | None", "str | None"]
"""A file as the in-memory reading of the patch leaves it: (change, before, after)."""


def build_registry(config: WorkspaceConfig, settings: GuardSettings | None = None
                   ) -> RuleRegistry:
    """Every active rule for this workspace (cached per workspace, settings and sys.path)."""
    import sys

    settings = settings or load_settings(config)
    autoload = autoload_enabled(settings.autoload_plugins)
    key = (str(config.root), repr(settings), autoload, tuple(sys.path))
    if key in _CACHE:
        return _CACHE[key]
    from guards.declarative import DeclarativeRule, load_rules_file

    registry = RuleRegistry()
    registry.load_spec(BUILTIN_SPEC, source="builtin")
    if autoload:
        registry.load_entry_points(ENTRY_POINT_GROUP)
    for spec in settings.plugins:
        registry.load_spec(spec, source=f"config {spec}")
    declared: list[tuple[dict[str, object], str]] = []
    if settings.rules_file:
        path = config.root / settings.rules_file
        declared += [(r, f"toml {settings.rules_file}") for r in load_rules_file(path)]
    declared += [(r, "toml labwarden.toml [[guards.rules]]") for r in settings.rules]
    for spec, source in declared:
        rule = DeclarativeRule(spec, source)  # ConfigError: a bad config is exit 2
        try:
            registry.register(rule, source=source)
        except Exception as e:
            registry.errors.append(LoadError(source, str(spec.get("id")), str(e)))
    for rule_id in settings.disable:
        registry.rules.pop(rule_id, None)
    for rule_id, severity in settings.severity.items():
        if rule_id in registry.rules:
            registry.rules[rule_id].rule.severity = severity  # type: ignore[assignment]
    _CACHE[key] = registry
    return registry


def _read(root: Path, rel: str | None) -> str | None:
    if rel is None:
        return None
    path = root / rel
    if not path.is_file():
        return None
    return path.read_bytes().decode("utf-8", "surrogateescape").removeprefix("\ufeff")


def duplicate_paths(patch: Patch) -> set[str]:
    """Paths named by more than one section: git stacks them, a per-section check would not."""
    seen: dict[str, int] = {}
    for change in patch.files:
        for p in change.paths:
            seen[p] = seen.get(p, 0) + 1
    return {p for p, n in seen.items() if n > 1}


def _prepare_files(patch: Patch, config: WorkspaceConfig) -> tuple[
        list[FileState], list[Finding], PendingGit | None, list[ExpectedFile]]:
    """Each file as the patch reads, and `git apply` started on a scratch copy.

    The rules analyse the in-memory result while git runs; `_compare_with_git` then blocks
    the patch wherever git's tree differs, so what passes is what git writes."""
    states, findings = [], []
    dups = duplicate_paths(patch)
    for p in sorted(dups):
        findings.append(Finding("patch.duplicate", "block", p, 0, p,
                                "the patch has more than one section for this file; git "
                                "would stack them. Send one section per file."))
    usable = [c for c in patch.files if safe_paths(c, config.root) and not c.binary
              and not set(c.paths) & dups]
    # git runs only when every file is one the patch may touch: anything else is blocked
    # by the path rules already, and must never be copied out of the workspace.
    complete = len(usable) == len(patch.files) and all(
        config.is_editable(p) for c in usable for p in c.paths)
    expected: list[ExpectedFile] = []
    for change in usable:
        before = _read(config.root, change.old_path)
        try:
            after = apply_file(change, before)
        except ApplyError as e:
            hint = " The patch has CRLF line endings." if patch.has_crlf else ""
            findings.append(Finding("patch.does_not_apply", "block", change.path, 0, "",
                                    f"{e}{hint}"))
            complete = False
            continue
        expected.append((change, before, after))
    pending = None
    if complete and expected:
        paths = sorted({p for c, _, _ in expected for p in c.paths})
        started = start_git_apply(patch.text, config.root, paths)
        if isinstance(started, GitTree):  # git is not installed
            findings.append(Finding("patch.divergent", "note", "", 0, "",
                                    "git is not installed: the patch was applied in memory "
                                    "only, not as the sandbox will apply it."))
        else:
            pending = started
    for change, before, after in expected:
        if after is not None and change.path.endswith((".py", ".pyi", ".pyw")):
            text, why = decode_python(after.encode("utf-8", "surrogateescape"))
            if text is None:
                findings.append(Finding("patch.encoding", "block", change.path, 0, "",
                                        f"the file {why}"))
                continue
            after = text
        state = FileState(change, before, after)
        if state.is_python and after is not None and state.analysis("after") is None:
            findings.append(Finding("patch.syntax", "block", change.path, 0, "",
                                    f"the file does not parse after the patch "
                                    f"({state.syntax_error})."))
            continue
        states.append(state)
    return states, findings, pending, expected


def _compare_with_git(pending: PendingGit, expected: list[ExpectedFile]) -> list[Finding]:
    tree = pending.result()
    if tree.error:
        return [Finding("patch.does_not_apply", "block", "", 0, tree.error,
                        f"git apply refuses the patch: {tree.error}")]
    out = []
    made = {c.new_path for c, _, _ in expected if c.new_path}
    made |= {c.old_path for c, _, _ in expected if c.copied and c.old_path}
    for extra in sorted((set(tree.files) | tree.links) - made):
        out.append(Finding("patch.divergent", "block", extra, 0, extra,
                           "git apply writes this file, but the patch as read does not: the "
                           "guards cannot check it."))
    for change, _, after in expected:
        if after is None:
            continue
        data = tree.files.get(change.path)
        if data is None:
            out.append(Finding("patch.divergent", "block", change.path, 0, "",
                               "git apply does not leave this file where the patch says it "
                               "goes."))
        elif data != after.encode("utf-8", "surrogateescape"):
            out.append(Finding("patch.divergent", "block", change.path, 0, "",
                               "git apply produces different content than the patch shows "
                               "(hunk placement or parsing differs); resend it with more "
                               "context lines."))
    return out


def check_patch(
    patch_text: str,
    config: WorkspaceConfig,
    *,
    meta: AttemptMeta | None = None,
    audit: AuditStore | None = None,
    registry: RuleRegistry | None = None,
) -> GuardReport:
    """Check one unified diff against the workspace. Never raises for bad patch content:
    unreadable diffs come back as a blocked report with a `patch.malformed` finding.
    Raises `ConfigError` for a broken `[guards]` config.
    """
    settings = load_settings(config)
    registry = registry or build_registry(config, settings)
    findings: list[Finding] = [
        Finding("guards.error", "block", "", 0, e.spec,
                f"{e.source}: could not load rule(s): {e.message}")
        for e in registry.errors
    ]
    size = len(patch_text.encode("utf-8", "surrogatepass"))
    if size > settings.max_patch_bytes and "patch.size" not in settings.disable:
        # Known before parsing: a huge patch is refused in milliseconds, not after the
        # rules have read every line of it.
        report = GuardReport(findings=[*findings, Finding(
            "patch.size", "block", "", 0, f"{size} bytes",
            f"patch is larger than {settings.max_patch_bytes} bytes; not parsed.")])
        if audit is not None:
            report.audit_id = audit.record(report, patch_text, str(config.root), meta)
        return report
    try:
        patch = parse_patch(patch_text)
    except PatchError as e:
        report = GuardReport(findings=[*findings, Finding("patch.malformed", "block", "", 0, "",
                                                          str(e))])
        if audit is not None:
            report.audit_id = audit.record(report, patch_text, str(config.root), meta)
        return report

    states, engine_findings, pending, expected = _prepare_files(patch, config)
    findings += engine_findings
    try:
        findings += _run_rules(registry, patch, CheckContext(config, settings, patch, states))
    finally:
        if pending is not None:
            findings += _compare_with_git(pending, expected)
    report = GuardReport(findings=_tidy(findings), files=[c.path for c in patch.files])
    if audit is not None:
        report.audit_id = audit.record(report, patch_text, str(config.root), meta)
    return report


def _run_rules(registry: RuleRegistry, patch: Patch, context: CheckContext) -> list[Finding]:
    findings: list[Finding] = []
    for rule_id, entry in registry.rules.items():
        try:
            result = entry.rule.check(patch, context)
            for f in result:
                if not isinstance(f, Finding) or f.severity not in SEVERITIES:
                    raise TypeError(f"returned {f!r}, not a Finding")
            findings.extend(result)
        except Exception as e:  # any failure of a rule blocks; it is never a silent pass
            findings.append(Finding("guards.error", "block", "", 0, f"{type(e).__name__}: {e}",
                                    f"rule {rule_id} ({entry.source}) raised; the patch is "
                                    "blocked until the rule is fixed."))
    return findings


def _tidy(findings: list[Finding]) -> list[Finding]:
    order = {s: i for i, s in enumerate(SEVERITIES)}
    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=lambda f: (order[f.severity], f.file, f.line, f.rule_id))
