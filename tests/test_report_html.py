"""The report opened in headless Chromium: it renders, charts are present, no console errors, no network.

Chromium is driven over the DevTools protocol (tests/chromium_support.py). Skipped when Debian's
``chromium`` is not installed (``make test`` installs it).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from modelyard.cli.decide import decide_command
from tests.chromium_support import CHROMIUM, chromium_page


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


async def _open(url: str) -> dict[str, Any]:
    """Open ``url`` in a fresh headless Chromium; collect errors, requests, chart count and a screenshot."""
    profile = Path(url.removeprefix("file://")).parent / "chromium-profile"
    async with chromium_page(profile) as page:
        await page.navigate(url)
        seen = {
            "charts": await page.evaluate("document.querySelectorAll('svg.chart').length"),
            "title": await page.evaluate("document.title"),
            "png": await page.screenshot(),
        }
        return {**seen, "errors": page.errors(), "requests": [u for u in page.requested() if u != url]}


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
async def test_report_renders_offline_in_chromium(report: Path) -> None:
    url = f"file://{report / 'decision.html'}"
    seen = await asyncio.wait_for(_open(url), timeout=60)
    assert seen["errors"] == []
    assert seen["requests"] == []
    assert seen["title"].startswith("modelyard decision")
    # Per workload: crossover, 12- and 36-month stacks, tornado, scorecard, latency — minus those with no API.
    assert seen["charts"] >= 4 * 4
    assert seen["png"][:8] == b"\x89PNG\r\n\x1a\n" and len(seen["png"]) > 20_000
    (report / "screenshot.png").write_bytes(seen["png"])
