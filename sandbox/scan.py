"""Search everything a training step can read for excerpts of the validation text.

The scanner runs inside the sandbox as a stand-in trainer (`scanner_source`), given only
SHA-256 digests of excerpt windows, so the search itself leaks no validation text into
the step. It reads every regular file it can open, and inside `.pyc`, zip/wheel members,
gzip, bz2, xz and parquet, because text survives in all of those forms. The host side
chooses the excerpts (`choose_excerpts`) and finds the folders that carry the built-in
validation text (`host_pydoc_dirs`). Used by the conformance check `val_text_unreadable`.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

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


def scanner_source(spec: dict) -> str:
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
