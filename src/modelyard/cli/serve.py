"""``modelyard serve``, ``modelyard check`` and ``modelyard openapi``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

import click
import orjson

from modelyard.config.loader import load_config, missing_credentials
from modelyard.config.schema import Config
from modelyard.errors import ConfigError


def _load(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _run(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop

        uvloop.run(coro)  # libuv's loop: measurably cheaper per request than asyncio's default
    except ImportError:  # pragma: no cover - uvloop is a hard dependency; kept for other platforms
        asyncio.run(coro)


@click.command("serve")
@click.option(
    "-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False), help="YAML config file."
)
@click.option("--host", default=None, help="Address to listen on (default: server.host in the config).")
@click.option(
    "--port", default=None, type=int, help="Port to listen on (default: server.port in the config)."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1, max=256),
    help="Gateway processes sharing the port (one per core); a crashed one is restarted.",
)
@click.option("--listen-fd", default=None, type=int, hidden=True)  # a worker of --workers: its socket
def serve_command(
    config_path: str, host: str | None, port: int | None, workers: int, listen_fd: int | None
) -> None:
    """Run the OpenAI-compatible gateway. Point clients at http://HOST:PORT/v1."""
    config = _load(config_path)
    if workers > 1 and listen_fd is None:
        from modelyard.cli.supervisor import supervise

        _check_shared_state(config)

        try:
            code = supervise(
                config_path,
                host or config.server.host,
                config.server.port if port is None else port,
                workers,
            )
        except OSError as exc:  # the port is taken, the address not ours
            raise click.ClickException(f"cannot listen on {host or config.server.host}: {exc}") from None
        sys.exit(code)
    from modelyard.app import serve_forever

    sock = None
    if listen_fd is not None:
        from modelyard.cli.supervisor import inherited_socket

        sock = inherited_socket(listen_fd)
    try:
        _run(serve_forever(config, host, port, sock))
    except ConfigError as exc:  # a price file, a ledger URL...: one line, never a traceback
        raise click.ClickException(str(exc)) from None


def _check_shared_state(config: Config) -> None:
    """Budgets and rate limits that only one process would see are refused with ``--workers``."""
    governance = config.governance
    if governance is None:
        return
    if governance.store.kind == "memory":
        raise click.ClickException(
            "governance.store kind 'memory' keeps budgets inside one process, so N workers would allow N"
            " times each budget: with --workers use kind 'sqlite' (the default), 'postgres' or 'redis'"
        )
    if governance.rate_limits_in == "limits" and governance.store.kind != "redis":
        raise click.ClickException(
            "governance.rate_limits_in 'limits' counts in each process's memory unless the store is Redis:"
            " with --workers use rate_limits_in 'store' (the default) or a {kind: redis} store"
        )


@click.command("check")
@click.option(
    "-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False), help="YAML config file."
)
@click.option(
    "--max-age-days",
    default=180,
    show_default=True,
    type=click.IntRange(min=0),
    help="Warn about catalog prices of the configured models older than this.",
)
def check_command(config_path: str, max_age_days: int) -> None:
    """Validate a config file and say what it routes where."""
    from datetime import date

    from modelyard.catalog.age import stale_figures
    from modelyard.catalog.prices import load_catalog
    from modelyard.gateway.model_kinds import kind_conflicts
    from modelyard.gateway.targets import unpriced_models

    config = _load(config_path)
    try:  # the price files are part of the config: "valid" only once they load
        catalog = load_catalog(config.catalog.price_files)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{config_path}: valid")
    for name, model in sorted(config.models.items()):
        provider = config.providers[model.provider]
        click.echo(f"  model {name} -> {model.provider} ({provider.kind}) {model.upstream_model or name}")
    for name, workload in sorted(config.workloads.items()):
        click.echo(
            f"  workload {name}: data class {workload.data_class}, default model {workload.model or '-'}"
        )
    for line in missing_credentials(config):
        click.echo(f"  warning: {line}", err=True)
    for name in unpriced_models(config, catalog):
        click.echo(
            f"  warning: model {name} has no catalog price; its calls will be recorded as unpriced", err=True
        )
    for line in kind_conflicts(config, catalog):
        click.echo(f"  warning: {line}", err=True)
    used = [
        (config.providers[m.provider].kind, m.price_as or m.upstream_model or name)
        for name, m in config.models.items()
    ]
    for line in stale_figures(catalog, today=date.today(), max_age_days=max_age_days, api_models=used):
        click.echo(f"  warning: {line}", err=True)


@click.command("openapi")
def openapi_command() -> None:
    """Print the gateway's OpenAPI document (docs/openapi.json is this output)."""
    from modelyard.http.openapi import openapi_document

    sys.stdout.write(
        orjson.dumps(openapi_document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    )
    sys.stdout.write("\n")
