"""The application, assembled: config → price catalog, ledger, provider adapters → gateway core → HTTP
routes → the HTTP server. The one module that knows every layer; no layer imports it."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING

from modelyard.catalog.prices import load_catalog
from modelyard.config.loader import missing_credentials
from modelyard.config.schema import Config
from modelyard.errors import ConfigError
from modelyard.gateway.pipeline import Gateway
from modelyard.gateway.targets import unpriced_models
from modelyard.governance.runtime import Governance, open_governance
from modelyard.http.app import Api, refusal
from modelyard.ledger.writer import Ledger
from modelyard.providers.registry import build_adapter
from modelyard.transport.limits import Limits
from modelyard.transport.server import Server

if TYPE_CHECKING:
    from modelyard.gateway.otlp_metrics import OtlpMetricsPush

log = logging.getLogger("modelyard.server")

#: On shutdown, requests still being answered get this long to finish before they are cut short.
SHUTDOWN_GRACE_S = 30.0

#: Net new container objects between two young collections (CPython's default is 700). A request in
#: flight holds a few hundred; at 64 connections the default ran ~130 collections a second and promoted
#: the in-flight requests' objects until a full collection walked the whole heap about once a second:
#: ~8 % of the gateway's time (bench/README.md, "the cyclic collector"). Requests free their objects by
#: reference counting, so the count rarely reaches 10,000; cycles (an exception's traceback) still go.
YOUNG_COLLECTION_THRESHOLD = 10_000


def tune_collector() -> None:
    """Once the gateway is built: move what start-up made (config, catalogs, schemas, route tables) out of
    the collector's sight, for good, and collect the young generation less often."""
    gc.collect()
    gc.freeze()  # start-up objects live as long as the process: a full collection need not walk them
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


@asynccontextmanager
async def running_gateway(
    config: Config, host: str | None = None, port: int | None = None, sock: socket.socket | None = None
) -> AsyncIterator[str]:
    """Start the gateway on ``host:port`` (config defaults; port 0 picks a free one), or on ``sock``, a
    listening socket shared with sibling ``--workers``; yield its base URL.

    The ledger replays any spool left by a crash before the first request is accepted.
    """
    catalog = load_catalog(config.catalog.price_files)
    ledger = Ledger(config.ledger)
    await ledger.start()
    governance: Governance | None = None
    push: OtlpMetricsPush | None = None
    try:
        # One budget store, Governor and key cache per process (the store makes every process agree).
        if config.governance is not None:
            governance = _open_governance(config)
        adapters = {name: build_adapter(name, provider) for name, provider in config.providers.items()}
        gateway = Gateway(config, adapters, catalog, ledger, governance=governance)
        push = _start_metrics_push(config, gateway)
    except BaseException:
        if governance is not None:
            governance.close()
        await ledger.close()
        raise
    limits = Limits(**config.server.limits.model_dump())
    server = Server(Api(gateway).handle, refusal, config.server.max_body_bytes, limits)
    try:
        bound_port = await server.start(
            host or config.server.host, config.server.port if port is None else port, sock
        )
    except BaseException:
        await _close(gateway, ledger, governance, push)
        raise
    try:
        yield f"http://{host or config.server.host}:{bound_port}"
    finally:
        await server.close(SHUTDOWN_GRACE_S)
        await _close(gateway, ledger, governance, push)


def _start_metrics_push(config: Config, gateway: Gateway) -> OtlpMetricsPush | None:
    """The OTLP push of the gateway's series when ``metrics.otlp.enabled``; None (and the SDK's metric
    exporter not even imported) otherwise."""
    if not config.metrics.otlp.enabled:
        return None
    from modelyard.gateway.otlp_metrics import OtlpMetricsPush

    push = OtlpMetricsPush(config.metrics.otlp, gateway.metrics)
    push.start()
    return push


def _open_governance(config: Config) -> Governance:
    """The process's governance engine; a store or database that cannot be opened is a one-line
    ``ConfigError`` naming the field (``serve`` prints it without a traceback)."""
    assert config.governance is not None
    store = config.governance.store
    try:
        return open_governance(config.governance, config.ledger.url)
    except Exception as exc:
        where = (store.url or "").split("@")[-1] if store.kind in ("postgres", "redis") else store.path
        raise ConfigError(
            f"governance.store: cannot open the {store.kind} budget store at {where}"
            f" (or the key table in ledger.url): {type(exc).__name__}: {exc}"
        ) from exc


async def _close(
    gateway: Gateway, ledger: Ledger, governance: Governance | None, push: OtlpMetricsPush | None
) -> None:
    await gateway.close()
    if push is not None:  # after the gateway: its last push counts the last requests
        await push.close()
    await ledger.close()
    if governance is not None:
        governance.close()  # after the gateway: the last requests' settlements have run


async def serve_forever(
    config: Config, host: str | None, port: int | None, sock: socket.socket | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, then finish running requests and flush the ledger. With ``sock``
    this process is one of ``serve --workers`` (:mod:`modelyard.cli.supervisor`)."""
    for line in missing_credentials(config):
        log.warning("%s: its calls are refused until the gateway restarts with it set", line)
    for name in unpriced_models(config, load_catalog(config.catalog.price_files)):
        log.warning("model %s has no price in the catalog: its calls are recorded as unpriced", name)
    admin_env = config.governance.admin_key_env if config.governance else None
    if admin_env and not os.environ.get(admin_env):
        log.warning("%s is not set: the admin API (/admin/keys) answers 404 until it is", admin_env)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with running_gateway(config, host, port, sock) as url:
        tune_collector()
        if sock is None:
            log.warning("modelyard gateway listening on %s (OpenAI base URL: %s/v1)", url, url)
        else:
            log.info("worker %d serving %s", os.getpid(), url)
        await stop.wait()
        log.warning("shutting down: flushing the ledger")
