"""Precision and recall of PII detection, per kind, on the labelled corpora.

Run: ``.venv/bin/python bench/pii_eval.py [--errors tune]``. Prints a Markdown table for each of the
Faker tuning set, the Faker held-out set (bench/pii_corpus.py makes both) and the hand-written corpus.
``--errors tune`` (or ``hand``) also lists each miss and false alarm of that set: the held-out set's are
not listed, so the errors one fixes are never the held-out set's (docs/pii.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.pii_support import FAKER_HELDOUT, FAKER_TUNE, HAND_WRITTEN, load_rows, score, table  # noqa: E402

from modelyard.policy.pii import detect  # noqa: E402

SETS = {"tune": FAKER_TUNE, "heldout": FAKER_HELDOUT, "hand": HAND_WRITTEN}


def errors(path: Path) -> None:
    for row in load_rows(path):
        text = row["text"]
        gold = {(e["kind"], e["start"], e["end"]) for e in row["entities"]}
        found = {(f.kind, f.start, f.end) for f in detect(text)}
        for kind, start, end in sorted(gold - found):
            print(f"  missed {kind:6s} {text[start:end]!r:40s} in {text!r}")
        for kind, start, end in sorted(found - gold):
            print(f"  extra  {kind:6s} {text[start:end]!r:40s} in {text!r}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--errors", choices=["tune", "hand"], help="list the errors of this set")
    args = parser.parse_args()
    for name, path in SETS.items():
        rows = load_rows(path)
        entities = sum(len(r["entities"]) for r in rows)
        negatives = sum(1 for r in rows if not r["entities"])
        print(f"\n{name}: {path.name}, {len(rows)} lines, {entities} entities, {negatives} lines with none")
        print(table(score(rows)))
    if args.errors:
        print(f"\nerrors on {args.errors}:")
        errors(SETS[args.errors])


if __name__ == "__main__":
    main()
