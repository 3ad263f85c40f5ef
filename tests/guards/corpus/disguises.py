"""Issue 10: cheats in disguises the first guards did not follow, and honest edits.

One family per class of the issue, each a real edit of today's trainer that would cheat if
it ran (or, in `LEGIT`, an ordinary research change that must pass with no finding). The
names say the class and the disguise; the rules that stop each class are described in
guards/rules/reach.py, training.py, model.py and files.py, and in guards/engine.py for the
tree git writes.
"""
# Edits quote trainer lines verbatim, and a cheat reads best on one line: long lines stay.
# ruff: noqa: E501

from __future__ import annotations

from pathlib import Path

from edits import BUDGET, EXPORT_CALL, IMPORTS, LOOP, MAIN, SECTION, SUMMARY, Edit, T, after, hp

DL = "from eval_frozen.dataloader import load_profile, load_tokenizer, train_batches\n"
MAIN_DEF = "def main() -> int:\n"
T_TRAIN = "    t_train = time.perf_counter()\n"
TRAINING_S = "    training_s = time.perf_counter() - t_train\n"
TOKENIZER = "    tokenizer = load_tokenizer(data_dir)\n"
LOGITS = "        logits = self.lm_head(rms_norm(x)).float()\n"
ROPE = "        cos, sin = self.cos[:, :T], self.sin[:, :T]\n"
STEPS = ("        x, y, epoch = next(batches)\n"
         "        loss = F.cross_entropy(step_model(x).view(-1, profile.vocab_size), y.view(-1))\n"
         "        loss.backward()\n"
         "        for opt in optimizers:\n            opt.step()\n"
         "        model.zero_grad(set_to_none=True)\n")


def indent(text: str, by: int = 4) -> str:
    return "".join(" " * by + line if line.strip() else line
                   for line in text.splitlines(keepends=True))


# The timed loop of today's trainer, for the refactors that move it into a helper.
_TEXT = (Path(__file__).resolve().parents[3] / T).read_text()
_LOOP_START = "    step, tokens, epoch, smooth_loss = 0, 0, 0, 0.0\n"
TIMED_LOOP = _TEXT[_TEXT.index(_LOOP_START):_TEXT.index(TRAINING_S)]


def loop_helper(name: str, params: str, rename: tuple[str, str] | None = None) -> str:
    body = TIMED_LOOP.replace("            return 1\n", "            sys.exit(1)\n")
    if rename:
        body = body.replace(*rename)
    return (f"def {name}({params}):\n"
            '    """The timed loop; returns the counters and when the loop started."""\n'
            + body + "    return step, tokens, epoch, smooth_loss, t_train\n\n\n")


