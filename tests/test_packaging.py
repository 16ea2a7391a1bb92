"""The distribution as a user gets it: a wheel that installs one top-level name, ``fgbg``, and
works from any directory in a fresh virtual environment (CI installs editable, which alone
would never notice a subpackage missing from the wheel)."""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel`` of a copy of the project's source (offline: the build backend is the dev
    install's setuptools, so the test needs no network and leaves no build/ in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    for package in ("builder", "readers"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(out), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return next(out.glob("fgbg-*.whl"))


def test_wheel_holds_fgbg_alone_and_every_module(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"fgbg", f"fgbg-{VERSION}.dist-info"}
    wanted = {f"fgbg/{p.relative_to(ROOT).as_posix()}" for d in ("builder", "readers")
              for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts}
    assert len(wanted) > 50 and wanted <= set(names), sorted(wanted - set(names))
    extras = {"fgbg/builder/py.typed", "fgbg/readers/py.typed", f"fgbg-{VERSION}.dist-info/licenses/LICENSE"}
    assert extras <= set(names)
    assert not any(n.startswith("fgbg/__init__") for n in names)  # fgbg is a namespace: builder + readers
    entry_points = zipfile.ZipFile(wheel).read(f"fgbg-{VERSION}.dist-info/entry_points.txt").decode()
    assert "fgbg = fgbg.builder.cli:main" in entry_points


def test_fresh_venv_builds_verifies_and_reads(wheel: Path, tmp_path: Path) -> None:
    """The wheel in a new venv, used from a directory outside the checkout.

    The venv's dependencies (numpy, OpenCV, h5py...) come from this test environment through a
    ``.pth`` line, so no network is needed; fgbg itself comes only from the wheel (the dev
    install's editable hook is a ``.pth`` *in* that folder, which Python does not run when the
    folder is reached through another ``.pth``).
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                           text=True).strip())
    (purelib / "deps_from_test_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
                        str(wheel)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()

    def run(*args: str) -> str:
        p = subprocess.run(list(args), cwd=work, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout

    fgbg = str(venv / "bin" / "fgbg")
    assert run(fgbg, "--version").strip() == f"fgbg {VERSION}"
    assert "fgbg: 16 samples in 1 shard (1 built" in run(fgbg, "build", "--demo", "--demo-bg", "2", "--demo-fg", "2",
                                                            "--placements", "2", "--out", "ds", "--no-progress")
    assert run(fgbg, "verify", "ds").strip().endswith(": OK")
    probe = ("import json, fgbg.builder, fgbg.readers\n"
             "from fgbg.readers import DatasetError, open_dataset\n"
             "ds = open_dataset('ds')\n"
             "s = ds[15]\n"
             "print(json.dumps({'len': len(ds), 'shape': list(s['image'].shape), 'key': s['key'],\n"
             "                  'files': [fgbg.builder.__file__, fgbg.readers.__file__]}))\n")
    out = json.loads(run(str(py), "-c", probe))
    assert out["len"] == 16 and out["shape"] == [224, 224, 3] and out["key"] == "00000015"
    assert all(Path(f).is_relative_to(purelib / "fgbg") for f in out["files"]), out["files"]
    for generic in ("builder", "readers"):  # nothing but fgbg in site-packages
        p = subprocess.run([str(py), "-c", f"import {generic}"], cwd=work, capture_output=True, text=True)
        assert p.returncode == 1 and f"No module named '{generic}'" in p.stderr
