"""tools/train_example.py: a few steps of the worked training example on a tiny dataset --
the loss falls, each epoch streams exactly the training split (no validation background),
and a run stopped mid-epoch resumes to the same split, each sample once."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from fgbg.builder import BuildConfig, build
from fgbg.readers import open_dataset

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_example", ROOT / "tools" / "train_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_example"] = module  # DataLoader workers unpickle its classes by module name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("train") / "ds"
    build(out, BuildConfig(placements=4, shard_size=24), *demo_inputs, progress=False, workers=1)  # 72 samples
    return out


def _split(dataset: Path, held: set[int]) -> set[int]:
    return {int(s["key"]) for s in open_dataset(dataset, fields=("meta",)) if s["meta"]["bg"]["index"] not in held}


def test_loss_falls_and_each_epoch_is_the_training_split(dataset: Path, tmp_path: Path) -> None:
    ex = _example()
    cfg = ex.TrainConfig(str(dataset), tmp_path / "run", epochs=3, batch=8, workers=2, lr=5e-3, val_every=3)
    summary = ex.train(cfg)
    held = set(summary["validation_backgrounds"])
    assert held == {2}
    train = _split(dataset, held)
    assert len(train) == 48
    for epoch in range(3):
        got = [i for e, i in summary["seen"] if e == epoch]
        assert sorted(got) == sorted(train), epoch  # every training sample once, no validation sample
    log = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert log["last"]["val_samples"] == 24 and 0 <= log["last"]["iou"] <= 1
    state = ex._torch().load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    losses = [r["loss"] for r in state["log"] if "loss" in r]
    assert 18 <= len(losses) <= 21  # 48 samples in batches of 8 per worker (each worker's last one partial)
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3])
    for name in ("loss.png", "predictions.png"):
        assert (tmp_path / "run" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_mid_epoch(dataset: Path, tmp_path: Path) -> None:
    ex = _example()
    run = tmp_path / "run"
    first = ex.train(ex.TrainConfig(str(dataset), run, epochs=1, batch=4, workers=2, val_every=3, stop_after=5))
    assert first["stopped"] and len(first["seen"]) == 20  # 5 steps of 4, from both workers
    rest = ex.train(ex.TrainConfig(str(dataset), run, epochs=1, batch=4, workers=2, val_every=3, resume=True))
    got = [i for _, i in rest["seen"]]  # the checkpoint's samples, then the resumed ones
    assert sorted(got) == sorted(_split(dataset, {2}))  # each training sample exactly once
