"""LiteLLM's spend logs as traffic: the zero-change path for teams already behind a LiteLLM proxy.

Reads a CSV export of the proxy's ``LiteLLM_SpendLogs`` table (``\\copy "LiteLLM_SpendLogs" TO 'x.csv' CSV
HEADER``, or any tool that keeps its columns) as it comes out of a real proxy:

- headers compared without case (``starttime`` is ``startTime``; ``start_time`` is accepted too);
- ``request_tags`` is a JSON array as text (``["support-bot"]``, ``[]``, empty); its first tag that is not
  one LiteLLM adds by itself (``User-Agent: …``) names the workload; rows with none go to the default
  workload, and the run says how many;
- cached prompt tokens are read from the ``metadata`` JSON (``usage_object.prompt_tokens_details.
  cached_tokens`` or ``cache_read_input_tokens``, then ``additional_usage_values``) where present;
- calls that are not chat (``call_type`` embeddings, images, audio, moderation, rerank) are left out, counted;
- the columns a decision needs must all be there: one error names every missing one and lists those found.

``spend`` is LiteLLM's own cost; the workload column is chosen by :func:`workload_expression`.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import duckdb

from modelyard.economics.aggregate import Traffic
from modelyard.economics.files import DEFAULT_WORKLOAD, aggregate_in_duckdb, check_rows, sql_text
from modelyard.economics.litellm_ui_export import is_ui_usage_export, read_ui_usage_export
from modelyard.errors import ConfigError

#: Our name for a column → the header spellings accepted for it (compared without case).
COLUMNS: dict[str, tuple[str, ...]] = {
    "startTime": ("startTime", "start_time"),
    "endTime": ("endTime", "end_time"),
    "completionStartTime": ("completionStartTime", "completion_start_time"),
    "model": ("model",),
    "prompt_tokens": ("prompt_tokens",),
    "completion_tokens": ("completion_tokens",),
    "spend": ("spend",),
    "custom_llm_provider": ("custom_llm_provider",),
    "status": ("status",),
    "call_type": ("call_type",),
    "request_tags": ("request_tags",),
    "metadata": ("metadata",),
    "model_group": ("model_group",),
    "team_id": ("team_id",),
    "user": ("user",),
    "api_key": ("api_key",),
    "end_user": ("end_user",),
}
#: Without these a spend log cannot be costed or timed.
REQUIRED = ("startTime", "endTime", "model", "prompt_tokens", "completion_tokens", "spend")
#: ``--workload-from`` / ``traffic.litellm_workload_from`` names besides a raw column or ``metadata.<key>``.
WORKLOAD_FROM = ("request_tag", "model_group", "team_id", "user", "api_key", "model", "end_user")

#: LiteLLM tags every request with the caller's User-Agent (``User-Agent: curl/8.5``): not a workload.
_AUTOMATIC_TAG = "user-agent:"
#: ``call_type`` values that are not chat completions (``aembedding``, ``image_generation``, ``atranscription``…).
_NOT_CHAT = "embed|image|transcription|speech|moderation|rerank"
#: Where the workload column is chosen, named in errors about it.
_WHERE_SET = "decide --workload-from or traffic.litellm_workload_from"
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
#: Where LiteLLM keeps cached prompt tokens in ``metadata``, best first.
_CACHED_PATHS = (
    "$.usage_object.prompt_tokens_details.cached_tokens",
    "$.usage_object.cache_read_input_tokens",
    "$.additional_usage_values.cache_read_input_tokens",
    "$.additional_usage_values.prompt_tokens_details.cached_tokens",
)


def resolve_columns(found: list[str]) -> dict[str, str]:
    """Our column name → the file's header, for every known column the file has (headers matched without case)."""
    by_lower = {name.lower(): name for name in found}
    out = {}
    for ours, spellings in COLUMNS.items():
        header = next((by_lower[s.lower()] for s in spellings if s.lower() in by_lower), None)
        if header is not None:
            out[ours] = header
    return out


