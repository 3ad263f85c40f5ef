"""One-command check of the CUDA path, for a machine with an NVIDIA GPU.

    benchmarks/gpu_check [--seconds 60] [--try-budget 30] [--keep DIR] [--skip-build]

1. builds the CUDA image (`labwarden sandbox build --recipe cuda`);
2. in a container set up exactly like the sandbox's training step (read-only root, exec
   tmpfs, uid 65534, no network, GPU limits, the private compile cache) compiles a tiny
   bf16 forward/backward and prints the first step's time (compile included);
3. runs the `gpu` profile's trainer there on small local data (the built-in source) for
   `--seconds`, twice: with the compile cache as it is, then with what the first run
   compiled; prints the first step's time (compile included), steps, tokens/s, MFU (and
   its formula), peak memory and export time of each;
4. loads that export on CUDA with the evaluator's loader in the evaluation step's
   container and scores it (a few rows: small data; not the profile's metric);
5. runs `labwarden try --gpus all` on both backends (the tiny profile, `--try-budget` s).

Where no GPU is present it prints one line and exits 0. Exit 1 if a check failed.
Figures go to the README's "Running on a GPU" with the machine they came from.

`--dry-run-cpu` runs the same steps without a GPU, to test this script: the offline
image, no GPU request, no compile (that image has no compiler; the trainer compiles only
on CUDA), the tiny profile's trainer and scoring instead of the gpu profile's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WORKSPACE_ITEMS = ("eval_frozen", "trainer", "program.md", "labwarden.toml")
COMMON_ENV = {  # as sandbox.pipeline gives every step
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
}
EVAL_ROWS = 32

TINY_COMPILE = '''
import sys, time, torch
device = sys.argv[1]
if device == "cuda":
    assert torch.cuda.is_available(), "no CUDA GPU inside the container"
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.ReLU(),
                            torch.nn.Linear(1024, 256)).to(device)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
step_model = torch.compile(model) if device == "cuda" else model
x = torch.randn(64, 256, device=device)
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

def step():
    with torch.autocast(device, dtype=torch.bfloat16):
        loss = step_model(x).float().square().mean()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss

t = time.perf_counter(); step(); sync(); first = time.perf_counter() - t
t = time.perf_counter()
for _ in range(20):
    loss = step()
sync()
print(f"gpu: {torch.cuda.get_device_name() if device == 'cuda' else 'none (cpu)'}")
print(f"torch: {torch.__version__}")
print(f"first_step_seconds: {first:.2f}")
print(f"step_ms: {1000 * (time.perf_counter() - t) / 20:.2f}")
print(f"loss: {float(loss):.4f}")
'''

# The trainer as the sandbox runs it, with the first step timed (compile included): the
# compiled model is wrapped so the second call reports when the first step ended.
TRAINER_PROBE = '''
import os, sys, time
sys.path.insert(0, os.getcwd())
import torch
_compile = torch.compile

def timed_compile(model, *args, **kwargs):
    compiled = _compile(model, *args, **kwargs)
    calls = []

    def forward(*a, **k):
        calls.append(time.perf_counter())
        if len(calls) == 2:
            print(f"first_step_seconds: {calls[1] - calls[0]:.1f}", flush=True)
        return compiled(*a, **k)
    return forward

torch.compile = timed_compile
from trainer import train
sys.exit(train.main())
'''

SCORE = '''
import os, sys, time
sys.path.insert(0, os.getcwd())
from dataclasses import dataclass, replace
from pathlib import Path
from eval_frozen.evaluate import score
from eval_frozen.model_io import load_program
from eval_frozen.profiles import get_profile
name, rows, device = sys.argv[1], int(sys.argv[2]), sys.argv[3]
base = get_profile(name)
profile = replace(base, eval_tokens=rows * base.seq_len, probe_checks=rows)
t = time.perf_counter()
forward = load_program("/sandbox/model/model.pt2", device)
print(f"load_seconds: {time.perf_counter() - t:.1f}")
result = score(forward, Path("/sandbox/data"), profile, device=device)
print(f"status: {result.status}")
print(f"val_bpb: {result.val_bpb}")
print(f"reason: {result.reason}")
print(f"eval_tokens_per_s: {result.timings.get('tokens_per_s', 0):.0f}")
print(f"probe_max_deviation_nats: {result.probes[0]['max_deviation_nats']:.2e}")
'''


def detect_gpus() -> list[str]:
    """`nvidia-smi -L` lines ("GPU 0: NVIDIA H100 ..."); [] when there is no GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.startswith("GPU ")]


