"""Headless Chromium driven over the DevTools protocol (a websocket, through aiohttp), for the tests of the
pages modelyard writes (the decision report) and serves (the console).

``chromium_page`` starts Debian's ``chromium`` with a fresh profile and yields one :class:`Page` with the
Runtime, Log, Network and Page domains on: every event is kept, so a test can assert there were no console
errors, no failed and no external requests. Tests skip when ``CHROMIUM`` is None (``make test`` installs it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


class Page:
    """One tab: DevTools calls, and every event seen while waiting for their answers."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._seq = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._seq += 1
        await self.ws.send_json({"id": self._seq, "method": method, "params": params})
        while True:
            msg = json.loads((await self.ws.receive()).data)
            if msg.get("id") == self._seq:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))
            self.events.append(msg)

    async def navigate(self, url: str) -> None:
        """Open ``url`` and wait for its load event."""
        self.events.clear()
        await self.call("Page.navigate", url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(json.loads((await self.ws.receive()).data))

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable values only)."""
        answer = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def wait_until(self, expression: str, timeout: float = 20.0) -> None:
        """Poll ``expression`` until it is true (events keep being collected meanwhile)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await self.evaluate(expression):
            if loop.time() > deadline:
                raise TimeoutError(f"still false after {timeout}s: {expression}")
            await asyncio.sleep(0.1)

    async def screenshot(self, *, full_page: bool = False) -> bytes:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = (await self.call("Page.getLayoutMetrics"))["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            params["captureBeyondViewport"] = True
        return base64.b64decode((await self.call("Page.captureScreenshot", **params))["data"])

    def errors(self) -> list[dict[str, Any]]:
        """Uncaught exceptions, console.error calls and error log entries (CSP violations among them)."""
        return [
            e for e in self.events
            if e.get("method") == "Runtime.exceptionThrown"
            or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
            or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
        ]  # fmt: skip

    def requested(self) -> list[str]:
        """Every URL the page asked for, in order."""
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    def failed(self) -> list[dict[str, Any]]:
        """Requests that failed outright (refused, blocked) or were answered with HTTP ≥ 400."""
        failed = [e["params"] for e in self.events if e.get("method") == "Network.loadingFailed"]
        failed += [
            e["params"]["response"]
            for e in self.events
            if e.get("method") == "Network.responseReceived" and e["params"]["response"]["status"] >= 400
        ]
        return failed


@asynccontextmanager
async def chromium_page(profile: Path) -> AsyncIterator[Page]:
    """A fresh headless Chromium (its profile in ``profile``), and its one tab, ready to navigate."""
    assert CHROMIUM is not None
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
            target = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                for domain in ("Runtime", "Log", "Network", "Page"):
                    await page.call(f"{domain}.enable")
                yield page
    finally:
        proc.terminate()
        proc.wait(timeout=10)
