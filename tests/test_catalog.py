"""The API price catalog: the bundled data, each provider's billing convention, and the LiteLLM importer.

Every expected cost below is computed by hand from the per-1M rates in the comment beside it.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from modelyard.catalog.litellm import parse_litellm_prices
from modelyard.catalog.prices import (
    ModelPrice,
    PriceCatalog,
    Rates,
    from_pico,
    load_catalog,
    load_price_file,
    parse_price_yaml,
    to_pico,
)
from modelyard.errors import ConfigError
from modelyard.providers.base import Usage

FIXTURE = Path(__file__).parent / "fixtures" / "litellm_prices.json"


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return load_catalog()


@pytest.fixture(scope="module")
def litellm() -> PriceCatalog:
    return parse_litellm_prices(orjson.loads(FIXTURE.read_bytes()), source="fixture", as_of=date(2026, 11, 1))


def price(catalog: PriceCatalog, provider: str, model: str) -> ModelPrice:
    found = catalog.price_for(provider, model)
    assert found is not None, f"{provider}/{model} missing from the catalog"
    return found


# ------------------------------------------------------------------ the bundled file


def test_bundled_catalog_loads_with_a_dated_version(catalog: PriceCatalog) -> None:
    assert date.fromisoformat(catalog.version)
    assert len(catalog) >= 30


def test_every_bundled_entry_has_an_official_source_and_a_date(catalog: PriceCatalog) -> None:
    official = {
        "openai": "https://developers.openai.com/",
        "anthropic": "https://platform.claude.com/",
        "gemini": "https://ai.google.dev/",
    }
    for (provider, model), entry in catalog.prices.items():
        if provider in official:
            assert entry.source.startswith(official[provider]), (provider, model, entry.source)
        else:  # the rerank APIs: no vendor page in reach stated a price; the entry must say so
            assert entry.notes.startswith("Secondary source:"), (provider, model, entry.notes)
        assert isinstance(entry.as_of, date) and entry.as_of.year >= 2025, (provider, model)
        assert entry.rates.input > 0, (provider, model)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        *[("openai", m) for m in ("gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini")],
        *[("openai", m) for m in ("gpt-4.1-nano", "gpt-4o", "gpt-4o-mini", "o3", "o4-mini")],
        ("openai", "text-embedding-3-small"),
        ("openai", "text-embedding-3-large"),
        *[("anthropic", m) for m in ("claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5")],
        ("anthropic", "claude-3-5-haiku"),
        *[("gemini", m) for m in ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite")],
        ("gemini", "gemini-2.0-flash"),
        ("gemini", "gemini-embedding-001"),
    ],
)
def test_the_models_we_route_to_are_priced(catalog: PriceCatalog, provider: str, model: str) -> None:
    assert catalog.price_for(provider, model) is not None


def test_bundled_prices_are_exact_decimals_not_floats(catalog: PriceCatalog) -> None:
    mini = price(catalog, "openai", "gpt-4o-mini")
    assert mini.rates.input == Decimal("0.15") and str(mini.rates.input) == "0.15"
    assert mini.rates.cached_input == Decimal("0.075")
    assert mini.batch_input == Decimal("0.075") and mini.batch_output == Decimal("0.30")


def test_every_anthropic_entry_has_both_cache_write_rates_and_a_cache_read_rate(
    catalog: PriceCatalog,
) -> None:
    for (provider, model), entry in catalog.prices.items():
        if provider == "anthropic":
            r = entry.rates
            assert r.cache_write and r.cache_write_1h and r.cached_input is not None, model
            assert r.cache_write_1h > r.cache_write > r.input > r.cached_input, model


# ------------------------------------------------------------------ each provider's convention


def test_openai_cached_tokens_are_billed_at_the_cached_rate(catalog: PriceCatalog) -> None:
    # gpt-4o-mini: input 0.15, cached 0.075, output 0.60 per 1M.
    usage = Usage(input_tokens=10_000, cached_input_tokens=4_000, output_tokens=1_000)
    # 6,000 x 0.15 + 4,000 x 0.075 + 1,000 x 0.60 = 900 + 300 + 600 = 1,800 per 1M
    assert price(catalog, "openai", "gpt-4o-mini").cost(usage) == Decimal("0.0018")


def test_anthropic_bills_5_minute_and_1_hour_cache_writes_at_their_own_rates(catalog: PriceCatalog) -> None:
    # claude-haiku-4-5: input 1, 5m write 1.25, 1h write 2, cache read 0.10, output 5 per 1M.
    usage = Usage(
        input_tokens=6_000,  # 1,000 uncached + 2,000 cache reads + 3,000 cache writes
        cached_input_tokens=2_000,
        cache_write_tokens=3_000,
        cache_write_1h_tokens=1_000,
        output_tokens=500,
    )
    # 1,000 x 1 + 2,000 x 0.10 + 2,000 x 1.25 + 1,000 x 2 + 500 x 5 = 8,200 per 1M
    haiku = price(catalog, "anthropic", "claude-haiku-4-5")
    assert haiku.cost(usage) == Decimal("0.0082")
    all_5m = Usage(input_tokens=6_000, cached_input_tokens=2_000, cache_write_tokens=3_000, output_tokens=500)
    # the same writes all at 5 minutes: 1,000 fewer tokens at (2 - 1.25)
    assert haiku.cost(usage) - haiku.cost(all_5m) == Decimal("0.00075")


def test_gemini_switches_to_the_long_context_tier_above_200k_prompt_tokens(catalog: PriceCatalog) -> None:
    # gemini-2.5-pro: <=200K: input 1.25, cached 0.125, output 10; >200K: 2.50, 0.25, 15 per 1M.
    pro = price(catalog, "gemini", "gemini-2.5-pro")
    at_threshold = Usage(input_tokens=200_000, cached_input_tokens=100_000, output_tokens=1_000)
    # 100,000 x 1.25 + 100,000 x 0.125 + 1,000 x 10 = 147,500 per 1M
    assert pro.cost(at_threshold) == Decimal("0.1475")
    above = Usage(input_tokens=200_001, cached_input_tokens=100_000, output_tokens=1_000)
    # 100,001 x 2.50 + 100,000 x 0.25 + 1,000 x 15 = 290,002.5 per 1M, every token at the long rates
    assert pro.cost(above) == Decimal("0.2900025")


def test_anthropic_sonnet_long_context_tier_includes_cache_rates(catalog: PriceCatalog) -> None:
    # claude-sonnet-4-5 >200K: input 6, 5m write 7.50, 1h write 12, cache read 0.60, output 22.50 per 1M.
    usage = Usage(
        input_tokens=300_000,
        cached_input_tokens=100_000,
        cache_write_tokens=100_000,
        cache_write_1h_tokens=50_000,
        output_tokens=2_000,
    )
    # 100,000 x 6 + 100,000 x 0.60 + 50,000 x 7.50 + 50,000 x 12 + 2,000 x 22.50 = 1,680,000 per 1M
    assert price(catalog, "anthropic", "claude-sonnet-4-5").cost(usage) == Decimal("1.68")


def test_haiku_5_5_bills_prompts_over_100k_at_the_higher_band(catalog: PriceCatalog) -> None:
    haiku = price(catalog, "anthropic", "claude-haiku-5-5")
    # <=100K: 100,000 x 0.10 + 1,000 x 0.50 = 10,500 per 1M; >100K: 100,001 x 0.50 + 1,000 x 2.50
    assert haiku.cost(Usage(input_tokens=100_000, output_tokens=1_000)) == Decimal("0.0105")
    assert haiku.cost(Usage(input_tokens=100_001, output_tokens=1_000)) == Decimal("0.0525005")


def test_reasoning_tokens_are_billed_at_the_output_rate_by_default(catalog: PriceCatalog) -> None:
    # o3: input 2, output 8 per 1M; reasoning is part of output_tokens.
    usage = Usage(input_tokens=1_000, output_tokens=1_000, reasoning_tokens=800)
    assert price(catalog, "openai", "o3").cost(usage) == Decimal("0.01")  # 2,000 + 8,000 per 1M


def test_a_reasoning_rate_bills_reasoning_tokens_apart_from_output() -> None:
    thinking = ModelPrice(
        provider="gemini",
        model="m",
        rates=Rates(input=Decimal("0.15"), output=Decimal("0.60"), reasoning=Decimal("3.50")),
        source="test",
        as_of=date(2026, 1, 1),
    )
    usage = Usage(input_tokens=1_000, output_tokens=1_000, reasoning_tokens=800)
    # 1,000 x 0.15 + 200 x 0.60 + 800 x 3.50 = 150 + 120 + 2,800 per 1M
    assert thinking.cost(usage) == Decimal("0.00307")


def test_embeddings_bill_input_only(catalog: PriceCatalog) -> None:
    usage = Usage(input_tokens=1_000_000)
    assert price(catalog, "openai", "text-embedding-3-small").cost(usage) == Decimal("0.02")


# ------------------------------------------------------------------ lookup


@pytest.mark.parametrize(
    ("provider", "snapshot", "base"),
    [
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai", "o3-2025-04-16", "o3"),
        ("anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4"),
    ],
)
def test_dated_snapshots_resolve_to_their_model(
    catalog: PriceCatalog, provider: str, snapshot: str, base: str
) -> None:
    assert catalog.price_for(provider, snapshot) is price(catalog, provider, base)


def test_unknown_models_and_wrong_providers_have_no_price(catalog: PriceCatalog) -> None:
    assert catalog.price_for("openai", "gpt-unknown-9") is None
    assert catalog.price_for("anthropic", "gpt-4o-mini") is None
    assert catalog.price_for("openai", "gpt-4o-mini-turbo") is None


# ------------------------------------------------------------------ pico-dollars


@pytest.mark.parametrize("usd", ["0", "0.0018", "1.68", "0.000000000001", "123456.789012345678"])
def test_pico_round_trip_is_exact(usd: str) -> None:
    assert from_pico(to_pico(Decimal(usd))) == Decimal(usd)


def test_to_pico_rounds_half_to_even() -> None:
    assert to_pico(Decimal("0.0000000000025")) == 2
    assert to_pico(Decimal("0.0000000000035")) == 4
    assert to_pico(Decimal("0.0082")) == 8_200_000_000


# ------------------------------------------------------------------ LiteLLM import


def test_litellm_per_token_floats_become_exact_per_million_decimals(litellm: PriceCatalog) -> None:
    mini = price(litellm, "openai", "gpt-4o-mini")
    per_token = 1.5e-07  # as json.loads returns it
    assert Decimal(per_token) * 1_000_000 != Decimal("0.15")  # what converting the float itself would give
    assert mini.rates.input == Decimal("0.15") and str(mini.rates.input) == "0.15"
    assert (mini.rates.output, mini.rates.cached_input) == (Decimal("0.6"), Decimal("0.075"))
    assert (mini.batch_input, mini.batch_output) == (Decimal("0.075"), Decimal("0.3"))
    assert str(price(litellm, "openai", "gpt-5.4").rates.output) == "15"  # 1.5e-05 -> 15, not 1.5E+1


def test_litellm_import_matches_the_bundled_rates(catalog: PriceCatalog, litellm: PriceCatalog) -> None:
    for provider, model in [("openai", "gpt-4o-mini"), ("gemini", "gemini-2.5-pro"), ("openai", "gpt-5.4")]:
        ours, theirs = price(catalog, provider, model), price(litellm, provider, model)
        assert ours.rates == theirs.rates and ours.long_context == theirs.long_context, model
        assert ours.long_context_threshold == theirs.long_context_threshold


def test_litellm_anthropic_cache_writes_and_200k_tier(litellm: PriceCatalog) -> None:
    sonnet = price(litellm, "anthropic", "claude-sonnet-4-5-20250929")  # LiteLLM keys the dated id
    assert (sonnet.rates.cache_write, sonnet.rates.cache_write_1h) == (Decimal("3.75"), Decimal("6"))
    assert sonnet.long_context_threshold == 200_000
    assert sonnet.long_context == Rates(
        input=Decimal("6"),
        output=Decimal("22.5"),
        cached_input=Decimal("0.6"),
        cache_write=Decimal("7.5"),
        cache_write_1h=Decimal("12"),
    )


def test_litellm_reads_the_272k_tier_and_ignores_service_tier_variants(litellm: PriceCatalog) -> None:
    gpt = price(litellm, "openai", "gpt-5.4")
    assert gpt.long_context_threshold == 272_000
    assert gpt.long_context is not None
    assert (gpt.long_context.input, gpt.long_context.output) == (Decimal("5"), Decimal("22.5"))
    assert gpt.rates.input == Decimal("2.5")  # not the _priority rate


def test_litellm_reasoning_rate_is_carried(litellm: PriceCatalog) -> None:
    flash = price(litellm, "gemini", "gemini-2.5-flash-preview-04-17")
    assert flash.rates.reasoning == Decimal("3.5")
    usage = Usage(input_tokens=1_000, output_tokens=1_000, reasoning_tokens=800)
    assert flash.cost(usage) == Decimal("0.00307")  # as hand-computed above


def test_litellm_provider_mapping_and_prefix_stripping(litellm: PriceCatalog) -> None:
    assert set(litellm.prices) == {
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-5.4"),
        ("openai", "text-embedding-3-small"),
        ("anthropic", "claude-sonnet-4-5-20250929"),
        ("anthropic", "claude-haiku-4-5"),
        ("gemini", "gemini-2.5-pro"),
        ("gemini", "gemini-2.5-flash-preview-04-17"),
        ("mistral", "mistral-large-latest"),
    }  # sample_spec, per-pixel, per-second and range-tiered entries are skipped


def test_litellm_gemini_api_entry_wins_over_the_vertex_one(litellm: PriceCatalog) -> None:
    # Both keys land on (gemini, gemini-2.5-pro); the Vertex entry carries an older cache rate.
    assert price(litellm, "gemini", "gemini-2.5-pro").rates.cached_input == Decimal("0.125")
    reordered = orjson.loads(FIXTURE.read_bytes())
    gemini_api = reordered.pop("gemini/gemini-2.5-pro")
    reordered = {"gemini/gemini-2.5-pro": gemini_api, **reordered}  # native entry first this time
    layer = parse_litellm_prices(reordered, source="fixture")
    assert price(layer, "gemini", "gemini-2.5-pro").rates.cached_input == Decimal("0.125")


def test_litellm_entries_record_source_and_date(litellm: PriceCatalog) -> None:
    mini = price(litellm, "openai", "gpt-4o-mini")
    assert mini.source == "fixture (gpt-4o-mini)" and mini.as_of == date(2026, 11, 1)
    assert "litellm" in mini.notes.lower()


def test_a_litellm_json_file_layers_over_the_bundled_catalog(tmp_path: Path) -> None:
    layer = tmp_path / "litellm.json"
    layer.write_bytes(FIXTURE.read_bytes())
    merged = load_catalog([str(layer)])
    assert merged.version.endswith("+litellm.json")
    assert price(merged, "mistral", "mistral-large-latest").rates.output == Decimal("6")
    assert price(merged, "openai", "o3").source.startswith("https://")  # untouched bundled entries stay


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (
            {"litellm_provider": "openai", "input_cost_per_token": "cheap", "output_cost_per_token": 1e-6},
            "cheap",
        ),
        (
            {"litellm_provider": "openai", "input_cost_per_token": 1e-6, "output_cost_per_token": -1e-6},
            ">= 0",
        ),
        ({"litellm_provider": "openai", "input_cost_per_token": True, "output_cost_per_token": 1e-6}, "True"),
        ({"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6}, "litellm_provider"),
        (
            {
                "litellm_provider": "x",
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 1e-6,
                "input_cost_per_token_above_200k_tokens": "2e-6",
            },
            "input_cost_per_token_above_200k_tokens",
        ),
        ("not an object", "must be an object"),
    ],
)
def test_bad_litellm_entries_raise_config_errors_naming_the_entry(entry: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_litellm_prices({"gpt-broken": entry}, source="prices.json")
    assert "prices.json" in str(raised.value) and "gpt-broken" in str(raised.value)
    assert fragment in str(raised.value)


def test_a_litellm_file_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "prices.json"
    bad.write_text(json.dumps([1, 2, 3]))
    with pytest.raises(ConfigError, match="JSON object"):
        load_price_file(bad)


# ------------------------------------------------------------------ bad modelyard price files


def _entry(**overrides: Any) -> dict[str, Any]:
    entry = {
        "provider": "openai",
        "model": "m1",
        "input": "1",
        "output": "2",
        "source": "s",
        "as_of": "2026-01-01",
    }
    return {**entry, **overrides}


@pytest.mark.parametrize(
    ("models", "fragment"),
    [
        ([_entry(), _entry(model="m2", input="abc")], "models[1] (m2)"),
        ([_entry(cached_imput="0.5")], "cached_imput"),
        ([_entry(output="-1")], ">= 0"),
        ([_entry(input="NaN")], "finite"),
        ([_entry(as_of="someday")], "models[0] (m1)"),
        ([{k: v for k, v in _entry().items() if k != "source"}], "source"),
        (
            [_entry(long_context={"threshold": 10, "input": "1", "output": "1", "cachd_input": "1"})],
            "cachd_input",
        ),
        (["just a string"], "models[0] (?)"),
    ],
)
def test_bad_price_entries_raise_config_errors_naming_the_entry(models: list[Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_price_yaml({"version": "v", "models": models}, source="custom.yaml")
    assert "custom.yaml" in str(raised.value) and fragment in str(raised.value)


@pytest.mark.parametrize("raw", [None, [], {"models": []}, {"version": "v", "models": "none"}])
def test_a_price_file_without_version_and_models_is_refused(raw: Any) -> None:
    with pytest.raises(ConfigError, match=r"custom\.yaml"):
        parse_price_yaml(raw, source="custom.yaml")


def test_a_yaml_price_file_overrides_bundled_entries(tmp_path: Path) -> None:
    override = tmp_path / "negotiated.yaml"
    override.write_text(yaml.safe_dump({"version": "v1", "models": [_entry(model="gpt-4o", input="2.00")]}))
    merged = load_catalog([str(override)])
    assert price(merged, "openai", "gpt-4o").rates.input == Decimal("2.00")
    assert merged.version.endswith("+negotiated.yaml")


def test_a_missing_price_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read price file"):
        load_catalog([str(tmp_path / "absent.yaml")])


def test_integer_pico_pricing_equals_the_decimal_formula_for_every_bundled_price() -> None:
    """The request path prices with integer pico-dollar rates; it must agree with the Decimal formula."""
    import random

    from modelyard.catalog.prices import load_catalog, to_pico
    from modelyard.providers.base import Usage

    rng = random.Random(1)
    for price in load_catalog().prices.values():
        for _ in range(50):
            prompt = rng.randint(0, 400_000)
            cached = rng.randint(0, prompt)
            write = rng.randint(0, prompt - cached)
            output = rng.randint(0, 50_000)
            usage = Usage(
                prompt,
                output,
                cached,
                write,
                rng.randint(0, output),
                cache_write_1h_tokens=rng.randint(0, write),
            )
            assert price.cost_pico(usage) == to_pico(price.cost(usage)), (price.model, usage)
            plain = Usage(prompt, output)  # only input and output tokens: the common case's short sum
            assert price.cost_pico(plain) == to_pico(price.cost(plain)), (price.model, plain)
