"""The local backend's fresh root, for real: what a training step can see, read, write and
undo in it; the weaker levels and their refusal of built-in data; the doctor's probe; the
validation text scan on the forms the text is stored in."""

from __future__ import annotations

import gzip
import json
import os
import py_compile
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from sandbox.backend import Limits, Mount, StepSpec
from sandbox.local import LocalBackend
from sandbox.local.isolation import fresh_root_probe

needs_fresh_root = pytest.mark.skipif(
    not fresh_root_probe()[0], reason=f"no fresh root here: {fresh_root_probe()[1]}"
)

# Runs inside the step and reports what it found, one JSON line.
INSIDE = r"""
import ctypes, json, os, subprocess, sys
out = {"top": sorted(os.listdir("/")), "cwd": os.getcwd()}
paths = json.loads(sys.argv[1])
out["visible"] = [p for p in paths if os.path.lexists(p)]
try:
    import pydoc_data  # noqa
    out["pydoc_import"] = True
except ImportError:
    out["pydoc_import"] = False
def can_write(p):
    try:
        with open(p, "w") as f:
            f.write("x")
        return True
    except OSError:
        return False
out["writes"] = {p: can_write(p) for p in ["/sandbox/out/ok", "/sandbox/ws/no", "/usr/no",
                                         "/no", "/tmp/ok", "/dev/shm/ok", sys.executable]}
# An interpreter that lives under /tmp (a checkout there) is bound over the private /tmp:
# its top folder is the only other entry allowed.
runtime = {p.split("/")[2] for p in (sys.executable, sys.prefix, sys.base_prefix)
           if p.startswith("/tmp/")}
out["tmp_empty"] = (set(os.listdir("/tmp")) - runtime == {"ok"}
                    and os.listdir("/dev/shm") == ["ok"])
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
out["caps"] = int(status["CapEff"].strip(), 16) | int(status["CapBnd"].strip(), 16)
out["no_new_privs"] = status["NoNewPrivs"].strip() == "1"
libc = ctypes.CDLL(None, use_errno=True)
out["mount"] = libc.mount(b"x", b"/tmp", b"tmpfs", 0, None) == 0
out["umount"] = libc.umount2(b"/sandbox/ws", 2) == 0
# A nested user namespace would have capabilities again (over its own copy of the
# mounts, which the kernel locks read-only): try to remount the workspace writable there.
import shutil
out["unshare_present"] = shutil.which("unshare") is not None
done = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c",
                       "mount -o remount,bind,rw /sandbox/ws && touch /sandbox/ws/escaped"],
                      capture_output=True, text=True)
out["nested_remount"] = done.returncode == 0 or os.path.exists("/sandbox/ws/escaped")
out["nested_why"] = (done.stderr or done.stdout).strip()[-200:]
print("INSIDE" + json.dumps(out), flush=True)
"""


def _step(tmp_path: Path, argv: tuple[str, ...]) -> StepSpec:
    ws = tmp_path / "ws"
    out = tmp_path / "out"
    for d in (ws, out):
        d.mkdir(exist_ok=True)
    (ws / "hello.txt").write_text("hello")
    return StepSpec(
        name="train",
        argv=argv,
        env={},
        mounts=(Mount(ws, "ws"), Mount(out, "out", read_only=False)),
        workdir="ws",
        time_limit_s=120,
        log_path=tmp_path / "train.log",
        limits=Limits(memory_mb=2048, pids=64),
    )


def _inside(step: StepSpec) -> dict:
    text = step.log_path.read_text(errors="replace")
    found = [line[6:] for line in text.splitlines() if line.startswith("INSIDE")]
    assert found, text[-2000:]
    return json.loads(found[0])


