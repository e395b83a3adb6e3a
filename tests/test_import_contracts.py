"""The import contracts of pyproject.toml (``[tool.importlinter]``) hold: the package never
imports the workflows, activities or worker; workflows and activities never import each other;
the CLI and HTTP layers point down; no import cycle inside ``nurture``. Run here so CI holds the
code to them, not only ``make lint``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_imports_point_one_way() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
