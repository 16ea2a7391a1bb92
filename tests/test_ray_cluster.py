"""Builds on a real multi-node Ray cluster (Ray's own ``cluster_utils.Cluster``: a head and two
worker nodes on 127.0.0.1, each its own raylet with its own resources) whose nodes share
nothing but the dataset's object storage (moto_server on 127.0.0.1)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("s3fs")
pytest.importorskip("moto")

from helpers import snapshot  # noqa: E402
from s3server import MotoServer, apply_env  # noqa: E402
from test_s3 import options, s3_snapshot  # noqa: E402

from fgbg.builder import BuildConfig, build  # noqa: E402

pytestmark = pytest.mark.xdist_group("ray")

CFG = BuildConfig(placements=4, shard_size=6)  # 72 samples in 12 shards
SLOW = BuildConfig(size=448, fg_size=(200, 140), placements=20, shard_size=30)  # 360 samples in 12 shards


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    apply_env()  # before the nodes start: their workers inherit the (dummy) credentials
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(moto: MotoServer) -> Iterator[Any]:
    """A head with no CPUs (the driver's node only coordinates) and two worker nodes with one
    CPU and one declared GPU each: every shard task and model actor runs on a worker node."""
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Everything on the loopback interface: Ray otherwise swaps 127.0.0.1 in an address for the
    # machine's outward IP, which this sandbox does not route back (its own switch for clusters
    # on laptops; set for the node processes and read here by the driver)
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    was = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                      "node_ip_address": "127.0.0.1"})
    for k in range(2):
        c.add_node(num_cpus=1, num_gpus=1, resources={f"worker{k}": 1}, node_ip_address="127.0.0.1")
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield c
    ray.shutdown()
    c.shutdown()
    ray_constants.ENABLE_RAY_CLUSTER = was
    del os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]


def _bucket(moto: MotoServer, name: str) -> str:
    import boto3

    boto3.client("s3", endpoint_url=moto.url).create_bucket(Bucket=name)
    return f"s3://{name}/ds"


def _worker_nodes(c: Any) -> set[str]:
    return {n.node_id for n in c.worker_nodes}


def test_multi_node_build_is_byte_identical(cluster: Any, moto: MotoServer, tmp_path: Path,
                                            demo_inputs: tuple[Path, Path]) -> None:
    url = _bucket(moto, "cluster-a")
    res = build(url, CFG, *demo_inputs, progress=False, executor="ray", storage_options=options(moto.url))
    assert (res.built, res.reused) == (12, 0)
    build(tmp_path / "local", CFG, *demo_inputs, progress=False, workers=1)
    assert s3_snapshot(url, moto.url) == snapshot(tmp_path / "local")


def test_depth_actors_one_per_gpu_across_nodes(cluster: Any, moto: MotoServer, tmp_path: Path,
                                              demo_inputs: tuple[Path, Path]) -> None:
    """A learned model (a tiny ONNX one) gets one actor per declared GPU, each on its own worker
    node, fed by shard tasks; the bytes equal a local build's."""
    pytest.importorskip("onnx")
    from test_onnx_depth import first_channel_model

    from fgbg.builder import ray_executor

    model = first_channel_model(tmp_path / "m.onnx", 32)  # every node reads it at the same path here
    cfg = BuildConfig(size=64, fg_size=(20, 14), placements=1, flips=1, shard_size=3, depth="onnx",
                      depth_preset="midas-v21-small", depth_input=(32, 32))
    url = _bucket(moto, "cluster-b")
    res = build(url, cfg, *demo_inputs, progress=False, executor="ray", storage_options=options(moto.url),
                depth_options={"model": str(model)})
    placement = list(ray_executor.last_placement)
    assert res.built == 3 and len(placement) == 2
    assert {node for node, _ in placement} == _worker_nodes(cluster)  # one actor on each worker node
    assert all(len(gpus) == 1 for _, gpus in placement)
    build(tmp_path / "local", cfg, *demo_inputs, progress=False, workers=1, depth_options={"model": str(model)})
    assert s3_snapshot(url, moto.url) == snapshot(tmp_path / "local")


def test_a_node_lost_mid_build_costs_only_its_shards(cluster: Any, moto: MotoServer, tmp_path: Path,
                                                      demo_inputs: tuple[Path, Path]) -> None:
    """A worker node removed while it builds shards: Ray retries its tasks on the node left, and
    the dataset is byte-identical to a local build (a rerun would resume from the receipts)."""
    url = _bucket(moto, "cluster-c")
    store_options = options(moto.url)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            build(url, SLOW, *demo_inputs, progress=False, executor="ray", storage_options=store_options)
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    victim = max(cluster.worker_nodes, key=lambda n: n.node_id)
    removed = False
    deadline = time.monotonic() + 180
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **store_options)  # its listings are this loop's own
    while thread.is_alive() and not removed and time.monotonic() < deadline:
        fs.invalidate_cache()
        done = [k for k in fs.find(url.removeprefix("s3://") + "/shards") if k.endswith(".json")] if fs.exists(
            url.removeprefix("s3://") + "/shards") else []
        if len(done) >= 3:
            cluster.remove_node(victim)  # the node's raylet and workers go away mid-task
            removed = True
        time.sleep(0.05)
    thread.join(timeout=300)
    cluster.add_node(num_cpus=1, num_gpus=1, resources={"worker1": 1}, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    assert removed, "the build ended before a node could be removed"
    assert not errors, errors
    build(tmp_path / "local", SLOW, *demo_inputs, progress=False, workers=1)
    assert s3_snapshot(url, moto.url) == snapshot(tmp_path / "local")
