"""Issue 10, second round: each class the red team found, closed by construction, in
disguises of our own (not the red team's patches, which test_guards_redteam2 replays)."""

from __future__ import annotations

import pytest
from guards_helpers import diff

from guards.bindings import bound_names
from guards.engine import check_patch

LOSS = "        loss.backward()\n"
AFTER = "    training_s = time.perf_counter() - t_train\n"
MAIN_DEF = "def main() -> int:\n"
LOGITS = "        return LOGIT_SOFTCAP * torch.tanh(logits / LOGIT_SOFTCAP)\n"
ATTN = "is_causal=True"


def _patch(config, edits: list[tuple[str, str]]) -> str:  # type: ignore[no-untyped-def]
    path = config.root / "trainer" / "train.py"
    before = path.read_text()
    text = before
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return diff("trainer/train.py", before, text)


CHEATS: dict[str, tuple[list[tuple[str, str]], str]] = {
    # every kind of binding of the budget or a clock variable
    "budget_walrus_in_call_argument": (
        [(LOSS, LOSS + "        print(budget_s := budget_s + 60, end='')\n")], "time.budget"),
    "budget_walrus_in_comprehension": (
        [(LOSS, LOSS + "        _ = [budget_s := budget_s * 1.01 for _ in range(2)]\n")],
        "time.budget"),
    "budget_augmented": ([(LOSS, LOSS + "        budget_s *= 1.001\n")], "time.budget"),
    "budget_annotated": ([(LOSS, LOSS + "        budget_s: float = budget_s + 1\n")],
                         "time.budget"),
    "budget_tuple_star_target": (
        [(LOSS, LOSS + "        *_, budget_s = (0, budget_s + 5)\n")], "time.budget"),
    "budget_with_as": ([(AFTER, "    with contextlib.nullcontext(1e9) as budget_s:\n"
                                "        pass\n" + AFTER)], "time.budget"),
    "clock_except_as": ([(LOSS, LOSS + "        try:\n            pass\n"
                                "        except ValueError as t_train:\n            pass\n")],
                        "time.budget"),
    "clock_match_capture": ([(LOSS, LOSS + "        match t_train + 1.0:\n"
                                    "            case t_train:\n                pass\n")],
                            "time.budget"),
    "clock_for_target_in_loop": ([(LOSS, LOSS + "        for t_train in [t_train + 0.01]:\n"
                                         "            pass\n")], "time.budget"),
    "clock_del": ([(AFTER, "    del elapsed\n" + AFTER)], "time.budget"),
    "model_swapped_by_walrus_in_call": (
        [(AFTER, AFTER + "    print((model := GPT(profile.vocab_size, profile.seq_len, 1, 8, "
                         "N_HEAD, MLP_RATIO)) is None)\n")], "train.outside_loop"),
    "model_swapped_in_except": (
        [(AFTER, AFTER + "    try:\n        raise ValueError\n    except ValueError as model:\n"
                         "        pass\n")], "train.outside_loop"),
    # code that runs later than it is called
    "generator_advanced_after_loop": (
        [(MAIN_DEF, "def extra_steps(model, opt):\n    while True:\n"
                    "        opt.step()\n        yield\n\n\n" + MAIN_DEF),
         (LOSS, LOSS + "        more = extra_steps(model, optimizers[0])\n"),
         (AFTER, AFTER + "    next(more)\n")], "train.outside_loop"),
    "closure_stored_in_a_dict": (
        [(MAIN_DEF, "def one_step(opt):\n    opt.step()\n\n\n" + MAIN_DEF),
         (LOSS, LOSS + "        later = {'fn': one_step}\n"),
         (AFTER, AFTER + "    later['fn'](optimizers[0])\n")], "train.outside_loop"),
    "partial_of_a_training_helper": (
        [(MAIN_DEF, "def one_step(opt):\n    opt.step()\n\n\n" + MAIN_DEF),
         (LOSS, LOSS + "        again = functools.partial(one_step, optimizers[0])\n")],
         "train.outside_loop"),
    "generator_expression_kept": (
        [(LOSS, LOSS + "        pending = (opt.step() for opt in optimizers)\n"),
         (AFTER, AFTER + "    list(pending)\n")], "train.outside_loop"),
    "bound_method_kept": (
        [(MAIN_DEF, "class Stepper:\n    def __init__(self, opts):\n        self.opts = opts\n\n"
                    "    def advance(self):\n        for o in self.opts:\n            o.step()\n"
                    "\n\n" + MAIN_DEF),
         (LOSS, LOSS + "        go = Stepper(optimizers).advance\n")], "train.outside_loop"),
    # a pass that runs far past the budget
    "inner_loop_count_from_the_clock": (
        [(LOSS, "        for _ in range(int(elapsed) + 1):\n            loss.backward()\n")],
        "train.outside_loop"),
    "inner_loop_gated_on_last_pass": (
        [(LOSS, LOSS + "        near_end = budget_s - elapsed < 2.0\n"
                       "        if near_end:\n            for _ in range(500):\n"
                       "                step_model(x).sum().backward()\n")],
        "train.outside_loop"),
    "micro_batches_of_a_clock_sized_batch": (
        [(LOSS, "        big = torch.cat([x] * (400 if budget_s - elapsed < 3 else 1))\n"
                "        for xs in big.split(x.size(0)):\n"
                "            step_model(xs).sum().backward()\n")], "train.outside_loop"),
    "micro_batches_sized_under_a_clock_branch": (
        [(LOSS, "        reps = 1\n        if budget_s - elapsed < 3:\n            reps = 400\n"
                "        big = torch.cat([x] * reps)\n"
                "        for xs in big.split(x.size(0)):\n"
                "            step_model(xs).sum().backward()\n")], "train.outside_loop"),
    "inner_while_that_trains": (
        [(LOSS, LOSS + "        while loss.item() > 1.0:\n"
                       "            step_model(x).sum().backward()\n            break\n")],
        "train.outside_loop"),
    "helper_count_from_caller": (
        [(MAIN_DEF, "def burst(opts, n):\n    for _ in range(n):\n        for o in opts:\n"
                    "            o.step()\n\n\n" + MAIN_DEF),
         (LOSS, LOSS + "        burst(optimizers, 1 + int(elapsed > budget_s - 1) * 999)\n")],
        "train.outside_loop"),
    # I/O and escapes through numpy and torch
    "numpy_genfromtxt": ([("import math\n", "import math\nimport numpy as np\n"),
                          (AFTER, AFTER + "    np.genfromtxt('notes.txt')\n")],
                         "reach.attribute"),
    "numpy_lib_datasource": ([("import math\n", "import math\nimport numpy\n"),
                              (AFTER, AFTER + "    numpy.lib.npyio.DataSource().open('x')\n")],
                             "reach.attribute"),
    "numpy_save_outside_out_dir": ([("import math\n", "import math\nimport numpy as np\n"),
                                    (AFTER, AFTER + "    np.save('/dev/shm/w', np.ones(2))\n")],
                                   "io.files"),
    "torch_from_file": ([(AFTER, AFTER + "    w = torch.from_file('w.bin', True, 10)\n")],
                        "reach.attribute"),
    "tensor_tofile_method": ([(AFTER, AFTER + "    model.wte.weight.detach().numpy()"
                                              ".tofile('w.bin')\n")], "reach.attribute"),
    "torch_utils_path": ([(AFTER, AFTER + "    print(torch.utils.cmake_prefix_path)\n")],
                         "reach.attribute"),
    # the public API is what __all__ declares
    "frozen_name_not_in_all": (
        [("from eval_frozen.dataloader import load_profile, load_tokenizer, train_batches\n",
          "from eval_frozen.dataloader import load_profile, load_tokenizer, train_batches\n"
          "from eval_frozen.dataloader import iter_texts\n")], "evaluator.import"),
    # strings spelled at run time
    "chr_mapped_over_codes": ([(AFTER, AFTER + "    print(''.join(map(chr, (118, 97, 108))))\n")],
                              "strings.computed"),
    "bytes_from_numbers": ([(AFTER, AFTER + "    print(bytes([118, 97, 108]).decode())\n")],
                           "strings.computed"),
    "percent_c": ([(AFTER, AFTER + "    print('%c%c%c' % (118, 97, 108))\n")],
                  "strings.computed"),
    "fstring_c_format": ([(AFTER, AFTER + "    print(f'{118:c}al_bpb: 0.5')\n")],
                         "strings.computed"),
    "index_into_computed_path": ([(AFTER, AFTER + "    sep = str(out_dir.resolve())[0]\n")],
                                 "strings.computed"),
    "index_into_literal_by_argv": ([(AFTER, AFTER + "    c = 'xyzv'[len(sys.argv) + 2]\n")],
                                   "strings.computed"),
    # model code
    "flip_batch_rows": ([(LOGITS, "        logits = logits + 0.1 * logits.flip(0)\n" + LOGITS)],
                        "model.export_mode"),
    "batch_statistic": ([(LOGITS, "        logits = logits - logits.mean(0, keepdim=True)\n"
                          + LOGITS)], "model.export_mode"),
    "roll_flattened": ([(LOGITS, "        logits = torch.roll(logits, 1)\n" + LOGITS)],
                       "model.export_mode"),
    "attention_not_causal_by_name": ([(ATTN, "is_causal=T > 10**9")], "model.export_mode"),
    "token_ids_counted": ([("        x = rms_norm(self.wte(idx))\n",
                            "        x = rms_norm(self.wte(idx)) * (idx.float().mean() > 0)\n")],
                          "model.export_mode"),
    "functional_dropout_one": (
        [(LOGITS, "        logits = logits + F.dropout(torch.ones_like(logits), 0.99, "
                  "self.training)\n" + LOGITS)], "model.train_only"),
}

