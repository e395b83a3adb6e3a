"""What the two stand-ins (SendGrid, Salesforce) share: an HTTP server on a local port, served
in a daemon thread, started and stopped from a test or a command line, with test controls
guarded by a token. What each answers stays in its own module."""

from __future__ import annotations

import contextlib
import hmac
import http.client
import socket
import sys
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

CONTROL_TOKEN_HEADER = "X-Standin-Token"


class StandInServer(ThreadingHTTPServer):
    """A thread per connection; remembers open connections so an outage can cut them."""

    daemon_threads = True
    allow_reuse_address = True
    quiet: ClassVar[tuple[type[BaseException], ...]] = (ConnectionError, TimeoutError)
    """Errors in a request thread that are not reported (clients that hang up)."""

    standin: LoopbackStandIn

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        standin: LoopbackStandIn,
    ) -> None:
        super().__init__(address, handler)
        self.standin = standin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut every open connection, keep-alive ones included, as a dead host would."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about the errors in :attr:`quiet`; report anything else."""
        if isinstance(sys.exc_info()[1], self.quiet):
            return
        super().handle_error(request, client_address)


class StandInHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, no request log, ``server_version`` as the Server header."""

    protocol_version = "HTTP/1.1"
    server: StandInServer

    def log_message(self, format: str, *args: Any) -> None:
        """Request logs are noise in tests and CLIs; the stand-in stays quiet."""

    def version_string(self) -> str:
        return self.server_version

    def _read_body(self, limit: int | None = None) -> tuple[bytes, int]:
        """The request body and its declared length; past ``limit``, drain it, return no bytes."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if limit is None or length <= limit:
            return self.rfile.read(length) if length > 0 else b"", length
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        return b"", length

    def _respond(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        """Send the status, the headers in order and the body (not for HEAD); a client that
        hung up ends the connection quietly."""
        try:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _control_token_ok(self, query: str) -> bool:
        """True when the stand-in has no control token, or the request carries it (the
        header, or ``?token=`` for pages a browser opens)."""
        expected = self.server.standin.control_token
        if expected is None:
            return True
        given = self.headers.get(CONTROL_TOKEN_HEADER) or (parse_qs(query).get("token") or [""])[-1]
        return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


class LoopbackStandIn:
    """Start (port 0 picks a free one), stop, and the base URL of a stand-in's server.

    Use as a context manager, or call :meth:`start` / :meth:`stop`; the server runs in a
    background daemon thread.
    """

    server_class: ClassVar[type[StandInServer]]
    handler_class: ClassVar[type[StandInHandler]]
    thread_name: ClassVar[str]
    """The serving thread is named ``<thread_name>:<port>``."""
    cut_connections_on_close: ClassVar[bool] = False
    """Whether closing the server also cuts the keep-alive connections still open."""

    def __init__(self, host: str, port: int, control_token: str | None) -> None:
        self.host = host
        self.port = port
        self.control_token = control_token
        """Needed by the ``/_standin/`` controls when set (the command line sets one)."""
        self._stopping = threading.Event()
        self._server: StandInServer | None = None
        self._thread: threading.Thread | None = None
        self._bound: tuple[str, int] | None = None

    def start(self) -> Self:
        """Bind the port (0 picks a free one) and serve in a background thread."""
        if self._bound is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._stopping.clear()
        self._serve(self.port)
        return self

    def stop(self) -> None:
        """Stop serving and release the port; answers held by delays are dropped."""
        if self._bound is None:
            return
        self._stopping.set()
        self._close_server()
        self._bound = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:54321."""
        if self._bound is None:
            raise RuntimeError(f"{type(self).__name__} is not running; call start() first")
        host = self._url_host()
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self._bound[1]}"

    def _url_host(self) -> str:
        """The host :attr:`url` names: the address the server is bound to."""
        assert self._bound is not None
        return self._bound[0]

    def _serve(self, port: int) -> None:
        server = self.server_class((self.host, port), self.handler_class, self)
        raw_host = server.server_address[0]
        host = raw_host.decode() if isinstance(raw_host, bytes) else str(raw_host)
        self._server = server
        self._bound = (host, server.server_port)
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.thread_name}:{server.server_port}",
            daemon=True,
        )
        self._thread.start()

    def _close_server(self) -> None:
        """Close the listening socket and wait for the serving thread (the port stays ours
        in :attr:`url`)."""
        server, thread = self._server, self._thread
        self._server = None
        self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self.cut_connections_on_close:
            server.drop_connections()
        if thread is not None:
            thread.join(timeout=5)

    def _hold(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the stand-in stops first; True when it is stopping."""
        return self._stopping.wait(seconds)


def post(url: str, payload: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """POST ``payload`` to ``url``; return the status and body, whatever the status."""
    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
