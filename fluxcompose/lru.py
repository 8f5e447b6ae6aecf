"""A small thread-safe least-recently-used map with a cost budget.

Used where one batch meets the same input again and again (one pattern on a thousand
photos): the decoded cells of :mod:`fluxcompose.images` (cost: bytes of pixels), the
report's cell thumbnails and compare's per-source features (cost: one per entry). Equal
keys must mean equal values (a value is never None); the callers' keys say what a value is
a function of.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["LruCache"]

V = TypeVar("V")


class LruCache(Generic[V]):
    """At most ``max_cost`` of values (each costs ``cost(value)``, 1 by default), least
    recently used first out; a value costing more than ``max_cost // largest`` is not kept
    (one huge entry must not flush all the small ones)."""

    def __init__(
        self, max_cost: int, cost: Callable[[V], int] = lambda _: 1, *, largest: int = 1
    ) -> None:
        self.max_cost = max_cost
        self._cost = cost
        self._largest = max(1, largest)
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    @property
    def total_cost(self) -> int:
        return self._total

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            got = self._items.get(key)
            if got is None:
                return None
            self._items.move_to_end(key)
            return got[0]

    def keeps(self, cost: int) -> bool:
        """Whether a value of this cost would be kept (ask before making a costly copy)."""
        return cost <= self.max_cost // self._largest

    def put(self, key: Hashable, value: V) -> None:
        cost = self._cost(value)
        if not self.keeps(cost):
            return
        with self._lock:
            if key in self._items:
                return  # equal keys, equal values: the first one stays
            self._items[key] = (value, cost)
            self._total += cost
            while self._total > self.max_cost and self._items:
                _, (_, old) = self._items.popitem(last=False)
                self._total -= old

    def discard(self, key: Hashable) -> None:
        """Forget ``key``'s value, if one is kept."""
        with self._lock:
            got = self._items.pop(key, None)
            if got is not None:
                self._total -= got[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._total = 0
