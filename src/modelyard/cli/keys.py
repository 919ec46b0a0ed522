"""``modelyard keys``: client keys.

``keys new`` makes a key for the config file (printed once, with the ``auth.keys`` entry holding its
hash). ``keys create / list / revoke / rotate / limits`` manage runtime keys in the ledger database
(``--db URL`` or ``--config`` naming it): no restart, and a revocation reaches every gateway process
within ``governance.key_cache_ttl_s`` (5 s by default).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import yaml

from modelyard.cli.database import database_options, database_url
from modelyard.gateway.auth import hash_key, new_key


@click.group("keys")
def keys_group() -> None:
    """Client API keys: in the config (`new`) or at runtime in the ledger database (`create`, ...)."""


@click.command("new")
@click.option("--id", "key_id", required=True, help="A name for the key, e.g. acme-prod.")
@click.option("--tenant", required=True, help="The tenant its calls are attributed to.")
@click.option("--workload", "workloads", multiple=True, help="Limit the key to these workloads (repeatable).")
@click.option(
    "--data-class",
    type=click.Choice(["public", "internal", "confidential", "restricted"]),
    default=None,
    help="The least strict data class this key's requests carry.",
)
def new_command(key_id: str, tenant: str, workloads: tuple[str, ...], data_class: str | None) -> None:
    """Create a key. The key is shown once: only its hash goes in the config."""
    key = new_key()
    entry: dict[str, object] = {"sha256": hash_key(key), "tenant": tenant}
    if workloads:
        entry["workloads"] = list(workloads)
    if data_class:
        entry["data_class"] = data_class
    click.echo(f"API key (shown once, give it to the client): {key}", err=True)
    click.echo("Add to your config under auth.keys:", err=True)
    click.echo(yaml.safe_dump({key_id: entry}, sort_keys=False).rstrip())


keys_group.add_command(new_command)


# --- runtime keys in the ledger database -------------------------------------------------------------


@contextmanager
def _keys(config_path: Path | None, db_url: str | None) -> Iterator[Any]:
    from modelyard.governance.keys import KeyStore

    db_url = database_url(config_path, db_url, "database")
    try:
        store = KeyStore(db_url)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # the driver's connection errors: say which database and why
        raise click.ClickException(
            f"cannot open the key database at {db_url.split('@')[-1]}: {exc}"
        ) from None
    try:
        yield store
    except (ValueError, LookupError) as exc:
        raise click.ClickException(str(exc.args[0] if exc.args else exc)) from None
    finally:
        store.close()


def _show_once(key: str) -> None:
    click.echo(f"API key (shown once, give it to the client): {key}", err=True)


@click.command("create")
@database_options
@click.option("--id", "key_id", required=True, help="A name for the key, e.g. acme-prod.")
@click.option("--tenant", required=True, help="The tenant its calls are attributed to.")
@click.option("--workload", "workloads", multiple=True, help="Limit the key to these workloads (repeatable).")
@click.option(
    "--data-class", type=click.Choice(["public", "internal", "confidential", "restricted"]), default=None
)
def create_command(
    config_path: Path | None,
    db_url: str | None,
    key_id: str,
    tenant: str,
    workloads: tuple[str, ...],
    data_class: str | None,
) -> None:
    """Create a runtime key in the database; the key is shown once, only its hash is stored."""
    with _keys(config_path, db_url) as store:
        _, key = store.create(key_id, tenant, workloads=workloads, data_class=data_class)
    _show_once(key)
    click.echo(f"created {key_id} (tenant {tenant})")


@click.command("list")
@database_options
@click.option("--all", "include_revoked", is_flag=True, help="Also the revoked keys.")
def list_command(config_path: Path | None, db_url: str | None, include_revoked: bool) -> None:
    """The runtime keys: id, tenant, workloads, limits, state. Never the keys themselves."""
    with _keys(config_path, db_url) as store:
        records = store.list_keys(include_revoked=include_revoked)
    for r in records:
        limits = " ".join(
            f"{k}={v}" for k, v in r.limits.model_dump(exclude_none=True, exclude={"timezone"}).items()
        )
        state = "active" if r.active else "revoked"
        click.echo(f"{r.key_id}\t{r.tenant}\t{','.join(r.workloads) or '*'}\t{state}\t{limits or '-'}")


@click.command("revoke")
@database_options
@click.option("--id", "key_id", required=True)
def revoke_command(config_path: Path | None, db_url: str | None, key_id: str) -> None:
    """Revoke a key: every gateway refuses it within governance.key_cache_ttl_s."""
    with _keys(config_path, db_url) as store:
        store.revoke(key_id)
    click.echo(f"revoked {key_id}")


@click.command("rotate")
@database_options
@click.option("--id", "key_id", required=True)
def rotate_command(config_path: Path | None, db_url: str | None, key_id: str) -> None:
    """A new secret for the key (same id, tenant and limits); the old one stops working."""
    with _keys(config_path, db_url) as store:
        _, key = store.rotate(key_id)
    _show_once(key)
    click.echo(f"rotated {key_id}")


@click.command("limits")
@database_options
@click.option("--id", "key_id", required=True)
@click.option("--usd-per-day", type=Decimal, default=None)
@click.option("--usd-per-month", type=Decimal, default=None)
@click.option("--tokens-per-day", type=int, default=None)
@click.option("--tokens-per-month", type=int, default=None)
@click.option("--requests-per-minute", type=int, default=None)
@click.option("--tokens-per-minute", type=int, default=None)
@click.option("--timezone", default="UTC", show_default=True, help="Where the key's days and months start.")
def limits_command(config_path: Path | None, db_url: str | None, key_id: str, **limits: Any) -> None:
    """Set the key's limits (replacing the previous ones; an option left out means no such limit)."""
    from pydantic import ValidationError

    from modelyard.governance.keys import KeyLimits

    try:
        parsed = KeyLimits.model_validate(limits)
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from None
    with _keys(config_path, db_url) as store:
        store.set_limits(key_id, parsed)
    click.echo(f"limits of {key_id}: {parsed.model_dump(exclude_none=True)}")


for _command in (create_command, list_command, revoke_command, rotate_command, limits_command):
    keys_group.add_command(_command)
