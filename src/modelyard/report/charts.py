"""The charts of the HTML reports: matplotlib figures rendered to inline ``<svg>`` text.

Text is drawn as paths (``svg.fonttype = "path"``), so a chart needs no font file and fetches nothing:
the report opens offline and looks the same on every machine. Figures are plain ``Figure`` objects,
never pyplot, so no global figure state is kept between charts.

Each chart function returns one ``<svg class="chart">`` element with a ``<title>`` for screen readers.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from html import escape
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator
from matplotlib.typing import RcKeyType

W, H = 640, 300  # chart size in CSS pixels (one figure unit is one pixel, see figure())
PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#64748b"]
MARK = "#b91c1c"  # crossover, current volume, base value and objective lines
INK, MUTED = "#0f172a", "#475569"

# The look of every chart: light frame, muted labels, quiet grid behind the data.
STYLE: dict[RcKeyType, Any] = {
    "font.family": "DejaVu Sans",  # ships inside matplotlib: the same glyphs on every machine
    "font.size": 10,
    "text.color": INK,
    "axes.labelcolor": MUTED,
    "axes.edgecolor": "#94a3b8",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e2e8f0",
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "legend.fontsize": 9,
}
# Matplotlib's SVG adds a Dublin Core block (with http:// namespaces) and a date unless told not to.
_NO_METADATA: dict[str, Any] = {"Creator": None, "Date": None, "Format": None, "Type": None}
_SIZE = re.compile(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"')


def short(v: float) -> str:
    """A tick label: 1.2M, 45k, 120, 3.5."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:  # 1.5k, not 2k: neighbouring ticks must not read the same
        return f"{v / 1e3:.0f}k" if a >= 1e5 or a % 1e3 == 0 else f"{v / 1e3:.1f}k"
    return f"{v:.0f}" if a >= 10 or v == 0 else f"{v:.2g}"


SHORT = FuncFormatter(lambda v, _: short(v))
DOLLARS = FuncFormatter(lambda v, _: ("−$" if v < 0 else "$") + short(abs(v)))


@contextmanager
def figure(
    title: str,
    width: float = W,
    height: float = H,
    margins: tuple[float, float, float, float] = (70, 20, 36, 45),
) -> Iterator[tuple[Figure, Axes]]:
    """A styled figure of ``width`` × ``height`` pixels, its title at the top left, and its one axes.

    ``margins`` (left, right, top, bottom, in pixels) are fixed rather than computed by a layout engine:
    that would draw every figure twice, and the report has two dozen of them. A title too long for one
    line wraps, and the figure grows by a line so the plot keeps its size.
    The style is an ``rc_context`` because matplotlib reads it when artists are created, not when drawn.
    """
    lines = textwrap.wrap(title, int((width - 16) / 7.2)) or [
        ""
    ]  # ~7.2 px per character of a 12 px bold title
    extra = 16 * (len(lines) - 1)
    left, right, top, bottom = margins
    height += extra
    with rc_context(STYLE):
        fig = Figure(figsize=(width / 72, height / 72), dpi=72)
        fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - (top + extra) / height,
                            bottom=bottom / height)  # fmt: skip
        fig.text(8 / width, 1 - 8 / height, "\n".join(lines), va="top", fontsize=12, fontweight="bold",
                 linespacing=1.3)  # fmt: skip
        yield fig, fig.add_subplot()


def to_svg(fig: Figure, title: str) -> str:
    """The figure as one inline ``<svg class="chart">`` element: no prolog, doctype or external namespace.

    The hash salt is the title, so the ids inside (clip paths, markers) are the same from run to run and
    differ between the charts of one page.
    """
    buf = io.StringIO()
    with rc_context({**STYLE, "svg.fonttype": "path", "svg.hashsalt": title}):
        fig.savefig(buf, format="svg", metadata=_NO_METADATA)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # HTML parses inline SVG with xlink known already; plain href is SVG 2 and needs no namespace URL.
    text = text.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "").replace("xlink:href=", "href=")
    # pt → px: one figure unit is one CSS pixel, so the chart is as wide as W says.
    text = _SIZE.sub(lambda m: f'<svg class="chart" role="img" width="{m[1]}" height="{m[2]}"', text, count=1)
    head_end = text.index(">") + 1
    return f"{text[:head_end]}<title>{escape(title)}</title>{text[head_end:]}"


def line_chart(
    title: str, series: Sequence[tuple[str, Sequence[tuple[float, float]]]], xlabel: str, ylabel: str,
    markers: Sequence[tuple[float, str]] = (),
) -> str:  # fmt: skip
    """Lines through (x, y) points; ``markers`` are labelled vertical lines (crossover, current volume)."""
    with figure(title) as (fig, ax):
        for i, (name, pts) in enumerate(series):
            ax.plot([x for x, _ in pts], [y for _, y in pts], color=PALETTE[i % 6], lw=2, label=name[:36])
        for j, (x, label) in enumerate(markers):
            ax.axvline(x, color=MARK, lw=1, ls="--")
            # x in data units, y as a fraction of the axes height: labels stay inside whatever the scale.
            ax.text(x, 0.96 - 0.08 * j, f" {label}", transform=ax.get_xaxis_transform(), color=MARK,
                    fontsize=9, va="top")  # fmt: skip
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_formatter(SHORT)
        ax.yaxis.set_major_formatter(DOLLARS if "USD" in ylabel else SHORT)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        if series:
            ax.legend(loc="best")
        return to_svg(fig, title)


