"""A catalog that says how old it is: stale figures named, price files recognised by content with one-line
errors (also in ``check``), ``modelyard catalog`` listing and its LiteLLM import."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from modelyard.catalog.age import age_summary, dated_figures, stale_figures
from modelyard.catalog.gpus import GpuCatalog, GpuOffer, load_gpu_catalog
from modelyard.catalog.prices import ModelPrice, PriceCatalog, Rates, load_catalog, load_price_file
from modelyard.cli.main import cli
from modelyard.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures"
LITELLM_PRICES = FIXTURES / "litellm_prices.json"
TODAY = date(2026, 12, 3)


def _price(model: str, as_of: date) -> ModelPrice:
    return ModelPrice("openai", model, Rates(Decimal(1), Decimal(2)), f"page of {model}", as_of)


def _offer(gpu: str, as_of: date) -> GpuOffer:
    return GpuOffer(vendor="v", gpu=gpu, on_demand=Decimal("2"), source=f"page of {gpu}", as_of=as_of)


PRICES = PriceCatalog("t", {("openai", m): _price(m, d) for m, d in
                            [("old", date(2026, 1, 1)), ("edge", date(2026, 6, 6)), ("new", date(2026, 11, 1))]})  # fmt: skip
GPUS = GpuCatalog(
    version="t", gpus=[], offers=[_offer("G1", date(2025, 6, 1)), _offer("G2", date(2026, 10, 1))]
)


@pytest.mark.parametrize(
    ("api_models", "offers", "max_age", "named"),
    [
        (None, None, 180, ["v/G1", "openai/old"]),  # oldest first; 2026-06-06 is exactly 180 days: not over
        (None, None, 179, ["v/G1", "openai/old", "openai/edge"]),
        ([("openai", "new")], ["v/G2"], 30, ["v/G2", "openai/new"]),
        ([("openai", "new-2026-11-01")], [], 0, ["openai/new-2026-11-01"]),  # priced by its base entry
        ([("openai", "unpriced")], ["v/nope"], 0, []),  # what the catalog lacks is reported elsewhere
        ([], [], 0, []),
    ],
)
def test_stale_figures_from_a_table(
    api_models: list[tuple[str, str]] | None, offers: list[str] | None, max_age: int, named: list[str]
) -> None:
    lines = stale_figures(
        PRICES, GPUS, today=TODAY, max_age_days=max_age, api_models=api_models, offers=offers
    )
    assert [line.split(" is ")[0].split(" ", 2)[-1] for line in lines] == named
    if max_age == 180:
        assert lines[0] == ("GPU offer v/G1 is 550 days old (as of 2025-06-01, over 180; source: page of G1): "
                            "put your current quote in a GPU file (catalog.gpu_files)")  # fmt: skip


def test_age_summary_gives_each_kind_its_range() -> None:
    summary = age_summary(dated_figures(PRICES, GPUS), TODAY)
    assert summary == ("API prices 2026-01-01 to 2026-11-01 (oldest 336 days); "
                       "GPU offers 2025-06-01 to 2026-10-01 (oldest 550 days)")  # fmt: skip


def test_bundled_gpu_offers_are_dated_sourced_and_cover_five_gpus_at_two_clouds() -> None:
    catalog = load_gpu_catalog()
    assert all("http" in offer.source for offer in catalog.offers)
    current = ("H100-SXM-80GB", "H200-SXM-141GB", "B200-SXM-180GB", "A100-SXM-80GB", "L40S-48GB")
    for gpu in current:
        vendors = {o.vendor for o in catalog.offers if o.gpu == gpu}
        assert len(vendors) >= 2, (gpu, vendors)
    fresh = [o.key for o in catalog.offers if o.gpu in current]
    assert stale_figures(gpus=catalog, today=date(2026, 12, 3), offers=fresh) == []
    assert any(o.reserved for o in catalog.offers) and any(o.spot for o in catalog.offers)


# ------------------------------------------------------------------ price files recognised by content


@pytest.mark.parametrize("name", ["prices.JSON", "litellm.txt", "model_prices_and_context_window", "p.yaml"])
def test_litellm_price_map_is_recognised_by_content(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(LITELLM_PRICES.read_bytes())
    catalog = load_price_file(path)
    assert catalog.version == "litellm" and len(catalog) > 0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("models: [\n", "not valid YAML at line 2"),
        ('{"gpt-x": {"input_cost_per_token": 1e-6,', "not valid JSON"),
        ("just words", "not a price file: expected modelyard's price format"),
        ('{"rates": {"gpt": 1}}', "not a price file"),
        ("version: v\nmodels:\n  - {provider: openai, model: m, input: '1', output: '2', as_of: 2026-01-01}\n",
         "models[0] (m): missing or unknown field: source"),
    ],
)  # fmt: skip
def test_a_bad_price_file_is_one_line_naming_the_file(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "mine.json" if text.startswith("{") else tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_catalog([str(path)])
    assert str(path) in str(err.value) and fragment in str(err.value) and "\n" not in str(err.value)


GATEWAY = """
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY}
models:
  gpt-4o-mini: {provider: openai}
  gpt-old: {provider: openai}
