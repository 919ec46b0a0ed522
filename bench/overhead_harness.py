"""The moving parts of the gateway-overhead benchmark: tools, processes, load generators, memory probes.

Nothing here knows which system is being measured; ``gateway_overhead.py`` composes it.
CPU 0 runs the system under test; CPU 1 runs nginx, wrk and the TTFB client.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SYSTEM_CPU = "0"
LOADGEN_CPU = "1"
LITELLM_VERSION = "1.106.2"  # 1.106.3+ need a certifi newer than any release the registry has
LITELLM_VENV = BENCH / ".venv-litellm"
MASTER_KEY = "sk-bench-master-key"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------- installs


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def ensure_debian_tools() -> None:
    """nginx and wrk from Debian, installed with apt-get when missing (the machine runs as root)."""
    if nginx_binary() and shutil.which("wrk"):
        return
    log("installing nginx-light and wrk with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "nginx-light", "wrk"], check=True, env=env)


def litellm_installed() -> bool:
    python = LITELLM_VENV / "bin" / "python"
    if not (LITELLM_VENV / "bin" / "litellm").exists():
        return False
    probe = "import importlib.metadata as m; print(m.version('litellm'))"
    found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    return found.stdout.strip() == LITELLM_VERSION


def ensure_litellm() -> None:
    """The LiteLLM proxy in its own virtualenv, at the pinned version (and the pinned dependencies that
    ``litellm-constraints.txt`` records, so reruns measure the same code)."""
    if litellm_installed():
        return
    log(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} (a few minutes)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(LITELLM_VENV)], check=True)
    command = [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"]
    constraints = BENCH / "litellm-constraints.txt"
    if constraints.exists():
        command += ["-c", str(constraints)]
    subprocess.run(command, check=True)


# --------------------------------------------------------------------------------------------- processes


@dataclass
class Process:
    """A child started in its own session, pinned to one CPU, stopped by its own process id."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls, name: str, argv: list[str], cpu: str, log_path: Path, env: dict[str, str] | None = None
    ) -> Process:
        out = log_path.open("wb")
        popen = subprocess.Popen(
            ["taskset", "-c", cpu, *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group: stopping it stops its workers too
            cwd=REPO,
        )
        return cls(name, popen, log_path)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop in {timeout:.0f}s: killing it")
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_until_answering(process: Process, url: str, body: bytes, timeout: float) -> int:
    """POST ``body`` until a 200 comes back; returns how many requests were answered with 200 (for the
    ledger count). Raises with the process's log if it dies or never answers."""
    deadline = time.monotonic() + timeout
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"}
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited ({process.popen.returncode}):\n{process.tail()}")
        try:
            # Always an http://127.0.0.1 URL this script built, never user input.
            request = urllib.request.Request(url, body, headers)  # noqa: S310
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                if answer.status == 200:
                    return 1
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)
    raise RuntimeError(f"{process.name} did not answer within {timeout:.0f}s:\n{process.tail()}")


# ------------------------------------------------------------------------------------------------ memory


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(_children(current))
    return tree


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by the process and its descendants' threads.

    CPU per request is the figure least disturbed by other work on a shared machine: time spent waiting
    for the core does not count."""
    ticks = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of the process and its descendants now."""
    return sum(_status_kib(p, "VmRSS") for p in process_tree(pid)) / 1024


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory (VmHWM) summed over the process tree: for one process, its exact peak."""
    return sum(_status_kib(p, "VmHWM") for p in process_tree(pid)) / 1024


# ------------------------------------------------------------------------------------------------- load


@dataclass
class WrkRun:
    connections: int
    seconds: float
    requests: int
    rps: float
    errors: dict[str, int]
    latency_us: dict[str, float]
    raw: dict[str, Any] = field(repr=False)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def run_wrk(
    base_url: str,
    path: str,
    body: Path,
    *,
    connections: int,
    seconds: float,
    alt_body: Path | None = None,
    delay_ms: int = 0,
    ids_dir: Path | None = None,
) -> WrkRun:
    """One wrk run (one thread, on the load generator's CPU) with ``wrk/bench.lua``."""
    env = dict(os.environ, BENCH_BODY=str(body), BENCH_PATH=path, BENCH_DELAY_MS=str(delay_ms))
    if alt_body is not None:
        env["BENCH_BODY_ALT"] = str(alt_body)
    if ids_dir is not None:
        env["BENCH_IDS_DIR"] = str(ids_dir)
    argv = ["taskset", "-c", LOADGEN_CPU, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    argv += ["--timeout", "10s", "-s", str(BENCH / "wrk" / "bench.lua"), base_url]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    duration = raw["duration_us"] / 1e6
    return WrkRun(
        connections=connections,
        seconds=duration,
        requests=raw["requests"],
        rps=raw["requests"] / duration if duration else 0.0,
        errors=raw["errors"],
        latency_us={k: float(v) for k, v in raw["latency_us"].items()},
        raw=raw,
    )


def run_ttfb(url: str, body: Path, count: int, ids_file: Path | None = None) -> dict[str, Any]:
    """The sequential streaming client (``ttfb_client.py``) on the load generator's CPU."""
    argv = [
        "taskset",
        "-c",
        LOADGEN_CPU,
        sys.executable,
        str(BENCH / "ttfb_client.py"),
        url,
        str(body),
        str(count),
    ]
    if ids_file is not None:
        argv.append(str(ids_file))
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ttfb client failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
