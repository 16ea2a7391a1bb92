"""Builds on a local Ray instance: same bytes as the local executor, and a killed worker survived."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import reference_snapshot, snapshot

from fgbg.builder import BuildConfig, build

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")
pytestmark = pytest.mark.xdist_group("ray")

CFG = BuildConfig(placements=4, shard_size=6)  # 72 samples in 12 shards
# larger composites: shards that take long enough for a worker to be caught mid-task
SLOW = BuildConfig(size=448, fg_size=(200, 140), placements=20, shard_size=30)  # 360 samples in 12 shards


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> dict[str, str]:
    return reference_snapshot(tmp_path_factory.mktemp("ref") / "ds", CFG, demo_inputs)


def test_ray_build_is_byte_identical(local_ray: None, reference: dict[str, str], tmp_path: Path,
                                     demo_inputs: tuple[Path, Path]) -> None:
    res = build(tmp_path / "ds", CFG, *demo_inputs, progress=False, executor="ray")
    assert (res.built, res.reused) == (12, 0)
    assert snapshot(tmp_path / "ds") == reference
    again = build(tmp_path / "ds", CFG, *demo_inputs, progress=False, executor="ray")
    assert (again.built, again.reused) == (0, 12)


def _task_workers() -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if cmd.startswith("ray::_ensure"):
            found.append(p)
    return found


def test_killed_ray_worker_is_survived(local_ray: None, tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    build(tmp_path / "ref", SLOW, *demo_inputs, progress=False, workers=1)
    reference = snapshot(tmp_path / "ref")
    out = tmp_path / "ds"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            build(out, SLOW, *demo_inputs, progress=False, executor="ray")
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    killed = 0
    deadline = time.monotonic() + 120
    while thread.is_alive() and not killed and time.monotonic() < deadline:
        receipts = list((out / "shards").glob("*.json")) if (out / "shards").is_dir() else []
        workers = _task_workers()
        if len(receipts) >= 4 and workers:
            os.kill(workers[0].pid, signal.SIGKILL)
            killed += 1
        time.sleep(0.005)
    thread.join(timeout=180)
    assert not errors, errors
    assert killed == 1, "no Ray worker was running a shard task to kill"
    assert snapshot(out) == reference


def test_densedepth_in_ray_actor_matches_local(local_ray: None, tmp_path: Path,
                                               demo_inputs: tuple[Path, Path]) -> None:
    """The model runs in a Ray actor fed by CPU tasks; the bytes equal a local build's."""
    pytest.importorskip("keras")
    from fgbg.builder.depth.densedepth.model import DecoderSpec
    from fgbg.builder.depth.densedepth.synthetic import make_random_weights

    weights = tmp_path / "w.h5"
    make_random_weights(weights, DecoderSpec.repository(), side=64, seed=4)
    cfg = BuildConfig(size=64, fg_size=(20, 14), placements=1, flips=1, shard_size=3, depth="densedepth")
    options = {"weights": str(weights)}
    res = build(tmp_path / "ray", cfg, *demo_inputs, progress=False, executor="ray", depth_options=options)
    build(tmp_path / "local", cfg, *demo_inputs, progress=False, workers=1, depth_options=options)
    assert res.built == 3 and res.manifest.depth.backend == "densedepth"
    assert snapshot(tmp_path / "ray") == snapshot(tmp_path / "local")


def test_depth_actors_one_per_declared_gpu(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    """On a machine declaring 2 GPUs (Ray's own resource accounting; no GPU needed), the model
    gets one actor per GPU, each on its own GPU id, fed by CPU tasks; bytes equal a local build's."""
    onnx = pytest.importorskip("onnx")
    from test_onnx_depth import first_channel_model

    from fgbg.builder import ray_executor

    assert onnx is not None
    model = first_channel_model(tmp_path / "m.onnx", 32)
    cfg = BuildConfig(size=64, fg_size=(20, 14), placements=1, flips=1, shard_size=3, depth="onnx",
                      depth_preset="midas-v21-small", depth_input=(32, 32))
    options = {"model": str(model)}
    was_running = ray.is_initialized()
    if was_running:
        ray.shutdown()  # this test needs its own instance, with GPUs declared
    temp = tempfile.mkdtemp(prefix="ray")  # short: Ray's socket paths must fit 107 bytes
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             _temp_dir=temp)
    try:
        res = build(tmp_path / "ray", cfg, *demo_inputs, progress=False, executor="ray", depth_options=options)
        placement = list(ray_executor.last_placement)
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    build(tmp_path / "local", cfg, *demo_inputs, progress=False, workers=1, depth_options=options)
    assert res.built == 3 and len(placement) == 2
    assert sorted(g for _, gpus in placement for g in gpus) == ["0", "1"]  # one GPU each, none shared
    assert snapshot(tmp_path / "ray") == snapshot(tmp_path / "local")
