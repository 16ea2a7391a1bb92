import argparse
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import fgbg.builder
from fgbg.builder.cli import _build_parser, main
from fgbg.builder.summary import human_bytes


def test_demo_build_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["build", "--demo", "--demo-bg", "2", "--demo-fg", "2", "--placements", "3",
                 "--out", str(out), "--no-progress"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("fgbg: 24 samples in 1 shard (1 built, 0 already done)") and str(out) in line
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


def _all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    parser = _build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [("fgbg", parser), *((f"fgbg {n}", p) for n, p in sub.choices.items())]


def test_version_is_the_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert capsys.readouterr().out.strip() == f"fgbg {pyproject['project']['version']}"
    assert importlib.metadata.version("fgbg") == pyproject["project"]["version"] == fgbg.builder.__version__


def test_every_option_has_help_and_shows_its_default() -> None:
    for name, parser in _all_parsers():
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) or action.dest in ("help", "version"):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest}: no help text"
            shown = action.default is not None and action.default is not False
            if action.option_strings and shown:
                # argparse wraps long lines: compare with whitespace collapsed
                assert f"(default: {action.default})" in " ".join(text.split()), (name, action.option_strings)
    build_help = dict(_all_parsers())["fgbg build"].format_help()
    assert "(default: 20)" in build_help and "(default: 0)" in build_help  # --placements; --seed and threshold 0
    assert "what is required when:" in build_help and "--out alone" in build_help


def test_bg_without_fg_is_refused(tmp_path: Path, demo_inputs: tuple[Path, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--out", str(tmp_path / "x"), "--bg", str(demo_inputs[0])]) == 2
    assert "--bg and --fg go together" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_sizes_use_one_unit_convention(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["build", "--demo", "--demo-bg", "2", "--demo-fg", "2", "--placements", "3",
                 "--out", str(out), "--no-progress"]) == 0
    build_line = capsys.readouterr().out
    size = sum(f.stat().st_size for f in (out / "shards").glob("*.tar"))
    assert f", {human_bytes(size)}, " in build_line and human_bytes(size).endswith(" KiB")
    assert main(["info", str(out)]) == 0
    assert f"{human_bytes(size)}" in capsys.readouterr().out
    assert [human_bytes(n) for n in (0, 1023, 1024, 38_168_166, 5 * 2**40)] == [
        "0 B", "1023 B", "1.0 KiB", "36.4 MiB", "5.0 TiB"]


def test_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """``fgbg info DATASET | head -1``: the reader is gone before fgbg writes; no traceback."""
    out = tmp_path / "demo"
    assert main(["build", "--demo", "--demo-bg", "2", "--demo-fg", "2", "--placements", "3",
                 "--out", str(out), "--no-progress"]) == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: the first write fails with EPIPE
    try:
        r = subprocess.run([sys.executable, "-m", "fgbg.builder", "info", str(out), "--json"], stdout=write_end,
                           stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert r.returncode == 128 + signal.SIGPIPE and r.stderr == "", r.stderr
