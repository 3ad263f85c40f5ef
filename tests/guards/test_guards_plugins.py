"""Custom rules: TOML, `module:attr` plugins, entry points, and the example package."""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

import pytest
from guards_helpers import REPO, edit

from guards.engine import build_registry, check_patch
from guards.registry import PluginError, RuleRegistry
from labwarden.config import load_config
from labwarden.errors import ConfigError

PLUGIN_SRC = '''
from guards.findings import Finding
from guards.rules.base import Rule, rule


@rule("acme.no-todo", severity="review", description="TODOs in research code")
def no_todo(patch, context):
    return [Finding("acme.no-todo", "review", f.path, n, t, "todo left in")
            for f in patch.files for n, t in f.added_lines() if "TODO" in t]


class Exploding(Rule):
    id = "acme.exploding"
    description = "always raises"

    def check(self, patch, context):
        raise RuntimeError("boom")


class NoId(Rule):
    description = "forgot its id"

    def check(self, patch, context):
        return []


def one_arg(patch):
    return []
one_arg.id = "acme.one-arg"
'''


def _with_guards(ws: Path, extra: str) -> None:
    with (ws / "labwarden.toml").open("a") as fh:
        fh.write(extra)


def _reload(ws: Path):  # type: ignore[no-untyped-def]
    return load_config(ws)


@pytest.fixture()
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme_rules.py").write_text(PLUGIN_SRC)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("LABWARDEN_DISABLE_PLUGIN_AUTOLOAD", "1")
    yield "acme_rules"
    sys.modules.pop("acme_rules", None)


def _set_plugins(ws: Path, specs: list[str]) -> None:
    text = (ws / "labwarden.toml").read_text()
    listed = ", ".join(f'"{s}"' for s in specs)
    (ws / "labwarden.toml").write_text(
        text.replace("[guards]\n", f"[guards]\nplugins = [{listed}]\n"))


def test_function_plugin_from_config(workspace: Path, plugin_module: str) -> None:
    _set_plugins(workspace, [f"{plugin_module}:no_todo"])
    config = _reload(workspace)
    registry = build_registry(config)
    assert registry.rules["acme.no-todo"].source == f"config {plugin_module}:no_todo"
    report = check_patch(edit(workspace, "trainer/train.py", "LR = 0.02 ", "LR = 0.03  # TODO "),
                         config)
    assert report.verdict == "passed"
    assert [(f.rule_id, f.severity) for f in report.findings] == [("acme.no-todo", "review")]


@pytest.mark.parametrize("spec, needle", [
    ("acme_rules:Exploding", "boom"),
    ("acme_rules:NoId", "rule id must be"),
    ("acme_rules:one_arg", "check must accept (patch, context)"),
    ("acme_rules:missing_name", "AttributeError"),
    ("no_such_module_xyz:rule", "ModuleNotFoundError"),
    ("not a spec", "module:attr"),
])
def test_broken_plugins_block_every_patch(workspace: Path, plugin_module: str, spec: str,
                                          needle: str) -> None:
    _set_plugins(workspace, [spec])
    report = check_patch(edit(workspace, "trainer/train.py", "LR = 0.02 ", "LR = 0.03 "),
                         _reload(workspace))
    assert report.blocked
    errors = [f for f in report.findings if f.rule_id == "guards.error"]
    assert errors and needle in (errors[0].message + errors[0].evidence)


def test_registry_names_the_offending_definition() -> None:
    registry = RuleRegistry()

    def check(patch, context):  # type: ignore[no-untyped-def]
        return []

    check.id = "Bad Id"  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match=r"test_guards_plugins:.*check.*rule id"):
        registry.register(check, source="test")


def test_duplicate_rule_id_is_an_error(workspace: Path, plugin_module: str) -> None:
    _set_plugins(workspace, [f"{plugin_module}:no_todo", f"{plugin_module}:no_todo"])
    registry = build_registry(_reload(workspace))
    assert any("already registered" in e.message for e in registry.errors)