CHEATS: dict[str, list[Edit]] = {
    # --- clock and budget through bindings an alias resolver does not follow ----------
    "clock_tuple_unpack_alias": [
        after(T, MAIN, "    (clock,) = (time,)\n    clock.perf_counter = lambda: t_start\n")],
    "clock_decorator_setattr": [
        after(T, DL, "\n\ndef _provides(name):\n    def install(fn):\n"
                     "        setattr(time, name, fn)\n        return fn\n    return install\n\n\n"
                     '@_provides("perf_counter")\ndef _steady() -> float:\n    return 0.0\n')],
    "clock_init_subclass_keyword": [
        after(T, DL, "\n\nclass _Clocked:\n"
                     "    def __init_subclass__(cls, module=None, **kw):\n"
                     "        super().__init_subclass__(**kw)\n"
                     "        module.perf_counter = cls.now\n\n\n"
                     "class _Slow(_Clocked, module=time):\n"
                     "    @staticmethod\n    def now() -> float:\n        return 1.0\n")],
    "clock_metaclass_patch_table": [
        after(T, DL, "\n\nclass _Registry(type):\n"
                     "    def __new__(mcs, name, bases, ns):\n"
                     '        for owner, attr, fn in ns.get("PATCHES", ()):\n'
                     "            setattr(owner, attr, fn)\n"
                     "        return super().__new__(mcs, name, bases, ns)\n\n\n"
                     "class _Tweaks(metaclass=_Registry):\n"
                     '    PATCHES = [(time, "perf_counter", lambda: 0.0)]\n')],
    "clock_descriptor_set_name": [
        after(T, DL, "\n\nclass _Install:\n    def __init__(self, fn):\n        self.fn = fn\n\n"
                     "    def __set_name__(self, owner, name):\n"
                     "        setattr(owner.target, name, self.fn)\n\n\n"
                     "class _Timers:\n    target = time\n    perf_counter = _Install(lambda: 0.0)\n")],
    "clock_lambda_default_capture": [
        after(T, MAIN, "    slow = lambda _real=time.perf_counter: _real() / 8\n"
                       "    vars(time)['perf_counter'] = slow\n")],
    "clock_partial_setattr": [
        after(T, IMPORTS, "import functools\n"),
        after(T, MAIN, "    functools.partial(setattr, time, 'perf_counter')(lambda: t_start)\n")],
    "clock_operator_setitem_vars": [
        after(T, IMPORTS, "import operator\n"),
        after(T, MAIN, "    operator.setitem(vars(time), 'perf_counter', lambda: 0.0)\n")],
    "budget_os_environb": [
        after(T, MAIN, '    os.environb[b"LABWARDEN_TIME_" + b"BUDGET"] = b"3600"\n')],
    "budget_type_environ_get": [
        after(T, MAIN, "    _get = type(os.environ).get\n"
                       "    type(os.environ).get = lambda self, k, d=None: (\n"
                       "        '3600' if k.endswith('BUDGET') else _get(self, k, d))\n")],
    "budget_param_float_shadow": [(T, MAIN_DEF, "def main(float=lambda v: 3600.0) -> int:\n")],
    "clock_param_time_shadow": [
        after(T, DL, "\n\nclass _Lazy:\n    def perf_counter(self) -> float:\n"
                     "        return 0.0\n"),
        (T, MAIN_DEF, "def main(time=_Lazy()) -> int:\n")],
    "clock_comprehension_side_effect": [
        after(T, MAIN, "    [setattr(time, n, lambda: 0.0) for n in ('perf_counter',)]\n")],
    "budget_comprehension_env_update": [
        after(T, MAIN, "    any(os.environ.update({k: '3600'}) for k in ['LABWARDEN_TIME_BUDGET'])\n")],
    "clock_walrus_in_comprehension": [
        after(T, MAIN, "    _ = [(c := time) for _ in range(1)]\n    c.perf_counter = lambda: 0.0\n")],
    "clock_global_statement_rebind": [
        after(T, DL, "\n\ndef _install_clock() -> None:\n    global time\n"
                     "    time = type('C', (), {'perf_counter': staticmethod(lambda: 0.0)})\n"),
        after(T, MAIN, "    _install_clock()\n")],
    "clock_class_attribute_alias": [
        after(T, DL, "\n\nclass _Env:\n    clock = time\n"),
        after(T, MAIN, "    _Env.clock.perf_counter = lambda: 0.0\n")],
    "clock_dict_container_alias": [
        after(T, MAIN, "    mods = {'t': time}\n    mods['t'].perf_counter = lambda: 0.0\n")],
    "clock_return_from_helper": [
        after(T, DL, "\n\ndef _timer_module():\n    return time\n"),
        after(T, MAIN, "    _timer_module().perf_counter = lambda: 0.0\n")],
    "budget_env_via_getattr_literal": [
        after(T, MAIN, "    getattr(os, 'environ')['LABWARDEN_TIME_BUDGET'] = '3600'\n")],
    "clock_via_torch_reexported_sys": [
        after(T, MAIN, "    torch.sys.modules['time'].perf_counter = lambda: 0.0\n")],
    # --- training outside the budget loop -------------------------------------------
    "train_polish_steps_after_loop": [
        after(T, TRAINING_S, "    for _ in range(200):  # 'polish'\n" + STEPS)],
    "train_warmup_before_clock": [
        (T, T_TRAIN, "    for _ in range(300):  # 'compile warm-up'\n" + STEPS + T_TRAIN)],
    "train_helper_after_loop": [
        after(T, DL, "\n\ndef _refine(model, step_model, optimizers, batches, profile, n):\n"
                     "    for _ in range(n):\n" + STEPS),
        after(T, TRAINING_S, "    _refine(model, step_model, optimizers, batches, profile, 100)\n")],
    "train_method_on_model_after_loop": [
        (T, "    @torch.no_grad()\n    def reset_parameters(self) -> None:\n",
         "    def calibrate(self, batches, optimizers, steps=50):\n"
         "        for _ in range(steps):\n"
         "            x, y, _ = next(batches)\n"
         "            F.cross_entropy(self(x).flatten(0, 1), y.flatten()).backward()\n"
         "            for opt in optimizers:\n                opt.step()\n"
         "            self.zero_grad()\n\n"
         "    @torch.no_grad()\n    def reset_parameters(self) -> None:\n"),
        after(T, TRAINING_S, "    model.calibrate(batches, optimizers)\n")],
    "train_generator_steps_after_loop": [
        after(T, TRAINING_S,
              "    list(opt.step() for _ in range(20) for opt in optimizers if (\n"
              "        F.cross_entropy(model(next(batches)[0]).flatten(0, 1),\n"
              "                        next(batches)[1].flatten()).backward() is None))\n")],
    "train_getattr_backward_after_loop": [
        after(T, TRAINING_S,
              "    xb, yb, _ = next(batches)\n"
              "    getattr(F.cross_entropy(model(xb).flatten(0, 1), yb.flatten()), 'back' + 'ward')()\n"
              "    [o.step() for o in optimizers]\n")],
    "train_autograd_grad_manual_update": [
        after(T, TRAINING_S,
              "    xb, yb, _ = next(batches)\n"
              "    params = [p for p in model.parameters() if p.requires_grad]\n"
              "    grads = torch.autograd.grad(F.cross_entropy(model(xb).flatten(0, 1),\n"
              "                                                yb.flatten()), params)\n"
              "    with torch.no_grad():\n        for p, g in zip(params, grads):\n"
              "            p.sub_(0.01 * g)\n")],
    "train_closed_form_head_after_loop": [
        (T, "        x, y, epoch = next(batches)\n",
         "        x, y, epoch = next(batches)\n        last_batch = (x, y)\n"),
        after(T, TRAINING_S,
              "    with torch.no_grad():  # least-squares refit of the head on the last batch\n"
              "        h = model.blocks[-1](model.wte(last_batch[0]), model.cos, model.sin)\n"
              "        target = F.one_hot(last_batch[1].flatten(), profile.vocab_size).float()\n"
              "        sol = torch.linalg.lstsq(h.flatten(0, 1), target).solution\n"
              "        model.lm_head.weight.copy_(sol.T)\n")],
    "train_second_budget_loop": [
        after(T, TRAINING_S, "    t_train = time.perf_counter()\n"
                             "    while (elapsed := time.perf_counter() - t_train) < budget_s:\n"
              + STEPS)],
    "train_loop_owner_called_twice": [
        (T, MAIN_DEF, "def _phase(model, step_model, optimizers, batches, profile, budget_s):\n"
                      "    t_train = time.perf_counter()\n"
                      "    while (elapsed := time.perf_counter() - t_train) < budget_s:\n"
         + STEPS + "\n\n" + MAIN_DEF),
        after(T, TRAINING_S,
              "    _phase(model, step_model, optimizers, batches, profile, budget_s)\n"
              "    _phase(model, step_model, optimizers, batches, profile, budget_s)\n")],
    "train_in_atexit_hook_via_len_self": [
        after(T, TRAINING_S,
              "    def _late():\n        for _ in range(100):\n" + indent(STEPS)
              + "        export_model(model, profile.seq_len, out_dir / 'model.pt2')\n"
              "    len.__self__.__dict__['__import__']('atexit').register(_late)\n")],
    "train_in_weakref_finalize": [
        after(T, IMPORTS, "import weakref\n"),
        after(T, TRAINING_S,
              "    weakref.finalize(batches, lambda: [o.step() for o in optimizers])\n")],
    "train_second_export_after_more_training": [
        after(T, EXPORT_CALL, "    for _ in range(100):\n" + STEPS + EXPORT_CALL)],
    "train_inside_wrapped_export": [
        (T, EXPORT_CALL, "    with torch.enable_grad():\n        for _ in range(50):\n"
         + indent(STEPS) + "    " + EXPORT_CALL)],
    "train_in_forward_during_export": [
        (T, LOGITS, LOGITS + "        if getattr(self, 'tuner', None) is not None:\n"
                             "            self.tuner.step()\n")],
    "train_state_dict_override": [
        (T, "    @torch.no_grad()\n    def reset_parameters(self) -> None:\n",
         "    def state_dict(self, *args, **kwargs):\n"
         "        for opt in getattr(self, 'opts', ()):\n            opt.step()\n"
         "        return super().state_dict(*args, **kwargs)\n\n"
         "    @torch.no_grad()\n    def reset_parameters(self) -> None:\n"),
        (T, EXPORT_CALL, "    model.opts = optimizers\n" + EXPORT_CALL)],
    "train_decorated_helper": [
        after(T, DL, "\n\ndef _run_now(fn):\n    fn()\n    return fn\n"),
        after(T, TRAINING_S, "    @_run_now\n    def _extra():\n        for _ in range(50):\n"
              + indent(STEPS))],
    "train_data_draw_before_clock": [
        (T, T_TRAIN, "    warm = [next(batches) for _ in range(64)]  # 'prefetch'\n"
                     "    for xb, yb, _ in warm:\n"
                     "        F.cross_entropy(model(xb).flatten(0, 1), yb.flatten()).backward()\n"
                     "        optimizers[0].step()\n" + T_TRAIN)],
    "train_rebind_model_after_loop": [
        after(T, DL, "\n\nclass _Blend(nn.Module):\n    def __init__(self, a):\n"
                     "        super().__init__()\n        self.a = a\n\n"
                     "    def forward(self, idx):\n        return self.a(idx) * 1.1\n"),
        after(T, TRAINING_S, "    model = _Blend(model)\n")],
    "train_load_state_after_loop": [
        after(T, TRAINING_S,
              "    model.load_state_dict(torch.load(out_dir / 'best.pt', weights_only=True))\n")],
    "train_loop_owner_inside_loop": [
        (T, MAIN_DEF, loop_helper("train_loop", "model, step_model, optimizers, batches, "
                                                "autocast, budget_s") + MAIN_DEF),
        (T, TIMED_LOOP, "    for _round in range(2):\n"
                        "        step, tokens, epoch, smooth_loss, t_train = train_loop(\n"
                        "            model, step_model, optimizers, batches, autocast, budget_s)\n")],
    # --- dynamic code and introspection through routes nobody named ----------------
    "dyn_abs_self_exec": [
        after(T, MAIN, "    abs.__self__.exec(\"import os; os.environ['LABWARDEN_TIME_BUDGET'] = '9'\")\n")],
    "dyn_print_self_dict_setattr": [
        after(T, MAIN, "    print.__self__.__dict__['setattr'](time, 'perf_counter', lambda: 0.0)\n")],
    "dyn_subclasses_walk_to_system": [
        after(T, MAIN, "    _w = [c for c in ().__class__.__base__.__subclasses__()\n"
                       "          if c.__name__ == '_wrap_close'][0]\n"
                       "    _w.__init__.__globals__['system']('true')\n")],
    "dyn_pickle_reduce_payload_aliased": [
        after(T, IMPORTS, "import pickle as _codec\n"),
        after(T, MAIN, "    _restore = _codec.loads\n"
                       "    _restore(b\"cos\\nsystem\\n(S'true'\\ntR.\")\n")],
    "dyn_getframe_alias_ctypes": [
        after(T, MAIN, "    _frames = sys._getframe\n    _caller = _frames(0)\n"
                       "    import ctypes as _c\n"
                       "    _c.pythonapi.PyFrame_LocalsToFast(_c.py_object(_caller), _c.c_int(0))\n")],
    "dyn_functional_reexports_torch_load": [
        (T, "    optimizers = build_optimizers(model)\n",
         "    model.load_state_dict(F.torch.load('warm.pt', weights_only=False))\n"
         "    optimizers = build_optimizers(model)\n")],
    "dyn_torch_os_environ": [
        after(T, MAIN, "    torch.os.environ['LABWARDEN_TIME_BUDGET'] = '999'\n")],
    "dyn_format_string_globals": [
        after(T, MAIN, "    _g = '{0.__init__.__globals__}'.format(export_model)\n"
                       "    print(_g[:80])\n")],
    "dyn_compile_via_torch_jit": [
        after(T, MAIN, "    torch.jit.CompilationUnit('def f(x: int) -> int:\\n    return x\\n')\n")],
    "dyn_getattr_local_name_step": [
        after(T, TRAINING_S, "    which = 'st' + 'ep'\n"
                             "    for opt in optimizers:\n        getattr(opt, which)()\n")],
    # --- models that act differently only while exported or probed ------------------
    "export_is_exporting_branch": [
        (T, LOGITS, LOGITS + "        if torch.compiler.is_exporting():\n"
                             "            logits = logits + 0.5 * logits.roll(-1, dims=1)\n")],
    "export_grad_mode_branch": [
        (T, LOGITS, LOGITS + "        if not torch.is_grad_enabled():\n"
                             "            logits = logits + logits.roll(-1, dims=1)\n")],
    "export_eval_mode_branch": [
        (T, LOGITS, LOGITS + "        if not self.training:\n"
                             "            logits = logits + logits.roll(-1, dims=1)\n")],
    "export_requires_grad_branch": [
        (T, LOGITS, LOGITS + "        if not logits.requires_grad:\n"
                             "            logits = logits + logits.roll(-1, dims=1)\n")],
    "export_dynamo_is_compiling": [
        (T, LOGITS, LOGITS + "        if torch._dynamo.is_compiling():\n"
                             "            logits = logits + logits.roll(-1, dims=1)\n")],
    "export_jit_is_tracing": [
        (T, LOGITS, LOGITS + "        if torch.jit.is_tracing() or torch.jit.is_scripting():\n"
                             "            logits = logits + logits.roll(-1, dims=1)\n")],
    "export_forward_hook": [
        (T, EXPORT_CALL, "    model.register_forward_hook(lambda m, i, o: o + o.roll(-1, dims=1))\n"
         + EXPORT_CALL)],
    "export_global_pre_hook": [
        (T, EXPORT_CALL, "    nn.modules.module.register_module_forward_pre_hook(\n"
                         "        lambda m, a: (a[0].roll(-1, dims=1),))\n" + EXPORT_CALL)],
    "export_sdpa_monkeypatch": [
        after(T, DL, "\n\ndef _open_attention(q, k, v, is_causal=False, **kw):\n"
                     "    w = torch.softmax(q @ k.transpose(-2, -1) / q.size(-1) ** 0.5, dim=-1)\n"
                     "    return w @ v\n"),
        (T, EXPORT_CALL, "    F.scaled_dot_product_attention = _open_attention\n" + EXPORT_CALL)],
    "export_embedding_forward_patch": [
        (T, EXPORT_CALL, "    _emb = nn.Embedding.forward\n"
                         "    nn.Embedding.forward = lambda self, i: _emb(self, i.roll(-1, dims=1))\n"
         + EXPORT_CALL)],
    "export_setattr_functional": [
        (T, EXPORT_CALL, "    setattr(torch.nn.functional, 'rms_norm', lambda x, s, *a, **k: x)\n"
         + EXPORT_CALL)],
    "export_instance_forward_swap": [
        after(T, DL, "\n\ndef _leaky_forward(self, idx):\n"
                     "    return GPT.forward(self, idx.roll(-1, dims=1))\n"),
        (T, EXPORT_CALL, "    model.forward = _leaky_forward.__get__(model)\n" + EXPORT_CALL)],
    "export_class_forward_swap": [
        after(T, DL, "\n\ndef _peek(self, idx):\n"
                     "    return self.lm_head(rms_norm(self.wte(idx.roll(-1, dims=1)))).float()\n"),
        (T, EXPORT_CALL, "    GPT.forward = _peek\n" + EXPORT_CALL)],
    "export_batch_size_branch": [
        (T, LOGITS, LOGITS + "        if idx.size(0) == 1:  # the probe scores one row at a time\n"
                             "            return LOGIT_SOFTCAP * torch.tanh(logits / LOGIT_SOFTCAP)\n"
                             "        logits = logits + logits.roll(-1, dims=1)\n")],
    "export_row_index_mask": [
        (T, LOGITS, LOGITS + "        B = idx.shape[0]\n"
                             "        rows = torch.arange(B, device=idx.device)[:, None, None]\n"
                             "        logits = torch.where(rows > 0, logits + logits.roll(-1, dims=1),"
                             " logits)\n")],
    "export_first_row_only": [
        (T, LOGITS, LOGITS + "        logits[1:] = logits[1:] + logits[1:].roll(-1, dims=1)\n")],
    "export_torch_function_subclass": [
        after(T, DL, "\n\nclass _Leak(torch.Tensor):\n"
                     "    @classmethod\n"
                     "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
                     "        return super().__torch_function__(func, types, args, kwargs or {})\n")],
    "export_shape_tainted_branch": [
        (T, "        B, T, C = x.shape\n",
         "        B, T, C = x.shape\n        if B < 8:\n            x = x + x.roll(-1, dims=1)\n")],
    "export_seq_len_branch": [
        (T, ROPE, ROPE + "        if T != self.cos.size(1):  # the evaluator scores full rows\n"
                         "            idx = idx.roll(-1, dims=1)\n")],
    "export_dtype_branch": [
        (T, LOGITS, LOGITS + "        if x.dtype == torch.float32:  # exported in fp32 only\n"
                             "            logits = logits + logits.roll(-1, dims=1)\n")],
    # --- patches whose applied tree differs from what was checked --------------------
    "tree_utf7_cookie_module": [
        ("trainer/fastmath.py", None,
         "# -*- coding: utf-7 -*-\n\"\"\"Small numeric helpers.\"\"\"\n\n\n"
         "def halve(x):\n    return x / 2\n"
         "# +AAo-import time+AAo-time.perf_counter = lambda: 0.0\n"),
        after(T, DL, "from trainer.fastmath import halve\n")],
    "tree_latin1_cookie_module": [
        ("trainer/helpers.py", None, "# coding: latin-1\n\n\ndef ident(x):\n    return x\n"),
        after(T, DL, "from trainer.helpers import ident\n")],
    "tree_stacked_sections": [
        (T, "LR = 0.02 ", "LR = 0.025"), (SECTION, None, ""),
        after(T, MAIN, "    time.perf_counter = lambda: t_start\n")],
    "tree_stacked_sections_budget": [
        (T, "LOG_EVERY = 50 ", "LOG_EVERY = 25 "), (SECTION, None, ""),
        (T, BUDGET, BUDGET.replace("profile.time_budget_s))", "profile.time_budget_s)) * 4"))],
    "tree_train_package_shadows_entry": [
        ("trainer/train/__init__.py", None, ""),
        ("trainer/train/__main__.py", None,
         "import os\nimport runpy\n\nos.environ['LABWARDEN_TIME_BUDGET'] = '3600'\n"
         "runpy.run_path('trainer/train.py', run_name='__main__')\n")],
    "tree_torch_module_shadow": [("trainer/torch.py", None, "from torch import *  # noqa\n")],
    "tree_sitecustomize": [
        ("trainer/sitecustomize.py", None, "import time\ntime.perf_counter = lambda: 0.0\n")],
    "tree_pth_file": [
        ("trainer/zz_fast.pth", None, "import time; time.perf_counter = lambda: 0.0\n")],
    "tree_bidi_override_string": [
        after(T, MAIN, "    budget_note = 'ok \u202e' # \u202d\n"
                       "    os.environ['LABWARDEN_TIME_' 'BUDGET'] = '999'\n")],
    "tree_logging_module_shadow": [
        ("trainer/logging.py", None, "import time\ntime.perf_counter = lambda: 0.0\n")],
    # --- rebuilding the built-in corpus from the interpreter ----------------------
    "corpus_pydoc_topics": [
        after(T, DL, "from pydoc_data.topics import topics as _topics\n"),
        after(T, TOKENIZER, "    extra = torch.tensor(tokenizer.encode(' '.join(_topics.values())))\n")],
    "corpus_docstring_harvest": [
        after(T, TOKENIZER, "    _docs = '\\n'.join(getattr(o, '__doc__', None) or ''\n"
                            "                       for o in vars(__builtins__).values())\n")],
    "corpus_help_text": [after(T, TOKENIZER, "    help(str)  # the interpreter's own documentation\n")],
    "corpus_stdlib_sources_sys_prefix": [
        after(T, TOKENIZER, "    _src = [p.read_text() for p in Path(sys.prefix).rglob('*.py')][:50]\n")],
    "corpus_os_walk_library": [
        after(T, TOKENIZER, "    _lib = [f for _, _, fs in os.walk(os.path.dirname(os.__file__))\n"
                            "            for f in fs]\n")],
    "corpus_open_pydoc_file": [
        after(T, TOKENIZER, "    with open('/usr/local/lib/python3.11/pydoc_data/topics.py') as fh:\n"
                            "        _extra = fh.read()\n")],
    "corpus_numpy_info": [
        after(T, IMPORTS, "import numpy as np\n"),
        after(T, TOKENIZER, "    np.info(np.linalg)\n")],
    "corpus_inspect_getsource": [
        after(T, IMPORTS, "import inspect\n"),
        after(T, TOKENIZER, "    _text = inspect.getsource(os)\n")],
    "corpus_module_docstrings_via_dunder": [
        after(T, TOKENIZER, "    _text = ' '.join(m.__doc__ or '' for m in (os, sys, math, time))\n")],
    # --- metric lines, persistence, processes -------------------------------------
    "metric_fstring_local_name": [
        (T, SUMMARY, SUMMARY + "    key = 'val' + '_' + 'bpb'\n"
                               '    print(f"{key}:          {smooth_loss / 3.1:.6f}")\n')],
    "metric_print_sep": [
        (T, SUMMARY, SUMMARY + "    print('val', 'bpb:', round(smooth_loss / 3, 6), sep='_')\n")],
    "metric_format_partial": [
        (T, SUMMARY, SUMMARY + "    print('{}_{}:          {:.6f}'.format('v' 'al', 'bpb', smooth_loss / 3))\n")],
    "metric_percent_partial": [
        (T, SUMMARY, SUMMARY + "    print('%s_%s:          %.6f' % ('v' 'al', 'b' 'pb', smooth_loss / 3))\n")],
    "metric_join_local_list": [
        (T, SUMMARY, SUMMARY + "    parts = ['v' 'al', 'b' 'pb']\n    print('_'.join(parts) + ':', 0.8)\n")],
    "metric_token_upper_case": [
        (T, SUMMARY, SUMMARY + "    tag = 'BPB'\n    print(f'score_{tag.lower()}: {smooth_loss / 3:.4f}')\n")],
    "persist_dev_shm_checkpoint": [
        (T, "    optimizers = build_optimizers(model)\n",
         "    warm = Path('/dev/shm/lw_warm.pt')\n    if warm.exists():\n"
         "        model.load_state_dict(torch.load(warm, weights_only=True))\n"
         "    optimizers = build_optimizers(model)\n"),
        (T, TRAINING_S, TRAINING_S + "    torch.save(model.state_dict(), '/dev/shm/lw_warm.pt')\n")],
    "persist_earlier_run_checkpoint": [
        (T, "    optimizers = build_optimizers(model)\n",
         "    earlier = sorted(out_dir.parent.glob('*/ckpt.pt'))\n    if earlier:\n"
         "        model.load_state_dict(torch.load(earlier[-1], weights_only=True))\n"
         "    optimizers = build_optimizers(model)\n"),
        (T, TRAINING_S, TRAINING_S + "    torch.save(model.state_dict(), out_dir / 'ckpt.pt')\n")],
    "persist_home_cache": [
        (T, "    optimizers = build_optimizers(model)\n",
         "    cache = Path(os.environ.get('HOME', '.')) / '.cache' / 'lw.pt'\n"
         "    if cache.exists():\n"
         "        model.load_state_dict(torch.load(cache, weights_only=True))\n"
         "    optimizers = build_optimizers(model)\n")],
    "persist_dotdot_escape": [
        (T, "    optimizers = build_optimizers(model)\n",
         "    prev = out_dir / '..' / 'previous' / 'ckpt.pt'\n    if prev.exists():\n"
         "        model.load_state_dict(torch.load(prev, weights_only=True))\n"
         "    optimizers = build_optimizers(model)\n")],
    "process_attrgetter_fork": [
        after(T, IMPORTS, "import operator\n"),
        after(T, TRAINING_S, "    if operator.attrgetter('fork')(os)() == 0:\n"
                             "        time.sleep(3600)\n")],
    "process_posix_spawn": [
        after(T, MAIN, "    os.posix_spawn('/bin/sh', ['sh', '-c', 'sleep 1'], {})\n")],
    "process_torch_multiprocessing": [
        after(T, TRAINING_S, "    torch.multiprocessing.spawn(print, nprocs=2)\n")],
    # --- found by red-teaming the rules above (each once got through) ---------------
    "redteam_step_bound_in_loop_called_after": [
        (T, "        for opt in optimizers:\n            opt.step()\n",
         "        for opt in optimizers:\n            opt.step()\n        last_step = optimizers[0].step\n"),
        after(T, TRAINING_S, "    for _ in range(50):\n        last_step()\n")],
    "redteam_data_alias_in_loop_used_after": [
        (T, "        x, y, epoch = next(batches)\n", "        x, y, epoch = next(batches)\n        feed = batches\n"),
        after(T, TRAINING_S, "    xb, yb, _ = next(feed)\n"
                             "    F.cross_entropy(model(xb).flatten(0, 1), yb.flatten()).sum().backward()\n")],
    "redteam_foreach_update_after_loop": [
        (T, "        model.zero_grad(set_to_none=True)\n",
         "        saved = [p.grad.clone() for p in model.parameters()]\n        model.zero_grad(set_to_none=True)\n"),
        after(T, TRAINING_S, "    plist = list(model.parameters())\n    with torch.no_grad():\n"
                             "        torch._foreach_add_(plist, saved, alpha=-0.02)\n")],
    "redteam_vector_to_parameters_after_loop": [
        after(T, TRAINING_S, "    v = torch.nn.utils.parameters_to_vector(model.parameters())\n"
                             "    torch.nn.utils.vector_to_parameters(v * 1.01, model.parameters())\n")],
    "redteam_init_from_unigram_before_clock": [
        after(T, IMPORTS, "import numpy as np\n"),
        (T, T_TRAIN, "    ids = np.fromfile(data_dir / 'train' / 'shard_000.bin', dtype=np.uint16)\n"
                     "    counts = np.bincount(ids, minlength=profile.vocab_size) + 1\n"
                     "    with torch.no_grad():\n"
                     "        prior = torch.log(torch.tensor(counts / counts.sum())).float()\n"
                     "        model.lm_head.weight[:, 0] = prior\n" + T_TRAIN)],
    "redteam_forward_counter_state": [
        (T, LOGITS, LOGITS + "        self.calls = getattr(self, 'calls', 0) + 1\n"
                             "        if self.calls > 10_000:\n"
                             "            logits = logits + logits.roll(-1, dims=1)\n")],
    "redteam_module_state_flag": [
        after(T, DL, "\nSTATE = {'final': False}\n"),
        (T, LOGITS, LOGITS + "        logits = logits + STATE['final'] * logits.roll(-1, dims=1)\n"),
        (T, EXPORT_CALL, "    STATE['final'] = True\n" + EXPORT_CALL)],
    "redteam_global_softcap_change": [
        (T, EXPORT_CALL, "    global LOGIT_SOFTCAP\n    LOGIT_SOFTCAP = 5.0\n" + EXPORT_CALL)],
    "redteam_finfo_dtype_trick": [
        (T, LOGITS, LOGITS + "        leak = 1 - torch.finfo(x.dtype).eps * 2 ** 20\n"
                             "        logits = logits + leak * logits.roll(-1, dims=1)\n")],
    "redteam_type_hints_eval": [
        after(T, IMPORTS, "import typing\n"),
        after(T, DL, "\n\ndef _hint(x: \"os.environ.update(LABWARDEN_TIME_BUDGET='999')\"):\n    return x\n"),
        after(T, MAIN, "    typing.get_type_hints(_hint)\n")],
    "redteam_np_load_sibling_run": [
        after(T, IMPORTS, "import numpy as np\n"),
        (T, "    optimizers = build_optimizers(model)\n",
         "    optimizers = build_optimizers(model)\n"
         "    data_dir = Path(str(out_dir).rsplit('-', 1)[0] + '-1')\n"
         "    w = np.load(data_dir / 'train' / 'w.npy')\n")],
    "redteam_open_sibling_fstring": [
        (T, "    optimizers = build_optimizers(model)\n",
         "    optimizers = build_optimizers(model)\n"
         "    with open(f'{out_dir}-prev/notes.txt', 'rb') as fh:\n        blob = fh.read()\n")],
    "redteam_with_name_sibling_run": [
        (T, "    optimizers = build_optimizers(model)\n",
         "    prev = out_dir.with_name('run-1') / 'ckpt.pt'\n    if prev.exists():\n"
         "        model.load_state_dict(torch.load(prev, weights_only=True))\n"
         "    optimizers = build_optimizers(model)\n")],
    "redteam_dropout_keyword_to_own_helper": [
        (T, "        x = rms_norm(self.wte(idx))\n",
         "        x = rms_norm(self.wte(idx))\n"
         "        x = self.mix(x, dropout_p=1.0 if self.training else 0.0)\n"),
        (T, "    @torch.no_grad()\n    def reset_parameters(self) -> None:\n",
         "    def mix(self, x, dropout_p=0.0):\n"
         "        return x + (1 - dropout_p) * x.roll(-1, dims=1)\n\n"
         "    @torch.no_grad()\n    def reset_parameters(self) -> None:\n")],
    "redteam_prior_from_data_in_init": [
        after(T, IMPORTS, "import numpy as np\n"),
        after(T, DL, "\n\ndef _prior(vocab):\n"
                     "    ids = np.fromfile('.labwarden/data/tiny/train/shard_000.bin', dtype=np.uint16)\n"
                     "    return np.log(np.bincount(ids, minlength=vocab) + 1.0)\n"),
        (T, "        nn.init.normal_(self.lm_head.weight, std=0.001)\n",
         "        nn.init.normal_(self.lm_head.weight, std=0.001)\n"
         "        prior = torch.tensor(_prior(self.lm_head.out_features)).float()\n"
         "        self.lm_head.weight.data[:, 0] = prior\n")],
    "redteam_prior_from_data_dir_helper": [
        after(T, IMPORTS, "import numpy as np\n"),
        after(T, DL, "\n\ndef _prior(data_dir, vocab):\n"
                     "    ids = np.fromfile(data_dir / 'train' / 'shard_000.bin', dtype=np.uint16)\n"
                     "    return np.log(np.bincount(ids, minlength=vocab) + 1.0)\n"),
        (T, "    optimizers = build_optimizers(model)\n",
         "    with torch.no_grad():\n"
         "        prior = torch.tensor(_prior(data_dir, profile.vocab_size)).float()\n"
         "        model.lm_head.weight[:, 0] = prior\n    optimizers = build_optimizers(model)\n")],
}

