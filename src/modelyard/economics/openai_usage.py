"""OpenAI's organisation usage, imported as traffic: the zero-change path for teams calling OpenAI directly.

Accepted (``docs/decide.md``):

- the Completions **Usage API** JSON (``GET /v1/organization/usage/completions``): one page
  (``{"object": "page", "data": [buckets]}``), a JSON list of pages, or one page per line; fetch it with
  ``group_by=model`` plus ``project_id`` or ``api_key_id`` so each result names its model and workload;
- a **CSV** with one row per bucket and result, using the same field names: ``start_time``, ``end_time``
  (unix seconds or ISO-8601; or a ``date`` column for daily rows), ``model``, ``num_model_requests``,
  ``input_tokens``, ``output_tokens``, optional ``input_cached_tokens``, ``project_id`` / ``project_name``,
  ``api_key_id`` / ``api_key_name``, ``user_id``.

Usage is aggregated: there is no latency (reported as unknown), and a bucket wider than an hour is spread
evenly over its hours, so the hour-of-day shape and the peak are those of the bucket width (the report's
profile says how many days were observed; prefer ``bucket_width=1h``). Spend is priced from the catalog.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelyard.economics.aggregate import HourRow, Traffic, build_traffic
from modelyard.economics.files import DEFAULT_WORKLOAD
from modelyard.errors import ConfigError

#: Result field naming the workload, by ``traffic.openai_workload_from``; the CSV may carry a readable name.
_WORKLOAD_FIELDS = {
    "project": ("project_name", "project_id"),
    "api_key": ("api_key_name", "api_key_id"),
    "user": ("user_id",),
    "model": ("model",),
}
_GROUP_BY = {"project": "project_id", "api_key": "api_key_id", "user": "user_id", "model": "model"}
#: CSV columns every row needs, besides its time (``start_time`` and ``end_time``, or ``date``).
CSV_REQUIRED = ("model", "num_model_requests", "input_tokens", "output_tokens")


def is_openai_usage(path: Path) -> bool:
    """A usage export: a JSON page of ``bucket`` objects, or a CSV with a ``num_model_requests`` column."""
    try:
        with path.open(encoding="utf-8") as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    if path.suffix.lower() == ".csv":
        return "num_model_requests" in head.splitlines()[0].lower() if head else False
    return '"bucket"' in head or '"organization.usage.completions.result"' in head


def read_openai_usage(
    path: str | Path,
    workload_from: str = "project",
    names: Mapping[str, str] | None = None,
    default_workload: str = DEFAULT_WORKLOAD,
) -> Traffic:
    """Usage buckets as hourly traffic rows; ``names`` maps project/API-key ids (or names) to workload names.

    A result that names no ``workload_from`` (usage grouped by model only, or the organisation's default
    project) goes to ``default_workload``, and the returned traffic's notes say how many requests did."""
    path = Path(path)
    names = names or {}
    if workload_from not in _WORKLOAD_FIELDS:
        raise ConfigError(
            f"workload from '{workload_from}': an OpenAI usage export names its workload by "
            f"{', '.join(_WORKLOAD_FIELDS)}"
        )
    if not path.is_file():
        raise ConfigError(f"traffic file {path} does not exist")
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _json_rows(path)
    hours: list[HourRow] = []
    unnamed = 0
    for where, start, end, result in rows:
        key = next((str(result[f]) for f in _WORKLOAD_FIELDS[workload_from] if result.get(f)), None)
        spread = _spread(
            where, start, end, result, default_workload if key is None else names.get(key, key), path
        )
        unnamed += sum(h.requests for h in spread) if key is None else 0
        hours.extend(spread)
    traffic = build_traffic(f"{path} (OpenAI usage export)", _merge(hours), [])
    if not unnamed:
        return traffic
    note = (
        f"{unnamed:,} of {sum(h.requests for h in hours):,} requests had no {workload_from} "
        f"(export with group_by={_GROUP_BY[workload_from]}): counted as workload '{default_workload}'"
    )
    return dataclasses.replace(traffic, source=f"{path} (OpenAI usage export; {note})", notes=(note,))