HONEST: dict[str, list[tuple[str, str]]] = {
    "grad_accumulation_constant": [(LOSS, "        for _m in range(2):\n"
                                          "            loss.backward()\n")],
    "micro_batches_by_chunk": [
        (LOSS, "        for xs in x.chunk(2):\n            step_model(xs).sum().backward()\n")],
    "micro_batches_by_split": [
        (LOSS, "        for xs in x.split(max(1, x.size(0) // 2)):\n"
               "            step_model(xs).sum().backward()\n")],
    "batches_stacked_by_a_consumed_generator": [
        (LOSS, "        both = torch.cat(tuple(next(batches)[0] for _ in range(2)))\n" + LOSS)],
    "schedule_switch_on_time": [(LOSS, "        if elapsed > 0.5 * budget_s:\n"
                                       "            loss = loss * 1.0\n" + LOSS)],
    "helper_with_file_constant_count": [
        (MAIN_DEF, "ACCUM = 2\n\n\ndef accumulate(opts):\n    for _ in range(ACCUM):\n"
                   "        for o in opts:\n            o.step()\n\n\n" + MAIN_DEF),
        (LOSS, LOSS + "        accumulate(optimizers)\n")],
    "numpy_math": [("import math\n", "import math\nimport numpy as np\n"),
                   (AFTER, AFTER + "    print(np.mean(np.array([1.0, 2.0])))\n")],
    "numpy_save_into_out_dir": [("import math\n", "import math\nimport numpy as np\n"),
                                (AFTER, AFTER + "    np.save(out_dir / 'l.npy', np.zeros(2))\n")],
    "embedding_reached_through_a_container": [
        ("        x = rms_norm(self.wte(idx))\n",
         "        x = rms_norm(self.wte(idx))\n        T = idx.shape[1]\n")],
    "literal_chr_and_index": [(AFTER, AFTER + "    print(chr(45) * 3, 'abc'[0])\n")],
    "dropout_light": [(LOGITS, "        logits = F.dropout(logits, 0.1, training=self.training)\n"
                       + LOGITS)],
    "builtin_max_with_zero": [(LOGITS, "        logits = logits * max(logits.size(1), 0)\n"
                               + LOGITS)],
    "softmax_last_dim": [(LOGITS, "        logits = logits + 0.0 * logits.softmax(-1)\n"
                          + LOGITS)],
    "roll_along_features": [(LOGITS, "        logits = logits + 0.0 * torch.roll(logits, 1, "
                             "dims=-1)\n" + LOGITS)],
}


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_round2_cheat_is_blocked(name: str, config) -> None:  # type: ignore[no-untyped-def]
    edits, rule = CHEATS[name]
    report = check_patch(_patch(config, edits), config)
    blocks = {f.rule_id for f in report.findings if f.severity == "block"}
    assert rule in blocks, report.render()
    assert not blocks & {"patch.does_not_apply", "patch.syntax", "guards.error"}, report.render()


