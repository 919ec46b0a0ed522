"""Issue 15's "done when", as a test: 2 replicas × 2 workers (``serve --workers 2`` twice) on the real
PostgreSQL ledger and the real Redis or PostgreSQL budget store, 200 concurrent requests against a
budget of 100½ requests' estimates. With costs equal to the estimates exactly 100 are admitted (no
overshoot, no false refusal); with costs of 50..150 % of them, the spend past the budget stays within
what the admitted requests cost beyond their estimates. Either way the ledger's sum equals the budget
counter once everything settled, with nothing left reserved. ``bench/budget_replicas.py`` runs the same
20 times per store and prints the figures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BENCH = Path(__file__).resolve().parent.parent / "bench" / "budget_replicas.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("budget_replicas", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["budget_replicas"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    try:
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    return _bench()


@pytest.mark.parametrize("store", ["redis", "postgres"])
async def test_two_replicas_of_two_workers_hold_one_budget_exactly(
    bench: ModuleType, store: str, tmp_path: Path
) -> None:
    results = await bench.run_store(store, ["exact", "varied"], 1, tmp_path)
    (exact,) = results["exact"]
    assert exact.other == 0
    assert exact.admitted == bench.BUDGET_REQUESTS, "a request was refused while the budget had room"
    assert exact.spent_pico <= exact.limit_pico
    (varied,) = results["varied"]
    assert varied.other == 0
    assert varied.spent_pico - varied.limit_pico <= varied.excess_pico
    for run in (exact, varied):
        assert (run.ledger_pico, run.reserved_left) == (run.counter_pico, 0)
