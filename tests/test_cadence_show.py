"""``nurture cadence list|show``: a cadence as a timeline, from the rules files, with offsets a
marketer can check against the YAML by hand."""

from __future__ import annotations

import json
from datetime import timedelta

import yaml
from typer.testing import CliRunner

from nurture.cli.app import app
from nurture.config.config_loader import DEFAULT_CONFIG_DIR
from nurture.domain.durations import format_duration, parse_duration
from tests.conftest import TEST_RULES


def show(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["cadence", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_two_cycles_with_a_pause_between_them_add_up() -> None:
    code, out = show("show", "general", "--config", str(TEST_RULES), "--json")
    assert code == 0, out
    timeline = json.loads(out)
    assert [(s["cycle"], s["step"], s["offset"]) for s in timeline["steps"]] == [
        (1, "hello", "1h"),
        (1, "follow-up", "3d1h"),
        (2, "hello", "2w3d2h"),  # the 2w pause, then the step's own 1h
        (2, "follow-up", "2w6d2h"),
    ]
    assert timeline["segment"] == "every lead (the catch-all)"
    assert timeline["recycle_track"] == "recycle (Recycle)"
    assert timeline["send_window"] == "any time" and timeline["length"] == "2w6d2h"


def test_the_terminal_shows_segment_tasks_and_the_recycle_track() -> None:
    code, out = show("show", "multichannel", "--config", str(TEST_RULES))
    assert code == 0, out
    assert "for: custom.track in [multichannel]" in out
    assert "Call {{ lead.display_name }} (due within 1d)" in out
    assert "Mail the brochure (due within 2d)" in out
    assert "rejected leads go to: recycle (Recycle)" in out
    code, out = show("show", "recycle", "--config", str(TEST_RULES), "--json")
    assert json.loads(out)["segment"] == "leads sales rejected (the recycle track)"


def test_an_unknown_cadence_is_refused_with_the_known_ones() -> None:
    code, out = show("show", "nope", "--config", str(TEST_RULES))
    assert code == 2
    assert "no cadence 'nope'; the cadences are: enterprise, multichannel, general" in out


def test_every_shipped_cadence_lasts_what_its_yaml_adds_up_to() -> None:
    """The shipped rules, read here with plain YAML: every touch, each cycle after a pause."""
    written = yaml.safe_load((DEFAULT_CONFIG_DIR / "cadences.yaml").read_text())["cadences"]
    code, out = show("list", "--json")
    assert code == 0, out
    listed = {t["id"]: t for t in json.loads(out)}
    assert list(listed) == [c["id"] for c in written]
    for cadence in written:
        cycles = cadence.get("cycles", 1)
        steps = sum((parse_duration(s["delay"]) for s in cadence["steps"]), timedelta())
        pause = parse_duration(cadence.get("between_cycles", "0s"))
        assert listed[cadence["id"]]["length"] == format_duration(
            steps * cycles + pause * (cycles - 1)
        ), cadence["id"]
