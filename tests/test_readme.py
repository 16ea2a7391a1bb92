"""The documentation's recipes, run as written: each ``<!-- recipe: NAME -->`` block of README.md
and of the guide pages under docs/, on a demo dataset, plus checks on what it produced, so
neither the README nor the guide can drift from what fgbg writes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_RECIPE = re.compile(r"<!-- recipe: ([\w-]+) -->\n```(python|bash)\n(.*?)```", re.S)
# where recipes may live: the README and the guide's pages (docs/hooks/ holds the site's code)
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if "hooks" not in p.parts)]
FOUND = [(page, name, lang, code) for page in PAGES for name, lang, code in _RECIPE.findall(page.read_text())]
RECIPES = {name: (lang, code) for _page, name, lang, code in FOUND}


def test_docs_have_the_recipes() -> None:
    names = [name for _page, name, _lang, _code in FOUND]
    assert len(names) == len(set(names)), f"a recipe name is used twice: {sorted(names)}"
    assert set(RECIPES) == {"tour", "pytorch", "webdataset", "datasets", "lightning", "pandas", "h5dump",
                            "own-images"}
    readme = {name for page, name, _lang, _code in FOUND if page.name == "README.md" and page.parent == ROOT}
    assert readme == {"tour", "pytorch"}  # the front door keeps few examples; the rest live in docs/


def test_readme_command_2_is_what_ci_runs() -> None:
    """The README's test command (command 2) is the line .ci/run runs, byte for byte."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    command_2 = block.split("# 2. ", 1)[1].split("\n", 1)[1].strip()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert command_2 == ci


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``demo_dataset`` as README command 1 makes it."""
    root = tmp_path_factory.mktemp("readme")
    r = subprocess.run([sys.executable, "-m", "fgbg.builder", "build", "--demo", "--out", "demo_dataset",
                        "--no-progress"], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return root


def _env(work: Path) -> dict[str, str]:
    env = dict(os.environ, HF_HOME=str(work / "hf"), PYTHONPATH="")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # fgbg, python: this venv's
    return env


def _python(work: Path, name: str, check: str, *, module: str | None = None) -> str:
    """Run recipe ``name`` followed by ``check`` (or, with ``module``, save the recipe as that
    module and run ``check`` alone, which imports it)."""
    code = RECIPES[name][1]
    if module:
        (work / f"{module}.py").write_text(code)
        script = check
    else:
        script = code + "\n# --- test checks ---\n" + check
    path = work / f"run_{name}.py"
    path.write_text(script)
    r = subprocess.run([sys.executable, str(path)], cwd=work, capture_output=True, text=True, env=_env(work),
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def _bash(work: Path, name: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", RECIPES[name][1]], cwd=work, capture_output=True, text=True,
                       env=env or _env(work), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_tour_recipe(work: Path) -> None:
    out = _bash(work, "tour").stdout
    assert "2560" in out.replace(",", "") and out.strip().endswith(": OK"), out


def test_pytorch_recipe(work: Path) -> None:
    pytest.importorskip("torch")
    _python(work, "pytorch", """
import torch
assert tuple(batch["image"].shape) == (32, 224, 224, 3) and batch["image"].dtype == torch.uint8
assert tuple(batch["mask"].shape) == (32, 224, 224) and tuple(batch["depth"].shape) == (32, 112, 112)
assert batch["index"].shape == (32,) and not batch["padding"].any()
assert len(set(batch["index"].tolist())) == 32
""")


def test_webdataset_recipe(work: Path) -> None:
    _python(work, "webdataset", """
import numpy as np
from fgbg.readers import open_dataset
ours = open_dataset("demo_dataset")
assert tuple(images.shape) == (16, 224, 224, 3) and tuple(masks.shape) == (16, 224, 224)
assert tuple(depths.shape) == (16, 112, 112) and indices.tolist() == list(range(16))
for k in range(16):
    sample = ours[k]
    assert np.array_equal(np.asarray(masks[k]), sample["mask"])
    assert np.array_equal(np.asarray(depths[k]), sample["depth"])
    assert np.abs(np.asarray(images[k]).astype(int) - sample["image"]).max() <= 1  # PIL and OpenCV decode the JPEG
