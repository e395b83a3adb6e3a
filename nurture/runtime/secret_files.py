"""Secrets kept in the data dir on the embedded default (the link-signing secret, the master
key), made once by whichever process needs one first."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, generate: Callable[[], str]) -> str:
    """The secret in ``path``; a new one from ``generate`` when there is none yet.

    Written whole to a private temporary file, then linked into place: another process sees
    either no file or the complete secret, and only one secret ever wins.
    """
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(generate())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return path.read_text().strip()
