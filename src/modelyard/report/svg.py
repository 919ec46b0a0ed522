"""Tiny SVG chart builders: no JavaScript, no fonts or files fetched, so the report opens offline.

Each function returns one ``<svg>`` element as text with a ``<title>`` for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

W, H = 640, 300
PAD_L, PAD_R, PAD_T, PAD_B = 70, 20, 30, 45
PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#64748b"]


def _fmt(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.1f}M"
    if a >= 1e3:
        return f"{v / 1e3:.0f}k"
    return f"{v:.0f}" if a >= 10 else f"{v:.2g}"


def _frame(title: str, body: list[str], height: int = H) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {height}" role="img" '
        f'width="{W}" height="{height}"><title>{escape(title)}</title>'
        f'<text x="{PAD_L}" y="18" class="ct">{escape(title)}</text>' + "".join(body) + "</svg>"
    )


def _axes(xmax: float, ymax: float, xlabel: str, ylabel: str, ymin: float = 0.0) -> list[str]:
    out = [f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" class="ax"/>',
           f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" class="ax"/>']  # fmt: skip
    for i in range(5):
        fy = ymin + (ymax - ymin) * i / 4
        y = H - PAD_B - (H - PAD_T - PAD_B) * i / 4
        out.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" class="tk" text-anchor="end">{_fmt(fy)}</text>')
        fx = xmax * i / 4
        x = PAD_L + (W - PAD_L - PAD_R) * i / 4
        out.append(
            f'<text x="{x:.1f}" y="{H - PAD_B + 16}" class="tk" text-anchor="middle">{_fmt(fx)}</text>'
        )
    out.append(
        f'<text x="{(PAD_L + W - PAD_R) / 2}" y="{H - 8}" class="lb" text-anchor="middle">{escape(xlabel)}</text>'
    )
    out.append(f'<text x="14" y="{PAD_T - 10}" class="lb">{escape(ylabel)}</text>')
    return out


def _sx(v: float, xmax: float) -> float:
    return PAD_L + (W - PAD_L - PAD_R) * (v / xmax if xmax else 0)


def _sy(v: float, ymax: float, ymin: float = 0.0) -> float:
    return H - PAD_B - (H - PAD_T - PAD_B) * ((v - ymin) / (ymax - ymin) if ymax > ymin else 0)


def line_chart(
    title: str, series: Sequence[tuple[str, Sequence[tuple[float, float]]]], xlabel: str, ylabel: str,
    markers: Sequence[tuple[float, str]] = (),
) -> str:  # fmt: skip
    """Lines through (x, y) points; ``markers`` are labelled vertical lines (crossover, current volume)."""
    xs = [x for _, pts in series for x, _ in pts] or [1.0]
    ys = [y for _, pts in series for _, y in pts] or [1.0]
    xmax, ymax = max(xs) or 1.0, (max(ys) or 1.0) * 1.05
    body = _axes(xmax, ymax, xlabel, ylabel)
    for i, (name, pts) in enumerate(series):
        path = " ".join(f"{_sx(x, xmax):.1f},{_sy(y, ymax):.1f}" for x, y in pts)
        color = PALETTE[i % len(PALETTE)]
        body.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2" class="series"/>'
        )
        body.append(f'<rect x="{W - 230}" y="{PAD_T + 16 * i}" width="10" height="10" fill="{color}"/>')
        body.append(f'<text x="{W - 215}" y="{PAD_T + 9 + 16 * i}" class="tk">{escape(name[:36])}</text>')
    for j, (x, label) in enumerate(markers):
        sx = _sx(x, xmax)
        body.append(f'<line x1="{sx:.1f}" y1="{PAD_T}" x2="{sx:.1f}" y2="{H - PAD_B}" class="mk"/>')
        body.append(f'<text x="{sx + 4:.1f}" y="{PAD_T + 60 + 14 * j}" class="tk">{escape(label)}</text>')
    return _frame(title, body)


def stacked_bars(
    title: str, labels: Sequence[str], stacks: Sequence[tuple[str, Sequence[float]]], ylabel: str
) -> str:
    """One bar per label, segments stacked; negative segments (reuse savings) drawn below zero."""
    n = len(labels) or 1
    tops = [sum(max(v[i], 0) for _, v in stacks) for i in range(n)]
    bottoms = [sum(min(v[i], 0) for _, v in stacks) for i in range(n)]
    ymax, ymin = (max(tops) or 1.0) * 1.05, min([*bottoms, 0.0]) * 1.05
    body = _axes(float(n), ymax, "month", ylabel, ymin)
    bw = (W - PAD_L - PAD_R) / n * 0.8
    for i in range(n):
        up, down = 0.0, 0.0
        x = PAD_L + (W - PAD_L - PAD_R) * i / n
        for k, (name, values) in enumerate(stacks):
            v = values[i]
            lo, hi = (up, up + v) if v >= 0 else (down + v, down)
            if v >= 0:
                up += v
            else:
                down += v
            y1, y2 = _sy(hi, ymax, ymin), _sy(lo, ymax, ymin)
            color = PALETTE[k % len(PALETTE)]
            body.append(f'<rect x="{x:.1f}" y="{y1:.1f}" width="{bw:.1f}" height="{max(y2 - y1, 0):.1f}" '
                        f'fill="{color}" class="bar"><title>{escape(name)} month {labels[i]}: ${v:,.0f}</title></rect>')  # fmt: skip
    for k, (name, _) in enumerate(stacks):
        body.append(
            f'<rect x="{PAD_L + 10 + 100 * k}" y="{PAD_T - 4}" width="10" height="10" fill="{PALETTE[k % 6]}"/>'
        )
        body.append(f'<text x="{PAD_L + 24 + 100 * k}" y="{PAD_T + 5}" class="tk">{escape(name)}</text>')
    return _frame(title, body)


def tornado(title: str, base: float, bars: Sequence[tuple[str, str, str, float, float]]) -> str:
    """Horizontal bars from the base value to each input's low and high result."""
    height = PAD_T + 40 + 34 * len(bars)
    values = [base] + [v for b in bars for v in (b[3], b[4])]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    left, right = 230, W - 30

    def sx(v: float) -> float:
        return left + (right - left) * (v - lo) / span

    body = [f'<line x1="{sx(base):.1f}" y1="{PAD_T}" x2="{sx(base):.1f}" y2="{height - 20}" class="mk"/>',
            f'<text x="{sx(base):.1f}" y="{height - 6}" class="tk" text-anchor="middle">base {_fmt(base)}</text>']  # fmt: skip
    for i, (name, lo_l, hi_l, low, high) in enumerate(bars):
        y = PAD_T + 10 + 34 * i
        for v, label, color in ((low, lo_l, PALETTE[0]), (high, hi_l, PALETTE[1])):
            x1, x2 = sorted((sx(base), sx(v)))
            body.append(f'<rect x="{x1:.1f}" y="{y}" width="{max(x2 - x1, 1):.1f}" height="22" fill="{color}" '
                        f'class="bar"><title>{escape(name)} {label}: {_fmt(v)}</title></rect>')  # fmt: skip
        body.append(
            f'<text x="{left - 8}" y="{y + 15}" class="tk" text-anchor="end">{escape(name)} ({lo_l}/{hi_l})</text>'
        )
    return _frame(title, body, height)


