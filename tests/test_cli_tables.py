"""What a user reads in the CLI's tables: nothing cut, the right contact, readable labels and
durations (findings 26, 28 and 29). The CLI runs as a subprocess, as a user runs it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

from nurture.cli.app import _consent_lines
from nurture.contract.messages import ConsentRecord, LeadState
from nurture.domain.leads import LeadProfile
from nurture.reports.sla import COLUMNS as SLA_COLUMNS
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import SalesTask, make_engine
from tests.conftest import lead_id, running_engine, wait_for_state
from tests.test_reports_funnel_sla_influence import day, lead_life, sla_lives, write
from tests.test_reports_returns_cost import H, write_handoffs

ROOT = Path(__file__).resolve().parent.parent
LONG_TITLE = "Send the printed enterprise security brochure with a handwritten note " * 2


def nurture(
    database: str, *args: str, columns: int | None = 200, **env: str
) -> subprocess.CompletedProcess[str]:
    """``nurture ARGS`` with its output piped (not a terminal), ``COLUMNS`` wide."""
    base = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        base["COLUMNS"] = str(columns)
    result = subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), *args],
        env={**base, "NURTURE_DATABASE_URL": database, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'nurture.db'}"


def add_tasks(database: str) -> None:
    due = datetime.now(UTC) + timedelta(days=1)
    with Session(make_engine(database)) as session:
        for n, (channel, title) in enumerate(
            [("direct_mail", LONG_TITLE), ("call", "Intro call"), ("voicemail", "Leave a message")]
        ):
            session.add(
                SalesTask(
                    key=f"tess:{channel}",
                    lead_id="tess",
                    channel=channel,
                    cadence="multichannel",
                    step=f"step{n}",
                    title=title,
                    phone="+1 555 0100",  # the lead has both on file
                    address="1 Main St, Springfield",
                    due_at=due,
                )
            )
        session.commit()


def test_tasks_list_shows_the_address_for_mail_and_the_phone_for_calls(database: str) -> None:
    """Finding 26: a direct-mail task shows where to send it, a call or voicemail whom to ring."""
    add_tasks(database)
    mail = nurture(database, "tasks", "list", "--channel", "direct_mail").stdout
    assert "1 Main St, Springfield" in mail and "+1 555 0100" not in mail
    for channel in ("call", "voicemail"):
        shown = nurture(database, "tasks", "list", "--channel", channel).stdout
        assert "+1 555 0100" in shown and "Main St" not in shown


@pytest.mark.parametrize("columns", [60, 80, 200, None])
def test_report_sla_never_cuts_a_header_whatever_the_width(
    database: str, columns: int | None
) -> None:
    """Finding 28: `nurture report sla` at a narrow, the default (80, not a terminal) and a
    wide width: every header is printed whole, nothing is cut with an ellipsis, and no line is
    wider than the width."""
    write(database, sla_lives())
    out = nurture(database, "report", "sla", columns=columns).stdout
    assert "…" not in out
    for header in SLA_COLUMNS:
        assert re.search(rf"(?<![\w]){header}(?![\w])", out), (header, out)
    assert max(len(line) for line in out.splitlines()) <= (columns or 80)
    rows = [line for line in out.splitlines() if "alice" in line]
    if columns == 200:  # wide enough: one table, all headers on one line, one line per rep
        assert any(all(h in line for h in SLA_COLUMNS) for line in out.splitlines())
        assert len(rows) == 1 and "0.5" in rows[0]
    else:  # too narrow for ten columns: one block per rep, each header beside its value
        assert re.search(r"^median_minutes_to_response\s+210\.0", out, re.M), out
        assert re.search(r"^reassigned_away\s+1\b", out, re.M), out


@pytest.mark.parametrize("columns", [60, 200])
def test_long_cells_wrap_instead_of_being_cut(database: str, columns: int) -> None:
    """Finding 28: a long task title is wrapped, every word of it printed."""
    add_tasks(database)
    out = nurture(database, "tasks", "list", "--channel", "direct_mail", columns=columns).stdout
    assert "…" not in out
    printed = Counter(re.findall(r"\w+", out))
    assert all(printed[word] >= n for word, n in Counter(LONG_TITLE.split()).items()), out
    for header in ("channel", "title", "call / send to", "status", "outcome"):
        assert header in out


def test_score_bands_read_from_to_even_when_negative(database: str) -> None:
    """Finding 29: a band of negative scores is labelled '-30 to -21', not '-30--21'."""
    write_handoffs(make_engine(database), [H(-25, "rejected", reason="spam"), H(12, "accepted")])
    out = nurture(database, "report", "returns").stdout
    assert "-30 to -21" in out and "10 to 19" in out
    assert "--21" not in out


def test_time_in_stage_is_shown_in_a_unit_that_fits_its_size(database: str) -> None:
    """Finding 29: under --time-scale stays last seconds; the funnel report shows '12 s', not
    '0.0' hours, and days for long stays."""
    start = day(3, 2)
    second = timedelta(seconds=1)
    write(
        database,
        [
            lead_life(
                "fast",
                start,
                [
                    (start, "assigned"),
                    (start + 12 * second, "working"),
                    (start + 40 * second, "won"),
                ],
            ),
            lead_life(
                "slow",
                start,
                [(start, "assigned"), (day(3, 5), "working"), (day(3, 5, 0, 30), "won")],
            ),
        ],
    )
    out = nurture(database, "report", "funnel", "--since", "2026-03-01").stdout
    stays = {
        line.split()[1]: line
        for line in out.splitlines()
        if re.match(r"^│ (assigned|working) ", line)
    }
    assert "12 s" in stays["assigned"] and "3.0 d" in stays["assigned"], out
    assert "28 s" in stays["working"] and "30.0 min" in stays["working"], out
    assert " 0.0 " not in out
    assert "median" in out and "p90" in out


async def test_show_has_no_empty_header_and_no_double_space(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """Finding 29: `nurture show` of a lead without a title or last name reads
    'Tess @ Typo Co', and its summary table has no empty header row."""
    lead = lead_id("tess")
    address = dev_env.client.service_client.config.target_host
    async with running_engine(dev_env.client, standin, tmp_path) as engine:
        handle = await engine.profile(lead_id=lead, first_name="Tess", company="Typo Co")
        await wait_for_state(handle, lambda s: s.profile.company == "Typo Co")
        shown = await asyncio.to_thread(
            nurture, engine.database_url, "show", lead, TEMPORAL_ADDRESS=address
        )
    out = shown.stdout
    assert re.search(r"│ who\s+│ Tess @ Typo Co\s+│", out), out
    assert "Tess  @" not in out
    summary = out.split("Why this score")[0]
    assert "┃" not in summary, summary  # no header row of empty cells


MARKUP = "[/bold] no [bold red]budget[/] [link=https://evil.example]x[/link]"


def test_markup_in_lead_data_is_printed_as_it_is_never_as_styles(database: str) -> None:
    """Found trying it from outside (issue 14): a reject reason or a name holding "[/bold]"
    crashed ``nurture report returns`` and ``nurture show`` for everyone (Rich read it as
    markup), and "[link=…]" became a clickable link. What a lead or a rep wrote is text."""
    write_handoffs(make_engine(database), [H(40, "rejected", reason=MARKUP), H(45, "accepted")])
    shown = nurture(database, "report", "returns")
    assert "[/bold]" in shown.stdout and "[link=https://evil.example]" in shown.stdout
    assert "\x1b]8;" not in shown.stdout  # no terminal hyperlink escape
    forced = nurture(database, "report", "returns", FORCE_COLOR="1", TTY_COMPATIBLE="1")
    assert "[bold red]budget[/]" in re.sub(r"\x1b\[[0-9;]*m", "", forced.stdout)
    assert "\x1b]8;" not in forced.stdout


def test_show_prints_a_consent_given_at_an_offset_as_its_instant_in_utc() -> None:
    """Found from outside: ``consent.at = 2026-11-20T09:00:00+05:45`` was shown as 09:00 UTC;
    the table and the export held 03:15 UTC, the instant it was given."""
    given = datetime.fromisoformat("2026-11-20T09:00:00+05:45")
    record = ConsentRecord(source="api", version="signup-1", at=given, recorded_at=given)
    state = LeadState(lead_id="l1", profile=LeadProfile(lead_id="l1"), consents=[record])
    assert _consent_lines(state) == [["consent", "api, 2026-11-20 03:15 UTC, version signup-1"]]
