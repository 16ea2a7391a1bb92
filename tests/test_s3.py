"""Datasets on S3: a real endpoint (moto_server on 127.0.0.1), built, resumed, cut, read back."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from helpers import kill_when, reference_snapshot, snapshot, start_fgbg
from s3server import MotoServer, Proxy, s3_env

from fgbg.builder import BuildConfig, build
from fgbg.builder.commands.repair import repair
from fgbg.builder.commands.verify import verify
from fgbg.builder.errors import LockedError
from fgbg.builder.storage import LOCK_NAME, ObjectLock, ObjectStore
from fgbg.readers import open_dataset

CFG = BuildConfig(placements=4, shard_size=6)  # 72 samples, 12 shards
pytestmark = pytest.mark.xdist_group("s3")


def options(url: str) -> dict[str, Any]:
    return {"client_kwargs": {"endpoint_url": url},
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2, "read_timeout": 10}}


def cli_options(url: str) -> list[str]:
    return ["--storage-option", f"client_kwargs.endpoint_url={url}",
            "--storage-option", "config_kwargs.retries.max_attempts=1",
            "--storage-option", "config_kwargs.connect_timeout=2"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> dict[str, str]:
    return reference_snapshot(tmp_path_factory.mktemp("ref") / "ds", CFG, demo_inputs)


def s3_snapshot(url: str, endpoint: str) -> dict[str, str]:
    store = ObjectStore(url, options(endpoint))
    prefix = store.fs._strip_protocol(url).rstrip("/") + "/"
    store.fs.invalidate_cache()  # the fs instance is shared with the builders that wrote meanwhile
    out = {}
    for key in store.fs.find(url, refresh=True):
        rel = key[len(prefix):]
        if rel != LOCK_NAME:
            out[rel] = hashlib.sha256(store.fs.cat_file(key)).hexdigest()
    return out


def _receipts(url: str, endpoint: str) -> int:
    store = ObjectStore(url, options(endpoint))
    return sum(1 for name in store.listdir("shards") if name.endswith(".json"))


def test_build_read_and_resume_on_s3(moto: MotoServer, bucket: str, reference: dict[str, str],
                                     demo_inputs: tuple[Path, Path]) -> None:
    url = f"s3://{bucket}/ds"
    res = build(url, CFG, *demo_inputs, progress=False, storage_options=options(moto.url))
    assert res.built == 12 and res.url == url
    assert s3_snapshot(url, moto.url) == reference  # byte-identical to a local build
    ds = open_dataset(url, storage_options=options(moto.url))
    local_keys = sorted(k for k in reference if k.endswith(".tar"))
    assert len(ds.shards) == len(local_keys)
    streamed = [s["meta"]["index"] for s in ds.stream(shuffle=True, seed=0, buffer=10)]
    assert sorted(streamed) == list(range(72))
    assert ds[40]["key"] == "00000040"
    again = build(url, CFG, *demo_inputs, progress=False, storage_options=options(moto.url))
    assert (again.built, again.reused) == (0, 12)
    report = verify(url, deep=True, storage_options=options(moto.url))
    assert report.ok and report.samples == 72, report.text()
    store = ObjectStore(url, options(moto.url))
    data = bytearray(store.read_bytes("shards/000003.tar"))
    data[2000] ^= 0xFF
    store.write_atomic("shards/000003.tar", bytes(data))
    assert {(p.where, p.what) for p in verify(url, storage_options=options(moto.url)).problems} >= {
        ("shards/000003.tar", "sha256 differs from the manifest (bytes changed)")}
    _, fixed, after = repair(url, storage_options=options(moto.url), progress=False)
    assert fixed.built == 1 and after.ok and s3_snapshot(url, moto.url) == reference


def _start_cli(url: str, endpoint: str, inputs: tuple[Path, Path], extra_env: dict[str, str]) -> subprocess.Popen[str]:
    return start_fgbg(["build", "--bg", str(inputs[0]), "--fg", str(inputs[1]), "--out", url, "--placements", "4",
                       "--shard-size", "6", "--workers", "2", "--no-progress", *cli_options(endpoint)],
                      env={**os.environ, **s3_env(), **extra_env}, capture=True)


def test_resume_after_builder_killed(moto: MotoServer, bucket: str, reference: dict[str, str],
                                     demo_inputs: tuple[Path, Path]) -> None:
    url = f"s3://{bucket}/ds"
    kill_when(_start_cli(url, moto.url, demo_inputs, {}), lambda: _receipts(url, moto.url) >= 3, poll=0.02)
    store = ObjectStore(url, options(moto.url))
    assert store.exists(LOCK_NAME)  # the dead builder's lease is still there...
    res = build(url, CFG, *demo_inputs, progress=False, storage_options=options(moto.url))
    assert res.reused >= 3  # ...and is taken over: its holder is a dead process on this host
    assert s3_snapshot(url, moto.url) == reference


def test_endpoint_cut_mid_upload_then_resume(moto: MotoServer, bucket: str, reference: dict[str, str],
                                             demo_inputs: tuple[Path, Path]) -> None:
    proxy = Proxy(moto.port)
    url = f"s3://{bucket}/ds"
    proc = _start_cli(url, proxy.url, demo_inputs, {"FGBG_RETRIES": "2"})
    deadline = time.monotonic() + 60
    while _receipts(url, moto.url) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proxy.cut()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert err.startswith("fgbg: error: ") and "failed after 2 tries" in err and url in err, err
    store = ObjectStore(url, options(moto.url))
    for name in store.listdir("shards"):  # nothing that looks done but is not
        if name.endswith(".json"):
            rec = json.loads(store.read_bytes(f"shards/{name}"))
            assert store.sha256(rec["name"]) == rec["sha256"]
    proxy.start()
    res = build(url, CFG, *demo_inputs, progress=False, storage_options=options(proxy.url))
    assert res.built + res.reused == 12
    assert s3_snapshot(url, moto.url) == reference
    proxy.cut()


def test_second_builder_refused_and_stale_lease_taken_over(moto: MotoServer, bucket: str,
                                                           demo_inputs: tuple[Path, Path]) -> None:
    url = f"s3://{bucket}/ds"
    store = ObjectStore(url, options(moto.url))
    with ObjectLock(store), pytest.raises(LockedError, match=rf"{url}: another fgbg builder .*pid {os.getpid()}"):
        build(url, CFG, *demo_inputs, progress=False, storage_options=options(moto.url))
    assert not store.exists(LOCK_NAME)  # released on exit
    dead = {"owner": "x", "host": "elsewhere", "pid": 1, "expires": time.time() - 5}
    store.write_atomic(LOCK_NAME, json.dumps(dead).encode())  # an expired lease of another host
    assert build(url, CFG, *demo_inputs, progress=False, storage_options=options(moto.url)).built == 12
    alive = {"owner": "y", "host": socket.gethostname() + "-other", "pid": 1, "expires": time.time() + 100}
    store.write_atomic(LOCK_NAME, json.dumps(alive).encode())
    with pytest.raises(LockedError, match="lease until"):
        build(url, CFG, *demo_inputs, progress=False, storage_options=options(moto.url))


def test_inputs_from_s3(moto: MotoServer, bucket: str, reference: dict[str, str], tmp_path: Path,
                        demo_inputs: tuple[Path, Path]) -> None:
    store = ObjectStore(f"s3://{bucket}", options(moto.url))
    for kind, folder in zip(("bg", "fg"), demo_inputs, strict=True):
        for p in folder.iterdir():
            store.write_atomic(f"in/{kind}/{p.name}", p.read_bytes())
    out = tmp_path / "ds"
    build(out, CFG, f"s3://{bucket}/in/bg", f"s3://{bucket}/in/fg", progress=False,
          storage_options=options(moto.url))
    assert snapshot(out) == reference


def test_get_many_fetches_a_batch_in_one_round_trip(moto: MotoServer, bucket: str, tmp_path: Path,
                                                     demo_inputs: tuple[Path, Path]) -> None:
    """A random batch over several shards: every range it needs is in flight at once (the
    proxy sees them all waiting together), not one GET after another; the samples are the
    local ones, in the asked order, repeats included."""
    from netem import NetEm

    url = f"s3://{bucket}/ds"
    build(url, CFG, *demo_inputs, progress=False, storage_options=options(moto.url), workers=1)
    build(tmp_path / "local", CFG, *demo_inputs, progress=False, workers=1)
    want = open_dataset(tmp_path / "local")
    batch = [70, 3, 41, 3, 12, 66, 13]  # shards 11, 0, 6, 2, 11: neighbours coalesce into 4 ranges
    with NetEm(moto.port, delay=0.05) as proxy:
        ds = open_dataset(url, storage_options=options(proxy.url))
        ds.get_many(batch)  # the receipts of these shards are read (once per shard)
        proxy.reset_counts()
        got = ds.get_many(batch)
        ranges = sum(len(ds._readers[s].plan_many([g - 6 * s for g in batch if g // 6 == s])) for s in (0, 2, 6, 11))
        assert ranges == 4
        assert [line.split()[0] for line in proxy.log] == ["GET"] * ranges
        assert proxy.peak == ranges
    assert [s["key"] for s in got] == [f"{i:08d}" for i in batch]
    assert all(np.array_equal(s["image"], want[i]["image"]) and s["meta"] == want[i]["meta"]
               for s, i in zip(got, batch, strict=True))
