"""Optional dependencies: a missing one is named with the extra that installs it."""

import importlib
import sys
from pathlib import Path

import pytest

from fgbg.builder import BuildConfig, build
from fgbg.builder.cli import main
from fgbg.readers import open_dataset
from fgbg.readers.extras import MissingExtra, require


def test_require_names_the_extra() -> None:
    assert require("json", "x", "y").__name__ == "json"
    with pytest.raises(MissingExtra, match=r'^frobnicate\(\) needs fgbg_no_such_module, which is not installed: '
                                           r'pip install "fgbg\[torch\]"$'):
        require("fgbg_no_such_module", "torch", "frobnicate()")


def test_an_import_error_inside_an_installed_package_is_not_hidden(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fgbg_broken_pkg.py").write_text("import fgbg_missing_inner_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        require("fgbg_broken_pkg", "torch", "x")
    assert not isinstance(info.value, MissingExtra) and info.value.name == "fgbg_missing_inner_dependency"


def test_torch_and_tf_adapters_name_their_extra(tmp_path: Path, demo_inputs: tuple[Path, Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    build(tmp_path / "ds", BuildConfig(placements=1, shard_size=8), *demo_inputs, workers=1, progress=False)
    ds = open_dataset(str(tmp_path / "ds"))
    monkeypatch.setitem(sys.modules, "torch", None)  # what an install without torch looks like to import
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(MissingExtra, match=r'torch_dataset\(\) needs torch.*pip install "fgbg\[torch\]"'):
        ds.torch_dataset()
    with pytest.raises(MissingExtra, match=r'tf_dataset\(\) needs tensorflow.*pip install "fgbg\[tensorflow\]"'):
        ds.tf_dataset(batch_size=2)


def test_cli_names_the_extra_in_one_line(tmp_path: Path, demo_inputs: tuple[Path, Path],
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["build", "--bg", str(demo_inputs[0]), "--fg", str(demo_inputs[1]), "--out", str(tmp_path / "r"),
                 "--placements", "1", "--executor", "ray", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == 'fgbg: error: --executor ray needs ray, which is not installed: pip install "fgbg[ray]"\n'
    assert not (tmp_path / "r").exists()  # refused before anything was created
    monkeypatch.setitem(sys.modules, "s3fs", None)
    registry = importlib.import_module("fsspec.registry")._registry  # (fsspec.registry: also a read-only view)
    for protocol in ("s3", "s3a"):  # an earlier test in this process registered s3fs's class: forget it
        monkeypatch.delitem(registry, protocol, raising=False)
    assert main(["info", "s3://bucket/ds"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgbg: error: s3:// URLs need a package that is not installed") and \
        err.endswith('pip install "fgbg[s3]"\n')
