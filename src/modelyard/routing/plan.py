"""Which targets a request tries, in which order, and why: a pure function of route, policy and state.

A *route* is a public name served by targets under a strategy:

- ``single``: one target.
- ``fallback``: the targets in order; the next one is tried when the previous one fails.
- ``loadbalance``: one target drawn by weight, then the others (by weight) as fallbacks.
- ``cascade``: the targets in order (cheap or self-hosted first); the next is tried when a validator
  rejects the answer.
- ``shadow``: answered by the targets as in ``fallback``; a sampled share is mirrored to the shadow
  target off the request path, for comparison.

Targets the request's data class may not reach are removed (never tried, whatever fails), and so are
targets whose circuit is open. What was removed, and why, is part of the plan and goes to the ledger.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from modelyard.config.routing import DataClassPolicy, Strategy, ValidatorConfig
from modelyard.policy.data_classes import allows


class Routable(Protocol):
    @property
    def public_model(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def hosting(self) -> str: ...


T = TypeVar("T", bound=Routable)


@dataclass(frozen=True, slots=True)
class Route(Generic[T]):
    name: str
    strategy: Strategy
    targets: tuple[T, ...]
    weights: tuple[float, ...]
    validators: tuple[ValidatorConfig, ...] = ()
    shadow: T | None = None
    shadow_sample: float = 0.0


@dataclass(slots=True)
class Plan(Generic[T]):
    route: str
    strategy: Strategy
    #: Targets to try, in order.
    candidates: list[T]
    #: Targets left out, with the reason: ``policy`` or ``circuit open``.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    shadow: T | None = None
    #: What :meth:`describe` and :meth:`served_by` said, kept: a route's usual plan is shared by all its
    #: requests (``gateway/admission.py``), and each request's row carries the text. Filled once the
    #: plan is made; a plan is not changed after planning.
    _described: str | None = field(default=None, init=False, repr=False, compare=False)
    _served: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def describe(self) -> str:
        described = self._described
        if described is None:
            described = self._described = self._describe()
        return described

    def served_by(self, target: T) -> str:
        """The description, and which target answered (when no candidate was passed over)."""
        name = target.public_model
        text = self._served.get(name)
        if text is None:
            text = self._served[name] = f"{self.describe()}; served by {name}"
        return text

    def _describe(self) -> str:
        if not self.skipped and self.shadow is None:
            return f"{self.strategy}:{self.route}"
        parts = [f"{self.strategy}:{self.route}"]
        parts += [f"skip {name} ({why})" for name, why in self.skipped]
        if self.shadow is not None:
            parts.append(f"shadow {self.shadow.public_model}")
        return "; ".join(parts)


def plan_route(
    route: Route[T],
    policy: DataClassPolicy,
    available: Callable[[T], bool],
    rng: random.Random,
) -> Plan[T]:
    """Order ``route``'s targets for one request. ``available`` says whether a target's circuit lets a
    request through; ``rng`` draws load-balancing and shadow sampling (seeded in tests)."""
    ordered = _order(route, rng)
    plan: Plan[T] = Plan(route.name, route.strategy, [])
    for target in ordered:
        if not allows(policy, target.provider, target.hosting):
            plan.skipped.append((target.public_model, "policy"))
        elif not available(target):
            plan.skipped.append((target.public_model, "circuit open"))
        else:
            plan.candidates.append(target)
    shadow = route.shadow
    if shadow is not None and route.shadow_sample > 0 and rng.random() < route.shadow_sample:
        if allows(policy, shadow.provider, shadow.hosting):
            plan.shadow = shadow
        else:
            plan.skipped.append((shadow.public_model, "policy (shadow)"))
    return plan


def _order(route: Route[T], rng: random.Random) -> Sequence[T]:
    if route.strategy != "loadbalance" or len(route.targets) == 1:
        return route.targets
    first = rng.choices(range(len(route.targets)), weights=route.weights)[0]
    rest = sorted((i for i in range(len(route.targets)) if i != first), key=lambda i: -route.weights[i])
    return [route.targets[first], *(route.targets[i] for i in rest)]
