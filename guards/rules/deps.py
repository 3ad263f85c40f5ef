"""Dependencies: installing packages or editing dependency files changes what runs, unseen."""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import PurePosixPath

from guards.context import CheckContext, Hit
from guards.findings import Finding
from guards.patch import Patch
from guards.pyast import PyModule
from guards.rules._match import first_match
from guards.rules.astrule import AstRule, hit

DEP_FILES = (
    "requirements*.txt", "requirements*.in", "constraints*.txt", "pyproject.toml", "setup.py",
    "setup.cfg", "Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock", "pdm.lock",
    "environment.yml", "environment.yaml", "conda*.yml", "conda*.yaml", "*.pth",
    "sitecustomize.py", "usercustomize.py", "Dockerfile", "*.dockerfile", "Containerfile",
    "MANIFEST.in", "tox.ini", ".python-version",
)
INSTALLERS = ("pip", "ensurepip", "site.addsitedir", "setuptools.sandbox", "pkg_resources",
              "conda", "micropip", "uv")
_INSTALL = re.compile(
    r"\b(pip3?|uv\s+pip|uv|conda|mamba|micromamba|poetry|pipx|easy_install|apt(-get)?|apk|"
    r"yum|dnf|npm|cargo)\s+(-\S+\s+)*(install|add|sync)\b|-m\s+pip\b|\bensurepip\b",
    re.IGNORECASE)


class DependencyRule(AstRule):
    id = "deps.install"
    description = ("Installing packages (pip in code or strings) or editing dependency files "
                   "(requirements, pyproject, .pth, sitecustomize).")

    def check(self, patch: Patch, context: CheckContext) -> list[Finding]:
        out = []
        for change in patch.files:
            for p in change.paths:
                name = PurePosixPath(p).name
                if any(fnmatch.fnmatch(name, g) for g in DEP_FILES):
                    out.append(self.finding(p, 0, f"{change.status} {p}",
                                            "dependency and interpreter-startup files may not "
                                            "be changed by patches."))
        return out + super().check(patch, context)

    def scan(self, mod: PyModule, ctx: CheckContext) -> list[Hit]:
        out = []
        for ref in mod.refs:
            if first_match(ref.qual, INSTALLERS):
                out.append(hit(mod, ref.node, f"uses {ref.qual}: installing packages is not "
                               "allowed.", "ref", ref.qual))
        for sv in mod.strings:
            if _INSTALL.search(sv.value):
                out.append(hit(mod, sv.node, f"the string {sv.value[:60]!r} installs packages.",
                               "string", sv.value))
        for node in mod.nodes:  # argv lists: ["uv", "pip", "install", ...]
            if isinstance(node, ast.List | ast.Tuple) and node.elts and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
                argv = " ".join(e.value for e in node.elts)  # type: ignore[attr-defined]
                if _INSTALL.search(argv):
                    out.append(hit(mod, node, f"the command {argv[:60]!r} installs packages.",
                                   "argv", argv))
        return out
