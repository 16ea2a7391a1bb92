"""A network emulator for object-storage tests and benchmarks: a TCP proxy on 127.0.0.1 in
front of an S3 endpoint (``moto_server``) that behaves like a bucket far away.

Loopback S3 answers in microseconds, which hides everything a real bucket costs. This proxy
adds what matters for ranking read and write paths:

- ``delay``: seconds each *request* waits before it is forwarded (a round trip's latency:
  paid once per request, not per packet -- a request starts when the client sends after the
  server has answered, or first on a new connection);
- ``rate``: bytes per second each connection carries in each direction (a per-connection
  bandwidth cap, paced in small slices so a large body streams as it would);
- ``faults``: chosen requests answered badly -- a connection reset half-way through the
  response body, an HTTP 503 (S3's "slow down"), or a stall longer than a client's timeout --
  to prove that clients retry or fail cleanly, never hand out a short body.

One asyncio loop in a daemon thread serves every connection; ``with NetEm(upstream_port,
delay=0.02, rate=80e6) as proxy:`` then point the client at ``proxy.url``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["Fault", "NetEm"]

_SLICE = 16 << 10  # bytes sent per pacing step


@dataclass
class Fault:
    """Answer the next ``times`` requests whose first bytes contain ``match`` badly.

    ``kind``: ``"reset"`` forwards the request, passes ``after`` bytes of the response and then
    resets the connection; ``"503"`` answers ``503 Slow Down`` without forwarding; ``"stall"``
    forwards the request and holds the response for ``seconds`` (longer than the client's
    timeout) before dropping the connection."""

    match: bytes
    kind: str
    times: int = 1
    after: int = 0
    seconds: float = 30.0
    hits: int = field(default=0, init=False)


_SLOW_DOWN = (b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
              b"Connection: close\r\n\r\n%s")
_SLOW_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
              b"<Message>Please reduce your request rate.</Message></Error>")


class NetEm:
    """The proxy; see the module docstring. ``log`` holds each request's first line (method,
    path, version) in arrival order; ``peak`` the most requests awaiting their answer at once."""

    def __init__(self, upstream: int, delay: float = 0.0, rate: float = 0.0):
        self.upstream = upstream
        self.delay = delay
        self.rate = rate
        self.faults: list[Fault] = []
        self.log: list[str] = []
        self.connections = 0
        self.waiting = 0
        self.peak = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="netem", daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        return len(self.log)

    def reset_counts(self) -> None:
        self.log.clear()
        self.peak = self.waiting

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> NetEm:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- one connection ------------------------------------------------------------------
    def _fault_for(self, head: bytes) -> Fault | None:
        for f in self.faults:
            if f.hits < f.times and f.match in head:
                f.hits += 1
                return f
        return None

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            client_w.close()
            return
        state: dict[str, object] = {"answered": True, "fault": None}
        up = asyncio.ensure_future(self._upstream(client_r, server_w, client_w, state))
        down = asyncio.ensure_future(self._downstream(server_r, client_w, state))
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        if state.get("waiting"):
            self.waiting -= 1
        for task in (up, down):
            task.cancel()
        for w in (client_w, server_w):
            with contextlib.suppress(Exception):
                w.close()

    async def _upstream(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, client: asyncio.StreamWriter,
                        state: dict[str, object]) -> None:
        clock = [0.0]
        while data := await src.read(65536):
            if state["answered"]:  # a new request: it pays the round trip
                state["answered"] = False
                self.log.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
                self.waiting += 1
                state["waiting"] = True
                self.peak = max(self.peak, self.waiting)
                fault = self._fault_for(data[:4096])
                if self.delay:
                    await asyncio.sleep(self.delay)
                if fault is not None and fault.kind == "503":
                    state["waiting"] = False
                    self.waiting -= 1
                    client.write(_SLOW_DOWN % (len(_SLOW_BODY), _SLOW_BODY))
                    await client.drain()
                    return
                state["fault"] = fault
            await self._paced(dst, data, clock)

    async def _downstream(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                          state: dict[str, object]) -> None:
        sent = 0
        clock = [0.0]
        while data := await src.read(65536):
            state["answered"] = True
            if state.get("waiting"):
                state["waiting"] = False
                self.waiting -= 1
            fault = state["fault"]
            if isinstance(fault, Fault):
                if fault.kind == "stall":
                    await asyncio.sleep(fault.seconds)
                    return
                if fault.kind == "reset":
                    if sent + len(data) >= fault.after:
                        await self._paced(dst, data[:max(0, fault.after - sent)], clock)
                        self._reset(dst)
                        return
                    sent += len(data)
            await self._paced(dst, data, clock)

    async def _paced(self, dst: asyncio.StreamWriter, data: bytes, clock: list[float]) -> None:
        """Write ``data`` no faster than ``rate``: ``clock[0]`` is when this direction of the
        connection may send next (a token bucket without burst; sleeps are batched to >= 2 ms,
        asyncio's timer resolution)."""
        if not self.rate:
            dst.write(data)
            await dst.drain()
            return
        for i in range(0, len(data), _SLICE):
            piece = data[i:i + _SLICE]
            now = time.monotonic()
            clock[0] = max(clock[0], now - 0.002) + len(piece) / self.rate
            if clock[0] - now > 0.002:
                await asyncio.sleep(clock[0] - now)
            dst.write(piece)
            await dst.drain()

    @staticmethod
    def _reset(w: asyncio.StreamWriter) -> None:
        """Close with RST (SO_LINGER 0): the client sees a reset, not a clean end of stream."""
        sock = w.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.close()
