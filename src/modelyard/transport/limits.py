"""What the gateway's HTTP server allows a client, with the defaults nginx or Envoy ship, and the process's
open-file limit it needs for them. ``docs/security.md`` explains each limit and the attack it stops."""

from __future__ import annotations

import math
import resource
from contextlib import suppress
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits and timeouts of :class:`modelyard.transport.server.Server`."""

    #: The request target (path and query); longer is refused with 414. nginx: a request line must fit
    #: one of ``large_client_header_buffers`` (8 KiB).
    max_url_bytes: int = 8 * 1024
    #: The whole head (request line and headers), counted as it arrives; larger is refused with 431.
    #: Envoy: ``max_request_headers_kb`` 60; nginx: 4 × 8 KiB buffers.
    max_head_bytes: int = 64 * 1024
    #: Envoy's ``max_headers_count`` (100); more is refused with 431.
    max_headers: int = 100
    #: A keep-alive connection with no request in progress is closed after this. nginx:
    #: ``keepalive_timeout`` 75 s. Bytes that do not begin a request (blank lines) do not count.
    idle_timeout_s: float = 75.0
    #: The head must have arrived this long after its first byte, else 408. nginx: ``client_header_timeout``.
    head_timeout_s: float = 60.0
    #: The longest gap between two reads of a request body, else 408. nginx: ``client_body_timeout``.
    body_timeout_s: float = 60.0
    #: The longest a connection's unsent answer may stay above ``write_buffer_bytes`` (the client reads
    #: nothing) before the connection is closed. nginx: ``send_timeout`` 60 s.
    write_timeout_s: float = 60.0
    #: The high-water mark of a connection's unsent bytes: past it, a streamed answer waits (and the
    #: upstream read with it). asyncio's and uvloop's default, stated so it is not left to chance.
    write_buffer_bytes: int = 64 * 1024
    #: Open client connections; more are answered 503 and closed at once. Also bounded by the open-file
    #: limit (see :func:`connection_cap`). nginx ships ``worker_connections`` 768 per worker; Envoy has no
    #: default cap and asks operators to set one.
    max_connections: int = 10_000

    @property
    def sweep_s(self) -> float:
        """How often connections are checked: every timeout is then kept to within a quarter of itself
        (one timer per server, not one per connection or per read)."""
        return min(self.idle_timeout_s, self.head_timeout_s, self.body_timeout_s) / 4

    def sweeps(self, seconds: float) -> int:
        return max(1, math.ceil(seconds / self.sweep_s - 1e-9))


#: An oversized request's body is read and dropped (so the client reads its 413 rather than a reset) up to
#: this many times the limit; past it the connection is closed.
DISCARD_FACTOR = 4
#: Every read counts at least this many bytes against the head limit: llhttp (through httptools) copies a
#: header value's pieces together once per read, so a value dribbled a byte per read must not get 64 Ki
#: reads (a quadratic copy); 1,024 reads is plenty for any real client's head.
MIN_READ_CHARGE = 64


#: Open files kept for what is not a client connection: the listener, the ledger's spool and database,
#: logs, the ingester's pipe, DNS.
RESERVED_FDS = 256


def raise_fd_limit() -> int:
    """Raise the soft limit of open files to the hard one (the default soft 1,024 would let one client
    holding a thousand sockets starve everyone); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        with suppress(ValueError, OSError):  # not allowed here (a sandbox): keep what there is
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_cap(limits: Limits, fd_limit: int) -> int:
    """Client connections allowed at once: each may hold an upstream connection too, so half of the open
    files left after the reserve, and never more than ``limits.max_connections``."""
    return max(1, min(limits.max_connections, (fd_limit - RESERVED_FDS) // 2))
