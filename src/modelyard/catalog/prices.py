"""API prices: versioned data in ``catalog/data/prices.yaml``, each entry with its source and date.

Money is :class:`~decimal.Decimal` end to end. Prices are USD per million tokens (and, for rerank APIs
that bill searches, USD per 1,000 search units). Costs follow each
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
from typing import Annotated, Any

import orjson
import yaml
from pydantic import BeforeValidator, Field, ValidationError

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
from modelyard.config.strict import Strict
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


def _price(value: Any) -> Decimal:
    try:
        price = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"a price must be a finite number >= 0, got {value!r}") from None
    if not price.is_finite() or price < 0:
        raise ValueError(f"a price must be a finite number >= 0, got {value!r}")
    return price


#: A price as written: a string or number, parsed exactly (YAML never turns "0.40" into a binary float).
Price = Annotated[Decimal, BeforeValidator(_price)]


class _Tiered(Strict):
    """Rates per million tokens; unknown keys are refused, since a typo such as "cached_imput" would
    otherwise drop a rate silently and bill at the input rate."""

    input: Price
    output: Price
    cached_input: Price | None = None
    cache_write: Price | None = None
    cache_write_1h: Price | None = None
    reasoning: Price | None = None

    def rates(self) -> Rates:
        return Rates(
            input=self.input,
            output=self.output,
            cached_input=self.cached_input,
            cache_write=self.cache_write,
            cache_write_1h=self.cache_write_1h,
            reasoning=self.reasoning,
        )


class LongContextTier(_Tiered):
    #: Prompts above this many input tokens are billed at these rates.
    threshold: int = Field(gt=0)


class PriceEntry(_Tiered):
    """One entry of a price file, as documented in ``data/prices.yaml``."""

    provider: str
    model: str
    batch_input: Price | None = None
    batch_output: Price | None = None
    long_context: LongContextTier | None = None
    #: USD per 1,000 search units, as Cohere publishes rerank prices (a search unit is one query with up
    #: to 100 documents); the token rates of such a model are "0".
    per_1k_search_units: Price | None = None
    source: str
    as_of: date
    notes: str = ""

    def to_price(self) -> ModelPrice:
        tier = self.long_context
        return ModelPrice(
            provider=self.provider,
            model=self.model,
            rates=self.rates(),
            source=self.source,
            as_of=self.as_of,
            batch_input=self.batch_input,
            batch_output=self.batch_output,
            long_context_threshold=tier.threshold if tier else None,
            long_context=tier.rates() if tier else None,
            notes=self.notes,
            search_unit=self.per_1k_search_units / 1000 if self.per_1k_search_units is not None else None,
        )


def parse_price_yaml(raw: Any, *, source: str) -> PriceCatalog:
    """Parse modelyard's price format (see ``data/prices.yaml`` for the documented shape); a bad entry is a
    ConfigError naming the file, the entry's index and model, and each field that is wrong."""
    if not isinstance(raw, dict) or "models" not in raw or "version" not in raw:
        raise ConfigError(f"{source}: a price file needs 'version' and 'models'")
    if not isinstance(raw["models"], list):
        raise ConfigError(f"{source}: 'models' must be a list of entries")
    catalog = PriceCatalog(version=str(raw["version"]))
    for i, entry in enumerate(raw["models"]):
        name = entry.get("model", "?") if isinstance(entry, dict) else "?"
        try:
            catalog.add(PriceEntry.model_validate(entry).to_price())
        except ValidationError as exc:
            raise ConfigError(f"{source}: models[{i}] ({name}): {_problems(exc)}") from None
    return catalog


def _problems(exc: ValidationError) -> str:
    """Every problem of one entry, on one line (a price file error is one line in `check` and `serve`)."""
    out = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(the entry)"
        if error["type"] == "missing":
            out.append(f"missing or unknown field: {where}")
        elif error["type"] == "extra_forbidden":
            out.append(f"missing or unknown field: unknown key '{where}' (check its spelling)")
        else:
            out.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
    return "; ".join(out)
