"""``fgbg view`` on a ``--depth-layers`` dataset: the background's prediction beside the sample's map."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_onnx_depth import first_channel_model
from test_view import get, get_json

from fgbg.builder import BuildConfig, build
from fgbg.builder.depth.presets import stretch
from fgbg.builder.depth.stored import decode_prediction
from fgbg.builder.view.data import ViewData, colour_depth
from fgbg.builder.view.server import ViewServer


@pytest.fixture(scope="module")
def layered(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    work = tmp_path_factory.mktemp("view-layers")
    model = first_channel_model(work / "tiny.onnx", 64)
    cfg = BuildConfig(size=64, fg_size=(28, 20), placements=1, depth="onnx", depth_preset="midas-v21-small",
                      depth_input=(64, 64), depth_layers=True)
    build(work / "ds", cfg, *demo_inputs, workers=1, progress=False, depth_options={"model": str(model)})
    return work / "ds"


@pytest.fixture
def server(layered: Path) -> Iterator[ViewServer]:
    s = ViewServer(("127.0.0.1", 0), ViewData(str(layered)), None)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    yield s
    s.shutdown()
    s.server_close()


def test_background_prediction_is_served_beside_the_map(server: ViewServer, layered: Path) -> None:
    sample = get_json(server, "/api/sample/5")
    assert sample["bg_depth"] is True
    status, ctype, body = get(server, "/img/sample/5/bg-depth-colour.png")
    assert (status, ctype) == (200, "image/png")
    b = sample["bg"]["index"]
    values = decode_prediction((layered / f"inputs/bg_depth/{b:04d}.npy").read_bytes(), (32, 32), "npy")
    want = colour_depth(stretch(values.astype(np.float64)[None], "inverse")[0])
    got = cv2.cvtColor(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(got, want)
    _, _, script = get(server, "/static/app.js")
    assert b"bg-depth-colour.png" in script


def test_a_changed_prediction_is_refused(server: ViewServer, layered: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(layered, copy)
    path = copy / "inputs" / "bg_depth" / "0000.npy"
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    data = ViewData(str(copy))
    sample = next(i for i in range(18) if data.sample(i, data_filters())["bg"]["index"] == 0)
    with pytest.raises(Exception, match=r"inputs/bg_depth/0000\.npy: does not match the manifest's sha256"):
        data.bg_depth_colour(sample)


def data_filters() -> object:
    from fgbg.builder.view.data import Filters

    return Filters()
