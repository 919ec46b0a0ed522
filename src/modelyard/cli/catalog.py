"""``modelyard catalog``: what is priced (API models, GPU offers, serving profiles by tier) and how old it is;
``modelyard catalog import-litellm``: LiteLLM's price map as a local price file, so current models are priced
in one command."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import yaml

from modelyard.errors import ConfigError

#: The provider kinds modelyard has adapters for: the default of an import.
ROUTED_KINDS = ("openai", "anthropic", "gemini", "cohere", "jina", "voyage")


def _day(value: str | None) -> date:
    try:
        return date.fromisoformat(value) if value else date.today()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@click.group("catalog", invoke_without_command=True)
@click.option(
    "--org",
    "org_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Organisation profile: layer its catalog.price_files, gpu_files and profiles_dir.",
)
@click.option(
    "--price-file", "price_files", multiple=True, help="Extra price file (YAML, or LiteLLM's JSON)."
)
@click.option("--gpu-file", "gpu_files", multiple=True, help="Extra GPU offers file (YAML).")
@click.option(
    "--profiles-dir",
    default=".modelyard/profiles",
    show_default=True,
    help="Measured serving profiles (written by modelyard bench-endpoint).",
)
@click.option(
    "--section", type=click.Choice(["all", "api", "gpus", "profiles"]), default="all", show_default=True
)
@click.option(
    "--max-age-days",
    default=180,
    show_default=True,
    type=click.IntRange(min=0),
    help="Name the figures older than this.",
)
@click.option("--today", default=None, help="Date to measure ages from (YYYY-MM-DD; default: today).")
@click.pass_context
def catalog_group(
    ctx: click.Context, org_path: str | None, price_files: tuple[str, ...], gpu_files: tuple[str, ...],
    profiles_dir: str, section: str, max_age_days: int, today: str | None,
) -> None:  # fmt: skip
    """List what is priced: API models (price, date, source), GPU offers, serving profiles with their tier."""
    if ctx.invoked_subcommand is not None:
        return
    from modelyard.catalog.age import dated_figures, stale_figures
    from modelyard.catalog.gpus import load_gpu_catalog
    from modelyard.catalog.prices import load_catalog
    from modelyard.catalog.serving import load_serving_catalog

    day = _day(today)
    try:
        if org_path is not None:
            from modelyard.economics.org import load_org

            org = load_org(org_path)
            price_files = (*org.catalog.price_files, *price_files)
            gpu_files = (*org.catalog.gpu_files, *gpu_files)
            profiles_dir = org.catalog.profiles_dir
        prices = load_catalog(price_files)
        gpus = load_gpu_catalog(gpu_files)
        serving = load_serving_catalog(profiles_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if section in ("all", "api"):
        _echo_prices(prices)
    if section in ("all", "gpus"):
        _echo_gpus(gpus)
    if section in ("all", "profiles"):
        _echo_profiles(serving.profiles, profiles_dir)
    stale = stale_figures(
        prices if section in ("all", "api") else None,
        gpus if section in ("all", "gpus") else None,
        today=day,
        max_age_days=max_age_days,
        profiles=serving.profiles if section in ("all", "profiles") else (),
    )
    total = len(dated_figures(prices, gpus, profiles=serving.profiles))
    click.echo(
        f"\nOlder than {max_age_days} days on {day.isoformat()}: {len(stale)} of {total} dated figures"
    )
    for line in stale:
        click.echo(f"  {line}")


def _money(value: Decimal | None) -> str:
    return "-" if value is None else format(value, "f")


def _echo_prices(prices: Any) -> None:
    click.echo(f"API prices: {len(prices)} models (catalog {prices.version}); USD per 1M tokens")
    click.echo(f"  {'provider/model':<44} {'input':>8} {'output':>8} {'cached':>8}  {'as of':<10}  source")
    for (provider, model), p in sorted(prices.prices.items()):
        r = p.rates
        searches = f"  (+ {_money(p.search_unit * 1000)} per 1K search units)" if p.search_unit else ""
        click.echo(
            f"  {provider + '/' + model:<44} {_money(r.input):>8} {_money(r.output):>8} "
            f"{_money(r.cached_input):>8}  {p.as_of.isoformat():<10}  {p.source}{searches}"
        )


def _echo_gpus(gpus: Any) -> None:
    click.echo(f"\nGPU offers: {len(gpus.offers)} (catalog {gpus.version}); USD per GPU-hour")
    click.echo(f"  {'vendor/gpu':<30} {'on demand':>9} {'reserved':>9} {'spot':>9}  {'as of':<10}  source")
    for o in sorted(gpus.offers, key=lambda o: o.key):
        click.echo(
            f"  {o.key:<30} {_money(o.on_demand):>9} {_money(o.reserved):>9} {_money(o.spot):>9}  "
            f"{o.as_of.isoformat():<10}  {o.source}"
        )


def _echo_profiles(profiles: list[Any], profiles_dir: str) -> None:
    from modelyard.catalog.estimate import grid_coverage

    measured = [p for p in profiles if p.source == "measured"]
    published = [p for p in profiles if p.source == "published"]
    click.echo("\nServing profiles, by tier (measured > published > estimated)")
    click.echo(f"  measured: {len(measured)} in {profiles_dir}" + ("" if measured else " (none yet: run "
               "`modelyard bench-endpoint`)"))  # fmt: skip
    for tier in (measured, published):
        for p in sorted(tier, key=lambda p: (p.model, p.gpu, p.gpu_count)):
            click.echo(f"    {p.source:<9} {p.model} on {p.gpu_count}x {p.gpu} ({p.quantization}, {p.engine}) "
                       f"{p.date.isoformat()}: {p.reference or '-'}")  # fmt: skip
    click.echo(f"  published: {len(published)}")
    tool, generated, deployments = grid_coverage()
    click.echo(f"  estimated: {len(deployments)} deployments in the {tool} grid of {generated.isoformat()} "
               "(others: last-resort roofline)")  # fmt: skip
    for model, gpu, count, quant in deployments:
        click.echo(f"    estimated {model} on {count}x {gpu} ({quant})")


@catalog_group.command("import-litellm")
@click.argument("litellm_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--output", "-o", required=True, type=click.Path(dir_okay=False), help="Price file to write (YAML)."
)
@click.option(
    "--provider",
    "providers",
    multiple=True,
    help=f"Provider kind to keep (repeatable; default: {', '.join(ROUTED_KINDS)}).",
)
@click.option("--all-providers", is_flag=True, help="Keep every provider LiteLLM prices.")
@click.option(
    "--include-bundled",
    is_flag=True,
    help="Also write models the bundled catalog prices (by default they keep their cited prices).",
)
@click.option("--as-of", default=None, help="Date the LiteLLM file was taken (YYYY-MM-DD; default: today).")
def import_litellm_command(
    litellm_file: str, output: str, providers: tuple[str, ...], all_providers: bool, include_bundled: bool,
    as_of: str | None,
) -> None:  # fmt: skip
    """Write LiteLLM's model_prices_and_context_window.json as a modelyard price file (catalog.price_files)."""
    from modelyard.catalog.litellm import parse_litellm_prices
    from modelyard.catalog.prices import _parse_text, is_litellm_price_map, load_catalog, parse_price_yaml

    path = Path(litellm_file)
    day = _day(as_of)
    try:
        raw = _parse_text(path.read_text(encoding="utf-8"), path)
        if not is_litellm_price_map(raw):
            raise ConfigError(
                f"{path}: not LiteLLM's price map (a JSON object of models with input_cost_per_token)"
            )
        imported = parse_litellm_prices(raw, source=f"LiteLLM {path.name}", as_of=day)
    except (ConfigError, OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(str(exc)) from None
    kinds = None if all_providers else set(providers or ROUTED_KINDS)
    bundled = load_catalog()
    kept, skipped = [], 0
    for key, price in sorted(imported.prices.items()):
        if kinds is not None and price.provider not in kinds:
            continue
        if not include_bundled and bundled.price_for(*key) is not None:
            skipped += 1
            continue
        kept.append(price_entry(price))
    document = {
        "version": f"litellm-{day.isoformat()}",
        "currency": "USD",
        "unit": "per 1M tokens",
        "models": kept,
    }
    parse_price_yaml(document, source=output)  # what is written must load back
    header = (f"# Imported from {path.name} (LiteLLM's price map) by `modelyard catalog import-litellm` on "
              f"{date.today().isoformat()}; prices as of {day.isoformat()}.\n"
              "# Use it with catalog.price_files in the organisation profile or the gateway config.\n")  # fmt: skip
    Path(output).write_text(header + yaml.safe_dump(document, sort_keys=False, width=120), encoding="utf-8")
    by_kind: dict[str, int] = {}
    for entry in kept:
        by_kind[entry["provider"]] = by_kind.get(entry["provider"], 0) + 1
    counts = ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items())) or "none"
    click.echo(f"wrote {len(kept)} models to {output} ({counts}); {skipped} already in the bundled catalog kept "
               "their cited prices (--include-bundled writes them too)")  # fmt: skip


def price_entry(price: Any) -> dict[str, Any]:
    """A :class:`ModelPrice` in the price file's shape (prices as strings: YAML never makes them floats)."""
    entry: dict[str, Any] = {"provider": price.provider, "model": price.model}
    entry |= _rates(price.rates)
    if price.batch_input is not None:
        entry["batch_input"] = _money(price.batch_input)
    if price.batch_output is not None:
        entry["batch_output"] = _money(price.batch_output)
    if price.long_context is not None:
        entry["long_context"] = {"threshold": price.long_context_threshold, **_rates(price.long_context)}
    if price.search_unit is not None:
        entry["per_1k_search_units"] = _money(price.search_unit * 1000)
    entry |= {"source": price.source, "as_of": price.as_of.isoformat(), "notes": price.notes}
    return entry


def _rates(rates: Any) -> dict[str, str]:
    fields = ("input", "output", "cached_input", "cache_write", "cache_write_1h", "reasoning")
    return {f: _money(getattr(rates, f)) for f in fields if getattr(rates, f) is not None}
