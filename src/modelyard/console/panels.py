"""The console's panels as JSON-ready data: every input a client sends is checked and bounded here, and
every figure comes from a store (the ledger, the budget store, the key store) or the decision report.

Each function does blocking I/O (a database, a file): the HTTP layer runs them off the event loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from modelyard.config.governance import RATE_PREFIX
from modelyard.config.schema import Config
from modelyard.errors import InvalidRequest
from modelyard.governance.budgets import applies
from modelyard.governance.model import Subject
from modelyard.governance.runtime import Governance
from modelyard.ledger.series import DIMENSIONS, MAX_BUCKETS, MIN_STEP_S, Dimension, SeriesQuery

#: The windows the page offers, by name; a client may also send ``since`` and ``until`` itself.
WINDOWS = {"1h": 3_600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
DEFAULT_WINDOW = "24h"
#: Steps a window is cut into: the shortest that gives at most ``_TARGET_BUCKETS`` points per line.
_STEPS = (60, 300, 600, 900, 1_800, 3_600, 3 * 3_600, 6 * 3_600, 12 * 3_600, 86_400)
_TARGET_BUCKETS = 72
#: The most keys and budget rows one answer lists (the counts say how many there are in all).
MAX_ROWS = 200
#: A decision report larger than this is not read (the example's is ~0.5 MB).
MAX_REPORT_BYTES = 32 * 1024 * 1024


def series_query(params: Mapping[str, str], now: float) -> SeriesQuery:
    """The series a client asked for (``window`` or ``since``/``until``, ``step``, ``by``, ``groups``),
    checked against the bounds of :mod:`modelyard.ledger.series`; ``InvalidRequest`` names the parameter."""
    try:
        step = _integer(params, "step")
        if "since" in params or "until" in params:
            until = _integer(params, "until") or math.ceil(now)
            since = _integer(params, "since")
            if since is None:
                raise InvalidRequest("since: unix seconds expected with until", param="since")
            step = step or _step_for(until - since)
        else:
            window = params.get("window", DEFAULT_WINDOW)
            if window not in WINDOWS:
                raise InvalidRequest(f"window: one of {', '.join(WINDOWS)}", param="window")
            step = step or _step_for(WINDOWS[window])
            # Bucket edges on multiples of the step, so a refresh keeps the same buckets.
            until = math.ceil(now / step) * step
            since = until - math.ceil(WINDOWS[window] / step) * step
        by = params.get("by") or None
        if by is not None and by not in DIMENSIONS:
            raise InvalidRequest(f"by: one of {', '.join(DIMENSIONS)}", param="by")
        query = SeriesQuery(since, until, step, _dimension(by), _integer(params, "groups") or 8)
        query.check()
    except ValueError as exc:  # the bounds: every message starts with the parameter's name
        message = str(exc)
        raise InvalidRequest(message, param=message.partition(":")[0]) from None
    return query


def _integer(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidRequest(f"{name}: an integer expected, got {text[:40]!r}", param=name) from None


def _dimension(by: str | None) -> Dimension | None:
    for name in DIMENSIONS:
        if by == name:
            return name
    return None


def _step_for(window: int) -> int:
    for step in _STEPS:
        if window / step <= _TARGET_BUCKETS:
            return step
    return max(MIN_STEP_S, math.ceil(window / MAX_BUCKETS))


def decision_panel(path: Path) -> dict[str, Any]:
    """The latest ``decide`` run's recommendation and triggers per workload, from its ``decision.json``;
    when there is none (or it cannot be read), what to do about it."""
    how = (
        f"run `modelyard decide --out {path.parent}` where the gateway runs (or point"
        " console.decision_report at a decision.json)"
    )
    try:
        size = path.stat().st_size
        if size > MAX_REPORT_BYTES:
            return {"available": False, "path": str(path), "problem": f"larger than {MAX_REPORT_BYTES} bytes"}
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {"available": False, "path": str(path), "how": how}
    except (OSError, orjson.JSONDecodeError) as exc:
        return {"available": False, "path": str(path), "problem": f"cannot be read: {exc}", "how": how}
    if not isinstance(doc, dict) or doc.get("schema_version") != 1:
        return {
            "available": False,
            "path": str(path),
            "problem": "not a decision.json of schema 1",
            "how": how,
        }
    workloads = [
        {
            "name": w.get("name"),
            "recommendation": {
                k: (w.get("recommendation") or {}).get(k) for k in ("kind", "headline", "why")
            },
            "triggers": [_trigger(t) for t in w.get("triggers") or []],
        }
        for w in doc.get("workloads") or []
    ]
    return {
        "available": True,
        "path": str(path),
        "generated_on": doc.get("generated_on"),
        "organisation": doc.get("organisation"),
        "horizon_months": doc.get("horizon_months"),
        "portfolio_total_usd": (doc.get("portfolio") or {}).get("total_usd"),
        "triggers": [_trigger(t) for t in doc.get("triggers") or []],
        "workloads": workloads,
    }


def _trigger(trigger: Any) -> dict[str, Any]:
    return {k: trigger.get(k) for k in ("name", "fired", "evidence", "workload")}


def governance_panel(config: Config, governance: Governance | None) -> dict[str, Any]:
    """Runtime keys (never secrets), the config's keys, and every budget in its current window for each
    subject the gateway knows (tenants and ids of its keys, its workloads)."""
    if governance is None:
        return {
            "enabled": False,
            "how": "add a governance: section (docs/governance.md) for budgets and keys",
        }
    records = governance.key_store.list_keys() if governance.key_store is not None else []
    keys = [{**r.to_json(), "source": "runtime"} for r in records]
    keys += [
        {"id": name, "tenant": k.tenant, "workloads": list(k.workloads), "active": True, "source": "config"}
        for name, k in config.auth.keys.items()
    ]
    tenants = {k["tenant"] for k in keys}
    subjects = [Subject(tenant=t) for t in sorted(tenants)]
    subjects += [Subject(key_id=k["id"]) for k in keys if k["active"]]
    subjects += [Subject(workload=w) for w in sorted(config.workloads)]
    named = [Subject(**{_FIELD[b.scope]: b.subject}) for b in governance.config.budgets if b.subject != "*"]
    extra = {r.key_id: r.limits.budgets(r.key_id) for r in records if r.active}
    budgets: list[dict[str, Any]] = []
    seen: set[str] = set()
    for subject in [*named, *subjects]:
        if len(budgets) >= MAX_ROWS:
            break
        own = extra.get(subject.key_id or "", ())
        if not own and not any(applies(b, subject) for b in governance.config.budgets):
            continue  # no budget counts this subject: no store read
        for status in governance.governor.status(subject, own):
            if status.line.budget.startswith(RATE_PREFIX) or status.line.counter in seen:
                continue  # per-minute rate limits are /metrics material, not a budget to watch
            seen.add(status.line.counter)
            budgets.append(status.to_json())
    return {"enabled": True, "keys": keys[:MAX_ROWS], "key_count": len(keys), "budgets": budgets[:MAX_ROWS]}


_FIELD = {"tenant": "tenant", "key": "key_id", "workload": "workload"}
