"""The price catalog's types: rates per million tokens, a model's price and the cost of one call, the catalog.

Kept apart from the file readers (:mod:`.prices`) so that every reader — modelyard's own format and
LiteLLM's price map (:mod:`.litellm`) — builds the same types without importing the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from modelyard.providers.base import Usage

MILLION = Decimal(1_000_000)
#: Ledger costs are integers of 1e-12 USD: exact, and SUM() in SQL stays exact.
PICO = Decimal(10) ** 12


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per 1M tokens for one pricing tier (a rerank API's per-search price is
    :attr:`ModelPrice.search_unit`)."""

    input: Decimal
    output: Decimal
    #: Prompt tokens read from cache; ``None`` bills them at the input rate.
    cached_input: Decimal | None = None
    #: Prompt tokens written to cache (Anthropic's 5-minute TTL); ``None`` bills them at the input rate.
    cache_write: Decimal | None = None
    #: Anthropic's 1-hour cache writes.
    cache_write_1h: Decimal | None = None
    #: ``None`` bills reasoning tokens at the output rate, as OpenAI, Anthropic and Google do today.
    reasoning: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    provider: str
    model: str
    rates: Rates
    source: str
    as_of: date
    #: Batch API rates, for the decision engine's "batch" option.
    batch_input: Decimal | None = None
    batch_output: Decimal | None = None
    #: Prompts with more input tokens than this are billed at ``long_context`` rates for the whole call.
    long_context_threshold: int | None = None
    long_context: Rates | None = None
    notes: str = ""
    #: USD per search unit, for rerank APIs that bill searches rather than tokens (Cohere); ``None``: the
    #: model is not billed per search. Billed on top of the token rates (which are 0 for such a model).
    search_unit: Decimal | None = None
    #: Integer pico-USD per token for (rates, long_context), when every rate has at most six decimals per
    #: 1M tokens (all real prices): the request path then prices with integer arithmetic, still exact.
    _pico: tuple[tuple[int, ...] | None, tuple[int, ...] | None] = field(
        init=False, repr=False, compare=False, default=(None, None)
    )

    def __post_init__(self) -> None:
        long_context = _pico_rates(self.long_context) if self.long_context else None
        object.__setattr__(self, "_pico", (_pico_rates(self.rates), long_context))

    def _search_units_pico(self, usage: Usage) -> int:
        """The searches' cost in pico-USD (a search unit's price is whole pico-dollars for every real
        price: $2 per 1,000 is 2e9)."""
        if not usage.search_units or self.search_unit is None:
            return 0
        return to_pico(usage.search_units * self.search_unit)

    def cost_pico(self, usage: Usage) -> int:
        """The exact cost of ``usage`` in pico-USD (what the ledger stores)."""
        long = bool(
            self.long_context
            and self.long_context_threshold
            and usage.input_tokens > self.long_context_threshold
        )
        rates = self._pico[1] if long else self._pico[0]
        if rates is None:
            return to_pico(self.cost(usage))
        if not (
            usage.cached_input_tokens
            or usage.cache_write_tokens
            or usage.reasoning_tokens
            or usage.search_units
        ):  # most calls bill plain input and output tokens only: the general sum below gives the same
            return usage.input_tokens * rates[0] + usage.output_tokens * rates[1]
        searches = self._search_units_pico(usage) if usage.search_units else 0
        uncached_in, out, cached, write_5m, write_1h, reasoning_rate = rates
        cache_write_1h = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
        uncached = max(usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens, 0)
        reasoning = min(usage.reasoning_tokens, usage.output_tokens)
        return (
            uncached * uncached_in
            + usage.cached_input_tokens * cached
            + (usage.cache_write_tokens - cache_write_1h) * write_5m
            + cache_write_1h * write_1h
            + (usage.output_tokens - reasoning) * out
            + reasoning * reasoning_rate
            + searches
        )

    def rates_for(self, usage: Usage) -> Rates:
        if (
            self.long_context
            and self.long_context_threshold
            and usage.input_tokens > self.long_context_threshold
        ):
            return self.long_context
        return self.rates

    def cost(self, usage: Usage) -> Decimal:
        """The exact USD cost of ``usage`` under this price."""
        r = self.rates_for(usage)
        cache_write_1h = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
        cache_write_5m = usage.cache_write_tokens - cache_write_1h
        uncached = max(usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens, 0)
        reasoning = min(usage.reasoning_tokens, usage.output_tokens)
        total = (
            uncached * r.input
            + usage.cached_input_tokens * _or(r.cached_input, r.input)
            + cache_write_5m * _or(r.cache_write, r.input)
            + cache_write_1h * _or(r.cache_write_1h, _or(r.cache_write, r.input))
            + (usage.output_tokens - reasoning) * r.output
            + reasoning * _or(r.reasoning, r.output)
        )
        searches = usage.search_units * self.search_unit if self.search_unit and usage.search_units else 0
        return total / MILLION + searches


def _pico_rates(r: Rates) -> tuple[int, ...] | None:
    """Per-token rates in integer pico-USD, in :meth:`ModelPrice.cost_pico`'s order; None if any is
    not a whole number of pico-dollars (then the Decimal path prices it)."""
    per_token = [
        r.input,
        r.output,
        _or(r.cached_input, r.input),
        _or(r.cache_write, r.input),
        _or(r.cache_write_1h, _or(r.cache_write, r.input)),
        _or(r.reasoning, r.output),
    ]
    pico = [rate * PICO / MILLION for rate in per_token]
    if any(value != value.to_integral_value() for value in pico):
        return None
    return tuple(int(value) for value in pico)


def _or(value: Decimal | None, default: Decimal) -> Decimal:
    return default if value is None else value


def to_pico(cost: Decimal) -> int:
    """USD → integer pico-dollars (rounded half-even), the ledger's storage unit."""
    return int((cost * PICO).to_integral_value())


def from_pico(pico: int) -> Decimal:
    return Decimal(pico) / PICO


_DATE_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest|-preview-\d{2}-\d{4}|-\d{3})$")


@dataclass(slots=True)
class PriceCatalog:
    """Prices keyed by (provider kind, model). Later files override earlier ones."""

    version: str
    prices: dict[tuple[str, str], ModelPrice] = field(default_factory=dict)

    def price_for(self, provider: str, model: str) -> ModelPrice | None:
        """The price of ``model`` at ``provider``, also for dated snapshots of a listed model
        (``gpt-4o-mini-2024-07-18`` is billed as ``gpt-4o-mini``). ``None`` when unknown."""
        found = self.prices.get((provider, model))
        if found is None:
            base = _DATE_SUFFIX.sub("", model)
            if base != model:
                found = self.prices.get((provider, base))
        return found

    def add(self, price: ModelPrice) -> None:
        self.prices[(price.provider, price.model)] = price

    def __len__(self) -> int:
        return len(self.prices)
