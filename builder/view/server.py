"""The viewer's HTTP routes, on the standard library's threading HTTP server.

Why not Starlette/uvicorn: the viewer is a handful of read-only GET routes (and one POST
that starts a verify) for one user on 127.0.0.1; ``http.server.ThreadingHTTPServer``
serves that with no dependency, no event loop and no extra to install -- the two libraries
would add install weight and nothing this needs (no websockets, no middleware).

Routes (anything else: 404; a bad number: 400): ``/`` and ``/static/{index.html,app.js,
style.css}`` (the front end shipped in the package); ``/api/overview``, ``/api/samples``,
``/api/sample/N``, ``/api/verify`` (GET: state; POST: start); ``/img/thumb/N.jpg?mode=``,
``/img/sample/N/{image.jpg,mask.png,depth.png,depth-colour.png,instances.png,instances-colour.png}``,
``/img/input/{bg,fg,fg_mask}/N.png``. Samples and inputs are addressed by index only: no
part of a URL ever becomes a file name.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fgbg.readers.errors import DatasetError

from .data import FILTERS, THUMB_MODES, Filters, ViewData

__all__ = ["STATIC_FILES", "ViewServer", "serve", "static_file"]

STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8"}
_SAMPLE_FILES = {"image.jpg": ("image", "image/jpeg"), "mask.png": ("mask", "image/png"),
                 "depth.png": ("depth", "image/png"), "instances.png": ("instances", "image/png")}
_MAX_INT = 10**15


class BadRequest(ValueError):
    """A request the viewer refuses with 400 (a number that is not one, an unknown option)."""


def static_file(name: str) -> bytes:
    """A front-end file shipped in the package (``name`` is one of STATIC_FILES)."""
    return resources.files("fgbg.builder.view").joinpath("static", name).read_bytes()


def _int(query: dict[str, list[str]], name: str, default: int | None = None) -> int | None:
    values = query.get(name)
    if not values or values[-1] == "":
        return default
    text = values[-1]
    if not re.fullmatch(r"-?[0-9]{1,16}", text) or abs(int(text)) > _MAX_INT:
        raise BadRequest(f"{name} must be a whole number, got {text[:40]!r}")
    return int(text)


def filters_from(query: dict[str, list[str]]) -> Filters:
    return Filters(**{k: _int(query, k) for k in FILTERS})


class _Verify:
    """A verify run started from the overview page (verify reads, never writes)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None):
        self.url, self.storage_options = url, storage_options
        self.state = "idle"
        self.report: dict[str, Any] | None = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self.state == "running":
                return
            self.state, self.report, self.error = "running", None, None
        threading.Thread(target=self._run, name="fgbg-view-verify", daemon=True).start()

    def _run(self) -> None:
        from ..commands.verify import verify

        try:
            self.report = verify(self.url, storage_options=self.storage_options, workers=1).to_json()
            self.state = "done"
        except Exception as e:  # shown on the page, as the CLI would print it
            self.error, self.state = f"{type(e).__name__}: {e}", "failed"

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state, "report": self.report, "error": self.error}


