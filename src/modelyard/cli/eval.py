"""``modelyard eval``: run golden sets against candidate models, gate regressions, build and import sets.

    modelyard eval run SET.jsonl -c modelyard.yaml -m gpt-4o-mini -m llama-8b --baseline gpt-4o-mini
    modelyard eval gate .modelyard/evals/SET/latest.json --baseline A --candidate B
    modelyard eval validate SET.jsonl
    modelyard eval import-openai-evals samples.jsonl -o SET.jsonl
    modelyard eval import-promptfoo promptfooconfig.yaml -o SET.jsonl
    modelyard eval from-ledger -c modelyard.yaml --workload W -o SET.jsonl

``run`` records every call it makes in the config's ledger (purpose ``eval`` for candidates, ``judge`` for
gradings, with the run's id), so ``ledger summary`` and ``decide`` see what quality cost; ``--no-ledger``
skips that.

Exit codes of ``run`` (with ``--baseline``) and ``gate``: 0 non-inferior, 1 worse, 3 inconclusive. A run
gating several candidates exits 1 when any of them is proven worse, else 4 when any answer could not be
graded (a judge call failed or its reply could not be read; with or without ``--baseline``), else 3 when any
is inconclusive.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import orjson
from rich.console import Console

from modelyard.config import load_config
from modelyard.errors import ConfigError
from modelyard.evals.cache import ResultCache
from modelyard.evals.calls import ModelParams
from modelyard.evals.dispatch import RetryPolicy
from modelyard.evals.evaluators import CheckError
from modelyard.evals.golden import Check, GoldenSet, dump_cases, load_golden_set
from modelyard.evals.importers import cases_from_ledger, import_openai_evals
from modelyard.evals.interrupt import Interrupted, until_signalled
from modelyard.evals.preflight import describe, preflight
from modelyard.evals.promptfoo import convert_promptfoo
from modelyard.evals.report import print_report, render_html
from modelyard.evals.results import DEFAULT_DIR, gate_run, run_document, summarise, write_record
from modelyard.evals.runner import RunOptions, run_eval
from modelyard.evals.stats import EXIT_CODES, gate, run_exit_code


def _rates(values: tuple[str, ...]) -> dict[str, float]:
    rates = {}
    for value in values:
        provider, _, rate = value.partition("=")
        try:
            rates[provider] = float(rate)
        except ValueError:
            raise click.BadParameter(
                f"{value!r}: write PROVIDER=REQUESTS_PER_SECOND", param_hint="--rate"
            ) from None
    return rates


@click.group("eval")
def eval_command() -> None:
    """Measure candidate models on a workload's golden set, and gate a switch in CI."""


