"""What the request TypedDicts of http/ share: picking a union member by the value's ``type``."""

from __future__ import annotations

from typing import Any

from pydantic import Discriminator


def by_type(*known: str) -> Discriminator:
    """Pick a union member by the value's ``type``: the ``known`` ones by their tag ``[type]``, any other
    value as ``[other]``. The tags are bracketed so the error's parameter path leaves them out
    (``validation._param``), and a type no member names still reaches the catch-all member instead of
    failing on the discriminator: unknown, newer parts pass through to the upstream."""

    def tag(value: Any) -> str:
        kind = value.get("type") if isinstance(value, dict) else None
        return f"[{kind}]" if kind in known else "[other]"

    return Discriminator(tag)
