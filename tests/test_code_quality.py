"""The project's own static checks: ruff (lint) and mypy --strict (types), as configured in pyproject."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean() -> None:
    if shutil.which("ruff") is None and not Path(sys.executable).with_name("ruff").exists():
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    exe = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    r = subprocess.run([exe, "check", "builder", "readers", "tools", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_clean(tmp_path: Path) -> None:
    """mypy --strict on the package as installed: ``fgbg.builder`` and ``fgbg.readers``.

    The source folders are ``builder/`` and ``readers/``; the editable install maps them to
    ``fgbg.*`` with an import hook that mypy cannot follow, and checking the folders under their
    own names would turn every ``fgbg.readers`` import in ``builder`` into an unchecked ``Any``.
    So mypy reads a tree of links that spells the installed layout.
    """
    pytest.importorskip("mypy")
    (tmp_path / "fgbg").mkdir()
    for name in ("builder", "readers"):
        (tmp_path / "fgbg" / name).symlink_to(ROOT / name, target_is_directory=True)
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                        "--cache-dir", str(tmp_path / ".mypy_cache"), "-p", "fgbg.builder", "-p", "fgbg.readers"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no issues found in" in r.stdout and "source files" in r.stdout, r.stdout
