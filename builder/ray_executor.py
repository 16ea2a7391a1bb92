"""Distributed builds on Ray: shards as Ray tasks, DenseDepth in Ray actors.

Nothing here schedules, queues or retries by hand: each shard is a Ray task (retried by
Ray if its worker dies, ``max_retries``), tasks write straight to the dataset's store
under the same commit protocol as local builds (temp -> final name -> receipt), so a dead
worker costs only its unfinished shard and a rerun resumes. Every Ray worker process
keeps one :class:`ShardBuilder` per dataset (inputs loaded once per process, not per
shard). With ``--depth densedepth`` the model lives in Ray actors -- one per GPU of the
cluster (``num_gpus=1``), or one CPU actor when there is none -- that hold it once and are
fed batches by the CPU tasks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from fgbg.readers.extras import require
from fgbg.readers.schema import DepthSource

from .build import Runner
from .depth import DepthBackend, DepthBatch, make_backend
from .inputs import load_inputs
from .receipts import Receipt
from .record import BuildRecord
from .shard import ShardBuilder, calibration_images, depth_settings
from .storage import Store

__all__ = ["RemoteDepth", "ray_runner"]

TASK_RETRIES = 3
_builders: dict[str, ShardBuilder] = {}  # per Ray worker process: dataset fingerprint -> builder
#: where the last run's depth actors landed: (node id, GPU ids Ray gave the actor), one per actor
last_placement: list[tuple[str, tuple[str, ...]]] = []


class DepthServer:
    """The depth model inside a Ray actor (created with ``ray.remote(num_gpus=...)``)."""

    def __init__(self, name: str, out_size: tuple[int, int], options: dict[str, Any]):
        backend = make_backend(name, out_size, **options)
        assert backend is not None
        self.backend: DepthBackend = backend

    def predict(self, images: np.ndarray, masks: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self.backend.predict(DepthBatch(images, masks, boxes))

    def describe(self) -> DepthSource:
        return self.backend.describe()

    def placement(self) -> tuple[str, tuple[str, ...]]:
        """The node this actor runs on and the GPU ids Ray assigned it (CUDA_VISIBLE_DEVICES)."""
        import ray

        context = ray.get_runtime_context()
        return context.get_node_id(), tuple(str(g) for g in context.get_accelerator_ids().get("GPU", []))


class RemoteDepth(DepthBackend):
    """A depth backend whose model runs in a Ray actor."""

    name = "remote"

    def __init__(self, actor: Any, out_size: tuple[int, int], needs_pixels: bool):
        super().__init__(out_size)
        self.actor = actor
        self.needs_pixels = needs_pixels

    def predict(self, batch: DepthBatch) -> np.ndarray:
        import ray

        result: np.ndarray = ray.get(self.actor.predict.remote(batch.images, batch.masks, batch.boxes))
        return result

    def describe(self) -> DepthSource:
        import ray

        desc: DepthSource = ray.get(self.actor.describe.remote())
        return desc


def _ensure(store: Store, record: BuildRecord, depth_options: dict[str, Any], actors: list[Any],
            shard: int) -> list[tuple[Receipt, bool]]:
    builder = _builders.get(record.fingerprint)
    if builder is None:
        backend = None
        if actors:
            backend = RemoteDepth(actors[os.getpid() % len(actors)], record.build_config.depth_shape,
                                  needs_pixels=True)
        builder = ShardBuilder(store, record, depth_options, backend=backend)
        _builders.clear()
        _builders[record.fingerprint] = builder
    return builder.ensure(shard)


def ray_runner(store: Store, record: BuildRecord, depth_options: dict[str, Any], workers: int | None,
               address: str | None) -> Runner:
    """A runner that builds shards as Ray tasks on the cluster at ``address`` (or a local one)."""
    require("ray", "ray", "--executor ray")  # before anything is written: the missing extra is named

    def run(shards: list[int]) -> Iterator[list[tuple[Receipt, bool]]]:
        import ray

        started = False
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            if address:
                ray.init(address=address, log_to_driver=False)
            else:  # a local instance on this machine only, on the loopback interface
                ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                         _node_ip_address="127.0.0.1")
            started = True
        pending: list[Any] = []
        try:
            actors: list[Any] = []
            cfg = record.build_config
            if cfg.runtime is not None and not cfg.depth_layers:  # a learned model: one copy per GPU (or one CPU)
                gpus = int(ray.cluster_resources().get("GPU", 0))  # type: ignore[no-untyped-call]
                server = ray.remote(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1)(DepthServer)
                calibration = calibration_images(load_inputs(store, record.inputs), cfg)
                options = depth_settings(cfg, {**depth_options, "calibration": calibration})
                actors = [server.remote(cfg.depth, cfg.depth_shape, options) for _ in range(max(1, gpus))]
                last_placement[:] = ray.get([a.placement.remote() for a in actors])
            task: Any = ray.remote(max_retries=TASK_RETRIES)(_ensure)
            store_ref, record_ref, options_ref = ray.put(store), ray.put(record), ray.put(depth_options)
            pending = [task.remote(store_ref, record_ref, options_ref, actors, s) for s in shards]
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield ray.get(done[0])
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()

    return run
