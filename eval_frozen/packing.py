"""BOS-aligned packing of token documents into fixed rows, shared by training and evaluation.

Every row of `T + 1` tokens starts with BOS. Documents (each `[BOS] + tokens`) are laid
end to end; a document that does not fit in what is left of a row is cut, and its rest
opens the next row behind a fresh BOS. No token is dropped, no padding is used, and the
model never sees text from before a row's first BOS: a row is self-contained.

Inputs are `row[:-1]`, targets `row[1:]`. Pure functions of the documents' order, so the
evaluator's rows are the same on every run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def pack_rows(docs: Iterable[list[int]], row_len: int, bos_id: int) -> Iterator[list[int]]:
    """Rows of exactly `row_len` ids, each starting with BOS, from token documents (no BOS)."""
    if row_len < 2:
        raise ValueError(f"row_len must be at least 2, but got {row_len}.")
    row: list[int] = []
    for doc in docs:
        pending = [bos_id, *doc]
        while pending:
            if not row and pending[0] != bos_id:
                pending.insert(0, bos_id)  # a cut document's rest: the row still opens on BOS
            room = row_len - len(row)
            row.extend(pending[:room])
            pending = pending[room:]
            if len(row) == row_len:
                yield row
                row = []
    # A last partial row is dropped: rows are fixed-size and padding would need a mask.