""")


def test_datasets_recipe(work: Path) -> None:
    _python(work, "datasets", """
import numpy as np
from fgbg.readers import open_dataset
ours = open_dataset("demo_dataset")
assert hf.num_rows == len(ours) == 2560 and row["__key__"] == "00000000"
assert (image.mode, mask.mode, depth.mode) == ("RGB", "L", "L") and meta == ours[0]["meta"]
assert np.array_equal(np.asarray(mask), ours[0]["mask"]) and np.array_equal(np.asarray(depth), ours[0]["depth"])
""")


def test_pandas_recipe(work: Path) -> None:
    _python(work, "pandas", """
assert index.key[0] == "00000000" and index.key[2559] == "00002559" and len(index) == 2560
assert per_background.tolist() == [320] * 8
""")


def test_lightning_recipe_under_ddp(work: Path) -> None:
    """The DataModule in a real 2-process DDP run (gloo on 127.0.0.1): per epoch, the ranks
    together see every sample exactly once, in equal counts, in a new order each epoch."""
    pytest.importorskip("lightning")
    _python(work, "lightning", """
import json, sys
import lightning as L
import torch
from recipe_lightning import FgbgDataModule


class Probe(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen = {}

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(self.current_epoch, []).extend(
            [int(i), bool(p)] for i, p in zip(batch["index"], batch["padding"]))
        x = batch["mask"].float().mean(dim=(1, 2), keepdim=False).unsqueeze(1) / 255
        return self.layer(x).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def on_train_end(self):
        with open(f"seen_{self.global_rank}.json", "w") as f:
            json.dump(self.seen, f)


if __name__ == "__main__":
    trainer = L.Trainer(accelerator="cpu", strategy="ddp", devices=2, max_epochs=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        reload_dataloaders_every_n_epochs=1)
    trainer.fit(Probe(), datamodule=FgbgDataModule("demo_dataset", batch_size=64, num_workers=1))
""", module="recipe_lightning")
    seen = [json.loads((work / f"seen_{rank}.json").read_text()) for rank in (0, 1)]
    orders = []
    for epoch in ("0", "1"):
        per_rank = [[i for i, padding in s[epoch] if not padding] for s in seen]
        assert len(seen[0][epoch]) == len(seen[1][epoch]) == 1280  # equal counts: no DDP hang
        assert sorted(per_rank[0] + per_rank[1]) == list(range(2560))  # exactly once across ranks
        orders.append(per_rank[0])
    assert orders[0] != orders[1]  # set_epoch took effect


def test_h5dump_recipe(work: Path) -> None:
    if shutil.which("h5dump") is None:
        pytest.skip("needs h5dump (Debian's hdf5-tools; .ci/run installs it)")
    out = _bash(work, "h5dump").stdout
    values = re.search(r"DATA \{(.*?)\}", out, re.S)
    assert values and re.search(r"\(0,120,10\d\): \d", values.group(1)), out  # mask pixels printed
    bare = subprocess.run(["h5dump", "-d", "/mask", "-s", "0,120,100", "-c", "1,1,8", "demo_raw/shards/000000.h5"],
                          cwd=work, capture_output=True, text=True,
                          env={k: v for k, v in _env(work).items() if k != "HDF5_PLUGIN_PATH"})
    assert not re.search(r"\(0,120,10\d\): \d", bare.stdout)  # the recipe's warning holds: no filter, no data


def test_own_images_recipe(work: Path) -> None:
    out = _bash(work, "own-images").stdout
    assert "fgbg: 48 samples in 3 shards" in out and out.strip().endswith(": OK")
    assert (work / "my_preview.png").read_bytes() == (work / "my_dataset" / "preview.png").read_bytes()
