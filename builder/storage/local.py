"""A dataset folder on a local or mounted filesystem, and its ``flock`` lock.

Every final file appears atomically: it is written under a temporary name
(``NAME.tmp-PID-RANDOM``, which never ends in a shard extension), flushed with fsync, then
renamed, and the directory is fsynced so the rename survives a power cut. A crash
therefore leaves either the old file, the new file, or a stale temporary that the next
builder (holding the lock) deletes.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path
from types import TracebackType

from ..errors import LockedError, OutputError
from .base import LOCK_NAME, TMP_MARK, Store

__all__ = ["DatasetLock", "LocalStore"]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DatasetLock:
    """An exclusive ``flock`` on ``<dataset>/.fgbg.lock``: one builder per dataset.

    The kernel drops the lock when its holder dies (even by kill -9), so a crashed build
    never blocks the rerun that resumes it.
    """

    def __init__(self, root: Path):
        self.path = root / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> DatasetLock:
        try:  # never through a symbolic link: truncating the lock must never reach another file
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise OutputError(f"{self.path}: is a symbolic link; fgbg's lock must be a plain file in the "
                                  "dataset (remove the link)") from None
            raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:  # a hard link would share its truncation too
            os.close(fd)
            raise OutputError(f"{self.path}: is not a plain file of its own (a device, or a hard link); remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockedError(
                    f"{self.path.parent}: another fgbg builder is writing this dataset ({holder}); "
                    "wait for it to finish or stop it"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class LocalStore(Store):
    """A dataset folder. ``url`` is the folder path."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.url = str(self.root)

    # -- checks ---------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Fail early, naming the path, if a dataset cannot be created or written here.

        Tries a real write in the nearest existing folder (permission bits lie for root and
        for read-only or virtual filesystems) and removes it again: nothing is left behind.
        """
        root = self.root
        if root.exists() and not root.is_dir():
            raise OutputError(f"{root}: output path exists and is a file, not a dataset folder")
        probe = root if root.exists() else next((p for p in root.parents if p.exists()), Path("/"))
        if not probe.is_dir():
            raise OutputError(f"{root}: parent {probe} is not a directory")
        try:
            with tempfile.TemporaryFile(dir=probe, prefix=".fgbg-probe"):
                pass
        except OSError as e:
            raise OutputError(f"{root}: no permission to write in {probe} ({e.strerror})") from None

    def create(self) -> None:
        try:
            (self.root / "shards").mkdir(parents=True, exist_ok=True)
            (self.root / "inputs").mkdir(exist_ok=True)
        except OSError as e:
            raise OutputError(f"{self.root}: cannot create dataset folder ({e.strerror})") from None

    def existing(self) -> bool:
        self._existed = self.root.exists()
        return self._existed and any(self.root.iterdir())

    def discard_new(self) -> None:
        if getattr(self, "_existed", True):  # an empty folder the user made stays; only our entries go
            for name in ("shards", "inputs", LOCK_NAME):
                path = self.root / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                elif path.exists() or path.is_symlink():
                    path.unlink(missing_ok=True)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def lock(self) -> DatasetLock:
        return DatasetLock(self.root)

    # -- reading --------------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        return self.root / rel

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def size(self, rel: str) -> int:
        return (self.root / rel).stat().st_size

    def read_bytes(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def sha256(self, rel: str) -> str:
        h = hashlib.sha256()
        with open(self.root / rel, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    def listdir(self, folder: str = "") -> list[str]:
        d = self.root / folder
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    # -- writing --------------------------------------------------------------------------
    def temp_path(self, rel: str) -> Path:
        """A fresh local path for writing the content of ``rel`` before it is committed."""
        return self.root / f"{rel}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"

    def commit(self, tmp: Path, rel: str) -> None:
        """Atomically move a fully written, fsynced temp file to its final name."""
        final = self.root / rel
        os.replace(tmp, final)
        _fsync_dir(final.parent)

    def write_atomic(self, rel: str, data: bytes) -> None:
        """Write ``data`` to ``rel`` with temp + fsync + rename; skip if already identical."""
        final = self.root / rel
        if final.is_file() and final.stat().st_size == len(data) and final.read_bytes() == data:
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.temp_path(rel)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.commit(tmp, rel)

    def remove(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    def remove_stale_temps(self) -> list[str]:
        """Delete temporaries left by dead builders (call only while holding the lock)."""
        gone = []
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if TMP_MARK in name:
                    p = Path(folder) / name
                    p.unlink(missing_ok=True)
                    gone.append(p.relative_to(self.root).as_posix())
        return sorted(gone)
