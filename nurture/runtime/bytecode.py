"""Bytecode for the modules Temporal's sandbox imports afresh for every workflow instance.

The sandbox runs each workflow in its own copy of the workflow's module: every new lead, and
every lead brought back into the worker's cache after an eviction or a restart, imports
``workflows/lead.py`` again. With a ``__pycache__`` that is a read of the cached bytecode;
under ``PYTHONDONTWRITEBYTECODE=1`` (common in container images) there is none, and Python
compiles the 1,400-line module from source each time: 11 ms of CPU per lead, half of the lead
worker's busy time when many new leads arrive (``bench/engine_throughput.py``, sampled with
py-spy). So the worker writes that bytecode once at start, whatever
``PYTHONDONTWRITEBYTECODE`` says: only for these modules, and nothing breaks where it cannot
(a read-only tree keeps compiling; better, build the image with ``python -m compileall``).
"""

from __future__ import annotations

import compileall
import importlib
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import structlog

log = structlog.get_logger(__name__)


def cache_bytecode(modules: Iterable[ModuleType]) -> list[str]:
    """Write each module's ``__pycache__`` file, and its packages', where it is missing or
    stale (``compileall`` skips fresh ones); the sources whose bytecode could not be written."""
    failed = [
        str(source)
        for source in sorted({path for module in modules for path in _sources(module)})
        if not compileall.compile_file(source, quiet=2)
    ]
    if failed:
        log.warning(
            "cannot write workflow bytecode: every new workflow instance compiles these "
            "(build images with python -m compileall)",
            sources=failed,
        )
    return failed


def _sources(module: ModuleType) -> list[Path]:
    """The module's source and its parent packages' ``__init__.py`` (imported with it)."""
    paths = [Path(module.__file__)] if module.__file__ else []
    parts = module.__name__.split(".")[:-1]
    while parts:
        package = importlib.import_module(".".join(parts))
        if package.__file__:
            paths.append(Path(package.__file__))
        parts.pop()
    return [p for p in paths if p.suffix == ".py"]
