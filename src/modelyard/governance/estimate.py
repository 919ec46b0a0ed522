"""The reservation estimate: an upper bound of what a request can cost, known before it is sent.

- Input tokens: ``bound`` counts the prompt's UTF-8 bytes, a true upper bound for byte-level BPE
  tokenizers (OpenAI, Anthropic, Gemini, Llama: every token covers at least one byte), plus OpenAI's
  documented per-message overhead. ``approx`` divides the bytes by 4 (English averages ~4 bytes a token),
  closer but not a bound: a request that beats it spends a little past its reservation, settled exactly.
- Output tokens: the smaller of the request's ``max_tokens`` and the workload's cap; with neither, the
  configured default. Never the model's whole context (that reserves the headroom away, LiteLLM #38647).
  A request that sets no bound gets the reserved one sent upstream (:func:`bound_to_send`), so the
  provider stops where the reservation does; a workload with ``bound_output: false`` opts out, and its
  reservations are flagged ``unbounded`` (the overshoot bound does not hold for them).
- Price: the catalog's, exact in pico-USD (long-context tiers included). An unpriced model follows
  ``unpriced``: ``refuse``, ``fixed`` (reserve and later charge ``unpriced_usd``), or ``skip_usd`` (USD
  budgets are not drawn on; token and request budgets still are). Never a silent pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from modelyard.catalog.prices import ModelPrice, to_pico
from modelyard.errors import InvalidRequest
from modelyard.governance.config import GovernanceConfig, WorkloadCaps
from modelyard.governance.model import Line, UnpricedModel
from modelyard.providers.base import Usage

#: OpenAI's chat format: ~3 tokens of framing per message plus 3 to prime the reply (their cookbook).
PER_MESSAGE_TOKENS = 4
PER_REQUEST_TOKENS = 3
APPROX_BYTES_PER_TOKEN = 4

#: Where a reservation's output bound comes from, and who enforces it:
#: ``asked``: the request's own ``max_tokens`` (the provider stops there);
#: ``capped``: the workload's cap, sent upstream by the gateway (always: the cap is a hard limit);
#: ``default``: ``default_max_output_tokens``, sent upstream when a USD or token budget draws on it;
#: ``unbounded``: nothing sent (the workload's ``bound_output: false``): the answer may cost more than held.
OutputBound = Literal["asked", "capped", "default", "unbounded"]


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a reservation holds. ``cost_pico`` None: USD budgets are not drawn on (``skip_usd``)."""

    cost_pico: int | None
    input_tokens: int
    output_tokens: int  # all answers' output: ``answers`` times the bound of one
    output_bound: OutputBound = "asked"
    answers: int = 1  # a legacy completion of a list of prompts writes one answer per prompt

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def input_tokens(texts: Sequence[str], *, mode: str = "bound") -> int:
    """Input tokens of a prompt made of ``texts`` (one per message), bounded or approximated."""
    size = sum(len(text.encode("utf-8")) for text in texts)
    if mode == "approx":
        size = -(-size // APPROX_BYTES_PER_TOKEN)
    return size + PER_MESSAGE_TOKENS * len(texts) + PER_REQUEST_TOKENS


def output_tokens(max_tokens: int | None, workload_cap: int | None, default: int) -> int:
    """The output bound: the smaller of what the request asks and what its workload allows."""
    asked = [n for n in (max_tokens, workload_cap) if n is not None]
    return min(asked) if asked else default


def output_bound(caps: WorkloadCaps | None, max_tokens: int | None) -> OutputBound:
    """Who bounds the output of a request that asks ``max_tokens`` under a workload's ``caps``."""
    if max_tokens is not None:
        return "asked"
    if caps is not None and not caps.bound_output:
        return "unbounded"
    if caps is not None and caps.max_output_tokens is not None:
        return "capped"
    return "default"


def bound_to_send(estimate: Estimate, lines: Sequence[Line]) -> int | None:
    """The ``max_tokens`` the gateway sends upstream for a request that set none: the reserved output,
    when the workload caps it or a USD or token budget (or tokens-per-minute limit) holds it. None: send
    nothing (the request has its own, its workload opted out, or only request counts are held)."""
    if estimate.output_bound == "capped" or (
        estimate.output_bound == "default" and any(line.unit != "requests" for line in lines)
    ):
        return estimate.output_tokens // estimate.answers  # the bound of one answer, as the API reads it
    return None


def check_caps(
    config: GovernanceConfig, workload: str | None, prompt_tokens: int, max_tokens: int | None
) -> None:
    """Refuse a request above its workload's hard caps before anything is reserved."""
    caps = config.workloads.get(workload or "")
    if caps is None:
        return
    if caps.max_input_tokens is not None and prompt_tokens > caps.max_input_tokens:
        raise InvalidRequest(
            f"the prompt is about {prompt_tokens} tokens; workload {workload!r} allows {caps.max_input_tokens}:"
            " shorten it or use a workload with a larger max_input_tokens",
            code="prompt_too_large",
            param="messages",
        )
    if max_tokens is not None and caps.max_output_tokens is not None and max_tokens > caps.max_output_tokens:
        raise InvalidRequest(
            f"max_tokens {max_tokens} is above workload {workload!r}'s cap of {caps.max_output_tokens}:"
            f" send max_tokens <= {caps.max_output_tokens}",
            code="max_tokens_above_cap",
            param="max_tokens",
        )


def estimate(
    config: GovernanceConfig,
    price: ModelPrice | None,
    *,
    model: str,
    workload: str | None,
    prompt_tokens: int,
    max_tokens: int | None,
    usd_budgets_apply: bool,
    search_units: int = 0,
    answers: int = 1,
) -> Estimate:
    """The reservation for one request (prompt already counted with :func:`input_tokens`; a rerank
    request's ``search_units`` bounded by the caller, priced where the model bills searches; ``answers``
    the number of answers the output bound applies to each of)."""
    check_caps(config, workload, prompt_tokens, max_tokens)
    caps = config.workloads.get(workload or "")
    out = answers * output_tokens(
        max_tokens, caps.max_output_tokens if caps else None, config.default_max_output_tokens
    )
    if price is not None:
        usage = Usage(input_tokens=prompt_tokens, output_tokens=out, search_units=search_units)
        cost: int | None = price.cost_pico(usage)
    elif not usd_budgets_apply or config.unpriced == "skip_usd":
        cost = None
    elif config.unpriced == "fixed":
        cost = to_pico(config.unpriced_usd)
    else:
        raise UnpricedModel(
            f"model {model!r} has no price in the catalog, so its cost cannot be reserved against a USD budget:"
            " add it to a price file (catalog.price_files), or set governance.unpriced to 'fixed' or 'skip_usd'"
        )
    return Estimate(cost, prompt_tokens, out, output_bound(caps, max_tokens), answers)


def unpriced_actual_cost(estimate: Estimate) -> int:
    """What an unpriced call is charged at settlement under ``unpriced: fixed``: its reservation, since
    the true cost is unknown (0 under ``skip_usd``, where no USD budget was drawn on)."""
    return estimate.cost_pico or 0
