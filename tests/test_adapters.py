"""tf.data and PyTorch DataLoader over fgbg streams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fgbg.builder import BuildConfig, build
from fgbg.readers import open_dataset

CFG = BuildConfig(placements=3, shard_size=20)  # 54 samples


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("adapt") / "ds"
    build(out, CFG, *demo_inputs, progress=False, workers=1)
    return out


@pytest.mark.xdist_group("densedepth")  # TensorFlow: on the worker that already runs it
def test_tf_dataset_reads_all_normalized(dataset: Path) -> None:
    pytest.importorskip("tensorflow")
    ds = open_dataset(dataset)
    batches = list(ds.tf_dataset(batch_size=16, normalize=True, shuffle=True, seed=0))
    assert [int(b["image"].shape[0]) for b in batches] == [16, 16, 16, 6]
    b = batches[0]
    assert b["image"].dtype.name == "float32" and tuple(b["image"].shape[1:]) == (224, 224, 3)
    assert tuple(b["mask"].shape[1:]) == (224, 224) and tuple(b["depth"].shape[1:]) == (112, 112)
    idx = np.concatenate([x["index"].numpy() for x in batches])
    assert sorted(idx.tolist()) == list(range(54))
    images = np.concatenate([x["image"].numpy() for x in batches]).reshape(-1, 3)
    assert np.abs(images.mean(0)).max() < 0.05 and np.abs(images.std(0) - 1).max() < 0.05  # standardised
    halves = [next(iter(ds.tf_dataset(batch_size=64, world=2, rank=r, shuffle=False))) for r in range(2)]
    assert sorted(np.concatenate([h["index"].numpy() for h in halves]).tolist()) == list(range(54))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_torch_dataloader_reads_each_sample_once(dataset: Path, num_workers: int) -> None:
    torch = pytest.importorskip("torch")
    ds = open_dataset(dataset)
    data = ds.torch_dataset(shuffle=True, seed=0, normalize=True)
    assert len(data) == 54
    loader = torch.utils.data.DataLoader(data, batch_size=8, num_workers=num_workers)
    idx = []
    for batch in loader:
        assert batch["image"].dtype == torch.float32 and tuple(batch["image"].shape[1:]) == (224, 224, 3)
        assert tuple(batch["mask"].shape[1:]) == (224, 224) and tuple(batch["depth"].shape[1:]) == (112, 112)
        idx += batch["index"].tolist()
    assert sorted(idx) == list(range(54))
    data.set_epoch(1)
    again = [i for b in torch.utils.data.DataLoader(data, batch_size=8, num_workers=num_workers)
             for i in b["index"].tolist()]
    assert sorted(again) == list(range(54)) and again != idx


def test_torch_ranks_equal_counts(dataset: Path) -> None:
    torch = pytest.importorskip("torch")
    ds = open_dataset(dataset, fields=("mask",))
    counts, seen = [], []
    for rank in range(4):
        data = ds.torch_dataset(rank=rank, world=4)
        got = [(int(i), bool(p)) for b in torch.utils.data.DataLoader(data, batch_size=5, num_workers=2)
               for i, p in zip(b["index"].tolist(), b["padding"].tolist(), strict=True)]
        counts.append(len(got))
        seen += [i for i, p in got if not p]
    assert counts == [14, 14, 14, 14] and sorted(seen) == list(range(54))


def _as_list(batch: list[dict[str, object]]) -> list[dict[str, object]]:
    return batch


@pytest.mark.parametrize("num_workers", [0, 2])
def test_map_style_dataloader_fetches_whole_batches(dataset: Path, num_workers: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A DataLoader over the dataset itself (map-style, shuffled batches) gets each batch from
    one get_many call (``__getitems__``), with the samples ds[i] gives."""
    torch = pytest.importorskip("torch")
    from fgbg.readers import Dataset

    calls: list[int] = []
    get_many = Dataset.get_many

    def counted(self: Dataset, indices: list[int]) -> list[dict[str, object]]:
        calls.append(len(indices))
        return get_many(self, indices)

    monkeypatch.setattr(Dataset, "get_many", counted)
    ds = open_dataset(dataset)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True, num_workers=num_workers,
                                         collate_fn=_as_list, generator=torch.Generator().manual_seed(0))
    keys = []
    reference = open_dataset(dataset)
    for batch in loader:
        for sample in batch:
            want = reference[int(sample["key"])]
            assert np.array_equal(sample["image"], want["image"]) and sample["meta"] == want["meta"]
            keys.append(int(sample["key"]))
    assert sorted(keys) == list(range(54)) and keys != sorted(keys)
    if num_workers == 0:  # (in worker processes the counter is theirs)
        assert calls == [8] * 6 + [6]


def test_undecoded_samples_cross_dataloader_workers(dataset: Path) -> None:
    """decode=False hands out the stored bytes; through DataLoader workers (which pickle each
    sample) they arrive as bytes, equal to the stored members -- streamed and map-style."""
    torch = pytest.importorskip("torch")
    ds = open_dataset(dataset, decode=False)
    stored = {int(s["key"]): bytes(s["image"]) for s in ds}
    streamed = torch.utils.data.DataLoader(ds.torch_dataset(shuffle=False), batch_size=None, num_workers=2)
    got = {int(s["index"]): s["image"] for s in streamed}
    assert got == stored and all(type(v) is bytes for v in got.values())
    mapped = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, collate_fn=_as_list)
    assert {int(s["key"]): s["image"] for b in mapped for s in b} == stored
