"""Hostile datasets: every metadata field set to wrong types, negatives, huge values and paths;
tar headers with lying sizes, orders and duplicates; HDF5 files with lying shapes.

For every case: no traceback (readers raise only DatasetError), bounded memory, readers exact
or an error, verify not OK and naming what is wrong, repair back to the original bytes when
record and inputs are intact, nothing outside the dataset touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import pytest
from helpers import sample_fingerprint, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fgbg.builder import BuildConfig, build
from fgbg.builder.cli import main
from fgbg.builder.commands.repair import repair
from fgbg.builder.commands.verify import VerifyReport, verify
from fgbg.readers import DatasetError, open_dataset

MEMORY_BOUND = 256 * 2**20  # traced Python + NumPy allocations while reading and verifying
HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**13), max_value=10**13),
    st.sampled_from([-1, -5, 0, 1, 7, 10**9, 10**12, 2**63, 1.5, "", "x" * 64, "../../outside.tar",
                     "/etc/passwd", "shards/000000.tar", "shards/000002.h5", "shards/999999.tar", [], {}]),
    st.lists(st.integers(min_value=-3, max_value=10**6), max_size=3),
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "ds"
    build(out, BuildConfig(placements=1, shard_size=6), *demo_inputs, formats=("tar", "hdf5"), progress=False,
          workers=1)
    return out


@pytest.fixture(scope="module")
def reference(pristine: Path) -> dict[str, list[tuple[str, str]]]:
    return {fmt: [sample_fingerprint(s) for s in open_dataset(pristine, format=fmt)] for fmt in ("tar", "hdf5")}


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every field of a JSON document (long lists: their first, second and last items)."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        picks = range(len(node)) if len(node) <= 3 else (0, 1, len(node) - 1)
        for i in picks:
            yield from _paths(node[i], (*prefix, i))


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


def _readers_exact_or_error(ds: Path, reference: dict[str, list[tuple[str, str]]]) -> None:
    """Each format either reads exactly the original samples (sequential, random, a stream
    split across ranks) or raises DatasetError -- nothing else, and no wrong sample."""
    for fmt, want in reference.items():
        try:
            d = open_dataset(ds, format=fmt)
        except DatasetError:
            continue
        try:
            assert len(d) == len(want)
            assert [sample_fingerprint(s) for s in d] == want
            assert [sample_fingerprint(d[i]) for i in (0, 7, len(want) - 1)] == [want[0], want[7], want[-1]]
            for rank in range(3):
                got = [sample_fingerprint(s)
                       for s in d.stream(shuffle=True, seed=1, rank=rank, world=3, partial="uneven")]
                assert set(got) <= set(want)
        except DatasetError:
            pass


def _read_and_verify_bounded(ds: Path, reference: dict[str, list[tuple[str, str]]]) -> VerifyReport:
    """Readers exact or DatasetError, then verify -- within the memory bound (traced Python
    and NumPy allocations), whatever the files claim."""
    tracemalloc.start()
    try:
        _readers_exact_or_error(ds, reference)
        report = verify(str(ds), workers=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, peak
    return report


def _check_case(pristine: Path, reference: dict[str, list[tuple[str, str]]], rel: str,
                change: Callable[[Any], Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ds = Path(tmp) / "ds"
        shutil.copytree(pristine, ds)
        original = json.loads((ds / rel).read_bytes())
        changed = change(json.loads((ds / rel).read_bytes()))
        if changed == original:
            return
        (ds / rel).write_text(json.dumps(changed))
        outside = sorted(p.name for p in Path(tmp).iterdir())
        report = _read_and_verify_bounded(ds, reference)
        assert not report.ok, (rel, changed if rel == "manifest.json" else None)
        assert sorted(p.name for p in Path(tmp).iterdir()) == outside


MANIFEST_PATHS: list[tuple[Any, ...]] = []
RECEIPT_PATHS: list[tuple[Any, ...]] = []


def _collect(pristine: Path) -> None:
    if not MANIFEST_PATHS:
        MANIFEST_PATHS.extend(_paths(json.loads((pristine / "manifest.json").read_bytes())))
        RECEIPT_PATHS.extend(_paths(json.loads((pristine / "shards" / "000001.tar.json").read_bytes())))


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_manifest_fields_lie(pristine: Path, reference: dict[str, list[tuple[str, str]]], data: st.DataObject) -> None:
    _collect(pristine)
    path = data.draw(st.sampled_from(MANIFEST_PATHS), label="path")
    value = data.draw(HOSTILE, label="value")
    _check_case(pristine, reference, "manifest.json", lambda m: _set(m, path, value))


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_receipt_fields_lie(pristine: Path, reference: dict[str, list[tuple[str, str]]], data: st.DataObject) -> None:
    _collect(pristine)
    path = data.draw(st.sampled_from(RECEIPT_PATHS), label="path")
    value = data.draw(HOSTILE, label="value")
    rel = data.draw(st.sampled_from(["shards/000001.tar.json", "shards/000001.h5.json"]), label="receipt")
    _check_case(pristine, reference, rel, lambda r: _set(r, path, value) if _has(r, path) else r)


def _has(doc: Any, path: tuple[Any, ...]) -> bool:
    node = doc
    for p in path:
        if (isinstance(node, dict) and p in node) or (isinstance(node, list) and isinstance(p, int) and p < len(node)):
            node = node[p]
        else:
            return False
    return True


# -- specific lies, each repaired back to the original bytes -------------------------------------------------------


def _shift_offsets(ds: Path) -> None:
    """The issue's case: the receipt's offsets shifted by one sample (still well-formed)."""
    rel = ds / "shards" / "000001.tar.json"
    r = json.loads(rel.read_bytes())
    r["offsets"] = [0, *r["offsets"][2:], r["offsets"][-1] + (r["offsets"][-1] - r["offsets"][-2])]
    rel.write_text(json.dumps(r))


def _swap_members(ds: Path) -> None:
    """Two samples' members swapped inside the tar, with receipt and manifest rehashed to match:
    every hash agrees, the layout lies."""
    path = ds / "shards" / "000001.tar"
    with tarfile.open(path) as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]  # type: ignore[union-attr]
    members[4], members[5] = members[5], members[4]  # sample 7: mask before image
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as out:
        for m, payload in members:
            out.addfile(m, __import__("io").BytesIO(payload))
    _rehash(ds, "shards/000001.tar")


def _duplicate_sample(ds: Path) -> None:
    path = ds / "shards" / "000001.tar"
    with tarfile.open(path) as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]  # type: ignore[union-attr]
    members = members[:4] + members[:4] + members[8:]  # sample 6 twice, sample 7 gone
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as out:
        for m, payload in members:
            out.addfile(m, __import__("io").BytesIO(payload))
    _rehash(ds, "shards/000001.tar")


def _rehash(ds: Path, rel: str) -> None:
    data = (ds / rel).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    receipt = json.loads((ds / (rel + ".json")).read_bytes())
    receipt.update(bytes=len(data), sha256=digest)
    (ds / (rel + ".json")).write_text(json.dumps(receipt))
    manifest = json.loads((ds / "manifest.json").read_bytes())
    for entry in manifest["shards"]["tar"]:
        if entry["name"] == rel:
            old = entry["bytes"]
            entry.update(bytes=len(data), sha256=digest)
            manifest["totals"]["bytes"]["tar"] += len(data) - old
    (ds / "manifest.json").write_text(json.dumps(manifest))


def _huge_member(ds: Path) -> None:
    """A tar header declaring a 64 GiB member in base-256 (checksum fixed up)."""
    path = ds / "shards" / "000002.tar"
    data = bytearray(path.read_bytes())
    header = data[0:512]
    header[124:136] = b"\x80" + (64 * 2**30).to_bytes(11, "big")
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    data[0:512] = header
    path.write_bytes(bytes(data))


def _lying_h5_keys(ds: Path) -> None:
    """An .h5 shard whose /keys declares 2*10^8 entries (the file stays small: chunked, empty)."""
    path = ds / "shards" / "000000.h5"
    with h5py.File(path, "a") as f:
        del f["keys"]
        f.create_dataset("keys", shape=(200_000_000,), dtype="S8", chunks=(1024,))


def _receipt_count_negative(ds: Path) -> None:
    rel = ds / "shards" / "000000.tar.json"
    r = json.loads(rel.read_bytes())
    r["count"] = -5
    rel.write_text(json.dumps(r))


def _manifest_path_escape(ds: Path) -> None:
    m = json.loads((ds / "manifest.json").read_bytes())
    m["shards"]["tar"][0]["name"] = "../outside.tar"
    (ds / "manifest.json").write_text(json.dumps(m))
    shutil.copy(ds / "shards" / "000000.tar", ds.parent / "outside.tar")


def _statistics_edited(ds: Path) -> None:
    m = json.loads((ds / "manifest.json").read_bytes())
    m["statistics"]["image"]["mean"][0] = 0.5
    (ds / "manifest.json").write_text(json.dumps(m))


def _record_damaged(ds: Path) -> None:
    r = json.loads((ds / "build.json").read_bytes())
    r["config"]["seed"] = 1
    (ds / "build.json").write_text(json.dumps(r))


def _index_garbled(ds: Path) -> None:
    lines = (ds / "annotations.csv").read_text().splitlines(keepends=True)
    lines[1] = "abc" + lines[1][8:]
    (ds / "annotations.csv").write_text("".join(lines))


def _index_garbled_and_rehashed(ds: Path) -> None:
    """The index garbled and the manifest's hash of it updated: the hash agrees, the rows do not parse."""
    _index_garbled(ds)
    m = json.loads((ds / "manifest.json").read_bytes())
    m["annotations"]["sha256"] = hashlib.sha256((ds / "annotations.csv").read_bytes()).hexdigest()
    (ds / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize(("lie", "where", "what"), [
    (_index_garbled, "annotations.csv", "sha256 differs from the manifest"),
    (_index_garbled_and_rehashed, "annotations.csv", "malformed (line 2 holds a value that is not a number)"),
    (_shift_offsets, "shards/000001.tar", "sample 00000007 does not start at the receipt's offset"),
    (_swap_members, "shards/000001.tar", "member '00000007.mask.png' where '00000007.jpg' belongs"),
    (_duplicate_sample, "shards/000001.tar", "member '00000006.jpg' where '00000007.jpg' belongs"),
    (_huge_member, "shards/000002.tar", "sha256 differs"),
    (_lying_h5_keys, "shards/000000.h5", "sha256 differs"),
    (_receipt_count_negative, "shards/000000.tar.json", "Expected `int` >= 0"),
    (_manifest_path_escape, "manifest.json", "at `$.shards[...][0].name`"),
    (_statistics_edited, "manifest.json", "differs from what build.json, the receipts and the index make (statistics)"),
    (_record_damaged, "build.json", "its fingerprint does not match its content"),
])
def test_lie_is_named_and_repaired(pristine: Path, reference: dict[str, list[tuple[str, str]]], tmp_path: Path,
                                   lie: Callable[[Path], None], where: str, what: str) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(pristine, ds)
    lie(ds)
    report = _read_and_verify_bounded(ds, reference)
    assert any(p.where == where and what in p.what for p in report.problems), report.text()
    assert main(["verify", str(ds)]) == 1
    _, _, after = repair(str(ds), workers=1)
    assert after.ok, after.text()
    assert snapshot(ds) == snapshot(pristine)


RECORD_PATHS: list[tuple[Any, ...]] = []


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_build_record_fields_lie(pristine: Path, data: st.DataObject) -> None:
    """Any edit of build.json: resuming refuses it in one line (exit 2), verify names it, and
    repair restores it from the manifest's copy -- the whole dataset back to its bytes."""
    if not RECORD_PATHS:
        RECORD_PATHS.extend(p for p in _paths(json.loads((pristine / "build.json").read_bytes())) if p)
    path = data.draw(st.sampled_from(RECORD_PATHS), label="path")
    value = data.draw(HOSTILE, label="value")
    with tempfile.TemporaryDirectory() as tmp:
        ds = Path(tmp) / "ds"
        shutil.copytree(pristine, ds)
        record = json.loads((ds / "build.json").read_bytes())
        changed = _set(json.loads((ds / "build.json").read_bytes()), path, value)
        if changed == record:
            return
        (ds / "build.json").write_text(json.dumps(changed))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main(["build", "--out", str(ds), "--no-progress"]) == 2
        assert err.getvalue().startswith("fgbg: error: ") and err.getvalue().count("\n") == 1, err.getvalue()
        assert any(p.where == "build.json" for p in verify(str(ds), workers=1).problems)
        _, _, after = repair(str(ds), workers=1)
        assert after.ok and snapshot(ds) == snapshot(pristine)