@eval_command.command("run")
@click.argument("golden_path", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Gateway YAML config.",
)
@click.option(
    "-m", "--model", "models", multiple=True, required=True, help="A candidate (public model name); repeat."
)
@click.option("--baseline", help="Gate every other candidate against this one.")
@click.option("--margin", default=0.02, show_default=True, help="Non-inferiority margin δ on the mean score.")
@click.option("--confidence", default=0.95, show_default=True, help="Confidence level of the gate.")
@click.option("--judge", "judge_model", help="Gateway model that grades 'judge' checks.")
@click.option("--concurrency", default=8, show_default=True, help="Calls in flight at once.")
@click.option(
    "--rate", "rates", multiple=True, metavar="PROVIDER=RPS", help="Requests per second to a provider."
)
@click.option("--timeout", "timeout_s", type=float, help="Seconds before an attempt counts as failed.")
@click.option(
    "--retries", default=3, show_default=True, help="Retries of a call after a 429, 5xx or timeout."
)
@click.option(
    "--backoff", default=0.5, show_default=True, help="First retry's back-off in seconds (doubles)."
)
@click.option("--temperature", default=0.0, show_default=True, type=float)
@click.option("--max-tokens", type=int)
@click.option("--seed", default=0, show_default=True, help="Sent to the models and used by the bootstrap.")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False), help="SQLite cache [OUT/cache.db].")
@click.option(
    "--out", "out_dir", default=str(DEFAULT_DIR), show_default=True, type=click.Path(file_okay=False)
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
@click.option(
    "--ledger/--no-ledger",
    "record",
    default=True,
    show_default=True,
    help="Record every call made in the config's ledger (purpose eval or judge, with the run id).",
)
def run_command(
    golden_path: str, config_path: str, models: tuple[str, ...], baseline: str | None, margin: float,
    confidence: float, judge_model: str | None, concurrency: int, rates: tuple[str, ...], timeout_s: float | None,
    retries: int, backoff: float, temperature: float, max_tokens: int | None, seed: int, cache_path: str | None, out_dir: str, progress: bool, record: bool,
) -> None:  # fmt: skip
    """Run GOLDEN_PATH against every --model; write the JSON record and HTML page; gate against --baseline."""
    candidates = list(dict.fromkeys(models))
    if baseline is not None and baseline not in candidates:
        candidates.insert(0, baseline)
    options = RunOptions(
        concurrency=concurrency,
        rates=_rates(rates),
        params=ModelParams(temperature=temperature, max_tokens=max_tokens, seed=seed),
        judge_model=judge_model,
        timeout_s=timeout_s,
        retry=RetryPolicy(retries=retries, backoff_s=backoff),
        show_progress=progress,
    )
    try:
        golden = load_golden_set(golden_path)
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    out = Path(out_dir)
    cache = ResultCache(cache_path or out / "cache.db")
    try:
        work = run_eval(config, golden, candidates, cache, options, record_in_ledger=record)
        run = asyncio.run(until_signalled(work))
    except (ConfigError, CheckError) as exc:
        raise click.ClickException(str(exc)) from None
    except Interrupted as stop:
        kept = cache.count(golden.name)
        click.echo(
            f"{stop}: {kept} answers of set {golden.name!r} are in the cache; run again to finish "
            "(only missing answers are asked for)",
            err=True,
        )
        raise SystemExit(stop.exit_code) from None
    finally:
        cache.close()
    summaries = [summarise(c, run.results[c]) for c in candidates]
    gated = [gate_run(run, baseline, c, margin, confidence) for c in candidates if baseline and c != baseline]
    gates = [g for g in gated if g is not None]
    document = run_document(run, summaries, gates)
    path = write_record(document, out)
    path.with_suffix(".html").write_text(render_html(document), encoding="utf-8")
    print_report(document, Console())
    click.echo(f"record: {path}\npage:   {path.with_suffix('.html')}")
    if record:
        where = config.ledger.url.split("@")[-1]
        click.echo(f"ledger: {run.calls_recorded} calls recorded as eval run {run.run_id} in {where}")
    raise SystemExit(run_exit_code([g.outcome for g in gates], run.judge_errors))


@eval_command.command("gate")
@click.argument("record_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--baseline", required=True)
@click.option("--candidate", required=True)
@click.option("--margin", default=0.02, show_default=True)
@click.option("--confidence", default=0.95, show_default=True)
def gate_command(record_path: str, baseline: str, candidate: str, margin: float, confidence: float) -> None:
    """Re-run the regression gate on a stored run record (no model calls)."""
    document = orjson.loads(Path(record_path).read_bytes())
    by: dict[str, dict[str, dict[str, object]]] = {}
    for r in document["results"]:
        by.setdefault(r["candidate"], {})[r["case_id"]] = r
    for name in (baseline, candidate):
        if name not in by:
            raise click.ClickException(f"{name!r} is not in this run; candidates: {', '.join(sorted(by))}")
    a, b = by[baseline], by[candidate]
    # Cases without a score on either side (a judge error) are not comparable: left out, as in ``run``.
    ids = [i for i in a if i in b and a[i]["score"] is not None and b[i]["score"] is not None]
    if not ids:
        raise click.ClickException(f"no case has a score for both {baseline!r} and {candidate!r}")
    result = gate(
        baseline, candidate,
        [float(a[i]["score"]) for i in ids], [float(b[i]["score"]) for i in ids],  # type: ignore[arg-type]
        [bool(a[i]["passed"]) for i in ids], [bool(b[i]["passed"]) for i in ids],
        margin=margin, confidence=confidence, seed=int(document["params"]["seed"] or 0),
    )  # fmt: skip
    click.echo(result.text)
    raise SystemExit(EXIT_CODES[result.outcome])


@eval_command.command("validate")
@click.argument("golden_path", type=click.Path(dir_okay=False))
@click.option(
    "-c", "--config", "config_path", type=click.Path(dir_okay=False), help="Also check the models against it."
)
@click.option("--judge", "judge_model", help="The run's --judge, for checks that name no model.")
@click.option(
    "-m", "--model", "models", multiple=True, help="A candidate the run will use (with -c); repeat."
)
def validate_command(
    golden_path: str, config_path: str | None, judge_model: str | None, models: tuple[str, ...]
) -> None:
    """Check a golden set as ``eval run`` does before its first call: every bad line with its number, then
    every check's parameters and references, the embedding model for similarity checks, and (with -c) the
    candidate and judge models."""
    try:
        golden = load_golden_set(golden_path)
        config = load_config(config_path) if config_path else None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    problems = preflight(golden, judge_model, config, models, require_judge=config is not None)
    if problems:
        raise click.ClickException(describe(problems))
    _describe(golden)
    if config is None and any(c.type == "judge" for case in golden.cases for c in case.checks):
        click.echo("judge models not checked: pass -c CONFIG (and --judge) to check them")


def _describe(golden: GoldenSet) -> None:
    types = sorted({c.type for case in golden.cases for c in case.checks})
    click.echo(f"{golden.name}: {len(golden.cases)} cases; checks: {', '.join(types)}")


@eval_command.command("import-openai-evals")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="The golden set to write."
)
def import_openai_evals_command(source: str, output: str) -> None:
    """Convert an OpenAI evals samples file (input/ideal JSONL) to a golden set."""
    try:
        cases = import_openai_evals(source)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    Path(output).write_text(dump_cases(cases), encoding="utf-8")
    click.echo(f"wrote {len(cases)} cases to {output}")


