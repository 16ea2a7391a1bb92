import csv
import io
import json
from pathlib import Path

from fgbg.builder import BuildConfig, build
from fgbg.builder.manifest import ANNOTATION_COLUMNS, manifest_bytes
from fgbg.readers import open_dataset


def test_manifest_and_index_agree_with_samples(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    out = tmp_path / "m"
    res = build(out, BuildConfig(placements=2, shard_size=5, fg_scale=(0.8, 1.0)), *demo_inputs, progress=False)
    m = json.loads((out / "manifest.json").read_bytes())
    assert (out / "manifest.json").read_bytes() == manifest_bytes(res.manifest)
    assert m["totals"]["samples"] == 36 and m["totals"]["shards"] == 8
    shards = m["shards"]["tar"]
    assert [s["first"] for s in shards] == list(range(0, 36, 5)) and shards[-1]["count"] == 1
    assert m["totals"]["bytes"] == {"tar": sum((out / s["name"]).stat().st_size for s in shards)}
    assert [r["name"] for r in m["inputs"]["bg"]] == ["room_000.jpg", "room_001.jpg", "room_002.jpg"]
    assert set(m["config"]) >= {"seed", "size", "fg_size", "quality", "placements", "flips", "depth"}
    rows = list(csv.DictReader(io.StringIO((out / "annotations.csv").read_text())))
    assert tuple(rows[0]) == ANNOTATION_COLUMNS and len(rows) == 36
    for row, s in zip(rows, open_dataset(out, fields=("meta",)), strict=True):
        meta = s["meta"]
        assert row["key"] == s["key"] and int(row["shard"]) == meta["index"] // 5
        for col in ("x", "y", "w", "h", "flip", "placement"):
            assert int(row[col]) == meta[col], col
        assert int(row["bg"]) == meta["bg"]["index"] and int(row["fg"]) == meta["fg"]["index"]
        assert float(row["scale"]) == meta["scale"]
    assert "\n" not in json.dumps(m["statistics"]["image"]["mean"])
    assert len(m["statistics"]["image"]["mean"]) == 3 and len(m["statistics"]["mask"]["std"]) == 1
