"""A bounded least-recently-used map: the one cache shape the builder needs (stored inputs,
per-background tables, prepared foregrounds), so memory has a ceiling whatever the inputs."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

__all__ = ["LRU"]

K = TypeVar("K")
V = TypeVar("V")


class LRU(OrderedDict[K, V]):
    """At most ``capacity`` entries; the least recently used one goes first."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = max(1, capacity)

    def get_or_make(self, key: K, make: Callable[[K], V]) -> V:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make(key)
        if len(self) > self.capacity:
            self.popitem(last=False)
        return value
