"""A measured profile from ``bench-endpoint`` changes what ``decide`` concludes for a workload."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelyard.cli.bench_endpoint import bench_endpoint_command
from modelyard.economics.engine import Decision, decide, load_catalogs
from modelyard.economics.org import load_org
from modelyard.economics.traffic import read_traffic
from tests.fakes.batching_server import BatchingParams, create_app, serving_in_thread

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
OPTION = "self_hosted:Llama-3.1-70B-Instruct@lambda/H100-SXM-80GBx2:fp8"
# A deliberately poor "70B on two H100s": 20 output tokens/s, far below the roofline estimate, so the
# contracts workload (~860 output tokens a request) needs more replicas than the estimate said.
PARAMS = BatchingParams(max_batch=1, step_base_s=0.05, step_per_seq_s=0.0)


def _decide(profiles_dir: Path) -> Decision:
    org = load_org(EXAMPLES / "org.yaml")
    org = org.model_copy(
        update={"catalog": org.catalog.model_copy(update={"profiles_dir": str(profiles_dir)})}
    )
    traffic = read_traffic(
        str(EXAMPLES / "traffic" / "synthetic.jsonl.gz"), litellm_workload_from="request_tag"
    )
    return decide(org, traffic, load_catalogs(org), date(2026, 1, 1))


def test_measured_profile_changes_replicas_and_tco_through_decide(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    before = next(w for w in _decide(profiles).workloads if w.profile.name == "contracts")
    with serving_in_thread(create_app(PARAMS)) as url:
        result = CliRunner().invoke(bench_endpoint_command, [
            "--url", url + "/v1", "--model", PARAMS.model, "--concurrency", "1,2", "--requests", "2000",
            "--duration", "1.0", "--input-tokens", "64", "--output-tokens", "24", "--gpu", "H100-SXM-80GB",
            "--gpu-count", "2", "--quantization", "fp8", "--profile-model", "Llama-3.1-70B-Instruct",
            "--engine", "vllm-test", "--profiles-dir", str(profiles),
        ], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    after = next(w for w in _decide(profiles).workloads if w.profile.name == "contracts")
    old = next(o for o in before.options if o.key == OPTION)
    new = next(o for o in after.options if o.key == OPTION)
    assert old.source == "estimated" and new.source == "measured"
    assert new.replica is not None and old.replica is not None
    assert new.replica.requests_per_s < old.replica.requests_per_s
    assert float(new.replica.level.output_tokens_per_s) == pytest.approx(20, rel=0.1)
    assert after.tcos[OPTION].months[0].replicas > before.tcos[OPTION].months[0].replicas
    assert after.tcos[OPTION].total(12) > before.tcos[OPTION].total(12)
