"""Rerank metering (issue 17): search units (Cohere) and tokens (Voyage, Jina) recorded in the ledger,
priced from the catalog when it knows the price (per token or per 1,000 search units), unpriced otherwise,
and counted by budgets — reserved before the call, settled to the row after it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from modelyard.catalog.litellm import parse_litellm_prices
from modelyard.catalog.prices import load_price_file
from modelyard.config import parse_config
from modelyard.gateway.budgeting import prompt_texts, search_units_bound
from modelyard.governance.config import GovernanceConfig
from modelyard.governance.estimate import estimate
from modelyard.governance.model import Subject
from modelyard.ledger import spool
from modelyard.ledger.schema import ATTEMPT_COLUMNS, REQUEST_COLUMNS
from modelyard.ledger.store import open_store
from modelyard.providers import cohere
from modelyard.providers.base import Usage
from tests.conftest import FAKE_KEY, GatewayUnderTest
from tests.fakes import rerank_vendors
from tests.fakes.common import FakeState, serve_app
from tests.ledger_support import attempt, ledger_before, pg_url, request, store_url
from tests.test_gateway_budgets import budget_status

__all__ = ["pg_url", "store_url"]  # fixtures used by name

PRICES = """
version: test
models:
  - {provider: cohere, model: rerank-v4.0-fast, input: "0", output: "0", per_1k_search_units: "2.00",
     source: test, as_of: 2026-12-03}
