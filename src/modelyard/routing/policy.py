"""Data classes: which class a request carries, and which targets that class may reach.

A request's class comes from its workload; the ``X-Modelyard-Data-Class`` header may tighten it (make it
stricter) but never loosen it. The policy maps each class to the targets it allows: ``any``,
``self_hosted``, ``external``, or named providers (approved vendors or regions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelyard.config.routing import DATA_CLASS_ORDER, DataClass, DataClassPolicy
from modelyard.errors import InvalidRequest, PolicyDenied

DATA_CLASS_HEADER = "X-Modelyard-Data-Class"


@dataclass(frozen=True, slots=True)
class ClassDecision:
    data_class: DataClass
    #: ``workload``, ``header`` or ``default``: recorded in the ledger as the audit trail.
    source: str


def effective_data_class(
    workload_class: str | None, header: str | Sequence[str] | None, key_class: str | None = None
) -> ClassDecision:
    """The class a request is handled under: the strictest of its workload's and its API key's. A header
    stricter than that wins; a looser one is refused, so a client can never talk a request out of its
    policy.

    ``header`` is one value or all of them: when the header came several times (a proxy appended its own
    after the client's), the strictest value counts. Refusing the conflict instead would break every
    client behind such a proxy; picking the first let the client's copy overrule the proxy's.
    """
    base: DataClass = _parse(workload_class) if workload_class else "internal"
    source = "workload" if workload_class else "default"
    if key_class is not None and _stricter(_parse(key_class), base):
        base, source = _parse(key_class), "key"
    values = [header] if isinstance(header, str) else list(header or ())
    if not values:
        return ClassDecision(base, source)
    asked = max((_parse(v.strip().lower()) for v in values), key=DATA_CLASS_ORDER.index)
    if _stricter(base, asked):
        raise PolicyDenied(
            f"{DATA_CLASS_HEADER}: '{asked}' would loosen this workload's class '{base}'; a header may only tighten it",
            code="data_class_loosened",
            param=DATA_CLASS_HEADER,
        )
    if asked == base:
        return ClassDecision(base, source)
    return ClassDecision(asked, "header")


def _stricter(a: DataClass, b: DataClass) -> bool:
    return DATA_CLASS_ORDER.index(a) > DATA_CLASS_ORDER.index(b)


def _parse(value: str) -> DataClass:
    for data_class in DATA_CLASS_ORDER:
        if value == data_class:
            return data_class
    raise InvalidRequest(
        f"unknown data class '{value}'; allowed: {', '.join(DATA_CLASS_ORDER)}",
        code="unknown_data_class",
        param=DATA_CLASS_HEADER,
    )


def allows(policy: DataClassPolicy, provider: str, hosting: str) -> bool:
    """Whether ``policy`` lets a request reach ``provider`` (hosted ``hosting``)."""
    allow = policy.allow
    return "any" in allow or hosting in allow or provider in allow


def describe(policy: DataClassPolicy) -> str:
    return "any target" if "any" in policy.allow else " or ".join(policy.allow)
