"""The browser console's routes (issue 18): the page and its files under ``/console``, its JSON under
``/console/api/``. Thin: the figures come from :mod:`modelyard.console.panels`, the files from
:mod:`modelyard.console.assets`.

Open only where the admin API is (``governance.admin_key_env`` set), 404 elsewhere. The page and its files
hold no data and load without a key; every ``/console/api/`` call needs ``Authorization: Bearer <admin
key>``, which the page keeps in the tab's ``sessionStorage`` after its login form (never in a URL, a
cookie or a log). A Content-Security-Policy of ``'self'`` keeps the page from loading anything from
elsewhere.

| path | answers |
|---|---|
| ``GET /console`` | the page |
| ``GET /console/{file}`` | its script, stylesheet and the vendored uPlot |
| ``GET /console/api/series`` | spend, tokens, requests, errors, p50/p95/p99 per time bucket and group |
| ``GET /console/api/decision`` | the latest ``decide`` run's recommendations and triggers |
| ``GET /console/api/governance`` | keys and budgets in their current windows |
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from modelyard.config.schema import Config
from modelyard.console.assets import asset
from modelyard.console.panels import decision_panel, governance_panel, series_query
from modelyard.errors import InternalError, InvalidRequest, ModelyardError, NotFound
from modelyard.gateway.recording import LedgerSink
from modelyard.governance.runtime import Governance
from modelyard.http.admin import Admin
from modelyard.http.answers import error_response
from modelyard.ledger.series import DIMENSIONS, MAX_GROUPS
from modelyard.transport.server import Request, Response

log = logging.getLogger("modelyard.http")

PREFIX = "/console"
API = PREFIX + "/api/"

#: The page may load its own files and call its own origin, nothing else; no framing (clickjacking).
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class Console:
    """The ``/console`` routes of one gateway process."""

    def __init__(
        self, admin: Admin, config: Config, ledger: LedgerSink, governance: Governance | None
    ) -> None:
        self._admin = admin
        self._config = config
        self._ledger = ledger
        self._governance = governance
        self._decision = Path(config.console.decision_report)

    @staticmethod
    def serves(path: str) -> bool:
        return path == PREFIX or path.startswith(PREFIX + "/")

    async def handle(self, request: Request) -> Response:
        try:
            if not self._admin.enabled:
                raise NotFound(
                    "no console here: it opens with the admin API (set governance.admin_key_env to an"
                    " environment variable holding the admin key, and start the gateway with it set)",
                    code="unknown_url",
                )
            if request.method != "GET":
                error = InvalidRequest(f"method {request.method} is not allowed on {request.path}; use GET")
                error.code, error.status = "method_not_allowed", 405
                raise error
            if request.path.startswith(API):
                self._admin.authorize(request)
                payload = await self._api(request.path.removeprefix(API), request.query)
                return Response(orjson.dumps(payload), headers=_API_HEADERS)
            return self._file(request.path.removeprefix(PREFIX).strip("/") or "index.html")
        except ModelyardError as error:
            return error_response(error)
        except Exception as exc:  # a store away or a bug: logged here, an OpenAI-shaped 503 there
            log.warning("console: %s failed (%s: %s)", request.path, type(exc).__name__, exc)
            unavailable = InternalError(
                "the console's data cannot be read right now (the gateway's log says why); retry later",
                code="console_unavailable",
            )
            unavailable.status = 503
            return error_response(unavailable)

    async def _api(self, name: str, params: dict[str, str]) -> dict[str, Any]:
        if name == "series":
            query = series_query(params, time.time())
            series = await self._ledger.read(lambda store: store.series(query))
            return series.to_json()
        panels: dict[str, Callable[[], dict[str, Any]]] = {
            "decision": partial(decision_panel, self._decision),
            "governance": partial(governance_panel, self._config, self._governance),
        }
        read = panels.get(name)
        if read is None:
            raise NotFound(f"unknown console path {API}{name}", code="unknown_url")
        return await asyncio.to_thread(read)

    @staticmethod
    def _file(name: str) -> Response:
        found = asset(name)
        if found is None:
            raise NotFound(f"unknown console path {PREFIX}/{name}", code="unknown_url")
        body, content_type = found
        return Response(body, content_type=content_type, headers=_PAGE_HEADERS)


def console_paths() -> dict[str, Any]:
    """The OpenAPI paths of the console (merged into the document by :mod:`modelyard.http.openapi`)."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    closed = {"404": {"description": "No console: governance.admin_key_env is unset or empty", **error}}
    keyed = {
        "401": {"description": "Missing or wrong admin key (Authorization: Bearer <admin key>)", **error},
        **closed,
        "503": {"description": "The ledger, budget or key store cannot be read right now", **error},
    }

    def api(summary: str, parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        ok = {"200": {"description": "JSON", "content": {"application/json": {"schema": {"type": "object"}}}}}
        if not parameters:
            return {"get": {"summary": summary, "responses": {**ok, **keyed}}}
        # Every query parameter can be refused (a window past 366 days, too many buckets): say so.
        refused = {"400": {"description": "A query parameter out of range (param names it)", **error}}
        responses = {**ok, **keyed, **refused}
        return {"get": {"summary": summary, "responses": responses, "parameters": parameters}}

    def query(name: str, kind: str, description: str, **schema: Any) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": False,
            "description": description,
            "schema": {"type": kind, **schema},
        }

    series_parameters = [
        query("window", "string", "The last hour, day, week or month (default 24h)", enum=["1h", "24h", "7d", "30d"]),
        query("since", "integer", "Unix seconds, inclusive (with until, instead of window)"),
        query("until", "integer", "Unix seconds, exclusive (default: now)"),
        query("step", "integer", "Seconds per bucket (default: about 72 buckets); at least 60, at most 240 buckets"),
        query("by", "string", "Group per workload, tenant, model or provider", enum=list(DIMENSIONS)),
        query("groups", "integer", "How many groups to draw, the largest by requests", minimum=1, maximum=MAX_GROUPS),
    ]  # fmt: skip
    page = {"200": {"description": "The page (text/html)"}, **closed}
    return {
        PREFIX: {"get": {"summary": "Console: the page (its data needs the admin key)", "responses": page}},
        PREFIX + "/{file}": {
            "get": {
                "summary": "Console: its script, stylesheet and the vendored uPlot (no CDN)",
                "parameters": [
                    {"name": "file", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {**page, "404": {"description": "Unknown file, or no console", **error}},
            }
        },
        API + "series": api(
            "Console: spend, tokens, requests, errors and latency p50/p95/p99 per time bucket and per group"
            " (the largest groups by requests; other_groups counts the rest), from the ledger",
            series_parameters,
        ),
        API + "decision": api(
            "Console: the latest `modelyard decide` run's recommendation and triggers per workload"
            " (console.decision_report); available: false with how to produce one when there is none"
        ),
        API + "governance": api(
            "Console: runtime and config keys (never secrets) and budgets in their current windows"
        ),
    }
