"""Rules see through disguises, compare before/after, and leave ordinary code alone."""

from __future__ import annotations

import pytest
from guards_helpers import edit

from guards.engine import check_patch

MAIN = "    t_start = time.perf_counter()\n"


def _check(config, text: str, anchor: str = MAIN):  # type: ignore[no-untyped-def]
    return check_patch(edit(config.root, "trainer/train.py", anchor, anchor + text), config)


@pytest.mark.parametrize("code, rule", [
    ("    import time as t; t.monotonic = lambda: 0\n", "time.timer"),
    ("    from time import perf_counter as pc; pc = lambda: 0\n", "time.timer"),
    ("    vars(time)['perf_counter'] = lambda: 0\n", "time.timer"),
    ("    time.__dict__['perf_counter'] = lambda: 0\n", "time.timer"),
    ("    clock = time; clock.perf_counter = lambda: 0\n", "time.timer"),
    ("    setattr(time, ''.join(map(chr, [112, 101, 114, 102, 95, 99, 111, 117, 110, 116, 101, "
     "114])), int)\n", "time.timer"),
    ("    import codecs; setattr(time, codecs.decode('cresf_pbhagre', 'rot13'), int)\n",
     "time.timer"),
    ("    f = eval; f('1')\n", "dynamic.code"),
    ("    __builtins__['ex' + 'ec']('x = 1')\n", "introspection.frames"),
    ("    getattr(__import__('bui' + 'ltins'), 'exec')('1')\n", "dynamic.code"),
    ("    os.environ['LABWARDEN_OUT_DIR'] = '/tmp/x'\n", "escape.env"),
    ("    os.putenv('LABWARDEN_TIME_BUDGET', '999')\n", "escape.env"),
    ("    os.environ.update({'PYTHONPATH': '/tmp'})\n", "escape.env"),
    ("    m = sys.modules['eval_frozen.dataloader']\n", "escape.env"),
    ("    import socket as s; s.create_connection(('x', 80))\n", "escape.network"),
    ("    from os import system as run_it; run_it('id')\n", "escape.process"),
    ("    os.fork()\n", "escape.process"),
    ("    import pickle; pickle.load(open('/tmp/x.pkl', 'rb'))\n", "escape.pickle"),
    ("    fr = sys._getframe(); up = fr.f_back\n", "introspection.frames"),
    ("    import gc as g; objs = g.get_referrers(model)\n", "introspection.frames"),
    ("    globals().update(budget_s=1e9)\n", "introspection.globals"),
    ("    print('val bpb', 0.9)\n", "metric.spoof"),
    ("    open(str(data_dir) + '/val/shard_000.bin', 'rb')\n", "leakage.val"),
    ("    import subprocess; subprocess.run(['uv', 'pip', 'install', 'x'])\n", "deps.install"),
    ("    from eval_frozen.dataloader import _private_helper\n", "evaluator.import"),
    ("    import eval_frozen.evaluate\n", "evaluator.import"),
    ("    signal = __import__('signal'); signal.alarm(0)\n", "dynamic.code"),
    ("    import atexit; atexit.register(print, 'done')\n", "time.signal"),
    ("    getattr(os, name_from_somewhere)('id')\n", "dynamic.getattr"),
    ("    import multiprocessing as mp; mp.set_start_method('spawn', force=True)\n",
     "reach.import"),
])
def test_disguised_cheats_are_blocked(config, code: str, rule: str) -> None:  # type: ignore[no-untyped-def]
    report = _check(config, code)
    assert report.blocked, report.render()
    assert rule in {f.rule_id for f in report.findings if f.severity == "block"}, report.render()