@pytest.mark.parametrize("name", sorted(HONEST))
def test_round2_honest_passes(name: str, config) -> None:  # type: ignore[no-untyped-def]
    report = check_patch(_patch(config, HONEST[name]), config)
    assert report.verdict == "passed" and report.findings == [], report.render()


@pytest.mark.parametrize("code, names", [
    ("x = y", {"x"}),
    ("f(a := 1, [b := 2 for _ in c])", {"a", "b"}),
    ("for i, (j, *k) in z: pass", {"i", "j", "k"}),
    ("with m as (p, q): pass", {"p", "q"}),
    ("try:\n    pass\nexcept E as e:\n    pass", {"e"}),
    ("match v:\n    case [a, *rest]: pass\n    case {'k': b, **kw}: pass\n    case C(x=c): pass",
     {"a", "rest", "b", "kw", "c"}),
    ("del d, e.attr, f[0]", {"d", "attr", "f"}),
    ("global g, h", {"g", "h"}),
    ("n += 1", {"n"}),
    ("import os.path as osp, sys", {"osp", "sys"}),
])
def test_bindings_are_complete(code: str, names: set[str]) -> None:
    import ast

    stmt = ast.parse(code).body[0]
    assert bound_names(stmt) == names


@pytest.mark.parametrize("base_edits, old, new", [
    # a module constant in the stop condition, then only its value changes
    ([("MFU_FORMULA = ", "SLACK = 1.0\nMFU_FORMULA = "),
      ("< budget_s:\n", "< budget_s * SLACK:\n")], "SLACK = 1.0", "SLACK = 3.0"),
    # a module constant the clock variable is computed from
    ([("MFU_FORMULA = ", "OFFSET = 0.0\nMFU_FORMULA = "),
      ("    t_train = time.perf_counter()\n", "    t_train = time.perf_counter() + OFFSET\n")],
     "OFFSET = 0.0", "OFFSET = 30.0"),
])
def test_constant_only_patch_reaching_the_clock_is_blocked(
        config, base_edits: list[tuple[str, str]], old: str, new: str) -> None:  # type: ignore[no-untyped-def]
    """The fast path for constant-only patches never skips a constant the clock reads."""
    path = config.root / "trainer" / "train.py"
    text = path.read_text()
    for a, b in base_edits:
        assert text.count(a) == 1, a
        text = text.replace(a, b)
    path.write_text(text)
    report = check_patch(diff("trainer/train.py", text, text.replace(old, new)), config)
    assert "time.budget" in {f.rule_id for f in report.findings}, report.render()
