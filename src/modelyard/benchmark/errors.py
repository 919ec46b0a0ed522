"""The benchmark's one error: a problem with the endpoint or the inputs, told in one line that says what
to check. The CLI prints it without a stack trace."""

from __future__ import annotations


class BenchmarkError(Exception):
    """The benchmark cannot run (or cannot trust what it would measure); the message says why."""
