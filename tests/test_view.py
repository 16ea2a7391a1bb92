"""``fgbg view``: the server's routes (status codes, JSON shapes, images that are the right
samples, filters, refused paths), on a local dataset and on S3 through moto, and the static export."""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from fgbg.builder import BuildConfig, build
from fgbg.builder.cli import main
from fgbg.builder.view import ViewData
from fgbg.builder.view.server import ViewServer
from fgbg.readers import open_dataset
from fgbg.readers.decode import decode_member
from fgbg.readers.index import read_index


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, demo_inputs: tuple[Path, Path]) -> Path:
    out = tmp_path_factory.mktemp("view") / "ds"
    build(out, BuildConfig(placements=3, shard_size=7), *demo_inputs, progress=False, workers=1)
    return out


def start(url: str, storage_options: dict[str, Any] | None = None) -> ViewServer:
    server = ViewServer(("127.0.0.1", 0), ViewData(url, storage_options=storage_options), storage_options)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def server(dataset: Path) -> Iterator[ViewServer]:
    s = start(str(dataset))
    yield s
    s.shutdown()
    s.server_close()


def get(server: ViewServer, path: str, method: str = "GET") -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(server.url + path.lstrip("/"), method=method)) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def get_json(server: ViewServer, path: str) -> Any:
    status, ctype, body = get(server, path)
    assert status == 200 and ctype == "application/json", (path, status, body[:200])
    return json.loads(body)


def test_pages_and_front_end(server: ViewServer) -> None:
    for path, ctype in (("/", "text/html"), ("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")):
        status, got, body = get(server, path)
        assert status == 200 and got.startswith(ctype) and body
    html = get(server, "/")[2].decode()
    assert "static/app.js" in html and "http" not in html.replace("http-equiv", "")  # nothing from elsewhere


def test_samples_pages_and_filters(server: ViewServer, dataset: Path) -> None:
    first = get_json(server, "/api/samples?page=0&per=10")
    assert first["total"] == 54 and first["pages"] == 6 and [it["index"] for it in first["items"]] == list(range(10))
    last = get_json(server, "/api/samples?page=5&per=10")
    assert [it["key"] for it in last["items"]] == [f"{i:08d}" for i in range(50, 54)]
    ds = open_dataset(dataset)
    meta = ds[51]["meta"]
    item = last["items"][1]
    assert item["bg"] == meta["bg"] and item["fg"] == meta["fg"] and item["flip"] == meta["flip"]
    index = read_index(ds.location, ds.metadata)
    for query, want in (("bg=1", index.select(bg=1)), ("fg=2&flip=1", index.select(fg=2, flip=1)),
                        ("placement=2&bg=0", index.select(placement=2, bg=0))):
        got = get_json(server, f"/api/samples?per=500&{query}")
        assert [it["index"] for it in got["items"]] == want.tolist() and got["total"] == len(want) > 0, query
        assert all(ds[it["index"]]["meta"]["bg"]["index"] == 1 for it in got["items"]) or "bg=1" not in query
    assert get_json(server, "/api/samples?bg=99")["total"] == 0


def test_sample_page_and_neighbours(server: ViewServer, dataset: Path) -> None:
    s = get_json(server, "/api/sample/7")
    meta = open_dataset(dataset)[7]["meta"]
    assert s["key"] == "00000007" and s["annotation"] == meta
    assert s["box"] == [meta["x"], meta["y"], meta["w"], meta["h"]]
    assert (s["prev"], s["next"], s["size"], s["depth"]) == (6, 8, [224, 224], True)
    bg = meta["bg"]["index"]
    within = get_json(server, f"/api/sample/7?bg={bg}")  # neighbours among the filtered samples
    same = [it["index"] for it in get_json(server, f"/api/samples?per=500&bg={bg}")["items"]]
    k = same.index(7)
    assert within["prev"] == (same[k - 1] if k else None)
    assert within["next"] == (same[k + 1] if k + 1 < len(same) else None)


