"""A worked training example: from an fgbg dataset to a model that, given a background and
the same scene with people in it, predicts the people's mask and the scene's depth (the seeds'
task). PyTorch on CPU; ``pip install -e ".[torch]"``.

    python tools/train_example.py DATASET --out runs/demo [--epochs 4] [--workers 2] [--resume]

What it shows, each piece as a user would write it:
- samples streamed by ``torch_dataset``-style workers (``Dataset.stream``: every sample of the
  training split exactly once per epoch, split across DataLoader workers), the background read
  as a field, every input normalised with the dataset's exact statistics;
- a validation split **by background** (no background in both), mask IoU and depth error
  per epoch;
- a loss curve and a grid of predictions saved as PNG, a checkpoint after every epoch and on
  ``--stop-after``, and a resume in the middle of an epoch from each worker's stream state.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["TrainConfig", "train"]

SIDE = 112  # the depth maps' stored size: the model runs there


@dataclass
class TrainConfig:
    dataset: str
    out: Path
    epochs: int = 4
    batch: int = 16
    workers: int = 2
    lr: float = 2e-3
    seed: int = 0
    val_every: int = 5  # backgrounds with index % val_every == val_every - 1 are the validation split
    stop_after: int | None = None  # steps, then checkpoint and stop (a resume test, or a time limit)
    resume: bool = False
    log: list[dict[str, float]] = field(default_factory=list)


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        sys.exit('train_example: PyTorch is not installed: pip install -e ".[torch]"')
    return torch


def validation_backgrounds(n_bg: int, every: int) -> set[int]:
    """Every ``every``-th background (at least one): none of them is ever trained on."""
    held = {b for b in range(n_bg) if b % every == every - 1}
    return held or {n_bg - 1}


def make_stream_dataset(url: str, held: set[int], train: bool, seed: int, resume: dict[int, int] | None = None) -> Any:
    """An IterableDataset of (background, composite) -> (mask, depth) tensors: each DataLoader
    worker streams its share of the dataset (``Dataset.stream``), keeps the samples of its split
    and tags each with its worker and stream position, so a checkpoint can say where every
    worker was."""
    torch = _torch()
    from fgbg.readers import open_dataset
    from fgbg.readers.stream import worker_context

    class SplitStream(torch.utils.data.IterableDataset):  # type: ignore[misc]
        def __init__(self) -> None:
            self.epoch = 0
            self.resume = resume or {}

        def __iter__(self) -> Any:
            ds = open_dataset(url, fields=("image", "background", "mask", "depth", "meta"))
            worker, workers = worker_context()
            kwargs = dict(shuffle=train, seed=seed, epoch=self.epoch, worker=worker, workers=workers,
                          partial="uneven", normalize=True, resize=(SIDE, SIDE))
            stream = ds.stream(**kwargs)
            if worker in self.resume:
                stream = ds.stream(**kwargs, resume={**stream.state_dict(), "yielded": self.resume[worker]})
            for s in stream:
                if (s["meta"]["bg"]["index"] in held) != (not train):
                    continue
                x = np.concatenate([s["background"], s["image"]], axis=2).transpose(2, 0, 1)
                yield {"x": torch.from_numpy(np.ascontiguousarray(x)),
                       "mask": torch.from_numpy(s["mask"][None]),
                       "depth": torch.from_numpy(np.ascontiguousarray(s["depth"][None])),
                       "index": int(s["key"]), "worker": worker, "yielded": stream.state_dict()["yielded"]}

    return SplitStream()


def make_model() -> Any:
    """A small encoder-decoder (≈0.1 M parameters): 6 channels in (background, composite), 2
    out (mask logit, normalised depth), skip connections at each scale."""
    torch = _torch()
    nn = torch.nn

    def block(cin: int, cout: int, stride: int = 1) -> Any:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class Net(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.e1, self.e2, self.e3 = block(6, 16), block(16, 32, 2), block(32, 64, 2)
            self.d2, self.d1 = block(64 + 32, 32), block(32 + 16, 16)
            self.head = nn.Conv2d(16, 2, 1)
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

        def forward(self, x: Any) -> Any:
            a = self.e1(x)
            b = self.e2(a)
            c = self.e3(b)
            d = self.d2(torch.cat([self.up(c), b], 1))
            return self.head(self.d1(torch.cat([self.up(d), a], 1)))

    return Net()


def _loss(torch: Any, out: Any, batch: dict[str, Any]) -> Any:
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out[:, :1], batch["mask"])
    return bce + torch.nn.functional.l1_loss(out[:, 1:], batch["depth"])


def evaluate(torch: Any, model: Any, loader: Any, depth_std: float) -> dict[str, float]:
    """Mask IoU (threshold 0.5) over the split and mean absolute depth error in 8-bit levels."""
    model.eval()
    inter = union = 0.0
    err, n = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            out = model(batch["x"])
            pred, true = out[:, :1] > 0, batch["mask"] > 0.5
            inter += float((pred & true).sum())
            union += float((pred | true).sum())
            err += float((out[:, 1:] - batch["depth"]).abs().mean(dim=(1, 2, 3)).sum()) * depth_std * 255
            n += len(batch["x"])
    model.train()
    return {"iou": inter / max(union, 1.0), "depth_mae_levels": err / max(n, 1), "val_samples": n}


def _save_curve(path: Path, log: list[dict[str, float]]) -> None:
    """The training loss per step as a PNG (OpenCV lines: no plotting library needed)."""
    h, w, pad = 240, 480, 20
    img = np.full((h, w, 3), 255, np.uint8)
    losses = np.array([r["loss"] for r in log if "loss" in r], np.float64)
    if len(losses) > 1:
        lo, hi = float(losses.min()), float(losses.max()) or 1.0
        xs = pad + np.arange(len(losses)) * (w - 2 * pad) / (len(losses) - 1)
        ys = h - pad - (losses - lo) / max(hi - lo, 1e-9) * (h - 2 * pad)
        cv2.polylines(img, [np.stack([xs, ys], 1).astype(np.int32)], False, (200, 60, 20), 2)
        cv2.putText(img, f"loss {hi:.3f} -> {losses[-1]:.3f}", (pad, pad), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1)
    cv2.imwrite(str(path), img)


def _save_grid(torch: Any, path: Path, model: Any, batch: dict[str, Any], stats: dict[str, Any]) -> None:
    """Rows: background, composite, true mask, predicted mask, true depth, predicted depth."""
    model.eval()
    with torch.no_grad():
        out = model(batch["x"][:4])
    model.train()

    def rgb(x: Any, name: str) -> np.ndarray:
        mean, std = np.array(stats[name]["mean"]), np.array(stats[name]["std"])
        return np.clip((x.numpy().transpose(1, 2, 0) * std + mean) * 255, 0, 255).astype(np.uint8)

    def grey(x: Any) -> np.ndarray:
        return np.repeat(np.clip(x.numpy()[0] * 255, 0, 255).astype(np.uint8)[..., None], 3, 2)

    d_mean, d_std = stats["depth"]["mean"][0], stats["depth"]["std"][0]
    rows = []
    for k in range(len(out)):
        rows.append(np.concatenate([
            rgb(batch["x"][k, :3], "inputs_bg"), rgb(batch["x"][k, 3:], "image"), grey(batch["mask"][k]),
            grey(torch.sigmoid(out[k, :1])), grey(batch["depth"][k] * d_std + d_mean),
            grey(out[k, 1:] * d_std + d_mean)], axis=1))
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) and return the run's summary (also written as ``summary.json``)."""
    torch = _torch()
    from fgbg.readers import open_dataset

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(1)  # the loader workers have the other cores
    cfg.out.mkdir(parents=True, exist_ok=True)
    ds = open_dataset(cfg.dataset, fields=("meta",))
    stats = ds.manifest["statistics"]
    held = validation_backgrounds(len(ds.metadata.inputs["bg"]), cfg.val_every)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start_epoch, resume_at, log, seen = 0, None, [], []
    ckpt = cfg.out / "checkpoint.pt"
    if cfg.resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, resume_at, log, seen = state["epoch"], state["workers"], state["log"], state["seen"]
    val_loader = torch.utils.data.DataLoader(make_stream_dataset(cfg.dataset, held, False, cfg.seed),
                                             batch_size=cfg.batch, num_workers=cfg.workers)
    step = len([r for r in log if "loss" in r])
    for epoch in range(start_epoch, cfg.epochs):
        data = make_stream_dataset(cfg.dataset, held, True, cfg.seed, resume_at)
        data.epoch = epoch
        loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch, num_workers=cfg.workers)
        positions = dict(resume_at or {})
        resume_at = None
        t_wait = t_step = 0.0
        n = 0
        t0 = time.perf_counter()
        for batch in loader:
            t1 = time.perf_counter()
            loss = _loss(torch, model(batch["x"]), batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            t2 = time.perf_counter()
            t_wait, t_step, t0 = t_wait + (t1 - t0), t_step + (t2 - t1), t2
            n += len(batch["x"])
            step += 1
            seen += [(epoch, int(i)) for i in batch["index"]]
            positions[int(batch["worker"][0])] = int(batch["yielded"].max())
            log.append({"epoch": epoch, "step": step, "loss": loss.item()})
            if cfg.stop_after is not None and step >= cfg.stop_after:
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                            "workers": positions, "log": log, "seen": seen}, ckpt)
                return {"stopped": True, "step": step, "seen": seen}
        metrics = evaluate(torch, model, val_loader, stats["depth"]["std"][0])
        log.append({"epoch": epoch, **metrics, "train_samples": n,
                    "loader_wait_s": t_wait, "step_s": t_step})
        print(f"epoch {epoch}: {n} training samples, loss {log[-2]['loss']:.3f}, val IoU {metrics['iou']:.3f}, "
              f"depth error {metrics['depth_mae_levels']:.1f} levels; waited {t_wait:.1f} s for data, "
              f"{t_step:.1f} s in steps", flush=True)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                    "workers": None, "log": log, "seen": seen}, ckpt)
    _save_curve(cfg.out / "loss.png", log)
    _save_grid(torch, cfg.out / "predictions.png", model, next(iter(val_loader)), stats)
    summary = {"epochs": cfg.epochs, "steps": step, "validation_backgrounds": sorted(held),
               "last": [r for r in log if "iou" in r][-1] if any("iou" in r for r in log) else None, "seen": seen}
    (cfg.out / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "seen"}, indent=1))
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--stop-after", type=int, default=None, help="stop (with a checkpoint) after this many steps")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt, mid-epoch included")
    a = ap.parse_args()
    train(TrainConfig(a.dataset, a.out, a.epochs, a.batch, a.workers, a.lr, stop_after=a.stop_after,
                      resume=a.resume))
    return 0


if __name__ == "__main__":
    sys.exit(main())
