"""One answer to "is this only a different random seed?", for the guards and the keep rule.

`guards/rules/seed.py` (the `seed.fishing` review) and `agents/patch_effect.py` (the keep
rule never keeps a seed-only patch) both compare the ASTs before and after with every
seed value blanked by `normalise`, so they cannot disagree. A seed value is:

- every argument of a call that seeds or builds a seeded generator: `manual_seed`,
  `manual_seed_all`, `seed`, `set_seed`, `seed_everything`, any name containing "seed",
  `default_rng`, `RandomState`, `PRNGKey`/`key` of jax.random, numpy's bit generators
  (`PCG64`, `MT19937`, `Philox`, `SFC64`, `SeedSequence`);
- a keyword argument named like a seed (`seed=`, `random_state=`, `rng_seed=`);
- the value assigned to a name or attribute containing "seed" (`SEED = 7`).

`torch.Generator(device)` takes a device, not a seed, so its arguments are code.
"""

from __future__ import annotations

import ast
import re

SEED_CALLS = re.compile(r"seed|^(default_rng|RandomState|PRNGKey|PCG64|PCG64DXSM|MT19937|"
                        r"Philox|SFC64)$", re.IGNORECASE)
SEED_KEYWORDS = re.compile(r"seed|^random_state$", re.IGNORECASE)
SEED_NAMES = re.compile(r"seed", re.IGNORECASE)
SEEDISH = re.compile(r"seed|rng|random_state|prngkey|pcg64|mt19937|philox|sfc64",
                     re.IGNORECASE)
"""What a changed line must mention for the change to possibly be seed-only (a fast gate)."""


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _jax_key(node: ast.Call) -> bool:
    """`jax.random.key(0)` / `random.key(0)`: the new-style PRNG key."""
    f = node.func
    return isinstance(f, ast.Attribute) and f.attr == "key" and _name(f.value) == "random"


class _Blank(ast.NodeTransformer):
    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if SEED_CALLS.search(_name(node.func)) or _jax_key(node):
            node.args = [ast.Constant("<seed>") for _ in node.args]
            for kw in node.keywords:
                kw.value = ast.Constant("<seed>")
        for kw in node.keywords:
            if kw.arg and SEED_KEYWORDS.search(kw.arg):
                kw.value = ast.Constant("<seed>")
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        self.generic_visit(node)
        if node.targets and all(SEED_NAMES.search(_name(t)) for t in node.targets):
            node.value = ast.Constant("<seed>")
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        self.generic_visit(node)
        if node.value is not None and SEED_NAMES.search(_name(node.target)):
            node.value = ast.Constant("<seed>")
        return node


def normalise(source: str | ast.AST) -> str:
    """The AST dump of `source` with every seed value blanked (raises SyntaxError)."""
    tree = ast.parse(source) if isinstance(source, str) else source
    return ast.dump(_Blank().visit(tree), include_attributes=False)


def plain(source: str) -> str:
    """The AST dump with nothing blanked: equal dumps mean no effect at all."""
    return ast.dump(ast.parse(source), include_attributes=False)


def seed_only(before: str, after: str) -> bool:
    """Do two versions of a file differ, and only in seed values?"""
    return plain(before) != plain(after) and normalise(before) == normalise(after)
