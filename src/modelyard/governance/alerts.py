"""Budget alerts: each threshold (e.g. 50/80/100 % of a limit) fires once per window, to the log and to
a webhook, whichever process crosses it first (the store's ``claim_alert`` decides, across processes).

The webhook gets one JSON object per alert (``POST``, ``content-type: application/json``)::

    {"type": "budget.threshold", "budget": "team-daily", "scope": "tenant", "subject": "acme",
     "unit": "usd", "threshold_percent": 80, "limit": "25", "spent": "20.013",
     "window": "day (Europe/Paris)", "window_start": "...", "resets_at": "...", "fired_at": "..."}

Amounts are decimal strings (USD) or integers (tokens, requests). Delivery is retried with exponential
backoff on connection errors and 5xx answers (``alerts.webhook_attempts`` tries, 5 by default); a 4xx is
not retried (the hook refused the body, retrying cannot help). Delivery runs on a background thread, off
the request path; a hook that never answers 2xx is logged at ERROR with the alert it dropped.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from modelyard.governance.model import CounterState, Line, wire_amount

log = logging.getLogger("modelyard.governance.alerts")


def crossed(thresholds: Sequence[int], state: CounterState) -> list[int]:
    """The thresholds (percent of the limit) that ``state``'s spend has reached."""
    if state.limit <= 0:
        return list(thresholds) if state.spent > 0 else []
    return [t for t in thresholds if state.spent * 100 >= t * state.limit]


@dataclass(frozen=True, slots=True)
class Alert:
    line: Line
    threshold: int
    spent: int
    fired_at: float

    def body(self) -> dict[str, Any]:
        w = self.line.window
        return {
            "type": "budget.threshold",
            "budget": self.line.budget,
            "scope": self.line.scope,
            "subject": self.line.subject,
            "unit": self.line.unit,
            "threshold_percent": self.threshold,
            "limit": wire_amount(self.line.unit, self.line.limit),
            "spent": wire_amount(self.line.unit, self.spent),
            "window": w.label,
            "window_start": datetime.fromtimestamp(w.start, UTC).isoformat(),
            "resets_at": w.resets_at().isoformat(),
            "fired_at": datetime.fromtimestamp(self.fired_at, UTC).isoformat(),
        }


class AlertSink(Protocol):
    def fire(self, alert: Alert) -> None: ...


class LogSink:
    def fire(self, alert: Alert) -> None:
        log.warning("budget alert: %s", orjson.dumps(alert.body()).decode())


class WebhookFailed(Exception):
    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, WebhookFailed) and (exc.status is None or exc.status >= 500)


class WebhookSink:
    """POSTs each alert as JSON, retried on 5xx and connection errors, on one background thread."""

    def __init__(
        self, url: str, *, attempts: int = 5, first_wait_s: float = 0.5, timeout_s: float = 5.0
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"alerts.webhook_url must be an http(s) URL, got {url!r}")
        self.url = url
        self._attempts = attempts
        self._first_wait = first_wait_s
        self._timeout = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelyard-alerts")

    def fire(self, alert: Alert) -> None:
        self._pool.submit(self._deliver_or_log, alert)

    def submit(self, alert: Alert) -> Future[int]:
        """Deliver in the background; the future holds the final HTTP status (for callers that wait)."""
        return self._pool.submit(self.deliver, alert)

    def deliver(self, alert: Alert) -> int:
        """POST one alert, retrying; the status of the attempt that succeeded. Raises after the last try."""
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._first_wait, max=30),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        return retrying(self._post, orjson.dumps(alert.body()))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _deliver_or_log(self, alert: Alert) -> None:
        try:
            self.deliver(alert)
        except WebhookFailed as exc:
            log.error(
                "budget alert not delivered to the webhook (%s): %s", exc, orjson.dumps(alert.body()).decode()
            )

    def _post(self, body: bytes) -> int:
        request = urllib.request.Request(  # noqa: S310 - the URL's scheme is checked in __init__
            self.url, data=body, method="POST", headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response's socket
            raise WebhookFailed(exc.code, f"HTTP {exc.code} from {self.url}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise WebhookFailed(None, f"{self.url} unreachable: {exc}") from None
