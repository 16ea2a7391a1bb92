"""Read-ahead for sequential reads of a remote dataset: fetch what the consumer will read
next, in the order it will read it, while it parses what already arrived.

A pass over a dataset (``iter(ds)``) or a training stream knows exactly which samples it
reads next -- a stream's plan is a pure function of seed, epoch, rank and worker -- hence
which byte windows of which shards (the same windows the tar reader reads, from each
shard's receipt). :class:`ReadAhead` walks that list ahead of the consumer:

- the receipts of the next shards are fetched in background threads (each is a HEAD and a
  GET or two: round trips that would otherwise stall the consumer at every shard boundary);
- the windows are requested through the location's :class:`~readers.remote.RangeFetcher`,
  up to ``connections`` in flight, and only while the bytes requested but not yet consumed
  stay within ``budget`` (at least one window is always requested, so a window larger than
  the budget is still read -- alone);
- the consumer takes each window in order (:meth:`take`); one it asks for that was not
  planned (the reader fell back to walking a damaged shard, say) is read directly, and
  planned windows it skipped are dropped.

With a shard cache (``cache_dir``), whole shards are downloaded ahead instead, a few at a
time, and the reader maps the local copies.

Every byte still goes through the reader's checks (receipt offsets, headers, keys,
``check=True`` digests): read-ahead changes when bytes arrive, never what is accepted.
"""

from __future__ import annotations

import concurrent.futures
import functools
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .errors import DatasetError

if TYPE_CHECKING:
    from .formats.tar import TarShardReader
    from .fs import Location

__all__ = ["BUDGET", "ReadAhead"]

BUDGET = 128 << 20  # bytes requested ahead and not yet consumed, per consumer, by default
_SHARDS_AHEAD = 4  # receipts (or, cached, whole shards) fetched ahead of the window queue


class ReadAhead:
    """The windows of ``runs`` -- (reader, first local sample, stop) in reading order --
    fetched ahead; see the module docstring."""

    def __init__(self, location: Location, runs: Iterator[tuple[TarShardReader, int, int]], budget: int = BUDGET):
        if budget < 0:
            raise DatasetError(f"read_ahead must be a number of bytes >= 0, got {budget}")
        self.location = location
        self.budget = budget
        self._runs = runs
        self._pending: deque[tuple[TarShardReader, int, int, concurrent.futures.Future[object]]] = deque()
        self._planned: deque[tuple[str, int, int]] = deque()
        self._inflight: deque[tuple[str, int, int, concurrent.futures.Future[bytes]]] = deque()
        self._held = 0
        self.peak = 0  # most bytes requested and not yet consumed at once (measured by the tests)
        self._done = False

    # -- planning ------------------------------------------------------------------------
    def _prepare(self, reader: TarShardReader) -> object:
        """What a run needs before its windows are known: the receipt (and, cached, the shard)."""
        reader.boundaries()
        if self.location.cache is not None:
            return self.location.cached(reader.rel)
        return None

    def _pull_runs(self) -> None:
        fetcher = self.location.fetcher
        while not self._done and len(self._pending) < _SHARDS_AHEAD:
            run = next(self._runs, None)
            if run is None:
                self._done = True
                return
            reader, lo, hi = run
            self._pending.append((reader, lo, hi, fetcher.submit_call(functools.partial(self._prepare, reader))))

    def _plan(self, block: bool) -> bool:
        """Move the next run's windows into the queue; False when its receipt has not arrived
        and ``block`` is not set (the consumer has windows to parse meanwhile)."""
        self._pull_runs()
        if not self._pending:
            return False
        reader, lo, hi, ready = self._pending[0]
        if not ready.done() and not block:
            return False
        self._pending.popleft()
        try:
            ready.result()
        except Exception:  # the reader meets the same error, and reports it, when it reaches the run
            return True
        if self.location.cache is None:
            ends = reader.boundaries()
            self._planned.extend((reader.rel, ends[a], ends[b]) for a, b in reader.windows(ends, lo, hi))
        return True

    def _top_up(self) -> None:
        fetcher = self.location.fetcher
        while True:
            if not self._planned and not self._plan(block=not self._inflight):
                return
            while self._planned and len(self._inflight) < self.location.connections:
                rel, start, end = self._planned[0]
                if self._inflight and self._held + (end - start) > self.budget:
                    return
                self._planned.popleft()
                fut = fetcher.submit(self.location.path(rel), start, end, self.location.info(rel))
                self._inflight.append((rel, start, end, fut))
                self._held += end - start
                self.peak = max(self.peak, self._held)
            if self._planned or len(self._inflight) >= self.location.connections:
                return

    # -- consuming -----------------------------------------------------------------------
    def take(self, rel: str, start: int, end: int) -> bytes:
        """Bytes ``start..end-1`` of ``rel``: the planned window (waited for), or a direct
        read when it was not planned."""
        if self.location.cache is None:
            self._top_up()
            for k, (r, a, b, _) in enumerate(self._inflight):
                if (r, a, b) == (rel, start, end):
                    for _ in range(k):  # planned windows the consumer skipped
                        self._release(self._inflight.popleft())
                    got = self._inflight.popleft()
                    self._held -= end - start
                    data = got[3].result()
                    self._top_up()  # the freed budget goes back to work before the parse
                    return data
        return self.location.read_range(rel, start, end)

    def advance(self) -> None:
        """Keep whole-shard downloads going (cached mode): called as each run starts."""
        if self.location.cache is None:
            return
        self._pull_runs()
        while self._pending and self._pending[0][3].done():
            self._pending.popleft()
            self._pull_runs()

    def _release(self, item: tuple[str, int, int, concurrent.futures.Future[bytes]]) -> None:
        self._held -= item[2] - item[1]
        item[3].cancel()

    def close(self) -> None:
        """Drop whatever was fetched ahead and not consumed."""
        while self._inflight:
            self._release(self._inflight.popleft())
        for *_, fut in self._pending:
            fut.cancel()
        self._pending.clear()
        self._planned.clear()
