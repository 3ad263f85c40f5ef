"""The frozen tokenizer: BPE trained on the train split with rustbpe, run by tiktoken.

Saved in `<data dir>/tokenizer/` as plain text, never as a pickle (the evaluator loads it,
and a pickle is code): `ranks.tiktoken` (one `base64(token bytes) rank` per line, tiktoken's
own format) and `tokenizer.json` (split pattern, BOS id, vocabulary size, what it was
trained on). The `tiktoken.Encoding` is built from those ranks; nothing is downloaded.

Token ids 0..vocab_size-2 are byte-level BPE tokens; the last id is BOS, which starts
every document and has a byte length of 0, so bits per byte never counts it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from eval_frozen.errors import EvalInputError

BOS = "<|bos|>"
# GPT-4 style split, digits in groups of at most two (small vocabularies waste fewer ids
# on numbers).
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)
RANKS_FILE = "ranks.tiktoken"
META_FILE = "tokenizer.json"
_DOC_CAP = 10_000  # long documents add little to merge statistics but cost time


class Tokenizer:
    """A tiktoken Encoding plus the facts bits-per-byte needs (BOS id, bytes per token)."""

    def __init__(self, ranks: dict[bytes, int], pattern: str, *, name: str = "labwarden") -> None:
        import tiktoken

        self.bos_id = len(ranks)
        self.vocab_size = len(ranks) + 1
        self.enc = tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks,
                                     special_tokens={BOS: self.bos_id})
        by_id = sorted(ranks.items(), key=lambda kv: kv[1])
        if [r for _, r in by_id] != list(range(len(ranks))):
            raise EvalInputError("tokenizer ranks are not the ids 0..n-1; it is corrupt.")
        # Byte length of each token id; BOS is 0 bytes (it stands for no text).
        self.token_bytes: list[int] = [len(b) for b, _ in by_id] + [0]

    def encode(self, text: str) -> list[int]:
        """Ids of `text` (no BOS; special-token strings in text are plain text)."""
        return self.enc.encode_ordinary(text)

    def encode_batch(self, texts: list[str], num_threads: int = 4) -> list[list[int]]:
        return self.enc.encode_ordinary_batch(texts, num_threads=num_threads)

    def decode(self, ids: Iterable[int]) -> str:
        return self.enc.decode([i for i in ids if i != self.bos_id])

    def token_bytes_tensor(self, device: str = "cpu"):  # -> torch.Tensor
        import torch

        return torch.tensor(self.token_bytes, dtype=torch.int64, device=device)


def _ranks_text(ranks: dict[bytes, int]) -> str:
    return "".join(f"{base64.b64encode(b).decode()} {r}\n"
                   for b, r in sorted(ranks.items(), key=lambda kv: kv[1]))


def train(texts: Iterable[str], vocab_size: int, *, max_chars: int) -> tuple[dict[bytes, int], str]:
    """BPE merges learned from `texts`: (ranks, pattern), vocab_size - 1 ranks (one id for BOS)."""
    import rustbpe

    def capped() -> Iterator[str]:
        total = 0
        for t in texts:
            t = t[:_DOC_CAP]
            total += len(t)
            yield t
            if total >= max_chars:
                return

    tok = rustbpe.Tokenizer()
    tok.train_from_iterator(capped(), vocab_size - 1, pattern=SPLIT_PATTERN)
    ranks = {bytes(b): int(r) for b, r in tok.get_mergeable_ranks()}
    if len(ranks) != vocab_size - 1:
        raise EvalInputError(
            f"the train split is too small for a {vocab_size}-token vocabulary: BPE found only "
            f"{len(ranks)} tokens; use a bigger source or a smaller profile."
        )
    return ranks, tok.get_pattern()


def save(tokenizer_dir: Path, ranks: dict[bytes, int], pattern: str, trained_on: str) -> None:
    from eval_frozen.shards import atomic_write_bytes

    meta = {"pattern": pattern, "bos": BOS, "bos_id": len(ranks), "vocab_size": len(ranks) + 1,
            "trained_on": trained_on,
            "ranks_sha256": hashlib.sha256(_ranks_text(ranks).encode()).hexdigest()}
    atomic_write_bytes(tokenizer_dir / RANKS_FILE, _ranks_text(ranks).encode())
    atomic_write_bytes(tokenizer_dir / META_FILE, (json.dumps(meta, indent=1) + "\n").encode())


def read_meta(tokenizer_dir: Path) -> dict:
    path = Path(tokenizer_dir) / META_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalInputError(
            f"no tokenizer at {path.parent}; run `labwarden prepare` first.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EvalInputError(f"{path}: not valid JSON ({e}).") from None


def load(tokenizer_dir: Path) -> Tokenizer:
    """The tokenizer saved in `tokenizer_dir`; EvalInputError if it is missing or corrupt."""
    tokenizer_dir = Path(tokenizer_dir)
    meta = read_meta(tokenizer_dir)
    ranks: dict[bytes, int] = {}
    try:
        for line in (tokenizer_dir / RANKS_FILE).read_text(encoding="ascii").splitlines():
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
    except FileNotFoundError:
        raise EvalInputError(
            f"{tokenizer_dir / RANKS_FILE} is missing; run `labwarden prepare`.") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise EvalInputError(f"{tokenizer_dir / RANKS_FILE} is corrupt ({e}).") from None
    tok = Tokenizer(ranks, meta["pattern"])
    if tok.vocab_size != meta.get("vocab_size"):
        raise EvalInputError(f"{tokenizer_dir}: {tok.vocab_size} tokens but tokenizer.json says "
                             f"{meta.get('vocab_size')}.")
    return tok
