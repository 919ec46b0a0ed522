"""The money formulas the economics applies everywhere, said once for every number system it uses.

Figures a reader sees are exact ``Decimal`` (:mod:`.tco`); ranking, the solver and sensitivity use float64
arrays (:mod:`.grid`, :mod:`.portfolio`); break-even is solved exactly in ``Fraction`` (:mod:`.breakeven`).
Each formula is written here once, generic over those types, so the paths cannot drift apart;
``tests/test_formulas.py`` checks that they agree to the cent on random inputs.

Rates are fractions (0.15), not percentages: :func:`rate` converts the org profile's percentages.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

Num = TypeVar("Num", Decimal, Fraction, float, NDArray[np.float64])


def rate(pct: Num) -> Num:
    """A percentage as a fraction: 15 → 0.15."""
    return pct / 100


def hosting_on(spend: Num, hosting_rate: Num) -> Num:
    """The hosting bucket: storage, network, CPU nodes and observability, a share of direct spend."""
    return spend * hosting_rate


def risk_on(spend: Num, hosting: Num, risk_rate: Num) -> Num:
    """The risk premium: a share of direct spend plus its hosting."""
    return (spend + hosting) * risk_rate


def marked_up(spend: Num, hosting_rate: Num, risk_rate: Num) -> Num:
    """Direct spend with its hosting and risk: ``spend + hosting + risk`` = ``spend·(1+h)·(1+r)``."""
    hosting = hosting_on(spend, hosting_rate)
    return spend + hosting + risk_on(spend, hosting, risk_rate)
