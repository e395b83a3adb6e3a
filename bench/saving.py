"""Where every benchmark writes its figures: a JSON file under ``bench/results/`` unless the
run names one (``--results FILE``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


def save_results(results: Any, chosen: Path | None, default_name: str) -> Path:
    """Write ``results`` as indented JSON (dates and other values as text) to ``chosen`` or
    ``bench/results/<default_name>``; the path written."""
    path = chosen or RESULTS_DIR / default_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path
