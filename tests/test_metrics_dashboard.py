"""The Grafana dashboard (deploy/grafana/modelyard.json) cannot drift from the exporter: every metric and
every grouping label its PromQL names must be in a real scrape of a gateway that has answered, streamed,
failed and spent against a budget."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from modelyard.app import running_gateway
from modelyard.gateway.auth import hash_key
from tests.conftest import gateway_config
from tests.fakes.common import FakeState

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana" / "modelyard.json"
KEY = "myd-dashboard-test-key-0001"
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
GROUPING = re.compile(r"\bby \(([^)]*)\)")
#: PromQL words the dashboard uses that are not metric names.
PROMQL = {"sum", "max", "min", "by", "rate", "increase", "histogram_quantile", "label_values"}


def expressions(node: Any) -> Iterator[str]:
    """Every PromQL text in the dashboard: panel targets and template variable queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def names_in(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and the grouping labels one expression uses. Every selector in the dashboard is
    written ``name{...}`` (``{}`` when it has no matcher), so a bare word left over is a mistake."""
    if expr.startswith("label_values("):
        metric, label = (part.strip() for part in expr[len("label_values(") : -1].split(","))
        return {metric}, {label}
    labels = {label.strip() for group in GROUPING.findall(expr) for label in group.split(",")}
    metrics = set(SELECTOR.findall(expr))
    rest = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\bby \([^)]*\)", " ", expr)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rest)) - PROMQL - metrics
    assert not words, f"{expr}: {words} (write selectors as name{{...}})"
    return metrics, labels - {"le"}


async def scrape(tmp_path: Path, bases: dict[str, str], states: dict[str, FakeState]) -> dict[str, set[str]]:
    """Each metric name of a real scrape with the labels its samples carry."""
    config = gateway_config(
        tmp_path,
        bases,
        auth={"keys": {"team-a": {"sha256": hash_key(KEY), "tenant": "acme"}}},
        governance={
            "store": {"kind": "sqlite", "path": str(tmp_path / "gov.db")},
            "budgets": [
                {
                    "name": "chat-daily",
                    "scope": "workload",
                    "subject": "chat",
                    "unit": "usd",
                    "limit": "100",
                    "window": {"kind": "day"},
                }
            ],
        },
    )
    headers = {"Authorization": f"Bearer {KEY}"}
    messages = [{"role": "user", "content": "hi"}]
    async with (
        running_gateway(config, "127.0.0.1", 0) as url,
        aiohttp.ClientSession(headers=headers) as session,
    ):
        for body in (
            {"model": "openai-chat", "messages": messages},
            {
                "model": "openai-chat",
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ):
            async with session.post(f"{url}/v1/chat/completions", json=body) as r:
                assert r.status == 200, await r.text()
                await r.read()
        states["anthropic"].scenario = "server_error"
        async with session.post(
            f"{url}/v1/chat/completions", json={"model": "anthropic-chat", "messages": messages}
        ) as r:
            assert r.status >= 500
        async with session.get(f"{url}/metrics") as r:
            text = await r.text()
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def test_the_dashboard_is_grafana_json_with_panels_and_variables() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = [p["title"] for p in dashboard["panels"] if p["type"] != "row"]
    assert len(titles) == len(set(titles)) >= 20
    assert {v["name"] for v in dashboard["templating"]["list"]} == {
        "datasource",
        "workload",
        "model",
        "provider",
    }
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


async def test_every_metric_and_label_the_dashboard_queries_is_exported(
    tmp_path: Path, fakes: tuple[dict[str, str], dict[str, FakeState]]
) -> None:
    exported = await scrape(tmp_path, *fakes)
    exprs = list(expressions(json.loads(DASHBOARD.read_text())))
    assert len(exprs) >= 30
    used: set[str] = set()
    for expr in exprs:
        metrics, labels = names_in(expr)
        assert metrics, expr
        missing = metrics - exported.keys()
        assert not missing, f"{expr}: not in /metrics: {missing}"
        carried = set().union(*(exported[m] for m in metrics))
        assert labels <= carried, f"{expr}: labels {labels - carried} not on {metrics}"
        used |= metrics
    # The dashboard shows each family the issue asks for.
    for family in (
        "modelyard_spend_usd_total",
        "modelyard_unpriced_requests_total",
        "gen_ai_client_token_usage_sum",
        "gen_ai_server_time_to_first_token_seconds_bucket",
        "gen_ai_server_time_per_output_token_seconds_bucket",
        "modelyard_circuit_state",
        "modelyard_budget_remaining",
        "modelyard_ledger_spool_lag_seconds",
    ):
        assert family in used, family
