"""The report opened in headless Chromium: it renders, charts are present, no console errors, no network.

Chromium is driven over the DevTools protocol (a websocket, through aiohttp). Skipped when Debian's
``chromium`` is not installed (``make test`` installs it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from modelyard.cli.decide import decide_command

CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(decide_command, ["--out", str(out), "--today", "2026-11-23"])
    assert result.exit_code == 0, result.output
    return out


def test_json_document_has_documented_shape(report: Path) -> None:
    doc = json.loads((report / "decision.json").read_text())
    assert doc["schema_version"] == 1
    assert set(doc["portfolio"]["assignment"]) == {"extraction", "support-chat", "contracts", "experiment"}
    wl = next(w for w in doc["workloads"] if w["name"] == "extraction")
    chosen = next(o for o in wl["options"] if o["key"] == wl["recommendation"]["option"])
    months = chosen["tco"]["months"]
    assert len(months) == 36
    buckets = ("direct", "hosting", "platform", "operations", "risk")
    for m in months:  # the documented identity, to the cent
        total = sum(float(m[b]) for b in buckets) - float(m["reuse"])
        assert abs(total - float(m["total"])) < 0.011
    assert chosen["throughput_source"] in ("measured", "published", "estimated")
    assert {t["name"] for t in wl["triggers"]} >= {
        "volume past break-even",
        "monthly API spend over threshold",
    }
    contracts = next(w for w in doc["workloads"] if w["name"] == "contracts")
    assert any(t["fired"] and t["name"].startswith("restricted data") for t in contracts["triggers"])


def test_report_has_no_external_reference(report: Path) -> None:
    html = (report / "decision.html").read_text()
    assert "<script" not in html
    for bad in ("http://", "https://", "//cdn", "@import"):
        assert bad not in html.replace('xmlns="http://www.w3.org/2000/svg"', ""), bad
    # Charts reference only ids inside the page: clip paths (url(#...)) and glyphs (href="#...").
    assert not re.search(r"url\((?!#)|href=\"(?!#)", html)


async def _cdp(url: str) -> dict[str, Any]:
    """Open ``url`` in a fresh headless Chromium; collect errors, requests, chart count and a screenshot."""
    assert CHROMIUM is not None
    profile = Path(url.removeprefix("file://")).parent / "chromium-profile"
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        port = port_file.read_text().split()[0]
        async with aiohttp.ClientSession() as http:
            targets = await (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
            page = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                return await _drive(ws, url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _drive(ws: aiohttp.ClientWebSocketResponse, url: str) -> dict[str, Any]:
    seq = 0
    events: list[dict[str, Any]] = []

    async def call(method: str, **params: Any) -> dict[str, Any]:
        nonlocal seq
        seq += 1
        await ws.send_json({"id": seq, "method": method, "params": params})
        while True:
            msg = json.loads((await ws.receive()).data)
            if msg.get("id") == seq:
                return dict(msg.get("result", {}))
            events.append(msg)

    for domain in ("Runtime", "Log", "Network", "Page"):
        await call(f"{domain}.enable")
    await call("Page.navigate", url=url)
    while not any(e.get("method") == "Page.loadEventFired" for e in events):
        events.append(json.loads((await ws.receive()).data))
    charts = await call("Runtime.evaluate", expression="document.querySelectorAll('svg.chart').length")
    title = await call("Runtime.evaluate", expression="document.title")
    shot = await call("Page.captureScreenshot", format="png")
    return {"events": events, "charts": charts["result"]["value"], "title": title["result"]["value"],
            "png": base64.b64decode(shot["data"])}  # fmt: skip


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
async def test_report_renders_offline_in_chromium(report: Path) -> None:
    url = f"file://{report / 'decision.html'}"
    seen = await asyncio.wait_for(_cdp(url), timeout=60)
    errors = [
        e for e in seen["events"]
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]  # fmt: skip
    requests = [
        e["params"]["request"]["url"]
        for e in seen["events"]
        if e.get("method") == "Network.requestWillBeSent" and e["params"]["request"]["url"] != url
    ]
    assert errors == []
    assert requests == []
    assert seen["title"].startswith("modelyard decision")
    # Per workload: crossover, 12- and 36-month stacks, tornado, scorecard, latency — minus those with no API.
    assert seen["charts"] >= 4 * 4
    assert seen["png"][:8] == b"\x89PNG\r\n\x1a\n" and len(seen["png"]) > 20_000
    (report / "screenshot.png").write_bytes(seen["png"])
