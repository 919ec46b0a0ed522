"""Figures → targets, the table printed at the end of a run, and the JSON kept in bench/results/."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from overhead_harness import LITELLM_VENV, REPO

ORDER = ("direct", "forwarder", "lean", "modelyard-before", "modelyard", "litellm")
MIB_PER_MB = 1e6 / 2**20
#: The issue's targets for modelyard (ledger on), in the units the summary uses.
TARGETS = {
    "rps_vs_forwarder": 0.75,
    "stream_rps_vs_forwarder": 0.75,
    "rps_vs_litellm": 30.0,
    # Issue 19: modelyard's own logic against the same forwarder on its own transport.
    "rps_vs_lean": 0.5,
    "stream_rps_vs_lean": 0.5,
    "added_p50_ms": 0.6,
    "added_p99_ms": 2.0,
    "ttfb_added_p50_ms": 1.0,
    "peak_rss_mib": 150 * MIB_PER_MB,
}


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (
        (done.stdout + done.stderr).strip().splitlines()[0]
        if (done.stdout + done.stderr).strip()
        else "unknown"
    )


def environment(durations: dict[str, Any], load: list[float]) -> dict[str, Any]:
    cpu = next(
        (
            x.split(":", 1)[1].strip()
            for x in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in x
        ),
        "unknown",
    )
    litellm = LITELLM_VENV / "bin" / "python"
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpu": cpu,
        "python": platform.python_version(),
        "aiohttp": metadata.version("aiohttp"),
        "modelyard_commit": _run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "nginx": _run(["nginx", "-v"]),
        "wrk": _run(["wrk", "-v"]),
        "litellm": _run([str(litellm), "-c", "import importlib.metadata as m; print(m.version('litellm'))"])
        if litellm.exists()
        else "not installed",
        "durations": durations,
        "loadavg_start": load,
    }


def flatness(samples: list[tuple[float, float]]) -> dict[str, Any]:
    """RSS growth over a soak: median of the last quarter of samples minus that of the first quarter."""
    values = [v for _, v in samples]
    quarter = max(1, len(values) // 4)
    first, last = statistics.median(values[:quarter]), statistics.median(values[-quarter:])
    growth = last - first
    return {
        "rss_first_quarter_mib": first,
        "rss_last_quarter_mib": last,
        "rss_growth_mib": round(growth, 1),
        "rss_max_mib": max(values),
        "flat": growth <= max(5.0, 0.05 * first),
    }


def _ms(us: float) -> float:
    return round(us / 1000, 3)


def summarise(systems: dict[str, Any]) -> dict[str, Any]:
    """Overheads against direct, and modelyard's ratios and target checks."""
    direct = systems.get("direct")
    out: dict[str, Any] = {}
    for name, r in systems.items():
        if name == "direct" or direct is None:
            continue
        out[name] = {
            "added_p50_ms": _ms(
                r["sequential"]["latency_us"]["p50"] - direct["sequential"]["latency_us"]["p50"]
            ),
            "added_p99_ms": _ms(
                r["sequential"]["latency_us"]["p99"] - direct["sequential"]["latency_us"]["p99"]
            ),
            "ttfb_added_p50_ms": _ms(r["ttfb"]["ttfb_us"]["p50"] - direct["ttfb"]["ttfb_us"]["p50"]),
            "ttfb_added_p99_ms": _ms(r["ttfb"]["ttfb_us"]["p99"] - direct["ttfb"]["ttfb_us"]["p99"]),
        }
    my = systems.get("modelyard")
    if my is None:
        return out
    checks: dict[str, Any] = {}

    def ratio(key: str, other: str, metric: str) -> None:
        if other in systems and systems[other][metric]["rps"]:
            value = my[metric]["rps"] / systems[other][metric]["rps"]
            checks[key] = {
                "value": round(value, 3),
                "target": f">= {TARGETS[key]}",
                "ok": value >= TARGETS[key],
            }

    ratio("rps_vs_forwarder", "forwarder", "throughput")
    ratio("stream_rps_vs_forwarder", "forwarder", "stream_throughput")
    ratio("rps_vs_litellm", "litellm", "throughput")
    ratio("rps_vs_lean", "lean", "throughput")
    ratio("stream_rps_vs_lean", "lean", "stream_throughput")
    for key in ("added_p50_ms", "added_p99_ms", "ttfb_added_p50_ms"):
        if key in out.get("modelyard", {}):
            value = out["modelyard"][key]
            checks[key] = {"value": value, "target": f"<= {TARGETS[key]}", "ok": value <= TARGETS[key]}
    errors = sum(my[m]["errors"][k] for m in ("throughput", "stream_throughput") for k in my[m]["errors"])
    checks["errors_at_64"] = {"value": errors, "target": "== 0", "ok": errors == 0}
    peak = my.get("rss_peak_mib") or 0.0
    checks["peak_rss_mib"] = {
        "value": round(peak, 1),
        "target": "<= 143 (150 MB)",
        "ok": peak <= TARGETS["peak_rss_mib"],
    }
    if "soak" in my:
        soak = my["soak"]
        checks["soak_rss_flat"] = {
            "value": soak["rss_growth_mib"],
            "target": "growth <= max(5 MiB, 5%)",
            "ok": soak["flat"],
        }
    if "ledger" in my:
        led = my["ledger"]
        checks["ledger_rows"] = {
            "value": f"{led['rows']} rows / {led['client_answered']} answered, {led['ids_missing']} of "
            f"{led['ids_checked']} ids missing",
            "target": f"every answered id has a row; extra rows <= {led['cut_at_end_max']} (cut by wrk)",
            "ok": led["ok"],
        }
    out["modelyard_checks"] = checks
    # Not a target: modelyard against the same minimal forwarder on modelyard's own transport, i.e. the
    # price of its validation, routing, policy, metering and ledger alone.
    lean = systems.get("lean")
    if lean is not None:
        out["modelyard_vs_lean"] = {
            metric: round(my[metric]["rps"] / lean[metric]["rps"], 3)
            for metric in ("throughput", "stream_throughput")
            if lean[metric]["rps"]
        }
        before = systems.get("modelyard-before")
        if before is not None:
            out["modelyard_before_vs_lean"] = {
                metric: round(before[metric]["rps"] / lean[metric]["rps"], 3)
                for metric in ("throughput", "stream_throughput")
                if lean[metric]["rps"]
            }
    return out


