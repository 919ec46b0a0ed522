"""The browser console (``/console``) on the real server over loopback, with a seeded ledger: its JSON
behind the admin key (OpenAI-shaped errors, bounded queries), and the page in real headless Chromium at
1280x800 and at a phone's 390x844: no console errors, no failed or external requests, charts drawn with
the seeded rows' points, the decision and budget panels filled. Screenshots are written to the test's
tmp dir (``console-desktop.png``, ``console-phone.png``)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from click.testing import CliRunner

from modelyard.cli.decide import decide_command
from modelyard.http.openapi import openapi_document
from modelyard.ledger.schema import RequestRow
from modelyard.ledger.store import open_store
from tests.chromium_support import CHROMIUM, chromium_page
from tests.fakes import flaky
from tests.ledger_support import request
from tests.test_gateway_resilience import fleet, models

ADMIN = "console-admin-key-for-tests"
MODELS = ("gpt-x", "claude-y", "llama-z")
TENANTS = ("acme", "globex", None)


@pytest.fixture(scope="module")
def decision(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``decide`` run's report (the bundled example)."""
    out = tmp_path_factory.mktemp("decide")
    result = CliRunner().invoke(decide_command, ["--out", str(out), "--today", "2026-11-23"])
    assert result.exit_code == 0, result.output
    return out / "decision.json"


def seeded_rows(now: float) -> list[RequestRow]:
    """300 requests over the last 20 hours: three models, two tenants and anonymous calls, some failed,
    some unpriced."""
    rng = random.Random(18)
    rows = []
    for i in range(300):
        failed = rng.random() < 0.08
        priced = rng.random() > 0.1
        rows.append(
            request(
                i,
                request_id=f"console-{i}",
                ts=now - rng.uniform(60, 20 * 3600),
                model=MODELS[i % 3],
                provider="anthropic" if i % 3 == 1 else "openai",
                tenant=TENANTS[i % 3 if i % 7 else 2],
                workload=rng.choice(["chat", "extraction"]),
                status=502 if failed else 200,
                error_kind="upstream_error" if failed else None,
                latency_ms=rng.lognormvariate(6 if i % 3 == 1 else 5, 0.5),
                cost_pico_usd=rng.randrange(10**8, 10**10) if priced else None,
                priced=priced,
            )
        )
    return rows


@asynccontextmanager
async def console_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decision: Path | None, *, admin: bool = True
) -> AsyncIterator[str]:
    governance: dict[str, Any] = {
        "store": {"kind": "sqlite", "path": str(tmp_path / "gov.db")},
        "budgets": [
            {"name": "team-daily", "scope": "tenant", "unit": "usd", "limit": "25", "window": {"kind": "day"}},
            {"name": "chat-month", "scope": "workload", "subject": "chat", "unit": "tokens", "limit": 5_000_000,
             "window": {"kind": "month"}},
        ],
    }  # fmt: skip
    if admin:
        monkeypatch.setenv("MODELYARD_ADMIN_KEY", ADMIN)
        governance["admin_key_env"] = "MODELYARD_ADMIN_KEY"
    config = {
        "models": models(**{name: "up" for name in MODELS}),
        "workloads": {"chat": {}, "extraction": {}},
        "governance": governance,
        "console": {"decision_report": str(decision or tmp_path / "no-such" / "decision.json")},
    }
    store = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        store.insert(seeded_rows(time.time()), [])
    finally:
        store.close()
    async with fleet(tmp_path, monkeypatch, {"up": flaky.FaultPlan()}, **config) as (gateway, _):
        yield gateway.url


async def get(session: aiohttp.ClientSession, url: str, key: str | None = ADMIN) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with session.get(url, headers=headers) as r:
        return r.status, orjson.loads(await r.read())


async def test_the_console_api_needs_the_admin_key_and_bounds_every_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with console_gateway(tmp_path, monkeypatch, None) as url, aiohttp.ClientSession() as s:
        anonymous = await get(s, f"{url}/console/api/series", key=None)
        wrong = await get(s, f"{url}/console/api/governance", key="not-the-admin-key")
        by_tenant = await get(s, f"{url}/console/api/series?window=24h&by=tenant")
        everything = await get(s, f"{url}/console/api/series?window=24h")
        too_many = await get(s, f"{url}/console/api/series?window=30d&step=60")
        bad_by = await get(s, f"{url}/console/api/series?by=api_key_id")
        not_int = await get(s, f"{url}/console/api/series?groups=lots")
        no_report = await get(s, f"{url}/console/api/decision")
        unknown = await get(s, f"{url}/console/api/everything")
        async with s.post(f"{url}/console/api/series", headers={"Authorization": f"Bearer {ADMIN}"}) as r:
            posted = r.status, orjson.loads(await r.read())
        async with s.get(f"{url}/console") as r:
            page = r.status, r.headers.get("Content-Security-Policy", ""), await r.text()
        async with s.get(f"{url}/console/panels.py") as r:
            not_served = r.status  # a file of the package, but not one of the page's
    for status, body in (anonymous, wrong):
        assert status == 401 and body["error"]["type"] and "admin key" in body["error"]["message"]
    assert by_tenant[0] == 200
    series = by_tenant[1]
    assert {g["name"] for g in series["groups"]} == set(TENANTS)
    assert sum(g["totals"]["requests"] for g in series["groups"]) == 300
    assert everything[1]["groups"][0]["totals"]["requests"] == 300
    assert all(
        p["latency_p50_ms"] <= p["latency_p95_ms"] <= p["latency_p99_ms"]
        for p in everything[1]["groups"][0]["points"]
    )
    assert too_many[0] == 400 and too_many[1]["error"]["param"] == "step"
    assert "400" in openapi_document()["paths"]["/console/api/series"]["get"]["responses"], "documented"
    assert bad_by[0] == 400 and bad_by[1]["error"]["param"] == "by"
    assert not_int[0] == 400 and not_int[1]["error"]["param"] == "groups"
    assert no_report[0] == 200 and no_report[1]["available"] is False
    assert "modelyard decide" in no_report[1]["how"]
    assert unknown[0] == 404 and unknown[1]["error"]["code"] == "unknown_url"
    assert posted[0] == 405 and posted[1]["error"]["code"] == "method_not_allowed"
    status, csp, html = page
    assert status == 200 and "script-src 'self'" in csp and "<title>modelyard console</title>" in html
    assert ADMIN not in html
    assert not_served == 404


