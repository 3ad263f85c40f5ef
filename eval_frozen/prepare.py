"""`labwarden prepare --profile P`: data, tokenizer and seal in one idempotent step.

Writes `<workspace>/.labwarden/data/<P>/`:

    train/shard_*.parquet   training documents
    val/shard_*.parquet     validation documents (disjoint; hidden from training)
    tokenizer/              BPE ranks and metadata (see eval_frozen.tokenizer)
    source.json             what the source wrote, its text hashes, token counts
    seal.json               SHA-256 manifest of code, tokenizer, train, val, source.json

The data dir is always `<workspace>/.labwarden/data/<profile>` (or --data-dir):
eval_frozen imports nothing of labwarden, so it does not read labwarden.toml; the
workspace config keeps `data_dir = ".labwarden/data"` to match.

A second run finds source.json, the tokenizer and an intact seal matching the same
source and profile, and returns without writing anything.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from eval_frozen import seal as _seal
from eval_frozen import tokenizer as _tokenizer
from eval_frozen.errors import EvalInputError
from eval_frozen.packing import pack_rows
from eval_frozen.profiles import Profile, get_profile
from eval_frozen.shards import atomic_write_bytes, iter_texts
from eval_frozen.sources import parse_source

DATA_SUBDIR = Path(".labwarden") / "data"
CONFIG_NAME = "labwarden.toml"


def find_workspace(start: Path) -> Path:
    """The nearest folder at or above `start` holding labwarden.toml (else `start` itself)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    return start


def resolve_data_dir(data_dir: str | None, workspace: str | None, profile: str) -> Path:
    if data_dir:
        return Path(data_dir).resolve()
    root = Path(workspace).resolve() if workspace else find_workspace(Path.cwd())
    if workspace and not root.is_dir():
        raise EvalInputError(f"workspace {root} is not a folder.")
    return root / DATA_SUBDIR / profile


def _count_val_rows(data_dir: Path, tok: _tokenizer.Tokenizer, profile: Profile,
                    limit_tokens: int = 20_000_000) -> tuple[int, int]:
    """(validation tokens with BOS, full rows of seq_len + 1); a big split is counted only
    until the evaluator has its rows and `limit_tokens` were seen."""
    tokens = 0
    rows = 0

    def docs():
        nonlocal tokens
        for texts in iter_texts(data_dir / "val"):
            for ids in tok.encode_batch(texts):
                tokens += len(ids) + 1
                yield ids

    for _ in pack_rows(docs(), profile.seq_len + 1, tok.bos_id):
        rows += 1
        if rows >= profile.eval_rows and tokens >= limit_tokens:
            break
    return tokens, rows


def _count_train_tokens(data_dir: Path, tok: _tokenizer.Tokenizer, limit_chars: int) -> int | None:
    total = chars = 0
    for texts in iter_texts(data_dir / "train"):
        chars += sum(map(len, texts))
        if chars > limit_chars:
            return None  # too big to count here (climbmix); not needed for anything but the log
        total += sum(len(ids) + 1 for ids in tok.encode_batch(texts))
    return total


def prepare(profile: Profile, data_dir: Path, source_spec: str | None = None,
            *, log=print, force: bool = False) -> dict:
    """Make data, tokenizer and seal for `profile` in `data_dir`; returns source.json's content."""
    spec = source_spec or profile.default_source
    source = parse_source(spec)
    fingerprint = source.fingerprint()
    meta_path = data_dir / "source.json"
    if not force and meta_path.exists() and (data_dir / _seal.SEAL_FILE).exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            meta = {}
        same_profile = meta.get("profile") == json.loads(json.dumps(asdict(profile)))
        if (meta.get("fingerprint") == fingerprint and same_profile
                and _seal.verify(data_dir)):
            seal_hash = _seal.read(data_dir)["seal_hash"]
            log(f"prepare: {data_dir} is up to date (seal {seal_hash[:16]})")
            return meta

    t0 = time.perf_counter()
    data_dir.mkdir(parents=True, exist_ok=True)
    # The old seal goes first: a half-rewritten data dir must never look sealed.
    (data_dir / _seal.SEAL_FILE).unlink(missing_ok=True)
    info = source.materialize(data_dir, profile, log)
    t_data = time.perf_counter()

    train_texts = (t for batch in iter_texts(data_dir / "train") for t in batch)
    ranks, pattern = _tokenizer.train(train_texts, profile.vocab_size,
                                      max_chars=profile.tokenizer_max_chars)
    _tokenizer.save(data_dir / "tokenizer", ranks, pattern, trained_on=spec)
    tok = _tokenizer.load(data_dir / "tokenizer")
    t_tok = time.perf_counter()
    log(f"tokenizer: {tok.vocab_size} tokens trained in {t_tok - t_data:.1f}s")

    val_tokens, val_rows = _count_val_rows(data_dir, tok, profile)
    if val_rows < profile.eval_rows:
        raise EvalInputError(
            f"the validation split holds {val_rows} rows of {profile.seq_len + 1} tokens but "
            f"profile {profile.name} scores {profile.eval_rows}; use a bigger source."
        )
    train_tokens = _count_train_tokens(data_dir, tok, limit_chars=50_000_000)
    meta = {
        "profile": asdict(profile),
        "source": asdict(info),
        "fingerprint": fingerprint,
        "train_tokens": train_tokens,
        "val_tokens": val_tokens,
        "val_rows": val_rows,
    }
    atomic_write_bytes(meta_path, (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())
    sealed = _seal.write(data_dir, profile.name)
    log(f"prepare: {profile.name} ready in {time.perf_counter() - t0:.1f}s at {data_dir} "
        f"(train {train_tokens} tokens, val {val_tokens} tokens, "
        f"seal {sealed['seal_hash'][:16]})")
    return meta


# ---- command: labwarden prepare ------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="tiny", help="tiny, small or gpu (default tiny)")
    parser.add_argument("--source", default=None,
                        help="builtin, local:PATH or climbmix[:BASE_URL] (default: the profile's)")
    parser.add_argument("--workspace", default=None,
                        help="workspace root (default: nearest folder with labwarden.toml)")
    parser.add_argument("--data-dir", default=None,
                        help="data folder (default <workspace>/.labwarden/data/<profile>)")
    parser.add_argument("--force", action="store_true", help="redo everything even if up to date")


def run(args: argparse.Namespace) -> int:
    try:
        profile = get_profile(args.profile)
        data_dir = resolve_data_dir(args.data_dir, args.workspace, profile.name)
        prepare(profile, data_dir, args.source, force=args.force)
        return 0
    except (EvalInputError, ValueError) as e:
        print(f"labwarden prepare: error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval_frozen.prepare", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
