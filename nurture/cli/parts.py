"""What the commands that run the engine get from the entry point instead of importing it.

``nurture up`` runs a worker in its own process, but this package sits below the workflows and
activities a worker runs (nothing under ``nurture/`` imports ``workflows``, ``activities`` or
``worker``). The ``nurture`` command (``starter.py``) hands the worker's builder in as the
Typer context object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from nurture.cli.embedded import WorkerBuilder


@dataclass(frozen=True)
class EngineParts:
    build_worker: WorkerBuilder


def engine_parts(ctx: typer.Context) -> EngineParts:
    parts = ctx.find_root().obj
    if not isinstance(parts, EngineParts):
        raise RuntimeError(
            "this command runs the engine: start it with the nurture command (starter.py), "
            "which hands it the worker"
        )
    return parts
