"""The offline HTML page of a sweep: throughput against latency, the knee marked, and the table.

One file, inline SVG and CSS, nothing fetched: it opens from disk on an air-gapped machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from modelyard.benchmark.knee import Knee
from modelyard.benchmark.stats import LevelStats, Slo

W, H = 560, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 20, 34, 46

_CSS = (
    "body{font:14px system-ui,sans-serif;margin:2rem;color:#111}table{border-collapse:collapse}"
    "td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:right}"
    ".knee td{background:#fef3c7}svg{margin:0 1rem 1rem 0}.ax{stroke:#333}.grid{stroke:#eee}"
    ".tk{font-size:11px;fill:#555}.curve{fill:none;stroke:#2563eb;stroke-width:2}.pt{fill:#2563eb}"
    ".knee-mark{fill:none;stroke:#dc2626;stroke-width:2.5}.slo{stroke:#dc2626;stroke-dasharray:5 4}"
)


def _chart(
    title: str, levels: Sequence[LevelStats], metric: str, knee: Knee | None, slo: float | None
) -> str:
    points = [(lv.output_tokens_per_s, float(getattr(lv, metric)), lv.concurrency) for lv in levels]
    points = [(x, y, c) for x, y, c in points if not math.isnan(y)]
    xmax = max([x for x, _, _ in points] + [1.0]) * 1.1
    ymax = max([y for _, y, _ in points] + [slo or 0.0, 1.0]) * 1.1

    def sx(v: float) -> float:
        return LEFT + (W - LEFT - RIGHT) * v / xmax

    def sy(v: float) -> float:
        return H - BOTTOM - (H - TOP - BOTTOM) * v / ymax

    out = [
        f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" class="ax"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" class="ax"/>',
    ]
    for i in range(5):
        y, x = sy(ymax * i / 4), sx(xmax * i / 4)
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="tk" text-anchor="end">{ymax * i / 4:.0f}</text>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" class="tk" text-anchor="middle">{xmax * i / 4:.0f}</text>'
        )
    out.append(
        f'<text x="{(W + LEFT) / 2}" y="{H - 8}" class="tk" text-anchor="middle">output tokens/s</text>'
    )
    out.append(f'<text x="14" y="{TOP - 12}" class="tk">{escape(title)} (ms)</text>')
    if slo is not None:
        out.append(f'<line x1="{LEFT}" y1="{sy(slo):.1f}" x2="{W - RIGHT}" y2="{sy(slo):.1f}" class="slo"/>')
        out.append(
            f'<text x="{W - RIGHT}" y="{sy(slo) - 4:.1f}" class="tk" text-anchor="end">objective</text>'
        )
    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _ in points)
    out.append(f'<polyline points="{path}" class="curve"/>')
    for x, y, c in points:
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" class="pt"/>')
        out.append(f'<text x="{sx(x) + 6:.1f}" y="{sy(y) - 6:.1f}" class="tk">c={c}</text>')
    if knee is not None and not math.isnan(getattr(levels[knee.index], metric)):
        kx, ky = sx(knee.output_tokens_per_s), sy(getattr(levels[knee.index], metric))
        out.append(
            f'<circle cx="{kx:.1f}" cy="{ky:.1f}" r="9" class="knee-mark"><title>knee</title></circle>'
        )
        out.append(f'<text x="{kx:.1f}" y="{ky + 22:.1f}" class="tk" text-anchor="middle">knee</text>')
    label = f"{title} against output tokens/s"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img">'
        f"<title>{escape(label)}</title>{''.join(out)}</svg>"
    )


COLUMNS = (
    ("concurrency", "concurrency", "{:d}"),
    ("req/s", "requests_per_s", "{:.2f}"),
    ("out tok/s", "output_tokens_per_s", "{:.0f}"),
    ("TTFT p50", "ttft_p50_ms", "{:.0f}"),
    ("TTFT p95", "ttft_p95_ms", "{:.0f}"),
    ("TTFT p99", "ttft_p99_ms", "{:.0f}"),
    ("ITL p50", "itl_p50_ms", "{:.1f}"),
    ("ITL p99", "itl_p99_ms", "{:.1f}"),
    ("E2E p50", "e2e_p50_ms", "{:.0f}"),
    ("E2E p95", "e2e_p95_ms", "{:.0f}"),
    ("errors", "error_rate", "{:.1%}"),
    ("goodput", "goodput", "{:.1%}"),
)


def render_page(title: str, levels: Sequence[LevelStats], knee: Knee | None, slo: Slo) -> str:
    """The whole page as text."""
    head = "".join(f"<th>{escape(name)}</th>" for name, _, _ in COLUMNS)
    rows = []
    for i, lv in enumerate(levels):
        cells = "".join(f"<td>{fmt.format(getattr(lv, attr))}</td>" for _, attr, fmt in COLUMNS)
        rows.append(f"<tr{' class=knee' if knee and knee.index == i else ''}>{cells}</tr>")
    summary = (
        f"Knee: concurrency {knee.concurrency}, {knee.output_tokens_per_s:.0f} output tokens/s, "
        f"{knee.requests_per_s:.2f} requests/s."
        if knee
        else "No level met the objective: there is no knee."
    )
    charts = _chart("p95 time to first token", levels, "ttft_p95_ms", knee, slo.ttft_ms) + _chart(
        "p95 end-to-end latency", levels, "e2e_p95_ms", knee, slo.e2e_ms
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1><p>{escape(summary)}</p>"
        f"<div>{charts}</div><table><tr>{head}</tr>{''.join(rows)}</table>"
        "<p>Latencies in milliseconds; token counts from the server's usage. Goodput: the share of "
        "requests that met the time-to-first-token and end-to-end objectives.</p></body></html>"
    )
