"""kill -9 of a running build at several points, then rerun: identical to an uninterrupted build."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import kill_when, local_receipts, reference_snapshot, snapshot, start_fgbg

from fgbg.builder import BuildConfig, build
from fgbg.builder.storage import LocalStore

CFG = BuildConfig(placements=4, shard_size=4)  # 72 samples in 18 shards


def _start(out: Path, inputs: tuple[Path, Path]) -> subprocess.Popen[str]:
    return start_fgbg(["build", "--bg", str(inputs[0]), "--fg", str(inputs[1]), "--out", str(out), "--placements", "4",
                       "--shard-size", "4", "--workers", "2", "--no-progress"])


def _receipts(out: Path) -> list[Path]:
    d = out / "shards"
    return sorted(d.glob("*.json")) if d.is_dir() else []


def _assert_no_false_receipt(out: Path) -> None:
    """Every receipt left by the killed build describes a complete, identical shard."""
    store = LocalStore(out)
    for r in _receipts(out):
        rec = json.loads(r.read_bytes())
        assert store.exists(rec["name"]), r
        assert store.size(rec["name"]) == rec["bytes"] and store.sha256(rec["name"]) == rec["sha256"], r


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> dict[str, str]:
    return reference_snapshot(tmp_path_factory.mktemp("ref") / "ds", CFG, demo_inputs)


@pytest.mark.parametrize("after_receipts", [0, 1, 5, 11, 16])
def test_kill_after_n_shards(tmp_path: Path, demo_inputs: tuple[Path, Path], reference: dict[str, str],
                             after_receipts: int) -> None:
    out = tmp_path / "ds"
    kill_when(_start(out, demo_inputs), lambda: local_receipts(out) >= after_receipts)
    assert not (out / "manifest.json").exists() or len(_receipts(out)) == 18
    _assert_no_false_receipt(out)
    result = build(out, CFG, *demo_inputs, progress=False, workers=2)
    assert result.built + result.reused == 18
    assert snapshot(out) == reference


@pytest.mark.parametrize("after_receipts", [2, 9])
def test_kill_parent_only(tmp_path: Path, demo_inputs: tuple[Path, Path],
                          reference: dict[str, str], after_receipts: int) -> None:
    """Only the builder dies (workers are orphaned mid-shard); they must not corrupt the rerun."""
    out = tmp_path / "ds"
    kill_when(_start(out, demo_inputs), lambda: local_receipts(out) >= after_receipts, group=False)
    _assert_no_false_receipt(out)
    build(out, CFG, *demo_inputs, progress=False, workers=2)
    assert snapshot(out) == reference
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
