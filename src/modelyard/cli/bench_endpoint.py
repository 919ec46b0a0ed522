"""``modelyard bench-endpoint``: load-test an OpenAI-compatible server and write a measured serving profile.

The endpoint is given explicitly (``--url`` and ``--model``, a key by ``--api-key-env``) or as a model of
the gateway config (``--config`` and ``--model``). Every input problem ends in one line via
:class:`click.ClickException`; Ctrl-C stops the sweep and keeps what finished.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import date
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console

from modelyard.benchmark.client import Endpoint
from modelyard.benchmark.errors import BenchmarkError
from modelyard.benchmark.loadgen import LevelSpec
from modelyard.benchmark.stats import Slo
from modelyard.benchmark.sweep import SweepResult, concurrency_plan, rate_plan, run_sweep
from modelyard.benchmark.workload import TokenLengths, fixed_lengths, lengths_from_ledger, lengths_from_trace
from modelyard.errors import ConfigError


def _numbers(text: str, kind: type[int] | type[float]) -> list[Any]:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise click.BadParameter("every level must be a positive number")
    return values


@click.command("bench-endpoint")
@click.option("--url", help="API base URL of the server, e.g. http://127.0.0.1:8000/v1.")
@click.option("--model", required=True, help="Model the server serves (or, with --config, a gateway model).")
@click.option("--api-key-env", help="Environment variable holding the server's API key.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Gateway config: take the endpoint of --model from it.",
)
@click.option(
    "--concurrency",
    "concurrency",
    default=None,
    help="Concurrency levels, e.g. 1,2,4,8,16,32 (the default sweep).",
)
@click.option(
    "--rate",
    "rates",
    default=None,
    help="Request rates (req/s, Poisson arrivals) instead of concurrency levels.",
)
@click.option(
    "--requests",
    "max_requests",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="At most this many requests per level.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="At most this many seconds of issuing per level.",
)
@click.option(
    "--input-tokens",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Prompt length, without --workload/--trace.",
)
@click.option(
    "--output-tokens",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Answer length (max_tokens), without --workload/--trace.",
)
@click.option("--workload", help="Draw token lengths from this workload's requests in the ledger.")
@click.option("--ledger", "ledger_url", help="Ledger URL for --workload (default: the config's ledger).")
@click.option(
    "--trace",
    type=click.Path(dir_okay=False),
    help='JSONL of {"input_tokens", "output_tokens"} to draw lengths from.',
)
@click.option("--slo-ttft-ms", type=click.FloatRange(min=0), help="Objective: p95 time to first token.")
@click.option("--slo-e2e-ms", type=click.FloatRange(min=0), help="Objective: p95 end-to-end latency.")
@click.option(
    "--gpu",
    help="GPU the server runs on, as in the GPU catalog (e.g. H100-SXM-80GB); needed for the profile.",
)
@click.option(
    "--gpu-file",
    "gpu_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A GPU file layered over the bundled catalog, for a GPU it does not list (as catalog.gpu_files).",
)
@click.option("--gpu-count", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--engine", help="Serving engine and version (default: what the server reports, e.g. vllm).")
@click.option("--quantization", default="bf16", show_default=True)
@click.option("--profile-model", help="Model name in the profile (default: --model without its org/ prefix).")
@click.option(
    "--profiles-dir", default=".modelyard/profiles", show_default=True, type=click.Path(file_okay=False)
)
@click.option("--no-profile", is_flag=True, help="Measure only; write no serving profile.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write every figure as JSON here.")
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Write the offline HTML page here."
)
@click.option(
    "--no-ignore-eos", is_flag=True, help="Do not send ignore_eos (answers may end before max_tokens)."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=600.0,
    show_default=True,
    help="Seconds allowed per request.",
)
@click.option("--seed", type=int, default=0, show_default=True)
def bench_endpoint_command(**options: Any) -> None:
    """Measure throughput and latency per load level, find the knee, and write a measured serving profile."""
    console = Console()
    endpoint = _endpoint(options)
    lengths = _lengths(options)
    slo = Slo(options["slo_ttft_ms"], options["slo_e2e_ms"])
    plan = _plan(options)
    if not options["no_profile"] and not options["gpu"]:
        raise click.UsageError("--gpu is needed to label the serving profile (or pass --no-profile)")
    if options["gpu"]:
        _check_gpu(options["gpu"], options["gpu_files"])
    result = _run(endpoint, plan, lengths, slo, options["timeout"], options["seed"], console)
    _report(result, options, console)


def _check_gpu(name: str, files: tuple[str, ...]) -> None:
    """A profile labelled with a GPU the catalog does not know would never be matched by ``decide``."""
    from modelyard.catalog.gpus import load_gpu_catalog

    try:
        catalog = load_gpu_catalog(files)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    known = {g.name for g in catalog.gpus} | {o.gpu for o in catalog.offers}
    if name not in known:
        raise click.UsageError(
            f"--gpu {name!r} is not in the GPU catalog; known: {', '.join(sorted(known))} "
            "(or add it with --gpu-file)"
        )


def _run(
    endpoint: Endpoint, plan: list[LevelSpec], lengths: TokenLengths, slo: Slo, timeout: float, seed: int,
    console: Console,
) -> SweepResult:  # fmt: skip
    from modelyard.benchmark.render import RichProgress

    async def main() -> SweepResult:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # The first Ctrl-C stops issuing and keeps what finished; a second one is the default (abort).
        loop.add_signal_handler(signal.SIGINT, _stop_then_default, stop, loop)
        try:
            with RichProgress(console) as progress:
                return await run_sweep(endpoint, plan, lengths, slo, stop, progress, timeout, seed)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    import uvloop

    try:
        # uvloop: the load generator's own cost per request is what bench/loadgen_bench.py measures.
        return uvloop.run(main())
    except BenchmarkError as exc:
        raise click.ClickException(str(exc)) from None


def _stop_then_default(stop: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
    stop.set()
    loop.remove_signal_handler(signal.SIGINT)


def _endpoint(options: dict[str, Any]) -> Endpoint:
    model, key_env, url = options["model"], options["api_key_env"], options["url"]
    if options["config_path"]:
        from modelyard.config import load_config

        try:
            config = load_config(options["config_path"])
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        if model not in config.models:
            raise click.ClickException(
                f"model '{model}' is not in {options['config_path']}; known: {', '.join(sorted(config.models))}"
            )
        provider = config.providers[config.models[model].provider]
        url, key_env, model = (
            url or provider.base_url,
            key_env or provider.api_key_env,
            config.upstream_model(model),
        )
    if not url:
        raise click.UsageError("give the server as --url (with --model), or a gateway model with --config")
    key = None
    if key_env:
        key = os.environ.get(key_env)
        if not key:
            raise click.ClickException(
                f"the environment variable {key_env} is not set; export the server's API key in it"
            )
    return Endpoint(url, model, key, ignore_eos=not options["no_ignore_eos"])


def _lengths(options: dict[str, Any]) -> TokenLengths:
    try:
        if options["trace"]:
            return lengths_from_trace(options["trace"])
        if options["workload"]:
            return lengths_from_ledger(_ledger_url(options), options["workload"])
    except BenchmarkError as exc:
        raise click.ClickException(str(exc)) from None
    return fixed_lengths(options["input_tokens"], options["output_tokens"])


def _ledger_url(options: dict[str, Any]) -> str:
    if options["ledger_url"]:
        return str(options["ledger_url"])
    if options["config_path"]:
        from modelyard.config import load_config

        return load_config(options["config_path"]).ledger.url
    raise click.UsageError("--workload needs --ledger URL (or --config, to use its ledger)")


def _plan(options: dict[str, Any]) -> list[LevelSpec]:
    if options["rates"] and options["concurrency"]:
        raise click.UsageError("give either --concurrency or --rate, not both")
    bounds = (options["max_requests"], options["duration"])
    if options["rates"]:
        return rate_plan(_numbers(options["rates"], float), *bounds)
    return concurrency_plan(_numbers(options["concurrency"] or "1,2,4,8,16,32", int), *bounds)


def _report(result: SweepResult, options: dict[str, Any], console: Console) -> None:
    from modelyard.benchmark.page import render_page
    from modelyard.benchmark.profile import Deployment, build_profile, write_profile
    from modelyard.benchmark.render import table

    console.print(table(result.levels, result.knee))
    if result.interrupted:
        console.print("[yellow]Interrupted: the figures cover the levels that ran.[/yellow]")
    if not result.levels:
        raise click.ClickException("no request finished, so there is nothing to report")
    knee = result.knee
    console.print(
        f"Knee: concurrency {knee.concurrency}, {knee.output_tokens_per_s:.0f} output tokens/s"
        if knee
        else "No level met the objective (or every level had errors over 1%): no knee."
    )
    worst = max(result.levels, key=lambda lv: lv.error_rate)
    if worst.errors:
        console.print(f"[yellow]Errors at concurrency {worst.concurrency}: {worst.first_error}[/yellow]")
    endpoint = result.info.endpoint
    deployment = Deployment(
        model=options["profile_model"] or endpoint.model.rsplit("/", 1)[-1],
        engine=options["engine"] or result.info.engine or "unknown",
        gpu=options["gpu"] or "unlabelled",
        gpu_count=options["gpu_count"],
        quantization=options["quantization"],
    )
    profile = None
    try:
        profile = build_profile(deployment, result.levels, knee, result.slo, date.today())
    except ValueError as exc:
        console.print(f"[yellow]No serving profile: {exc}[/yellow]")
    if profile is not None and not options["no_profile"]:
        console.print(f"Serving profile (measured): {write_profile(profile, options['profiles_dir'])}")
    if options["json_path"]:
        doc = _document(result, profile)
        Path(options["json_path"]).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        console.print(f"JSON: {options['json_path']}")
    if options["html_path"]:
        title = f"{endpoint.model} at {endpoint.base_url}"
        Path(options["html_path"]).write_text(
            render_page(title, result.levels, knee, result.slo), encoding="utf-8"
        )
        console.print(f"HTML: {options['html_path']}")


def _document(result: SweepResult, profile: dict[str, Any] | None) -> dict[str, Any]:
    """Everything measured: the profile plus per-level counts and how the load was shaped."""
    input_mean, output_mean = result.lengths.means
    return {
        "endpoint": {"url": result.info.endpoint.base_url, "model": result.info.endpoint.model,
                     "ignore_eos": result.info.endpoint.ignore_eos, "engine": result.info.engine},
        "load": {"lengths_from": result.lengths.source, "input_tokens_requested_mean": input_mean,
                 "output_tokens_requested_mean": output_mean,
                 "prompt_tokens_per_word": result.info.synth.tokens_per_word,
                 "prompt_overhead_tokens": result.info.synth.overhead},
        "interrupted": result.interrupted,
        "levels": [lv.as_dict() for lv in result.levels],
        "knee": None if result.knee is None else {"concurrency": result.knee.concurrency,
                 "output_tokens_per_s": result.knee.output_tokens_per_s, "requests_per_s": result.knee.requests_per_s},
        "profile": profile,
    }  # fmt: skip
