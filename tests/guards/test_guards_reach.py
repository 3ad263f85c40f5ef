"""Rules complete by construction: each class of issue 10 in disguises the corpus lacks.

Every cheat line here is blocked by the rule named, and every ordinary line passes with no
finding at all. The snippets go right after `t_start = time.perf_counter()` in main (or
where `anchor` says), as a patch of the real trainer.
"""

from __future__ import annotations

import pytest
from guards_helpers import edit

from guards.engine import check_patch

MAIN = "    t_start = time.perf_counter()\n"
LOGITS = "        logits = self.lm_head(rms_norm(x)).float()\n"
AFTER_LOOP = "    training_s = time.perf_counter() - t_train\n"
TOP = "from eval_frozen.dataloader import load_profile, load_tokenizer, train_batches\n"


def _check(config, code: str, anchor: str = MAIN):  # type: ignore[no-untyped-def]
    return check_patch(edit(config.root, "trainer/train.py", anchor, anchor + code), config)


def _blocks(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.rule_id for f in report.findings if f.severity == "block"}


@pytest.mark.parametrize("code, rule, anchor", [
    # protected objects only called in place
    ("    clocks = [time.monotonic, time.perf_counter]\n", "reach.position", MAIN),
    ("    print(*map(time.perf_counter.__call__, ()))\n", "reach.dunder", MAIN),
    ("    sorted([1], key=time.perf_counter and (lambda v: v))\n", "reach.position", MAIN),
    ("    with os.environ as env:\n        pass\n", "reach.position", MAIN),
    ("    f = (lambda: os)()\n", "reach.position", MAIN),
    ("    yield_env = next(iter([os.environ]))\n", "reach.position", MAIN),
    ("    run = max(exec, key=id)\n", "reach.position", MAIN),
    ("    hooks = {'late': export_model}\n", "reach.position", MAIN),
    ("    mod = globals()['ti' + 'me']\n", "reach.position", MAIN),
    ("    x = {**vars(F)}\n", "reach.position", MAIN),
    # attributes a protected module does not offer, private and re-exported modules
    ("    sys.setswitchinterval(1e9)\n", "reach.attribute", MAIN),
    ("    os.sched_setaffinity(0, {0})\n", "reach.attribute", MAIN),
    ("    torch.serialization.add_safe_globals([object])\n", "reach.attribute", MAIN),
    ("    torch._C._set_grad_enabled(True)\n", "reach.attribute", MAIN),
    ("    F.torch.nn.functional.sys.exit(0)\n", "reach.attribute", MAIN),
    ("    model._forward_hooks[0] = lambda *a: None\n", "reach.attribute", MAIN),
    ("    os.environ._data.clear()\n", "reach.attribute", MAIN),
    # dunders
    ("    env = os.__dict__['environ']\n", "reach.dunder", MAIN),
    ("    _b = (lambda: 0).__globals__['__builtins__']\n", "reach.dunder", MAIN),
    ("    getattr(model, '__class__').__init_subclass__()\n", "reach.dunder", MAIN),
    ("    print('{0.__self__}'.format(len))\n", "reach.dunder", MAIN),
    ("\n\nclass _Final:\n    def __del__(self):\n        pass\n", "reach.dunder", TOP),
    ("\n\ndef __getattr__(name):\n    return 0\n", "reach.dunder", TOP),
    # shadowing protected names, anywhere
    ("    for float in range(3):\n        pass\n", "reach.shadow", MAIN),
    ("    squares = [next for next in range(3)]\n", "reach.shadow", MAIN),
    ("    try:\n        pass\n    except Exception as print:\n        pass\n", "reach.shadow",
     MAIN),
    ("    import numpy as torch\n", "reach.shadow", MAIN),
    ("\n\nclass _Cfg:\n    os = None\n", "reach.shadow", TOP),
    ("    handler = lambda time=0: time\n", "reach.shadow", MAIN),
    # imports outside the allow-list, protected modules under other names
    ("    import importlib.util\n", "reach.import", MAIN),
    ("    import shutil\n", "reach.import", MAIN),
    ("    from os import fork\n", "reach.import", MAIN),
    ("    import time as clock\n", "reach.import", MAIN),
    ("    import torch.utils.cpp_extension\n", "reach.import", MAIN),
    # classes that run code at definition
    ("\n\nclass _M(type):\n    pass\n", "reach.class", TOP),
    ("\n\nclass _K(dict, total=False):\n    pass\n", "reach.class", TOP),
    ("    Fake = type('Fake', (), {'perf_counter': staticmethod(lambda: 0)})\n",
     "reach.class", MAIN),
])
def test_reach_rules_block_new_disguises(config, code: str, rule: str, anchor: str) -> None:  # type: ignore[no-untyped-def]
    report = _check(config, code, anchor)
    assert rule in _blocks(report), report.render()


