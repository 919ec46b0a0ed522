"""``server.limits``: the HTTP server's per-connection limits and timeouts (``docs/security.md``), set
from the config. The defaults are those of :class:`modelyard.transport.limits.Limits` (a test holds them
equal; config and transport are sibling layers, so neither imports the other), and the bounds refuse
values that would disable a defence (a zero timeout, a head limit below a browser's cookie header)."""

from __future__ import annotations

from pydantic import Field, model_validator

from modelyard.config.strict import Strict

KIB = 1024


class ServerLimitsConfig(Strict):
    #: The request target (path and query); longer gets 414.
    max_url_bytes: int = Field(8 * KIB, ge=256, le=1024 * KIB)
    #: Request line and headers, counted as they arrive; larger gets 431.
    max_head_bytes: int = Field(64 * KIB, ge=4 * KIB, le=1024 * KIB)
    #: Header lines per request; more gets 431.
    max_headers: int = Field(100, ge=16, le=1000)
    #: Seconds: an idle keep-alive connection is closed; a head or body that stalls gets 408; an answer
    #: the client stops reading closes the connection.
    idle_timeout_s: float = Field(75.0, gt=0, le=3600)
    head_timeout_s: float = Field(60.0, gt=0, le=3600)
    body_timeout_s: float = Field(60.0, gt=0, le=3600)
    write_timeout_s: float = Field(60.0, gt=0, le=3600)
    #: Unsent bytes per connection before a streamed answer waits for the client.
    write_buffer_bytes: int = Field(64 * KIB, ge=4 * KIB, le=64 * 1024 * KIB)
    #: Open client connections (also bounded by half the open-file limit); more get 503 at once.
    max_connections: int = Field(10_000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _url_fits_the_head(self) -> ServerLimitsConfig:
        if self.max_url_bytes > self.max_head_bytes:
            raise ValueError(
                f"max_url_bytes ({self.max_url_bytes}) cannot exceed max_head_bytes ({self.max_head_bytes}):"
                " the request line is part of the head"
            )
        return self
