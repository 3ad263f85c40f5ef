"""The conformance suite every backend runs (in the spirit of Inspect AI's `self_check`).

Each check runs a real experiment whose trainer is an attack written as plain Python
(a stand-in for `trainer/train.py`, passed as `base_dir`), then judges what the sandbox
did about it. A backend that cannot give a guarantee names it in `KNOWN_FAILURES` with
the reason; the tests expect exactly those to fail, so a silent regression or a silent
improvement both show up.

Every check that looks for something first shows, on the host, that it is there (the
listener answers, the marker was written, the excerpts are found in the host's copies of
the validation text), so a broken check cannot pass by finding nothing. The widest,
`val_text_unreadable`, searches every file the training step can read, containers and
compressed members included (a minute or so; the scanner is `sandbox.scan`);
`sandbox.exposure.probe_exposure` is the doctor's quick version of it and of the marker
checks.

Use: `prepare_workspace(prepared, dest)` once (a copy of a prepared tiny workspace with
small limits), then `run_check(name, backend, config)` per check.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import textwrap
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labwarden.config import WorkspaceConfig, load_config
from sandbox.backend import SandboxBackend
from sandbox.scan import EXCERPT_CHARS, SCAN_BUDGET_S, _scan_digest, choose_excerpts, scanner_source
from sandbox.spec import ExperimentResult, ExperimentSpec

# Limits the suite's workspace runs under: small, so the bombs go off quickly. The
# export allowance is about twice the most an honest tiny trainer ran past its budget
# here (2.6 s, under load; see benchmarks/sandbox.py); the start-up allowance only has
# to outlast the budget tests' cheats (start-up + budget + 3x the export allowance).
SUITE_SANDBOX_TOML = """
[sandbox]
memory_mb = 2048
pids = 64
startup_allowance_s = 25
export_allowance_s = 5
eval_timeout_s = 300
"""
LOOP_BUDGET_S = 1.0

# Measured where the local backend builds its fresh root (user, mount, network and pid
# namespaces and an allow-listed root; see `labwarden sandbox doctor`); at its weaker
# levels it fails more, and `local_known_failures()` says which.
KNOWN_FAILURES: dict[str, dict[str, str]] = {
    "docker": {},
    "local": {
        "gpu_request_in_hostconfig": "no device isolation: GPUs are selected with "
        "CUDA_VISIBLE_DEVICES, and the others stay reachable",
    },
}


def local_known_failures(level: str | None = None) -> dict[str, str]:
    """The local backend's known failures at `level` (default: the strongest that works
    here, probed). Below `fresh-root` the host's files stay readable: the built-in
    validation text, earlier runs, /dev/shm (and the backend refuses built-in data)."""
    from sandbox.local.isolation import best_level, unshare_prefix

    level = level or best_level()
    known = dict(KNOWN_FAILURES["local"])
    if level != "fresh-root":
        shared = f"isolation {level}: the host's own root"
        known["val_text_unreadable"] = f"{shared}, pydoc_data and the data folder readable"
        known["earlier_run_unreadable"] = f"{shared}, the state folder readable"
        known["host_shm_unreadable"] = f"{shared}, /dev/shm shared"
    if level == "none":
        known["frozen_write_blocked"] = (
            "no mount namespace here: writes land, and the "
            "frozen-file check voids the experiment afterwards"
        )
        known["val_unreachable_by_path"] = "no mount namespace here: readable by absolute path"
    if "--net" not in unshare_prefix():
        known["network_blocked"] = "no network namespace here"
    return known


@dataclass
class CheckOutcome:
    passed: bool
    detail: str


@dataclass(frozen=True)
class Check:
    name: str
    doc: str
    fn: Callable[[SandboxBackend, WorkspaceConfig], CheckOutcome]


def prepare_workspace(prepared: Path, dest: Path) -> WorkspaceConfig:
    """Copy a prepared workspace (code, data, seal) and give it the suite's limits."""
    shutil.copytree(
        prepared, dest, ignore=shutil.ignore_patterns("runs", "__pycache__", "*.sqlite*", ".git")
    )
    toml = dest / "labwarden.toml"
    text = re.sub(r"(?ms)^\[sandbox\].*?(?=^\[|\Z)", "", toml.read_text())
    toml.write_text(text.rstrip() + "\n" + SUITE_SANDBOX_TOML)
    return load_config(dest)


