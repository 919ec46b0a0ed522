"""Requests and tokens per minute, in this process (memory://) and shared through the real Redis."""

from __future__ import annotations

import uuid

import pytest

from modelyard.governance.config import RateLimitConfig
from modelyard.governance.model import RateLimited, Subject
from modelyard.governance.ratelimit import RateLimiter
from tests.governance_support import REDIS_URL, redis_prefix

__all__ = ["redis_prefix"]  # fixture used by name

LIMITS = (
    RateLimitConfig(scope="key", requests_per_minute=3),
    RateLimitConfig(scope="tenant", subject="acme", tokens_per_minute=1000),
)


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest) -> RateLimiter:
    if request.param == "memory":
        return RateLimiter(LIMITS)
    prefix = str(request.getfixturevalue("redis_prefix"))
    return RateLimiter(LIMITS, REDIS_URL, key_prefix=prefix + uuid.uuid4().hex[:6])


def test_requests_per_minute_per_key_answer_with_retry_after(limiter: RateLimiter) -> None:
    for _ in range(3):
        limiter.admit(Subject("other", "k1"), tokens=10)
    with pytest.raises(RateLimited) as refused:
        limiter.admit(Subject("other", "k1"), tokens=10)
    err = refused.value
    assert (err.status, err.code, err.limit) == (429, "rate_limit_exceeded", "3 requests/min")
    assert 1 <= err.retry_after <= 60
    assert "retry after" in err.message
    limiter.admit(Subject("other", "k2"), tokens=10)  # each key has its own count


def test_tokens_per_minute_per_tenant_and_a_refusal_counts_nothing(limiter: RateLimiter) -> None:
    limiter.admit(Subject("acme", "a"), tokens=400)
    limiter.admit(Subject("acme", "b"), tokens=400)
    with pytest.raises(RateLimited, match="1000 tokens/min for tenant acme"):
        limiter.admit(Subject("acme", "c"), tokens=400)
    # The refused request was not counted: key c still has its three requests, tenant acme 200 tokens.
    for _ in range(3):
        limiter.admit(Subject("other", "c"), tokens=1)
    limiter.admit(Subject("acme", "d"), tokens=200)
    with pytest.raises(RateLimited):
        limiter.admit(Subject("acme", "e"), tokens=1)
    limiter.admit(Subject("other", "e"), tokens=5000)  # no token limit applies to other tenants


def test_tokens_beyond_the_estimate_are_charged_after_the_call(limiter: RateLimiter) -> None:
    limiter.admit(Subject("acme", "a"), tokens=100)
    limiter.charge(Subject("acme", "a"), extra_tokens=850)
    with pytest.raises(RateLimited):
        limiter.admit(Subject("acme", "b"), tokens=100)


def test_two_limiters_on_redis_share_one_count(redis_prefix: str) -> None:
    first = RateLimiter(LIMITS, REDIS_URL, key_prefix=redis_prefix + "shared")
    second = RateLimiter(LIMITS, REDIS_URL, key_prefix=redis_prefix + "shared")
    first.admit(Subject(None, "k"), tokens=1)
    second.admit(Subject(None, "k"), tokens=1)
    first.admit(Subject(None, "k"), tokens=1)
    with pytest.raises(RateLimited):
        second.admit(Subject(None, "k"), tokens=1)
