"""The worker writes bytecode for the workflow modules the sandbox imports for every lead, even
under ``PYTHONDONTWRITEBYTECODE``; a tree it cannot write to is logged, never fatal."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from nurture.runtime.bytecode import cache_bytecode


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``flows.lead`` in a fresh directory, imported without writing bytecode."""
    root = tmp_path / "src"
    (root / "flows").mkdir(parents=True)
    (root / "flows" / "__init__.py").write_text('"""Workflows."""\n')
    (root / "flows" / "lead.py").write_text("ANSWER = 42\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    module = importlib.import_module("flows.lead")
    yield module
    for name in ("flows.lead", "flows"):
        sys.modules.pop(name, None)


def _cached(module: ModuleType) -> Path:
    assert module.__file__
    return Path(importlib.util.cache_from_source(module.__file__))


def test_writes_the_module_and_its_package(package: ModuleType) -> None:
    assert not _cached(package).exists()  # nothing written on import

    assert cache_bytecode([package]) == []

    assert _cached(package).exists()
    assert (_cached(package).parent / _cached(package).name.replace("lead", "__init__")).exists()


def test_a_fresh_file_is_left_and_a_stale_one_rewritten(package: ModuleType) -> None:
    cache_bytecode([package])
    first = _cached(package).stat().st_mtime_ns
    cache_bytecode([package])
    assert _cached(package).stat().st_mtime_ns == first  # fresh: not written again

    assert package.__file__
    source = Path(package.__file__)
    source.write_text("ANSWER = 43  # edited\n")
    os.utime(source, (first / 1e9 + 5, first / 1e9 + 5))
    cache_bytecode([package])
    assert _cached(package).stat().st_mtime_ns != first


def test_a_tree_it_cannot_write_to_is_reported_not_fatal(package: ModuleType) -> None:
    directory = Path(package.__file__ or "").parent
    (directory / "__pycache__").write_text("a file where the cache directory would go")

    failed = cache_bytecode([package])

    assert set(failed) == {str(directory / "lead.py"), str(directory / "__init__.py")}
