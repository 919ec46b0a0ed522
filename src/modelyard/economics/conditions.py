"""What a recommendation rests on that was not measured, said where the recommendation is said.

A cost case can be exact in its arithmetic and still rest on a guess: a model whose quality for this
workload was never measured, a trace too short to call a month, a throughput that was estimated rather
than benchmarked. Each such dependency becomes a :class:`Condition`; those marked ``headline`` are shown
beside the recommendation itself (terminal, HTML and ``recommendation.conditions`` in the JSON), the others
with it in the details. An unknown quality is a stated condition, never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelyard.economics.options import Option
from modelyard.economics.org import OrgProfile
from modelyard.economics.workload import WorkloadProfile

ConditionKind = Literal[
    "planned_volume", "quality_unmeasured", "quality_stated", "thin_trace", "throughput_unmeasured"
]


@dataclass(frozen=True, slots=True)
class Condition:
    kind: ConditionKind
    text: str
    #: Shown in the recommendation's headline, not only in its details.
    headline: bool

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "text": self.text, "headline": self.headline}


def _parts(option: Option) -> list[Option]:
    return list(option.parts) if option.parts is not None else [option]


def conditions(option: Option, wl: WorkloadProfile, org: OrgProfile) -> list[Condition]:
    """The unmeasured inputs the recommendation of ``option`` for ``wl`` depends on."""
    out: list[Condition] = []
    in_use = {u.model for u in wl.models}
    for part in _parts(option):
        if part.model in in_use:
            continue  # the workload already runs on it: switching to it is not a bet on its quality
        quality = org.quality_of(wl.name, part.model)
        if quality is None:
            out.append(
                Condition(
                    "quality_unmeasured",
                    f"cheapest only if {part.model} meets this workload's quality — never measured: run "
                    f"`modelyard eval run GOLDEN.yaml --config GATEWAY.yaml -m <gateway name of {part.model}>` "
                    f"on {wl.name}'s cases, then `modelyard decide` again",
                    headline=True,
                )
            )
        elif not quality.source.startswith("eval "):
            out.append(
                Condition(
                    "quality_stated",
                    f"quality of {part.model} ({quality.score:.2f}) is stated in the organisation profile "
                    f"({quality.source}), not measured by an eval run",
                    headline=False,
                )
            )
        if part.kind == "self_hosted" and part.source != "measured":
            out.append(
                Condition(
                    "throughput_unmeasured",
                    f"throughput of {part.label} is {part.source}, not measured: "
                    f"`modelyard bench-endpoint` against a test deployment replaces it"
                    + (f" ({part.reference})" if part.reference else ""),
                    headline=False,
                )
            )
    if thin := wl.thin_trace:
        out.append(Condition("thin_trace", thin, headline=True))
    if wl.origin == "planned":
        out.append(
            Condition(
                "planned_volume",
                f"volume ({wl.requests_per_month:,.0f} requests/month), token shape and daily peak are planned, "
                "not measured: send the workload through the gateway and decide again on its ledger",
                headline=True,
            )
        )
    return out


def headline_suffix(found: list[Condition]) -> str:
    """A few words for the headline: what the recommendation is conditional on."""
    words = []
    if any(c.kind == "quality_unmeasured" for c in found):
        words.append("if quality holds (never measured)")
    if any(c.kind == "thin_trace" for c in found):
        words.append("on a thin trace")
    if any(c.kind == "planned_volume" for c in found):
        words.append("on planned volumes")
    return ", ".join(words)