def missing_columns(resolved: dict[str, str], workload_from: str) -> list[str]:
    """Required columns the file lacks, including the one chosen to name the workload."""
    needed = list(REQUIRED)
    if workload_from in COLUMNS and workload_from not in needed:
        needed.append(workload_from)
    if workload_from.startswith("metadata."):
        needed.append("metadata")
    return [c for c in needed if c not in resolved]


def workload_expression(workload_from: str, resolved: dict[str, str], found: list[str]) -> str:
    """SQL for the raw workload name of a row (NULL or blank when the row names none), over ``scan``.

    ``request_tag``: the first request tag that LiteLLM did not add by itself; a known column name; a
    ``metadata.<key>`` path (``metadata.user_api_key_alias``: the key's alias); or any header of the file.
    """
    if workload_from == "request_tag":
        if "request_tags" not in resolved:
            return "NULL"
        tags = _tags_list('"request_tags"')
        return f"list_filter({tags}, lambda t: NOT starts_with(lower(trim(t)), '{_AUTOMATIC_TAG}') AND trim(t) <> '')[1]"
    if workload_from.startswith("metadata."):
        key = workload_from.removeprefix("metadata.")
        if not _METADATA_KEY.match(key):
            raise ConfigError(
                f"workload from '{workload_from}' ({_WHERE_SET}): a metadata key is letters, digits, _ and dots"
            )
        return f"TRY(json_extract_string(\"metadata\", '$.{key}'))"
    if workload_from in resolved:
        return f'"{workload_from}"'
    header = next((h for h in found if h.lower() == workload_from.lower()), None)
    if header is None:
        raise ConfigError(
            f"workload from '{workload_from}' ({_WHERE_SET}): the file has no such column; use "
            f"{', '.join(WORKLOAD_FROM)}, metadata.<key> or one of its columns (found: {', '.join(found)})"
        )
    return '"__workload"'


def _tags_list(column: str) -> str:
    """``request_tags`` as a list: a JSON array (LiteLLM's Json column) or a Postgres array literal ``{a,b}``."""
    return (
        f"COALESCE(TRY(from_json({column}, '[\"VARCHAR\"]')), "
        f"string_split(regexp_replace(COALESCE({column}, ''), '^[{{\\[]|[}}\\]]$|\"', '', 'g'), ','))"
    )


def read_litellm_csv(
    path: str | Path, workload_from: str = "request_tag", default_workload: str = DEFAULT_WORKLOAD
) -> Traffic:
    """Aggregate a LiteLLM spend-log export (CSV of ``LiteLLM_SpendLogs``), or the admin UI's usage export
    (recognised by its header: :mod:`.litellm_ui_export`)."""
    path = Path(path)
    if is_ui_usage_export(_header(path)):
        return read_ui_usage_export(path, workload_from, default_workload)
    # Real exports carry whole prompts and responses (messages, response) in quoted, multi-line fields.
    source = f"read_csv({sql_text(str(path))}, header=true, all_varchar=true, max_line_size=268435456)"

    def prepare(con: duckdb.DuckDBPyConnection) -> list[str]:
        found = [d[0] for d in con.execute(f"SELECT * FROM {source} LIMIT 0").description]
        resolved = resolve_columns(found)
        if missing := missing_columns(resolved, workload_from):
            raise ConfigError(
                f"{path}: not a LiteLLM spend-log export: missing column(s) {', '.join(missing)} "
                f"(needs {', '.join(REQUIRED)}; found: {', '.join(found)})"
            )
        workload = workload_expression(workload_from, resolved, found)
        picks = [f'"{header}" AS "{ours}"' for ours, header in resolved.items()]
        picks += [f'NULL AS "{ours}"' for ours in COLUMNS if ours not in resolved]
        if workload == '"__workload"':
            header = next(h for h in found if h.lower() == workload_from.lower())
            picks.append(f'"{header}" AS "__workload"')
        con.execute(f"CREATE VIEW scan AS SELECT {', '.join(picks)} FROM {source}")
        con.execute(_normalise(workload, default_workload))
        check_rows(con, path, ("ts", "model", "input_tokens", "output_tokens", "latency_ms"), "row",
                   f"a spend-log row ({', '.join(REQUIRED)})")  # fmt: skip
        return _notes(con, workload_from, default_workload, "metadata" in resolved)

    return aggregate_in_duckdb(path, "LiteLLM spend-log CSV", prepare)


