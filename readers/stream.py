"""Streaming reads for training: shuffled, split across nodes and loader workers, resumable.

The order of an epoch is *planned* before anything is read, from ``(seed, epoch)`` alone:

1. the shards are permuted and their samples concatenated: the epoch sequence ``S``;
2. ``S`` is cut into one contiguous slice per rank, then per loader worker -- at sample
   granularity, so there are never idle consumers when shards are few, and each consumer
   reads a few contiguous runs (seeks straight to its first sample via the offset index);
3. each consumer's slice goes through a shuffle buffer of ``buffer`` samples, simulated on
   sample indices (a seeded RNG per consumer), which fixes the exact output order.

Reading then follows the plan: runs are streamed sequentially into a cache of undecoded
members that never holds more than ``buffer + 1`` samples, and each sample is decoded when it
is yielded. Because the plan is a pure function, a state dict of a few numbers
(``epoch``, ``yielded``) restores the exact remaining sequence: the plan says which samples
sat in the buffer at that point (re-read by random access) and where sequential reading
resumes. Nothing is kept across epochs, so memory stays flat.

Equal counts per rank (DDP hangs otherwise): ``partial="pad"`` (default) tops up the
ranks that are one short with samples from the start of the epoch, marked
``sample["padding"] = True``; ``"drop"`` drops the ``N mod world`` last samples of the
epoch order (different ones each epoch); ``"uneven"`` keeps exactly-once with counts that
may differ by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DatasetError, ShardReadError
from .formats import Member

if TYPE_CHECKING:
    from .dataset import Dataset

__all__ = ["PARTIAL_POLICIES", "Plan", "Stream", "StreamSpec", "consumer_plan", "worker_context"]

PARTIAL_POLICIES = ("pad", "drop", "uneven")
STATE_VERSION = 1


def _rng(*words: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([w & (2**63 - 1) for w in words])))


@dataclass(frozen=True)
class StreamSpec:
    """Everything that determines a consumer's sequence (and must match on resume)."""

    shuffle: bool = False
    seed: int = 0
    epoch: int = 0
    rank: int = 0
    world: int = 1
    worker: int = 0
    workers: int = 1
    buffer: int = 2000
    partial: str = "pad"

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank must be in 0..world-1, got rank={self.rank} world={self.world}")
        if not 0 <= self.worker < self.workers:
            raise ValueError(f"worker must be in 0..workers-1, got worker={self.worker} workers={self.workers}")
        if self.partial not in PARTIAL_POLICIES:
            raise ValueError(f"partial must be one of {', '.join(PARTIAL_POLICIES)}, got {self.partial!r}")
        if self.buffer < 1:
            raise ValueError(f"buffer must be >= 1, got {self.buffer}")


@dataclass(frozen=True)
class Plan:
    """One consumer's epoch: input sequence (global indices), padding flags, output order."""

    inputs: np.ndarray  # global sample indices in reading order
    padding: np.ndarray  # bool per input: a top-up duplicate (partial="pad")
    order: np.ndarray  # output k is inputs[order[k]]
    reads: np.ndarray  # inputs read before output k can be yielded

    def __len__(self) -> int:
        return len(self.order)


