"""Import LiteLLM's ``model_prices_and_context_window.json`` as a :class:`PriceCatalog` layer.

LiteLLM keys one object per model and prices it in USD *per token* as JSON floats
(``"input_cost_per_token": 1.5e-07``). We convert each float through its shortest ``repr`` to a
:class:`~decimal.Decimal` and scale to per-1M tokens, so ``1.5e-07`` becomes exactly ``0.15`` rather
than the binary float's ``0.1499999999999999868...``.

What is read, per entry::

    input_cost_per_token, output_cost_per_token        -> input, output (output may be absent for embeddings)
    cache_read_input_token_cost                        -> cached_input
    cache_creation_input_token_cost                    -> cache_write      (Anthropic 5-minute writes)
    cache_creation_input_token_cost_above_1hr          -> cache_write_1h
    output_cost_per_reasoning_token                    -> reasoning
    input_cost_per_token_batches / output_..._batches  -> batch_input, batch_output
    <base field>_above_<N>k_tokens                     -> long_context tier above N*1000 prompt tokens
    litellm_provider                                   -> provider kind (openai, anthropic, gemini, or kept)

Skipped without error: ``sample_spec``, and entries that are not priced per token (images, seconds,
characters, queries, tiered ``range`` tables). Service-tier variants (``_flex``, ``_priority``) are ignored.
A value that is present but not a non-negative number is a :class:`ConfigError` naming the entry.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

from modelyard.catalog.price_types import MILLION, ModelPrice, PriceCatalog, Rates
from modelyard.errors import ConfigError

#: LiteLLM provider names that are one of our provider kinds under another name.
_PROVIDER_KINDS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "vertex_ai-language-models": "gemini",
    "jina_ai": "jina",  # the rerank APIs (cohere and voyage are named as our kinds are)
}
#: When two keys land on the same (kind, model), an entry from the kind's own API wins over an alias
#: (Gemini Developer API prices over Vertex AI's, which may differ by region).
_NATIVE = frozenset({"openai", "anthropic", "gemini"})

_TIER_FIELD = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost|cache_creation_input_token_cost_above_1hr)_above_(\d+)k_tokens$"
)
#: Modes whose entries bill no output tokens, so a missing output price means zero, not "unknown".
_INPUT_ONLY_MODES = frozenset({"embedding", "moderation", "rerank"})


def parse_litellm_prices(raw: Any, *, source: str, as_of: date | None = None) -> PriceCatalog:
    """A catalog layer from LiteLLM's price file ``raw`` (the parsed JSON object).

    ``source`` names the file in each entry and in errors; ``as_of`` is the day the file was taken
    (today when not given), since LiteLLM's file carries no date of its own.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a LiteLLM price file is a JSON object keyed by model name")
    day = as_of or date.today()
    catalog = PriceCatalog(version="litellm")
    ranks: dict[tuple[str, str], bool] = {}
    for key, entry in raw.items():
        if key == "sample_spec":
            continue
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: entry {key!r} must be an object, got {type(entry).__name__}")
        price = _parse_entry(key, entry, source=source, as_of=day)
        if price is None:
            continue
        slot = (price.provider, price.model)
        native = entry.get("litellm_provider") in _NATIVE
        if slot in ranks and ranks[slot] and not native:
            continue
        ranks[slot] = native
        catalog.add(price)
    return catalog


def _parse_entry(key: str, entry: dict[str, Any], *, source: str, as_of: date) -> ModelPrice | None:
    where = f"{source}: entry {key!r}"
    if "input_cost_per_token" not in entry:
        return None
    mode = str(entry.get("mode", "chat"))
    if "output_cost_per_token" not in entry and mode not in _INPUT_ONLY_MODES:
        return None
    litellm_provider = entry.get("litellm_provider") or _prefix(key)
    if not isinstance(litellm_provider, str) or not litellm_provider:
        raise ConfigError(f"{where}: 'litellm_provider' is missing and the key has no provider prefix")
    kind = _PROVIDER_KINDS.get(litellm_provider, litellm_provider)
    threshold, tier = _long_context_tier(entry, where)
    rates = _rates(entry, where)
    return ModelPrice(
        provider=kind,
        model=_strip_prefix(key, litellm_provider, kind),
        rates=rates,
        source=f"{source} ({key})",
        as_of=as_of,
        batch_input=_per_million(entry, "input_cost_per_token_batches", where),
        batch_output=_per_million(entry, "output_cost_per_token_batches", where),
        long_context_threshold=threshold,
        long_context=_tier_rates(rates, tier, where) if tier else None,
        notes=f"imported from LiteLLM ({litellm_provider}, mode {mode})",
        search_unit=_per_query(entry, where),
    )


