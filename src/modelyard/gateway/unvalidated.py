"""An answer returned although it failed validation: what the ledger says about it, and how it is marked.

When every attempt's answer fails validation (a ``json_schema`` the request asked for, or a cascade's
validators), the last answer is returned anyway: the tokens were paid for, and a client may still salvage
a near-miss (one missing field) better than a bare error. It is never returned *silently*:

- the client's answer is marked (:data:`VALIDATION_HEADER`, :data:`REASON_HEADER` and a ``modelyard``
  member of the body; see :func:`marked_body`);
- the request row says ``error_kind = validation_failed`` and its route names which attempt's answer was
  returned and what every attempt was billed for (:func:`billing_note`); each rejected attempt's row keeps
  ``error_kind = rejected`` with its own tokens and cost.

``finish_reason`` is left as the model gave it (``stop``): the model did stop, and a value the gateway made
up would break typed clients (openai-python's and the Vercel AI SDK's finish reasons are closed enums).
"""

from __future__ import annotations

from collections.abc import Sequence

from modelyard.ledger.schema import AttemptRow
from modelyard.providers.base import JSON

#: ``failed`` when the answer failed validation after every retry and fallback; absent otherwise.
VALIDATION_HEADER = "X-Modelyard-Validation"
#: Why the returned answer failed (the first violation, at most :data:`_REASON_LIMIT` characters).
REASON_HEADER = "X-Modelyard-Validation-Reason"
_REASON_LIMIT = 200


def billing_note(attempts: Sequence[AttemptRow]) -> str:
    """The route's note: which attempt's answer was returned, and what each answer attempt was billed for."""
    answers = [a for a in attempts if a.purpose == "answer"]
    rejected = [a.attempt for a in answers if a.error_kind == "rejected"]
    returned = rejected[-1] if rejected else None
    billed = []
    for row in answers:
        if row.error_kind == "rejected":
            what = "answer returned, failed validation" if row.attempt == returned else "answer rejected"
        else:
            what = f"failed ({row.error_kind})" if row.error_kind else "answer"
        billed.append(f"attempt {row.attempt}: {what}")
    head = f"returned attempt {returned}'s answer unvalidated" if returned else "returned unvalidated"
    return f"{head}; billed: {', '.join(billed)}"


def header_value(reason: str) -> str:
    """The reason as a header value: one line of printable ASCII (RFC 9110 5.5), cut to a readable length."""
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in reason)
    return text[:_REASON_LIMIT]


def marked_headers(reason: str) -> dict[str, str]:
    return {VALIDATION_HEADER: "failed", REASON_HEADER: header_value(reason)}


def marked_body(body: JSON, reason: str) -> JSON:
    """The answer with a ``modelyard.validation`` member saying it failed and why. SDKs keep unknown
    top-level members (openai-python exposes them as ``model_extra``), so nothing breaks."""
    return {**body, "modelyard": {"validation": {"status": "failed", "reason": reason}}}