@needs_fresh_root
def test_fresh_root_shows_the_step_only_its_mounts_and_the_runtime(tmp_path: Path) -> None:
    from sandbox.scan import host_pydoc_dirs

    state = tmp_path / "state"  # stands for .labwarden/: earlier runs, ledger, audit
    state.mkdir()
    (state / "ledger.sqlite").write_text("earlier experiments")
    pydoc = [str(p) for p in host_pydoc_dirs()]
    assert pydoc, "control: this host's interpreter has a pydoc_data folder"
    repo = Path(__file__).resolve().parents[2]
    hidden = [*pydoc, str(state), str(state / "ledger.sqlite"), str(repo / "sandbox"),
              str(repo / "labwarden.toml"), str(Path.home() / ".cache"), "/var", "/opt",
              "/usr/share/doc", "/usr/local/lib", "/etc/shadow", "/run"]
    assert all(os.path.lexists(p) for p in hidden[:5]), "control: the host has them"
    step = _step(tmp_path, ("python", "-I", "-c", INSIDE, json.dumps(hidden)))
    outcome = LocalBackend(isolation="fresh-root").run_step(step)
    seen = _inside(step)
    assert outcome.exit_code == 0, step.log_path.read_text()[-2000:]
    assert seen["visible"] == [] and not seen["pydoc_import"]
    assert seen["cwd"] == "/sandbox/ws"
    runtime_tops = {Path(p).parts[1] for p in (sys.executable, sys.base_prefix, sys.prefix)}
    allowed = {"sandbox", "tmp", "proc", "sys", "dev", "etc", "usr", "bin", "sbin", "lib",
               "lib32", "lib64", "libx32", *runtime_tops}
    assert set(seen["top"]) <= allowed, seen["top"]
    assert seen["writes"] == {"/sandbox/out/ok": True, "/sandbox/ws/no": False, "/usr/no": False,
                              "/no": False, "/tmp/ok": True, "/dev/shm/ok": True,
                              sys.executable: False}
    assert seen["tmp_empty"]
    assert seen["caps"] == 0 and seen["no_new_privs"]
    assert not seen["mount"] and not seen["umount"]
    assert seen["unshare_present"] and not seen["nested_remount"], seen["nested_why"]
    assert not (tmp_path / "ws" / "escaped").exists()
    assert (tmp_path / "out" / "ok").read_text() == "x"


@needs_fresh_root
def test_fresh_root_runs_torch_from_the_venv(tmp_path: Path) -> None:
    code = ("import torch, numpy; x = torch.ones(64, 64); "
            "print('TORCH_OK', float((x @ x).sum()), numpy.__version__)")
    step = _step(tmp_path, ("python", "-c", code))
    outcome = LocalBackend(isolation="fresh-root").run_step(step)
    log = step.log_path.read_text()
    assert outcome.exit_code == 0 and "TORCH_OK 262144.0" in log, log[-2000:]


def test_step_plan_is_an_allow_list(tmp_path: Path) -> None:
    from sandbox.local.rootfs import step_plan

    step = _step(tmp_path, ("true",))
    plan = step_plan(step, tmp_path / "root")
    binds = [e for e in plan["entries"] if e[0] == "bind"]
    sources = [Path(e[1]) for e in binds]
    assert not [s for s in sources if "pydoc_data" in s.parts]
    repo = Path(__file__).resolve().parents[2]
    venv = Path(sys.prefix).resolve()
    # From the workspace only the venv's parts and the step's own mounts.
    from_repo = [s for s in sources if repo in s.parents and venv not in s.parents
                 and s != venv / "pyvenv.cfg"]
    assert from_repo == [], from_repo
    assert {e[2] for e in binds if e[1] in (str(tmp_path / "ws"), str(tmp_path / "out"))} == {
        "/sandbox/ws", "/sandbox/out"}
    assert [e[3] for e in binds if e[2] == "/sandbox/out"] == [False]
    writable = {e[2] for e in binds if not e[3]}
    assert writable <= {"/sandbox/out", *(f"/dev/{n}" for n in ("null", "zero", "full", "random",
                                                                 "urandom"))} | {
        e[2] for e in binds if e[2].startswith("/dev/nvidia")}


def _builtin_config(tiny_workspace: Path, dest: Path):  # noqa: ANN202
    from sandbox.conformance import prepare_workspace

    return prepare_workspace(tiny_workspace, dest)


def test_weaker_level_refuses_builtin_data_in_one_line(
    tiny_workspace: Path, tmp_path: Path
) -> None:
    from sandbox.errors import SandboxUnavailable
    from sandbox.local.isolation import has_mount_namespace, unshare_prefix
    from sandbox.spec import ExperimentSpec

    level = "namespaces" if has_mount_namespace(unshare_prefix()) else "none"
    config = _builtin_config(tiny_workspace, tmp_path / "ws")
    spec = ExperimentSpec(config=config, patch=None, profile="tiny", experiment_id="refused")
    with pytest.raises(SandboxUnavailable) as e:
        LocalBackend(isolation=level).run(spec)
    message = str(e.value)
    assert "\n" not in message and "pydoc_data" in message
    assert "Docker" in message and "--source local:DIR" in message
    assert not (config.state_path / "runs" / "refused").exists()  # nothing ran


def test_non_builtin_data_is_not_refused(tiny_workspace: Path, tmp_path: Path) -> None:
    from sandbox.local.backend import refuse_exposed_builtin
    from sandbox.spec import ExperimentSpec

    config = _builtin_config(tiny_workspace, tmp_path / "ws")
    meta_path = config.data_path("tiny") / "source.json"
    meta = json.loads(meta_path.read_text())
    meta["source"]["spec"] = "local:/somewhere"
    meta_path.write_text(json.dumps(meta))
    spec = ExperimentSpec(config=config, patch=None, profile="tiny", experiment_id="x")
    refuse_exposed_builtin(LocalBackend(isolation="none"), spec)  # no exception