@pytest.mark.parametrize("code, rule, anchor", [
    # training outside the budget loop: effects, helpers, hooks, second runs
    ("    [o.step() for o in optimizers]\n", "train.outside_loop", AFTER_LOOP),
    ("    sum(F.cross_entropy(model(x).flatten(0, 1), y.flatten()) for x, y, _ in\n"
     "        [next(batches)]).backward()\n", "train.outside_loop", AFTER_LOOP),
    ("    extra = iter(batches)\n", "train.outside_loop", AFTER_LOOP),
    ("    tune = lambda: optimizers[0].step()\n    tune()\n", "train.outside_loop", AFTER_LOOP),
    ("    model.lm_head.weight.data.mul_(1.01)\n", "train.outside_loop", AFTER_LOOP),
    ("    for p in model.parameters():\n        p.data.add_(0.001)\n", "train.outside_loop",
     AFTER_LOOP),
    ("    model = torch.compile(model)\n", "train.outside_loop", AFTER_LOOP),
    # models that act differently while exported or probed
    ("        if torch.is_inference_mode_enabled():\n            logits = -logits\n",
     "model.trace_state", LOGITS),
    ("        if idx.is_cuda or idx.device.type == 'cpu':\n            logits = -logits\n",
     "model.export_mode", LOGITS),
    ("        logits = logits if len(idx) > 1 else -logits\n", "model.export_mode", LOGITS),
    ("        logits = logits * (idx.size(0) % 2)\n", "model.export_mode", LOGITS),
    ("        if idx[0, 0] == 7:\n            logits = -logits\n", "model.export_mode", LOGITS),
    ("        idx.register_hook(lambda g: g)\n", "model.hook", LOGITS),
    ("    torch.Tensor.softmax = lambda self, dim: self\n", "model.monkeypatch", MAIN),
    ("    setattr(nn.Linear, 'forward', lambda self, x: x)\n", "model.monkeypatch", MAIN),
    # files: persistence, the interpreter's text, other runs
    ("    w = torch.load(str(data_dir) + '/../../runs/x/ckpt.pt', weights_only=True)\n",
     "io.files", MAIN),
    ("    notes = (data_dir / 'val').iterdir()\n", "io.files", MAIN),
    ("    blob = open(os.environ['TMPDIR'] + 'x').read()\n", "io.files", MAIN),
    ("    key = 'LABWARDEN_' 'TIME_BUDGET'\n    v = os.environ[key[:0] + os.sep]\n", "io.files",
     MAIN),
])
def test_flow_model_and_file_rules_block_new_disguises(config, code: str, rule: str,  # type: ignore[no-untyped-def]
                                                       anchor: str) -> None:
    report = _check(config, code, anchor)
    assert rule in _blocks(report), report.render()


@pytest.mark.parametrize("code, anchor", [
    ("    clock = time.perf_counter()\n", MAIN),
    ("    n_threads = os.cpu_count() or 1\n", MAIN),
    ("    verbose = os.environ.get('LW_DEBUG') == '1' or 'LW_TRACE' in os.environ\n", MAIN),
    ("    print('starting', file=sys.stderr, flush=True)\n", MAIN),
    ("    sizes = [p.numel() for p in model.parameters()]\n", AFTER_LOOP),
    ("    head = getattr(model, 'lm_head')\n", AFTER_LOOP),
    ("    is_linear = isinstance(model.lm_head, nn.Linear)\n", AFTER_LOOP),
    ("    act = functools.partial(F.gelu, approximate='tanh')\n", MAIN),
    ("    stamp = datetime.datetime.now().isoformat(timespec='seconds')\n", MAIN),
    ("    (out_dir / 'notes.txt').write_text(f'steps {step}\\n')\n", AFTER_LOOP),
    ("    model.eval()\n", AFTER_LOOP),
    ("        logits = logits.float()\n", LOGITS),
    ("        if self.lm_head.bias is not None:\n            logits = logits + 0.0\n", LOGITS),
])
def test_ordinary_code_passes_the_new_rules(config, code: str, anchor: str) -> None:  # type: ignore[no-untyped-def]
    text = (config.root / "trainer/train.py").read_text()
    if "functools." in code:
        text = text.replace("import math\n", "import functools\nimport math\n")
    if "datetime." in code:
        text = text.replace("import math\n", "import datetime\nimport math\n")
    from guards_helpers import diff

    new = text.replace(anchor, anchor + code, 1)
    report = check_patch(diff("trainer/train.py", (config.root / "trainer/train.py").read_text(),
                              new), config)
    assert report.verdict == "passed" and not report.findings, report.render()


def test_a_workspace_extends_the_allow_lists(config) -> None:  # type: ignore[no-untyped-def]
    code = "    import einops\n    n = os.listdir(out_dir)\n"
    report = _check(config, code)
    assert {"reach.import", "reach.attribute"} <= _blocks(report)
    with (config.root / "labwarden.toml").open("a") as fh:
        fh.write('allowed_imports = ["einops"]\nallowed_attributes = ["os.listdir"]\n')
    from labwarden.config import load_config

    report = check_patch(edit(config.root, "trainer/train.py", MAIN, MAIN + code),
                         load_config(config.root))
    assert not {"reach.import", "reach.attribute"} & _blocks(report), report.render()
