"""Which budgets a request draws on, and how much: a pure function of (config, subject, estimate, time)."""

from __future__ import annotations

from collections.abc import Sequence

from modelyard.governance.config import BudgetConfig, GovernanceConfig
from modelyard.governance.estimate import Estimate
from modelyard.governance.model import EACH, Line, Subject
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
    lines = []
    for budget in (*config.budgets, *_rate_budgets(config), *extra):
        value = applies(budget, subject)
        if value is None:
            continue
        if budget.unit == "usd":
            if estimate.cost_pico is None:
                continue  # governance.unpriced: skip_usd, stated in estimate.py
            amount = estimate.cost_pico
        else:
            amount = estimate.tokens if budget.unit == "tokens" else 1
        window = window_at(budget.window, now)
        lines.append(
            Line(
                counter=counter_id(budget.name, value, window.start),
                budget=budget.name,
                scope=budget.scope,
                subject=value,
                unit=budget.unit,
                amount=amount,
                limit=budget.limit_units,
                hard=budget.mode == "hard",
                window=window,
            )
        )
    lines.sort(key=lambda line: line.counter)
    return tuple(lines)


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
