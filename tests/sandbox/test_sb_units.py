"""Fast sandbox tests: staging and patch rules, settings, container settings, selection,
image input hashing, the runtime guard. No engine needed except where marked."""

from __future__ import annotations

from pathlib import Path

import pytest

from labwarden.config import load_config
from labwarden.errors import ConfigError, InputError
from sandbox.backend import Limits, Mount, SandboxBackend, StepOutcome, StepSpec
from sandbox.settings import SandboxSettings
from sandbox.spec import ExperimentSpec
from sandbox.staging import apply_patch, stage

TOML = """
[workspace]
editable = ["trainer/**"]
frozen = ["eval_frozen/**", "labwarden.toml"]
hidden = [".labwarden/data/*/val/**"]
"""


def _workspace(root: Path, extra: str = "") -> Path:
    (root / "trainer").mkdir(parents=True)
    (root / "trainer" / "train.py").write_text("LR = 0.02\nSTEPS = 10\n")
    (root / "eval_frozen").mkdir()
    (root / "eval_frozen" / "evaluate.py").write_text("X = 1\n")
    (root / "notes.txt").write_text("neither editable nor frozen\n")
    (root / "labwarden.toml").write_text(TOML + extra)
    return root


def _diff(root: Path, rel: str, new: str) -> str:
    import difflib

    old = (root / rel).read_text().splitlines(True)
    return "".join(difflib.unified_diff(old, new.splitlines(True), f"a/{rel}", f"b/{rel}"))


def test_stage_copies_editable_and_frozen_code_only(tmp_path: Path) -> None:
    cfg = load_config(_workspace(tmp_path / "ws"))
    staged = stage(cfg, None, tmp_path / "run")
    assert (staged.work / "trainer" / "train.py").is_file()
    assert (staged.work / "eval_frozen" / "evaluate.py").is_file()
    assert not (staged.work / "notes.txt").exists()
    assert not (staged.frozen / "trainer").exists()
    assert set(staged.frozen_files) == {"eval_frozen/evaluate.py", "labwarden.toml"}


def test_stage_takes_editable_files_from_base_dir(tmp_path: Path) -> None:
    cfg = load_config(_workspace(tmp_path / "ws"))
    base = tmp_path / "best"
    (base / "trainer").mkdir(parents=True)
    (base / "trainer" / "train.py").write_text("LR = 0.5\n")
    (base / "eval_frozen").mkdir()
    (base / "eval_frozen" / "evaluate.py").write_text("X = 'tampered in base'\n")
    staged = stage(cfg, base, tmp_path / "run")
    assert (staged.work / "trainer" / "train.py").read_text() == "LR = 0.5\n"
    # Frozen code always comes from the workspace, never from base_dir.
    assert (staged.work / "eval_frozen" / "evaluate.py").read_text() == "X = 1\n"


