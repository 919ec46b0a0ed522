"""The ledger: one row per request and per upstream attempt, written off the request path.

``schema`` holds the row contract; ``writer.Ledger`` spools and batches rows; ``store.open_store`` opens
the SQLite or PostgreSQL backend; ``summary`` computes per-workload figures. See ``docs/ledger.md``.
"""

from modelyard.ledger.schema import ATTEMPT_COLUMNS, REQUEST_COLUMNS, SCHEMA_VERSION, AttemptRow, RequestRow
from modelyard.ledger.store import LedgerStore, RequestFilter, open_store
from modelyard.ledger.summary import SummaryRow
from modelyard.ledger.writer import Ledger

__all__ = [
    "ATTEMPT_COLUMNS",
    "REQUEST_COLUMNS",
    "SCHEMA_VERSION",
    "AttemptRow",
    "Ledger",
    "LedgerStore",
    "RequestFilter",
    "RequestRow",
    "SummaryRow",
    "open_store",
]