# A trainer that exports a real (bigram) model quickly, so the evaluator has work to do.
WELL_BEHAVED = """
import os, torch
from eval_frozen.dataloader import load_profile
p = load_profile(os.environ["LABWARDEN_PROFILE"])
class Bigram(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(p.vocab_size, p.vocab_size)
    def forward(self, idx):
        return self.table(idx)
torch.manual_seed(0)
ids = torch.zeros((2, p.seq_len), dtype=torch.long)
batch = torch.export.Dim("batch", min=1, max=1024)
prog = torch.export.export(Bigram().eval(), (ids,), dynamic_shapes=({0: batch},))
torch.export.save(prog, os.path.join(os.environ["LABWARDEN_OUT_DIR"], "model.pt2"))
print("STANDIN_OK", flush=True)
"""


def _attack(
    backend: SandboxBackend, config: WorkspaceConfig, source: str, tag: str, budget: float = 30.0
) -> ExperimentResult:
    base = config.state_path / "conformance" / f"{tag}-{uuid.uuid4().hex[:8]}"
    (base / "trainer").mkdir(parents=True)
    (base / "trainer" / "__init__.py").write_text("")
    (base / "trainer" / "train.py").write_text(textwrap.dedent(source))
    spec = ExperimentSpec(
        config=config,
        patch=None,
        profile="tiny",
        time_budget_s=budget,
        experiment_id=f"{backend.name}-{base.name}",
        base_dir=base,
    )
    return backend.run(spec)


def _log(result: ExperimentResult) -> str:
    return (result.run_dir / "train.log").read_text(errors="replace")