def _json_rows(path: Path) -> Iterator[tuple[str, int, int, dict[str, Any]]]:
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
        pages = doc if isinstance(doc, list) else [doc]
    except json.JSONDecodeError:
        pages = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    pages.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
    for p, page in enumerate(pages, start=1):
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise ConfigError(f"{path}: page {p}: expected a Usage API page with a 'data' list of buckets")
        for b, bucket in enumerate(page["data"], start=1):
            where = f"page {p}, bucket {b}"
            start, end = bucket.get("start_time"), bucket.get("end_time")
            if not isinstance(start, int) or not isinstance(end, int) or end <= start:
                raise ConfigError(
                    f"{path}: {where}: 'start_time'/'end_time' must be unix seconds, end after start"
                )
            # The API names the list "results"; some clients and older docs write "result".
            for r, result in enumerate(bucket.get("results") or bucket.get("result") or [], start=1):
                yield f"{where}, result {r}", start, end, result


def _csv_rows(path: Path) -> Iterator[tuple[str, int, int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        found = [h.strip() for h in reader.fieldnames or []]
        _check_csv_header(path, found)
        for number, raw in enumerate(reader, start=2):
            # Headers are compared without case or surrounding blanks (a spreadsheet's "Model" is "model").
            row = {k.strip().lower(): v for k, v in raw.items() if k is not None}
            where = f"line {number}"
            if row.get("date"):
                day = _time(row["date"], path, where, "date")
                yield where, day, day + 86400, row
            else:
                start = _time(row.get("start_time"), path, where, "start_time")
                yield where, start, _time(row.get("end_time"), path, where, "end_time"), row


def _check_csv_header(path: Path, found: list[str]) -> None:
    """Every missing column named at once, with the columns the file has."""
    lower = {h.lower() for h in found}
    missing = [c for c in CSV_REQUIRED if c not in lower]
    if "date" not in lower:
        missing += [c for c in ("start_time", "end_time") if c not in lower]
    if missing:
        raise ConfigError(
            f"{path}: not an OpenAI usage CSV: missing column(s) {', '.join(missing)} (needs "
            f"{', '.join(CSV_REQUIRED)} and start_time, end_time or date; found: {', '.join(found)})"
        )


def _time(value: str | None, path: Path, where: str, field: str) -> int:
    """Unix seconds from unix seconds or ISO-8601 text (a bare date is midnight UTC)."""
    if not value:
        raise ConfigError(
            f"{path}: {where}: field '{field}' is missing (need start_time and end_time, or date)"
        )
    try:
        return int(float(value))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{path}: {where}: field '{field}' is not unix seconds or ISO-8601: {value!r}"
        ) from None
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp())


def _count(result: Mapping[str, Any], field: str, path: Path, where: str, required: bool = True) -> int:
    value = result.get(field)
    if value in (None, ""):
        if required:
            raise ConfigError(f"{path}: {where}: field '{field}' is missing")
        return 0
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: {where}: field '{field}' is not a whole number: {value!r}") from None
    if n < 0:
        raise ConfigError(f"{path}: {where}: field '{field}' must not be negative")
    return n


def _spread(
    where: str, start: int, end: int, result: Mapping[str, Any], workload: str, path: Path
) -> list[HourRow]:
    """One result over the hours of its bucket, counts split as evenly as whole numbers allow."""
    model = result.get("model")
    if not model:
        raise ConfigError(f"{path}: {where}: no 'model': export the usage with group_by=model")
    counts = [_count(result, f, path, where, f != "input_cached_tokens")
              for f in ("num_model_requests", "input_tokens", "input_cached_tokens", "output_tokens")]  # fmt: skip
    first = start - start % 3600
    # Fewer requests than hours: one hour each, so no token is dropped with an hour that got no request.
    slots = list(range(first, end, 3600))[: max(1, counts[0])]
    out = []
    for i, hour in enumerate(slots):
        share = [c // len(slots) + (1 if i < c % len(slots) else 0) for c in counts]
        if any(share):
            out.append(HourRow(workload, None, str(model), "openai", hour, share[0], 0, share[1], share[2],
                               share[3], 0.0, 0, share[0]))  # fmt: skip
    return out


def _merge(rows: list[HourRow]) -> list[tuple[Any, ...]]:
    """Sum rows of the same (workload, model, hour), in the aggregate query's column order."""
    acc: dict[tuple[str, str, int], list[int]] = {}
    for r in rows:
        a = acc.setdefault((r.workload, r.model, r.hour), [0, 0, 0, 0])
        for j, v in enumerate((r.requests, r.input_tokens, r.cached_input_tokens, r.output_tokens)):
            a[j] += v
    return [
        (w, None, m, "openai", h, a[0], 0, a[1], a[2], a[3], 0.0, 0, a[0]) for (w, m, h), a in acc.items()
    ]
