"""``modelyard bench-endpoint`` end to end through click, and every bad input as one clear line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from modelyard.benchmark.knee import find_knee
from modelyard.benchmark.stats import LevelStats, Slo
from modelyard.catalog.serving import read_profiles_dir
from modelyard.cli.bench_endpoint import bench_endpoint_command
from modelyard.ledger import RequestRow, open_store
from tests.fakes.batching_server import BatchingParams, create_app, serving_in_thread
from tests.fakes.common import free_port

PARAMS = BatchingParams(max_batch=4, step_base_s=0.002, step_per_seq_s=0.0005)
QUICK = ["--concurrency", "1,4,8", "--requests", "40", "--duration", "0.5"]


@pytest.fixture
def fake() -> Iterator[str]:
    with serving_in_thread(create_app(PARAMS)) as url:
        yield url + "/v1"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(bench_endpoint_command, list(args), catch_exceptions=False)


def test_writes_a_profile_the_decision_engine_reads_plus_json_and_html(fake: str, tmp_path: Path) -> None:
    # Which level is the knee depends on p95 latencies measured on this machine; the rule that picks it is
    # tested from tables (test_benchmark_stats.py). Here: the knee reported, written and drawn is the one
    # the rule picks from the levels this run measured.
    result = invoke(
        "--url", fake, "--model", PARAMS.model, *QUICK, "--input-tokens", "64", "--output-tokens", "16",
        "--slo-ttft-ms", "40", "--gpu", "A100-40GB", "--profiles-dir", str(tmp_path / "profiles"),
        "--json", str(tmp_path / "run.json"), "--html", str(tmp_path / "run.html"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (profile,) = read_profiles_dir(tmp_path / "profiles")
    assert profile.source == "measured" and profile.model == "Fake-Llama-8B" and profile.engine == "vllm"
    assert [lv.concurrency for lv in profile.levels] == [1, 4, 8]
    doc = json.loads((tmp_path / "run.json").read_text())
    knee = find_knee([LevelStats(**level) for level in doc["levels"]], Slo(ttft_ms=40))
    assert knee is not None, "c=1 answers well inside 40 ms"
    assert profile.knee is not None and profile.knee.concurrency == knee.concurrency
    assert profile.workload.output_tokens_mean == 16
    assert profile.slo.ttft_ms == 40
    assert doc["knee"]["concurrency"] == knee.concurrency and len(doc["levels"]) == 3
    assert doc["profile"]["source"] == "measured"
    page = (tmp_path / "run.html").read_text()
    assert "<svg" in page and 'id="knee-mark-ttft_p95_ms"' in page
    # Opens offline: the only references are to ids inside the page (matplotlib's <use href="#...">).
    assert not any(tag in page for tag in ("<script", "<link", "src=")) and not re.search(
        r'href="(?!#)', page
    )
    assert f"Knee: concurrency {knee.concurrency}" in result.output


def test_token_lengths_come_from_the_workload_in_the_ledger(fake: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = open_store(url)
    rows = [
        RequestRow(request_id=f"r{i}", ts=1e9 + i, endpoint="chat", workload="triage", data_class="internal",
                   tenant=None, api_key_id=None, model="m", provider="p", provider_kind="openai",
                   upstream_model="m", status=200, error_kind=None, streamed=True,
                   input_tokens=40 + 20 * (i % 2), output_tokens=6 + 4 * (i % 2))
        for i in range(20)
    ]  # fmt: skip
    store.insert(rows, [])
    store.close()
    result = invoke(
        "--url", fake, "--model", PARAMS.model, "--concurrency", "2", "--requests", "60", "--duration", "2",
        "--workload", "triage", "--ledger", url, "--no-profile", "--json", str(tmp_path / "run.json"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    level = json.loads((tmp_path / "run.json").read_text())["levels"][0]
    assert 40 <= level["input_tokens_mean"] <= 60 and 6 <= level["output_tokens_mean"] <= 10
    assert level["input_tokens_mean"] == pytest.approx(50, abs=5)


def _assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1
    message = result.output.strip()
    assert message.startswith("Error: ") and "\n" not in message, message
    assert "Traceback" not in message
    for fragment in fragments:
        assert fragment in message


def test_unreachable_url() -> None:
    result = invoke("--url", f"http://127.0.0.1:{free_port()}/v1", "--model", "x", "--no-profile")
    _assert_one_line_error(result, "cannot connect", "is the server running")


async def _web_page(request: web.Request) -> web.Response:
    return web.Response(text="<html><body>My blog</body></html>", content_type="text/html")


def test_a_server_that_is_not_openai_compatible() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _web_page)
    with serving_in_thread(app) as url:
        result = invoke("--url", url, "--model", "x", "--no-profile")
    _assert_one_line_error(result, "does not look like an OpenAI-compatible API", "/v1")


def test_a_model_the_server_does_not_serve(fake: str) -> None:
    result = invoke("--url", fake, "--model", "gpt-nope", "--no-profile")
    _assert_one_line_error(result, "does not serve model 'gpt-nope'", PARAMS.model)


def test_a_server_that_sends_no_usage() -> None:
    with serving_in_thread(create_app(BatchingParams(usage=False, step_base_s=0.001))) as url:
        result = invoke("--url", url + "/v1", "--model", PARAMS.model, "--no-profile")
    _assert_one_line_error(result, "no usage", "include_usage")


def test_missing_key_variable_and_missing_gpu_label(fake: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    result = invoke(
        "--url", fake, "--model", PARAMS.model, "--api-key-env", "NO_SUCH_KEY_VAR", "--no-profile"
    )
    _assert_one_line_error(result, "NO_SUCH_KEY_VAR is not set")
    result = invoke("--url", fake, "--model", PARAMS.model)
    assert result.exit_code == 2 and "--gpu" in result.output


def test_a_gpu_the_catalog_does_not_know_is_refused_with_the_known_names(fake: str) -> None:
    result = invoke("--url", fake, "--model", PARAMS.model, "--gpu", "H1OO-80GB", *QUICK)
    assert result.exit_code == 2, result.output
    assert "'H1OO-80GB' is not in the GPU catalog" in result.output and "A100-40GB" in result.output
