"""The provider kinds are one table (config/kinds.py): the registry, the config's validation and the test
fakes all follow it, so a kind added there without an adapter or a fake fails here, not in production."""

from __future__ import annotations

import importlib

import pytest

from modelyard.config.kinds import KINDS
from modelyard.providers.registry import ADAPTERS
from tests.conftest import FAKES, available_kinds
from tests.fakes import rerank_vendors


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_names_an_adapter_class_that_imports(kind: str) -> None:
    module, _, name = ADAPTERS[kind].partition(":")
    adapter = getattr(importlib.import_module(module), name)
    assert callable(getattr(adapter, "complete", None)) and callable(getattr(adapter, "embed", None))


def test_every_kind_on_the_wire_has_a_fake_and_runs_the_conformance_suite() -> None:
    wire = {kind for kind, spec in KINDS.items() if spec.wire and not spec.rerank_only}
    assert wire == set(available_kinds()) == set(FAKES)
    rerank_apis = {kind for kind, spec in KINDS.items() if spec.rerank_only}
    assert rerank_apis == set(rerank_vendors.VENDORS), "rerank APIs: tests/test_api_rerank_vendors.py"
    assert not KINDS["local"].wire, "the in-process model has no wire format to fake"
