"""Which HTTP server should the gateway run on? The full gateway (routing, ledger) on its own server,
on granian (RSGI and ASGI) and on uvicorn with httptools, measured in the same run.

Same method as ``gateway_overhead.py``: nginx as the fake upstream and wrk (64 connections) on CPU 1, each
system one worker pinned to CPU 0 with its ledger ingester, rounds interleaved. Prints req/s and CPU µs
per request (gateway + ingester), JSON and streamed, best round of each. granian and uvicorn are installed
on first use into ``bench/.venv-servers`` (pinned below), outside the project's dependencies;
``asgi_gateway.py`` is the thin adapter they serve.

    .venv/bin/python bench/server_choice.py [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from gateway_overhead import (
    CHAT,
    CHAT_PATH,
    CHAT_STREAM,
    Running,
    Subject,
    start_modelyard,
    start_nginx,
)
from overhead_harness import (
    BENCH,
    SYSTEM_CPU,
    Process,
    ensure_debian_tools,
    free_port,
    log,
    wait_until_answering,
)

SERVERS_DIR = BENCH / ".venv-servers"
PINS = ("granian==2.8.7", "uvicorn==0.54.0")  # uvicorn's h11 and click come from the project's venv


def ensure_servers() -> None:
    if all((SERVERS_DIR / name).is_dir() for name in ("granian", "uvicorn")):
        return
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(SERVERS_DIR)]
    subprocess.run([*argv, *PINS], check=True)


def start_adapted(name: str, tmp: Path, config_text: str) -> Running:
    """The gateway behind granian or uvicorn, through ``asgi_gateway.py``."""
    home = tmp / name
    home.mkdir()
    config = home / "modelyard.yaml"
    config.write_text(config_text.replace("@HOME@", str(home)))
    port = free_port()
    common = ["--host", "127.0.0.1", "--port", str(port)]
    if name == "uvicorn":
        argv = [sys.executable, "-m", "uvicorn", "asgi_gateway:asgi_app", *common]
        argv += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    else:
        interface, app = ("rsgi", "rsgi_app") if name == "granian-rsgi" else ("asgi", "asgi_app")
        argv = [sys.executable, "-m", "granian", "--interface", interface, f"asgi_gateway:{app}", *common]
        argv += ["--workers", "1", "--runtime-threads", "1", "--loop", "uvloop", "--log-level", "warning"]
        argv += ["--http", "1"]
    env = {
        "BENCH_UPSTREAM_KEY": "sk-upstream-dummy",
        "MODELYARD_CONFIG": str(config),
        "PYTHONPATH": f"{SERVERS_DIR}:{BENCH}",
    }
    process = Process.start(name, argv, SYSTEM_CPU, home / "server.log", env)
    return Running(process, f"http://127.0.0.1:{port}", ledger_db=home / "modelyard-ledger.db")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--systems", default="modelyard,granian-rsgi,granian-asgi,uvicorn")
    args = parser.parse_args()
    ensure_debian_tools()
    ensure_servers()
    # modelyard on its own server is always measured (and first): every ratio is to it.
    names = ["modelyard", *(n for n in args.systems.split(",") if n != "modelyard")]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {n: {"json": [], "stream": []} for n in names}
    with tempfile.TemporaryDirectory(prefix="modelyard-choice-") as tmp_name:
        tmp = Path(tmp_name)
        nginx, upstream = start_nginx(tmp)
        subjects: list[Subject] = []
        try:
            own_home = tmp / "modelyard"
            own_home.mkdir()
            own = start_modelyard(own_home, upstream)
            config_text = (own_home / "modelyard.yaml").read_text().replace(str(own_home), "@HOME@")
            for name in names:
                running = own if name == "modelyard" else start_adapted(name, tmp, config_text)
                assert running.process is not None
                wait_until_answering(running.process, running.base_url + CHAT_PATH, CHAT.read_bytes(), 60)
                ids = tmp / f"ids-{name}"
                ids.mkdir()
                subjects.append(Subject(name, running, ids))
            for s in subjects:
                s.wrk(CHAT_PATH, CHAT, 8, 3)
                s.wrk(CHAT_PATH, CHAT_STREAM, 8, 3)
            for n in range(1, args.rounds + 1):
                for kind, body in (("json", CHAT), ("stream", CHAT_STREAM)):
                    for s in subjects:
                        run = s.wrk(CHAT_PATH, body, 64, args.seconds)
                        errors = sum(run["errors"].values())
                        log(
                            f"round {n}: {kind} {s.name}: {run['rps']:,.0f} req/s, "
                            f"{run['cpu_us_per_request']} µs CPU/request, {errors} errors"
                        )
                        results[s.name][kind].append(run)
        finally:
            for s in subjects:
                if s.running.process is not None:
                    s.running.process.stop()
            nginx.stop()
    print(f"\n{'server':<14}{'JSON req/s':>12}{'µs CPU':>9}{'stream req/s':>14}{'µs CPU':>9}{'errors':>8}")
    base: dict[str, float] = {}
    for name in names:
        row = []
        for kind in ("json", "stream"):
            runs = results[name][kind]
            rps = max(r["rps"] for r in runs)
            cpu = min(r["cpu_us_per_request"] or 0.0 for r in runs)
            base.setdefault(kind, cpu)
            row += [f"{rps:>12,.0f}", f"{cpu:>9.0f}"]
        errors = sum(sum(r["errors"].values()) for kind in results[name].values() for r in kind)
        print(f"{name:<14}{row[0]}{row[1]}  {row[2]}{row[3]}{errors:>8}")
    print("\nCPU per request relative to modelyard's own server (JSON / streamed):")
    for name in names:
        cpu = [min(r["cpu_us_per_request"] or 0.0 for r in results[name][k]) for k in ("json", "stream")]
        print(f"  {name:<14}{cpu[0] / base['json']:.2f}x / {cpu[1] / base['stream']:.2f}x")


if __name__ == "__main__":
    main()
