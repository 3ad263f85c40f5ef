"""Example labwarden guard rules: one class, one function. See the package README."""

from __future__ import annotations

import re

from guards.rules.astrule import AstRule, hit
from guards.rules.base import rule

TRACKERS = ("wandb", "mlflow", "comet_ml", "neptune")


class NoTrackersRule(AstRule):
    """A class rule on the AST helpers: reports only imports the patch adds."""

    id = "example.no-trackers"
    severity = "block"
    description = "Experiment trackers (wandb, mlflow, ...) phone home; a run has no network."

    def scan(self, mod, ctx):  # type: ignore[no-untyped-def]
        return [hit(mod, ref.node, f"imports {ref.qual}, an experiment tracker.", ref.qual)
                for ref in mod.refs if ref.qual.split(".")[0] in TRACKERS]


_CUDA_INDEX = re.compile(r"""["']cuda:\d+["']""")


@rule("example.no-cuda-index", severity="review",
      description="Hard-coded cuda:N devices break on other GPU layouts.")
def no_cuda_index(patch, context):  # type: ignore[no-untyped-def]
    out = []
    for change in patch.files:
        for line, text in change.added_lines():
            if _CUDA_INDEX.search(text):
                out.append(no_cuda_index.finding(change.path, line, text.strip(),
                                                 "hard-coded CUDA device index."))
    return out
