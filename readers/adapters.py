"""Framework adapters: ``tf.data`` and PyTorch, both thin wrappers over :class:`Stream`.

Neither framework is a dependency of fgbg; each is imported only when its adapter is used.
Each yields dicts of arrays: ``image``, ``mask``, ``depth``, ``instances``, ``background``,
``foreground`` (those the dataset has and ``fields`` asks for), ``index`` (the sample's key as
an int) and ``padding`` (True for a rank's top-up duplicate under ``partial="pad"``, so a loss
can mask it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .extras import require
from .stream import worker_context

if TYPE_CHECKING:
    from .dataset import Dataset

__all__ = ["tf_dataset", "torch_dataset"]

_ARRAYS = ("image", "mask", "depth", "instances", "background", "foreground")


def _flatten(sample: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """The fields a training loop batches, picklable: with ``decode=False`` members come as
    memoryviews into the shard's read window, which a DataLoader worker cannot send back."""
    out = {f: bytes(v) if isinstance(v := sample[f], memoryview) else v for f in fields if f in _ARRAYS}
    out["index"] = np.int64(int(sample["key"]))
    out["padding"] = bool(sample.get("padding", False))
    return out


def _shape(ds: Dataset, field: str, resize: tuple[int, int] | None) -> tuple[int, ...]:
    if field == "foreground" and ds.foregrounds is not None:  # RGBA layers the composite's size
        layers = ds.foregrounds.shape()
        return layers if resize is None else (*layers[:-3], resize[1], resize[0], 4)
    spec = ds.metadata.fields["image" if field == "background" else field]  # type: ignore[index]  # stored at its size
    shape = tuple(spec.shape or ())
    if resize is not None:
        shape = (resize[1], resize[0], *shape[2:])
    return shape


def tf_dataset(ds: Dataset, batch_size: int, *, normalize: bool = True, shuffle: bool = True, seed: int = 0,
               epoch: int = 0, rank: int = 0, world: int = 1, input_context: Any = None, buffer: int = 2000,
               partial: str = "pad", resize: tuple[int, int] | None = None, drop_remainder: bool = False) -> Any:
    """A batched, prefetching ``tf.data.Dataset`` over one epoch of this rank's samples.

    With ``tf.distribute``, pass its ``InputContext``: the pipeline id and count become
    rank and world, so each input pipeline reads a disjoint share.
    """
    tf = require("tensorflow", "tensorflow", "tf_dataset()")

    if input_context is not None:
        rank, world = input_context.input_pipeline_id, input_context.num_input_pipelines
    fields = tuple(f for f in ds.fields if f in _ARRAYS)
    dtype = tf.float32 if normalize else tf.uint8
    signature = {f: tf.TensorSpec(_shape(ds, f, resize), dtype) for f in fields}
    signature["index"] = tf.TensorSpec((), tf.int64)
    signature["padding"] = tf.TensorSpec((), tf.bool)

    def generate() -> Any:
        stream = ds.stream(shuffle=shuffle, seed=seed, epoch=epoch, rank=rank, world=world, buffer=buffer,
                           partial=partial, worker=0, workers=1, normalize=normalize, resize=resize)
        for sample in stream:
            yield _flatten(sample, fields)

    data = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return data.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def torch_dataset(ds: Dataset, *, shuffle: bool = True, seed: int = 0, rank: int | None = None,
                  world: int | None = None, buffer: int = 2000, partial: str = "pad", normalize: bool = False,
                  resize: tuple[int, int] | None = None) -> Any:
    """A ``torch.utils.data.IterableDataset``: each DataLoader worker reads its own share.

    ``rank``/``world`` default to ``torch.distributed`` when it is initialised. Call
    ``set_epoch(e)`` before each epoch for a new order. ``len()`` is this rank's count.
    """
    torch = require("torch", "torch", "torch_dataset()")
    dist = torch.distributed

    the_rank, the_world = rank or 0, world or 1
    if (rank is None or world is None) and dist.is_available() and dist.is_initialized():
        the_rank, the_world = dist.get_rank(), dist.get_world_size()
    fields = tuple(f for f in ds.fields if f in _ARRAYS)

    iterable_dataset: Any = torch.utils.data.IterableDataset  # torch is optional: typed as a plain module here

    class FgbgIterableDataset(iterable_dataset):  # type: ignore[misc]
        def __init__(self) -> None:
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def _stream(self, worker: int, workers: int) -> Any:
            return ds.stream(shuffle=shuffle, seed=seed, epoch=self.epoch, rank=the_rank, world=the_world,
                             buffer=buffer,
                             partial=partial, worker=worker, workers=workers, normalize=normalize, resize=resize)

        def __len__(self) -> int:
            return len(self._stream(0, 1))

        def __iter__(self) -> Any:
            worker, workers = worker_context()
            for sample in self._stream(worker, workers):
                yield _flatten(sample, fields)

    return FgbgIterableDataset()
