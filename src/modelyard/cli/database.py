"""The one way CLI commands name the ledger database: ``--db URL`` or ``--config FILE`` (its ledger.url)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def database_options(command: F) -> F:
    """Adds ``--db`` and ``--config`` (passed as ``db_url`` and ``config_path``)."""
    command = click.option("--db", "db_url", metavar="URL", help="sqlite:///path.db or postgresql://...")(
        command
    )
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The gateway's config file; its ledger.url names the database.",
    )(command)


def database_url(config_path: Path | None, db_url: str | None, what: str) -> str:
    """The URL given, else the config's ledger.url; a usage error naming ``what`` when neither is."""
    from modelyard.config import load_config
    from modelyard.errors import ConfigError

    if db_url is not None:
        return db_url
    if config_path is None:
        raise click.UsageError(f"name the {what}: --db sqlite:///modelyard.db, or --config modelyard.yaml")
    try:
        return load_config(config_path).ledger.url
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
