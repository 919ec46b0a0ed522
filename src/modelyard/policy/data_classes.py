"""Data classes: which class a request carries, and which targets that class may reach.

A request's class comes from its workload (and its API key, which may tighten it); the request itself
may ask for a stricter class but never a looser one. The policy maps each class to the targets it allows:
``any``, ``self_hosted``, ``external``, or named providers (approved vendors or regions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from modelyard.config.routing import DATA_CLASS_ORDER, DataClass, DataClassPolicy
from modelyard.errors import InvalidRequest, PolicyDenied


class ClassDecision(NamedTuple):
    data_class: DataClass
    #: ``workload``, ``key``, ``header`` or ``default``: recorded in the ledger as the audit trail.
    source: str


def base_data_class(workload_class: str | None, key_class: str | None = None) -> ClassDecision:
    """The class decided before the request asks for one: the strictest of its workload's and its key's
    (``internal`` when neither says)."""
    base: DataClass = _parse(workload_class, "workload") if workload_class else "internal"
    source = "workload" if workload_class else "default"
    if key_class is not None and _stricter(_parse(key_class, "key"), base):
        return ClassDecision(_parse(key_class, "key"), "key")
    return ClassDecision(base, source)


def effective_data_class(
    workload_class: str | None,
    asked: str | Sequence[str] | None,
    key_class: str | None = None,
    *,
    asked_by: str = "the data-class header",
) -> ClassDecision:
    """The class a request is handled under: :func:`base_data_class`, tightened by what the request asks
    (``asked_by`` names where it asked, for the error). A looser ask is refused, so a client can never
    talk a request out of its policy.

    ``asked`` is one value or all of them: when the header came several times (a proxy appended its own
    after the client's), the strictest value counts. Refusing the conflict instead would break every
    client behind such a proxy; picking the first let the client's copy overrule the proxy's.
    """
    return tighten(base_data_class(workload_class, key_class), asked, asked_by)


def tighten(base: ClassDecision, asked: str | Sequence[str] | None, asked_by: str) -> ClassDecision:
    """``base`` tightened by the classes a request asked for (the strictest counts); a looser one is
    refused."""
    if not asked:
        return base
    values = [asked] if isinstance(asked, str) else list(asked)
    wanted = max((_parse(v.strip().lower(), asked_by) for v in values), key=DATA_CLASS_ORDER.index)
    if _stricter(base.data_class, wanted):
        raise PolicyDenied(
            f"{asked_by}: '{wanted}' would loosen this workload's class '{base.data_class}'; "
            "a header may only tighten it",
            code="data_class_loosened",
            param=asked_by,
        )
    if wanted == base.data_class:
        return base
    return ClassDecision(wanted, "header")


def _stricter(a: DataClass, b: DataClass) -> bool:
    return DATA_CLASS_ORDER.index(a) > DATA_CLASS_ORDER.index(b)


def _parse(value: str, param: str) -> DataClass:
    for data_class in DATA_CLASS_ORDER:
        if value == data_class:
            return data_class
    raise InvalidRequest(
        f"unknown data class '{value}'; allowed: {', '.join(DATA_CLASS_ORDER)}",
        code="unknown_data_class",
        param=param,
    )


def allows(policy: DataClassPolicy, provider: str, hosting: str) -> bool:
    """Whether ``policy`` lets a request reach ``provider`` (hosted ``hosting``)."""
    allow = policy.allow
    return "any" in allow or hosting in allow or provider in allow


def describe(policy: DataClassPolicy) -> str:
    return "any target" if "any" in policy.allow else " or ".join(policy.allow)
