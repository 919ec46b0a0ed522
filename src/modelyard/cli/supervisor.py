"""``modelyard serve --workers N``: N gateway processes accepting on one port, kept running.

**One ``SO_REUSEPORT`` listening socket per worker**, made here and handed to the worker (``pass_fds``):
the kernel spreads new connections over the workers' sockets by a hash of each connection's addresses.
The other way — one listening socket shared by every worker — was the first one built here and measured
with ``bench/workers.py``: a client opening its keep-alive connections in a burst (wrk; a load balancer's
pool) had them all accepted by whichever worker woke first (libuv accepts all that are queued), and in
about one run in four one worker served every connection while the other idled. What the hash costs:
connections still queued (never accepted) on a worker that dies are reset, not handed to a sibling
(unless ``net.ipv4.tcp_migrate_req`` is 1): no request on them was answered, so no ledger row is owed,
and clients see a refused connection they may retry. A few long-lived connections can still hash onto
one worker; many clients, or a pool of tens of connections, spread evenly. The port itself is held by a
socket bound here and never listened on (so ``--port 0`` works and a restarted worker gets the same port).

Workers are started afresh (``python -m modelyard serve --listen-fd``), not forked from this process: a
fork would copy whatever state the parent had, and the parent stays small and loop-free on purpose.

The supervisor restarts a worker that exits on its own (crash, OOM kill, ``kill -9``), backing off if it
keeps dying within seconds; it stops everything when a worker fails at start-up (a config or database
error: restarting cannot fix it). SIGTERM or SIGINT to the supervisor is passed on as SIGTERM to each
worker, which stops accepting, finishes its running requests and flushes its ledger
(:func:`modelyard.app.serve_forever`); a worker still running after the grace period is killed. A
supervisor killed outright (``kill -9``) takes its workers with it: each asked Linux for a SIGTERM when
its parent dies (``PR_SET_PDEATHSIG``), and stops as gracefully as above.

Every worker keeps the ledger's zero-loss guarantee by itself: each appends to its own spool segments
(named by pid, ``flock``-ed while live) in the shared spool directory. When a worker is killed, the kernel
drops its locks; its ingester process, seeing its pipe close, stores what is left, and so do the sibling
workers' ingesters and the restarted worker's (claims are exclusive, inserts idempotent).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger("modelyard.server")

#: A worker that exits this soon after starting, with status 1, failed at start-up (config, database).
STARTUP_S = 5.0
#: A worker dying sooner than this after starting waits before it is restarted, doubling each time.
CRASH_LOOP_S = 10.0
MAX_BACKOFF_S = 30.0
#: How long stopping workers get before they are killed: the gateway's grace period for running
#: requests (``SHUTDOWN_GRACE_S``) plus the ledger ingester's last pass.
STOP_TIMEOUT_S = 90.0
POLL_S = 0.1
#: The environment variable naming a worker's supervisor (see :func:`_stop_with_parent`).
SUPERVISOR_PID = "MODELYARD_SUPERVISOR_PID"


def _socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def hold_port(host: str, port: int) -> socket.socket:
    """The port every worker will listen on (port 0 picks a free one), held by a socket that never
    listens itself: in the ``SO_REUSEPORT`` group, only listening sockets are given connections."""
    return _socket(host, port)


def worker_socket(host: str, port: int) -> socket.socket:
    """One worker's own socket on the shared port, bound but not yet listening: the worker's server
    listens once the worker is ready, so until then connections go to the workers already serving."""
    sock = _socket(host, port)
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


@dataclass
class Worker:
    slot: int
    process: subprocess.Popen[bytes]
    started: float
    #: Quick deaths in a row, for the back-off.
    crashes: int = 0


class Supervisor:
    """Starts ``count`` workers on the port ``held`` holds and keeps them running until told to stop."""

    def __init__(self, command: list[str], held: socket.socket, count: int) -> None:
        self.command, self.held, self.count = command, held, count
        self.host, self.port = held.getsockname()[:2]
        self.workers: dict[int, Worker] = {}
        self.stopping = False
        #: slot → (monotonic time its restart is due, its quick deaths in a row) for exited workers.
        self._due: dict[int, tuple[float, int]] = {}

    def start(self, slot: int, crashes: int = 0) -> None:
        sock = worker_socket(self.host, self.port)
        try:
            fd = sock.fileno()
            # The worker learns who its supervisor is from here, not from getppid(): a supervisor that dies
            # while the worker is still starting would otherwise leave it an orphan that never notices.
            env = {**os.environ, SUPERVISOR_PID: str(os.getpid())}
            process = subprocess.Popen([*self.command, "--listen-fd", str(fd)], pass_fds=(fd,), env=env)
        finally:
            sock.close()  # the worker's copy is the only one: its queue goes with it
        self.workers[slot] = Worker(slot, process, time.monotonic(), crashes)
        log.info("worker %d started (pid %d)", slot, process.pid)

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT (exit status 0) or a start-up failure (1)."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in range(self.count):
                self.start(slot)
            while not self.stopping:
                if self._reap():
                    self.stop()
                    return 1
                now = time.monotonic()
                for slot, (due, crashes) in list(self._due.items()):
                    if due <= now and not self.stopping:
                        del self._due[slot]
                        self.start(slot, crashes)
                time.sleep(POLL_S)
            self.stop()
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _reap(self) -> bool:
        """Note the workers that exited and schedule their restart; True if one failed at start-up."""
        for slot, worker in list(self.workers.items()):
            status = worker.process.poll()
            if status is None or self.stopping:
                continue
            del self.workers[slot]
            lived = time.monotonic() - worker.started
            if status == 1 and lived < STARTUP_S:
                log.error("worker %d (pid %d) failed at start-up; stopping", slot, worker.process.pid)
                return True
            crashes = worker.crashes + 1 if lived < CRASH_LOOP_S else 0
            delay = 0.0 if crashes == 0 else min(MAX_BACKOFF_S, 0.5 * 2 ** (crashes - 1))
            how = f"signal {-status}" if status < 0 else f"status {status}"
            log.error(
                "worker %d (pid %d) exited with %s after %.1fs; restarting in %.1fs",
                slot,
                worker.process.pid,
                how,
                lived,
                delay,
            )
            self._due[slot] = (time.monotonic() + delay, crashes)
        return False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            log.warning("%s: stopping %d worker(s)", signal.Signals(signum).name, len(self.workers))
        self.stopping = True

    def stop(self) -> None:
        """SIGTERM to every worker; wait for each to finish its requests and flush; kill the stragglers."""
        self.stopping = True
        self._due.clear()
        for worker in self.workers.values():
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for worker in self.workers.values():
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d (pid %d) did not stop in time; killed", worker.slot, worker.process.pid)
                worker.process.kill()
                worker.process.wait()
        self.held.close()


def supervise(config_path: str, host: str, port: int, count: int) -> int:
    """Bind ``host:port``, run ``count`` workers of ``modelyard serve -c config_path`` on it."""
    held = hold_port(host, port)
    bound = held.getsockname()[1]
    url = f"http://{host}:{bound}"
    log.warning("modelyard gateway listening on %s with %d workers (OpenAI base URL: %s/v1)", url, count, url)
    command = [sys.executable, "-m", "modelyard", "serve", "-c", config_path, "--host", host]
    command += ["--port", str(bound)]
    return Supervisor(command, held, count).run()


def inherited_socket(fd: int) -> socket.socket:
    """The socket the supervisor made for this worker (the server listens on it); the worker stops (gracefully, by
    SIGTERM) if the supervisor dies, rather than serving on as an orphan nobody supervises."""
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    os.set_inheritable(fd, False)  # not passed on to the worker's own children (the ledger ingester)
    _stop_with_parent()
    return sock


def _stop_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = int(os.environ.get(SUPERVISOR_PID, os.getppid()))
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the supervisor died before the request above took effect
        os.kill(os.getpid(), signal.SIGTERM)
