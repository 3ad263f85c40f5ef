"""Data leakage: any reference to the validation split, its paths or hidden files.

The val split is not mounted in the training step; this rule makes an attempt to reach it
a recorded block rather than a silent FileNotFoundError. Strings are folded first, so
`"v" + "al"` and `base64` disguises count.
"""

from __future__ import annotations

import fnmatch
import re

from guards.context import CheckContext, Hit
from guards.pyast import PyModule
from guards.rules.astrule import AstRule, hit
from labwarden.config import matches_any

_SPLIT = re.compile(r"[/\\]")


def val_component(value: str, splits: tuple[str, ...]) -> str | None:
    """The path component of `value` that names a val split (`val`, `val.bin`, `val_000`)."""
    for comp in _SPLIT.split(value.strip()):
        low = comp.lower()
        for name in splits:
            n = name.lower()
            if low == n or low.split(".")[0] == n or low.startswith((n + "_", n + "-")):
                return comp
    return None


class ValidationLeakRule(AstRule):
    id = "leakage.val"
    description = ("Training on validation data: naming the val split, its files or any hidden "
                   "path (folded strings included), or calling the frozen tree's val loaders.")

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        s = ctx.settings
        hidden = ctx.config.hidden
        state = ctx.config.state_dir.strip("/")
        out = []
        for sv in mod.strings:
            v = sv.value
            if len(v) > 1000:
                continue
            rel = v.strip().removeprefix("./")
            why = None
            comp = val_component(v, s.val_splits)
            if comp is not None:
                why = f"names the validation split ({comp!r})"
            elif hidden and (matches_any(rel, hidden) or matches_any(rel.rstrip("/") + "/x",
                                                                     hidden)):
                why = "names a hidden path"
            elif state and (rel == state or rel.startswith(state + "/")
                            or f"/{state}/" in v):
                why = f"reaches into {state}/ (data, seal, ledger, audit trail)"
            else:
                for g in s.forbidden_strings:
                    if fnmatch.fnmatchcase(v, g):
                        why = f"matches the forbidden string pattern {g!r}"
                        break
            if why:
                out.append(hit(mod, sv.node, f"the string {v[:80]!r} {why}.", "string", v))
        return out
