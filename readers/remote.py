"""Byte ranges of a remote dataset's files, many in flight, retried, and checked.

Object storage answers each request after a round trip (tens of milliseconds) and caps what
one connection carries, so a reader that asks for one range at a time, when it needs it,
waits on the network most of the time. :class:`RangeFetcher` hands out a
:class:`concurrent.futures.Future` per range instead: on fsspec's asynchronous filesystems
(S3, GCS, Azure, HTTP) each is a coroutine on fsspec's own event loop -- no thread per
request -- with at most ``connections`` in flight; on the others (``memory://``, ...) a small
thread pool does the same.

Every range is held to what was asked: a response shorter or longer than the range (a
connection reset mid-body that a client library passed on as a short read) is retried, like
timeouts, resets and 5xx answers, with exponential backoff; when they persist the future's
error is a :class:`~readers.errors.ShardReadError` naming the file. On S3 each GET carries
``If-Match`` with the object's ETag as first seen by this dataset (listing or HEAD), so a
shard rewritten while it is being read is an error naming it -- never samples from two
versions of a file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ShardReadError

__all__ = ["ObjectInfo", "RangeFetcher", "changed_error", "quiet_dropped_connections", "retries", "transient"]

T = TypeVar("T")
_PERMANENT = (FileNotFoundError, PermissionError, FileExistsError, IsADirectoryError, NotADirectoryError)
_NETWORK_MODULES = ("botocore", "aiobotocore", "aiohttp", "urllib3", "requests", "google", "gcsfs", "adlfs",
                    "azure", "http")


@dataclass(frozen=True)
class ObjectInfo:
    """What the store says about a file when this dataset first looked: its size and, where
    the store has one, its ETag (a version stamp: a rewritten object gets a new one)."""

    size: int
    etag: str | None = None


class ChangedError(OSError):
    """The object is not the one first seen (its ETag or size changed)."""


class ShortRead(OSError):
    """A response of another length than the range asked for (retried: a cut connection)."""


def transient(e: BaseException) -> bool:
    """Network and I/O errors worth another try -- not a missing file, a refusal, a changed
    object or a programming error."""
    if isinstance(e, (*_PERMANENT, ChangedError)):
        return False
    module = type(e).__module__.split(".", 1)[0]
    return isinstance(e, (OSError, TimeoutError, asyncio.TimeoutError)) or module in _NETWORK_MODULES


_QUIETED: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def quiet_dropped_connections(fs: Any) -> None:
    """Keep the event loop of ``fs`` (fsspec's async filesystems share one per process) from
    printing "Task exception was never retrieved" for network errors of aiohttp's internal
    tasks -- a body still being sent when the connection dropped. The request that owned it
    fails too and is retried or reported as one clear error; the orphan's traceback on stderr
    would only bury that line. Every other loop error still reaches the default handler."""
    loop = getattr(fs, "loop", None)
    if not isinstance(loop, asyncio.AbstractEventLoop) or loop in _QUIETED:
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if not (str(context.get("message", "")).startswith("Task exception was never retrieved")
                and error is not None and transient(error)):
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    _QUIETED.add(loop)


def retries() -> int:
    """Tries per request (``FGBG_RETRIES``, default 5), for reads as for builds' uploads."""
    return max(1, int(os.environ.get("FGBG_RETRIES", "5")))


def _backoff(attempt: int) -> float:
    """Seconds before try ``attempt + 1``: exponential from 0.1 s, capped at 4 s, with jitter
    (many readers hitting one slow endpoint must not retry in lockstep)."""
    return float(min(4.0, 0.1 * 2**attempt) * (0.5 + random.random() / 2))


def _precondition_failed(e: BaseException) -> bool:
    """S3's answer to a GET whose ``If-Match`` ETag is no longer the object's (s3fs turns the
    ClientError into an OSError and keeps the original as its cause)."""
    for err in (e, e.__cause__):
        response = getattr(err, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            return True
    return "Precondition" in str(e)


def changed_error(path: str) -> ShardReadError:
    return ShardReadError(f"{path}: changed since this dataset was opened (its ETag is another); open the "
                          "dataset again to read the new version")


class RangeFetcher:
    """Concurrent, retried, length-checked ranged reads of files under one fsspec filesystem."""

    def __init__(self, fs: Any, connections: int = 16, conditional: bool = True):
        """``fs``: an fsspec filesystem; ``connections``: requests in flight at most (per
        process); ``conditional``: send S3's ``If-Match`` when an ETag is known."""
        self.fs = fs
        self.connections = max(1, connections)
        self.s3 = conditional and type(fs).__module__.split(".", 1)[0] == "s3fs"
        self._async = bool(getattr(fs, "async_impl", False))
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._gate: asyncio.Semaphore | None = None

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a RangeFetcher holds an event loop's state; make one per process")

    # -- one request -------------------------------------------------------------------
    def submit(self, path: str, start: int, end: int,
               info: ObjectInfo | None = None) -> concurrent.futures.Future[bytes]:
        """Bytes ``start..end-1`` of ``path`` (a full URL), as a future."""
        if self._async:
            return asyncio.run_coroutine_threadsafe(self._fetch_async(path, start, end, info), self.fs.loop)
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.connections, thread_name_prefix="fgbg-fetch")
        return self._pool.submit(self._fetch_sync, path, start, end)

    def submit_call(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Any blocking call (a metadata read, a HEAD) on the same bounded pool of threads."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.connections, thread_name_prefix="fgbg-fetch")
        return self._pool.submit(fn)

    async def _fetch_async(self, path: str, start: int, end: int, info: ObjectInfo | None) -> bytes:
        if self._gate is None:  # made on the loop that uses it
            self._gate = asyncio.Semaphore(self.connections)
        async with self._gate:
            tries = retries()
            for attempt in range(tries):
                try:
                    return _exact(await self._get(path, start, end, info), start, end)
                except Exception as e:
                    if self.s3 and info is not None and info.etag and _precondition_failed(e):
                        raise changed_error(path) from None
                    if not transient(e) or attempt == tries - 1:
                        raise _failed(path, start, end, tries, e) from None
                await asyncio.sleep(_backoff(attempt))
        raise AssertionError("unreachable")

    async def _get(self, path: str, start: int, end: int, info: ObjectInfo | None) -> bytes:
        if end <= start:
            return b""
        if not self.s3:
            data: bytes = await self.fs._cat_file(path, start=start, end=end)
            return data
        bucket, key, _ = self.fs.split_path(path)
        extra = {"IfMatch": info.etag} if info is not None and info.etag else {}
        resp = await self.fs._call_s3("get_object", Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}",
                                      **extra)
        try:
            body: bytes = await resp["Body"].read()
        finally:
            resp["Body"].close()
        return body

    def _fetch_sync(self, path: str, start: int, end: int) -> bytes:
        tries = retries()
        for attempt in range(tries):
            try:
                data = self.fs.cat_file(path, start=start, end=end) if end > start else b""
                return _exact(bytes(data), start, end)
            except Exception as e:
                if not transient(e) or attempt == tries - 1:
                    raise _failed(path, start, end, tries, e) from None
            time.sleep(_backoff(attempt))
        raise AssertionError("unreachable")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of this filesystem on its loop and wait (for async filesystems)."""
        return asyncio.run_coroutine_threadsafe(coro, self.fs.loop).result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _exact(data: bytes, start: int, end: int) -> bytes:
    if len(data) != end - start:
        raise ShortRead(f"{len(data)} bytes for a range of {end - start}")
    return data


def _failed(path: str, start: int, end: int, tries: int, e: BaseException) -> BaseException:
    """The error a caller sees: a missing file stays FileNotFoundError (callers name it as a
    missing shard); anything else names the file, the range and how often it was tried."""
    if isinstance(e, (FileNotFoundError, ShardReadError)):
        return e
    what = f"{type(e).__name__}: {e}".strip()
    if transient(e):
        return ShardReadError(f"{path}: bytes {start}-{end - 1} unreadable after {tries} tries ({what})")
    return ShardReadError(f"{path}: bytes {start}-{end - 1} unreadable ({what})")
