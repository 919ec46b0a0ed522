"""Numbered, append-only schema migrations: ``migrations/<dialect>/NNNN_name.sql``.

A database records what it has in ``schema_migrations(version, applied_at)``. :func:`pending` lists the
files it lacks, in order; each store applies them inside one transaction, after taking a lock so that two
processes starting at once do not both apply the same file. Released files are never edited: a schema
change is a new file with the next number (and, if rows change shape, a bump of ``SCHEMA_VERSION``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

Dialect = Literal["sqlite", "postgres"]

_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

#: Created by the migrator itself, before any numbered file, so it can tell what is applied.
SCHEMA_MIGRATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file's statements, one by one (SQLite's driver runs one statement per call).

        Our migration files keep to plain DDL: no ``;`` inside strings or trigger bodies.
        """
        lines = [line for line in self.sql.splitlines() if not line.lstrip().startswith("--")]
        return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]


def migrations(dialect: Dialect) -> list[Migration]:
    """Every migration bundled for ``dialect``, in version order."""
    folder = resources.files("modelyard.ledger").joinpath("migrations", dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"ledger migrations for {dialect} are not numbered 1..n without gaps: {versions}")
    return found


def pending(dialect: Dialect, applied: set[int]) -> list[Migration]:
    """The migrations not yet in ``applied``, in the order they must run."""
    return [m for m in migrations(dialect) if m.version not in applied]