def test_findings_point_at_the_added_line(config) -> None:  # type: ignore[no-untyped-def]
    report = _check(config, "    x = 1\n    time.perf_counter = lambda: 0.0\n")
    (f,) = [f for f in report.findings if f.rule_id == "time.timer"]
    text = (config.root / "trainer/train.py").read_text().splitlines()
    line = text.index(MAIN.rstrip("\n")) + 3  # after t_start and x = 1
    assert (f.rule_id, f.file, f.line) == ("time.timer", "trainer/train.py", line)
    assert f.evidence == "time.perf_counter = lambda: 0.0"


def test_preexisting_code_is_not_reported_and_moved_code_is_not_either(config) -> None:  # type: ignore[no-untyped-def]
    # The trainer already imports `resource` and reads LABWARDEN_* variables; moving a
    # hyperparameter block around is a refactor, not a cheat.
    path = config.root / "trainer/train.py"
    text = path.read_text()
    block = "LOG_EVERY = 50            # print a progress line every this many steps\n"
    moved = text.replace(block, "").replace("SEED = 1337", block + "SEED = 1337")
    from guards_helpers import diff

    report = check_patch(diff("trainer/train.py", text, moved), config)
    assert report.verdict == "passed" and not report.findings, report.render()


@pytest.mark.parametrize("code, severity", [
    ("    os.environ['TOKENIZERS_PARALLELISM'] = 'false'\n", "review"),
    ("    for name in ('q', 'k'): getattr(model, name)\n", "review"),
])
def test_borderline_code_goes_to_review(config, code: str, severity: str) -> None:  # type: ignore[no-untyped-def]
    report = _check(config, code)
    assert report.verdict == "passed", report.render()
    assert report.findings and {f.severity for f in report.findings} == {severity}


@pytest.mark.parametrize("code", [
    "    torch.save(model.state_dict(), out_dir / 'ckpt.pt')\n"
    "    model.load_state_dict(torch.load(out_dir / 'ckpt.pt', weights_only=True))\n",
    "    torch.backends.cuda.matmul.allow_tf32 = True\n",
    "    gc_every = 100  # a name that merely contains gc\n",
    "    interval = 0.5 * budget_s  # reading the budget for a schedule is fine\n",
    "    evaluation_note = 'validate later'\n",
    "    self_attn_scale = math.sqrt(2.0)\n",
])
def test_ordinary_code_passes(config, code: str) -> None:  # type: ignore[no-untyped-def]
    report = _check(config, code)
    assert report.verdict == "passed" and not report.findings, report.render()


def test_rule_that_raises_blocks_with_guards_error(config) -> None:  # type: ignore[no-untyped-def]
    from guards.engine import build_registry
    from guards.registry import RuleRegistry

    registry = RuleRegistry(rules=dict(build_registry(config).rules))

    def crash(patch, context):  # type: ignore[no-untyped-def]
        raise ValueError("bad rule")

    crash.id = "t.crash"  # type: ignore[attr-defined]
    registry.register(crash, source="test")
    report = check_patch(edit(config.root, "trainer/train.py", "LR = 0.02 ", "LR = 0.03 "),
                         config, registry=registry)
    assert report.blocked
    (f,) = report.findings
    assert f.rule_id == "guards.error" and "t.crash" in f.message and "bad rule" in f.evidence


UTIL = '''import os
import numpy as clock

KEY = "TOKENIZERS_PARALLELISM"


def stamp():
    clock.perf_counter = 0


def quiet():
    os.environ[KEY] = "false"


SIZES = (1,
2)
'''


@pytest.mark.parametrize("old, new, rule", [
    ("import numpy as clock\n", "import time as clock\n", "time.timer"),
    ('KEY = "TOKENIZERS_PARALLELISM"', 'KEY = "LABWARDEN_TIME_" + "BUDGET"', "escape.env"),
])
def test_unchanged_code_is_rechecked_when_what_it_names_changes(config, old: str, new: str,
                                                               rule: str) -> None:  # type: ignore[no-untyped-def]
    """Chunks are cached, but a chunk whose names mean something new is scanned again."""
    (config.root / "trainer" / "util.py").write_text(UTIL)
    report = check_patch(edit(config.root, "trainer/util.py", old, new), config)
    assert rule in {f.rule_id for f in report.findings if f.severity == "block"}, report.render()
    hit = next(f for f in report.findings if f.rule_id == rule)
    assert hit.line in (8, 12)  # the unchanged line whose meaning the patch changed


