"""readers/schema.py: metadata parsed into checked records; every rule names the file and field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from fgbg.builder import BuildConfig, build
from fgbg.readers.errors import DatasetError, MetadataError
from fgbg.readers.schema import check_offsets, json_schemas, parse_manifest, parse_receipt

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("schema") / "ds"
    build(out, BuildConfig(placements=1, shard_size=6), *demo_inputs, formats=("tar", "hdf5"), progress=False,
          workers=1)
    return out


def test_published_json_schemas_are_the_records() -> None:
    for name, schema in json_schemas().items():
        published = json.loads((ROOT / "docs" / "schema" / f"{name}.schema.json").read_text())
        assert published == schema, f"docs/schema/{name}.schema.json is stale: regenerate it: python tools/schemas.py"
    manifest = json_schemas()["manifest"]
    entry = manifest["$defs"]["ShardEntry"]
    assert entry["properties"]["name"]["pattern"] == r"^shards/[0-9]{6,12}\.(tar|h5|tar\.zst)$"
    assert entry["properties"]["count"]["minimum"] == 0


def test_real_metadata_parses(ds: Path) -> None:
    m = parse_manifest((ds / "manifest.json").read_bytes())
    assert m.totals.samples == 18 and [e.name for e in m.shards["tar"]] == [f"shards/{i:06d}.tar" for i in range(3)]
    assert issubclass(MetadataError, DatasetError)
    for shard in sorted((ds / "shards").glob("*.tar")) + sorted((ds / "shards").glob("*.h5")):
        rel = f"shards/{shard.name}"
        r = parse_receipt((ds / (rel + ".json")).read_bytes(), rel + ".json", size=shard.stat().st_size)
        assert r.name == rel and r.count == 6 and len(r.offsets) == (6 if rel.endswith(".tar") else 0)


def _mutated(ds: Path, change: Any) -> bytes:
    m = json.loads((ds / "manifest.json").read_bytes())
    change(m)
    return json.dumps(m).encode()


def _set(path: str, value: Any) -> Any:
    def change(m: dict[str, Any]) -> None:
        node: Any = m
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return change


@pytest.mark.parametrize(("path", "value", "message"), [
    ("shards.tar.0.name", "../../outside.tar", "at `$.shards[...][0].name`"),
    ("shards.tar.0.name", "/etc/passwd", "at `$.shards[...][0].name`"),
    ("shards.tar.0.name", "shards/000000.tar/../../x.tar", "at `$.shards[...][0].name`"),
    ("shards.tar.1.name", "shards/000007.tar", "named shards/000007.tar, expected number 000001"),
    ("shards.tar.0.name", "shards/000000.h5", "is not a tar shard"),
    ("shards.tar.0.count", -5, "Expected `int` >= 0"),
    ("shards.tar.0.count", 10**12, "cannot fit in"),
    ("shards.tar.0.count", "6", "Expected `int`, got `str`"),
    ("shards.tar.1.first", 7, "first is 7, the shards before it end at 6"),
    ("shards.hdf5.1.count", 7, "the formats' shards do not hold the same samples"),
    ("totals.samples", 10**12, "hold 18 samples, totals say 1000000000000"),
    ("key_width", 10**9, "Expected `int` <= 18"),
    ("key_width", 0, "Expected `int` >= 1"),
    ("format_version", 5, "at `$.format_version`"),
    ("format_version", 4, "format_version is 4, its features make 1"),
    ("format_version", 3, "format_version is 3, its features make 1"),
    ("format_version", 2, "format_version is 2, its features make 1"),
    ("fields.mask.member", "mask.npy.zst", "format_version is 1, its features make 4"),
    ("fields.image.member", "png", "member 'png', expected 'jpg'"),
    ("totals.bytes.tar", 1, "totals.bytes.tar is not the sum"),
    ("shards.tar.0.sha256", "x" * 64, "at `$.shards[...][0].sha256`"),
])
def test_each_lie_is_named(ds: Path, path: str, value: Any, message: str) -> None:
    with pytest.raises(MetadataError, match=r"^manifest\.json: ") as info:
        parse_manifest(_mutated(ds, _set(path, value)))
    assert message in str(info.value), str(info.value)


def test_not_json_and_wrong_shapes(ds: Path) -> None:
    with pytest.raises(MetadataError, match="not valid JSON"):
        parse_manifest(b'{"format_version": 1,')
    with pytest.raises(MetadataError, match="Expected `object`, got `array`"):
        parse_manifest(b"[]")
    no_shards = _mutated(ds, lambda m: m.update(shards={}))
    with pytest.raises(MetadataError, match="length >= 1"):
        parse_manifest(no_shards)


def test_receipt_rules(ds: Path) -> None:
    rel = "shards/000001.tar"
    size = (ds / rel).stat().st_size
    good = json.loads((ds / (rel + ".json")).read_bytes())

    def receipt(**change: Any) -> bytes:
        return json.dumps({**copy.deepcopy(good), **change}).encode()

    where = rel + ".json"
    assert parse_receipt(receipt(), where, size=size).offsets == good["offsets"]
    cases = [
        (receipt(count=-5), "Expected `int` >= 0"),
        (receipt(name="shards/000002.tar"), "describes shards/000002.tar, not this shard"),
        (receipt(offsets=[512, *good["offsets"][1:]]), "the first sample must start at byte 0"),
        (receipt(offsets=good["offsets"][1:] + [size]), "must start at byte 0, not"),  # shifted by one
        (receipt(offsets=[0, *good["offsets"][2:], good["offsets"][1]]), "is not a sample start"),
        (receipt(offsets=good["offsets"][:-1]), "5 offsets for 6 samples"),
        (receipt(bytes=size + 512), f"describes a {size + 512}-byte shard, the file has {size} bytes"),
        (receipt(count=10**12, bytes=10**12), "describes a 1000000000000-byte shard"),
    ]
    for data, message in cases:
        with pytest.raises(MetadataError) as info:
            parse_receipt(data, where, size=size)
        assert message in str(info.value) and str(info.value).startswith(where), str(info.value)


def test_offsets_must_be_sample_starts() -> None:
    check_offsets([0, 2048, 5120], 3, 8192, "r")
    for offsets, size in (([0, 1024], 8192), ([0, 2048, 2048], 8192), ([0, 2049], 8192), ([0, 8192], 8192)):
        with pytest.raises(MetadataError):
            check_offsets(offsets, len(offsets), size, "r")
