import argparse
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
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
    assert "compose" not in text and "index     annotations.csv" in text  # a default build: no options
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["samples"] == 24
    # resume with no inputs given: reuses inputs/ and rebuilds nothing
    assert main(["build", "--out", str(out), "--no-progress"]) == 0
    assert "(0 built, 1 already done)" in capsys.readouterr().out
    crowd = tmp_path / "crowd"
    assert main(["build", "--demo", "--demo-bg", "2", "--demo-fg", "2", "--placements", "1", "--out", str(crowd),
                 "--no-progress", "--people", "2-3", "--position", "floor", "--index", "parquet",
                 "--format", "tarzst"]) == 0
    capsys.readouterr()
    assert main(["info", str(crowd)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("fgbg dataset v3") and "shards    1 tarzst" in text
    assert "compose   people 2-3 (hidden at most 50%), on the floor, 1.5-1.9 m tall" in text
    assert "index     annotations.parquet" in text


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


@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root and a kernel that allow mounting), else the test is skipped."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_is_one_line_and_resumable(tiny_disk: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tiny_disk / "ds"
    assert main(["build", "--demo", "--demo-bg", "3", "--demo-fg", "3", "--placements", "4", "--shard-size", "20",
                 "--out", str(out), "--no-progress", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgbg: error: ") and err.count("\n") == 1 and "No space left on device" in err
    assert "rerun the same command to resume" in err and "Traceback" not in err
    # what was committed is intact: the same build elsewhere gives the same bytes for every finished shard
    done = sorted(p.name for p in (out / "shards").glob("*.tar.json"))
    ref = tmp_path / "ref"
    assert main(["build", "--demo", "--demo-bg", "3", "--demo-fg", "3", "--placements", "4", "--shard-size", "20",
                 "--out", str(ref), "--no-progress", "--workers", "1"]) == 0
    for name in done:
        shard = name.removesuffix(".json")
        assert (out / "shards" / shard).read_bytes() == (ref / "shards" / shard).read_bytes()


def test_name_too_long_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-inputs", "--out", str(tmp_path / ("x" * 300)), "--bg", "1", "--fg", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgbg: error: ") and "File name too long" in err and "Traceback" not in err


def test_sigterm_releases_the_lock_and_the_rerun_resumes(tmp_path: Path) -> None:
    from helpers import snapshot, start_fgbg

    out = tmp_path / "ds"
    args = ["build", "--demo", "--demo-bg", "4", "--demo-fg", "4", "--placements", "10", "--shard-size", "40",
            "--out", str(out), "--no-progress", "--workers", "1"]
    proc = start_fgbg(args, capture=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and len(list(out.glob("shards/*.tar.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "fgbg: terminated (SIGTERM); rerun the same command to resume" in err and "Traceback" not in err
    assert (out / ".fgbg.lock").read_bytes() == b""  # released: no stale pid left in it
    assert main(args) == 0
    ref = tmp_path / "ref"
    assert main([*args[:-5], "--out", str(ref), "--no-progress", "--workers", "1"]) == 0
    assert snapshot(out) == snapshot(ref)


def test_lock_through_a_symlink_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    assert main(["build", "--demo", "--demo-bg", "2", "--demo-fg", "2", "--placements", "1", "--out", str(out),
                 "--no-progress"]) == 0
    precious = tmp_path / "precious.txt"
    precious.write_text("do not truncate me")
    (out / ".fgbg.lock").unlink()
    (out / ".fgbg.lock").symlink_to(precious)
    for args in (["build", "--out", str(out), "--no-progress"], ["repair", str(out), "--no-progress"]):
        assert main(args) == 2
        assert "is a symbolic link" in capsys.readouterr().err
    assert precious.read_text() == "do not truncate me"


def test_undecodable_input_name_leaves_nothing(tmp_path: Path, demo_inputs: tuple[Path, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bg = tmp_path / "bg"
    shutil.copytree(demo_inputs[0], bg)
    os.rename(bg / sorted(os.listdir(bg))[0], os.fsencode(bg) + b"/caf\xe9.jpg")
    assert main(["build", "--bg", str(bg), "--fg", str(demo_inputs[1]), "--out", str(tmp_path / "new"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "caf\\xe9.jpg': file name is not valid UTF-8" in err and not (tmp_path / "new").exists()