def histogram(title: str, bins: Sequence[tuple[float, float, int]], xlabel: str) -> str:
    """Bars over (low, high, count) bins, x on a log scale."""
    import math

    if not bins:
        return _frame(title, ['<text x="80" y="80" class="tk">no latency data</text>'])
    lo, hi = math.log10(max(bins[0][0], 1.0)), math.log10(bins[-1][1])
    cmax = max(c for _, _, c in bins)
    body = [f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" class="ax"/>']

    def sx(v: float) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * (math.log10(max(v, 1.0)) - lo) / ((hi - lo) or 1)

    for a, b, c in bins:
        y = _sy(c, cmax * 1.05)
        body.append(f'<rect x="{sx(a):.1f}" y="{y:.1f}" width="{max(sx(b) - sx(a) - 1, 1):.1f}" '
                    f'height="{H - PAD_B - y:.1f}" fill="{PALETTE[0]}" class="bar"/>')  # fmt: skip
    for decade in range(int(lo), int(hi) + 1):
        x = sx(10.0**decade)
        if PAD_L <= x <= W - PAD_R:
            body.append(
                f'<text x="{x:.1f}" y="{H - PAD_B + 16}" class="tk" text-anchor="middle">{_fmt(10.0**decade)}</text>'
            )
    body.append(
        f'<text x="{(PAD_L + W - PAD_R) / 2}" y="{H - 8}" class="lb" text-anchor="middle">{escape(xlabel)}</text>'
    )
    return _frame(title, body)


def hbars(title: str, rows: Sequence[tuple[str, float]], vmax: float) -> str:
    """Labelled horizontal bars (scorecard totals)."""
    height = PAD_T + 20 + 26 * len(rows)
    body = []
    for i, (name, v) in enumerate(rows):
        y = PAD_T + 10 + 26 * i
        width = (W - 330) * v / (vmax or 1)
        body.append(f'<text x="290" y="{y + 14}" class="tk" text-anchor="end">{escape(name[:48])}</text>')
        body.append(
            f'<rect x="300" y="{y}" width="{width:.1f}" height="18" fill="{PALETTE[2]}" class="bar"/>'
        )
        body.append(f'<text x="{304 + width:.1f}" y="{y + 14}" class="tk">{v:.2f}</text>')
    return _frame(title, body, height)
