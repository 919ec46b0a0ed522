"""Headers a policy depends on, read whole: every repeated line and every comma-separated item.

A proxy in front may append its own copy of a header after the client's; reading only the first value
would let the client's copy overrule the proxy's.
"""

from __future__ import annotations

from collections.abc import Mapping

from modelyard.errors import InvalidRequest


def header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of a header: each repeated header line, each comma-separated item (RFC 9110 5.3). A
    proxy that appends a header must not be overruled by the client's copy that came first."""
    first = headers.get(name)
    if first is None:  # the common case, without building lists
        return []
    getall = getattr(headers, "getall", None)
    lines: list[str] = getall(name) if getall is not None else [first]
    return [item.strip() for line in lines for item in line.split(",") if item.strip()]


def single_header(headers: Mapping[str, str], name: str) -> str | None:
    """A header that must have one value; different values are refused rather than one picked."""
    values = header_values(headers, name)
    if not values:
        return None
    if len(values) > 1 and len(set(values)) > 1:
        raise InvalidRequest(
            f"{name} was sent with different values ({', '.join(sorted(set(values)))}); send one",
            code="conflicting_header",
            param=name,
        )
    return values[0]
