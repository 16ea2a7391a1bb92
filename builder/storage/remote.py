"""Datasets on object stores (``s3://bucket/prefix``, ``gs://``, ``memory://``...) via fsspec.

Object stores have no rename, so the commit protocol becomes: write the shard to a local
temporary file, then upload it to its **final key** in one PUT (or a multipart upload that
is only visible once completed) -- a key holds a whole object or nothing. The receipt is
written after the upload succeeded, the manifest last. Transient errors are retried with
exponential backoff (``FGBG_RETRIES``, default 5 tries); when they persist the build stops
with an error naming the key, no receipt is written, and a rerun redoes that shard.

The lock is a lease object ``.fgbg.lock`` created with a conditional PUT (``If-None-Match:
*``) where the store supports it (S3), renewed by a heartbeat while the build runs, and
taken over when it expired or when its holder is a dead process on this host (a builder
killed with -9 must not block the rerun that resumes it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ..errors import LockedError, OutputError
from .base import LOCK_NAME, TMP_MARK, Store
from .input_cache import InputCache

__all__ = ["ObjectLock", "ObjectStore", "StreamedUpload"]

T = TypeVar("T")
CONNECTIONS = 16  # requests in flight for input prefetch and multipart uploads
PART_BYTES = 8 << 20  # multipart part size: a shard over two parts goes up in parallel parts
_PERMANENT = (FileNotFoundError, PermissionError, FileExistsError, IsADirectoryError, NotADirectoryError)


def _transient(e: BaseException) -> bool:
    """I/O and network errors (worth another try), not programming errors."""
    module = type(e).__module__.split(".", 1)[0]
    return isinstance(e, (OSError, TimeoutError)) or module in ("botocore", "aiobotocore", "aiohttp", "urllib3",
                                                                 "requests", "google", "gcsfs", "adlfs")


def _retries() -> int:
    return max(1, int(os.environ.get("FGBG_RETRIES", "5")))


class ObjectStore(Store):
    """A dataset under an fsspec URL. ``storage_options`` go to ``fsspec.filesystem``."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        self.url = url.rstrip("/")
        self.protocol = self.url.split("://", 1)[0]
        self.storage_options = dict(storage_options or {})
        self._fs: Any = None
        self._tmpdir: Path | None = None
        self._inputs: InputCache | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fs"] = None  # sessions and sockets are rebuilt in each process
        state["_tmpdir"] = None
        state["_inputs"] = None
        return state

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import fsspec

            from fgbg.readers.extras import filesystem_error
            from fgbg.readers.remote import quiet_dropped_connections

            try:
                self._fs = fsspec.filesystem(self.protocol, **self.storage_options)
            except ImportError as e:
                raise filesystem_error(self.protocol, e) from e
            quiet_dropped_connections(self._fs)  # a cut mid-upload: one error line, no orphan tracebacks
        return self._fs

    def _path(self, rel: str) -> str:
        return f"{self.url}/{rel}" if rel else self.url

    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``, retrying transient failures (I/O and network errors) with exponential backoff."""
        tries = _retries()
        for attempt in range(tries):
            try:
                return fn()
            except _PERMANENT:
                raise
            except Exception as e:
                if not _transient(e):
                    raise
                if attempt == tries - 1:
                    raise OutputError(f"{what}: failed after {tries} tries ({type(e).__name__}: {e})") from None
                time.sleep(min(8.0, 0.25 * 2**attempt))
        raise AssertionError("unreachable")

    # -- checks and lock ---------------------------------------------------------------
    def check_writable(self) -> None:
        probe = f".fgbg-probe-{secrets.token_hex(4)}"
        try:
            self._retry(self._path(""), lambda: self.fs.pipe_file(self._path(probe), b""))
            self._retry(self._path(""), lambda: self.fs.rm_file(self._path(probe)))
        except (OSError, OutputError) as e:
            raise OutputError(f"{self.url}: cannot write a dataset here ({e})") from None

    def create(self) -> None:
        """Nothing to make: object stores have no folders."""

    def lock(self) -> ObjectLock:
        return ObjectLock(self)

    # -- reading -----------------------------------------------------------------------
    def _s3_key(self, rel: str) -> tuple[str, str] | None:
        """(bucket, key) on S3, where one HEAD answers size and existence; None elsewhere."""
        if self.protocol not in ("s3", "s3a"):
            return None
        bucket, _, key = self._path(rel).split("://", 1)[1].partition("/")
        return bucket, key

    def exists(self, rel: str) -> bool:
        try:
            self.size(rel)
        except FileNotFoundError:
            return False
        return True

    def size(self, rel: str) -> int:
        """One HEAD on S3 (fsspec's ``size`` of a missing key also lists its parent, to tell a
        folder: a second round trip for every file a build checks before writing it)."""
        where = self._s3_key(rel)
        if where is not None:
            head = self._retry(self._path(rel), lambda: self.fs.call_s3("head_object", Bucket=where[0],
                                                                        Key=where[1]))
            return int(head["ContentLength"])
        self.fs.invalidate_cache()  # listings cached by fsspec go stale as builders write
        return int(self._retry(self._path(rel), lambda: self.fs.size(self._path(rel))))

    def read_bytes(self, rel: str) -> bytes:
        """One GET (``max_concurrency=1``: s3fs would otherwise HEAD first, to split large objects)."""
        path = self._path(rel)
        if self._s3_key(rel) is not None:
            data: bytes = self._retry(path, lambda: self.fs.cat_file(path, max_concurrency=1))
        else:
            data = self._retry(path, lambda: self.fs.cat_file(path))
        return data

    @property
    def input_cache(self) -> InputCache:
        if self._inputs is None:
            self._inputs = InputCache()
        return self._inputs

    def read_input(self, rel: str, sha256: str) -> bytes:
        """From the host's verified copy when there is one; else one GET, kept if it proves out."""
        data = self.input_cache.get(sha256)
        if data is None:
            data = self.read_bytes(rel)
            if hashlib.sha256(data).hexdigest() == sha256:
                self.input_cache.put(data, sha256)
        return data

    def prefetch_inputs(self, files: Sequence[tuple[str, str]]) -> None:
        """The missing ones fetched ``CONNECTIONS`` at a time (each thread holds one file)."""
        missing = [(rel, sha) for rel, sha in files if not self.input_cache.has(sha)]

        def fetch(item: tuple[str, str]) -> None:
            with contextlib.suppress(Exception):  # reported by read_input when it is used
                self.read_input(*item)

        if missing:
            with ThreadPoolExecutor(min(CONNECTIONS, len(missing)), thread_name_prefix="fgbg-prefetch") as ex:
                for _ in ex.map(fetch, missing):
                    pass

    def write_input(self, rel: str, data: bytes) -> None:
        self.write_atomic(rel, data)
        self.input_cache.put(data)  # this host's workers read it from here

    def download(self, rel: str, local: Path) -> None:
        """``rel`` copied whole to the local file ``local`` (one streamed GET, retried): what a
        check that reads a shard several ways (hash, layout, samples) reads once."""
        self._retry(self._path(rel), lambda: self.fs.get_file(self._path(rel), str(local)))

    def sha256(self, rel: str) -> str:
        def digest() -> str:
            h = hashlib.sha256()
            with self.fs.open(self._path(rel), "rb", block_size=1 << 22) as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
            return h.hexdigest()

        return self._retry(self._path(rel), digest)

    def listdir(self, folder: str = "") -> list[str]:
        where = self._s3_key(folder)
        if where is not None:  # one LIST a page (fsspec's ls of an empty prefix also lists its parent)
            return self._list_s3(*where)
        path = self._path(folder)
        try:
            entries = self._retry(path, lambda: self.fs.ls(path, detail=False, refresh=True))
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def _list_s3(self, bucket: str, key: str) -> list[str]:
        prefix = key.rstrip("/") + "/" if key else ""
        names: set[str] = set()
        page: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
        while True:
            listed = self._retry(self._path(key), lambda p=dict(page): self.fs.call_s3(  # type: ignore[misc]
                "list_objects_v2", **p))
            names.update(o["Key"][len(prefix):] for o in listed.get("Contents", []))
            names.update(p["Prefix"][len(prefix):].rstrip("/") for p in listed.get("CommonPrefixes", []))
            if not listed.get("IsTruncated"):
                return sorted(n for n in names if n)
            page["ContinuationToken"] = listed["NextContinuationToken"]

    # -- writing -----------------------------------------------------------------------
    def temp_path(self, rel: str) -> Path:
        if self._tmpdir is None or not self._tmpdir.is_dir():
            self._tmpdir = Path(tempfile.mkdtemp(prefix="fgbg-upload-"))
        return self._tmpdir / f"{rel.replace('/', '__')}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"

    def commit(self, tmp: Path, rel: str) -> None:
        """Upload to the final key (one PUT, or multipart completed as a whole), then drop tmp."""
        try:
            # S3: parts of PART_BYTES, CONNECTIONS at a time, for a shard over two parts
            parts: dict[str, Any] = ({"chunksize": PART_BYTES, "max_concurrency": CONNECTIONS}
                                     if self._s3_key(rel) is not None else {})
            self._retry(self._path(rel), lambda: self.fs.put_file(str(tmp), self._path(rel), **parts))
        finally:
            tmp.unlink(missing_ok=True)

    def upload_while_writing(self, tmp: Path, rel: str) -> StreamedUpload | None:
        where = self._s3_key(rel)
        return StreamedUpload(self, tmp, rel, where) if where is not None else None

    def write_atomic(self, rel: str, data: bytes) -> None:
        try:
            if self.size(rel) == len(data) and self.read_bytes(rel) == data:
                return
        except FileNotFoundError:
            pass
        self._retry(self._path(rel), lambda: self.fs.pipe_file(self._path(rel), data))

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._retry(self._path(rel), lambda: self.fs.rm_file(self._path(rel)))

    def remove_stale_temps(self) -> list[str]:
        """Clean the local temporaries; on S3 also abort the multipart uploads a dead builder
        left under this dataset (invisible, but billed until aborted). Only with the lock
        held, so no live upload of this dataset is in flight."""
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        where = self._s3_key("")
        if where is None:
            return []
        bucket, prefix = where
        listed = self._retry(self.url, lambda: self.fs.call_s3("list_multipart_uploads", Bucket=bucket,
                                                               Prefix=prefix.rstrip("/") + "/"))
        stale = [(u["Key"], u["UploadId"]) for u in listed.get("Uploads", [])]
        for key, upload in stale:
            with contextlib.suppress(FileNotFoundError):
                self._retry(f"{self.url}: {key}", lambda k=key, u=upload: self.fs.call_s3(  # type: ignore[misc]
                    "abort_multipart_upload", Bucket=bucket, Key=k, UploadId=u))
        return [f"{key} (unfinished upload)" for key, _ in stale]


