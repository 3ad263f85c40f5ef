"""USD prices per million tokens, for the cost column of the ledger.

Figures from Anthropic's model pages (late 2026). Cache prices follow the published
multipliers: a 5-minute cache write costs 1.25x input, a cache read 0.1x input. A model
missing here gets cost None in the ledger (tokens are still counted), never a guess.
"""

from __future__ import annotations

# model id -> (input, output) USD per million tokens
PRICES: dict[str, tuple[float, float]] = {
    "claude-fable-5-1": (10.0, 50.0),
    "claude-opus-5-5": (4.0, 20.0),
    "claude-opus-5": (5.0, 25.0),
    "claude-sonnet-5-5": (2.0, 10.0),
    "claude-sonnet-5": (2.0, 10.0),
    "claude-haiku-5-5": (0.10, 0.50),
    "claude-opus-4-6": (5.0, 25.0),
    "claude-sonnet-4-6": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
}

CACHE_WRITE_X = 1.25
CACHE_READ_X = 0.1


def cost_usd(model: str, *, input_tokens: int, output_tokens: int, cache_read: int,
             cache_write: int) -> float | None:
    price = PRICES.get(model)
    if price is None:
        return None
    inp, out = price
    total = (input_tokens * inp + output_tokens * out + cache_write * inp * CACHE_WRITE_X
             + cache_read * inp * CACHE_READ_X)
    return total / 1e6
