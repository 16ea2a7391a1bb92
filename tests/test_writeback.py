import os
import sys
from pathlib import Path

import pytest

from fgbg.builder.shards import writeback
from fgbg.builder.shards.writeback import Writeback


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux-only")
def test_writeback_starts_every_stretch_and_keeps_the_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = writeback._SYNC_FILE_RANGE
    assert real is not None
    calls: list[tuple[int, int, int, int, int]] = []

    def recorded(fd: int, offset: int, nbytes: int, flags: int) -> int:
        calls.append((fd, offset, nbytes, flags, real(fd, offset, nbytes, flags)))
        return calls[-1][-1]

    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", recorded)
    data = os.urandom(10_000)
    with open(tmp_path / "f", "wb", buffering=0) as f:
        fd = f.fileno()
        wb = Writeback(fd, every=25_000)
        starts = []
        for i in range(1, 8):
            f.write(data)
            wb.written(i * len(data))
            starts.append(wb.started)
    assert starts == [0, 0, 30_000, 30_000, 30_000, 60_000, 60_000]
    # each call asks the kernel to start writing (SYNC_FILE_RANGE_WRITE = 2) the stretch since the last, and succeeds
    assert calls == [(fd, 0, 30_000, 2, 0), (fd, 30_000, 30_000, 2, 0)]
    assert (tmp_path / "f").read_bytes() == data * 7


def test_writeback_is_a_no_op_without_the_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writeback, "_SYNC_FILE_RANGE", None)
    with open(tmp_path / "g", "wb") as f:
        wb = Writeback(f.fileno(), every=1)
        wb.written(100)
        assert wb.started == 0
