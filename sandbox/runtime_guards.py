"""Checks the sandbox makes around every step: frozen files unchanged, seal intact.

Two independent checks, because each covers what the other cannot:
- the staged copies of frozen files (what the step actually ran or could write to) must
  hash the same as the workspace originals taken when the experiment was staged;
- the workspace's seal (eval_frozen code, tokenizer, train and val data) must verify,
  which catches a step reaching the originals by absolute path.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from sandbox.staging import digest_files


def verify_seal(root: Path, data_dir: Path) -> list[str]:
    """Problems the frozen seal finds in the workspace at root; [] when it verifies.

    eval_frozen's own verifier does the work (its public seal entry point, so there is one
    definition of what the seal covers), pointed at the workspace's `eval_frozen/`, the
    code the steps run, rather than whichever copy this process happened to import.
    """
    seal = importlib.import_module("eval_frozen.seal")
    try:
        check = seal.verify(data_dir, code_root=root / "eval_frozen")
    except Exception as e:  # EvalInputError: no seal, unreadable seal
        return [str(e)]
    return [] if check else [check.problem]


class FrozenGuard:
    """Remembers the frozen files as staged, then says what changed."""

    def __init__(self, root: Path, data_dir: Path, frozen_files: tuple[str, ...]) -> None:
        self.root = root
        self.data_dir = data_dir
        self.frozen_files = frozen_files
        self.expected = digest_files(root, frozen_files)

    def check(self, when: str, *trees: Path) -> list[str]:
        problems = []
        for tree in trees:
            for rel, digest in digest_files(tree, self.frozen_files).items():
                if digest != self.expected[rel]:
                    problems.append(f"{when}: frozen file {rel} changed in the sandbox copy")
        problems += [f"{when}: seal: {p}" for p in verify_seal(self.root, self.data_dir)]
        return problems
