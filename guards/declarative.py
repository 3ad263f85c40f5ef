"""Declarative rules from TOML: path globs, regexes over added lines, forbidden imports/calls.

    [[rule]]                      # in guards.rules_file, or [[guards.rules]] inline
    id = "lab.no-wandb"
    severity = "block"            # block | review | note (default block)
    message = "no experiment trackers in the sandbox"
    paths = ["trainer/**"]        # files the rule looks at (default: every file)
    added_regex = ["wandb\\\\."]   # regexes searched in added lines
    forbidden_imports = ["wandb"] # resolved module names (aliases followed)
    forbidden_calls = ["torch.cuda.set_per_process_memory_fraction"]
    touch = ["trainer/data/**"]   # any change to these files

Unknown keys and bad regexes are configuration errors (exit 2), not silent no-ops.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

from guards.context import CheckContext, Hit
from guards.findings import SEVERITIES, Finding
from guards.patch import Patch
from guards.pyast import PyModule
from guards.rules._match import first_match
from guards.rules.astrule import AstRule, hit
from labwarden.config import matches_any
from labwarden.errors import ConfigError

_KEYS = {"id", "severity", "message", "description", "paths", "added_regex",
         "forbidden_imports", "forbidden_calls", "touch"}


class DeclarativeRule(AstRule):
    def __init__(self, spec: dict[str, Any], where: str) -> None:
        unknown = sorted(set(spec) - _KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} in rule "
                              f"{spec.get('id', '?')!r}.")
        self.id = str(spec.get("id", ""))
        sev = spec.get("severity", "block")
        if sev not in SEVERITIES:
            raise ConfigError(f"{where}: rule {self.id!r}: severity must be block, review or "
                              f"note, but got {sev!r}.")
        self.severity = sev
        self.message = str(spec.get("message", f"matches the workspace rule {self.id}"))
        self.description = str(spec.get("description", self.message))

        def strs(key: str) -> tuple[str, ...]:
            v = spec.get(key, [])
            v = [v] if isinstance(v, str) else v
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ConfigError(f"{where}: rule {self.id!r}: {key} must be a list of strings.")
            return tuple(v)

        self.paths = strs("paths")
        self.touch = strs("touch")
        self.imports = strs("forbidden_imports")
        self.calls = strs("forbidden_calls")
        try:
            self.regexes = [re.compile(r) for r in strs("added_regex")]
        except re.error as e:
            raise ConfigError(f"{where}: rule {self.id!r}: bad regex ({e}).") from None
        if not (self.touch or self.imports or self.calls or self.regexes):
            raise ConfigError(f"{where}: rule {self.id!r} checks nothing (give touch, "
                              "added_regex, forbidden_imports or forbidden_calls).")

    def _applies(self, path: str) -> bool:
        return not self.paths or matches_any(path, self.paths)

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        out = []
        for change in patch.files:
            for p in change.paths:
                if self.touch and matches_any(p, self.touch):
                    out.append(self.finding(p, 0, f"{change.status} {p}", self.message))
            if not self._applies(change.path):
                continue
            for line, text in change.added_lines():
                for rx in self.regexes:
                    if rx.search(text):
                        out.append(self.finding(change.path, line, text.strip(), self.message))
                        break
        if self.imports or self.calls:
            out += [f for f in super().check(patch, context) if self._applies(f.file)]
        return out

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        out = []
        for ref in mod.refs:
            is_import = isinstance(ref.node, ast.Import | ast.ImportFrom)
            if self.imports and first_match(ref.qual, self.imports):
                out.append(hit(mod, ref.node, f"{self.message} ({ref.qual})", "ref", ref.qual))
            elif not is_import and self.calls and first_match(ref.qual, self.calls):
                out.append(hit(mod, ref.node, f"{self.message} ({ref.qual})", "ref", ref.qual))
        return out


def load_rules_file(path: Path) -> list[dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"guard rules file {path} not found.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e}).") from None
    rules = data.get("rule", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise ConfigError(f"{path}: rules must be an array of tables ([[rule]]).")
    return rules
