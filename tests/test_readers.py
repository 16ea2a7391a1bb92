import json
from pathlib import Path

import numpy as np
import pytest

from fgbg.builder import BuildConfig, build
from fgbg.readers import DatasetError, open_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("r") / "ds"
    build(out, BuildConfig(placements=3, shard_size=7), *demo_inputs, progress=False, workers=1)
    return out


def test_iterate_in_key_order(dataset: Path) -> None:
    ds = open_dataset(dataset)
    samples = list(ds)
    assert len(ds) == len(samples) == 54
    assert [s["meta"]["index"] for s in samples] == list(range(54))
    s = samples[0]
    assert s["image"].shape == (224, 224, 3) and s["image"].dtype == np.uint8
    assert s["mask"].shape == (224, 224) and s["depth"].shape == (112, 112)


def test_random_access_equals_iteration(dataset: Path) -> None:
    ds = open_dataset(dataset)
    seq = list(ds)
    for i in np.random.default_rng(0).permutation(54)[:20].tolist() + [0, 53, -1]:
        got = ds[i]
        want = seq[i]
        assert got["key"] == want["key"] and got["meta"] == want["meta"]
        assert np.array_equal(got["image"], want["image"]) and np.array_equal(got["depth"], want["depth"])
    with pytest.raises(IndexError):
        ds[54]


def test_field_selection(dataset: Path) -> None:
    ds = open_dataset(dataset, fields=("mask", "meta"))
    s = next(iter(ds))
    assert set(s) == {"key", "mask", "meta"}
    with pytest.raises(DatasetError, match="no field"):
        open_dataset(dataset, fields=("normals",))


def test_missing_and_corrupt(tmp_path: Path, dataset: Path) -> None:
    with pytest.raises(DatasetError, match="no manifest"):
        open_dataset(tmp_path)
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    (copy / "shards" / "000001.tar").unlink()
    with pytest.raises(DatasetError, match=r"000001\.tar: shard listed in the manifest is missing"):
        list(open_dataset(copy))


