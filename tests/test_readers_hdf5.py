"""HDF5 reading: multi-process loaders (fork and spawn), corrupted and truncated shards."""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import snapshot

from fgbg.builder import BuildConfig, build
from fgbg.readers import Dataset, DatasetError, open_dataset

CFG = BuildConfig(placements=2, shard_size=9)  # 36 samples, 4 shards


@pytest.fixture(scope="module", params=["encoded", "raw"])
def h5(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
       demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp(f"h5{request.param}") / "ds"
    build(out, CFG, *demo_inputs, formats=("hdf5",), hdf5_layout=request.param, progress=False, workers=1)
    return out


def _read(args: tuple[Dataset, list[int]]) -> list[tuple[int, str, int]]:
    ds, indices = args
    return [(i, ds[i]["key"], int(ds[i]["mask"].sum())) for i in indices]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocess_loader_reads_each_sample_once(h5: Path, method: str) -> None:
    ds = open_dataset(h5)
    expected = {i: (s["key"], int(s["mask"].sum())) for i, s in enumerate(ds)}  # parent has files open now
    parts = [list(range(w, len(ds), 3)) for w in range(3)]
    with multiprocessing.get_context(method).Pool(3) as pool:
        results = [r for chunk in pool.map(_read, [(ds, p) for p in parts]) for r in chunk]
    assert sorted(i for i, _, _ in results) == list(range(len(ds)))
    assert {i: (k, m) for i, k, m in results} == expected
    ds.close()


def _in_subprocess(root: Path) -> subprocess.CompletedProcess[str]:
    code = ("import sys; from readers import open_dataset, DatasetError\n"
            "try:\n    n = sum(1 for _ in open_dataset(sys.argv[1]))\n    print('read', n)\n"
            "except DatasetError as e:\n    print('DatasetError:', e)\n")
    return subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=60)


def test_truncated_and_corrupted_shards_detected_then_rebuilt(h5: Path, tmp_path: Path,
                                                              demo_inputs: tuple[Path, Path]) -> None:
    layout = open_dataset(h5).metadata.hdf5_layout
    copy = tmp_path / "ds"
    shutil.copytree(h5, copy)
    original = snapshot(copy)
    shard = copy / "shards" / "000002.h5"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    r = _in_subprocess(copy)
    assert r.returncode == 0, r.stderr  # an error, never a crash of the interpreter
    assert r.stdout.startswith("DatasetError:") and "000002.h5" in r.stdout
    with pytest.raises(DatasetError, match=r"000002\.h5"):
        list(open_dataset(copy))
    damaged = bytearray(data)
    for i in range(0, 96, 4):
        damaged[i] ^= 0xFF  # superblock and root group header
    shard.write_bytes(bytes(damaged))
    r = _in_subprocess(copy)
    assert r.returncode == 0 and "DatasetError:" in r.stdout and "000002.h5" in r.stdout, r.stdout + r.stderr
    if layout == "raw":  # payload damage inside a chunk: Fletcher-32 turns it into an error
        damaged = bytearray(data)
        mid = len(data) // 2
        damaged[mid : mid + 64] = bytes(64)
        shard.write_bytes(bytes(damaged))
        r = _in_subprocess(copy)
        assert r.returncode == 0 and "DatasetError:" in r.stdout and "000002.h5" in r.stdout, r.stdout + r.stderr
    res = build(copy, CFG, *demo_inputs, formats=("hdf5",), hdf5_layout=layout, progress=False)
    assert (res.built, res.reused) == (1, 3)
    assert snapshot(copy) == original
