"""Marketers edit rules without a deploy: a worker picks up a valid edit, keeps the last good
rules when an edit is broken, and `nurture config check` says what is wrong."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from nurture.config.rules_source import RulesSource
from tests.conftest import TEST_RULES, TEST_TEMPLATES

ROOT = Path(__file__).resolve().parent.parent


def _copy_rules(tmp_path: Path) -> Path:
    config = tmp_path / "rules"
    shutil.copytree(TEST_RULES, config)
    return config


def _touch_later(path: Path, text: str) -> None:
    stat = path.stat()
    path.write_text(text)
    os.utime(path, (stat.st_atime + 5, stat.st_mtime + 5))  # a distinct mtime, whatever the fs


def test_a_valid_edit_is_picked_up_and_a_broken_one_keeps_the_last_good_rules(
    tmp_path: Path,
) -> None:
    config = _copy_rules(tmp_path)
    source = RulesSource(config, TEST_TEMPLATES, recheck_every=0)
    first = source.current()
    assert first.scoring.sales_ready_threshold == 50

    scoring = config / "scoring.yaml"
    _touch_later(
        scoring,
        scoring.read_text().replace("sales_ready_threshold: 50", "sales_ready_threshold: 80"),
    )
    edited = source.current()
    assert edited.scoring.sales_ready_threshold == 80 and edited.version != first.version

    _touch_later(scoring, scoring.read_text().replace("download: 10", "download: lots"))
    kept = source.current()
    assert kept.version == edited.version and kept.scoring.sales_ready_threshold == 80


def _config_check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "starter.py"),
            "config",
            "check",
            "--config",
            str(config),
            "--templates",
            str(TEST_TEMPLATES),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_config_check_passes_good_rules_and_names_file_and_key_of_bad_ones(
    tmp_path: Path,
) -> None:
    config = _copy_rules(tmp_path)
    good = _config_check(config)
    assert good.returncode == 0 and "ok" in good.stdout

    routing = config / "routing.yaml"
    routing.write_text(
        routing.read_text().replace("contact_within: 4h", "contact_within: four hours")
    )
    bad = _config_check(config)
    assert bad.returncode == 2
    line = routing.read_text().splitlines().index("  contact_within: four hours") + 1
    assert f"{routing}:{line}: sla.contact_within 'four hours' is not a duration" in bad.stderr