def _per_query(entry: dict[str, Any], where: str) -> Decimal | None:
    """LiteLLM's ``input_cost_per_query`` (its Cohere rerank entries): USD per search unit."""
    value = entry.get("input_cost_per_query")
    return None if value is None else _tidy(_to_per_million(value, f"{where}.input_cost_per_query") / MILLION)


def _rates(entry: dict[str, Any], where: str) -> Rates:
    return Rates(
        input=_required(entry, "input_cost_per_token", where),
        output=_per_million(entry, "output_cost_per_token", where) or Decimal(0),
        cached_input=_per_million(entry, "cache_read_input_token_cost", where),
        cache_write=_per_million(entry, "cache_creation_input_token_cost", where),
        cache_write_1h=_per_million(entry, "cache_creation_input_token_cost_above_1hr", where),
        reasoning=_per_million(entry, "output_cost_per_reasoning_token", where),
    )


def _long_context_tier(entry: dict[str, Any], where: str) -> tuple[int | None, dict[str, Decimal]]:
    """The lowest ``_above_<N>k_tokens`` tier that prices input: (threshold, {base field: rate})."""
    tiers: dict[int, dict[str, Decimal]] = {}
    for field, value in entry.items():
        match = _TIER_FIELD.match(field)
        if match and value is not None:
            tiers.setdefault(int(match[2]) * 1000, {})[match[1]] = _to_per_million(value, f"{where}.{field}")
    priced = sorted(t for t, fields in tiers.items() if "input_cost_per_token" in fields)
    # Our catalog models one tier; LiteLLM's files carry at most one per model for the providers we route.
    return (priced[0], tiers[priced[0]]) if priced else (None, {})


def _tier_rates(base: Rates, tier: dict[str, Decimal], where: str) -> Rates:
    # A field the tier does not restate keeps its base rate, as LiteLLM's own cost calculator does.
    return Rates(
        input=tier["input_cost_per_token"],
        output=tier.get("output_cost_per_token", base.output),
        cached_input=tier.get("cache_read_input_token_cost", base.cached_input),
        cache_write=tier.get("cache_creation_input_token_cost", base.cache_write),
        cache_write_1h=tier.get("cache_creation_input_token_cost_above_1hr", base.cache_write_1h),
        reasoning=base.reasoning,
    )


def _required(entry: dict[str, Any], field: str, where: str) -> Decimal:
    value = _per_million(entry, field, where)
    if value is None:
        raise ConfigError(f"{where}: {field!r} is null; give the price per token or remove the entry")
    return value


def _per_million(entry: dict[str, Any], field: str, where: str) -> Decimal | None:
    value = entry.get(field)
    return None if value is None else _to_per_million(value, f"{where}.{field}")


def _to_per_million(value: Any, where: str) -> Decimal:
    """A per-token JSON number as an exact per-1M-token Decimal."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a price per token (a number), got {value!r}")
    # repr() is the shortest string that round-trips the float: 1.5e-07 -> "1.5e-07" -> exactly 0.15/1M.
    per_million = Decimal(repr(value)) * MILLION
    if not per_million.is_finite() or per_million < 0:
        raise ConfigError(f"{where}: a price must be a finite number >= 0, got {value!r}")
    return _tidy(per_million)


def _tidy(value: Decimal) -> Decimal:
    # 1.5E-7 * 1000000 is Decimal("0.1500000"): equal to 0.15 but noisy in reports; drop the zeros
    # without switching to exponent form (normalize() alone turns 10 into 1E+1).
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    return normal.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else normal


def _prefix(key: str) -> str | None:
    return key.split("/", 1)[0] if "/" in key else None


def _strip_prefix(key: str, litellm_provider: str, kind: str) -> str:
    """``anthropic/claude-x`` -> ``claude-x``; ``vertex_ai/gemini-x`` -> ``gemini-x``; others unchanged."""
    head, sep, rest = key.partition("/")
    if sep and head in {litellm_provider, kind, litellm_provider.split("-", 1)[0]}:
        return rest
    return key