class StreamedUpload:
    """A shard sent to S3 while its writer is still appending to the local file.

    Why: a shard is ~15 MB; sent after it was written, its upload (0.4 s at 40 MB/s a
    connection) and round trips sat on the worker's critical path, once per shard. Tar
    writers only append (``ShardWriter.append_only``), so every byte on disk is final: a
    watcher thread sends each full ``PART_BYTES`` part of a multipart upload as soon as the
    file holds it (up to ``PARTS_IN_FLIGHT`` at once, one part in memory each), and
    ``finish`` sends the short last part and completes the upload. Until completed the key
    holds nothing, so the commit protocol is unchanged: a whole object or none, the receipt
    after. A shard smaller than one part goes up in one PUT as before; a failed part is
    retried like every request, then the upload is aborted and the shard fails.
    """

    PARTS_IN_FLIGHT = 4
    POLL = 0.02  # seconds between looks at the file's size

    def __init__(self, store: ObjectStore, tmp: Path, rel: str, where: tuple[str, str]):
        self.store, self.tmp, self.rel = store, tmp, rel
        self.bucket, self.key = where
        self._upload_id: str | None = None
        self._parts: list[Future[str]] = []
        self._sent = 0  # bytes handed to part uploads
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.PARTS_IN_FLIGHT, thread_name_prefix="fgbg-part")
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="fgbg-upload-watch", daemon=True)
        self._watcher.start()

    def _call(self, op: str, **kw: Any) -> Any:
        return self.store._retry(self.store._path(self.rel), lambda: self.store.fs.call_s3(
            op, Bucket=self.bucket, Key=self.key, **kw))

    def _watch(self) -> None:
        while not self._stop.wait(self.POLL):
            try:
                self._send(final=False)
            except Exception:  # the file went away (aborted), or S3 failed: finish() reports it
                return

    def _send(self, final: bool) -> None:
        """Hand every full part the file holds (and with ``final`` the rest) to the part pool,
        waiting while ``PARTS_IN_FLIGHT`` are unfinished (memory: that many parts)."""
        with self._lock:
            size = self.tmp.stat().st_size
            while size - self._sent >= PART_BYTES or (final and size > self._sent):
                if self._upload_id is None:
                    self._upload_id = str(self._call("create_multipart_upload")["UploadId"])
                busy = [f for f in self._parts if not f.done()]
                if len(busy) >= self.PARTS_IN_FLIGHT:
                    busy[0].result()
                    continue
                n = min(PART_BYTES, size - self._sent)
                self._parts.append(self._pool.submit(self._part, len(self._parts) + 1, self._sent, n))
                self._sent += n

    def _part(self, number: int, offset: int, n: int) -> str:
        with open(self.tmp, "rb") as f:
            data = os.pread(f.fileno(), n, offset)
        if len(data) != n:
            raise OSError(f"{self.tmp}: {len(data)} bytes at {offset}, expected {n}")
        return str(self._call("upload_part", UploadId=self._upload_id, PartNumber=number, Body=data)["ETag"])

    def finish(self, size: int) -> None:
        self._stop.set()
        self._watcher.join()
        try:
            if self._upload_id is None:  # smaller than a part: one PUT
                self._pool.shutdown()
                self.store.commit(self.tmp, self.rel)
                return
            self._send(final=True)
            etags = [f.result() for f in self._parts]
            if self._sent != size:
                raise OutputError(f"{self.store._path(self.rel)}: sent {self._sent} bytes of {size}")
            self._call("complete_multipart_upload", UploadId=self._upload_id,
                       MultipartUpload={"Parts": [{"PartNumber": i, "ETag": e} for i, e in enumerate(etags, 1)]})
            self._upload_id = None
        except BaseException:
            self.abort()
            raise
        finally:
            self._pool.shutdown()
            self.tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        self._stop.set()
        self._watcher.join()
        self._pool.shutdown(cancel_futures=True)
        if self._upload_id is not None:
            with contextlib.suppress(Exception):
                self.store.fs.call_s3("abort_multipart_upload", Bucket=self.bucket, Key=self.key,
                                      UploadId=self._upload_id)
            self._upload_id = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ObjectLock:
    """A lease object with heartbeat; see the module docstring."""

    TTL = 120.0  # seconds a lease lasts without renewal
    HEARTBEAT = 20.0

    def __init__(self, store: ObjectStore):
        self.store = store
        self.owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "expires": time.time() + self.TTL}).encode()

    def _create(self) -> bool:
        s = self.store
        key = s._path(LOCK_NAME)
        if s.protocol in ("s3", "s3a"):
            bucket, _, name = key.split("://", 1)[1].partition("/")
            try:
                s._retry(key, lambda: s.fs.call_s3("put_object", Bucket=bucket, Key=name, Body=self._body(),
                                                   IfNoneMatch="*"))
                return True
            except FileExistsError:
                return False
        if s.exists(LOCK_NAME):  # stores without conditional writes: create, then read back
            return False
        s._retry(key, lambda: s.fs.pipe_file(key, self._body()))
        return self._holder().get("owner") == self.owner

    def _holder(self) -> dict[str, Any]:
        try:
            holder: dict[str, Any] = json.loads(self.store.read_bytes(LOCK_NAME))
            return holder
        except (FileNotFoundError, ValueError):
            return {}

    def _stale(self, holder: dict[str, Any]) -> bool:
        if not holder or holder.get("expires", 0) < time.time():
            return True
        return holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", 0)))

    def __enter__(self) -> ObjectLock:
        for _ in range(3):
            if self._create():
                self._thread = threading.Thread(target=self._renew, name="fgbg-lock-heartbeat", daemon=True)
                self._thread.start()
                return self
            holder = self._holder()
            if self._stale(holder):
                self.store.remove(LOCK_NAME)
                continue
            until = time.strftime("%H:%M:%S", time.localtime(holder.get("expires", 0)))
            raise LockedError(
                f"{self.store.url}: another fgbg builder is writing this dataset (pid {holder.get('pid')} on "
                f"{holder.get('host')}, lease until {until}); wait for it to finish or stop it"
            )
        raise LockedError(f"{self.store.url}: could not take the dataset lock (contended)")

    def _renew(self) -> None:
        key = self.store._path(LOCK_NAME)
        while not self._stop.wait(self.HEARTBEAT):
            with contextlib.suppress(Exception):  # a missed heartbeat only shortens the lease
                self.store.fs.pipe_file(key, self._body())

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            if self._holder().get("owner") == self.owner:
                self.store.remove(LOCK_NAME)
        except OutputError:
            pass  # the store is unreachable: the lease expires by itself
