"""The local process-pool runner: a worker that cannot start is an error, not a hang."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from fgbg.builder.build import run_shards
from fgbg.builder.errors import FgbgError


class _Broken:
    def __init__(self) -> None:
        raise FgbgError("weights.h5: no weights for layer 'conv2'")


def test_worker_start_failure_surfaces_with_its_message() -> None:
    with pytest.raises(FgbgError, match="no weights for layer 'conv2'"):
        list(run_shards(_Broken, [0, 1, 2], workers=2))
    with pytest.raises(FgbgError, match="no weights for layer 'conv2'"):
        list(run_shards(_Broken, [0, 1], workers=1))


class _Dies:
    """A worker that builds shards 0 and 2 and dies (as if OOM-killed) on shard 1."""

    def ensure(self, shard: int) -> list[tuple[object, bool]]:
        if shard == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return []

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_dead_worker_fails_the_build_instead_of_hanging() -> None:
    with pytest.raises(FgbgError, match=r"a build worker process died .* rerun the same command to resume"):
        list(run_shards(_Dies, [0, 1, 2, 3], workers=2))


def test_a_started_pool_runs_once_and_closes_idle_workers() -> None:
    from fgbg.builder.build import LocalPool

    pool = LocalPool(2)
    try:
        assert list(pool.run(_Dies, [0, 2, 3])) == [[], [], []]
        with pytest.raises(RuntimeError, match="one build only"):
            list(pool.run(_Dies, [0]))
        pids = list(pool._ex._processes)  # type: ignore[attr-defined]
        assert len(pids) == 2
    finally:
        pool.close()
    for pid in pids:  # killed and reaped: no process left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(ValueError, match="at least 2 workers"):
        LocalPool(1)


class _Busy:
    """A worker whose shards take a minute (a long shard still in flight when the build stops)."""

    def ensure(self, shard: int) -> list[tuple[object, bool]]:
        time.sleep(60)
        return []

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_close_kills_workers_in_the_middle_of_a_shard() -> None:
    """A failed or interrupted build stops its workers before it lets go of the lock: none
    may go on to commit a shard afterwards."""
    from fgbg.builder.build import LocalPool

    pool = LocalPool(2)

    def consume() -> None:
        with contextlib.suppress(FgbgError):  # the workers' death, once close() kills them
            list(pool.run(_Busy, [0, 1, 2]))

    threading.Thread(target=consume, daemon=True).start()
    time.sleep(2)  # both workers are in the middle of a shard now
    pids = list(pool._ex._processes)  # type: ignore[attr-defined]
    t = time.monotonic()
    pool.close()
    assert time.monotonic() - t < 10 and len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


class _Defers:
    """A worker whose shards are committed later (as with background commits): ``flush``
    records, in a file named after its process, the shards it committed."""

    def __init__(self, folder: str):
        self.folder = folder
        self.pending: list[int] = []

    def ensure(self, shard: int) -> list[tuple[object, bool]]:
        time.sleep(0.05)
        self.pending.append(shard)
        return []

    def flush(self) -> None:
        with open(os.path.join(self.folder, str(os.getpid())), "a") as f:
            f.write("".join(f"{s}\n" for s in self.pending))
        self.pending.clear()

    def close(self) -> None:
        pass


def test_the_pool_flushes_every_worker_once_before_it_returns(tmp_path: Path) -> None:
    """Before run() ends, each worker process drained its own commits (one flush task each,
    whichever worker took which shards)."""
    import functools

    from fgbg.builder.build import LocalPool

    pool = LocalPool(2)
    try:
        assert len(list(pool.run(functools.partial(_Defers, str(tmp_path)), list(range(12))))) == 12
        files = sorted(tmp_path.iterdir())
        assert len(files) == 2  # both workers flushed (each had shards: 12 shards of 50 ms)
        flushed = sorted(int(line) for f in files for line in f.read_text().split())
        assert flushed == list(range(12))
    finally:
        pool.close()
