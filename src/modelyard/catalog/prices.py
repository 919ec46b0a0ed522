"""API prices: versioned data in ``catalog/data/prices.yaml``, each entry with its source and date.

Money is :class:`~decimal.Decimal` end to end. Prices are USD per million tokens. Costs follow each
provider's billing rules once the adapter has normalised usage (see :class:`~modelyard.providers.base.Usage`):
cached prompt tokens at the cache-read rate, cache writes at the write rate (Anthropic's 1-hour writes at
their own rate), reasoning tokens at the reasoning rate (the output rate unless the catalog says otherwise),
and prompts above a long-context threshold at the long-context rates (Gemini 2.5 Pro, Claude 1M context).
A model with no entry has no price: callers record it as unpriced, never as $0.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml

from modelyard.catalog.litellm import parse_litellm_prices
from modelyard.catalog.price_types import (
    MILLION,
    PICO,
    ModelPrice,
    PriceCatalog,
    Rates,
    from_pico,
    to_pico,
)
from modelyard.errors import ConfigError

__all__ = [
    "MILLION",
    "PICO",
    "ModelPrice",
    "PriceCatalog",
    "Rates",
    "from_pico",
    "to_pico",
]


def load_catalog(extra_files: tuple[str, ...] | list[str] = ()) -> PriceCatalog:
    """The bundled catalog, with ``extra_files`` (modelyard YAML or LiteLLM JSON) layered over it."""
    bundled = resources.files("modelyard.catalog").joinpath("data/prices.yaml").read_text(encoding="utf-8")
    catalog = parse_price_yaml(yaml.safe_load(bundled), source="bundled prices.yaml")
    for path in extra_files:
        layer = load_price_file(path)
        catalog.prices.update(layer.prices)
        catalog.version += f"+{Path(path).name}"
    return catalog


def load_price_file(path: str | Path) -> PriceCatalog:
    """One price file, recognised by its content whatever its suffix: modelyard's price format (YAML or JSON
    with ``version`` and ``models``) or LiteLLM's ``model_prices_and_context_window.json``. Every problem is
    one :class:`ConfigError` line naming the file and what was expected."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read price file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a price file: not UTF-8 text ({_EXPECTED})") from None
    raw = _parse_text(text, path)
    if is_litellm_price_map(raw):
        return parse_litellm_prices(raw, source=str(path))
    if isinstance(raw, dict) and "models" in raw:
        return parse_price_yaml(raw, source=str(path))
    raise ConfigError(f"{path}: not a price file: {_EXPECTED}")


_EXPECTED = (
    "expected modelyard's price format ('version' and a 'models' list, as in catalog/data/prices.yaml) or "
    "LiteLLM's model_prices_and_context_window.json (a JSON object of models priced by input_cost_per_token)"
)


def _parse_text(text: str, path: Path) -> Any:
    """JSON when the text is a JSON document (fast for LiteLLM's megabyte file), else YAML."""
    if text.lstrip().startswith(("{", "[")):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            if path.suffix.lower() == ".json":
                raise ConfigError(f"{path}: not valid JSON ({exc}); {_EXPECTED}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{path}: not valid YAML{where} ({problem}); {_EXPECTED}") from None


def is_litellm_price_map(raw: Any) -> bool:
    """LiteLLM's price map: a JSON object keyed by model, with ``sample_spec`` or per-token prices."""
    if not isinstance(raw, dict) or "models" in raw:
        return False
    if "sample_spec" in raw:
        return True
    return any(isinstance(v, dict) and "input_cost_per_token" in v for v in raw.values())


def parse_price_yaml(raw: Any, *, source: str) -> PriceCatalog:
    """Parse modelyard's price format (see ``data/prices.yaml`` for the documented shape)."""
    if not isinstance(raw, dict) or "models" not in raw or "version" not in raw:
        raise ConfigError(f"{source}: a price file needs 'version' and 'models'")
    if not isinstance(raw["models"], list):
        raise ConfigError(f"{source}: 'models' must be a list of entries")
    catalog = PriceCatalog(version=str(raw["version"]))
    for i, entry in enumerate(raw["models"]):
        name = entry.get("model", "?") if isinstance(entry, dict) else "?"
        try:
            if not isinstance(entry, dict):
                raise TypeError(f"an entry must be a mapping, got {type(entry).__name__}")
            catalog.add(_parse_entry(entry))
        except KeyError as exc:
            raise ConfigError(
                f"{source}: models[{i}] ({name}): missing or unknown field: {exc.args[0]}"
            ) from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ConfigError(f"{source}: models[{i}] ({name}): {exc}") from None
    return catalog


_ENTRY_KEYS = frozenset(
    {"provider", "model", "input", "output", "cached_input", "cache_write", "cache_write_1h", "reasoning"}
    | {"batch_input", "batch_output", "long_context", "source", "as_of", "notes"}
)
_TIER_KEYS = frozenset(
    {"threshold", "input", "output", "cached_input", "cache_write", "cache_write_1h", "reasoning"}
)


def _dec(value: Any) -> Decimal | None:
    # Prices are written as strings in the data file so YAML never turns them into binary floats.
    return None if value is None else _price(value)


def _price(value: Any) -> Decimal:
    price = Decimal(str(value))
    if not price.is_finite() or price < 0:
        raise ValueError(f"a price must be a finite number >= 0, got {value!r}")
    return price


def _reject_unknown(raw: dict[str, Any], allowed: frozenset[str]) -> None:
    # A typo such as "cached_imput" would otherwise drop a rate silently and bill at the input rate.
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise KeyError(f"unknown keys {unknown}; allowed: {sorted(allowed)}")


def _rates(raw: dict[str, Any]) -> Rates:
    return Rates(
        input=_price(raw["input"]),
        output=_price(raw["output"]),
        cached_input=_dec(raw.get("cached_input")),
        cache_write=_dec(raw.get("cache_write")),
        cache_write_1h=_dec(raw.get("cache_write_1h")),
        reasoning=_dec(raw.get("reasoning")),
    )


def _parse_entry(raw: dict[str, Any]) -> ModelPrice:
    _reject_unknown(raw, _ENTRY_KEYS)
    long_context = raw.get("long_context")
    if long_context is not None:
        if not isinstance(long_context, dict):
            raise TypeError("long_context must be a mapping")
        _reject_unknown(long_context, _TIER_KEYS)
    as_of = raw["as_of"]
    return ModelPrice(
        provider=str(raw["provider"]),
        model=str(raw["model"]),
        rates=_rates(raw),
        source=str(raw["source"]),
        as_of=as_of if isinstance(as_of, date) else date.fromisoformat(str(as_of)),
        batch_input=_dec(raw.get("batch_input")),
        batch_output=_dec(raw.get("batch_output")),
        long_context_threshold=int(long_context["threshold"]) if long_context else None,
        long_context=_rates(long_context) if long_context else None,
        notes=str(raw.get("notes", "")),
    )
