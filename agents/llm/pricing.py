"""USD prices per million tokens, for the cost column of the ledger: the one table.

From Anthropic's pricing and model pages (platform.claude.com/docs, about-claude/pricing
and models/*/overview, read December 2026). Cache reads are not one multiple of input
for every model any more (Fable 5.1 reads at 0.025x, Opus 5.5 and Sonnet 5.5 at 0.05x),
so each row carries its own prices. Cache writes cost 1.25x input for the 5-minute cache
and 2x for the 1-hour one, on every model.

Tiered models: Haiku 5.5 bills a request whose prompt (input + cache reads + cache
writes) is over 100,000 tokens at its higher band, every token of that request, output
included; the Sonnet 4 and 4.5 1M-context beta did the same above 200,000 tokens.

A model missing here gets cost None in the ledger (tokens are still counted), never a
guess. Dated ids (`claude-haiku-4-5-20251001`) are priced as their alias.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rates:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    """5-minute cache write."""
    cache_read: float

    @property
    def cache_write_1h(self) -> float:
        return self.input * 2.0


@dataclass(frozen=True)
class Price:
    base: Rates
    long: Rates | None = None
    """The rates of a whole request whose prompt is over `long_above` tokens."""
    long_above: int = 0


def _flat(inp: float, out: float, read: float) -> Price:
    return Price(Rates(inp, out, inp * 1.25, read))


PRICES: dict[str, Price] = {
    "claude-fable-5-1": _flat(10.0, 50.0, 0.25),
    "claude-mythos-5-1": _flat(10.0, 50.0, 0.25),
    "claude-fable-5": _flat(10.0, 50.0, 1.0),
    "claude-mythos-5": _flat(10.0, 50.0, 1.0),
    "claude-opus-5-5": _flat(4.0, 20.0, 0.20),
    "claude-opus-5": _flat(5.0, 25.0, 0.50),
    "claude-opus-4-8": _flat(5.0, 25.0, 0.50),
    "claude-opus-4-7": _flat(5.0, 25.0, 0.50),
    "claude-opus-4-6": _flat(5.0, 25.0, 0.50),
    "claude-opus-4-5": _flat(5.0, 25.0, 0.50),
    "claude-opus-4-1": _flat(15.0, 75.0, 1.50),
    "claude-opus-4-0": _flat(15.0, 75.0, 1.50),
    # Sonnet 5.5's cache reads went from $0.20 to $0.10 on 2026-10-07.
    "claude-sonnet-5-5": _flat(2.0, 10.0, 0.10),
    "claude-sonnet-5": _flat(2.0, 10.0, 0.20),
    "claude-sonnet-4-6": _flat(3.0, 15.0, 0.30),
    "claude-sonnet-4-5": Price(Rates(3.0, 15.0, 3.75, 0.30), Rates(6.0, 22.5, 7.5, 0.60),
                               200_000),
    "claude-sonnet-4-0": Price(Rates(3.0, 15.0, 3.75, 0.30), Rates(6.0, 22.5, 7.5, 0.60),
                               200_000),
    "claude-haiku-5-5": Price(Rates(0.10, 0.50, 0.125, 0.01), Rates(0.50, 2.50, 0.625, 0.05),
                              100_000),
    "claude-haiku-4-5": _flat(1.0, 5.0, 0.10),
}

ALIASES = {"claude-opus-4": "claude-opus-4-0", "claude-sonnet-4": "claude-sonnet-4-0"}

_DATED = re.compile(r"^(?P<alias>.+)-\d{8}$")


def price_of(model: str) -> Price | None:
    model = ALIASES.get(model, model)
    if model in PRICES:
        return PRICES[model]
    dated = _DATED.match(model)
    if dated:
        return price_of(dated["alias"])
    return None


def cost_usd(model: str, *, input_tokens: int, output_tokens: int, cache_read: int,
             cache_write: int, cache_write_1h: int = 0) -> float | None:
    """USD of one request; `cache_write_1h` is the part of `cache_write` written to the
    1-hour cache."""
    price = price_of(model)
    if price is None:
        return None
    prompt = input_tokens + cache_read + cache_write
    rates = price.long if price.long is not None and prompt > price.long_above else price.base
    short = max(cache_write - cache_write_1h, 0)
    total = (input_tokens * rates.input + output_tokens * rates.output
             + short * rates.cache_write + cache_write_1h * rates.cache_write_1h
             + cache_read * rates.cache_read)
    return total / 1e6
