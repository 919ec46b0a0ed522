"""The terminal side of a sweep: a live progress bar per level, then the table of figures."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from modelyard.benchmark import sweep
from modelyard.benchmark.client import RequestResult
from modelyard.benchmark.knee import Knee
from modelyard.benchmark.loadgen import LevelSpec
from modelyard.benchmark.page import COLUMNS
from modelyard.benchmark.stats import LevelStats


class RichProgress(sweep.Progress):
    """One bar for the current level; it fills with requests or time, whichever bound is nearer."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[done]} req, {task.fields[errors]} err"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = self.bar.add_task("probing endpoint", total=1.0, done=0, errors=0)
        self._spec = LevelSpec()
        self._started = self._drawn = 0.0
        self._done = self._errors = 0

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def level_started(self, spec: LevelSpec, index: int, total: int) -> None:
        self._spec, self._started, self._done, self._errors = spec, time.perf_counter(), 0, 0
        self.bar.update(self._task, description=f"level {index + 1}/{total} ({spec.label})", completed=0)

    def request_done(self, result: RequestResult) -> None:
        self._done += 1
        self._errors += result.error is not None
        # Called thousands of times a second: count here, and move the bar only on every 64th request or
        # when 0.1 s has passed (rich redraws 10 times a second anyway).
        now = time.perf_counter()
        if self._done & 63 and now - self._drawn < 0.1:
            return
        self._drawn = now
        by_count = self._done / self._spec.max_requests
        by_time = (now - self._started) / self._spec.duration_s
        self.bar.update(
            self._task, completed=min(max(by_count, by_time), 1.0), done=self._done, errors=self._errors
        )

    def level_done(self, stats: LevelStats) -> None:
        self.console.print(
            f"  {self._spec.label}: {stats.output_tokens_per_s:.0f} tok/s, TTFT p95 {stats.ttft_p95_ms:.0f} ms"
            + (" (interrupted)" if stats.partial else "")
        )


def table(levels: Sequence[LevelStats], knee: Knee | None) -> Table:
    """The figures per level; the knee's row is highlighted."""
    out = Table(title="bench-endpoint", title_justify="left")
    for name, _, _ in COLUMNS:
        out.add_column(name, justify="right")
    for i, lv in enumerate(levels):
        style = "bold yellow" if knee is not None and knee.index == i else None
        out.add_row(*(fmt.format(getattr(lv, attr)) for _, attr, fmt in COLUMNS), style=style)
    return out
