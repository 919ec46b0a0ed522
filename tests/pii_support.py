"""Scoring PII detection against labelled corpora: shared by the tests and bench/pii_eval.py.

A corpus is JSON lines `{"text", "entities": [{"kind", "start", "end"}], ...}`. A finding counts only
with the exact kind and span; anything else is a false positive, and the label it missed a false negative.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from modelyard.policy.pii import ALL_KINDS, detect

PII_FIXTURES = Path(__file__).parent / "fixtures" / "pii"
HAND_WRITTEN = PII_FIXTURES / "corpus.jsonl"
FAKER_TUNE = PII_FIXTURES / "faker_tune.jsonl"
FAKER_HELDOUT = PII_FIXTURES / "faker_heldout.jsonl"

Counts = dict[str, tuple[int, int, int]]


def load_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def score(rows: list[dict[str, Any]]) -> Counts:
    """(true positives, false positives, false negatives) per kind."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for row in rows:
        gold = {(e["kind"], e["start"], e["end"]) for e in row["entities"]}
        found = {(f.kind, f.start, f.end) for f in detect(row["text"])}
        for kind, _, _ in found & gold:
            tp[kind] += 1
        for kind, _, _ in found - gold:
            fp[kind] += 1
        for kind, _, _ in gold - found:
            fn[kind] += 1
    return {kind: (tp[kind], fp[kind], fn[kind]) for kind in sorted(ALL_KINDS)}


def ratio(hits: int, misses: int) -> float:
    return hits / (hits + misses) if hits + misses else 1.0


def overall(counts: Counts) -> tuple[int, int, int]:
    tp, fp, fn = (sum(c[i] for c in counts.values()) for i in range(3))
    return tp, fp, fn


def table(counts: Counts) -> str:
    """A Markdown table: per kind and overall, counts, precision and recall."""
    lines = ["| kind | tp | fp | fn | precision | recall |", "|---|---:|---:|---:|---:|---:|"]
    for kind, (tp, fp, fn) in counts.items():
        lines.append(f"| {kind} | {tp} | {fp} | {fn} | {ratio(tp, fp):.3f} | {ratio(tp, fn):.3f} |")
    tp, fp, fn = overall(counts)
    lines.append(f"| **overall** | {tp} | {fp} | {fn} | **{ratio(tp, fp):.3f}** | **{ratio(tp, fn):.3f}** |")
    return "\n".join(lines)