def test_checked_reads_prove_every_sample(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    """open_dataset(check=True): a flipped bit inside a JPEG decodes to wrong pixels without a
    word; the checked reader names the sample, in every read path (iteration, random access,
    stream), and clean samples still read."""
    import json

    out = tmp_path / "ds"
    build(out, BuildConfig(placements=1, shard_size=10), *demo_inputs, formats=("tar", "hdf5"), progress=False,
          workers=1)
    for fmt in ("tar", "hdf5"):
        assert len(list(open_dataset(out, format=fmt, check=True, fields=("image",)))) == 18
    receipt = json.loads((out / "shards" / "000000.tar.json").read_bytes())
    assert len(receipt["digests"]) == 10 and receipt["digests"] == json.loads(
        (out / "shards" / "000000.h5.json").read_bytes())["digests"]  # format-independent
    shard = out / "shards" / "000000.tar"
    data = bytearray(shard.read_bytes())
    data[receipt["offsets"][4] + 512 + 600] ^= 0x10  # inside sample 4's JPEG data
    shard.write_bytes(bytes(data))
    assert len(list(open_dataset(out, format="tar"))) == 18  # unchecked: silently different pixels
    checked = open_dataset(out, format="tar", check=True)
    message = r"000000.tar: sample 00000004: bytes differ from the receipt's digest"
    with pytest.raises(DatasetError, match=message):
        list(checked)
    with pytest.raises(DatasetError, match=message):
        checked[4]
    assert checked[3]["key"] == "00000003" and checked[5]["key"] == "00000005"
    with pytest.raises(DatasetError, match=message):
        list(checked.stream(shuffle=True, seed=0))
    for p in (out / "shards").glob("*.json"):  # a receipt from before digests existed
        r = json.loads(p.read_bytes())
        r.pop("digests")
        p.write_text(json.dumps(r))
    with pytest.raises(DatasetError, match="has no per-sample digests"):
        open_dataset(out, format="tar", check=True)[0]


def _tar_members(path: Path) -> dict[str, dict[str, bytes]]:
    """Every sample's members as stored, by the standard library's tar reader."""
    import tarfile

    out: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as t:
        for m in t:
            f = t.extractfile(m)
            assert f is not None
            key, _, suffix = m.name.partition(".")
            out.setdefault(key, {})[suffix] = f.read()
    return out


def test_raw_bytes_are_the_stored_members(dataset: Path) -> None:
    """decode=False: each field is the member's bytes exactly, by iteration, ds[i], get_many, streams."""
    ds = open_dataset(dataset, decode=False)
    stored: dict[str, dict[str, bytes]] = {}
    for s in ds.shards:
        stored.update(_tar_members(dataset / s.name))
    suffix = {"image": "jpg", "mask": "mask.png", "depth": "depth.png", "meta": "json"}
    seq = list(ds)
    assert len(seq) == len(stored) == 54
    for s in seq:  # pixels as zero-copy views of the mapped shard, the annotation as bytes
        assert isinstance(s["image"], memoryview) and isinstance(s["meta"], bytes)
        assert all(bytes(s[f]) == stored[s["key"]][x] for f, x in suffix.items())
    order = np.random.default_rng(1).permutation(54).tolist()
    assert [ds[i]["image"] for i in order] == [seq[i]["image"] for i in order]
    assert [s["depth"] for s in ds.get_many(order)] == [seq[i]["depth"] for i in order]
    assert [json.loads(ds[i]["meta"])["index"] for i in order] == order
    checked = open_dataset(dataset, decode=False, check=True)  # views are proven against the digests too
    assert [bytes(s["mask"]) for s in checked] == [bytes(s["mask"]) for s in seq]
    assert sorted(s["key"] for s in ds.stream(shuffle=True, seed=3)) == [s["key"] for s in seq]
    with pytest.raises(DatasetError, match="normalize/resize need decoded samples"):
        ds.stream(normalize=True)
    decoded = open_dataset(dataset)
    from fgbg.readers.decode import decode_member

    assert np.array_equal(decode_member("image", seq[5]["image"]), decoded[5]["image"])


def test_get_many_any_order_repeats_and_shards(dataset: Path) -> None:
    ds = open_dataset(dataset)
    seq = list(ds)
    wanted = [53, 0, 7, 6, 6, 20, 21, 22, -1, 13, 8]  # across shards of 7, neighbours, repeats, negative
    got = ds.get_many(wanted)
    assert [s["key"] for s in got] == [seq[i]["key"] for i in wanted]
    assert all(np.array_equal(g["image"], seq[i]["image"]) and g["meta"] == seq[i]["meta"] for g, i in
               zip(got, wanted, strict=True))
    assert got[3] is not got[4] and got[3]["image"] is got[4]["image"]  # one read, one dict per position
    assert ds.get_many([]) == []
    with pytest.raises(IndexError):
        ds.get_many([1, 54])
    with pytest.raises(TypeError, match="sample index must be an int"):
        ds[1.0]  # type: ignore[index]
    assert ds[np.int64(3)]["key"] == seq[3]["key"]


def test_reduce_decodes_smaller(dataset: Path) -> None:
    """reduce=2: the JPEG by DCT scaling (libjpeg's scaled decode), the mask by nearest, depth by area."""
    import cv2
    import simplejpeg

    raw = open_dataset(dataset, decode=False)[9]
    s = open_dataset(dataset, reduce=2)[9]
    assert s["image"].shape == (112, 112, 3) and s["mask"].shape == (112, 112) and s["depth"].shape == (56, 56)
    assert np.array_equal(s["image"], simplejpeg.decode_jpeg(raw["image"], colorspace="RGB", min_width=112,
                                                             min_height=112))
    full = open_dataset(dataset)[9]
    assert np.array_equal(s["mask"], cv2.resize(full["mask"], (112, 112), interpolation=cv2.INTER_NEAREST))
    assert np.array_equal(s["depth"], cv2.resize(full["depth"], (56, 56), interpolation=cv2.INTER_AREA))
    assert set(np.unique(s["mask"]).tolist()) <= {0, 255}
    with pytest.raises(DatasetError, match="reduce must be one of 1, 2, 4, 8"):
        open_dataset(dataset, reduce=3)


def test_random_reads_keep_a_bounded_set_of_files_open(dataset: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """ds[i] reuses open shard files (no open/close per sample), never more than the cache's
    bound, and close() lets them go; a dataset reopened after its files are replaced reads the new ones."""
    import os
    import shutil

    from fgbg.readers import fs
    from fgbg.readers.handles import HandleCache

    handles = HandleCache()  # this test's own: other tests of the process may have filled the shared one
    monkeypatch.setattr(fs, "handles", handles)

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before, cached = open_fds(), len(handles)
    ds = open_dataset(dataset)
    for i in range(0, 54, 3):
        ds[i]
    assert len(handles) - cached == len(ds.shards) and open_fds() - before == len(ds.shards)
    for i in range(54):
        ds[i]
    assert open_fds() - before == len(ds.shards)  # reused, not reopened
    ds.close()
    assert open_fds() == before and len(handles) == cached
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    with open_dataset(copy) as a:
        first = a[0]["key"]
        shutil.copy(copy / "shards" / "000001.tar", copy / "shards" / "000000.tar.new")
        os.replace(copy / "shards" / "000000.tar.new", copy / "shards" / "000000.tar")  # a shard rewritten
        assert a[0]["key"] == first  # this open dataset still reads the file it opened
    with open_dataset(copy) as b, pytest.raises(DatasetError, match=r"000000\.tar"):
        b[0]  # reopened: the new file is seen (and its bytes are not sample 0's)
    assert open_fds() == before