def epoch_sequence(firsts: list[int], counts: list[int], shuffle: bool, seed: int, epoch: int,
                   lo: int = 0, hi: int | None = None) -> np.ndarray:
    """Sample indices ``lo..hi-1`` of an epoch's reading order (shards permuted when shuffling;
    default: all of them). Only that slice is made: at 100M samples the whole order is 800 MB
    in every consumer, the slice of one of 512 consumers 1.6 MB."""
    shard_order = _rng(seed, epoch, 0x5EED).permutation(len(counts)) if shuffle else np.arange(len(counts))
    sizes = np.asarray(counts, np.int64)[shard_order]
    ends = np.cumsum(sizes)
    if hi is None:
        hi = int(ends[-1]) if len(ends) else 0
    if hi <= lo:
        return np.zeros(0, np.int64)
    parts = []
    for k in range(int(np.searchsorted(ends, lo, side="right")), len(shard_order)):
        start = int(ends[k] - sizes[k])
        if start >= hi:
            break
        s = int(shard_order[k])
        a, b = max(lo, start) - start, min(hi, int(ends[k])) - start
        parts.append(np.arange(firsts[s] + a, firsts[s] + b, dtype=np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _split(n: int, parts: int, i: int) -> tuple[int, int]:
    """The i-th of ``parts`` contiguous, near-equal slices of ``range(n)``."""
    q, r = divmod(n, parts)
    start = i * q + min(i, r)
    return start, start + q + (1 if i < r else 0)


def buffer_order(n: int, buffer: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Simulate a shuffle buffer on positions 0..n-1: output order and reads before each output."""
    order = np.empty(n, np.int64)
    reads = np.empty(n, np.int64)
    if n == 0:
        return order, reads
    b = min(buffer, n)
    picks = rng.integers(0, b, size=max(0, n - b))
    buf = list(range(b))
    k = 0
    for p in range(b, n):  # buffer full: each new input evicts a random buffered one
        j = int(picks[p - b])
        order[k], reads[k] = buf[j], p + 1
        buf[j] = p
        k += 1
    rest = np.array(buf, np.int64)[rng.permutation(len(buf))]
    order[k:] = rest
    reads[k:] = n
    return order, reads


def consumer_plan(firsts: list[int], counts: list[int], spec: StreamSpec) -> Plan:
    """The plan of the consumer (rank, worker) of ``spec``; see the module docstring."""
    def seq(lo: int, hi: int) -> np.ndarray:
        return epoch_sequence(firsts, counts, spec.shuffle, spec.seed, spec.epoch, lo, hi)

    n = int(sum(counts))
    if spec.partial == "drop":
        per_rank = n // spec.world
        lo, hi = spec.rank * per_rank, (spec.rank + 1) * per_rank
        rank_inputs, pad = seq(lo, hi), 0
    else:
        lo, hi = _split(n, spec.world, spec.rank)
        rank_inputs = seq(lo, hi)
        pad = (-(-n // spec.world) - (hi - lo)) if spec.partial == "pad" else 0
    padding = np.zeros(len(rank_inputs) + pad, bool)
    if pad:  # a different top-up sample for each short rank
        rank_inputs = np.concatenate([rank_inputs, seq(spec.rank, spec.rank + pad)])
        padding[-pad:] = True
    wlo, whi = _split(len(rank_inputs), spec.workers, spec.worker)
    inputs, padding = rank_inputs[wlo:whi], padding[wlo:whi]
    if spec.shuffle:
        rng = _rng(spec.seed, spec.epoch, spec.rank, spec.world, spec.worker, spec.workers, 0xB0F)
        order, reads = buffer_order(len(inputs), spec.buffer, rng)
    else:
        order = np.arange(len(inputs), dtype=np.int64)
        reads = order + 1
    return Plan(inputs, padding, order, reads)


def worker_context() -> tuple[int, int]:
    """(worker id, number of workers) inside a PyTorch DataLoader worker, else (0, 1)."""
    import sys

    torch_data = sys.modules.get("torch.utils.data")
    if torch_data is not None:
        info = torch_data.get_worker_info()
        if info is not None:
            return int(info.id), int(info.num_workers)
    return 0, 1


class Stream:
    """An iterator over one consumer's samples for one epoch, with ``state_dict()``."""

    def __init__(self, ds: Dataset, spec: StreamSpec, resume: dict[str, Any] | None = None,
                 transform: Any = None):
        self.ds = ds
        self.spec = spec
        self.transform = transform
        self.firsts = np.asarray(ds._firsts, dtype=np.int64)
        self.plan = consumer_plan(ds._firsts, [s.count for s in ds.shards], spec)
        self.yielded = 0
        if resume is not None:
            self.yielded = self._check_resume(resume)

    def _check_resume(self, state: dict[str, Any]) -> int:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"resume state has version {state.get('version')}, expected {STATE_VERSION}")
        mine = asdict(self.spec)
        diffs = [f"{k}: {state.get(k)} != {v}" for k, v in mine.items() if state.get(k) != v]
        if state.get("samples") != len(self.ds):
            diffs.append(f"samples: {state.get('samples')} != {len(self.ds)}")
        if diffs:
            raise ValueError(f"resume state belongs to another stream ({'; '.join(diffs)})")
        yielded = int(state["yielded"])
        if not 0 <= yielded <= len(self.plan):
            raise ValueError(f"resume state has yielded={yielded}, the stream has {len(self.plan)} samples")
        return yielded

    def __len__(self) -> int:
        return len(self.plan)

    def state_dict(self) -> dict[str, Any]:
        """A small JSON-able state: pass it as ``resume=`` to continue exactly here."""
        return {"version": STATE_VERSION, **asdict(self.spec), "samples": len(self.ds), "yielded": self.yielded}

    # -- reading ------------------------------------------------------------------------
    def _runs(self, start: int) -> Iterator[tuple[int, int, int, int]]:
        """(first input position, shard, local start, local stop) of sequential runs from ``start``."""
        inputs, firsts = self.plan.inputs, self.firsts
        i = start
        while i < len(inputs):
            g = int(inputs[i])
            s = int(np.searchsorted(firsts, g, side="right")) - 1
            end_of_shard = int(firsts[s]) + self.ds.shards[s].count
            j = i + 1
            while j < len(inputs) and int(inputs[j]) == int(inputs[j - 1]) + 1 and int(inputs[j]) < end_of_shard:
                j += 1
            lo = g - int(firsts[s])
            yield i, s, lo, lo + (j - i)
            i = j

    def _sequential(self, start: int) -> Iterator[tuple[int, dict[str, Member]]]:
        """Inputs from position ``start`` on, read run by run (remotely: fetched ahead in
        exactly this order, the plan being known)."""
        ahead = self.ds.read_ahead_for((s, lo, hi) for _, s, lo, hi in self._runs(start))
        try:
            for pos, s, lo, hi in self._runs(start):
                for k, (_key, members) in enumerate(self.ds.iter_members(s, lo, hi, ahead)):
                    yield pos + k, members
        finally:
            if ahead is not None:
                ahead.close()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        plan, ds = self.plan, self.ds
        c = self.yielded
        if c >= len(plan):
            return
        read = int(plan.reads[c - 1]) if c > 0 else 0
        firsts = self.firsts
        cache: dict[int, dict[str, Member]] = {}
        try:
            for p in plan.order[c:]:
                p = int(p)
                if p < read and p not in cache:  # was in the buffer when the state was saved
                    g = int(plan.inputs[p])
                    s = int(np.searchsorted(firsts, g, side="right")) - 1
                    cache[p] = ds._readers[s].read_members(g - int(firsts[s]), ds.read_fields)[1]
            source = self._sequential(read)
            for p in plan.order[c:]:
                p = int(p)
                while p not in cache:
                    got = next(source, None)
                    if got is None:  # the shards held fewer samples than the plan (readers check keys)
                        raise ShardReadError(f"{ds.root}: the shards ended before sample {int(plan.inputs[p])}")
                    cache[got[0]] = got[1]
                members = cache.pop(p)
                g = int(plan.inputs[p])
                s = int(np.searchsorted(firsts, g, side="right")) - 1
                sample = ds._decode(ds._readers[s], f"{g:0{ds.key_width}d}", members)
                if plan.padding[p]:
                    sample["padding"] = True
                self.yielded += 1
                yield self.transform(sample) if self.transform is not None else sample
        except DatasetError:
            raise
        except (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError, EOFError, MemoryError) as e:
            raise ShardReadError(f"{ds.root}: unreadable ({type(e).__name__}: {e})") from None
