"""The one settings loader: every table a dataclass, one message shape, plugins' tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labwarden.config import load_config
from labwarden.errors import ConfigError
from labwarden.settings import declare_table, load_table

WS = '[workspace]\neditable = ["trainer/**"]\n'


def _load(tmp_path: Path, text: str):  # noqa: ANN202
    (tmp_path / "labwarden.toml").write_text(text)
    return load_config(tmp_path)


def _error(tmp_path: Path, text: str, parse=None) -> str:  # noqa: ANN001
    with pytest.raises(ConfigError) as err:
        config = _load(tmp_path, text)
        if parse is not None:
            parse(config)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_unknown_key_says_what_was_meant(tmp_path: Path) -> None:
    assert _error(tmp_path, WS + "[run]\ntime_budget = 5\n") == (
        "labwarden.toml [run]: unknown key 'time_budget' (did you mean 'time_budget_s'?)")
    assert _error(tmp_path, WS + "hiden = []\n") == (
        "labwarden.toml [workspace]: unknown key 'hiden' (did you mean 'hidden'?)")


@pytest.mark.parametrize(("text", "fragment"), [
    ('[workspace]\neditable = "trainer/**"\n',
     "labwarden.toml [workspace]: editable must be a list of strings, but got 'trainer/**'."),
    (WS + "[run]\nprofile = 7\n", "labwarden.toml [run]: profile must be a string, but got 7."),
    (WS + '[run]\ndirection = "up"\n', "[run]: direction must be one of 'minimize', 'maximize'"),
    (WS + "[run]\ntime_budget_s = true\n", "[run]: time_budget_s must be a number"),
    (WS + "[run]\ntrain_command = []\n", "[run]: train_command must be a command"),
    (WS + "[nonsense]\nx = 1\n", "labwarden.toml: unknown table [nonsense]"),
    (WS + "[sandbox]\nbackend = \"podman\"\n", "[sandbox]: backend must be one of 'docker'"),
    (WS + "[sandbox]\nmemory = 5\n", "[sandbox]: unknown key 'memory' (did you mean 'memory_mb'?)"),
    ('top = 1\n' + WS, "labwarden.toml: unknown table [top]"),
])
def test_wrong_types_and_unknown_tables(tmp_path: Path, text: str, fragment: str) -> None:
    from sandbox.settings import SandboxSettings

    assert fragment in _error(tmp_path, text, SandboxSettings.from_config)


def test_missing_workspace_table_is_a_config_error(tmp_path: Path) -> None:
    message = _error(tmp_path, '[run]\nprofile = "tiny"\n')
    assert message.startswith("labwarden.toml: no [workspace] table")


def test_agents_sub_tables(tmp_path: Path) -> None:
    from agents.config import AgentsConfig

    parse = AgentsConfig.from_workspace
    assert _error(tmp_path, WS + '[agents.tuner]\nexclude = "SEED"\n', parse) == (
        "labwarden.toml [agents.tuner]: exclude must be a list of strings, but got 'SEED'.")
    assert "[agents.hybrid]: unknown key 'shares' (did you mean 'share'?)" in _error(
        tmp_path, WS + "[agents.hybrid]\nshares = 0.5\n", parse)
    assert "[agents]: unknown key 'baseline_run' (did you mean 'baseline_runs'?)" in _error(
        tmp_path, WS + "[agents]\nbaseline_run = 2\n", parse)
    cfg = parse(_load(tmp_path, WS + '[agents.tuner]\nexclude = ["SEED", "LR"]\nstep = 0.2\n'
                                     '[agents.models]\nplanner = "m1"\n'))
    assert cfg.tuner_exclude == ("SEED", "LR") and cfg.tuner_step == 0.2
    assert cfg.models["planner"] == "m1" and cfg.models["coder"]


def test_sandbox_table_through_the_loader(tmp_path: Path) -> None:
    from sandbox.settings import SandboxSettings

    s = SandboxSettings.from_config(_load(tmp_path, WS + '[sandbox]\nbackend = "local"\n'
                                          'image = "mine:1"\nmemory_mb = 2048\n'))
    assert (s.backend, s.image, s.limits.memory_mb) == ("local", "mine:1", 2048)
    assert "[sandbox]: pids must be a positive number, but got 0" in _error(
        tmp_path, WS + "[sandbox]\npids = 0\n", SandboxSettings.from_config)


@dataclass(frozen=True)
class _PluginSettings:
    token_names: tuple[str, ...] = ()
    limit: int = field(default=3, metadata={"positive": True})


def test_a_plugin_reads_its_own_table_with_its_dataclass(tmp_path: Path) -> None:
    config = _load(tmp_path, WS + '[plugins.myorg]\ntoken_names = ["WANDB_KEY"]\n')
    assert load_table(config, "plugins.myorg", _PluginSettings).token_names == ("WANDB_KEY",)
    assert load_table(config, "plugins.other", _PluginSettings) == _PluginSettings()
    bad = _load(tmp_path, WS + "[plugins.myorg]\nlimits = 3\n")
    with pytest.raises(ConfigError, match=r"\[plugins.myorg\]: unknown key 'limits' "
                                          r"\(did you mean 'limit'\?\)"):
        load_table(bad, "plugins.myorg", _PluginSettings)
    assert "[plugins]: must be a table" in _error(tmp_path, "plugins = 3\n" + WS)
    assert "[plugins.x]: must be a table" in _error(tmp_path, WS + "[plugins]\nx = 3\n")


def test_a_declared_top_level_table_is_accepted(tmp_path: Path) -> None:
    assert "unknown table [mytool]" in _error(tmp_path, WS + "[mytool]\nlimit = 2\n")
    declare_table("mytool", _PluginSettings)
    try:
        config = _load(tmp_path, WS + "[mytool]\nlimit = 2\n")
        assert load_table(config, "mytool", _PluginSettings).limit == 2
    finally:
        from labwarden import settings

        settings._DECLARED.pop("mytool")


def test_the_repo_config_loads_every_table() -> None:
    from agents.config import AgentsConfig
    from sandbox.settings import SandboxSettings

    config = load_config(Path(__file__).resolve().parents[2])
    AgentsConfig.from_workspace(config)
    SandboxSettings.from_config(config)
    assert config.is_editable("trainer/train.py")
