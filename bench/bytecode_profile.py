"""Bytecodes and Python calls per request, by function: where the interpreter's time goes, exactly.

``sys.settrace`` with per-opcode events counts every bytecode each Python function executes while the
block runs (C code, such as orjson, pydantic-core or the kernel, counts nothing). Deterministic, unlike a
sampling profiler, and cheap enough for a few hundred requests. A bytecode of CPython 3.11 costs tens of
instructions on this project's interpreter (see bench/README.md), so a function's share here is close to its
share of the interpreter's own work. Used by ``inprocess_counts.py --bytecodes``.
"""

from __future__ import annotations

import sys
from collections import Counter
from types import FrameType
from typing import Any


class BytecodeCounter:
    """``with BytecodeCounter() as counter:`` then ``counter.report(requests)``."""

    def __init__(self) -> None:
        self.bytecodes: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def _name(self, frame: FrameType) -> str:
        code = frame.f_code
        path = code.co_filename.split("site-packages/")[-1].split("/src/")[-1]
        if code.co_filename == "<string>" and code.co_name == "__init__":  # a dataclass's generated init
            return f"{type(frame.f_locals.get('self')).__name__}.__init__ (dataclass)"
        return f"{path}:{code.co_qualname}"

    def _on_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        name = self._name(frame)
        self.calls[name] += 1
        counts = self.bytecodes

        def on_event(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                counts[name] += 1
            return on_event

        return on_event

    def __enter__(self) -> BytecodeCounter:
        sys.settrace(self._on_call)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(None)

    def report(self, requests: int, top: int = 40) -> str:
        total = sum(self.bytecodes.values())
        lines = [
            f"{total / requests:,.0f} bytecodes and {sum(self.calls.values()) / requests:,.0f} Python calls"
            " per request",
            f"{'bytecodes':>10} {'calls':>6}  function (per request)",
        ]
        for name, count in self.bytecodes.most_common(top):
            lines.append(f"{count / requests:>10,.1f} {self.calls[name] / requests:>6.1f}  {name}")
        return "\n".join(lines)