def test_toml_rules_inline_and_file(workspace: Path) -> None:
    (workspace / "guard_rules.toml").write_text(
        '[[rule]]\nid = "lab.no-wandb"\nmessage = "no trackers"\n'
        'forbidden_imports = ["wandb"]\n\n'
        '[[rule]]\nid = "lab.no-magic"\nseverity = "review"\nadded_regex = ["magic"]\n'
        'paths = ["trainer/**"]\n')
    # wandb is outside the import allow-list; the workspace extends it, so only the
    # declarative rule speaks.
    _with_guards(workspace, '\nrules_file = "guard_rules.toml"\nallowed_imports = ["wandb"]\n'
                 '[[guards.rules]]\nid = "lab.no-data-dir"\ntouch = ["trainer/data/**"]\n')
    config = _reload(workspace)
    r1 = check_patch(edit(workspace, "trainer/train.py", "import math\n",
                          "import math\nimport wandb as wb\n"), config)
    assert r1.blocked and [f.rule_id for f in r1.findings] == ["lab.no-wandb"]
    r2 = check_patch(edit(workspace, "trainer/train.py", "LR = 0.02 ", "LR = 0.02 # magic"),
                     config)
    assert r2.verdict == "passed" and [f.rule_id for f in r2.findings] == ["lab.no-magic"]
    from guards_helpers import diff
    r3 = check_patch(diff("trainer/data/x.py", "", "x = 1\n"), config)
    assert "lab.no-data-dir" in {f.rule_id for f in r3.findings}


def test_bad_toml_rule_is_a_config_error(workspace: Path) -> None:
    _with_guards(workspace, '\n[[guards.rules]]\nid = "lab.x"\nregexes = ["x"]\n')
    with pytest.raises(ConfigError, match="unknown key"):
        check_patch("", _reload(workspace))


def test_disable_and_severity_override(workspace: Path) -> None:
    text = (workspace / "labwarden.toml").read_text().replace(
        "[guards]\n",
        '[guards]\ndisable = ["time.signal", "reach.import"]\n'
        'severity = {"seed.fishing" = "block"}\n')
    (workspace / "labwarden.toml").write_text(text)
    config = _reload(workspace)
    sig = edit(workspace, "trainer/train.py", "import math\n", "import math\nimport signal\n")
    assert check_patch(sig, config).verdict == "passed"
    seed = edit(workspace, "trainer/train.py", "SEED = 1337 ", "SEED = 7    ")
    assert check_patch(seed, config).verdict == "blocked"


def _install_example(site: Path) -> None:
    """Install examples/guard_plugin the way pip lays it out: package + dist-info."""
    src = REPO / "examples" / "guard_plugin"
    meta = tomllib.loads((src / "pyproject.toml").read_text())["project"]
    shutil.copytree(src / "labwarden_guard_example", site / "labwarden_guard_example")
    dist = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\n"
                                   f"Version: {meta['version']}\n")
    eps = meta["entry-points"]["labwarden.guards"]
    (dist / "entry_points.txt").write_text(
        "[labwarden.guards]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))


def test_example_plugin_is_discovered_through_its_entry_points(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    _install_example(site)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("LABWARDEN_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    _with_guards(workspace, '\nallowed_imports = ["wandb"]\n')
    import importlib.metadata as md

    eps = md.entry_points(group="labwarden.guards")
    assert {"no-trackers", "no-cuda-index"} <= {ep.name for ep in eps}  # real metadata
    config = load_config(workspace)
    registry = build_registry(config)
    assert registry.rules["example.no-trackers"].source.startswith("entry-point no-trackers")
    assert registry.rules["example.no-cuda-index"].rule.severity == "review"
    report = check_patch(edit(workspace, "trainer/train.py", "import math\n",
                              "import math\nimport wandb\n"), config)
    assert [f.rule_id for f in report.findings] == ["example.no-trackers"]
    report = check_patch(edit(workspace, "trainer/train.py", 'torch.device("cuda" if',
                              'torch.device("cuda:1" if'), config)
    assert [(f.rule_id, f.severity) for f in report.findings] == [("example.no-cuda-index",
                                                                   "review")]
    monkeypatch.setenv("LABWARDEN_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "example.no-trackers" not in build_registry(config).rules
    sys.modules.pop("labwarden_guard_example", None)
