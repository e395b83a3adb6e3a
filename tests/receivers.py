"""A tiny HTTP server that plays the engine's side of an outbound webhook in stand-in tests:
it records every POST and answers ``status`` with ``reply``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ReceivedPost:
    path: str
    headers: Message
    body: bytes


class PostReceiver:
    def __init__(self, path: str, reply: bytes = b"") -> None:
        self.path = path
        self.posts: list[ReceivedPost] = []
        self.status = 200
        self.reply = reply
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append(ReceivedPost(self.path, self.headers, body))
                self.send_response(receiver.status)
                if receiver.reply:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(receiver.reply)))
                self.end_headers()
                self.wfile.write(receiver.reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{self.path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@contextmanager
def post_receiver(path: str, reply: bytes = b"") -> Iterator[PostReceiver]:
    receiver = PostReceiver(path, reply)
    try:
        yield receiver
    finally:
        receiver.close()
