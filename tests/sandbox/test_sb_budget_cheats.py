"""The training budget against trainers that cheat it, guards bypassed: each stand-in is
the trainer itself, run as a real experiment on both backends (see `sandbox.conformance`).

Every cheat trains a wide margin past its budget (`EXTRA`: several times the export
allowance, by its own unpatched wall clock), so no verdict depends on timing luck; every
honest run stays well inside it. The suite's allowances are the conformance suite's
(`SUITE_SANDBOX_TOML`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.conformance import _attack, _leftovers, _suite_limit
from sandbox.spec import ExperimentResult

BUDGET = 3.0
ALLOWANCE = _suite_limit("export_allowance_s")
EXTRA = 3 * ALLOWANCE
"""How long each cheat trains past its budget: three times the allowance."""

# A real little trainer: reads batches from the train split, fits a bigram model by its
# own clock, exports it. Cheats reuse its parts; `REAL` is a wall clock no cheat patches.
PRELUDE = f"""
import os, time, torch
from eval_frozen.dataloader import load_profile, train_batches
REAL = time.monotonic
EXTRA = {EXTRA}
p = load_profile(os.environ["LABWARDEN_PROFILE"])
BUDGET = float(os.environ["LABWARDEN_TIME_BUDGET"])
OUT = os.path.join(os.environ["LABWARDEN_OUT_DIR"], "model.pt2")
class Bigram(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(p.vocab_size, p.vocab_size)
    def forward(self, idx):
        return self.table(idx)
torch.manual_seed(0)
model = Bigram()
opt = torch.optim.Adam(model.parameters(), lr=0.05)
batches = train_batches(os.environ["LABWARDEN_DATA_DIR"], 8, p.seq_len)
seen = []  # batches kept for training at exit, when the loader's threads are gone
def fit(seconds, clock=None, again=False):
    clock = clock or time.monotonic
    t0, i = clock(), 0
    while clock() - t0 < seconds:
        if again:
            x, y = seen[i % len(seen)]
            i += 1
        else:
            x, y, _ = next(batches)
            if len(seen) < 64:
                seen.append((x, y))
        loss = torch.nn.functional.cross_entropy(model(x).view(-1, p.vocab_size), y.view(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
def export():
    ids = torch.zeros((2, p.seq_len), dtype=torch.long)
    batch = torch.export.Dim("batch", min=1, max=1024)
    prog = torch.export.export(model.eval(), (ids,), dynamic_shapes=({{0: batch}},))
    torch.export.save(prog, OUT)
    model.train()
    print("EXPORTED", flush=True)
"""

HONEST = """
fit(BUDGET)
export()
"""

# Each cheat, in its own disguise.
CHEATS: dict[str, str] = {
    # "Polish" on a few more batches once the timed loop is over, then export.
    "after_loop": """
fit(BUDGET)
polish_until = REAL() + EXTRA
while REAL() < polish_until:
    fit(0.5, clock=REAL)
export()
""",
    # Open the data and "warm up" before the trainer's own clock starts.
    "before_clock": """
fit(EXTRA, clock=REAL)  # warm-up, "not training"
start = time.perf_counter()
fit(BUDGET, clock=time.perf_counter)
export()
""",
    # Export honestly, then keep training at exit and export again.
    "atexit": """
import atexit
fit(BUDGET)
export()
@atexit.register
def _flush_caches():
    fit(EXTRA, clock=REAL, again=True)
    export()
""",
    # The same, hidden in a finalizer that runs at interpreter exit.
    "finalizer": """
import weakref
class Cache: pass
cache = Cache()
def _release():
    fit(EXTRA, clock=REAL, again=True)
    export()
weakref.finalize(cache, _release)
fit(BUDGET)
export()
""",
    # A second export after more training ("the better of two checkpoints").
    "second_export": """
fit(BUDGET)
export()
fit(EXTRA, clock=REAL)
export()
""",
    # The export itself wrapped: it trains before it saves.
    "wrapped_export": """
_save = torch.export.save
def _checked_save(prog, path, *a, **k):
    fit(EXTRA, clock=REAL)  # "sanity check on fresh batches"
    prog = torch.export.export(model.eval(), (torch.zeros((2, p.seq_len), dtype=torch.long),),
                               dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))
    return _save(prog, path, *a, **k)
torch.export.save = _checked_save
fit(BUDGET)
export()
""",
    # Slowed clocks: the trainer believes its budget is spent only after BUDGET + EXTRA.
    "slow_clock": """
_t0, _slow = REAL(), (BUDGET + EXTRA) / BUDGET
time.monotonic = lambda: _t0 + (REAL() - _t0) / _slow
time.perf_counter = time.monotonic
fit(BUDGET)
export()
""",
    # A non-daemon thread keeps training after the main thread is done and re-exports.
    "thread": """
import threading
fit(BUDGET)
export()
def _background():
    fit(EXTRA, clock=REAL, again=True)
    export()
threading.Thread(target=_background).start()
""",
}

# A forked child that would re-write the model late, once its parent has exited.
FORKED = """
fit(BUDGET)
export()
if os.fork() == 0:
    fit(EXTRA, clock=REAL, again=True)
    export()
    open(os.path.join(os.environ["LABWARDEN_OUT_DIR"], "late.txt"), "w").write("late\\n")
    print("CHILD_REEXPORTED", flush=True)
    os._exit(0)
"""


def _backends() -> list:  # noqa: ANN401
    return [
        pytest.param("local", id="local"),
        pytest.param("docker", id="docker", marks=pytest.mark.docker),
    ]


@pytest.fixture(params=_backends())
def run(request: pytest.FixtureRequest, suite_config) -> Callable[..., ExperimentResult]:  # noqa: ANN001
    if request.param == "docker":
        from sandbox.docker import DockerBackend

        backend = DockerBackend(client=request.getfixturevalue("docker_engine"))
    else:
        from sandbox.local import LocalBackend

        backend = LocalBackend()

    def go(source: str, tag: str, budget: float = BUDGET) -> ExperimentResult:
        return _attack(backend, suite_config, source, tag, budget=budget)

    go.backend = request.param  # type: ignore[attr-defined]
    yield go
    backend.cleanup()


def _saved(r: ExperimentResult) -> dict:
    return json.loads((r.run_dir / "result.json").read_text())


def _assert_scored(r: ExperimentResult) -> None:
    t = r.timing
    assert r.status == "ok" and r.val_bpb is not None, (r.status, r.reason, r.log_tail)
    assert t is not None and t.within_budget and not t.killed
    assert t.data_seen_by == "inotify" and t.startup_s is not None
    assert t.budget_s == BUDGET and t.export_allowance_s == ALLOWANCE
    assert t.window_s <= t.window_limit_s
    assert t.model_created_before_end_s is not None and t.model_created_before_end_s > 0
    assert _saved(r)["timing"]["window_s"] == t.window_s


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_cheat_is_rejected_for_its_budget(name: str, run) -> None:  # noqa: ANN001
    r = run(PRELUDE + CHEATS[name], f"cheat-{name}")
    t = r.timing
    assert r.status == "violation", (r.status, r.reason, r.log_tail)
    assert "budget" in r.reason and r.reason in r.violations
    assert r.val_bpb is None and r.metrics is None
    assert t is not None and not t.within_budget and not t.killed
    assert t.data_seen_by == "inotify"
    # Far past the limit, not near it: the cheat trained EXTRA on top of its budget.
    assert t.window_s >= BUDGET + EXTRA > t.window_limit_s + ALLOWANCE
    assert _saved(r)["timing"]["within_budget"] is False
    assert "EXPORTED" in (r.run_dir / "train.log").read_text()
    if name == "before_clock":
        # The window runs from the first read, at start-up, not from the trainer's clock.
        assert t.startup_s is not None and abs(t.startup_s + t.window_s - t.step_s) < 0.01


def test_a_forked_child_cannot_rewrite_the_scored_model(run) -> None:  # noqa: ANN001
    r = run(PRELUDE + FORKED, "cheat-fork")
    log = (r.run_dir / "train.log").read_text()
    late = (r.run_dir / "train" / "late.txt").exists()
    # Either the child died with the step (the model scored is the parent's, on time) or
    # the step waited for it and broke its budget; never a late model scored.
    if r.status == "ok":
        assert not late and "CHILD_REEXPORTED" not in log
        _assert_scored(r)
    else:
        assert r.status == "violation" and "budget" in r.reason, (r.status, r.reason)
    assert not _leftovers(r.run_dir)


def test_honest_stand_in_is_scored_with_its_timing(run) -> None:  # noqa: ANN001
    r = run(PRELUDE + HONEST, "honest")
    _assert_scored(r)
    t = r.timing
    assert t.startup_s < t.step_s and t.over_budget_s < ALLOWANCE
    assert t.kill_limit_s == BUDGET + _suite_limit("startup_allowance_s") + ALLOWANCE


def test_the_real_trainer_is_scored_with_its_timing(run) -> None:  # noqa: ANN001
    source = (Path(__file__).resolve().parents[2] / "trainer" / "train.py").read_text()
    r = run(source, "real")
    _assert_scored(r)
    log = (r.run_dir / "train.log").read_text()
    assert "training_seconds:" in log and r.timing.window_s >= BUDGET


def test_the_shared_shards_are_out_of_reach(run, suite_config) -> None:  # noqa: ANN001
    """The watched links are the step's only way to its data: the shared shards, by their
    host path, cannot be read to train before the first watched read."""
    from sandbox.local.isolation import has_mount_namespace, unshare_prefix

    if run.backend == "local" and not has_mount_namespace(unshare_prefix()):
        pytest.skip("no mount namespace here: the local backend cannot hide host paths")
    import shutil

    shard = next((suite_config.data_path("tiny") / "train").glob("shard_*.parquet"))
    # Another profile prepared beside it holds the same text.
    sibling = suite_config.data_path("zz-other") / "train"
    sibling.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shard, sibling / shard.name)
    sidestep = f"""
for path in [{str(shard)!r}, {str(sibling / shard.name)!r}]:
    try:
        print("SHARED_READ", len(open(path, "rb").read()), flush=True)
    except OSError as e:
        print("SHARED_BLOCKED", e, flush=True)
"""
    r = run(PRELUDE + sidestep + HONEST, "sidestep")
    log = (r.run_dir / "train.log").read_text()
    assert log.count("SHARED_BLOCKED") == 2 and "SHARED_READ" not in log, log[-500:]
    _assert_scored(r)
