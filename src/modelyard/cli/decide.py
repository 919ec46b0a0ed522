"""``modelyard decide``: API or self-hosted, per workload, from traffic and an organisation profile.

Defaults to the bundled example organisation and the bundled synthetic trace, so the first run needs nothing.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import click
import orjson
from rich.console import Console

from modelyard.errors import ConfigError

#: The repository's examples (present in a source checkout, which is where the README's first command runs).
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@click.command("decide")
@click.option(
    "--org",
    "org_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Organisation profile YAML (default: the bundled example, examples/org.yaml).",
)
@click.option(
    "--traffic",
    default=None,
    help="Ledger URL (sqlite:///x.db, postgresql://...), ledger export (.parquet, or .jsonl), JSONL of calls, "
    "LiteLLM spend-log CSV, or OpenAI usage export (.json/.csv) (default: the bundled synthetic trace).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="reports",
    show_default=True,
    help="Folder for decision.html and decision.json.",
)
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Workloads planned before any traffic exists (YAML, see examples/plan.yaml). Alone: a plan-only "
    "run; with --traffic: measured and planned workloads together (measured wins where both name one).",
)
@click.option(
    "--workload-from",
    "workload_from",
    default=None,
    metavar="COLUMN",
    help="Imports: what names the workload, overriding the org profile's traffic section. LiteLLM spend logs: "
    "request_tag (first tag; LiteLLM's automatic User-Agent tags ignored), model_group, team_id, user, end_user, "
    "api_key, model, metadata.<key> (e.g. metadata.user_api_key_alias) or any column; OpenAI usage: project, "
    "api_key, user, model.",
)
@click.option(
    "--default-workload",
    default="untagged",
    show_default=True,
    metavar="NAME",
    help="Workload of rows that name none (untagged LiteLLM requests, usage without a project, JSONL lines "
    "without 'workload'); the run says how many there were.",
)
@click.option("--today", default=None, help="Date of the run (YYYY-MM-DD), for reproducible reports.")
@click.option(
    "--evals",
    "evals_dir",
    type=click.Path(file_okay=False),
    default=".modelyard/evals",
    show_default=True,
    help="Eval results (modelyard eval run --out): every */latest.json adds measured quality; "
    "the organisation profile's own quality entries win.",
)
def decide_command(
    org_path: str | None,
    traffic: str | None,
    out_dir: str,
    plan_path: str | None,
    workload_from: str | None,
    default_workload: str,
    today: str | None,
    evals_dir: str,
) -> None:
    """Per-workload TCO, break-even, portfolio, scorecard and migration triggers, with an HTML report."""
    from modelyard.economics.engine import decide, load_catalogs
    from modelyard.economics.org import load_org
    from modelyard.economics.plan import load_plan
    from modelyard.economics.quality import load_eval_quality, merge_quality
    from modelyard.economics.traffic import Traffic, read_traffic
    from modelyard.report.html import render
    from modelyard.report.json_doc import document
    from modelyard.report.terminal import print_summary

    console = Console(stderr=False)
    try:
        org = merge_quality(load_org(org_path or EXAMPLES / "org.yaml"), load_eval_quality(evals_dir))
        plan = load_plan(plan_path) if plan_path else None
        if plan is not None and traffic is None:
            data = Traffic(f"plan {plan_path} (no traffic)", [], [])
        else:
            spec = traffic or str(EXAMPLES / "traffic" / "synthetic.jsonl.gz")
            with console.status("reading traffic…"):
                data = read_traffic(
                    spec,
                    litellm_workload_from=org.traffic.litellm_workload_from,
                    openai_workload_from=org.traffic.openai_workload_from,
                    openai_names=org.traffic.openai_workloads,
                    workload_from=workload_from,
                    default_workload=default_workload,
                )
            if plan is not None:
                data = replace(data, source=f"{data.source} + plan {plan_path}")
        with console.status("pricing options and solving the portfolio…"):
            decision = decide(
                org, data, load_catalogs(org), date.fromisoformat(today) if today else date.today(), plan
            )
    except (ConfigError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "decision.html").write_text(render(decision), encoding="utf-8")
    (out / "decision.json").write_bytes(orjson.dumps(document(decision), option=orjson.OPT_INDENT_2))
    print_summary(decision, console)
    console.print(f"Report: {out / 'decision.html'}  ·  JSON: {out / 'decision.json'}")