"""
#: $2.00 per 1,000 search units, in pico-USD per unit.
UNIT_PICO = 2 * 10**9


# -- Cohere's search-unit rule, from a table of cases ------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "documents", "context", "units"),
    [
        (10, [50], 4096, 1),  # one query, one short document
        (10, [50] * 100, 4096, 1),  # up to 100 documents: one unit
        (10, [50] * 101, 4096, 2),  # the 101st starts a second
        (10, [50] * 250, 4096, 3),
        (100, [10_000], 4096, 1),  # one long document: 3 chunks, still under 100
        (100, [10_000] * 40, 4096, 2),  # 40 documents of 3 chunks each: 120 chunks
        (100, [10_000] * 40, 32_768, 1),  # Rerank 4's context holds each in one chunk
        (4000, [100] * 50, 4096, 1),  # a long query still scores each document once
        (9000, [4000] * 60, 4096, 2),  # Cohere reads 2,048 query tokens at most: 2 chunks a document
    ],
)
def test_search_units_follow_coheres_rule(query: int, documents: list[int], context: int, units: int) -> None:
    assert cohere.search_units(query, documents, context) == units


def test_reported_search_units_win_over_the_estimate() -> None:
    sent = {"model": "rerank-v4.0-fast", "query": "q", "documents": ["d"] * 150}
    assert cohere.billed_search_units({"meta": {"billed_units": {"search_units": 7}}}, sent) == 7
    assert cohere.billed_search_units({"meta": {}}, sent) == 2, "none reported: Cohere's rule, estimated"
    answer = cohere.rerank_answer({"results": [], "meta": {"billed_units": {"search_units": 3}}}, sent)
    assert answer["usage"] == {"search_units": 3}


# -- prices per search unit --------------------------------------------------------------------------------


def test_a_price_file_prices_search_units_per_thousand(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(PRICES, encoding="utf-8")
    price = load_price_file(path).price_for("cohere", "rerank-v4.0-fast")
    assert price is not None and price.search_unit == Decimal("0.002")
    assert price.cost_pico(Usage(input_tokens=900, search_units=3, estimated=True)) == 3 * UNIT_PICO
    assert price.cost(Usage(search_units=3)) == Decimal("0.006")
    assert price.cost_pico(Usage(input_tokens=900)) == 0, "searches not reported are not invented here"


def test_litellms_price_per_query_is_a_search_unit_price() -> None:
    raw = {
        "cohere/rerank-v3.5": {
            "litellm_provider": "cohere",
            "mode": "rerank",
            "input_cost_per_token": 0.0,
            "input_cost_per_query": 0.002,
        }
    }
    price = parse_litellm_prices(raw, source="litellm.json").price_for("cohere", "rerank-v3.5")
    assert price is not None and price.search_unit == Decimal("0.002")
    assert price.cost_pico(Usage(search_units=2)) == 2 * UNIT_PICO


def test_import_litellm_keeps_rerank_prices_per_search_unit_and_per_token(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from modelyard.cli.main import cli

    source = tmp_path / "litellm.json"
    source.write_text(
        orjson.dumps(
            {
                "cohere/rerank-v3.5": {
                    "litellm_provider": "cohere",
                    "mode": "rerank",
                    "input_cost_per_token": 0.0,
                    "input_cost_per_query": 0.002,
                },
                "jina_ai/jina-reranker-v2-base-multilingual": {
                    "litellm_provider": "jina_ai",
                    "mode": "rerank",
                    "input_cost_per_token": 1.8e-08,
                },
            }
        ).decode()
    )
    out = tmp_path / "prices.yaml"
    runner = CliRunner()
    result = runner.invoke(
        cli, ["catalog", "import-litellm", str(source), "-o", str(out), "--as-of", "2026-12-03"]
    )
    assert result.exit_code == 0, result.output
    written = load_price_file(out)
    cohere_price = written.price_for("cohere", "rerank-v3.5")
    assert cohere_price is not None and cohere_price.search_unit == Decimal("0.002"), "kept in the file"
    jina_price = written.price_for("jina", "jina-reranker-v2-base-multilingual")
    assert jina_price is not None and jina_price.rates.input == Decimal("0.018"), "LiteLLM's jina_ai is jina"
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    listed = runner.invoke(cli, ["catalog", "--price-file", str(out), "--profiles-dir", str(profiles)])
    assert listed.exit_code == 0, listed.output
    (line,) = [line for line in listed.output.splitlines() if "cohere/rerank-v3.5" in line]
    assert line.endswith("(+ 2.000 per 1K search units)"), line


def test_the_bundled_catalog_prices_voyage_per_token_and_leaves_cohere_unpriced() -> None:
    from modelyard.catalog.prices import load_catalog

    catalog = load_catalog(())
    voyage = catalog.price_for("voyage", "rerank-2.5")
    assert voyage is not None and voyage.cost_pico(Usage(input_tokens=1_000_000)) == 5 * 10**10  # $0.05
    assert catalog.price_for("cohere", "rerank-v4.0-fast") is None, "no price we could cite: unpriced"


# -- budgets: the reservation and its counts -----------------------------------------------------------------


def test_a_rerank_reservation_counts_the_query_beside_every_document_and_its_search_units(
    tmp_path: Path,
) -> None:
    body = {"input": ["gpu prices", *["a document"] * 150]}
    assert prompt_texts(body, "rerank") == ["gpu prices"] * 150 + ["a document"] * 150
    assert search_units_bound(body, "rerank") == 2
    assert search_units_bound({"messages": []}, "chat") == 0
    path = tmp_path / "prices.yaml"
    path.write_text(PRICES, encoding="utf-8")
    price = load_price_file(path).price_for("cohere", "rerank-v4.0-fast")
    held = estimate(
        GovernanceConfig(),
        price,
        model="m",
        workload=None,
        prompt_tokens=10,
        max_tokens=0,
        usd_budgets_apply=True,
        search_units=2,
    )
    assert held.cost_pico == 2 * UNIT_PICO


@asynccontextmanager
async def rerank_fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, governance: dict[str, Any]
) -> AsyncIterator[GatewayUnderTest]:
    from modelyard.app import running_gateway

    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES, encoding="utf-8")
    upstream = {"cohere": "rerank-v4.0-fast", "voyage": "rerank-2.5"}
    async with AsyncExitStack() as stack:
        providers, states = {}, {}
        for kind in upstream:
            states[kind] = FakeState()
            url = await stack.enter_async_context(serve_app(rerank_vendors.create_app(kind, states[kind])))
            monkeypatch.setenv(f"FAKE_{kind.upper()}_KEY", FAKE_KEY)
            providers[kind] = {
                "kind": kind,
                "base_url": url + rerank_vendors.VENDORS[kind][2],
                "api_key_env": f"FAKE_{kind.upper()}_KEY",
            }
        raw = {
            "providers": providers,
            "models": {
                kind: {"provider": kind, "upstream_model": model, "kind": "rerank"}
                for kind, model in upstream.items()
            },
            "workloads": {"rag": {}},
            "server": {"default_workload": "rag"},
            "catalog": {"price_files": [str(prices)]},
            "governance": {"store": {"kind": "sqlite", "path": str(tmp_path / "gov.db")}, **governance},
            "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}", "flush_interval_ms": 20},
        }
        config = parse_config(raw)
        async with running_gateway(config, "127.0.0.1", 0) as url:
            yield GatewayUnderTest(url=url, config=config, db_path=tmp_path / "ledger.db", states=states)


async def rerank(url: str, model: str, documents: int) -> tuple[int, Any]:
    body = {"model": model, "query": "gpu prices", "documents": [f"gpu prices {i}" for i in range(documents)]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/v1/rerank", data=orjson.dumps(body)) as r,
    ):
        return r.status, orjson.loads(await r.read())


def _budget(name: str, unit: str, limit: Any) -> dict[str, Any]:
    return {
        "name": name,
        "scope": "workload",
        "subject": "rag",
        "unit": unit,
        "limit": limit,
        "window": {"kind": "day"},
    }


async def test_rerank_search_units_and_tokens_reach_the_ledger_and_the_budgets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = {"budgets": [_budget("usd", "usd", "5"), _budget("tokens", "tokens", 1_000_000)]}
    async with rerank_fleet(tmp_path, monkeypatch, section) as gateway:
        status, answer = await rerank(gateway.url, "cohere", 150)
        assert status == 200 and answer["usage"] == {"search_units": 2}, answer
        status, answer = await rerank(gateway.url, "voyage", 3)
        assert status == 200 and answer["usage"] == {"total_tokens": 12}, answer
        rows = await gateway.wait_rows(2)
        counters = budget_status(gateway, Subject(None, None, "rag"))
        with sqlite3.connect(gateway.db_path) as db:
            attempts = db.execute("SELECT provider, search_units, cost_pico_usd FROM attempts").fetchall()
    by_model = {row["model"]: row for row in rows}
    cohere_row, voyage_row = by_model["cohere"], by_model["voyage"]
    assert cohere_row["search_units"] == 2 and cohere_row["priced"] == 1
    assert cohere_row["cost_pico_usd"] == 2 * UNIT_PICO, "two search units at $2.00 per 1,000"
    assert voyage_row["search_units"] == 0 and voyage_row["cost_pico_usd"] == 12 * 50_000
    assert sorted(attempts) == [("cohere", 2, 2 * UNIT_PICO), ("voyage", 0, 12 * 50_000)]
    assert counters["usd"].spent == 2 * UNIT_PICO + 12 * 50_000, "budgets count rerank cost"
    assert counters["tokens"].spent == cohere_row["input_tokens"] + 12, "and rerank tokens"
    assert all(c.reserved == 0 for c in counters.values()), "a reservation was left behind"


async def test_a_usd_budget_refuses_a_rerank_whose_search_units_would_pass_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # $0.003: the first search ($0.002) fits; the second's reservation of one more unit would pass it.
    section = {"budgets": [_budget("usd", "usd", "0.003")]}
    async with rerank_fleet(tmp_path, monkeypatch, section) as gateway:
        first, _ = await rerank(gateway.url, "cohere", 5)
        second, answer = await rerank(gateway.url, "cohere", 5)
        rows = await gateway.wait_rows(2)
    assert (first, second) == (200, 429), answer
    assert answer["error"]["code"] == "budget_exceeded"
    assert len(gateway.states["cohere"].received) == 1, "the refused search never went upstream"
    assert sorted(r["status"] for r in rows) == [200, 429]


# -- the ledger column: migration 0007 and older spool lines --------------------------------------------------

V4_REQUEST = REQUEST_COLUMNS[: REQUEST_COLUMNS.index("trace_id") + 1]
V4_ATTEMPT = ATTEMPT_COLUMNS[: ATTEMPT_COLUMNS.index("purpose") + 1]


def test_search_units_are_stored_and_read_back(store_url: str) -> None:
    store = open_store(store_url)
    store.insert([request(1, search_units=3), request(2)], [attempt(1, search_units=3), attempt(2)])
    by_id = {r.request_id: r for r in store.query()}
    assert (by_id["r1"].search_units, by_id["r2"].search_units) == (3, 0)
    tried = {a.request_id: a.search_units for a in store.query_attempts()}
    assert tried == {"r1": 3, "r2": 0}
    store.close()


def test_0007_adds_search_units_to_a_ledger_holding_rows(store_url: str) -> None:
    ledger_before(store_url, 6, V4_REQUEST, request(1))
    store = open_store(store_url)  # applies 0007 to the row already there
    assert 7 in store.applied_versions()  # type: ignore[attr-defined]
    (row,) = store.query()
    assert (row.request_id, row.search_units) == ("r1", 0)
    store.close()


def test_a_spool_line_of_schema_4_replays_with_no_search_units() -> None:
    row, tried = request(1), attempt(1)
    line = orjson.dumps([4, [getattr(row, c) for c in V4_REQUEST], [[getattr(tried, c) for c in V4_ATTEMPT]]])
    _version, values, attempts = spool.decode_values(line)
    assert values is not None
    assert dict(zip(REQUEST_COLUMNS, values, strict=True))["search_units"] == 0
    assert dict(zip(ATTEMPT_COLUMNS, attempts[0], strict=True))["search_units"] == 0
