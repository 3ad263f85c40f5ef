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
compressed members included (a minute or so); `probe_exposure` is the doctor's quick
version of it and of the marker checks.

Use: `prepare_workspace(prepared, dest)` once (a copy of a prepared tiny workspace with
small limits), then `run_check(name, backend, config)` per check.
"""

from __future__ import annotations

import functools
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


# ---------------------------------------------------------------------------------------
# The validation text scan: excerpts of the validation split, searched for in everything
# a training step can read, in the forms text is stored in.
# ---------------------------------------------------------------------------------------

EXCERPT_CHARS = 40
"""An excerpt is 40 characters of one line, from a word's start, with no quote, backslash
or non-ASCII character: that is how a line survives in every form it is stored in (a
`.py` string literal split at spaces and escaped, the raw text of a `.pyc`, a compressed
member once inflated, a parquet column once decoded)."""
RUNTIME_SHARE_CAP = 0.01
"""Excerpts that the interpreter and its packages carry themselves (messages the
reference quotes, docstrings numpy copied) are left out of the search, because no
backend can hide a runtime from the step it runs; more than 1% of them would mean the
runtime carries the validation text, and the check fails."""
SCAN_BUDGET_S = 600.0


def _scan_runs(data: bytes, size: int):  # noqa: ANN202 - also runs inside the sandbox
    """The start of every run of at least `size` excerpt characters in data (a window of
    `size` bytes from the run's first non-space)."""
    import re

    pattern = re.compile(rb"[\x20\x21\x23-\x26\x28-\x5b\x5d-\x7e]{%d,}" % size)
    for m in pattern.finditer(data):
        window = m.group().lstrip(b" ")[:size]
        if len(window) == size:
            yield window


def _scan_digest(window: bytes) -> bytes:
    import hashlib

    return hashlib.blake2b(window, digest_size=8).digest()


def _scan_file(path: str, needles: dict, found: dict, stats: dict, depth: int = 0) -> None:
    """Search one file: its raw bytes, and what it holds when it is a zip (wheels, eggs),
    gzip, bzip2, xz or parquet file. `needles`: {"size", "prefixes", "digests"}; `found`
    maps a digest to the paths it was seen in."""
    import bz2
    import gzip
    import io
    import lzma
    import zipfile

    size = needles["size"]

    def match(data: bytes, where: str) -> None:
        for window in _scan_runs(data, size):
            if window[:8] in needles["prefixes"]:
                d = _scan_digest(window)
                if d in needles["digests"]:
                    found.setdefault(d, set()).add(where)

    def stream(f, where: str) -> None:  # noqa: ANN001
        carry = b""
        while True:
            chunk = f.read(8 << 20)
            if not chunk:
                break
            stats["bytes"] += len(chunk)
            data = carry + chunk
            tail = data[-65536:].translate(needles["delims"])
            cut = tail.rfind(b"\n")
            cut = len(data) - len(tail) + cut + 1 if cut >= 0 else len(data) - len(tail)
            match(data[:cut], where)
            carry = data[cut:]
        match(carry, where)

    def inner(data: bytes, where: str, level: int) -> None:
        match(data, where)
        if level >= 3:
            return
        head = data[:6]
        try:
            if head.startswith(b"PK\x03\x04"):
                with zipfile.ZipFile(io.BytesIO(data)) as z:
                    for info in z.infolist():
                        if not info.is_dir() and info.file_size < (256 << 20):
                            inner(z.read(info), f"{where}!{info.filename}", level + 1)
            elif head.startswith(b"\x1f\x8b"):
                inner(gzip.decompress(data), f"{where}!gunzip", level + 1)
            elif head.startswith(b"BZh"):
                inner(bz2.decompress(data), f"{where}!bunzip2", level + 1)
            elif head.startswith(b"\xfd7zXZ"):
                inner(lzma.decompress(data), f"{where}!unxz", level + 1)
        except Exception:  # noqa: BLE001 - a damaged container is searched raw only
            stats["errors"] += 1

    stats["files"] += 1
    try:
        with open(path, "rb") as f:
            head = f.read(6)
            f.seek(0)
            stream(f, path)
            f.seek(0)
            if head.startswith(b"PK\x03\x04"):
                with zipfile.ZipFile(f) as z:
                    for info in z.infolist():
                        if not info.is_dir() and info.file_size < (256 << 20):
                            inner(z.read(info), f"{path}!{info.filename}", depth + 1)
            elif head.startswith(b"\x1f\x8b"):
                with gzip.open(f) as g:
                    stream(g, f"{path}!gunzip")
            elif head.startswith(b"BZh"):
                with bz2.open(f) as g:
                    stream(g, f"{path}!bunzip2")
            elif head.startswith(b"\xfd7zXZ"):
                with lzma.open(f) as g:
                    stream(g, f"{path}!unxz")
            elif head.startswith(b"PAR1"):
                _scan_parquet(path, match)
    except Exception:  # noqa: BLE001 - unreadable or damaged: counted, never fatal
        stats["errors"] += 1


def _scan_parquet(path: str, match) -> None:  # noqa: ANN001
    """Parquet pages are compressed: decode every text column (pyarrow, where installed)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return
    table = pq.read_table(path)
    for column in table.columns:
        values = [v for v in column.to_pylist() if isinstance(v, str | bytes)]
        if values:
            match(b"\n".join(v.encode() if isinstance(v, str) else v for v in values), path)


def _scan_tree(roots: list, skip: list, needles: dict) -> dict:
    """Every regular file under roots (symlinks not followed, `skip` folders left out)."""
    import os
    import time

    started = time.monotonic()
    found: dict = {}
    stats = {"files": 0, "bytes": 0, "errors": 0}
    for top in roots:
        if os.path.isfile(top):
            _scan_file(top, needles, found, stats)
        for folder, dirs, files in os.walk(top, onerror=lambda e: stats.__setitem__(
                "errors", stats["errors"] + 1)):
            dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skip]
            for name in files:
                path = os.path.join(folder, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    _scan_file(path, needles, found, stats)
    return {"found": found, "seconds": time.monotonic() - started, **stats}


def _scan_needles(size: int, digests: list, prefixes: list) -> dict:
    """What `_scan_file` looks for, from JSON-able parts."""
    allowed = set(range(0x20, 0x7F)) - {0x22, 0x27, 0x5C}
    return {
        "size": size,
        "digests": set(digests),
        "prefixes": set(prefixes),
        "delims": bytes(c if c in allowed else 0x0A for c in range(256)),
    }


# The trainer the scan check runs: plants a canary in every form it decodes (so a scan
# that cannot see a form fails loudly), then searches the whole file system.
_SCAN_MAIN = '''
import base64, gzip, json, os, sys, time, zipfile
SPEC = json.loads(base64.b64decode(SPEC_B64))
needles = _scan_needles(SPEC["size"], [bytes.fromhex(d) for d in SPEC["digests"]],
                        [bytes.fromhex(p) for p in SPEC["prefixes"]])
canary = SPEC["canary"].encode()
plant = "/tmp/labwarden-canary"
os.makedirs(plant, exist_ok=True)
planted = {"plain": plant + "/canary.txt", "zip": plant + "/canary.zip!canary.txt",
           "gzip": plant + "/canary.txt.gz!gunzip"}
open(plant + "/canary.txt", "wb").write(b"intro\\n" + canary + b"\\n")
with zipfile.ZipFile(plant + "/canary.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("canary.txt", b"zip\\n" + canary + b"\\n")
open(plant + "/canary.txt.gz", "wb").write(gzip.compress(b"gz\\n" + canary + b"\\n"))
try:
    import pyarrow, pyarrow.parquet
    pyarrow.parquet.write_table(pyarrow.table({"text": [canary.decode()]}),
                                plant + "/canary.parquet")
    planted["parquet"] = plant + "/canary.parquet"
except ImportError:
    pass
result = _scan_tree(["/"], ["/proc", "/sys"], needles)
canary_digest = bytes.fromhex(SPEC["canary_digest"])
seen = result.pop("found")
out = {
    "canary_missing": sorted(k for k, p in planted.items() if p not in seen.get(canary_digest, ())),
    "hits": len([d for d in seen if d != canary_digest]),
    "where": sorted({p for d, ps in seen.items() if d != canary_digest for p in ps})[:20],
    **result,
}
print("VAL_SCAN " + json.dumps(out), flush=True)
'''


def _scanner_source(spec: dict) -> str:
    """A standalone trainer: the scan functions above, the spec, and `_SCAN_MAIN`."""
    import base64
    import inspect
    import json

    parts = [inspect.getsource(fn) for fn in (_scan_runs, _scan_digest, _scan_file,
                                              _scan_parquet, _scan_tree, _scan_needles)]
    spec_b64 = base64.b64encode(json.dumps(spec).encode()).decode()
    return "\n\n".join([*parts, f"SPEC_B64 = {spec_b64!r}", _SCAN_MAIN])


def _word_windows(text: bytes, size: int, prose: bool) -> set[bytes]:
    """Every `size`-byte window of text that starts a word inside one run of excerpt
    characters; `prose`: only windows that are mostly letters (no table rules, no code)."""
    out: set[bytes] = set()
    letters = bytes(range(65, 91)) + bytes(range(97, 123))
    others = bytes(c for c in range(256) if c not in letters)
    run = re.compile(rb"[\x20\x21\x23-\x26\x28-\x5b\x5d-\x7e]{%d,}" % size)
    start = re.compile(rb"(?<![^ ])[^ ]")
    for m in run.finditer(text):
        piece = m.group()
        for s in start.finditer(piece):
            window = piece[s.start():s.start() + size]
            if len(window) < size:
                break
            if prose and (len(window.translate(None, others)) < 0.7 * size
                          or window.count(b" ") < 3):
                continue
            out.add(window)
    return out


def _split_texts(folder: Path) -> list[str]:
    from eval_frozen.shards import iter_texts

    return [t for batch in iter_texts(folder) for t in batch]


def host_pydoc_dirs() -> list[Path]:
    """The `pydoc_data` folders on this host: the running interpreter's and any other
    installation's found where interpreters usually live."""
    import glob
    import importlib.util

    found: list[Path] = []
    spec = importlib.util.find_spec("pydoc_data")
    if spec and spec.submodule_search_locations:
        found += [Path(p) for p in spec.submodule_search_locations]
    for pattern in ("/usr/lib/python3*/pydoc_data", "/usr/local/lib/python3*/pydoc_data",
                    "/usr/lib64/python3*/pydoc_data", "/opt/*/lib/python3*/pydoc_data"):
        found += [Path(p) for p in sorted(glob.glob(pattern))]
    return list(dict.fromkeys(p.resolve() for p in found if p.is_dir()))


@dataclass(frozen=True)
class Excerpts:
    """What the scan looks for, chosen on the host, with the controls that make it mean
    something."""

    windows: frozenset[bytes]
    runtime_shared: int
    """Excerpts left out because the interpreter or its packages carry them."""
    controls: dict[str, int]
    """Distinct excerpts the scanner found on the host where the text is known to be."""
    problem: str = ""


def _runtime_roots() -> tuple[list[str], list[str]]:
    """(roots, folders left out): the interpreter and packages a step runs with, on the
    host: its standard library (not its documentation data, nor the base interpreter's
    own site-packages when a venv is running), its shared library, its site-packages."""
    import glob
    import sys
    import sysconfig

    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    paths = sysconfig.get_paths(vars=base)
    packages = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    roots = {paths["stdlib"], paths["platstdlib"], *packages}
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    roots |= set(glob.glob(os.path.join(libdir, "libpython*"))) if libdir else set()
    skip = [str(p) for p in host_pydoc_dirs()]
    skip += [os.path.join(paths[k], d) for k in ("stdlib", "platstdlib")
             for d in ("site-packages", "dist-packages")
             if os.path.join(paths[k], d) not in packages]
    return sorted(r for r in roots if os.path.exists(r)), skip


@functools.cache
def choose_excerpts(val_dir: Path, train_dir: Path, builtin: bool) -> Excerpts:
    """Prose windows of the validation split that the training split does not hold,
    minus those the runtime carries; the controls scan the host's copies of the text."""
    val: set[bytes] = set()
    for text in _split_texts(val_dir):
        val |= _word_windows(text.encode("utf-8"), EXCERPT_CHARS, prose=True)
    for text in _split_texts(train_dir):
        val -= _word_windows(text.encode("utf-8"), EXCERPT_CHARS, prose=False)
    digests = {_scan_digest(w): w for w in val}
    needles = _scan_needles(EXCERPT_CHARS, list(digests), [w[:8] for w in val])
    pydoc = [str(p) for p in host_pydoc_dirs()]
    runtime = _scan_tree(*_runtime_roots(), needles)["found"]
    shared = {digests[d] for d in runtime}
    windows = frozenset(val - shared)
    kept = _scan_needles(EXCERPT_CHARS, [_scan_digest(w) for w in windows],
                         [w[:8] for w in windows])
    controls = {"val split": len(_scan_tree([str(val_dir)], [], kept)["found"])}
    if builtin:
        controls["pydoc_data"] = len(_scan_tree(pydoc, [], kept)["found"]) if pydoc else 0
    problem = ""
    if len(shared) > RUNTIME_SHARE_CAP * max(1, len(val)):
        where = sorted({p for d in runtime for p in runtime[d]})[:3]
        problem = (f"the runtime itself carries {len(shared)} of {len(val)} excerpts "
                   f"(e.g. {', '.join(where)})")
    elif len(windows) < 1000 or min(controls.values()) < 0.1 * len(windows):
        problem = f"control: {len(windows)} excerpts, found on the host {controls}"
    return Excerpts(windows, len(shared), controls, problem)


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
    r = _attack(backend, config, _scanner_source(spec), "valscan", budget=SCAN_BUDGET_S)
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


# ---------------------------------------------------------------------------------------
# The doctor's quick probe: one short step that says what it can read (not the full scan).
# ---------------------------------------------------------------------------------------

_EXPOSURE_PROBE = r"""
import importlib.util, json, os, sys
paths = json.loads(sys.argv[1])
def readable(p):
    try:
        if os.path.isdir(p):
            os.listdir(p)
        else:
            open(p, "rb").read(16)
        return True
    except OSError:
        return False
spec = importlib.util.find_spec("pydoc_data")
own = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
print("EXPOSURE" + json.dumps({
    "pydoc": [p for p in paths["pydoc"] if readable(p)] + own,
    "state": readable(paths["state"]),
    "shm": readable(paths["shm"]),
}), flush=True)
"""


@dataclass(frozen=True)
class Exposure:
    """What a short probe step could read (measured by running one)."""

    ran: bool
    pydoc_readable: tuple[str, ...] = ()
    """`pydoc_data` folders (the built-in validation text) the step could open."""
    state_readable: bool = False
    """A marker in a host folder outside the step's mounts (the state folder, if given)."""
    shm_shared: bool = False
    """A marker in the host's /dev/shm."""
    detail: str = ""


def probe_exposure(backend: SandboxBackend, state_dir: Path | None = None) -> Exposure:
    """Run the probe as a real step of `backend`: can it open the host's `pydoc_data`
    folders (or import one of its own), a marker in `state_dir` (a fresh host folder by
    default), a marker in the host's /dev/shm?"""
    import json
    import secrets
    import tempfile

    from sandbox.backend import Limits, Mount, StepSpec

    token = secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="labwarden-probe-") as tmp:
        where = Path(state_dir) if state_dir else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        state_marker = where / f"doctor-probe-{token}"
        shm_marker = Path("/dev/shm") / f"labwarden-probe-{token}"
        ws = Path(tmp) / "ws"
        ws.mkdir()
        ws.chmod(0o755)
        try:
            state_marker.write_text(token)
            if shm_marker.parent.is_dir():
                shm_marker.write_text(token)
            paths = {"pydoc": [str(p) for p in host_pydoc_dirs()], "state": str(state_marker),
                     "shm": str(shm_marker)}
            step = StepSpec(
                name="probe",
                argv=("python", "-I", "-c", _EXPOSURE_PROBE, json.dumps(paths)),
                env={},
                mounts=(Mount(ws, "ws"),),
                workdir="ws",
                time_limit_s=60,
                log_path=Path(tmp) / "probe.log",
                limits=Limits(memory_mb=1024, pids=64),
            )
            outcome = backend.run_step(step)
            text = step.log_path.read_text(errors="replace")
        finally:
            state_marker.unlink(missing_ok=True)
            shm_marker.unlink(missing_ok=True)
    found = [line[8:] for line in text.splitlines() if line.startswith("EXPOSURE")]
    if outcome.exit_code != 0 or not found:
        return Exposure(False, detail=f"exit {outcome.exit_code}: {text.strip()[-200:]}")
    seen = json.loads(found[0])
    return Exposure(True, tuple(dict.fromkeys(seen["pydoc"])), seen["state"], seen["shm"])


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
