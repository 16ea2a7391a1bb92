"""The backgrounds' depth predictions as dataset inputs (``inputs/bg_depth/NNNN.npy``).

With ``--depth-layers`` every depth map is painted from its background's prediction, so the
predictions are inputs like the background images: stored losslessly, hashed in the build
record, checked whenever read. The format is NumPy ``.npy`` (format 1.0), float32, C order,
shape (h, w) = the stored depth size: the model's output at full precision (float32 is what
every runtime hands back, also for float16/bfloat16/int8 inference), readable with
``numpy.load`` and by nothing that could execute code (no pickle). Measured alternatives are
in docs/depth-layers.md: float16 ``.npy`` and 16-bit PNG are smaller but round the values,
which moves 8-bit map pixels; zstd saved little on float32 noise.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from typing import overload

import numpy as np

from fgbg.readers.schema import InputEntry

from ..errors import FgbgError
from ..lru import LRU
from ..storage import HashedInputs, Store

__all__ = ["DTYPE", "StoredPredictions", "decode_prediction", "depth_file", "encode_prediction"]

DTYPE = np.dtype("<f4")
_MAX_HEADER = 4096  # an .npy header of a 2-D float32 array is 128 bytes; anything longer is not ours


def depth_file(index: int) -> str:
    """The stored prediction of background ``index``, as the build record names it."""
    return f"inputs/bg_depth/{index:04d}.npy"


def encode_prediction(values: np.ndarray) -> bytes:
    """One background's prediction (h, w) as the bytes of its ``.npy`` file (float32)."""
    if values.ndim != 2:
        raise ValueError(f"a depth prediction is one (h, w) map, got shape {values.shape}")
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(values, DTYPE), version=(1, 0), allow_pickle=False)
    return buf.getvalue()


def decode_prediction(data: bytes, shape: tuple[int, int], where: str) -> np.ndarray:
    """``.npy`` bytes -> the (h, w) float32 map, refusing anything but exactly that: the
    header is read by NumPy's own parser (no pickle), and dtype, order, shape, size and
    finiteness are checked before the values are used. ``shape`` is (w, h), the depth size."""
    w, h = shape
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        if version != (1, 0):
            raise ValueError(f"npy format {version[0]}.{version[1]}, expected 1.0")
        dims, fortran, dtype = np.lib.format.read_array_header_1_0(buf, max_header_size=_MAX_HEADER)
    except ValueError as e:
        raise FgbgError(f"{where}: not a depth prediction (.npy: {e})") from None
    if dtype != DTYPE or fortran or dims != (h, w):
        raise FgbgError(f"{where}: holds a {dtype} array of shape {dims}{' (Fortran order)' if fortran else ''}; "
                        f"expected float32 of shape ({h}, {w})")
    body = data[buf.tell():]
    if len(body) != h * w * DTYPE.itemsize:
        raise FgbgError(f"{where}: holds {len(body)} bytes of values, expected {h * w * DTYPE.itemsize}")
    values = np.frombuffer(body, DTYPE).reshape(h, w)
    if not np.isfinite(values).all():
        raise FgbgError(f"{where}: holds values that are not finite")
    return values


class StoredPredictions(Sequence[np.ndarray]):
    """The stored predictions of a dataset's backgrounds, by background index: read on first
    use, checked against the build record's ``depth_sha256`` and decoded strictly, kept in a
    bounded LRU (a worker's memory does not grow with the number of backgrounds)."""

    def __init__(self, store: Store, records: Sequence[InputEntry], shape: tuple[int, int], capacity: int = 256,
                 fresh: bool = False):
        """``fresh``: read the stored objects themselves (verify); otherwise an object store may
        serve them from the host's verified local copy, all fetched at once on first use."""
        self.store = store
        self.records = records
        self.shape = shape
        self._files = HashedInputs(store, [(r.depth_file, r.depth_sha256) for r in records
                                           if r.depth_file is not None and r.depth_sha256 is not None], fresh)
        self._cache: LRU[int, np.ndarray] = LRU(capacity)

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, i: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, i: slice) -> list[np.ndarray]: ...

    def __getitem__(self, i: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return self._cache.get_or_make(i, lambda k: self._load(self.records[k]))

    def _load(self, rec: InputEntry) -> np.ndarray:
        rel, expected = rec.depth_file, rec.depth_sha256
        if rel is None or expected is None:
            raise FgbgError(f"{self.store.url}: background {rec.index} ({rec.name!r}) has no stored depth prediction "
                            "in the build record (--depth-layers needs one per background)")
        where = f"{self.store.url}/{rel}"
        try:
            data = self._files.read(rel, expected)
        except FileNotFoundError:
            raise FgbgError(f"{where}: stored depth prediction is missing") from None
        if hashlib.sha256(data).hexdigest() != expected:
            raise FgbgError(f"{where}: stored depth prediction does not match its recorded sha256")
        values = decode_prediction(data, self.shape, where)
        values.setflags(write=False)
        return values

    def check_all(self) -> None:
        """Read and check every prediction (verify): FgbgError naming the first bad file."""
        for i in range(len(self)):
            self[i]
