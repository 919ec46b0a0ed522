"""The runner's SQLite cache: answered cases and judge verdicts survive an interrupted run.

A model answer is keyed by (set, case id, prompt fingerprint, candidate model, model parameters): a re-run
only calls what is missing, and a changed prompt or parameter re-runs just that case. Failed calls are
never stored, so they are retried. Scores are not stored: evaluators are re-applied on every run (they are
cheap, except the judge, whose verdicts have their own table), so changing a check never costs a model call.

Every answer is committed as it arrives: a run stopped by SIGKILL, a crash or CI's SIGTERM keeps every
answer it received, and its re-run pays again only for the calls that were in flight. In WAL mode with
``synchronous=NORMAL`` a commit is an append to the write-ahead log with no fsync (tens of microseconds,
see bench/evals_bench.py): it survives the process dying, though not the machine losing power.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from modelyard.evals.calls import CallResult
from modelyard.evals.evaluators import Verdict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    set_name TEXT NOT NULL,
    case_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    candidate TEXT NOT NULL,
    params TEXT NOT NULL,
    output TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd TEXT,               -- Decimal as text; NULL when unpriced
    latency_ms REAL NOT NULL,
    PRIMARY KEY (set_name, case_id, fingerprint, candidate, params)
);
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY,
    score REAL NOT NULL,
    passed INTEGER NOT NULL,
    reason TEXT NOT NULL
);
"""

AnswerKey = tuple[str, str, str, str, str]


class ResultCache:
    """Opened once per run; used from the event loop thread only (SQLite calls here take microseconds)."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path))
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        # Caches written before judge errors were errors hold unreadable replies stored as 0 scores: drop
        # them so this run asks the judge again instead of trusting them.
        self._db.execute("DELETE FROM verdicts WHERE reason LIKE 'judge reply not understood:%'")
        self._db.commit()

    def get(self, key: AnswerKey) -> CallResult | None:
        row = self._db.execute(
            "SELECT output, input_tokens, output_tokens, cost_usd, latency_ms FROM answers"
            " WHERE set_name=? AND case_id=? AND fingerprint=? AND candidate=? AND params=?",
            key,
        ).fetchone()
        if row is None:
            return None
        output, tokens_in, tokens_out, cost, latency = row
        return CallResult(output, tokens_in, tokens_out, Decimal(cost) if cost is not None else None, latency)

    def put(self, key: AnswerKey, result: CallResult) -> None:
        if result.error is not None:
            return  # a failure may be transient: the next run tries again
        self._db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                *key,
                result.output,
                result.input_tokens,
                result.output_tokens,
                str(result.cost) if result.cost is not None else None,
                result.latency_ms,
            ),
        )
        self._written()

    def get_verdict(self, key: str) -> Verdict | None:
        row = self._db.execute("SELECT score, passed, reason FROM verdicts WHERE key=?", (key,)).fetchone()
        return Verdict(row[0], bool(row[1]), row[2]) if row else None

    def put_verdict(self, key: str, verdict: Verdict) -> None:
        if verdict.error is not None:
            return  # an unreadable or failed grading is retried next run, never replayed
        self._db.execute(
            "INSERT OR REPLACE INTO verdicts VALUES (?,?,?,?)",
            (key, verdict.score, int(verdict.passed), verdict.reason),
        )
        self._written()

    def count(self, set_name: str) -> int:
        """Answers stored for ``set_name`` (all candidates)."""
        row = self._db.execute("SELECT COUNT(*) FROM answers WHERE set_name=?", (set_name,)).fetchone()
        return int(row[0])

    def _written(self) -> None:
        self._db.commit()  # durable as it arrives: an interrupted run loses no answer it was given

    def commit(self) -> None:
        self._db.commit()

    def close(self) -> None:
        self.commit()
        self._db.close()
