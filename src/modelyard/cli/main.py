"""The ``modelyard`` command: one module per subcommand, gathered here."""

from __future__ import annotations

import importlib
import logging

import click

from modelyard import __version__

#: subcommand name → "module:attribute" of its click command, imported only when used.
COMMANDS = {
    "serve": "modelyard.cli.serve:serve_command",
    "check": "modelyard.cli.serve:check_command",
    "openapi": "modelyard.cli.serve:openapi_command",
    "ledger": "modelyard.cli.ledger:ledger_group",
    "decide": "modelyard.cli.decide:decide_command",
    "eval": "modelyard.cli.eval:eval_command",
    "keys": "modelyard.cli.keys:keys_group",
    "bench-endpoint": "modelyard.cli.bench_endpoint:bench_endpoint_command",
    "catalog": "modelyard.cli.catalog:catalog_group",
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when it runs, so ``modelyard serve`` never loads the economics
    engine and ``--help`` stays instant."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            return None
        command: click.Command = getattr(module, attribute)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelyard")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details (never credentials).")
def cli(verbose: bool) -> None:
    """modelyard: meter every LLM call through one OpenAI-compatible gateway, and decide per workload
    between a proprietary API and a self-hosted open model.

    \b
    Start here:
      modelyard serve --config examples/modelyard.yaml   run the gateway
      modelyard decide                                   the decision report on the bundled example
      modelyard ledger summary --config FILE             spend and latency per workload
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )


def main() -> None:
    cli()