def test_apply_patch_applies_and_refuses(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    cfg = load_config(ws)
    staged = stage(cfg, None, tmp_path / "run")
    good = tmp_path / "good.diff"
    good.write_text(_diff(ws, "trainer/train.py", "LR = 0.04\nSTEPS = 10\n"))
    assert apply_patch(cfg, staged.work, good) is None
    assert (staged.work / "trainer" / "train.py").read_text().startswith("LR = 0.04")
    # The same patch again no longer applies: refused with git's reason.
    reason = apply_patch(cfg, staged.work, good)
    assert reason and reason.startswith("git apply --check:")
    frozen = tmp_path / "frozen.diff"
    frozen.write_text(_diff(ws, "eval_frozen/evaluate.py", "X = 2\n"))
    assert apply_patch(cfg, staged.work, frozen) == (
        "the patch touches eval_frozen/evaluate.py, which is not editable"
    )
    garbage = tmp_path / "garbage.diff"
    garbage.write_text("this is not a diff\n")
    assert apply_patch(cfg, staged.work, garbage)


def test_rename_out_of_editable_is_refused(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    cfg = load_config(ws)
    staged = stage(cfg, None, tmp_path / "run")
    rename = tmp_path / "rename.diff"
    rename.write_text(
        "diff --git a/trainer/train.py b/eval_frozen/train.py\n"
        "similarity index 100%\nrename from trainer/train.py\n"
        "rename to eval_frozen/train.py\n"
    )
    assert apply_patch(cfg, staged.work, rename) == (
        "the patch touches eval_frozen/train.py, which is not editable"
    )


def test_settings_parse_and_reject(tmp_path: Path) -> None:
    cfg = load_config(
        _workspace(
            tmp_path / "ws",
            '[sandbox]\nmemory_mb = 1024\npids = 32\nexport_allowance_s = 5\n'
            'backend = "local"\n',
        )
    )
    settings = SandboxSettings.from_config(cfg)
    assert settings.limits.memory_mb == 1024 and settings.limits.pids == 32
    assert settings.export_allowance_s == 5.0 and settings.backend == "local"
    assert settings.startup_allowance_s is None  # the profile's
    bad = load_config(_workspace(tmp_path / "bad", "[sandbox]\npids = -1\n"))
    with pytest.raises(ConfigError, match="pids must be a positive number, but got -1"):
        SandboxSettings.from_config(bad)
    typo = load_config(_workspace(tmp_path / "typo", "[sandbox]\nmemroy_mb = 5\n"))
    with pytest.raises(ConfigError, match="unknown key"):
        SandboxSettings.from_config(typo)


def _step(tmp_path: Path, gpus=None) -> StepSpec:  # noqa: ANN001
    return StepSpec(
        name="train",
        argv=("python", "-m", "trainer.train"),
        env={"LABWARDEN_OUT_DIR": "{root}/out"},
        mounts=(Mount(tmp_path, "ws"), Mount(tmp_path, "out", read_only=False)),
        workdir="ws",
        time_limit_s=10,
        log_path=tmp_path / "log",
        limits=Limits(memory_mb=1024, pids=64, cpus=1.5),
        gpus=gpus,
    )


def test_container_settings_are_locked_down(tmp_path: Path) -> None:
    from sandbox.docker.containers import container_kwargs

    kw = container_kwargs(_step(tmp_path), "img")
    assert kw["network_mode"] == "none" and kw["read_only"] is True
    assert kw["cap_drop"] == ["ALL"] and kw["security_opt"] == ["no-new-privileges"]
    assert kw["user"] == "65534:65534" and kw["init"] is True
    assert kw["pids_limit"] == 64 and kw["mem_limit"] == kw["memswap_limit"] == "1024m"
    assert kw["nano_cpus"] == 1_500_000_000
    assert "exec" in kw["tmpfs"]["/tmp"].split(",")
    assert kw["environment"]["LABWARDEN_OUT_DIR"] == "/sandbox/out"
    assert [(m["Target"], m["ReadOnly"]) for m in kw["mounts"]] == [
        ("/sandbox/ws", True),
        ("/sandbox/out", False),
    ]
    assert "device_requests" not in kw


@pytest.mark.parametrize(
    ("gpus", "count", "ids"), [("all", -1, None), ([0, 2], None, ["0", "2"]), ("1", None, ["1"])]
)
def test_gpu_device_requests(tmp_path: Path, gpus, count, ids) -> None:  # noqa: ANN001
    from sandbox.docker.containers import container_kwargs

    (request,) = container_kwargs(_step(tmp_path, gpus), "img")["device_requests"]
    assert request["Capabilities"] == [["gpu"]]
    assert request.get("Count") == count if count else request["DeviceIDs"] == ids


def test_get_backend_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox import get_backend

    assert get_backend("local").name == "local"
    with pytest.raises(InputError, match="backend must be one of docker, local, but got 'podman'"):
        get_backend("podman")


def test_missing_engine_is_one_actionable_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.docker import prereqs
    from sandbox.errors import SandboxUnavailable

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(SandboxUnavailable) as info:
        prereqs.connect(timeout=1)
    message = str(info.value)
    assert "\n" not in message and "--backend local" in message and "dockerd" in message


def test_image_hash_follows_its_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.docker import images

    before = images.offline_inputs_hash()
    assert before == images.offline_inputs_hash()
    fake = tmp_path / "images"
    fake.mkdir()
    for name in ("Dockerfile.offline", "requirements.txt"):
        (fake / name).write_text((images.IMAGES_DIR / name).read_text())
    monkeypatch.setattr(images, "IMAGES_DIR", fake)
    assert images.offline_inputs_hash() == before
    (fake / "requirements.txt").write_text((fake / "requirements.txt").read_text() + "regex\n")
    assert images.offline_inputs_hash() != before
    assert any(r.startswith("torch==2.13.0") for r in images.pinned_requirements())


class _TamperingBackend(SandboxBackend):
    """Simulates a breach: the training step changes a frozen file in its copy."""

    name = "tampering"

    def run_step(self, step: StepSpec) -> StepOutcome:
        work = next(m.source for m in step.mounts if m.target == "ws")
        (work / "eval_frozen" / "evaluate.py").write_text("# gamed\n")
        step.log_path.write_text("tampered\n")
        return StepOutcome(
            exit_code=0, timed_out=False, oom=False, wall_seconds=0.1, overhead_seconds=0.0
        )

    def guarantees(self) -> list[tuple[str, bool, str]]:
        return []


def test_frozen_change_voids_the_experiment(tiny_workspace: Path, tmp_path: Path) -> None:
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace, ws, ignore=shutil.ignore_patterns("runs"))
    cfg = load_config(ws)
    result = _TamperingBackend().run(
        ExperimentSpec(config=cfg, patch=None, profile="tiny", experiment_id="t1", time_budget_s=1)
    )
    assert result.status == "violation" and result.val_bpb is None and result.metrics is None
    assert result.violations == [
        "after training: frozen file eval_frozen/evaluate.py changed in the sandbox copy"
    ]
    assert (result.run_dir / "result.json").is_file()
    with pytest.raises(InputError, match="already exists"):
        _TamperingBackend().run(
            ExperimentSpec(
                config=cfg, patch=None, profile="tiny", experiment_id="t1", time_budget_s=1
            )
        )


def test_unprepared_profile_is_an_input_error(tmp_path: Path) -> None:
    from sandbox.local import LocalBackend

    cfg = load_config(_workspace(tmp_path / "ws"))
    with pytest.raises(InputError, match="run 'labwarden prepare --profile tiny'"):
        LocalBackend().run(
            ExperimentSpec(config=cfg, patch=None, profile="tiny", experiment_id="x")
        )


def test_doctor_prints_measured_table(capsys: pytest.CaptureFixture[str]) -> None:
    from agents.cli import main

    assert main(["sandbox", "doctor"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("backend: ")
    assert "network blocked" in out and "local" in out.splitlines()[1]


def test_local_env_is_scrubbed_and_selects_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox.local.backend import scrubbed_env

    monkeypatch.setenv("ANTHROPIC_API_KEY", "secret")
    env = scrubbed_env(_step(tmp_path, gpus=[0, 2]), "/v")
    assert "ANTHROPIC_API_KEY" not in env and env["CUDA_VISIBLE_DEVICES"] == "0,2"
    assert env["LABWARDEN_OUT_DIR"] == "/v/out" and env["HOME"] == "/v/tmp"
    assert "CUDA_VISIBLE_DEVICES" not in scrubbed_env(_step(tmp_path, gpus="all"), "/v")


def test_seal_is_checked_against_the_workspace_code(tiny_workspace: Path, tmp_path: Path) -> None:
    import shutil

    from sandbox.runtime_guards import verify_seal

    ws = tmp_path / "ws"
    shutil.copytree(tiny_workspace, ws, ignore=shutil.ignore_patterns("runs"))
    data = ws / ".labwarden" / "data" / "tiny"
    assert verify_seal(ws, data) == []
    (ws / "eval_frozen" / "evaluate.py").write_text("# gamed\n")
    assert verify_seal(ws, data) == ["changed eval_frozen/evaluate.py"]
    (data / "seal.json").unlink()
    assert "no seal" in verify_seal(ws, data)[0]
