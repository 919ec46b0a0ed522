"""The offline HTML page of a sweep: throughput against latency, the knee marked, and the table.

One file, inline SVG (drawn by matplotlib) and CSS, nothing fetched: it opens from disk on an air-gapped machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from modelyard.benchmark.knee import Knee
from modelyard.benchmark.stats import LevelStats, Slo
from modelyard.report.charts import MARK, MUTED, PALETTE, SHORT, figure, to_svg

_CSS = (
    "body{font:14px system-ui,sans-serif;margin:2rem;color:#111}table{border-collapse:collapse}"
    "td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:right}"
    ".knee td{background:#fef3c7}svg{margin:0 1rem 1rem 0}"
)


def _chart(
    title: str, levels: Sequence[LevelStats], metric: str, knee: Knee | None, slo: float | None
) -> str:
    """``metric`` against output tokens/s, each point labelled with its concurrency, the knee circled."""
    points = [(lv.output_tokens_per_s, float(getattr(lv, metric)), lv.concurrency) for lv in levels]
    points = [(x, y, c) for x, y, c in points if not math.isnan(y)]
    label = f"{title} against output tokens/s"
    with figure(label, width=560, height=320, margins=(64, 20, 40, 46)) as (fig, ax):
        ax.plot(
            [x for x, _, _ in points], [y for _, y, _ in points], color=PALETTE[0], lw=2, marker="o", ms=5
        )
        for x, y, c in points:
            ax.annotate(f"c={c}", (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8, color=MUTED)
        if slo is not None:
            ax.axhline(slo, color=MARK, lw=1, ls="--")
            ax.annotate("objective", (1.0, slo), xycoords=("axes fraction", "data"), xytext=(0, 3),
                        textcoords="offset points", ha="right", fontsize=8, color=MARK)  # fmt: skip
        if knee is not None and not math.isnan(getattr(levels[knee.index], metric)):
            ky = float(getattr(levels[knee.index], metric))
            ring = ax.scatter(
                [knee.output_tokens_per_s], [ky], s=260, facecolors="none", edgecolors=MARK, lw=2
            )
            ring.set_gid(f"knee-mark-{metric}")  # findable in the SVG, and unique on the page
            ax.annotate("knee", (knee.output_tokens_per_s, ky), xytext=(0, -20), textcoords="offset points",
                        ha="center", fontsize=9, color=MARK)  # fmt: skip
        ax.set_xlim(0, max([x for x, _, _ in points] + [1.0]) * 1.1)
        ax.set_ylim(0, max([y for _, y, _ in points] + [slo or 0.0, 1.0]) * 1.1)
        ax.xaxis.set_major_formatter(SHORT)
        ax.yaxis.set_major_formatter(SHORT)
        ax.set(xlabel="output tokens/s", ylabel=f"{title} (ms)")
        return to_svg(fig, label)


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
