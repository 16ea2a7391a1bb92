import json
from pathlib import Path

import pytest

from fgbg.builder.cli import main


def test_demo_build_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["build", "--demo", "--demo-bg", "2", "--demo-fg", "2", "--placements", "3",
                 "--out", str(out), "--no-progress"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("fgbg: 24 samples in 1 shards (1 built, 0 already done)") and str(out) in line
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "samples   24 = 2 bg x 2 fg x 2 flips x 3 placements" in text
    assert "inputs_bg" in text and "depth     plane 112x112" in text
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["samples"] == 24
    # resume with no inputs given: reuses inputs/ and rebuilds nothing
    assert main(["build", "--out", str(out), "--no-progress"]) == 0
    assert "(0 built, 1 already done)" in capsys.readouterr().out


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--out", str(tmp_path / "x"), "--bg", str(tmp_path / "missing"), "--fg", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgbg: error: ") and "missing does not exist" in err and "Traceback" not in err
    assert main(["build", "--out", str(tmp_path / "y")]) == 2
    assert "no dataset here to resume; give --bg and --fg" in capsys.readouterr().err
    assert main(["build", "--demo", "--out", str(tmp_path / "z"), "--fg-size", "100by70"]) == 2
    assert "--fg-size: expected WIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["info", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_demo_inputs_command(tmp_path: Path) -> None:
    assert main(["demo-inputs", "--out", str(tmp_path), "--bg", "2", "--fg", "1"]) == 0
    assert len(list((tmp_path / "bg").iterdir())) == 2 and len(list((tmp_path / "fg").iterdir())) == 1


def test_progress_bar_on_request(tmp_path: Path, demo_inputs: tuple[Path, Path],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from fgbg.builder import BuildConfig, build

    build(tmp_path / "p", BuildConfig(placements=1, shard_size=4), *demo_inputs, progress=True, workers=1)
    err = capsys.readouterr().err
    assert "fgbg build" in err and "18/18" in err and "sample/s" in err
