"""The decision engine's quality input: the organisation profile's ``quality:`` entries plus eval results.

``modelyard eval run`` writes ``<evals dir>/<set>/latest.json`` whose ``quality`` list has the shape of the
profile's entries (see docs/evals.md). :func:`load_eval_quality` reads every such file; :func:`merge_quality`
adds them to the profile, where the engine's quality floor and Performance score read them.

Rules, in order:

- an entry written in the organisation profile wins over any measurement (it is a deliberate statement);
- a measurement under the model's gateway name wins over one found through its upstream name;
- between eval runs, the newest run wins.

An eval measures *gateway* models (``llama-8b``), while the profile's candidates name catalog models
(``Llama-3.1-8B-Instruct``). So each measurement is also filed under the gateway model's upstream name and
that name's last path segment (``meta-llama/Llama-3.1-8B-Instruct`` → ``Llama-3.1-8B-Instruct``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from modelyard.economics.org import OrgProfile, QualityScore
from modelyard.errors import ConfigError

if TYPE_CHECKING:
    from modelyard.economics.engine import Decision

#: The eval record's schema (modelyard.evals.results.SCHEMA; not imported, to keep numpy and the runner
#: out of ``decide``'s imports).
EVAL_RECORD_SCHEMA = "modelyard.eval_run/1"
DEFAULT_EVALS_DIR = Path(".modelyard/evals")
#: Every measured entry's ``source`` starts with this, so a report can tell measurements from statements.
EVAL_SOURCE = "eval "


@dataclass(frozen=True, slots=True)
class _Measured:
    score: QualityScore
    run_id: str
    #: Filed under an upstream name rather than the gateway name it was measured as.
    alias: bool


def load_eval_quality(folder: str | Path = DEFAULT_EVALS_DIR) -> list[QualityScore]:
    """Quality entries from every ``<folder>/*/latest.json``; nothing when the folder does not exist.

    Raises :class:`ConfigError` naming the file when a record is unreadable or not an eval record.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    measured = [m for path in sorted(folder.glob("*/latest.json")) for m in _read_record(path)]
    # Newest run first; gateway names before upstream aliases; the first entry for a pair is kept.
    measured.sort(key=lambda m: m.run_id, reverse=True)
    measured.sort(key=lambda m: m.alias)
    chosen: dict[tuple[str, str], QualityScore] = {}
    for m in measured:
        chosen.setdefault((m.score.workload, m.score.model), m.score)
    return list(chosen.values())


def _read_record(path: Path) -> list[_Measured]:
    try:
        record = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read this eval record: {exc}") from None
    if not isinstance(record, dict) or record.get("schema") != EVAL_RECORD_SCHEMA:
        raise ConfigError(f"{path}: not a modelyard eval record (expected schema {EVAL_RECORD_SCHEMA!r})")
    run_id, name = str(record.get("run_id", "")), str(record.get("set", path.parent.name))
    candidates: Mapping[str, Any] = record.get("candidates") or {}
    found = []
    for number, raw in enumerate(record.get("quality") or []):
        try:
            entry = QualityScore.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"{path}: quality[{number}]: {exc.errors()[0]['msg']}") from None
        about = candidates.get(entry.model) or {}
        source = _source(name, run_id, about)
        found.append(_Measured(entry.model_copy(update={"source": source}), run_id, alias=False))
        for alias in _upstream_names(about.get("upstream_model"), entry.model):
            aliased = entry.model_copy(update={"model": alias, "source": f"{source}, as {entry.model}"})
            found.append(_Measured(aliased, run_id, alias=True))
    return found


def _source(name: str, run_id: str, about: Mapping[str, Any]) -> str:
    cases, errors = about.get("cases"), about.get("errors")
    detail = f"{cases} cases" if cases is not None else "cases unknown"
    if errors:
        detail += f", {errors} failed calls scored 0"
    return f"{EVAL_SOURCE}{name} {run_id} ({detail})"


def _upstream_names(upstream: Any, public: str) -> list[str]:
    if not isinstance(upstream, str) or not upstream:
        return []
    names = dict.fromkeys((upstream, upstream.rsplit("/", 1)[-1]))
    return [n for n in names if n and n != public]


def merge_quality(org: OrgProfile, measured: Iterable[QualityScore]) -> OrgProfile:
    """``org`` with ``measured`` entries added where the profile states nothing for the pair."""
    stated = {(q.workload, q.model) for q in org.quality}
    extra = [q for q in measured if (q.workload, q.model) not in stated]
    return org.model_copy(update={"quality": [*org.quality, *extra]}) if extra else org


@dataclass(frozen=True, slots=True)
class QualityInput:
    """What the engine knew about one model's quality on one workload."""

    workload: str
    model: str
    score: float | None
    #: ``eval`` (measured by an eval run), ``org profile`` (stated there), or ``unknown``.
    origin: str
    source: str | None

    def describe(self) -> str:
        if self.score is None:
            return f"{self.model}: unknown (never measured)"
        source = self.source if self.origin == "eval" else f"{self.origin}: {self.source}"
        return f"{self.model}: {self.score:.2f} ({source})"

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "score": self.score,
            "status": "unknown" if self.score is None else "measured",
            "origin": self.origin,
            "source": self.source,
        }


def quality_inputs(decision: Decision) -> dict[str, list[QualityInput]]:
    """Per workload, every model its options serve, with the quality the engine used and where it came
    from (hybrids are left out: their parts are listed)."""
    inputs: dict[str, list[QualityInput]] = {}
    for d in decision.workloads:
        models = dict.fromkeys(o.model for o in d.options if o.kind != "hybrid")
        rows = inputs[d.profile.name] = []
        for model in models:
            q = decision.org.quality_of(d.profile.name, model)
            if q is None:
                rows.append(QualityInput(d.profile.name, model, None, "unknown", None))
            else:
                origin = "eval" if q.source.startswith(EVAL_SOURCE) else "org profile"
                rows.append(QualityInput(d.profile.name, model, q.score, origin, q.source))
    return inputs
