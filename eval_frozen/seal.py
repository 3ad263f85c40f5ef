"""The seal: SHA-256 of every frozen file, grouped, written to `<data dir>/seal.json`.

Groups: `code` (every `.py` file of the eval_frozen package that is running), `tokenizer`,
`train`, `val` (the files in those folders of the data dir) and `meta` (`source.json`).
The evaluator verifies only `code`, `tokenizer` and `val`, because the evaluation sandbox
does not mount `train/`; the sandbox verifies all groups before and after a run.

One `seal_hash` (SHA-256 over the sorted group hashes) names the whole sealed state; it is
copied into every metrics.json so a score says what it was measured against.

`labwarden seal --verify` exit codes: 0 intact; 1 broken (the first changed, missing or
extra file is named); 2 input error (no seal.json, no data dir).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from eval_frozen.errors import EvalInputError

SEAL_FILE = "seal.json"
SEAL_VERSION = 1
DATA_GROUPS = ("tokenizer", "train", "val")
ALL_GROUPS = ("code", *DATA_GROUPS, "meta")
EVAL_GROUPS = ("code", "tokenizer", "val")
CODE_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class SealCheck:
    """Result of a verification: `ok`, or the first problem as `(kind, path)`."""

    ok: bool
    seal_hash: str
    problem: str = ""

    def __bool__(self) -> bool:
        return self.ok


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _group_files(group: str, data_dir: Path, code_root: Path | None = None) -> dict[str, Path]:
    """Relative name -> path of the files a group covers, as they are on disk now."""
    if group == "code":
        root = code_root or CODE_ROOT
        return {f"eval_frozen/{p.relative_to(root).as_posix()}": p
                for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts}
    if group == "meta":
        p = data_dir / "source.json"
        return {"source.json": p} if p.exists() else {}
    folder = data_dir / group
    if not folder.is_dir():
        return {}
    # Temp files of an interrupted write are ignored: they are never read as data.
    return {f"{group}/{p.relative_to(folder).as_posix()}": p for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(".tmp") and "__pycache__" not in p.parts}


def hash_group(group: str, data_dir: Path) -> dict[str, str]:
    return {name: _sha256(p) for name, p in _group_files(group, data_dir).items()}


def _group_hash(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def _seal_hash(group_hashes: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(group_hashes, sort_keys=True).encode()).hexdigest()


def build(data_dir: Path, profile: str) -> dict:
    """The seal of `data_dir` as it is now (not written)."""
    groups = {g: hash_group(g, data_dir) for g in ALL_GROUPS}
    group_hashes = {g: _group_hash(files) for g, files in groups.items()}
    return {"version": SEAL_VERSION, "profile": profile, "seal_hash": _seal_hash(group_hashes),
            "group_hashes": group_hashes, "groups": groups}


def write(data_dir: Path, profile: str) -> dict:
    from eval_frozen.shards import atomic_write_bytes

    seal = build(data_dir, profile)
    text = json.dumps(seal, indent=1, sort_keys=True) + "\n"
    atomic_write_bytes(data_dir / SEAL_FILE, text.encode())
    return seal


def read(data_dir: Path) -> dict:
    path = Path(data_dir) / SEAL_FILE
    try:
        seal = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalInputError(
            f"no seal at {path}; run `labwarden prepare` or `labwarden seal`.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EvalInputError(f"{path}: not valid JSON ({e}).") from None
    if not isinstance(seal, dict) or seal.get("version") != SEAL_VERSION or "groups" not in seal:
        raise EvalInputError(f"{path}: not a version-{SEAL_VERSION} labwarden seal.")
    return seal


def verify(data_dir: Path, groups: tuple[str, ...] = ALL_GROUPS,
           code_root: Path | None = None) -> SealCheck:
    """Compare the files of `groups` with seal.json; the first difference is the problem.

    `code_root`: the eval_frozen folder whose code to check (default: the running one; the
    sandbox passes a workspace's `eval_frozen/`). Raises EvalInputError without a seal.
    """
    data_dir = Path(data_dir)
    seal = read(data_dir)
    for group in groups:
        sealed: dict[str, str] = seal["groups"].get(group, {})
        if _group_hash(sealed) != seal.get("group_hashes", {}).get(group):
            return SealCheck(False, seal.get("seal_hash", ""),
                             f"seal.json itself was edited ({group})")
        on_disk = _group_files(group, data_dir, code_root)
        for name, digest in sorted(sealed.items()):
            path = on_disk.get(name)
            if path is None:
                return SealCheck(False, seal["seal_hash"], f"missing {name}")
            if _sha256(path) != digest:
                return SealCheck(False, seal["seal_hash"], f"changed {name}")
        extra = sorted(set(on_disk) - set(sealed))
        if extra:
            return SealCheck(False, seal["seal_hash"], f"extra {extra[0]}")
    if _seal_hash(seal.get("group_hashes", {})) != seal.get("seal_hash"):
        return SealCheck(False, seal.get("seal_hash", ""),
                         "seal.json itself was edited (seal_hash)")
    return SealCheck(True, seal["seal_hash"])


# ---- command: labwarden seal ---------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="tiny",
                        help="profile whose data to seal (default tiny)")
    parser.add_argument("--verify", action="store_true",
                        help="check instead of write; exit 1 if broken")
    parser.add_argument("--workspace", default=None,
                        help="workspace root (default: nearest folder with labwarden.toml)")
    parser.add_argument("--data-dir", default=None,
                        help="data folder (default <workspace>/.labwarden/data/<profile>)")


def run(args: argparse.Namespace) -> int:
    from eval_frozen.prepare import resolve_data_dir
    from eval_frozen.profiles import get_profile

    try:
        get_profile(args.profile)
        data_dir = resolve_data_dir(args.data_dir, args.workspace, args.profile)
        if args.verify:
            check = verify(data_dir)
            if not check:
                print(f"seal broken: {check.problem} (data dir {data_dir})", file=sys.stderr)
                return 1
            print(f"seal ok: {check.seal_hash}")
            return 0
        if not (data_dir / "tokenizer").is_dir():
            raise EvalInputError(f"{data_dir} has no prepared data; run `labwarden prepare` first.")
        seal = write(data_dir, args.profile)
        print(f"sealed {sum(len(f) for f in seal['groups'].values())} files: {seal['seal_hash']}")
        return 0
    except (EvalInputError, ValueError) as e:
        print(f"labwarden seal: error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval_frozen.seal", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
