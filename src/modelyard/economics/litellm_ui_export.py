"""The LiteLLM admin UI's usage export (Usage page → Export → CSV), read as traffic.

Its column names are not those of the ``LiteLLM_SpendLogs`` table: the UI writes one row per day and
tag, team, organisation or customer (``ui/litellm-dashboard/src/components/EntityUsageExport/utils.ts``,
written out with ``Papa.unparse``)::

    Date, Team, Team ID, [Key Alias, Key ID,] Spend ($), Requests, Successful Requests, Failed Requests,
    Total Tokens, Prompt Tokens, Completion Tokens

(``Tag`` / ``Tag ID``, ``Customer`` / ``Customer ID`` … for the other entities; ``-`` where the UI knows no
alias). ``Spend ($)`` is LiteLLM's own cost rounded to 4 decimals, with thousands separators
(``"1,234.5678"``). The "Daily with models" scope has a ``Model`` column but only ``Total Tokens`` (no
prompt/completion split), so it cannot be costed on self-hosted hardware and is refused with the reason.

What the export cannot say is reported, never guessed: no latency (unknown, as for OpenAI usage), no hour of
day (a day's rows are spread evenly over its 24 hours, or one hour per request when fewer), no model in the
daily scopes (the rows keep a placeholder model and the note says so), no cached tokens.
"""

from __future__ import annotations

import csv
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from modelyard.economics.aggregate import HourRow, Traffic, build_traffic
from modelyard.errors import ConfigError

#: Columns that tell this export apart from a ``LiteLLM_SpendLogs`` CSV (compared without case).
SIGNATURE = ("date", "spend ($)", "requests")
#: The entities the UI exports usage for, each as ``<Entity>`` (alias or ``-``) and ``<Entity> ID``.
ENTITIES = ("Tag", "Team", "Organization", "Customer")
#: The model of rows from a scope without a ``Model`` column: a real name in the report, never a guess.
NO_MODEL = "(model not in export)"
#: Our name → the header spellings the UI has used for it.
COLUMNS = {
    "date": ("Date",),
    "spend": ("Spend ($)",),
    "requests": ("Requests",),
    "failed": ("Failed Requests", "Failed"),
    "prompt": ("Prompt Tokens",),
    "completion": ("Completion Tokens",),
    "total": ("Total Tokens",),
    "model": ("Model",),
}
REQUIRED = ("date", "spend", "requests", "prompt", "completion")


def is_ui_usage_export(header: list[str]) -> bool:
    """A CSV whose header is the admin UI's usage export rather than the spend-log table's."""
    lower = {h.strip().lower() for h in header}
    return all(c in lower for c in SIGNATURE)