def stacked_bars(
    title: str, labels: Sequence[str], stacks: Sequence[tuple[str, Sequence[float]]], ylabel: str
) -> str:
    """One bar per label, segments stacked; negative segments (reuse savings) drawn below zero.

    Each bucket is one collection of rectangles with the limits set here: patches per bar, each fitted
    into the data limits, cost ~3 ms apiece and this chart has up to 216 of them.
    """
    n = len(labels)
    up, down = [0.0] * n, [0.0] * n
    with figure(title, margins=(70, 20, 58, 45)) as (fig, ax):
        for k, (name, values) in enumerate(stacks):
            boxes = []
            for i, v in enumerate(values):
                lo = up[i] if v >= 0 else down[i] + v
                boxes.append([(i - 0.4, lo), (i + 0.4, lo), (i + 0.4, lo + abs(v)), (i - 0.4, lo + abs(v))])
                if v >= 0:
                    up[i] += v
                else:
                    down[i] += v
            ax.add_collection(
                PolyCollection(boxes, facecolors=PALETTE[k % 6], linewidths=0, label=name), autolim=False
            )
        ax.set_ylim(min([*down, 0.0]) * 1.05, (max([*up, 0.0]) or 1.0) * 1.05)
        if any(down):
            ax.axhline(0, color=MUTED, lw=0.8)
        step = max(1, math.ceil(n / 12))  # at most ~12 month labels, whatever the horizon
        ax.set_xticks(range(0, n, step), [labels[i] for i in range(0, n, step)])
        ax.set_xlim(-0.6, n - 0.4)
        ax.grid(axis="x", visible=False)
        ax.yaxis.set_major_formatter(DOLLARS if "USD" in ylabel else SHORT)
        ax.set(xlabel="month", ylabel=ylabel)
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=6, borderaxespad=0.2, handlelength=1)
        return to_svg(fig, title)


def tornado(title: str, base: float, bars: Sequence[tuple[str, str, str, float, float]]) -> str:
    """Horizontal bars from the base value to each input's low and high result, widest swing on top."""
    with figure(title, height=90 + 34 * len(bars), margins=(230, 30, 52, 30)) as (fig, ax):
        ys = range(len(bars))
        lows, highs = [b[3] - base for b in bars], [b[4] - base for b in bars]
        ax.barh(ys, lows, left=base, height=0.6, color=PALETTE[0], label="input at its low value")
        ax.barh(ys, highs, left=base, height=0.6, color=PALETTE[1], label="input at its high value")
        ax.axvline(base, color=MARK, lw=1, ls="--", label=f"base {DOLLARS(base)}")
        ax.set_yticks(list(ys), [f"{name} ({lo}/{hi})" for name, lo, hi, _, _ in bars], fontsize=9)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.xaxis.set_major_formatter(DOLLARS)
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=3, borderaxespad=0.2)
        return to_svg(fig, title)


def histogram(title: str, bins: Sequence[tuple[float, float, int]], xlabel: str) -> str:
    """Bars over (low, high, count) bins, x on a log scale."""
    with figure(title) as (fig, ax):
        if bins:
            boxes = [[(max(a, 1.0), 0), (b, 0), (b, c), (max(a, 1.0), c)] for a, b, c in bins]
            ax.add_collection(PolyCollection(boxes, facecolors=PALETTE[0], edgecolors="white", linewidths=0.5),
                              autolim=False)  # fmt: skip
            ax.set_xlim(max(bins[0][0], 1.0), bins[-1][1])
            ax.set_ylim(0, max(c for _, _, c in bins) * 1.05 or 1)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
            ax.xaxis.set_major_formatter(SHORT)
            ax.xaxis.set_minor_locator(NullLocator())  # log axes make many minor ticks; unlabelled, unneeded
            ax.yaxis.set_major_formatter(SHORT)
            ax.grid(axis="x", visible=False)
        else:
            ax.text(0.5, 0.5, "no latency data", transform=ax.transAxes, ha="center", color=MUTED)
            ax.set(xticks=[], yticks=[])
        ax.set(xlabel=xlabel, ylabel="calls")
        return to_svg(fig, title)


def hbars(title: str, rows: Sequence[tuple[str, float]], vmax: float) -> str:
    """Labelled horizontal bars (scorecard totals), best on top, each with its value."""
    with figure(title, height=60 + 26 * len(rows), margins=(300, 30, 36, 24)) as (fig, ax):
        ys = range(len(rows))
        values = [v for _, v in rows]
        ax.barh(ys, values, height=0.65, color=PALETTE[2])
        for y, v in zip(ys, values, strict=True):
            ax.text(v, y, f" {v:.2f}", va="center", fontsize=9)
        ax.set_yticks(list(ys), [name[:48] for name, _ in rows], fontsize=9)
        ax.invert_yaxis()
        ax.set_xlim(0, vmax * 1.08 or 1)
        ax.grid(axis="y", visible=False)
        return to_svg(fig, title)