def _header(path: Path) -> list[str]:
    """The CSV's first row (empty when the file is missing or unreadable: the reader then says why)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _normalise(workload: str, default_workload: str) -> str:
    start = 'epoch(TRY_CAST("startTime" AS TIMESTAMPTZ))'
    cached = "COALESCE(" + ", ".join(f"TRY_CAST(TRY(json_extract_string(\"metadata\", '{p}')) AS BIGINT)"
                                      for p in _CACHED_PATHS) + ", 0)"  # fmt: skip
    inputs = 'TRY_CAST("prompt_tokens" AS BIGINT)'
    return f"""
        CREATE TEMP TABLE requests AS
        WITH rows AS (SELECT row_number() OVER () + 1 AS line, {workload} AS raw_workload, * FROM scan)
        SELECT line, {start} AS ts,
               CASE WHEN regexp_matches(lower(COALESCE("call_type", '')), '{_NOT_CHAT}') THEN 'other'
                    ELSE 'chat' END AS endpoint,
               COALESCE(NULLIF(trim(raw_workload), ''), {sql_text(default_workload)}) AS workload,
               NULLIF(trim(raw_workload), '') IS NULL AS untagged,
               NULL AS data_class, NULLIF(trim("model"), '') AS model,
               NULLIF(trim("custom_llm_provider"), '') AS provider_kind,
               CASE WHEN lower(COALESCE("status", 'success')) = 'failure' THEN 500 ELSE 200 END AS status,
               {inputs} AS input_tokens, TRY_CAST("completion_tokens" AS BIGINT) AS output_tokens,
               LEAST({cached}, COALESCE({inputs}, 0)) AS cached_input_tokens,
               {cached} > 0 AS cached_known,
               (epoch(TRY_CAST("endTime" AS TIMESTAMPTZ)) - {start}) * 1000 AS latency_ms,
               (epoch(TRY_CAST("completionStartTime" AS TIMESTAMPTZ)) - {start}) * 1000 AS ttft_ms,
               CAST(ROUND(TRY_CAST("spend" AS DOUBLE) * 1e12) AS BIGINT) AS cost_pico_usd, 1 AS weight
        FROM rows"""


def _notes(
    con: duckdb.DuckDBPyConnection, workload_from: str, default_workload: str, metadata: bool
) -> list[str]:
    row = con.execute("""
        SELECT count(*) FILTER (WHERE endpoint = 'chat'),
               count(*) FILTER (WHERE endpoint = 'chat' AND untagged),
               count(*) FILTER (WHERE endpoint <> 'chat'),
               count(*) FILTER (WHERE endpoint = 'chat' AND cached_known)
        FROM requests""").fetchone()
    chat, untagged, other, cached = row or (0, 0, 0, 0)
    what = (
        "request tag (LiteLLM's automatic User-Agent tags ignored)"
        if workload_from == "request_tag"
        else workload_from
    )
    notes = []
    if untagged:
        notes.append(
            f"{untagged:,} of {chat:,} requests had no {what}: counted as workload '{default_workload}'"
        )
    if other:
        notes.append(f"{other:,} call(s) that are not chat (embeddings, images, audio, …) left out")
    if not metadata:
        notes.append("no metadata column: cached prompt tokens unknown, counted as uncached")
    elif cached:
        notes.append(f"cached prompt tokens read from metadata for {cached:,} requests")
    return notes
