"""Which budgets a request draws on, and how much: a pure function of (config, subject, estimate, time)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelyard.governance.config import BudgetConfig, GovernanceConfig
from modelyard.governance.estimate import Estimate
from modelyard.governance.model import EACH, Line, Scope, Subject, Unit, Window
from modelyard.governance.windows import window_at


def applies(budget: BudgetConfig, subject: Subject) -> str | None:
    """The subject value ``budget`` counts this request under, or None if it does not apply."""
    value = subject.of(budget.scope)
    if value is None or (budget.subject != EACH and budget.subject != value):
        return None
    return value


def counter_id(budget: str, subject: str, window_start: float) -> str:
    """One counter per (budget, subject, window): the same string in every process and replica."""
    return f"{budget}|{subject}|{int(window_start)}"


def lines_for(
    config: GovernanceConfig,
    subject: Subject,
    estimate: Estimate,
    now: float,
    extra: Sequence[BudgetConfig] = (),
) -> tuple[Line, ...]:
    """The reservation lines, sorted by counter so every store locks counters in one order. ``extra``:
    budgets from outside the config, such as a runtime key's own limits (:mod:`.keys`)."""
    template = _template(config, subject, now, extra)
    cost, tokens = estimate.cost_pico, estimate.tokens
    lines = []
    for counter, name, scope, value, unit, limit, hard, window in template.lines:
        if unit == "usd":
            if cost is None:
                continue  # governance.unpriced: skip_usd, stated in estimate.py
            amount = cost
        else:
            amount = tokens if unit == "tokens" else 1
        lines.append(Line(counter, name, scope, value, unit, amount, limit, hard, window))
    return tuple(lines)


@dataclass(frozen=True, slots=True)
class _Template:
    """Which budgets apply to one subject, under which counters, while their windows last: the part of
    :func:`lines_for` that does not depend on the estimate, worked out once rather than per request."""

    config: GovernanceConfig
    extra: tuple[BudgetConfig, ...]
    #: Per line: counter, budget name, scope, subject, unit, limit, hard, window.
    lines: tuple[tuple[str, str, Scope, str, Unit, int, bool, Window], ...]
    start: float
    end: float


def _template(
    config: GovernanceConfig, subject: Subject, now: float, extra: Sequence[BudgetConfig]
) -> _Template:
    key = (id(config), subject, tuple(map(id, extra)))
    found = _TEMPLATES.get(key)
    if (
        found is not None
        and found.config is config
        and found.start <= now < found.end
        and all(a is b for a, b in zip(found.extra, extra, strict=True))
    ):
        return found
    lines = []
    for budget in (*config.budgets, *_rate_budgets(config), *extra):
        value = applies(budget, subject)
        if value is not None:
            window = window_at(budget.window, now)
            counter = counter_id(budget.name, value, window.start)
            hard = budget.mode == "hard"
            lines.append(
                (counter, budget.name, budget.scope, value, budget.unit, budget.limit_units, hard, window)
            )
    lines.sort(key=lambda line: line[0])
    start = max((w.start for *_, w in lines), default=float("-inf"))
    end = min((w.end for *_, w in lines), default=float("inf"))
    if len(_TEMPLATES) > 10_000:
        _TEMPLATES.clear()  # many subjects (runtime keys, tenants): memory stays bounded
    found = _TEMPLATES[key] = _Template(config, tuple(extra), tuple(lines), start, end)
    return found


_TEMPLATES: dict[tuple[int, Subject, tuple[int, ...]], _Template] = {}


def _rate_budgets(config: GovernanceConfig) -> tuple[BudgetConfig, ...]:
    """The config's rate-limit budgets, built once per config object (kept with it, so a recycled id()
    never matches another config)."""
    cached = _RATE_BUDGETS.get(id(config))
    if cached is None or cached[0] is not config:
        if len(_RATE_BUDGETS) > 64:
            _RATE_BUDGETS.clear()
        cached = _RATE_BUDGETS[id(config)] = (config, config.rate_limit_budgets())
    return cached[1]


_RATE_BUDGETS: dict[int, tuple[GovernanceConfig, tuple[BudgetConfig, ...]]] = {}


def usd_budgets_apply(config: GovernanceConfig, subject: Subject) -> bool:
    """Whether a hard USD budget covers this subject (an unpriced model then needs the stated rule)."""
    return any(b.unit == "usd" and b.mode == "hard" and applies(b, subject) for b in config.budgets)
