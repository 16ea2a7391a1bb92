"""``fgbg compare``: layered maps against per-composite inference, on a dataset's own samples."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from test_onnx_depth import first_channel_model

from fgbg.builder import BuildConfig, build
from fgbg.builder.cli import main
from fgbg.builder.commands.compare_layers import compare_layers, format_comparison

CFG = BuildConfig(size=64, fg_size=(28, 20), placements=2, shard_size=12, depth="onnx",
                  depth_preset="midas-v21-small", depth_input=(64, 64), depth_layers=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> tuple[Path, Path, Path]:
    work = tmp_path_factory.mktemp("compare")
    model = first_channel_model(work / "tiny.onnx", 64)
    options = {"model": str(model), "batch": 4}
    build(work / "layered", CFG, *demo_inputs, workers=1, progress=False, depth_options=options)
    build(work / "per", dataclasses.replace(CFG, depth_layers=None), *demo_inputs, workers=1, progress=False,
          depth_options=options)
    return work / "layered", work / "per", model


def test_both_modes_are_compared_region_by_region(built: tuple[Path, Path, Path]) -> None:
    layered, per, model = built
    a = compare_layers(str(layered), {"model": str(model)}, samples=36)
    b = compare_layers(str(per), {"model": str(model)}, samples=36)
    assert a.stored and not b.stored
    for c in (a, b):
        assert (c.samples, c.backgrounds) == (36, 3)
        assert c.outside.pixels + c.inside.pixels == 36 * 32 * 32 and c.inside.pixels > 0
        # the tiny model's output is the red channel: outside the people both modes see the same
        # background (stored PNG vs the composite's JPEG round trip), inside they do not
        assert c.outside.correlation > 0.9 > c.inside.correlation
        assert c.outside.mean_levels < c.inside.mean_levels
        assert c.composite_rate > 0 and c.layered_rate > 0 and c.background_seconds > 0
    # predictions made now from the stored backgrounds equal the stored ones: the same numbers
    assert (a.outside, a.inside) == (b.outside, b.inside)
    text = format_comparison(a, "DS").splitlines()
    assert text[0] == ("fgbg compare DS: 36 samples on 3 backgrounds, layered maps (from the dataset's stored "
                       "predictions) against per-composite inference of the same model")
    assert text[1].startswith("outside people") and text[2].startswith("inside people")
    assert np.isfinite(a.outside.within_16)


def test_cli(built: tuple[Path, Path, Path], tmp_path: Path, demo_inputs: tuple[Path, Path],
             capsys: pytest.CaptureFixture[str]) -> None:
    layered, _, model = built
    assert main(["compare", str(layered), "--depth-model", str(model), "--samples", "8"]) == 0
    assert "8 samples on" in capsys.readouterr().out
    assert main(["compare", str(layered), "--depth-model", str(model), "--samples", "0"]) == 2
    assert capsys.readouterr().err == "fgbg: error: --samples must be >= 1, got 0\n"
    other = first_channel_model(tmp_path / "other.onnx", 64, batch=2)
    assert main(["compare", str(layered), "--depth-model", str(other)]) == 2
    assert "the model given is not the one this dataset was built with" in capsys.readouterr().err
    build(tmp_path / "plane", BuildConfig(size=64, fg_size=(28, 20), placements=1), *demo_inputs, workers=1,
          progress=False)
    assert main(["compare", str(tmp_path / "plane")]) == 2
    assert "built with --depth plane; compare needs a dataset built with a learned model" in capsys.readouterr().err
