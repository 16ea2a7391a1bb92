"""The background committer: shards committed in order, a bounded queue, failures never lost."""

from __future__ import annotations

import threading

import pytest

from fgbg.builder.committer import Commit, Committer


def test_commits_in_order_and_drain_waits_for_them() -> None:
    done: list[int] = []
    gate = threading.Event()
    committer = Committer(depth=1)

    def job(i: int) -> Commit:
        def run() -> None:
            gate.wait(5)
            done.append(i)
        return Commit(run, lambda: None)

    committer.submit(job(0))  # taken by the thread, waits on the gate
    committer.submit(job(1))  # queued: the queue is now full
    blocked = threading.Thread(target=committer.submit, args=(job(2),))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()  # bounded: a third waits for room
    gate.set()
    blocked.join(5)
    committer.drain()
    assert done == [0, 1, 2]
    committer.close()


def test_a_failure_is_raised_and_the_shards_behind_it_are_cancelled() -> None:
    log: list[str] = []
    committer = Committer(depth=2)
    gate = threading.Event()

    def fail() -> None:
        gate.wait(5)
        raise OSError("upload refused")

    committer.submit(Commit(fail, lambda: log.append("cancel 0")))
    committer.submit(Commit(lambda: log.append("run 1"), lambda: log.append("cancel 1")))
    gate.set()
    with pytest.raises(OSError, match="upload refused"):
        committer.drain()
    assert log == ["cancel 0", "cancel 1"]  # the failed one undone, the one behind never published
    with pytest.raises(OSError, match="upload refused"):  # and every later submit says so too
        committer.submit(Commit(lambda: log.append("run 2"), lambda: log.append("cancel 2")))
    assert log[-1] == "cancel 2"
    with pytest.raises(OSError):
        committer.close()
