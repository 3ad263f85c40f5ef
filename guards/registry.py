"""The rule registry: built-ins, entry-point plugins, `module:attr` plugins, TOML rules.

One path for everyone (pluggy-style): built-ins are loaded from the spec
`guards.rules.builtin:RULES` exactly as a workspace's own `module:attr` plugin is. Each
rule is checked when it registers (an id, a severity, a callable `check(patch, context)`)
and the error names the offending definition. A plugin that fails to load is remembered as
a `LoadError`; the engine turns it into a `guards.error` finding that blocks every patch
until it is fixed. Nothing is ever skipped silently.

Entry points are discovered by reading `*.dist-info/entry_points.txt` on `sys.path`
directly: `importlib.metadata` costs ~50 ms per process here, and `labwarden guards check`
must answer in well under 100 ms. Set `LABWARDEN_DISABLE_PLUGIN_AUTOLOAD=1` (or
`[guards] autoload_plugins = false`) to skip entry points.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guards.findings import SEVERITIES
from guards.rules.base import FunctionRule, Rule, describe

ENTRY_POINT_GROUP = "labwarden.guards"
AUTOLOAD_ENV = "LABWARDEN_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_SPEC = "guards.rules.builtin:RULES"
_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]*(\.[a-z0-9][a-z0-9_\-]*)*$")


class PluginError(Exception):
    """A rule definition that does not meet the contract; the message names it."""


@dataclass(frozen=True)
class RegisteredRule:
    rule: Rule
    source: str
    """Where it came from: `builtin`, `entry-point NAME (DIST)`, `config`, `toml FILE`."""


@dataclass(frozen=True)
class LoadError:
    source: str
    spec: str
    message: str


@dataclass
class EntryPoint:
    name: str
    value: str
    dist: str


@dataclass
class RuleRegistry:
    rules: dict[str, RegisteredRule] = field(default_factory=dict)
    errors: list[LoadError] = field(default_factory=list)

    def register(self, obj: Any, *, source: str) -> list[Rule]:
        """Register a rule, rule class, decorated or attribute-carrying function, or a list."""
        if isinstance(obj, list | tuple):
            return [r for item in obj for r in self.register(item, source=source)]
        rule = self._adapt(obj)
        if rule.id in self.rules:
            other = self.rules[rule.id]
            raise PluginError(f"{describe(obj)}: rule id {rule.id!r} is already registered by "
                              f"{other.source}.")
        self.rules[rule.id] = RegisteredRule(rule, source)
        return [rule]

    def _adapt(self, obj: Any) -> Rule:
        if isinstance(obj, type):
            if not issubclass(obj, Rule) and not callable(getattr(obj, "check", None)):
                raise PluginError(f"{describe(obj)}: a rule class needs a check(patch, context) "
                                  "method.")
            try:
                obj = obj()
            except Exception as e:
                raise PluginError(f"{describe(obj)}: could not be instantiated without "
                                  f"arguments ({type(e).__name__}: {e}).") from None
        if isinstance(obj, Rule):
            rule = obj
        elif callable(getattr(obj, "check", None)):
            rule = FunctionRule(obj.check, id=getattr(obj, "id", ""),
                                severity=getattr(obj, "severity", "block"),
                                description=getattr(obj, "description", ""))
        elif callable(obj):
            rule = FunctionRule(obj, id=getattr(obj, "id", getattr(obj, "rule_id", "")),
                                severity=getattr(obj, "severity", "block"),
                                description=getattr(obj, "description", "") or (
                                    (obj.__doc__ or "").strip().splitlines() or [""])[0])
        else:
            raise PluginError(f"{describe(obj)}: not a rule (expected a Rule, a class with "
                              "check(), or a function check(patch, context)).")
        self._validate(rule, obj)
        return rule

    @staticmethod
    def _validate(rule: Rule, obj: Any) -> None:
        where = describe(obj)
        if not isinstance(rule.id, str) or not _ID.match(rule.id):
            raise PluginError(f"{where}: rule id must be dotted lower-case words "
                              f"(like 'myorg.no-wandb'), but got {rule.id!r}.")
        if rule.severity not in SEVERITIES:
            raise PluginError(f"{where}: severity must be one of {', '.join(SEVERITIES)}, but "
                              f"got {rule.severity!r}.")
        fn = rule.fn if isinstance(rule, FunctionRule) else rule.check
        code = getattr(fn, "__code__", None)
        if code is not None:
            positional = code.co_argcount - (1 if hasattr(fn, "__self__") else 0)
            has_varargs = bool(code.co_flags & 0x04)
            if positional < 2 and not has_varargs:
                raise PluginError(f"{where}: check must accept (patch, context), but takes "
                                  f"{positional} positional argument(s).")

    def load_spec(self, spec: str, *, source: str) -> None:
        """Import `module:attr` and register what it names; failures become LoadErrors."""
        try:
            obj = load_object(spec)
            self.register(obj, source=source)
        except Exception as e:  # a broken plugin must block, never crash the check
            self.errors.append(LoadError(source, spec, f"{type(e).__name__}: {e}"))

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        for ep in discover_entry_points(group):
            self.load_spec(ep.value, source=f"entry-point {ep.name} ({ep.dist})")


def load_object(spec: str) -> Any:
    module_name, sep, attr = spec.strip().partition(":")
    if not sep or not module_name or not attr:
        raise PluginError(f"{spec!r} is not a 'module:attr' spec.")
    obj: Any = importlib.import_module(module_name.strip())
    for part in attr.strip().split("."):
        obj = getattr(obj, part)
    return obj


def discover_entry_points(group: str) -> list[EntryPoint]:
    """Entry points of `group` from every installed distribution on `sys.path`."""
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for entry in sys.path:
        folder = Path(entry or ".")
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in sorted(names):
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            dist = name.rsplit("-", 1)[0] if name.endswith(".dist-info") else name[:-9]
            dist = dist.split("-")[0]
            key = dist.lower().replace("-", "_")
            if key in seen:  # the first distribution on sys.path wins, as importlib does
                continue
            try:
                text = (folder / name / "entry_points.txt").read_text(encoding="utf-8")
            except OSError:
                continue
            seen.add(key)
            found.extend(EntryPoint(n, v, dist) for n, v in _parse_entry_points(text, group))
    return found


def _parse_entry_points(text: str, group: str) -> list[tuple[str, str]]:
    out = []
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            continue
        if current == group and "=" in line:
            name, _, value = line.partition("=")
            out.append((name.strip(), value.split("[")[0].strip()))
    return out


def autoload_enabled(config_flag: bool) -> bool:
    return config_flag and os.environ.get(AUTOLOAD_ENV, "") in ("", "0", "false")