catalog: {price_files: [PRICE_FILE]}
ledger: {url: "sqlite:///modelyard.db"}
"""


def test_check_refuses_a_bad_price_file_before_saying_valid(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("provider,model\nopenai,x\n")
    (tmp_path / "gw.yaml").write_text(GATEWAY.replace("PRICE_FILE", "p.csv"))
    result = CliRunner().invoke(cli, ["check", "--config", str(tmp_path / "gw.yaml")])
    assert result.exit_code == 1
    assert "p.csv: not a price file" in result.output
    assert "valid" not in result.stdout and "Traceback" not in result.output


def test_check_warns_about_a_stale_price_of_a_configured_model(tmp_path: Path) -> None:
    doc = {"version": "v", "models": [{"provider": "openai", "model": "gpt-old", "input": "1", "output": "2",
                                       "source": "my sheet", "as_of": "2020-01-01"}]}  # fmt: skip
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "gw.yaml").write_text(GATEWAY.replace("PRICE_FILE", "p.yaml"))
    result = CliRunner().invoke(cli, ["check", "--config", str(tmp_path / "gw.yaml")])
    assert result.exit_code == 0
    assert "warning: API price openai/gpt-old is " in result.stderr and "as of 2020-01-01" in result.stderr
    assert "gpt-4o-mini is" not in result.stderr  # the bundled price is recent
    quiet = CliRunner().invoke(
        cli, ["check", "--config", str(tmp_path / "gw.yaml"), "--max-age-days", "100000"]
    )
    assert "API price" not in quiet.stderr


# ------------------------------------------------------------------ modelyard catalog


def test_catalog_lists_prices_offers_and_profiles_by_tier(tmp_path: Path) -> None:
    gpu_file = tmp_path / "quote.yaml"
    gpu_file.write_text(yaml.safe_dump({"version": "q", "gpus": [], "offers": [
        {"vendor": "acme", "gpu": "H100-SXM-80GB", "on_demand": "1.50", "source": "our quote", "as_of": "2025-01-02"}]}))  # fmt: skip
    args = ["catalog", "--gpu-file", str(gpu_file), "--profiles-dir", str(tmp_path), "--today", "2026-12-03"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "API prices: " in out and "openai/gpt-4.1-mini" in out
    assert "acme/H100-SXM-80GB" in out and "1.50" in out and "2025-01-02" in out
    assert "measured: 0 in" in out and "published: 1" in out
    assert "estimated Llama-3.1-8B-Instruct on 1x H100-SXM-80GB (bf16)" in out
    assert "GPU offer acme/H100-SXM-80GB is 700 days old" in out


def test_import_litellm_writes_a_price_file_that_prices_new_models(tmp_path: Path) -> None:
    source = tmp_path / "model_prices_and_context_window"  # no suffix: recognised by content
    source.write_bytes(LITELLM_PRICES.read_bytes())
    out = tmp_path / "my-prices.yaml"
    args = ["catalog", "import-litellm", str(source), "--output", str(out), "--as-of", "2026-11-30"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    written = load_price_file(out)
    raw = json.loads(LITELLM_PRICES.read_text())
    assert ("gemini", "gemini-2.5-flash-preview-04-17") in written.prices
    imported = written.prices[("gemini", "gemini-2.5-flash-preview-04-17")]
    entry = raw["gemini/gemini-2.5-flash-preview-04-17"]
    assert imported.rates.input == Decimal(repr(entry["input_cost_per_token"])) * 1_000_000
    assert imported.as_of == date(2026, 11, 30)
    bundled = load_catalog()
    assert all(bundled.price_for(p, m) is None for p, m in written.prices), "bundled prices kept by default"
    merged = load_catalog([str(out)])
    assert merged.price_for("gemini", "gemini-2.5-flash-preview-04-17") is not None
    assert "already in the bundled catalog" in result.output


def test_import_litellm_refuses_a_file_that_is_not_the_price_map(tmp_path: Path) -> None:
    other = tmp_path / "x.json"
    other.write_text('{"version": "v", "models": []}')
    result = CliRunner().invoke(
        cli, ["catalog", "import-litellm", str(other), "-o", str(tmp_path / "o.yaml")]
    )
    assert (
        result.exit_code == 1
        and "not LiteLLM's price map" in result.output
        and "Traceback" not in result.output
    )


def test_bundled_reserved_and_spot_coverage_is_the_table_the_gpu_file_documents() -> None:
    # gpus.yaml's header lists, per GPU, which clouds publish a reserved and a spot figure; this keeps the
    # table and the data from drifting apart (a blank in the table is a figure no vendor page published).
    catalog = load_gpu_catalog()
    current = ("H100-SXM-80GB", "H200-SXM-141GB", "B200-SXM-180GB", "A100-SXM-80GB", "L40S-48GB")
    coverage = {
        gpu: (
            sorted(o.vendor for o in catalog.offers if o.gpu == gpu and o.reserved),
            sorted(o.vendor for o in catalog.offers if o.gpu == gpu and o.spot),
        )
        for gpu in current
    }
    assert coverage == {
        "H100-SXM-80GB": (["aws", "azure", "hyperstack"], ["coreweave", "gcp", "nebius"]),
        "H200-SXM-141GB": (["aws", "azure", "gcp", "hyperstack"], ["coreweave", "nebius"]),
        "B200-SXM-180GB": (["aws", "hyperstack"], ["coreweave", "nebius"]),
        "A100-SXM-80GB": (["aws", "azure", "gcp", "hyperstack"], ["coreweave"]),
        "L40S-48GB": (["aws"], ["nebius"]),
    }
    for offer in catalog.offers:
        if offer.spot is not None:
            assert offer.spot < offer.on_demand, offer.key
        if offer.reserved is not None:
            assert offer.reserved < offer.on_demand, offer.key
