"""Prometheus metrics of one gateway, exposed at ``/metrics``: the OpenTelemetry GenAI series and modelyard's own.

The request path only adds to plain numbers held by one :class:`Series` per label set (a dict look-up and
a few additions, no lock: the event loop is one thread); a prometheus_client collector turns them into
metric families when scraped (:mod:`modelyard.gateway.metric_families`), and the library does the
exposition format. A registry per gateway, not the process-wide default, so two gateways in one process
(tests) never share counters.

Label values come only from the config (public model and route names, workloads, provider names) and from
fixed vocabularies (provider kinds, endpoints, status codes, error kinds written in the code), never from
the request: a client naming a million unknown models must not grow ``/metrics`` by a series each. A model
or workload the config does not name is counted under :data:`UNKNOWN`; a value of an open vocabulary past
its first :data:`VOCABULARY_CAP` distinct values (an upstream's response model, say) under :data:`OTHER`.

Which names, units and attributes follow which convention, and why the buckets are what they are:
``docs/metrics.md``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from modelyard.gateway.metric_families import GenAiCollector
from modelyard.gateway.series import (
    DURATION_BUCKETS,
    TOKEN_BUCKETS,
    TPOT_BUCKETS,
    TTFT_BUCKETS,
    Series,
    SeriesKey,
)
from modelyard.gateway.targets import Target
from modelyard.ledger.schema import REQUEST_COLUMNS, AttemptRow, Values
from modelyard.routing.breaker import Breakers
from modelyard.routing.plan import Route

#: The label of a model or workload the config does not name. Config names start with a letter or digit,
#: so this one cannot collide with a real name.
UNKNOWN = "_unknown"
#: OpenTelemetry's fallback value (``error.type``'s ``_OTHER``), for any open vocabulary past its cap.
OTHER = "_OTHER"
#: Distinct values an open vocabulary (response models, error kinds) may add before folding into OTHER.
VOCABULARY_CAP = 64
#: Label sets kept at most; a request past it is counted in one overflow series (never dropped).
SERIES_CAP = 10_000
#: ``gen_ai.provider.name`` per provider kind: the convention's well-known value where one applies
#: (Gemini's AI Studio API is ``gcp.gemini``), else the kind itself (self-hosted servers have none).
PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}


#: Positions of the columns ``observe`` reads in a request's values (plain indexes: the interpreter
#: specialises ``values[CONSTANT]``; slices measured ~2k instructions a request more).
_ENDPOINT, _WORKLOAD, _MODEL, _PROVIDER, _PROVIDER_KIND, _UPSTREAM_MODEL, _STATUS, _ERROR_KIND = map(
    REQUEST_COLUMNS.index,
    ("endpoint", "workload", "model", "provider", "provider_kind", "upstream_model", "status", "error_kind"),
)
_LATENCY_MS, _TTFT_MS, _STREAMED, _RETRIES, _CACHE_HIT, _COST_SAVED_PICO_USD, _COST_PICO_USD = map(
    REQUEST_COLUMNS.index,
    ("latency_ms", "ttft_ms", "streamed", "retries", "cache_hit", "cost_saved_pico_usd", "cost_pico_usd"),
)
_INPUT_TOKENS, _OUTPUT_TOKENS, _CACHED_INPUT_TOKENS, _CACHE_WRITE_TOKENS, _REASONING_TOKENS = map(
    REQUEST_COLUMNS.index,
    ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens"),
)


#: A row's raw label values, in the order ``_series_for`` reads them: one C call.
_LABELS = itemgetter(
    _ENDPOINT, _WORKLOAD, _MODEL, _PROVIDER_KIND, _PROVIDER, _UPSTREAM_MODEL, _STATUS, _ERROR_KIND
)


class Vocabulary:
    """The values seen so far of an open but small vocabulary, up to a cap; later ones become OTHER."""

    __slots__ = ("cap", "seen")

    def __init__(self, cap: int = VOCABULARY_CAP) -> None:
        self.cap, self.seen = cap, set[str]()

    def __call__(self, value: str | None) -> str:
        if not value:
            return ""
        if value in self.seen:
            return value
        if len(self.seen) >= self.cap:
            return OTHER
        self.seen.add(value)
        return value


@runtime_checkable
class ReadsAStore(Protocol):
    """A side collector whose :meth:`refresh` must be awaited before it is collected."""

    async def refresh(self) -> None: ...


class GatewayMetrics:
    """Counts each request's row into its :class:`Series`; scraped through :attr:`registry`."""

    def __init__(
        self,
        breakers: Breakers,
        routes: Mapping[str, Route[Target]] | Iterable[str] = (),
        workloads: Iterable[str] = (),
    ) -> None:
        names = list(routes)
        self._models = frozenset(names)
        self._workloads = frozenset(workloads)
        targets = [t for r in routes.values() for t in r.targets] if isinstance(routes, Mapping) else []
        self._providers = frozenset(t.provider for t in targets)
        self._response_models = Vocabulary()
        self._response_models.seen.update(t.upstream_model for t in targets)
        self._error_kinds = Vocabulary()
        self._operations = Vocabulary(16)
        #: Each row's raw label values (model already checked) -> its series. Bounded like the series.
        self._by_raw: dict[tuple[object, ...], Series] = {}
        #: The exported label sets.
        self.series: dict[SeriesKey, Series] = {}
        self._breakers = breakers
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(GenAiCollector(self.series, breakers.states))
        #: The collectors registered beside the GenAI one (the ledger's gauges, the budgets').
        self.side_collectors: list[Collector] = []

    def add(self, collector: Collector) -> None:
        """Export another collector's series beside the gateway's (scraped, and pushed by OTLP)."""
        self.registry.register(collector)
        self.side_collectors.append(collector)

    async def read_stores(self) -> None:
        """Let the side collectors that read a store across the network (the budgets') read it off the
        event loop; awaited before a scrape renders and before the OTLP push collects."""
        for collector in self.side_collectors:
            if isinstance(collector, ReadsAStore):
                await collector.refresh()

    def copied(self) -> GenAiCollector:
        """The GenAI series as they are now, copied, to be collected on another thread while requests
        keep counting. Made on the event loop, whose thread alone writes the series: each copy is whole
        (no request half counted), at a few microseconds per label set where collecting the families
        costs a hundred times more (docs/metrics.md); the OTLP push collects the copy off the loop."""
        series = {key: one.copy() for key, one in self.series.items()}
        states = self._breakers.states()
        return GenAiCollector(series, lambda: states)

    def observe(self, row: Values, attempts: Sequence[AttemptRow] = ()) -> None:
        """Count one request, given its row's values (``REQUEST_COLUMNS`` order: the recorder builds no
        row object; the positions are named below)."""
        raw = _LABELS(row)
        series = self._by_raw.get(raw)
        if series is None:
            series = self._series_for(raw)
        series.requests += 1
        seconds = row[_LATENCY_MS] * 0.001
        series.duration_sum += seconds
        series.duration[bisect_left(DURATION_BUCKETS, seconds)] += 1
        tin, tout = row[_INPUT_TOKENS], row[_OUTPUT_TOKENS]
        if tin or tout:
            tokens, sums = series.tokens, series.token_sums  # input and output inline: every request has them
            tokens[0][bisect_left(TOKEN_BUCKETS, tin)] += 1
            tokens[1][bisect_left(TOKEN_BUCKETS, tout)] += 1
            sums[0] += tin
            sums[1] += tout
            if row[_CACHED_INPUT_TOKENS]:
                series.count_tokens(2, row[_CACHED_INPUT_TOKENS])
            if row[_CACHE_WRITE_TOKENS]:
                series.count_tokens(3, row[_CACHE_WRITE_TOKENS])
            if row[_REASONING_TOKENS]:
                series.count_tokens(4, row[_REASONING_TOKENS])
        cost = row[_COST_PICO_USD]
        if cost is None:  # tokens billed by a model without a price: counted apart, never as $0
            series.unpriced += 1
        else:
            series.cost_pico += cost
        retries = row[_RETRIES]
        if retries:
            fallbacks = _fallbacks(attempts)
            series.fallbacks += fallbacks
            series.retries += retries - fallbacks
        if row[_CACHE_HIT]:
            series.cache_hits += 1
            series.cost_saved_pico += row[_COST_SAVED_PICO_USD] or 0
        ttft = row[_TTFT_MS]
        if ttft is not None and row[_STREAMED] and row[_STATUS] < 400:
            first = ttft * 0.001
            series.ttft_sum += first
            series.ttft[bisect_left(TTFT_BUCKETS, first)] += 1
            if tout > 1:  # the convention's TPOT: the tokens after the first one
                per_token = (seconds - first) / (tout - 1)
                series.tpot_sum += per_token
                series.tpot[bisect_left(TPOT_BUCKETS, per_token)] += 1

    def _series_for(self, raw: tuple[Any, ...]) -> Series:
        """The series of a label set seen for the first time: each value checked against the config or
        its vocabulary (the slow path, once per distinct label set). A model the config does not name is
        counted as UNKNOWN and its raw label set is not kept: names come from clients, and a client
        cycling through made-up ones would only fill the map."""
        endpoint, workload, model, kind, provider, upstream_model, status, error_kind = raw
        known = model in self._models
        if not known:
            model = UNKNOWN
        workload = workload or ""
        if workload and workload not in self._workloads:
            workload = UNKNOWN
        provider = provider or ""
        if provider and provider not in self._providers:
            provider = UNKNOWN
        kind = kind or ""
        key = SeriesKey(
            operation=self._operations(endpoint),
            provider_name=PROVIDER_NAMES.get(kind, kind) if kind else "",
            provider=provider,
            request_model=model,
            response_model=self._response_models(upstream_model),
            error_type=self._error_kinds(error_kind),
            workload=workload,
            status=str(status),
        )
        series = self.series.get(key)
        if series is None:
            if len(self.series) >= SERIES_CAP:
                key = SeriesKey(OTHER, OTHER, OTHER, OTHER, OTHER, OTHER, OTHER, OTHER)
                series = self.series.get(key)
            if series is None:
                series = self.series[key] = Series()
        if known and len(self._by_raw) < SERIES_CAP:
            self._by_raw[raw] = series
        return series

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _fallbacks(attempts: Sequence[AttemptRow]) -> int:
    """How many times a request moved on to another target (the other extra attempts were retries)."""
    moves, previous = 0, None
    for attempt in attempts:
        if attempt.purpose != "answer":
            continue
        target = (attempt.provider, attempt.upstream_model)
        if previous is not None and target != previous:
            moves += 1
        previous = target
    return moves
