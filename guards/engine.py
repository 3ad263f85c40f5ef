"""`check_patch`: parse, apply in memory, run every active rule, decide, record.

Order matters for safety: paths are validated before any workspace file is read, so a
patch naming `../../etc/passwd` is judged without touching it; files are applied with
`git apply --check` semantics before AST rules run; a rule that raises, or a plugin that
failed to load, is a `guards.error` finding that blocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from guards.apply import ApplyError, apply_file
from guards.context import CheckContext, FileState
from guards.findings import SEVERITIES, AttemptMeta, Finding, GuardReport
from guards.patch import Patch, PatchError, parse_patch
from guards.registry import (
    BUILTIN_SPEC,
    ENTRY_POINT_GROUP,
    LoadError,
    RuleRegistry,
    autoload_enabled,
)
from guards.rules.paths import safe_paths
from guards.settings import GuardSettings, load_settings
from labwarden.config import WorkspaceConfig

if TYPE_CHECKING:
    from guards.audit import AuditStore

# Findings the engine itself produces (listed by `labwarden guards list`).
CORE_RULES = {
    "patch.malformed": "The text is not a unified diff we can read (garbage, miscounted hunks).",
    "patch.does_not_apply": "The patch does not apply to the workspace as `git apply` would.",
    "patch.syntax": "A Python file would not parse after the patch, so it cannot be checked.",
    "guards.error": "A rule or plugin failed to load or raised: blocked until it is fixed.",
}

_CACHE: dict[tuple[object, ...], RuleRegistry] = {}


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
    return path.read_bytes().decode("utf-8", "surrogateescape")


def _prepare_files(patch: Patch, config: WorkspaceConfig) -> tuple[list[FileState],
                                                                   list[Finding]]:
    states, findings = [], []
    for change in patch.files:
        if not safe_paths(change, config.root) or change.binary:
            continue  # reported by the path rules; never read or applied
        before = _read(config.root, change.old_path)
        try:
            after = apply_file(change, before)
        except ApplyError as e:
            hint = " The patch has CRLF line endings." if patch.has_crlf else ""
            findings.append(Finding("patch.does_not_apply", "block", change.path, 0, "",
                                    f"{e}{hint}"))
            continue
        state = FileState(change, before, after)
        if state.is_python and after is not None and state.analysis("after") is None:
            findings.append(Finding("patch.syntax", "block", change.path, 0, "",
                                    f"the file does not parse after the patch "
                                    f"({state.syntax_error})."))
            continue
        states.append(state)
    return states, findings


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
    try:
        patch = parse_patch(patch_text)
    except PatchError as e:
        report = GuardReport(findings=[*findings, Finding("patch.malformed", "block", "", 0, "",
                                                          str(e))])
        if audit is not None:
            report.audit_id = audit.record(report, patch_text, str(config.root), meta)
        return report

    states, engine_findings = _prepare_files(patch, config)
    findings += engine_findings
    context = CheckContext(config, settings, patch, states)
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
    report = GuardReport(findings=_tidy(findings), files=[c.path for c in patch.files])
    if audit is not None:
        report.audit_id = audit.record(report, patch_text, str(config.root), meta)
    return report


def _tidy(findings: list[Finding]) -> list[Finding]:
    order = {s: i for i, s in enumerate(SEVERITIES)}
    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=lambda f: (order[f.severity], f.file, f.line, f.rule_id))