async def test_without_an_admin_key_there_is_no_console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELYARD_ADMIN_KEY", raising=False)
    async with console_gateway(tmp_path, monkeypatch, None, admin=False) as url, aiohttp.ClientSession() as s:
        page = await get(s, f"{url}/console", key=None)
        api = await get(s, f"{url}/console/api/series")
    for status, body in (page, api):
        assert status == 404 and "governance.admin_key_env" in body["error"]["message"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
async def test_the_console_draws_the_ledger_in_chromium_on_a_desktop_and_a_phone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decision: Path
) -> None:
    async with console_gateway(tmp_path, monkeypatch, decision) as url:
        async with aiohttp.ClientSession() as s:
            created = await s.post(
                f"{url}/admin/keys",
                headers={"Authorization": f"Bearer {ADMIN}"},
                data=orjson.dumps({"id": "team-a", "tenant": "acme", "limits": {"usd_per_day": "5"}}),
            )
            assert created.status == 201
            _, expected = await get(s, f"{url}/console/api/series?window=24h&by=model&groups=8")
        seen = await asyncio.wait_for(_browse(url, tmp_path), timeout=120)

    assert seen["errors"] == [], seen["errors"]
    assert seen["failed"] == [], seen["failed"]
    assert [u for u in seen["requested"] if not u.startswith(url + "/")] == [], "no external request"
    # The first load, before signing in, asked for nothing but the page, its files and one refused API
    # call; no request carries the key in its URL.
    assert not any(ADMIN in u for u in seen["requested"])
    for size in ("desktop", "phone"):
        view = seen[size]
        assert view["canvases"] >= 5, view
        # Every (model, bucket) cell of the seeded rows is a point of the requests chart.
        cells = sum(len(g["points"]) for g in expected["groups"])
        assert view["points"]["chart-requests"] == cells > 20
        assert all(view["points"][c] > 0 for c in ("chart-spend", "chart-tokens", "chart-latency"))
        assert view["table_rows"] == len(MODELS)
        assert view["workloads"] == len(orjson.loads(decision.read_bytes())["workloads"])
        assert view["budgets"] >= 3  # team-daily for acme and globex, chat-month, team-a's own
        assert view["overflow"] <= view["width"], "nothing wider than the screen"
    assert seen["login_shown_first"]


async def _browse(url: str, tmp_path: Path) -> dict[str, Any]:
    profile = tmp_path / "chromium-profile"
    async with chromium_page(profile) as page:
        await page.call(
            "Emulation.setDeviceMetricsOverride", width=1280, height=800, deviceScaleFactor=1, mobile=False
        )
        await page.navigate(f"{url}/console")
        await page.wait_until("!document.getElementById('login').hidden")
        login_shown_first = await page.evaluate("document.getElementById('app').hidden")
        # Sign in as a person would: type the key into the form and submit it.
        await page.evaluate(f"document.getElementById('key').value = {orjson.dumps(ADMIN).decode()}")
        await page.evaluate("document.getElementById('login-form').requestSubmit()")
        await page.wait_until("document.body.dataset.loaded === 'true'")
        desktop = await _look(page, 1280)
        (tmp_path / "console-desktop.png").write_bytes(await page.screenshot())
        (tmp_path / "console-desktop-full.png").write_bytes(await page.screenshot(full_page=True))
        await page.call(
            "Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True
        )
        await page.evaluate("document.body.dataset.loaded = 'false'")
        await page.evaluate("document.getElementById('refresh').click()")
        await page.wait_until("document.body.dataset.loaded === 'true'")
        phone = await _look(page, 390)
        (tmp_path / "console-phone.png").write_bytes(await page.screenshot())
        (tmp_path / "console-phone-full.png").write_bytes(await page.screenshot(full_page=True))
        # The only failed request allowed is none: the page asked for no data before the key was given.
        return {
            "desktop": desktop,
            "phone": phone,
            "login_shown_first": login_shown_first,
            "errors": page.errors(),
            "failed": page.failed(),
            "requested": page.requested(),
        }


async def _look(page: Any, width: int) -> dict[str, Any]:
    return {
        "width": width,
        "canvases": await page.evaluate("document.querySelectorAll('.chart canvas').length"),
        "points": await page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('.chart')].map(c => [c.id, Number(c.dataset.points)]))"
        ),
        "table_rows": await page.evaluate("document.querySelectorAll('#groups tbody tr').length"),
        "workloads": await page.evaluate("document.querySelectorAll('#decision .workload').length"),
        "budgets": await page.evaluate("document.querySelectorAll('#budgets tbody tr').length"),
        "overflow": await page.evaluate("document.documentElement.scrollWidth"),
    }