def summary(text: str) -> dict[str, str]:
    """`key: value` lines of a log (the trainer's summary, our scripts' figures)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key and " " not in key.strip() and not line.startswith(" "):
            out[key.strip()] = value.strip()
    return out


class Check:
    def __init__(self) -> None:
        self.failed: list[str] = []

    def ok(self, what: str, detail: str = "") -> None:
        print(f"  ok    {what}" + (f": {detail}" if detail else ""), flush=True)

    def fail(self, what: str, detail: str) -> None:
        self.failed.append(what)
        print(f"  FAIL  {what}: {detail}", flush=True)


def plan_for(args: argparse.Namespace, ws: Path, gpu_data: Path | None) -> Plan:
    from sandbox.docker.images import CUDA_TAG, OFFLINE_TAG

    if args.dry_run_cpu:
        return Plan(device="cpu", gpus=None, image=OFFLINE_TAG, profile="tiny",
                    train_data=ws / ".labwarden" / "data" / "tiny",
                    seconds=min(args.seconds, 3.0), try_budget=min(args.try_budget, 3.0))
    assert gpu_data is not None
    return Plan(device="cuda", gpus="all", image=CUDA_TAG, profile="gpu", train_data=gpu_data,
                seconds=args.seconds, try_budget=args.try_budget)


def make_workspace(root: Path, gpu_profile: bool = True) -> tuple[Path, Path | None]:
    """A copy of this repository's workspace (tiny prepared) and `gpu`-profile data from
    the built-in source (small: enough to train on, a few rows to score)."""
    from eval_frozen.prepare import prepare
    from eval_frozen.profiles import get_profile

    ws = root / "ws"
    ws.mkdir(parents=True, exist_ok=True)
    for item in WORKSPACE_ITEMS:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, ws / item, ignore=shutil.ignore_patterns("__pycache__"),
                            dirs_exist_ok=True)
        elif src.is_file():
            shutil.copy2(src, ws / item)
    subprocess.run([sys.executable, "-m", "labwarden", "prepare", "--profile", "tiny",
                    "--workspace", str(ws)], check=True, capture_output=True, text=True)
    if not gpu_profile:
        return ws, None
    gpu_data = root / "gpu-data"
    small = replace(get_profile("gpu"), eval_tokens=EVAL_ROWS * 2048)
    prepare(small, gpu_data, "builtin", log=lambda _: None)
    return ws, gpu_data


@dataclass(frozen=True)
class Plan:
    """What the checks run: the GPU plan, or the CPU dry run that tests this script."""

    device: str
    gpus: str | None
    image: str
    profile: str
    train_data: Path
    seconds: float
    try_budget: float


def sandbox_step(backend, plan: Plan, name: str, argv: tuple[str, ...], mounts: tuple,  # noqa: ANN001
                 env: dict, run_dir: Path, limit_s: float,
                 limits) -> tuple[object, dict[str, str], str]:  # noqa: ANN001
    """One step through the Docker backend's own `run_step`: the sandbox's settings."""
    from sandbox.backend import StepSpec

    run_dir.mkdir(parents=True, exist_ok=True)
    step = StepSpec(name=name, argv=argv, env={**COMMON_ENV, **env}, mounts=mounts,
                    workdir="ws", time_limit_s=limit_s, log_path=run_dir / f"{name}.log",
                    limits=limits, gpus=plan.gpus)
    outcome = backend.run_step(step)
    text = step.log_path.read_text(errors="replace") if step.log_path.exists() else ""
    return outcome, summary(text), text


def _tail(text: str, n: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-n:])


def check_docker(args: argparse.Namespace, plan: Plan, ws: Path, work: Path,
                 check: Check) -> None:
    from labwarden.config import load_config
    from sandbox.backend import Mount
    from sandbox.docker import DockerBackend, prereqs
    from sandbox.docker.backend import PRIVATE_CACHE
    from sandbox.docker.images import CUDA_TAG, _cache_files, build_cuda, promote_compile_cache
    from sandbox.errors import SandboxError, SandboxUnavailable
    from sandbox.settings import SandboxSettings

    try:
        client = prereqs.connect()
    except SandboxUnavailable as e:
        check.fail("docker", str(e))
        return
    if plan.gpus and not prereqs.has_nvidia_runtime(client):
        check.fail("docker", prereqs.NO_NVIDIA)
        return
    if plan.image == CUDA_TAG and not args.skip_build:
        t = time.monotonic()
        try:
            build_cuda(client, log=lambda line: print(f"        {line}", flush=True))
        except (SandboxError, SandboxUnavailable) as e:
            check.fail("build the CUDA image", str(e))
            return
        check.ok("build the CUDA image", f"{CUDA_TAG} ready in {time.monotonic() - t:.0f} s")
    backend = DockerBackend(image=plan.image, client=client)
    try:
        backend.setup()
    except (SandboxError, SandboxUnavailable) as e:
        check.fail("CUDA image", str(e))
        return
    limits = SandboxSettings.from_config(load_config(ws)).limits
    shared = backend.shared_compile_cache()
    scripts = work / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    for name, text in (("tiny_compile.py", TINY_COMPILE), ("trainer_probe.py", TRAINER_PROBE),
                       ("score.py", SCORE)):
        (scripts / name).write_text(text)
    print(f"        compile cache {shared}: {len(_cache_files(shared))} files", flush=True)

    # 2. a tiny bf16 forward/backward, compiled, in the training step's container
    run = work / "compile"
    outcome, got, log = sandbox_step(
        backend, plan, "train", ("python", "/sandbox/scripts/tiny_compile.py", plan.device),
        (Mount(ws, "ws"), Mount(scripts, "scripts")), {}, run, 600, limits)
    if outcome.exit_code == 0 and "first_step_seconds" in got:
        check.ok("compile a tiny bf16 forward/backward in the sandbox",
                 f"{got.get('gpu')}, torch {got.get('torch')}, first step "
                 f"{got['first_step_seconds']} s (compile included), then {got.get('step_ms')} "
                 f"ms a step")
    else:
        check.fail("compile a tiny bf16 forward/backward in the sandbox",
                   f"exit {outcome.exit_code}, oom {outcome.oom}: {_tail(log)}")
    _promote(run / PRIVATE_CACHE, shared, promote_compile_cache)

    # 3. the gpu profile's trainer, cache as it is, then warm
    model = None
    for label in ("cache as found", "cache warm"):
        run = work / f"train-{label.split()[-1]}"
        out = run / "out"
        out.mkdir(parents=True, exist_ok=True)
        out.chmod(0o777)
        env = {"LABWARDEN_PROFILE": plan.profile, "LABWARDEN_DATA_DIR": "{root}/data",
               "LABWARDEN_TIME_BUDGET": f"{plan.seconds:g}", "LABWARDEN_OUT_DIR": "{root}/out"}
        mounts = (Mount(ws, "ws"), Mount(scripts, "scripts"),
                  Mount(plan.train_data / "train", "data/train"),
                  Mount(plan.train_data / "tokenizer", "data/tokenizer"),
                  Mount(out, "out", read_only=False))
        t = time.monotonic()
        outcome, got, log = sandbox_step(
            backend, plan, "train", ("python", "/sandbox/scripts/trainer_probe.py"), mounts, env,
            run, plan.seconds + 300, limits)
        step_s = time.monotonic() - t
        if outcome.exit_code == 0 and (out / "model.pt2").is_file():
            model = out / "model.pt2"
            check.ok(f"{plan.profile} profile trainer, {plan.seconds:g} s ({label})", ", ".join([
                f"first step {got.get('first_step_seconds')} s (compile included)",
                f"steps {got.get('steps')}", f"tokens/s {got.get('tokens_per_sec')}",
                f"MFU {got.get('mfu_percent')}% ({got.get('mfu_formula')})",
                f"peak memory {got.get('peak_memory_mb')} MB",
                f"export {got.get('export_seconds')} s", f"step {step_s:.0f} s in all",
                f"peak host memory {outcome.peak_memory_mb} MB"]))
        else:
            check.fail(f"{plan.profile} profile trainer ({label})",
                       f"exit {outcome.exit_code}, oom {outcome.oom}, timed out "
                       f"{outcome.timed_out}: {_tail(log)}")
        _promote(run / PRIVATE_CACHE, shared, promote_compile_cache)
    print(f"        compile cache {shared}: {len(_cache_files(shared))} files", flush=True)

    # 4. the export, loaded on CUDA and scored, in the evaluation step's container
    what = f"score the export on {plan.device}"
    if model is None:
        check.fail(what, "no model.pt2 from the trainer")
        return
    run = work / "eval"
    data = plan.train_data
    mounts = (Mount(ws, "ws"), Mount(scripts, "scripts"), Mount(data / "val", "data/val"),
              Mount(data / "tokenizer", "data/tokenizer"), Mount(model, "model/model.pt2"))
    argv = ("python", "/sandbox/scripts/score.py", plan.profile, str(EVAL_ROWS), plan.device)
    outcome, got, log = sandbox_step(backend, plan, "eval", argv, mounts, {}, run, 900, limits)
    if outcome.exit_code == 0 and got.get("status") == "scored":
        check.ok(what, f"val_bpb {got.get('val_bpb')} on {EVAL_ROWS} rows, "
                 f"load {got.get('load_seconds')} s, {got.get('eval_tokens_per_s')} tokens/s, "
                 f"probe deviation {got.get('probe_max_deviation_nats')} nats")
    else:
        check.fail(what, f"exit {outcome.exit_code}: "
                   f"{got.get('status')} {got.get('reason')} {_tail(log)}")
    backend.cleanup()


def _promote(private: Path, shared: Path, promote) -> None:  # noqa: ANN001
    # This script's steps run the repository's own trainer: a trusted run, as in the sandbox.
    if private.is_dir():
        promote(private, shared)
        shutil.rmtree(private, ignore_errors=True)


def check_try(plan: Plan, ws: Path, check: Check) -> None:
    gpus = ["--gpus", plan.gpus] if plan.gpus else []
    for backend in ("docker", "local"):
        argv = [sys.executable, "-m", "labwarden", "try", *gpus, "--backend", backend,
                "--profile", "tiny", "--time-budget", f"{plan.try_budget:g}", "--json",
                "--quiet", "--workspace", str(ws)]
        t = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        took = time.monotonic() - t
        try:
            out = json.loads(done.stdout)
            result = out.get("result") or {}
        except ValueError:
            out, result = {}, {}
        if done.returncode == 0 and result.get("status") == "ok":
            timing = result.get("timing") or {}
            check.ok(f"labwarden try {' '.join(gpus)} --backend {backend}".replace("  ", " "),
                     f"val_bpb {result.get('val_bpb')}, train {result.get('train_seconds')} s "
                     f"(start-up {timing.get('startup_s')} s), eval {result.get('eval_seconds')} "
                     f"s, {took:.0f} s in all")
        else:
            why = result.get("reason") or _tail(done.stderr or done.stdout)
            check.fail(f"labwarden try {' '.join(gpus)} --backend {backend}".replace("  ", " "),
                       f"exit {done.returncode}, {result.get('status')}: {why}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/gpu_check", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="training budget of the gpu-profile runs (default 60)")
    parser.add_argument("--try-budget", type=float, default=30.0,
                        help="training budget of the labwarden try runs (default 30)")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="work in DIR and keep it (default: a temporary folder)")
    parser.add_argument("--skip-build", action="store_true",
                        help="use the CUDA image as it is (it must exist)")
    parser.add_argument("--dry-run-cpu", action="store_true",
                        help="the same steps on CPU, to test this script (see above)")
    args = parser.parse_args(argv)

    gpus = [] if args.dry_run_cpu else detect_gpus()
    if not gpus and not args.dry_run_cpu:
        print("gpu_check: no NVIDIA GPU on this machine (nvidia-smi lists none); "
              "nothing to check.")
        return 0
    print(f"gpu_check: {gpus[0] if gpus else 'CPU dry run'}"
          + (f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else ""), flush=True)
    check = Check()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gpu_check-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    try:
        t = time.monotonic()
        ws, gpu_data = make_workspace(work, gpu_profile=not args.dry_run_cpu)
        check.ok("workspace and data", f"{work} in {time.monotonic() - t:.0f} s")
        plan = plan_for(args, ws, gpu_data)
        check_docker(args, plan, ws, work, check)
        check_try(plan, ws, check)
    except KeyboardInterrupt:
        print("gpu_check: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a check that broke is a failure with one line, then the rest
        check.fail("gpu_check", f"{type(e).__name__}: {e}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if check.failed:
        print(f"gpu_check: {len(check.failed)} check(s) failed: {', '.join(check.failed)}")
        return 1
    print("gpu_check: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
