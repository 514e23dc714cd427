"""Serving a running DataMiner System: uvicorn on a thread of its own with its own event loop.

The socket is bound before the thread starts, so a port in use is said at once and the URL
(with the port the system chose for port 0) is known when `serve` returns.
"""

from __future__ import annotations

import secrets
import socket
import threading
from typing import Any

import uvicorn

from ..dms import DataMinerSystem
from ..protocol.errors import DmemuError
from ..protocol.http import is_loopback_host
from .app import create_app
from .console import console_url


class WebServerError(DmemuError):
    """The web server cannot start as asked (an address in use, no token off loopback)."""


def check_access(host: str, token: str | None) -> None:
    """Refuse a server that anyone reaching it could control: no token ("") off loopback."""
    if token is not None and not isinstance(token, str):
        raise TypeError(f"a token is a string (None: a random one; \"\": none, on loopback only), not {token!r}")
    if token == "" and not is_loopback_host(host):
        raise WebServerError(
            f"serving on {host} without a token would let anyone who reaches it control the DMS; "
            "give a token (or none for a random one), or bind 127.0.0.1"
        )


class _Uvicorn(uvicorn.Server):
    """uvicorn's server telling when it is up (or could not start)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.up.set()


class WebServer:
    """A DMS served over HTTP (`DataMinerSystem.serve`): `url`, `token`, `stop()`; a context manager."""

    def __init__(
        self, dms: DataMinerSystem, *, port: int = 0, host: str = "127.0.0.1", token: str | None = None, simulators: Any = None,
        interval: float | None = None,
    ) -> None:  # fmt: skip
        check_access(host, token)
        if token is None:
            token = secrets.token_urlsafe(24)
        self.dms = dms
        self.token = token
        self.host = host
        self.app = create_app(dms, token=token, simulators=simulators, interval=interval)
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        # IPPROTO_TCP named: asyncio turns Nagle's algorithm off only on sockets that say they are
        # TCP, and with it on, a response written in two parts waits for the client's delayed
        # ACK, some 40 ms a call. Set on the listening socket too, which accepted ones inherit.
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._socket.bind((host.strip("[]"), port))
            self._socket.listen(128)
        except OSError as error:
            self._socket.close()
            raise WebServerError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
        self.port: int = self._socket.getsockname()[1]
        # log_config=None: a harness's own logging is left as it is (uvicorn's loggers propagate to it).
        # httptools: uvicorn's C parser of requests; its pure-Python one (h11) costs more per
        # request than a small answer's whole handler.
        config = uvicorn.Config(
            self.app, lifespan="off", log_config=None, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
            http="httptools",
        )  # fmt: skip
        self._server = _Uvicorn(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, name="dmemu-web", daemon=True)
        self._thread.start()
        self._server.up.wait()
        if not self._server.started:
            self._thread.join()
            self._socket.close()
            raise WebServerError(f"the web server on {host}:{port} did not start (see the log)")
        self._stopped = False

    @property
    def url(self) -> str:
        """``http://HOST:PORT``: the port is the one the system chose when asked for port 0."""
        host = f"[{self.host.strip('[]')}]" if ":" in self.host.strip("[]") else self.host
        return f"http://{host}:{self.port}"

    @property
    def console_url(self) -> str:
        """The browser console's address, ``URL/#token=TOKEN``: the fragment stays in the browser."""
        return console_url(self.url, self.token)

    def stop(self) -> None:
        """End the clients' event streams, stop serving and wait for the thread; the DMS runs on."""
        if self._stopped:
            return
        self._stopped = True
        self.app.state.api.close()
        self._server.should_exit = True
        self._thread.join()
        self._socket.close()

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<WebServer {self.url}{'' if not self._stopped else ' (stopped)'}>"


def serve(
    dms: DataMinerSystem, *, port: int = 0, host: str = "127.0.0.1", token: str | None = None, simulators: Any = None
) -> WebServer:
    """Serve `dms` (see `WebServer`); token None makes a random one, read it from `.token`."""
    return WebServer(dms, port=port, host=host, token=token, simulators=simulators)