@eval_command.command("import-promptfoo")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="The golden set to write."
)
@click.option("--prompt", help="A prompt template ({{var}}) used instead of the config's prompts.")
@click.option("--workload", help="The gateway workload every case belongs to.")
@click.option(
    "--skip-unsupported", is_flag=True, help="Import the tests that can be, and list the ones skipped."
)
def import_promptfoo_command(
    source: str, output: str, prompt: str | None, workload: str | None, skip_unsupported: bool
) -> None:
    """Convert a promptfoo config or tests file (YAML, JSON, JSONL, CSV) to a golden set; every feature
    that cannot be imported is listed at once with its file and line."""
    try:
        imported = convert_promptfoo(
            source, prompt=prompt, workload=workload, skip_unsupported=skip_unsupported
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    Path(output).write_text(dump_cases(imported.cases), encoding="utf-8")
    for line in imported.summary.lines(len(imported.cases)):
        click.echo(line)
    click.echo(f"wrote {len(imported.cases)} cases to {output}")


@eval_command.command("from-ledger")
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--workload", required=True, help="A workload with log_content: true.")
@click.option("--limit", default=200, show_default=True, help="Newest answered requests to take.")
@click.option("--check", "check_type", default="exact", show_default=True, help="Check for each case.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
def from_ledger_command(config_path: str, workload: str, limit: int, check_type: str, output: str) -> None:
    """Build a golden set from ledger samples of a workload that opted in to content logging."""
    from modelyard.ledger.store import RequestFilter, open_store

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if workload not in config.workloads or not config.workloads[workload].log_content:
        raise click.ClickException(f"workload {workload!r} does not log content (set log_content: true)")
    store = open_store(config.ledger.url)
    try:
        rows = store.query(RequestFilter(workload=workload, status=200), limit=limit)
    finally:
        store.close()
    cases = cases_from_ledger(rows, (Check(check_type),))
    if not cases:
        raise click.ClickException(f"no answered requests with content for workload {workload!r}")
    Path(output).write_text(dump_cases(cases), encoding="utf-8")
    click.echo(f"wrote {len(cases)} cases to {output}; review the expected answers before trusting them")