def well_behaved_runs(backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    """An honest trainer trains and is scored (after all the attacks, in suite order)."""
    r = _attack(backend, config, WELL_BEHAVED, "ok")
    return CheckOutcome(
        r.status == "ok" and r.val_bpb is not None, f"{r.status} val_bpb={r.val_bpb} {r.reason}"
    )


def _host_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent; picks the outgoing address
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def network_blocked(backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen(16)
    port = server.getsockname()[1]
    host = _host_address()
    accepted: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, peer = server.accept()
            except OSError:
                return
            accepted.append(peer[0])
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        # Control: the listener is reachable from the host, so a block below means something.
        socket.create_connection((host, port), timeout=2).close()
        r = _attack(
            backend,
            config,
            f'''
            import socket
            for addr in [("{host}", {port}), ("127.0.0.1", {port}), ("pypi.org", 443)]:
                try:
                    socket.create_connection(addr, timeout=3).close()
                    print("NET_OPEN", addr, flush=True)
                except OSError as e:
                    print("NET_BLOCKED", addr, e, flush=True)
            ''',
            "net",
        )
    finally:
        server.close()
    log = _log(r)
    inside = [a for a in accepted if a != host] + (["sandbox"] if "NET_OPEN" in log else [])
    blocked = log.count("NET_BLOCKED") == 3
    return CheckOutcome(
        blocked and not inside and len(accepted) == 1,
        f"blocked={log.count('NET_BLOCKED')}/3 accepted={accepted}",
    )


def frozen_write_blocked(backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    r = _attack(
        backend,
        config,
        """
        import os
        for path in ["eval_frozen/evaluate.py", os.environ["LABWARDEN_DATA_DIR"] + "/seal.json",
                     os.environ["LABWARDEN_DATA_DIR"] + "/train/planted.txt"]:
            try:
                with open(path, "a") as f:
                    f.write("# tampered\\n")
                print("WRITE_OK", path, flush=True)
            except OSError as e:
                print("WRITE_BLOCKED", path, e, flush=True)
        """,
        "frozen",
    )
    log = _log(r)
    return CheckOutcome(
        log.count("WRITE_BLOCKED") == 3 and "WRITE_OK" not in log,
        f"blocked={log.count('WRITE_BLOCKED')}/3 status={r.status}",
    )


def frozen_write_voids_result(backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    """However a backend stops it, a run that changed frozen code never scores."""
    r = _attack(
        backend,
        config,
        """
        try:
            with open("eval_frozen/evaluate.py", "a") as f:
                f.write("# tampered\\n")
            print("WRITE_OK", flush=True)
        except OSError as e:
            print("WRITE_BLOCKED", e, flush=True)
        """,
        "void",
    )
    log = _log(r)
    wrote = "WRITE_OK" in log
    ok = (r.status == "violation" and bool(r.violations)) if wrote else "WRITE_BLOCKED" in log
    return CheckOutcome(
        ok and r.val_bpb is None if wrote else ok,
        f"wrote={wrote} status={r.status} violations={r.violations[:1]}",
    )


def val_not_in_view(backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    r = _attack(
        backend,
        config,
        """
        import os
        data = os.environ["LABWARDEN_DATA_DIR"]
        print("VIEW", sorted(os.listdir(data)), flush=True)
        print("VAL_PRESENT" if os.path.exists(os.path.join(data, "val")) else "VAL_ABSENT")
        """,
        "valview",
    )
    log = _log(r)
    return CheckOutcome(
        "VAL_ABSENT" in log and "VAL_PRESENT" not in log,
        next((line for line in log.splitlines() if line.startswith("VIEW")), log[-200:]),
    )


def val_unreachable_by_path(backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    """Not even the workspace's own path to the validation split shows its files."""
    val = config.data_path("tiny") / "val"
    assert any(val.iterdir()), f"control: {val} has files on the host"
    r = _attack(
        backend,
        config,
        f"""
        import os
        try:
            print("VAL_FILES", sum(len(f) for _, _, f in os.walk("{val}", onerror=print)))
            print("VAL_FILES", len(os.listdir("{val}")), flush=True)
        except OSError as e:
            print("VAL_UNREACHABLE", e, flush=True)
        """,
        "valpath",
    )
    log = _log(r)
    counts = [int(n) for n in re.findall(r"VAL_FILES (\d+)", log)]
    return CheckOutcome(
        ("VAL_UNREACHABLE" in log or counts) and not any(counts), log.strip()[-200:]
    )


def val_text_unreadable(backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    """No excerpt of the validation split is readable anywhere in the training step."""
    import json
    import secrets

    data = config.data_path("tiny")
    source = json.loads((data / "source.json").read_text())["source"]["spec"]
    excerpts = choose_excerpts(data / "val", data / "train", source == "builtin")
    if excerpts.problem:
        return CheckOutcome(False, excerpts.problem)
    words = ["labwarden", "canary", "marks", "every", "form", "the", "scan", "decodes"]
    canary = " ".join(words) + " " + secrets.token_hex(12)
    window = canary.encode()[:EXCERPT_CHARS]  # a line's start: what the scan looks at
    needles = [*excerpts.windows, window]
    spec = {
        "size": EXCERPT_CHARS,
        "digests": [_scan_digest(w).hex() for w in needles],
        "prefixes": sorted({w[:8].hex() for w in needles}),
        "canary": canary,
        "canary_digest": _scan_digest(window).hex(),
    }
    r = _attack(backend, config, scanner_source(spec), "valscan", budget=SCAN_BUDGET_S)
    line = next((x for x in _log(r).splitlines() if x.startswith("VAL_SCAN ")), "")
    if not line:
        return CheckOutcome(False, f"no scan result: status={r.status} {_log(r)[-300:]}")
    seen = json.loads(line[len("VAL_SCAN "):])
    ok = seen["hits"] == 0 and not seen["canary_missing"] and seen["bytes"] > 50 << 20
    return CheckOutcome(
        ok,
        f"hits={seen['hits']} where={seen['where'][:5]} canary_missing={seen['canary_missing']} "
        f"files={seen['files']} MB={seen['bytes'] >> 20} seconds={seen['seconds']:.0f} "
        f"errors={seen['errors']} excerpts={len(excerpts.windows)} "
        f"runtime_shared={excerpts.runtime_shared} controls={excerpts.controls}",
    )


def earlier_run_unreadable(backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    """A training step cannot read what an earlier experiment left in the state folder."""
    import secrets

    marker = f"labwarden-earlier-run-{secrets.token_hex(12)}"
    first = _attack(
        backend,
        config,
        f"""
        import os
        open(os.path.join(os.environ["LABWARDEN_OUT_DIR"], "marker.txt"), "w").write("{marker}")
        """,
        "earlier",
    )
    left = first.run_dir / "train" / "marker.txt"
    # Control: the first experiment's file is there on the host, with the marker in it.
    if not left.is_file() or marker not in left.read_text():
        return CheckOutcome(False, f"control: {left} holds no marker ({first.status})")
    runs = config.state_path / "runs"
    r = _attack(
        backend,
        config,
        f"""
        import os
        for path in ["{left}", "{first.run_dir}", "{runs}", "{config.state_path}"]:
            try:
                if os.path.isdir(path):
                    print("LISTED", path, len(os.listdir(path)), flush=True)
                else:
                    print("READ", path, "{marker}" in open(path).read(), flush=True)
            except OSError as e:
                print("UNREADABLE", path, e.strerror, flush=True)
        """,
        "earlier-read",
    )
    log = _log(r)
    return CheckOutcome(
        log.count("UNREADABLE") == 4 and "LISTED" not in log and "READ " not in log,
        " | ".join(x for x in log.splitlines() if x.split(" ")[0] in
                   ("LISTED", "READ", "UNREADABLE"))[:300],
    )


def host_shm_unreadable(backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    """The host's /dev/shm is not the training step's: a marker left there is not seen."""
    import secrets

    shm = Path("/dev/shm")
    if not shm.is_dir():
        return CheckOutcome(True, "no /dev/shm on this host")
    marker = f"labwarden-shm-{secrets.token_hex(12)}"
    path = shm / marker
    path.write_text(marker)
    try:
        assert path.read_text() == marker, "control: the host reads its own marker"
        r = _attack(
            backend,
            config,
            f"""
            import os
            names = os.listdir("/dev/shm") if os.path.isdir("/dev/shm") else []
            print("SHM_LISTED" if "{marker}" in names else "SHM_NOT_LISTED", flush=True)
            try:
                print("SHM_READ", open("{path}").read() == "{marker}", flush=True)
            except OSError as e:
                print("SHM_UNREADABLE", e.strerror, flush=True)
            """,
            "shm",
        )
    finally:
        path.unlink(missing_ok=True)
    log = _log(r)
    return CheckOutcome(
        "SHM_NOT_LISTED" in log and "SHM_UNREADABLE" in log,
        " ".join(x for x in log.splitlines() if x.startswith("SHM_"))[:200],
    )


def fork_bomb_stopped(backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    limit = _suite_limit("pids")
    r = _attack(
        backend,
        config,
        """
        import os, sys, time
        n = 0
        try:
            while n < 5000:
                if os.fork() == 0:
                    time.sleep(600)
                    os._exit(0)
                n += 1
        except OSError as e:
            print(f"FORK_BLOCKED after {n}: {e}", flush=True)
            sys.exit(3)
        print(f"FORK_UNBLOCKED {n}", flush=True)
        """,
        "fork",
    )
    log = _log(r)
    found = re.search(r"FORK_BLOCKED after (\d+)", log)
    left = _leftovers(r.run_dir, backend)
    ok = bool(found) and int(found.group(1)) < limit and r.status == "crash" and not left
    return CheckOutcome(
        ok, f"{found.group(0) if found else log[-200:]} status={r.status} leftover={left}"
    )


def memory_bomb_killed(backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    r = _attack(
        backend,
        config,
        """
        hog = []
        for i in range(400):  # 64 MiB at a time, each page touched, up to 25 GiB
            hog.append(bytearray(b"\\1") * (64 << 20))
        print("MEMORY_UNBOUNDED", flush=True)
        """,
        "mem",
    )
    return CheckOutcome(
        r.status == "oom" and "MEMORY_UNBOUNDED" not in _log(r),
        f"status={r.status} {r.reason} peak={r.peak_memory_mb}",
    )


def infinite_loop_killed(backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    """A trainer that never ends is killed at budget + start-up + export allowances.

    It ignores the polite stop and never reads its data; the kill and the limit in force
    are recorded in the result's timing."""
    allowances = _suite_limit("startup_allowance_s") + _suite_limit("export_allowance_s")
    r = _attack(
        backend,
        config,
        """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # ignore the polite stop
        while True:
            pass
        """,
        "loop",
        budget=LOOP_BUDGET_S,
    )
    limit = LOOP_BUDGET_S + allowances
    t = r.timing
    ok = (
        r.status == "timeout"
        and limit <= r.train_seconds < limit + 10
        and any("killed at its limit" in v for v in r.violations)
        and t is not None
        and t.killed
        and t.kill_limit_s == limit
        and not t.within_budget
        and not _leftovers(r.run_dir, backend)
    )
    return CheckOutcome(
        ok,
        f"status={r.status} train_seconds={r.train_seconds} "
        f"limit={limit} violations={r.violations[:1]}",
    )


def patch_refused(backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    frozen = "--- a/eval_frozen/evaluate.py\n+++ b/eval_frozen/evaluate.py\n@@ -1 +1 @@\n-x\n+y\n"
    stale = "--- a/trainer/train.py\n+++ b/trainer/train.py\n@@ -1 +1 @@\n-no such line\n+y\n"
    got = []
    for tag, patch in (("frozen", frozen), ("stale", stale)):
        spec = ExperimentSpec(
            config=config,
            patch=patch,
            profile="tiny",
            experiment_id=f"{backend.name}-patch-{tag}-{uuid.uuid4().hex[:8]}",
        )
        r = backend.run(spec)
        got.append((r.status, r.reason))
    ok = all(s == "apply_failed" for s, _ in got) and "not editable" in got[0][1]
    return CheckOutcome(ok, str(got))


def gpu_request_in_hostconfig(backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    create = getattr(backend, "create", None)
    if create is None:
        return CheckOutcome(False, f"the {backend.name} backend creates no containers")
    from sandbox.backend import Mount, StepSpec

    backend.setup()
    step = StepSpec(
        name="gpu",
        argv=("true",),
        env={},
        mounts=(Mount(config.root / "trainer", "ws"),),
        workdir="ws",
        time_limit_s=10,
        log_path=config.state_path / "gpu.log",
        gpus=[1],
    )
    container = create(step)
    try:
        container.reload()
        requests = container.attrs["HostConfig"].get("DeviceRequests") or []
    finally:
        container.remove(force=True)
    ok = any(
        r.get("DeviceIDs") == ["1"] and ["gpu"] in (r.get("Capabilities") or []) for r in requests
    )
    return CheckOutcome(ok, str(requests))


def _suite_limit(key: str) -> float:
    match = re.search(rf"^{key} = ([\d.]+)", SUITE_SANDBOX_TOML, re.M)
    assert match, key
    return float(match.group(1))


def _leftovers(run_dir: Path, backend: SandboxBackend | None = None) -> list[int | str]:
    """Processes still running with their working folder inside the run or the run's
    marker in their environment (local steps; in a fresh root the working folder reads
    /sandbox/...), and containers of ours still present (Docker steps)."""
    from sandbox.local.backend import RUN_MARKER

    marker = f"{RUN_MARKER}={run_dir}".encode()
    found: list[int | str] = []
    client = getattr(backend, "client", None)
    if client is not None:
        from sandbox.docker.containers import LABEL

        found += [
            c.short_id
            for c in client.containers.list(all=True, filters={"label": LABEL})
            if c.labels.get("labwarden.run", "").startswith(str(run_dir))
        ]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if cwd.startswith(str(run_dir)) or marker in env:
            found.append(int(proc.name))
    return found


CHECKS: tuple[Check, ...] = tuple(
    Check(fn.__name__, (fn.__doc__ or fn.__name__).strip().splitlines()[0], fn)
    # Run in this order: the well-behaved experiment comes last, after every attack,
    # because the contract is that the caller can always go on with the next experiment.
    for fn in (
        patch_refused,
        network_blocked,
        frozen_write_blocked,
        frozen_write_voids_result,
        val_not_in_view,
        val_unreachable_by_path,
        val_text_unreadable,
        earlier_run_unreadable,
        host_shm_unreadable,
        fork_bomb_stopped,
        memory_bomb_killed,
        infinite_loop_killed,
        gpu_request_in_hostconfig,
        well_behaved_runs,
    )
)


def run_check(name: str, backend: SandboxBackend, config: WorkspaceConfig) -> CheckOutcome:
    check = next((c for c in CHECKS if c.name == name), None)
    if check is None:
        raise ValueError(f"no conformance check named {name!r}.")
    return check.fn(backend, config)


def self_check(backend: SandboxBackend, config: WorkspaceConfig) -> dict[str, CheckOutcome]:
    """Every check against one backend; compare with KNOWN_FAILURES[backend.name]."""
    return {c.name: c.fn(backend, config) for c in CHECKS}
