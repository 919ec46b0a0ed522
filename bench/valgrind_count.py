"""Instructions a command executes, counted by valgrind: the deterministic measure the benchmarks here
use on a shared machine, where wall-clock figures move ±15 % with the neighbours' load."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence


def instructions(argv: Sequence[str], env: Mapping[str, str], what: str) -> int:
    """Instructions ``argv`` executed (all its threads) under cachegrind without cache simulation; exits
    with valgrind's output if the command failed (``what`` names it)."""
    grind = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *argv]
    done = subprocess.run(grind, capture_output=True, text=True, env=dict(env), check=False)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{what}: valgrind run failed:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))
