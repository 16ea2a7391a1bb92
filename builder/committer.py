"""Committing finished shards in the background, so a worker composes the next one meanwhile.

Why: on an object store a shard's commit is network time -- the end of its upload, completing
it, the receipt's round trips -- during which a worker that commits inline has nothing to do.
A ``Committer`` runs those steps in a thread of the worker, one shard after another in the
order they were finished, while the worker builds the next shard. What the commit protocol
promises is unchanged: each shard's receipt is written only after the shard is whole in the
store, and the builder's driver writes the manifest only after every worker was drained
(``LocalPool.run`` does that before it returns), so a build killed at any moment leaves
shards that either have a receipt and are complete, or are redone by the rerun.

Bounded: at most ``depth`` finished shards wait (their local files, and with them the
disk a worker uses, stay within ``depth + 2`` shards). A commit that fails is kept and raised
by the next ``submit`` or by ``drain``; the shards queued behind it are cancelled (their
uploads aborted, their files removed) and a rerun builds them again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Commit", "Committer"]


@dataclass(frozen=True)
class Commit:
    """One shard's commit: ``run`` publishes it; ``cancel`` undoes what was started (never raises)."""

    run: Callable[[], None]
    cancel: Callable[[], None]


class Committer:
    """A worker's background committer (see the module docstring)."""

    def __init__(self, depth: int = 1):
        self._queue: queue.Queue[Commit | None] = queue.Queue(max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="fgbg-commit", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._error is not None:
                    job.cancel()
                else:
                    try:
                        job.run()
                    except BaseException as e:
                        self._error = e
                        job.cancel()
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, job: Commit) -> None:
        """Queue ``job`` (waiting while ``depth`` are queued); raises an earlier commit's error."""
        if self._error is not None:
            job.cancel()
            raise self._error
        self._queue.put(job)

    def drain(self) -> None:
        """Wait until every queued shard is committed; raises the first failure."""
        self._queue.join()
        self._raise()

    def close(self) -> None:
        """Drain, then stop the thread (raises like ``drain``, after stopping it)."""
        try:
            self.drain()
        finally:
            self._queue.put(None)
            self._thread.join()