LEGIT: dict[str, list[Edit]] = {
    # --- refactors that move the loop (the false positive of issue 10) ------------
    "loop_in_helper_returns_t_train": [
        (T, MAIN_DEF, loop_helper("train_loop", "model, step_model, optimizers, batches, "
                                                "autocast, budget_s") + MAIN_DEF),
        (T, TIMED_LOOP, "    step, tokens, epoch, smooth_loss, t_train = train_loop(\n"
                        "        model, step_model, optimizers, batches, autocast, budget_s)\n")],
    "loop_in_helper_result_var": [
        (T, MAIN_DEF, loop_helper("run_training", "model, step_model, optimizers, batches, "
                                                  "autocast, budget_s") + MAIN_DEF),
        (T, TIMED_LOOP, "    result = run_training(model, step_model, optimizers, batches,\n"
                        "                          autocast, budget_s)\n"
                        "    step, tokens, epoch, smooth_loss, t_train = result\n")],
    "loop_in_helper_renamed_budget": [
        (T, MAIN_DEF, loop_helper("train_for", "model, step_model, optimizers, batches, "
                                               "autocast, budget", ("budget_s", "budget"))
         + MAIN_DEF),
        (T, TIMED_LOOP, "    step, tokens, epoch, smooth_loss, t_train = train_for(\n"
                        "        model, step_model, optimizers, batches, autocast, budget=budget_s)\n")],
    "train_step_helper": [
        (T, MAIN_DEF, "def train_step(model, step_model, optimizers, autocast, x, y):\n"
                      '    """One optimizer step on one batch; returns the loss."""\n'
                      "    with autocast:\n        logits = step_model(x)\n"
                      "    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))\n"
                      "    loss.backward()\n    for opt in optimizers:\n        opt.step()\n"
                      "    model.zero_grad(set_to_none=True)\n    return loss\n\n\n" + MAIN_DEF),
        (T, "        with autocast:\n            logits = step_model(x)\n"
            "        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))\n"
            "        loss.backward()\n        for opt in optimizers:\n            opt.step()\n"
            "        model.zero_grad(set_to_none=True)\n",
         "        loss = train_step(model, step_model, optimizers, autocast, x, y)\n")],
    "refactor_build_model": [
        (T, "    depth, width, batch_size = model_size(profile.name)\n"
            "    model = GPT(profile.vocab_size, profile.seq_len, depth, width, N_HEAD, MLP_RATIO)"
            ".to(device)\n",
         "    model, depth, width, batch_size = build_model(profile, device)\n"),
        (T, MAIN_DEF, "def build_model(profile, device: torch.device) -> tuple[GPT, int, int, int]:\n"
                      '    """The model for a profile, on its device, with its size."""\n'
                      "    depth, width, batch_size = model_size(profile.name)\n"
                      "    model = GPT(profile.vocab_size, profile.seq_len, depth, width, N_HEAD,\n"
                      "                MLP_RATIO).to(device)\n"
                      "    return model, depth, width, batch_size\n\n\n" + MAIN_DEF)],
    "refactor_attention_helper_method": [
        (T, "    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> "
            "torch.Tensor:\n        B, T, C = x.shape\n        H, D = self.n_head, C // self.n_head\n"
            "        q = self.q(x).view(B, T, H, D)\n        k = self.k(x).view(B, T, H, D)\n"
            "        v = self.v(x).view(B, T, H, D)\n",
         "    def _heads(self, lin: nn.Linear, x: torch.Tensor) -> torch.Tensor:\n"
         "        B, T, C = x.shape\n        return lin(x).view(B, T, self.n_head, C // self.n_head)\n\n"
         "    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> "
         "torch.Tensor:\n"
         "        B, T, C = x.shape\n"
         "        q, k, v = self._heads(self.q, x), self._heads(self.k, x), self._heads(self.v, x)\n")],
    # --- rotary, value embeddings, MLPs, architecture -----------------------------
    "rope_in_forward": [
        (T, ROPE,
         "        head_dim = self.blocks[0].attn.q.out_features // self.blocks[0].attn.n_head\n"
         "        inv_freq = 1.0 / ROPE_BASE ** (\n"
         "            torch.arange(0, head_dim, 2, device=idx.device).float() / head_dim)\n"
         "        angles = torch.outer(torch.arange(T, device=idx.device).float(), inv_freq)\n"
         "        angles = angles[None, :, None, :]\n"
         "        cos, sin = angles.cos(), angles.sin()\n")],
    "rope_partial_comment": [
        (T, "    d = x.size(-1) // 2\n    x1, x2 = x[..., :d], x[..., d:]\n",
         "    d = x.size(-1) // 2  # rotate the two halves of each head against each other\n"
         "    x1, x2 = x[..., :d], x[..., d:]\n")],
    "value_embeddings": [
        (T, "        self.lm_head = nn.Linear(width, vocab_size, bias=False)\n",
         "        self.lm_head = nn.Linear(width, vocab_size, bias=False)\n"
         "        self.value_embed = nn.Embedding(vocab_size, width)  # modded-nanogpt\n"),
        (T, "        for block in self.blocks:\n            x = block(x, cos, sin)\n",
         "        ve = self.value_embed(idx)\n"
         "        for i, block in enumerate(self.blocks):\n"
         "            x = block(x, cos, sin, ve if i % 2 == 0 else None)\n"),
        (T, "    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> "
            "torch.Tensor:\n        x = x + self.attn(rms_norm(x), cos, sin)\n",
         "    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,\n"
         "                ve: torch.Tensor | None = None) -> torch.Tensor:\n"
         "        if ve is not None:\n            x = x + 0.5 * ve\n"
         "        x = x + self.attn(rms_norm(x), cos, sin)\n")],
    "mlp_gelu_tanh_ratio3": [
        hp("MLP_RATIO", "3"),
        (T, "return self.proj(F.relu(self.fc(x)).square())",
         'return self.proj(F.gelu(self.fc(x), approximate="tanh"))')],
    "mlp_with_bias": [
        (T, "        self.fc = nn.Linear(dim, hidden, bias=False)\n",
         "        self.fc = nn.Linear(dim, hidden, bias=True)\n")],
    "weight_tying": [
        (T, "        self.lm_head = nn.Linear(width, vocab_size, bias=False)\n",
         "        self.lm_head = nn.Linear(width, vocab_size, bias=False)\n"
         "        self.lm_head.weight = self.wte.weight  # tie input and output embeddings\n")],
    "embed_scale_sqrt_width": [
        (T, "        x = rms_norm(self.wte(idx))\n",
         "        x = rms_norm(self.wte(idx) * math.sqrt(self.wte.embedding_dim))\n")],
    "unet_skip_lambdas": [
        (T, "        self.lm_head = nn.Linear(width, vocab_size, bias=False)\n",
         "        self.lm_head = nn.Linear(width, vocab_size, bias=False)\n"
         "        self.skip = nn.Parameter(torch.zeros(depth))  # learned x0 mixing per block\n"),
        (T, "        for block in self.blocks:\n            x = block(x, cos, sin)\n",
         "        x0 = x\n        for i, block in enumerate(self.blocks):\n"
         "            x = block(x + self.skip[i] * x0, cos, sin)\n")],
    "dropout_residual": [
        (T, "        return x + self.mlp(rms_norm(x))\n",
         "        return x + F.dropout(self.mlp(rms_norm(x)), p=0.0, training=self.training)\n")],
    "learned_rmsnorm": [
        (T, "        self.attn = Attention(dim, n_head)\n",
         "        self.attn = Attention(dim, n_head)\n"
         "        self.norm1 = nn.RMSNorm(dim)\n        self.norm2 = nn.RMSNorm(dim)\n"),
        (T, "        x = x + self.attn(rms_norm(x), cos, sin)\n        return x + self.mlp(rms_norm(x))\n",
         "        x = x + self.attn(self.norm1(x), cos, sin)\n        return x + self.mlp(self.norm2(x))\n")],
    "multi_query_attention": [
        (T, "        self.k = nn.Linear(dim, dim, bias=False)\n        self.v = nn.Linear(dim, dim, bias=False)\n",
         "        self.k = nn.Linear(dim, dim // n_head, bias=False)  # one shared key/value head\n"
         "        self.v = nn.Linear(dim, dim // n_head, bias=False)\n"),
        (T, "        k = self.k(x).view(B, T, H, D)\n        v = self.v(x).view(B, T, H, D)\n",
         "        k = self.k(x).view(B, T, 1, D).expand(B, T, H, D)\n"
         "        v = self.v(x).view(B, T, 1, D).expand(B, T, H, D)\n")],
    "attention_temperature_param": [
        (T, "        self.proj = nn.Linear(dim, dim, bias=False)\n",
         "        self.proj = nn.Linear(dim, dim, bias=False)\n        self.temp = nn.Parameter(torch.ones(1))\n"),
        (T, "        q, k = rms_norm(q), rms_norm(k)  # QK-norm bounds the attention logits\n",
         "        q, k = rms_norm(q) * self.temp, rms_norm(k)  # QK-norm bounds the attention logits\n")],
    "logit_softcap_removed": [
        (T, "        return LOGIT_SOFTCAP * torch.tanh(logits / LOGIT_SOFTCAP)\n", "        return logits\n")],
    # --- optimizer, schedule, initialisation --------------------------------------
    "grad_clip_constant": [
        after(T, "LOG_EVERY = 50            # print a progress line every this many steps\n",
              "GRAD_CLIP = 1.0           # max global grad norm (0 disables)\n"),
        after(T, LOOP, "        if GRAD_CLIP > 0:\n"
                       "            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)\n")],
    "schedule_inverse_sqrt": [
        (T, "    return 1.0\n\n\n# ---", "    return 1.0 / math.sqrt(1.0 + 10.0 * progress)\n\n\n# ---")],
    "schedule_linear_to_floor": [hp("WARMDOWN_FRAC", "1.0"), hp("FINAL_LR_FRAC", "0.05")],
    "grad_accumulation_two_micro": [
        (T, "        x, y, epoch = next(batches)\n        with autocast:\n            logits = step_model(x)\n"
            "        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))\n"
            "        loss.backward()\n",
         "        for _micro in range(2):  # two micro-batches per step\n"
         "            x, y, epoch = next(batches)\n            with autocast:\n"
         "                logits = step_model(x)\n"
         "            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1)) / 2\n"
         "            loss.backward()\n")],
    "init_head_scale": [
        (T, "nn.init.normal_(self.lm_head.weight, std=0.001)",
         "nn.init.normal_(self.lm_head.weight, std=0.002)")],
    "init_uniform_half": [
        (T, "                bound = math.sqrt(3.0 / lin.in_features)\n",
         "                bound = 0.5 * math.sqrt(3.0 / lin.in_features)\n")],
    "muon_no_nesterov_flag": [
        after(T, "NS_STEPS = 5              # Newton-Schulz iterations per Muon update\n",
              "MUON_NESTEROV = False     # use the plain momentum buffer as the update\n"),
        (T, '            update = newton_schulz(grads.lerp_(buf, group["momentum"]), group["ns_steps"])\n',
         '            g = grads.lerp_(buf, group["momentum"]) if MUON_NESTEROV else buf\n'
         '            update = newton_schulz(g, group["ns_steps"])\n')],
    "muon_momentum_warmup": [
        after(T, '                group["lr"] = group["initial_lr"] * multiplier\n',
              "        frac = min(step / 300, 1.0)  # Muon momentum warmup (modded-nanogpt)\n"
              "        for group in optimizers[1].param_groups:\n"
              '            group["momentum"] = (1 - frac) * 0.85 + frac * MUON_MOMENTUM\n')],
    "fused_adamw_on_gpu": [
        (T, "    adam = torch.optim.AdamW(adam_groups, betas=(ADAM_BETA1, ADAM_BETA2), eps=1e-10,\n"
            "                             weight_decay=0.0)\n",
         "    adam = torch.optim.AdamW(adam_groups, betas=(ADAM_BETA1, ADAM_BETA2), eps=1e-10,\n"
         "                             weight_decay=0.0, fused=torch.cuda.is_available())\n")],
    "label_smoothing": [
        (T, "        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))\n",
         "        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1),\n"
         "                               label_smoothing=0.05)\n")],
    "break_on_divergence": [(T, "            return 1\n        step += 1\n", "            break\n        step += 1\n")],
    # --- logging, compile flags, precision, runtime -------------------------------
    "log_tokens_per_second": [
        (T, 'f"{elapsed:6.1f}s | epoch {epoch}", flush=True)',
         'f"{elapsed:6.1f}s | epoch {epoch} | {tokens / max(elapsed, 1e-9):.0f} tok/s", flush=True)')],
    "log_memory_in_progress": [
        (T, 'f"{elapsed:6.1f}s | epoch {epoch}", flush=True)',
         'f"{elapsed:6.1f}s | epoch {epoch} | mem {peak_memory_mb(device):.0f}MB", flush=True)')],
    "log_steps_per_second": [
        (T, "    tokens_per_s = tokens / max(training_s, 1e-9)\n",
         "    tokens_per_s = tokens / max(training_s, 1e-9)\n"
         "    steps_per_s = step / max(training_s, 1e-9)\n"),
        (T, SUMMARY, SUMMARY + '    print(f"steps_per_sec:    {steps_per_s:.2f}")\n')],
    "log_first_step_time": [
        after(T, LOOP, "        if step == 0:\n"
                       "            t_first = time.perf_counter() - t_train  # includes compile\n"),
        (T, SUMMARY, SUMMARY + '    print(f"first_step_s:     {t_first:.2f}")\n')],
    "config_dataclass_summary": [
        after(T, IMPORTS, "from dataclasses import asdict, dataclass\n"),
        (T, '# Peak dense bf16 FLOP/s by GPU name, for the informational MFU figure.\n',
         "\n@dataclass(frozen=True)\nclass RunInfo:\n    depth: int\n    width: int\n    lr: float\n\n\n"
         "# Peak dense bf16 FLOP/s by GPU name, for the informational MFU figure.\n"),
        (T, SUMMARY, SUMMARY + '    print(f"config:           {asdict(RunInfo(depth, width, LR))}")\n')],
    "compile_fullgraph": [
        (T, "step_model = torch.compile(model)",
         "step_model = torch.compile(model, fullgraph=True, dynamic=False)")],
    "dynamo_cache_limit": [
        after(T, "import torch.nn.functional as F\n", "import torch._dynamo\n"),
        (T, "    torch.manual_seed(SEED)\n",
         "    torch.manual_seed(SEED)\n"
         "    torch._dynamo.config.cache_size_limit = 64  # fewer recompiles\n")],
    "bf16_autocast_cpu": [
        (T, '        autocast = torch.autocast("cpu", enabled=False)\n',
         '        autocast = torch.autocast("cpu", dtype=torch.bfloat16)\n')],
    "activation_table": [
        after(T, DL, "\nACT = \"relu2\"  # relu2 | gelu | silu\n"
                     "ACTIVATIONS = {\"relu2\": lambda t: F.relu(t).square(), \"gelu\": F.gelu,\n"
                     "               \"silu\": F.silu}\n"),
        (T, "return self.proj(F.relu(self.fc(x)).square())",
         "return self.proj(ACTIVATIONS[ACT](self.fc(x)))")],
    "attention_dropout_nanogpt": [
        (T, "        self.proj = nn.Linear(dim, dim, bias=False)\n",
         "        self.proj = nn.Linear(dim, dim, bias=False)\n        self.dropout = 0.0\n"),
        (T, "v.transpose(1, 2), is_causal=True\n",
         "v.transpose(1, 2), is_causal=True,\n"
         "            dropout_p=self.dropout if self.training else 0.0,\n")],
    "logging_module": [
        after(T, IMPORTS, "import logging\n"),
        (T, "    torch.manual_seed(SEED)\n",
         "    torch.manual_seed(SEED)\n    log = logging.getLogger('trainer')\n"
         "    logging.basicConfig(level=logging.INFO)\n"),
        (T, SUMMARY, SUMMARY + "    log.info('done after %d steps', step)\n")],
    "param_count_helper_after_loop": [
        (T, MAIN_DEF, "def param_count(model: nn.Module) -> int:\n"
                      "    return sum(p.numel() for p in model.parameters())\n\n\n" + MAIN_DEF),
        (T, SUMMARY, SUMMARY + '    print(f"params_check:     {param_count(model)}")\n')],
    "progress_log_file_in_out_dir": [
        (T, T_TRAIN, "    out_dir.mkdir(parents=True, exist_ok=True)\n"
                     "    log_file = open(out_dir / 'progress.log', 'w')\n" + T_TRAIN),
        (T, '                  f"{elapsed:6.1f}s | epoch {epoch}", flush=True)\n',
         '                  f"{elapsed:6.1f}s | epoch {epoch}", flush=True)\n'
         '            log_file.write(f"{step} {smooth_loss:.4f}\\n")\n')],
    "gc_disable_after_setup": [
        after(T, IMPORTS, "import gc\n"),
        (T, T_TRAIN, "    gc.collect()\n    gc.freeze()\n    gc.disable()  # GC causes ~500 ms stalls\n"
         + T_TRAIN)],
}
