"""The gateway's tuning of CPython's cyclic collector (``modelyard.app.tune_collector``): start-up objects
leave the collector's sight, young collections run less often, and reference cycles a request leaves
behind are still collected without anybody calling ``gc.collect``. Run in a child process: freezing the
test runner's own heap would change every later test."""

from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import gc, weakref
from modelyard.app import YOUNG_COLLECTION_THRESHOLD, tune_collector

startup = [[i] for i in range(50_000)]  # what building the gateway leaves alive
tune_collector()
assert gc.get_freeze_count() >= 50_000, gc.get_freeze_count()
assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD

class Node:
    pass

freed = 0
def on_free() -> None:
    global freed
    freed += 1

made = 0
for _ in range(200_000):  # a leaky request's reference cycles, far past one young threshold
    a, b = Node(), Node()
    a.other, b.other = b, a
    weakref.finalize(a, on_free)
    made += 1
    del a, b
# Without collections, every cycle would still be alive; the collector ran on its own.
assert freed >= made * 0.9, (freed, made)
print("ok", freed, made)
"""


def test_tuned_collector_freezes_startup_and_still_collects_cycles() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")