def test_chunk_split_fallback_keeps_results(config) -> None:  # type: ignore[no-untyped-def]
    (config.root / "trainer" / "util.py").write_text(UTIL)
    report = check_patch(edit(config.root, "trainer/util.py", "2)\n", "2)\nimport ctypes\n"),
                         config)
    assert {f.rule_id for f in report.findings} == {"escape.process", "reach.import"}
    assert {f.line for f in report.findings} == {17}


@pytest.mark.parametrize("code, rule", [
    ("    float = lambda x: 9e9\n", "escape.env"),
    ("    from time import *\n", "escape.env"),
    ("    type(time).__setattr__(time, 'perf_counter', int)\n", "introspection.frames"),
])
def test_indirect_rebinding_is_blocked(config, code: str, rule: str) -> None:  # type: ignore[no-untyped-def]
    report = _check(config, code)
    assert rule in {f.rule_id for f in report.findings if f.severity == "block"}, report.render()


def test_sandbox_settings_reads_are_frozen(config) -> None:  # type: ignore[no-untyped-def]
    old = 'out_dir = Path(os.environ.get("LABWARDEN_OUT_DIR", ".labwarden/runs/manual"))'
    new = 'out_dir = Path(os.environ.get("LABWARDEN_OUT_DIR", ".labwarden/runs/manual")) / "x"'
    report = check_patch(edit(config.root, "trainer/train.py", old, new), config)
    assert "evaluator.export" in {f.rule_id for f in report.findings if f.severity == "block"}


def test_hostile_folding_is_bounded_and_blocks(config) -> None:  # type: ignore[no-untyped-def]
    import time

    code = "    _x = ''.join([chr(c % 90 + 32) for c in range(9999)])\n" * 30
    t = time.process_time()
    report = _check(config, code)
    assert time.process_time() - t < 10  # bounded work, even on a loaded CI machine
    assert "dynamic.code" in {f.rule_id for f in report.findings if f.severity == "block"}


_EMBED = "        x = rms_norm(self.wte(idx))\n"


@pytest.mark.parametrize("lines", [
    # a bigram hash of the previous token and this one (research code does this)
    "        prev = F.pad(idx[:, :-1], (1, 0))\n"
    "        x = rms_norm(self.wte(idx) + self.wte((prev * 31 + idx) % self.wte.num_embeddings))\n",
    "        h = (idx.long() * 7 + 3) % 1000\n        x = rms_norm(self.wte(idx) + self.wte(h))\n",
])
def test_token_ids_from_the_past_position_by_position_pass(config, lines: str) -> None:  # type: ignore[no-untyped-def]
    report = check_patch(edit(config.root, "trainer/train.py", _EMBED, lines), config)
    assert not report.findings, report.render()


@pytest.mark.parametrize("shift", ["idx[:, 1:]", "(idx * 1)[:, 2:]", "idx[:, -1:]",
                                   "idx.view(-1)", "idx.cumsum(1)", "F.pad(idx, (0, 1))",
                                   "torch.roll(idx, -1, 1)", "idx.flip(1)", "idx[:, 1]"])
def test_token_ids_moved_from_later_positions_block(config, shift: str) -> None:  # type: ignore[no-untyped-def]
    lines = (f"        t = {shift}\n        u = t % 1000\n"
             "        x = rms_norm(self.wte(idx) + self.wte(u[:, : idx.size(1)]))\n")
    report = check_patch(edit(config.root, "trainer/train.py", _EMBED, lines), config)
    assert "model.export_mode" in {f.rule_id for f in report.findings
                                   if f.severity == "block"}, report.render()