def test_images_are_the_samples(server: ViewServer, dataset: Path) -> None:
    ds, raw = open_dataset(dataset), open_dataset(dataset, decode=False)
    for field, name in (("image", "image.jpg"), ("mask", "mask.png"), ("depth", "depth.png")):
        status, _, body = get(server, f"/img/sample/12/{name}")
        assert status == 200 and body == bytes(raw[12][field])  # the stored bytes, not a re-encode
    status, ctype, thumb = get(server, "/img/thumb/12.jpg?mode=plain")
    assert status == 200 and ctype == "image/jpeg"
    small = cv2.cvtColor(cv2.imdecode(np.frombuffer(thumb, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    want = cv2.resize(ds[12]["image"], (112, 112), interpolation=cv2.INTER_AREA).astype(int)
    assert small.shape == (112, 112, 3) and np.abs(small - want).mean() < 4  # sample 12, not another
    other = cv2.resize(ds[13]["image"], (112, 112), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(small - other).mean() > 3 * np.abs(small - want).mean()
    tinted = cv2.imdecode(np.frombuffer(get(server, "/img/thumb/12.jpg?mode=mask")[2], np.uint8), cv2.IMREAD_COLOR)
    change = cv2.cvtColor(tinted, cv2.COLOR_BGR2RGB).astype(int) - small
    inside = cv2.resize(ds[12]["mask"], (112, 112), interpolation=cv2.INTER_NEAREST) > 127
    assert inside.sum() > 100 and change[inside][:, 0].mean() > 20 and change[inside][:, 1].mean() < -20
    assert np.abs(change[cv2.erode(~inside * np.uint8(1), np.ones((5, 5))) > 0]).mean() < 3  # red where the person is
    colour = decode_member("image", get(server, "/img/sample/12/depth-colour.png")[2])
    levels = ds[12]["depth"]
    assert colour.shape == (*levels.shape, 3)
    dark, bright = np.unravel_index(levels.argmin(), levels.shape), np.unravel_index(levels.argmax(), levels.shape)
    assert colour[bright].sum() > colour[dark].sum()  # viridis: far (255) is bright yellow
    stored = ds.metadata.inputs["bg"][2]
    body = get(server, "/img/input/bg/2.png")[2]
    assert hashlib.sha256(body).hexdigest() == stored.file_sha256


def test_overview(server: ViewServer, dataset: Path) -> None:
    o = get_json(server, "/api/overview")
    ds = open_dataset(dataset)
    assert o["samples"] == 54 and o["shards"] == {"tar": 8} and o["fields"] == ["depth", "image", "mask", "meta"]
    assert o["statistics"] == ds.statistics and o["depth"]["backend"] == "plane" and o["config"]["placements"] == 3
    assert o["histograms"]["samples"] == 54 and sum(o["histograms"]["image"][0]) == 54 * 224 * 224
    assert sum(r["samples"] for r in o["per_input"]["bg"]) == 54 and len(o["per_input"]["fg"]) == len(o["inputs"]["fg"])
    assert o["verify"]["state"] == "idle"


def test_verify_from_the_page(server: ViewServer) -> None:
    status, _, body = get(server, "/api/verify", method="POST")
    assert status == 202 and json.loads(body)["state"] in ("running", "done")
    import time

    for _ in range(300):
        state = get_json(server, "/api/verify")
        if state["state"] != "running":
            break
        time.sleep(0.1)
    assert state["state"] == "done" and state["report"]["ok"] and state["report"]["samples_checked"] == 54


@pytest.mark.parametrize("path", ["/img/input/bg/../../manifest.json", "/static/../build.json", "/%2e%2e/manifest.json",
                                  "/img/sample/1/../../../etc/passwd", "/img/input/bg/0001.png", "/img/thumb/-1.jpg",
                                  "/api/sample/54", "/static/index.html.bak", "//etc/passwd", "/img/input/etc/0.png",
                                  "/shards/000000.tar", "/manifest.json"])
def test_nothing_outside_the_routes(server: ViewServer, path: str) -> None:
    status, ctype, body = get(server, path)
    assert status == 404 and ctype == "application/json" and b"manifest" not in body.replace(b"/manifest", b"")


def test_bad_numbers_are_400(server: ViewServer) -> None:
    for path in ("/api/samples?page=x", "/api/samples?bg=1e3", "/api/sample/3?flip=yes", "/img/thumb/1.jpg?mode=x"):
        status, _, body = get(server, path)
        assert status == 400 and json.loads(body)["error"], path
    assert get(server, "/api/verify", method="DELETE")[0] == 501  # not a method the viewer answers


def test_export_is_a_static_site(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "site"
    assert main(["view", str(dataset), "--export", str(out), "--samples", "10"]) == 0
    assert capsys.readouterr().out.strip() == f"fgbg view: {out}/index.html"
    html = (out / "index.html").read_text()
    assert '<script src="data.js"></script>' in html and (out / "static" / "app.js").is_file()
    site = json.loads((out / "data.js").read_text().removeprefix("window.FGBG_STATIC = ").rstrip(";\n"))
    picked = [it["index"] for it in site["items"]]
    assert len(picked) == 10 and picked[0] == 0 and picked[-1] == 53
    raw = open_dataset(dataset, decode=False)
    for i in picked:
        assert (out / "img" / "sample" / str(i) / "image.jpg").read_bytes() == bytes(raw[i]["image"])
        assert all((out / "img" / "thumb" / f"{i}-{m}.jpg").is_file() for m in ("plain", "mask", "depth"))
    assert main(["view", str(dataset), "--export", str(out)]) == 2  # never over an existing site
    assert "exists and is not empty" in capsys.readouterr().err


def test_s3_dataset(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    """The viewer reads a dataset on object storage in place (moto_server on 127.0.0.1)."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    import boto3
    from s3server import MotoServer, apply_env

    apply_env()
    moto = MotoServer()
    try:
        boto3.client("s3", endpoint_url=moto.url).create_bucket(Bucket="view")
        options = {"client_kwargs": {"endpoint_url": moto.url}}
        build("s3://view/ds", BuildConfig(placements=1, shard_size=5), *demo_inputs, progress=False, workers=1,
              storage_options=options)
        s3 = start("s3://view/ds", options)
        try:
            page = get_json(s3, "/api/samples?per=5&flip=1")
            assert page["total"] == 9 and all(it["flip"] == 1 for it in page["items"])
            raw = open_dataset("s3://view/ds", storage_options=options, decode=False)
            assert get(s3, "/img/sample/4/mask.png")[2] == bytes(raw[4]["mask"])
            assert get_json(s3, "/api/overview")["samples"] == 18
        finally:
            s3.shutdown()
            s3.server_close()
    finally:
        moto.stop()


def test_people_are_shown(tmp_path: Path, demo_inputs: tuple[Path, Path]) -> None:
    """--people: the sample page lists every person's box in its colour, the instance map is
    served as stored and in the palette, thumbnails tint each person in its colour, and the
    static export carries the map."""
    from fgbg.builder.view.data import PALETTE

    out = tmp_path / "crowd"
    build(out, BuildConfig(placements=2, shard_size=9, people=(2, 3), max_occlusion=0.5), *demo_inputs,
          progress=False, workers=1)
    server = start(str(out))
    try:
        ds = open_dataset(out, decode=False)
        for i in (0, 7):
            s = get_json(server, f"/api/sample/{i}")
            meta = json.loads(bytes(ds[i]["meta"]))
            assert s["instances"] and [p["box"] for p in s["people"]] == [
                [p["x"], p["y"], p["w"], p["h"]] for p in meta["people"]]
            assert [p["colour"] for p in s["people"]] == ["#" + bytes(PALETTE[k].tolist()).hex()
                                                          for k in range(1, len(meta["people"]) + 1)]
            status, _ctype, body = get(server, f"/img/sample/{i}/instances.png")
            assert status == 200 and body == bytes(ds[i]["instances"])  # the stored bytes
            ids = decode_member("instances", body)
            colour = cv2.cvtColor(cv2.imdecode(np.frombuffer(get(server, f"/img/sample/{i}/instances-colour.png")[2],
                                                             np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            assert np.array_equal(colour, PALETTE[ids])
            thumb = cv2.imdecode(np.frombuffer(get(server, f"/img/thumb/{i}.jpg?mode=mask")[2], np.uint8),
                                 cv2.IMREAD_COLOR).astype(int)
            plain = cv2.imdecode(np.frombuffer(get(server, f"/img/thumb/{i}.jpg?mode=plain")[2], np.uint8),
                                 cv2.IMREAD_COLOR).astype(int)
            small = ids[::2, ::2]
            for k in range(1, int(ids.max()) + 1):  # each person pulled toward its own colour
                where = small == k
                if where.sum() < 20:
                    continue
                want = PALETTE[k][::-1].astype(int)  # BGR
                assert (np.abs(thumb[where] - want).mean() < np.abs(plain[where] - want).mean())
    finally:
        server.shutdown()
        server.server_close()
    assert main(["view", str(out), "--export", str(tmp_path / "site"), "--samples", "3"]) == 0
    assert (tmp_path / "site" / "img" / "sample" / "0" / "instances-colour.png").exists()
