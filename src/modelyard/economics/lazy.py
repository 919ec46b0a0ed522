"""A read-only mapping whose values are computed on first access and kept.

The decision holds exact ``Decimal`` figures (TCO month by month, scorecards) for every feasible option of
every workload, but a run needs only a few of them to decide; the rest are computed when a report reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeVar

V = TypeVar("V")


class LazyMap(Mapping[str, V]):
    """``keys`` → ``compute(key)``, each computed at most once."""

    def __init__(self, keys: Iterable[str], compute: Callable[[str], V]) -> None:
        self._keys = list(dict.fromkeys(keys))
        self._known = set(self._keys)
        self._compute = compute
        self._values: dict[str, V] = {}

    def __getitem__(self, key: str) -> V:
        if key not in self._values:
            if key not in self._known:
                raise KeyError(key)
            self._values[key] = self._compute(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._known

    def seed(self, key: str, value: V) -> None:
        """Store a value computed elsewhere (e.g. by the portfolio) so it is not computed twice."""
        if key in self._known:
            self._values[key] = value