def _row(label: str, values: dict[str, Any]) -> str:
    cells = "".join(f"{values.get(name, ''):>{max(13, len(name) + 2)}}" for name in ORDER)
    return f"  {label:<30}{cells}"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def render(results: dict[str, Any]) -> str:
    systems, summary, env = results["systems"], results["summary"], results["environment"]

    def per(f: Any, digits: int = 2) -> dict[str, str]:
        return {n: _fmt(f(n, r), digits) for n, r in systems.items() if f(n, r) is not None}

    def added(key: str) -> Any:
        return lambda n, r: summary.get(n, {}).get(key)

    lines = [
        "",
        f"gateway overhead, one worker per system on CPU 0, nginx + wrk on CPU 1 ({env['cpu']})",
        f"load average at start {env['loadavg_start']}, at end {env.get('loadavg_end')}",
        _row("", {n: n for n in ORDER}),
        _row("sequential p50 (ms)", per(lambda n, r: r["sequential"]["latency_us"]["p50"] / 1000, 3)),
        _row("sequential p99 (ms)", per(lambda n, r: r["sequential"]["latency_us"]["p99"] / 1000, 3)),
        _row("  added p50 (ms)", per(added("added_p50_ms"), 3)),
        _row("  added p99 (ms)", per(added("added_p99_ms"), 3)),
        _row("req/s, 64 connections", per(lambda n, r: r["throughput"]["rps"], 0)),
        _row("  errors", per(lambda n, r: sum(r["throughput"]["errors"].values()), 0)),
        _row("  CPU per request (us)", per(lambda n, r: r["throughput"].get("cpu_us_per_request"), 0)),
        _row("  ledger stored after (s)", per(lambda n, r: r["throughput"].get("ledger_drained_s"), 1)),
        _row("stream req/s, 64 connections", per(lambda n, r: r["stream_throughput"]["rps"], 0)),
        _row("  errors", per(lambda n, r: sum(r["stream_throughput"]["errors"].values()), 0)),
        _row("  CPU per request (us)", per(lambda n, r: r["stream_throughput"].get("cpu_us_per_request"), 0)),
        _row(
            "  ledger stored after (s)", per(lambda n, r: r["stream_throughput"].get("ledger_drained_s"), 1)
        ),
        _row("stream TTFB p50 (ms)", per(lambda n, r: r["ttfb"]["ttfb_us"]["p50"] / 1000, 3)),
        _row("stream TTFB p99 (ms)", per(lambda n, r: r["ttfb"]["ttfb_us"]["p99"] / 1000, 3)),
        _row("  added p50 (ms)", per(added("ttfb_added_p50_ms"), 3)),
        _row("  added p99 (ms)", per(added("ttfb_added_p99_ms"), 3)),
        _row("peak RSS (MiB)", per(lambda n, r: r.get("rss_peak_mib"), 1)),
    ]
    checks = summary.get("modelyard_checks")
    if checks:
        lines += ["", "modelyard against the targets:"]
        for key, c in checks.items():
            verdict = "ok  " if c["ok"] else "MISS"
            lines.append(f"  {verdict} {key:<26} {c['value']!s:<44} target {c['target']}")
    lean = summary.get("modelyard_vs_lean")
    if lean:
        lines += ["", "modelyard against the lean forwarder (same transport; issue 19's target: >= 0.5):"]
        lines += [f"  {metric:<31} {value}" for metric, value in lean.items()]
    before = summary.get("modelyard_before_vs_lean")
    if before:
        lines += ["", "modelyard-before (--before) against the lean forwarder, same run:"]
        lines += [f"  {metric:<31} {value}" for metric, value in before.items()]
    return "\n".join(lines)


def save(results: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"gateway-overhead-{time.strftime('%Y%m%d-%H%M%S')}.json"
    text = json.dumps(results, indent=2, default=str)
    path.write_text(text)
    (folder / "latest.json").write_text(text)
    return path