def test_probe_measures_what_each_level_exposes(tmp_path: Path) -> None:
    from sandbox.exposure import probe_exposure
    from sandbox.scan import host_pydoc_dirs

    assert host_pydoc_dirs(), "control: this host's interpreter has a pydoc_data folder"
    weak = probe_exposure(LocalBackend(isolation="none"), tmp_path / "state")
    assert weak.ran, weak.detail
    assert weak.pydoc_readable and weak.state_readable and weak.shm_shared
    if fresh_root_probe()[0]:
        strong = probe_exposure(LocalBackend(isolation="fresh-root"), tmp_path / "state")
        assert strong.ran, strong.detail
        assert not strong.pydoc_readable and not strong.state_readable and not strong.shm_shared
    assert not list((tmp_path / "state").iterdir())  # the markers are cleaned up


def test_leftovers_finds_a_process_by_its_run_marker(tmp_path: Path) -> None:
    from sandbox.conformance import _leftovers
    from sandbox.local.backend import RUN_MARKER

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = subprocess.Popen(["sleep", "30"], cwd="/", env={RUN_MARKER: str(run_dir)})
    try:
        # The child's /proc entry shows its own environment once exec is done: poll for it.
        deadline = time.monotonic() + 30
        while proc.pid not in _leftovers(run_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.pid in _leftovers(run_dir)
        assert proc.pid not in _leftovers(tmp_path / "another-run")
    finally:
        proc.kill()
        proc.wait()


def _topic_needles():  # noqa: ANN202
    from pydoc_data.topics import topics

    from sandbox.scan import EXCERPT_CHARS, _scan_digest, _scan_needles, _word_windows

    windows: set[bytes] = set()
    for text in topics.values():
        windows |= _word_windows(text.strip().encode(), EXCERPT_CHARS, prose=True)
    return windows, _scan_needles(EXCERPT_CHARS, [_scan_digest(w) for w in windows],
                                  [w[:8] for w in windows])


def test_scan_finds_the_text_in_every_form_it_is_stored_in(tmp_path: Path) -> None:
    from pydoc_data import topics as module

    import pyarrow as pa
    import pyarrow.parquet as pq

    from sandbox.scan import _scan_tree

    windows, needles = _topic_needles()
    source = Path(module.__file__)
    forms = tmp_path / "forms"
    forms.mkdir()
    shutil.copyfile(source, forms / "topics.py")  # split literals with escapes
    py_compile.compile(str(source), cfile=str(forms / "topics.pyc"))  # raw text
    with zipfile.ZipFile(forms / "pkg.whl", "w", zipfile.ZIP_DEFLATED) as z:
        z.write(source, "pkg/topics.py")
    (forms / "topics.py.gz").write_bytes(gzip.compress(source.read_bytes()))
    pq.write_table(pa.table({"text": list(module.topics.values())}), forms / "val.parquet")
    for name in ("topics.py", "topics.pyc", "pkg.whl", "topics.py.gz", "val.parquet"):
        found = _scan_tree([str(forms / name)], [], needles)["found"]
        where = {p for ps in found.values() for p in ps}
        assert len(found) > 0.1 * len(windows), (name, len(found), len(windows))
        assert all(p.startswith(str(forms / name)) for p in where)
    # And nothing in prose that is not the topics (another stdlib package's docs).
    email = Path(os.path.dirname(zipfile.__file__)) / "email"
    assert _scan_tree([str(email)], [], needles)["found"] == {}


@needs_fresh_root
def test_a_root_that_cannot_be_built_is_a_sandbox_error(tmp_path: Path) -> None:
    from sandbox.errors import SandboxError

    step = _step(tmp_path, ("python", "-c", "print('STEP_RAN')"))
    broken = StepSpec(**{**step.__dict__, "mounts": (Mount(tmp_path / "missing", "ws"),)})
    with pytest.raises(SandboxError, match=r"^the train step's fresh root could not be built: "
                       r"labwarden-root: mount .*missing"):
        LocalBackend(isolation="fresh-root").run_step(broken)
    assert "STEP_RAN" not in broken.log_path.read_text()


@needs_fresh_root
def test_a_step_cannot_pass_itself_off_as_a_broken_root(tmp_path: Path) -> None:
    code = "import sys; print('labwarden-root: mount failed', flush=True); sys.exit(125)"
    step = _step(tmp_path, ("python", "-c", code))
    outcome = LocalBackend(isolation="fresh-root").run_step(step)  # an outcome, not an error
    assert outcome.exit_code == 125 and not outcome.timed_out
