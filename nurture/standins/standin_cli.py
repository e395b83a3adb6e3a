"""Running a loopback stand-in (SendGrid, Salesforce) from the command line until Ctrl-C or
SIGTERM: the part of ``python -m nurture.<x>_standin`` both stand-ins share."""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Protocol

from nurture.standins.loopback import CONTROL_TOKEN_HEADER


class StandIn(Protocol):
    @property
    def url(self) -> str: ...

    def start(self) -> object: ...

    def stop(self) -> None: ...


def standin_parser(module: str, description: str, port: int) -> argparse.ArgumentParser:
    """The command line of ``python -m <module>``, with ``--host`` and ``--port`` (default
    ``port``); the stand-in adds its own options, then :func:`add_control_token`."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    return parser


def add_control_token(parser: argparse.ArgumentParser, what: str) -> None:
    """``--control-token``, guarding ``what`` (the stand-in's ``/_standin/`` controls)."""
    parser.add_argument(
        "--control-token",
        default=None,
        help=f"needed by the /_standin/ {what} ({CONTROL_TOKEN_HEADER} header or ?token=); "
        "default: a new random one, printed at start",
    )


def control_token(args: argparse.Namespace) -> str:
    """The ``--control-token`` given, else a new random one."""
    token: str = args.control_token or secrets.token_urlsafe(24)
    return token


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve_until_stopped(
    standin: StandIn,
    name: str,
    where: str,
    summary: Callable[[], str],
    notes: Callable[[], list[str]] = list,
) -> int:
    """Start ``standin``, serve until interrupted, stop it and print ``summary()``; the
    ``notes()`` lines are printed after the "listening on" line. Exit status 1 when it cannot
    listen on ``where``."""
    try:
        standin.start()
    except OSError as exc:
        print(f"cannot listen on {where}: {exc}", file=sys.stderr)
        return 1
    # SIGINT too: a process started in the background by a shell inherits it as ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_keyboard_interrupt)
    try:  # a Ctrl-C right after the line below appears (as a caller reacting to it) stops too
        print(f"{name} listening on {standin.url} (Ctrl-C stops)", flush=True)
        for line in notes():
            print(line, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    print(f"stopped; {summary()}", flush=True)
    return 0