def read_ui_usage_export(path: Path, workload_from: str, default_workload: str) -> Traffic:
    """Daily usage rows as hourly traffic rows; ``workload_from`` is ``request_tag`` (the export's entity
    column: its alias, else its ID) or any column of the file (``Team ID``, ``Key Alias`` …)."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        cols = _resolve(path, header)
        name_of = _workload_columns(path, header, workload_from)
        hours: list[HourRow] = []
        unnamed = 0
        for number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            cell = {ours: row[i].strip() if i < len(row) else "" for ours, i in cols.items()}
            workload = next((row[i].strip() for i in name_of if i < len(row) and _named(row[i])), None)
            spread = _spread(path, number, cell, workload or default_workload)
            unnamed += sum(h.requests for h in spread) if workload is None else 0
            hours.extend(spread)
    traffic = build_traffic(f"{path} (LiteLLM UI usage export)", _merge(hours), [])
    total = sum(h.requests for h in hours)
    notes = ["daily rows: latency unknown, each day spread evenly over its 24 hours"]
    if "model" not in cols:
        notes.append(f"no Model column (this export scope has none): model reported as '{NO_MODEL}'")
    if unnamed:
        what = " or ".join(header[i] for i in name_of) or workload_from
        notes.append(f"{unnamed:,} of {total:,} requests had no {what}: counted as workload "
                     f"'{default_workload}'")  # fmt: skip
    return dataclasses.replace(
        traffic, source=f"{path} (LiteLLM UI usage export; {'; '.join(notes)})", notes=tuple(notes)
    )


def _resolve(path: Path, header: list[str]) -> dict[str, int]:
    by_lower = {h.lower(): i for i, h in enumerate(header)}
    cols = {}
    for ours, spellings in COLUMNS.items():
        index = next((by_lower[s.lower()] for s in spellings if s.lower() in by_lower), None)
        if index is not None:
            cols[ours] = index
    missing = [COLUMNS[c][0] for c in REQUIRED if c not in cols]
    if missing and "model" in cols and "total" in cols:
        raise ConfigError(
            f"{path}: a LiteLLM UI 'Daily with models' usage export has Total Tokens only; a decision needs "
            "Prompt Tokens and Completion Tokens apart (output tokens drive GPU time): export the 'Daily' or "
            "'Daily with keys' scope, or the LiteLLM_SpendLogs table, instead"
        )
    if missing:
        raise ConfigError(
            f"{path}: not a LiteLLM UI usage export: missing column(s) {', '.join(missing)} "
            f"(needs {', '.join(COLUMNS[c][0] for c in REQUIRED)}; found: {', '.join(header)})"
        )
    return cols


def _workload_columns(path: Path, header: list[str], workload_from: str) -> list[int]:
    """Columns naming a row's workload, best first: the entity's alias then its ID, or the one asked for."""
    by_lower = {h.lower(): i for i, h in enumerate(header)}
    if workload_from == "request_tag":
        for entity in ENTITIES:
            found = [by_lower[c.lower()] for c in (entity, f"{entity} ID") if c.lower() in by_lower]
            if found:
                return found
        return []
    if workload_from.lower() in by_lower:
        return [by_lower[workload_from.lower()]]
    raise ConfigError(
        f"workload from '{workload_from}' (decide --workload-from or traffic.litellm_workload_from): "
        f"{path} is a LiteLLM UI usage export without that column; use request_tag (its "
        f"{'/'.join(ENTITIES)} column) or one of its columns (found: {', '.join(header)})"
    )


def _named(value: str) -> bool:
    """The UI writes ``-`` where it knows no alias or ID."""
    return value.strip() not in ("", "-")


def _spread(path: Path, line: int, cell: dict[str, str], workload: str) -> list[HourRow]:
    """One day's row over its 24 hours (fewer if it has fewer requests), split as evenly as whole numbers go."""
    try:
        day = datetime.fromisoformat(cell["date"][:10]).replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"{path}: line {line}: 'Date' is not a date: {cell['date']!r}") from None
    counts = [_whole(path, line, cell, c) for c in ("requests", "failed", "prompt", "completion")]
    spend = _number(path, line, cell["spend"])
    cost = [round(spend * 10**12)]
    start = int(day.timestamp())
    # Fewer requests than hours: one hour each, so no hour holds tokens or spend without a request.
    slots = max(1, min(24, counts[0]))
    out = []
    for k in range(slots):
        requests, failed, prompt, completion, share = (
            c // slots + (1 if k < c % slots else 0) for c in (*counts, cost[0])
        )
        out.append(HourRow(workload, None, cell.get("model") or NO_MODEL, None, start + 3600 * k,
                           requests, failed, prompt, 0, completion, 0.0, share, 0))  # fmt: skip
    return out


def _whole(path: Path, line: int, cell: dict[str, str], field: str) -> int:
    raw = cell.get(field, "").replace(",", "")
    if raw == "" and field == "failed":
        return 0
    try:
        value = int(float(raw))
    except ValueError:
        name = COLUMNS[field][0]
        raise ConfigError(f"{path}: line {line}: '{name}' is not a whole number: {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{path}: line {line}: '{COLUMNS[field][0]}' must not be negative")
    return value


def _number(path: Path, line: int, raw: str) -> float:
    try:
        return float(raw.replace(",", "").removeprefix("$"))
    except ValueError:
        raise ConfigError(f"{path}: line {line}: 'Spend ($)' is not a number: {raw!r}") from None


def _merge(rows: list[HourRow]) -> list[tuple[object, ...]]:
    """Sum rows of the same (workload, model, hour): the per-key scope has a row per key and day."""
    acc: dict[tuple[str, str, int], list[int]] = {}
    for r in rows:
        a = acc.setdefault((r.workload, r.model, r.hour), [0, 0, 0, 0, 0])
        for j, v in enumerate((r.requests, r.errors, r.input_tokens, r.output_tokens, r.cost_pico_usd)):
            a[j] += v
    return [(w, None, m, None, h, a[0], a[1], a[2], 0, a[3], 0.0, a[4], 0) for (w, m, h), a in acc.items()]