class ViewServer(ThreadingHTTPServer):
    """The server holding one dataset's :class:`ViewData`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], data: ViewData, storage_options: dict[str, Any] | None = None):
        super().__init__(address, _Handler)
        self.data = data
        self.verify = _Verify(data.url, storage_options)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host if isinstance(host, str) else host.decode()}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: ViewServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI prints the URL once
        pass

    def _send(self, status: int, body: bytes, ctype: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value: Any, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json({"error": message}, status)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self._dispatch(_GET_ROUTES)

    def do_POST(self) -> None:
        if self.path.split("?")[0] == "/api/verify":
            self.server.verify.start()
            self._json(self.server.verify.as_json(), 202)
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    def _dispatch(self, routes: list[tuple[re.Pattern[str], Callable[..., None]]]) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            for pattern, handler in routes:
                match = pattern.fullmatch(parts.path)
                if match:
                    handler(self, query, *match.groups())
                    return
            self._error(HTTPStatus.NOT_FOUND, "not found")
        except BadRequest as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except IndexError as e:
            self._error(HTTPStatus.NOT_FOUND, str(e))
        except (DatasetError, KeyError, TypeError, ValueError, OSError) as e:  # a damaged sample or file
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {e}")

    # -- routes ---------------------------------------------------------------------------
    def _static(self, query: dict[str, list[str]], name: str = "index.html") -> None:
        if name not in STATIC_FILES:
            raise IndexError("not found")
        self._send(200, static_file(name), STATIC_FILES[name])

    def _overview(self, query: dict[str, list[str]]) -> None:
        self._json({**self.server.data.overview(), "verify": self.server.verify.as_json()})

    def _samples(self, query: dict[str, list[str]]) -> None:
        page, per = _int(query, "page", 0), _int(query, "per", 100)
        assert page is not None and per is not None
        self._json(self.server.data.page(page, per, filters_from(query)))

    def _sample(self, query: dict[str, list[str]], n: str) -> None:
        self._json(self.server.data.sample(int(n), filters_from(query)))

    def _verify(self, query: dict[str, list[str]]) -> None:
        self._json(self.server.verify.as_json())

    def _thumb(self, query: dict[str, list[str]], n: str) -> None:
        mode = query.get("mode", ["plain"])[-1]
        if mode not in THUMB_MODES:
            raise BadRequest(f"mode must be one of {', '.join(THUMB_MODES)}")
        self._send(200, self.server.data.thumbnail(int(n), mode), "image/jpeg", cache=True)

    def _sample_file(self, query: dict[str, list[str]], n: str, name: str) -> None:
        if name == "depth-colour.png":
            self._send(200, self.server.data.depth_colour(int(n)), "image/png", cache=True)
            return
        if name == "bg-depth-colour.png":
            self._send(200, self.server.data.bg_depth_colour(int(n)), "image/png", cache=True)
            return
        if name == "instances-colour.png":
            self._send(200, self.server.data.instances_colour(int(n)), "image/png", cache=True)
            return
        field, ctype = _SAMPLE_FILES[name]
        self._send(200, self.server.data.served(int(n), field), ctype, cache=True)

    def _input(self, query: dict[str, list[str]], kind: str, n: str) -> None:
        self._send(200, self.server.data.input_image(kind, int(n)), "image/png", cache=True)


_NUMBER = r"(0|[1-9][0-9]{0,14})"
_GET_ROUTES: list[tuple[re.Pattern[str], Callable[..., None]]] = [
    (re.compile(r"/"), _Handler._static),
    (re.compile(r"/static/(index\.html|app\.js|style\.css)"), _Handler._static),
    (re.compile(r"/api/overview"), _Handler._overview),
    (re.compile(r"/api/samples"), _Handler._samples),
    (re.compile(rf"/api/sample/{_NUMBER}"), _Handler._sample),
    (re.compile(r"/api/verify"), _Handler._verify),
    (re.compile(rf"/img/thumb/{_NUMBER}\.jpg"), _Handler._thumb),
    (re.compile(rf"/img/sample/{_NUMBER}/(image\.jpg|mask\.png|depth\.png|depth-colour\.png|bg-depth-colour\.png|"
                rf"instances\.png|instances-colour\.png)"), _Handler._sample_file),
    (re.compile(rf"/img/input/(bg|fg|fg_mask)/{_NUMBER}\.png"), _Handler._input),
]


def serve(url: str, host: str = "127.0.0.1", port: int = 8000, format: str | None = None,
          storage_options: dict[str, Any] | None = None, ready: Callable[[ViewServer], None] | None = None) -> None:
    """Serve the dataset at ``url`` until interrupted (``ready`` is called with the bound server)."""
    server = ViewServer((host, port), ViewData(url, format, storage_options), storage_options)
    if ready is not None:
        ready(server)
    try:
        server.serve_forever()
    finally:
        server.server_close()
