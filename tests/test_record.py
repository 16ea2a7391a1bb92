"""The typed build record: parsed once, serialised back to the same bytes, fingerprint derived."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fgbg.builder import BuildConfig, build
from fgbg.builder.record import BuildRecord, ImportedConfig, Inputs, fingerprint_of
from fgbg.readers.errors import MetadataError
from fgbg.readers.schema import DepthSource, InputEntry


@pytest.fixture(scope="module")
def record_bytes(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> bytes:
    out = tmp_path_factory.mktemp("record") / "ds"
    build(out, BuildConfig(placements=1, shard_size=9), *demo_inputs, progress=False, workers=1)
    return (out / "build.json").read_bytes()


def test_round_trip_is_byte_identical(record_bytes: bytes) -> None:
    record = BuildRecord.parse(record_bytes, "build.json")
    assert record.to_bytes() == record_bytes
    assert record.fingerprint == json.loads(record_bytes)["fingerprint"] == fingerprint_of(record.body())
    assert isinstance(record.config, BuildConfig) and record.config.size == 224 and record.key_width == 8
    assert [e.name for e in record.inputs.bg] == ["room_000.jpg", "room_001.jpg", "room_002.jpg"]
    assert record.inputs.fg[0].base_size is not None and record.depth.backend == "plane"
    assert record.depth_shape == (112, 112) and record.accepted == {record.fingerprint}


def test_a_change_is_a_new_fingerprint(record_bytes: bytes) -> None:
    record = BuildRecord.parse(record_bytes, "build.json")
    grown = record.with_changes(lineage=(record.fingerprint,), segments=(((0, 3), (0, 3)), ((3, 4), (0, 3))))
    assert grown.fingerprint != record.fingerprint and grown.accepted == {grown.fingerprint, record.fingerprint}
    again = BuildRecord.parse(grown.to_bytes(), "build.json")
    assert again == grown and again.segments == (((0, 3), (0, 3)), ((3, 4), (0, 3)))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: r.update(extra=1), r"build.json: Object contains unknown field `extra`"),
    (lambda r: r["config"].update(size="224"), r"build.json: config is not a valid build configuration "
                                               r"\(Expected `int`, got `str` - at `\$.size`\)"),
    (lambda r: r["config"].update(size=8), r"config is not a valid build configuration \(--size must be 16..4096"),
    (lambda r: r["config"].update(colour=1), r"build.json: config has unknown settings 'colour'"),
    (lambda r: r["depth"].update(backend="none"), r"config.depth is 'plane' but the depth source is 'none'"),
    (lambda r: r["depth"].update(size=[0, 1]), r"build.json: Expected `int` >= 1 - at `\$.depth.size\[0\]`"),
    (lambda r: r.update(key_width=9), r"its fingerprint does not match its content"),
])
def test_a_bad_record_is_one_error_naming_it(record_bytes: bytes, edit: object, message: str) -> None:
    raw = json.loads(record_bytes)
    edit(raw)  # type: ignore[operator]
    with pytest.raises(MetadataError, match=message):
        BuildRecord.parse(json.dumps(raw).encode(), "build.json")


def test_an_imported_record() -> None:
    config = ImportedConfig(kind="imported", size=64, placements=2, flips=1, shard_size=10, quality=90,
                            mask_threshold=0, soft_mask=False, depth="none", depth_size=None, source="/seeds",
                            samples=4)
    record = BuildRecord(config=config, inputs=Inputs((InputEntry(index=0, name="room"),), ()),
                         depth=DepthSource(backend="none"), formats=("tar",), hdf5_layout="encoded", key_width=8,
                         tool={"fgbg": "0.1.0"}, left_out=("room/x: missing mask",))
    again = BuildRecord.parse(record.to_bytes(), "build.json")
    assert again == record and again.imported and not again.has_depth and again.depth_shape is None
    assert json.loads(record.to_bytes())["config"]["kind"] == "imported"
    with pytest.raises(Exception, match="an imported dataset has no plan"):
        _ = again.build_config
