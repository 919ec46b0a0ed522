"""``modelyard keys new``: make a client key; print it once, and the config entry holding only its hash."""

from __future__ import annotations

import click
import yaml

from modelyard.gateway.auth import hash_key, new_key


@click.group("keys")
def keys_group() -> None:
    """Client API keys of the gateway (stored as SHA-256 hashes in the config)."""


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
