"""The one error tree of modelyard.

Every failure a client can see is a :class:`ModelyardError`; the HTTP layer turns it into OpenAI-shaped
JSON (``{"error": {"message", "type", "code", "param"}}``) with :attr:`ModelyardError.status`::

    ModelyardError                      status  type
    ├── InvalidRequest                  400     invalid_request_error   bad JSON, wrong types, unknown workload
    ├── AuthenticationFailed            401     authentication_error
    ├── PolicyDenied                    403     permission_error        data-class policy refused the request
    ├── NotFound                        404     invalid_request_error   unknown model or route
    ├── PayloadTooLarge                 413     invalid_request_error
    ├── InternalError                   500     api_error               a bug: logged with its traceback,
    │                                                                   the client gets only this
    └── UpstreamError                   429/502/503/504/4xx             a provider failed; carries provider,
        │                                                               upstream status and retryable
        ├── UpstreamRateLimited         429     rate_limit_error
        ├── UpstreamUnavailable         502/503 api_error
        ├── UpstreamTimeout             504     timeout_error
        └── UpstreamStreamCut           502     api_error               the stream ended before completion

``ConfigError`` is separate: it stops start-up and is never sent to a client.

Messages must never contain credentials: upstream bodies are summarised, never echoed with headers.
"""

from __future__ import annotations

from typing import Any


class ModelyardError(Exception):
    """An error a client sees, with the fields of OpenAI's error object."""

    status: int = 500
    type: str = "api_error"
    code: str | None = None

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param

    @property
    def kind(self) -> str:
        """A short stable name for the ledger's ``error_kind`` column."""
        return self.code or self.type

    def to_body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}


class InvalidRequest(ModelyardError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationFailed(ModelyardError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PolicyDenied(ModelyardError):
    status = 403
    type = "permission_error"
    code = "policy_denied"


class NotFound(ModelyardError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(ModelyardError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class InternalError(ModelyardError):
    status = 500
    type = "api_error"
    code = "internal_error"


class UpstreamError(ModelyardError):
    """A provider call failed. ``retryable`` says whether another attempt may succeed."""

    status = 502
    type = "api_error"
    code = "upstream_error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        upstream_status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, code=code, param=param)
        self.provider = provider
        self.upstream_status = upstream_status
        if retryable is not None:
            self.retryable = retryable
        if status is not None:
            self.status = status
        self.retry_after = retry_after


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    retryable = True


class UpstreamUnavailable(UpstreamError):
    status = 502
    type = "api_error"
    code = "upstream_unavailable"
    retryable = True


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"
    retryable = True


class UpstreamStreamCut(UpstreamError):
    status = 502
    type = "api_error"
    code = "upstream_stream_cut"
    retryable = False


def upstream_error_for_status(
    provider: str, upstream_status: int, message: str, *, retry_after: float | None = None
) -> UpstreamError:
    """Map a provider's HTTP status to the error the client sees.

    429 stays 429; 503/529 (overloaded) become 503; timeouts reported by the provider become 504; other 5xx
    become 502. A 4xx other than 401/403/429 is the client's request being wrong, so it passes through with
    its status. 401/403 mean the *gateway's* credentials were refused: the client cannot fix that, so 502.
    """
    if upstream_status == 429:
        return UpstreamRateLimited(
            f"{provider} rate limit: {message}",
            provider=provider,
            upstream_status=429,
            retry_after=retry_after,
        )
    if upstream_status in (503, 529):
        return UpstreamUnavailable(
            f"{provider} is unavailable: {message}",
            provider=provider,
            upstream_status=upstream_status,
            retry_after=retry_after,
            status=503,
        )
    if upstream_status in (408, 504):
        return UpstreamTimeout(
            f"{provider} timed out: {message}", provider=provider, upstream_status=upstream_status
        )
    if upstream_status >= 500:
        return UpstreamUnavailable(
            f"{provider} failed: {message}", provider=provider, upstream_status=upstream_status
        )
    if upstream_status in (401, 403):
        return UpstreamError(
            f"{provider} refused the gateway's credentials; check the provider's api_key_env in the config",
            provider=provider,
            upstream_status=upstream_status,
            code="upstream_auth_failed",
        )
    if upstream_status == 404:
        return UpstreamError(
            f"{provider}: {message}",
            provider=provider,
            upstream_status=404,
            code="model_not_found",
            status=404,
        )
    return UpstreamError(
        f"{provider} rejected the request: {message}",
        provider=provider,
        upstream_status=upstream_status,
        code="upstream_invalid_request",
        status=400,
    )


class ConfigError(Exception):
    """The configuration is invalid. Raised at start-up; the message names the field path to fix."""
