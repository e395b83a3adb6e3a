"""Templates are marketers' only, render with limits, and go out as the version checked.

Finding 6: a lead's name is never template source (rep-alert subjects are plain text; lead
values are variables, escaped in HTML), and a pathological marketer template fails fast with
a non-retryable ``TemplateError``. Finding 3: templates are loaded, checked and frozen with
the rules: a broken edit on a live system is refused, the last good version is what is sent,
and the refusal, with every problem, is in ``nurture config status``.

Real parts: the email activity on the SendGrid stand-in, SQLite, the CLI in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities import EmailActivities, Mailer
from nurture.access.consent import LinkSigner
from nurture.config.rules_source import RulesSource
from nurture.config.settings import MailerSettings
from nurture.config.templating import TemplateSource
from nurture.contract.messages import EmailRequest
from nurture.domain.rules import Sender
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from nurture.store.rules_status import read_rules_status
from tests.conftest import (
    TEST_RULES,
    TEST_SECRET,
    TEST_TEMPLATES,
    lead_id,
    lead_state,
    running_engine,
    wait_for_email,
)

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_URL = "https://nurture.test"
NESTED_RANGE = "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"
HOSTILE_NAMES = ["{{ 7*7 }}", "{{ nope }}", "{{ accept_url }}", NESTED_RANGE]


def emails(
    engine: Engine, standin: SendGridStandIn, templates: Path | TemplateSource
) -> EmailActivities:
    return EmailActivities(
        engine,
        Mailer(MailerSettings("SG.k", standin.url)),
        templates,
        LinkSigner(secret=TEST_SECRET, public_url=PUBLIC_URL),
    )


def lead_values(last_name: str) -> dict[str, object]:
    return {
        "first_name": "Ada",
        "last_name": last_name,
        "company": "Acme",
        "display_name": f"Ada {last_name}",
    }


def handoff_alert(lead: str, last_name: str) -> EmailRequest:
    """What the workflow queues on a handoff: the subject built with the lead's name."""
    rep = {"id": "alice", "name": "Alice", "email": "alice@test.example"}
    return EmailRequest(
        key=f"notify:{lead}:handoff:1:alice",
        lead_id=lead,
        category="handoff",
        to_email="alice@test.example",
        to_name="Alice",
        sender=Sender(email="m@test.example"),
        template="notifications/handoff.html",
        subject=f"New sales-ready lead: Ada {last_name}",
        context={
            "lead": lead_values(last_name),
            "rep": rep,
            "score": 105,
            "grade": "A",
            "story": None,
            "sla_due_at": "2026-11-24T14:00:00+00:00",
        },
    )


def touch(lead: str, subject: str, last_name: str = "Lovelace", n: int = 1) -> EmailRequest:
    return EmailRequest(
        key=f"touch:{lead}:general:e1:c1:hello{n}",
        lead_id=lead,
        category="touch",
        to_email=f"{lead}@corp.example",
        sender=Sender(email="m@test.example"),
        template="t/touch.html",
        subject=subject,
        context={
            "lead": lead_values(last_name),
            "step": "hello",
            "cadence": "general",
            "cycle": 1,
        },
    )


@pytest.mark.parametrize("last_name", HOSTILE_NAMES)
def test_a_rep_alert_for_a_lead_named_like_a_template_is_sent_with_the_name_as_text(
    last_name: str, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """Finding 6: the alert is sent (no TemplateError while the SLA clock runs), its subject
    holds the name literally (no 49, no signed link), and the body escapes it as data."""
    engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}")
    activity = emails(engine, standin, TEST_TEMPLATES)
    request = handoff_alert("hostile-1", last_name)
    result = ActivityEnvironment().run(activity.send_email, request)
    assert result.status == "sent"
    (message,) = standin.messages_with(lead_id="hostile-1")
    assert message.subject == " ".join(f"New sales-ready lead: Ada {last_name}".split())
    assert "49" not in message.subject and PUBLIC_URL not in message.subject
    html = message.contents["text/html"]
    assert f"{PUBLIC_URL}/inbox/" in html  # the rep's links are in the body, where they belong
    assert "Ada " + last_name.replace("'", "&#39;").replace('"', "&#34;") in html
    assert ">49<" not in html and " 49 " not in html


def test_a_touch_subject_is_the_marketers_template_and_lead_values_stay_values(
    standin: SendGridStandIn, tmp_path: Path
) -> None:
    """Finding 6: cadences.yaml subjects render; a lead value inside them is not rendered again."""
    engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}")
    activity = emails(engine, standin, TEST_TEMPLATES)
    request = touch("hostile-2", "News for {{ lead.last_name }}", last_name="{{ 7*7 }}")
    assert ActivityEnvironment().run(activity.send_email, request).status == "sent"
    (message,) = standin.messages_with(lead_id="hostile-2")
    assert message.subject == "News for {{ 7*7 }}"


@pytest.mark.parametrize(
    "body",
    [
        NESTED_RANGE,
        "{% for i in range(10**9) %}x{% endfor %}",
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}",
        "{{ 'x' * 10**9 }}",
        "{{ 'x'|center(10**9) }}",
        "{{ 9 ** (9 ** 9) }}",
        "{{ '%999999999s' % 'x' }}",
    ],
)
def test_a_pathological_marketer_template_fails_fast_with_a_template_error(
    body: str, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """Finding 6: loops, calls and operators spend from a budget; nothing pins the worker."""
    templates = tmp_path / "templates"
    shutil.copytree(TEST_TEMPLATES, templates)
    (templates / "t" / "touch.html").write_text(body, encoding="utf-8")
    engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}")
    activity = emails(engine, standin, templates)
    started = time.monotonic()
    with pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(activity.send_email, touch("slow-1", "Hi"))
    assert time.monotonic() - started < 2.0
    assert raised.value.type == "TemplateError" and raised.value.non_retryable
    assert "templates/t/touch.html:1: " in str(raised.value)
    assert standin.messages_with(lead_id="slow-1") == []


# --- finding 3: templates are part of the rules version ----------------------------------------


def _touch_later(path: Path, text: str) -> None:
    stat = path.stat()
    path.write_text(text, encoding="utf-8")
    os.utime(path, (stat.st_atime + 5, stat.st_mtime + 5))  # a distinct mtime, whatever the fs


def _config_status(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), "config", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NURTURE_DATABASE_URL": database_url, "COLUMNS": "200"},
    )


def test_a_broken_template_edit_is_refused_the_last_good_version_is_sent_and_status_says_why(
    standin: SendGridStandIn, tmp_path: Path
) -> None:
    """Finding 3: with the worker's rules source live, adding ``{{ rep_name }}`` (and another
    undefined name) to a touch template is refused; the touch still goes out as the version
    in force says, from memory; ``nurture config status`` names every problem with file:line;
    a fixed edit becomes the new version and is what is sent next."""
    config, templates = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(TEST_RULES, config)
    shutil.copytree(TEST_TEMPLATES, templates)
    database_url = f"sqlite:///{tmp_path / 'n.db'}"
    engine = make_engine(database_url)
    source = RulesSource(config, templates, recheck_every=0)
    source.record_status_in(engine)
    activity = emails(engine, standin, source)
    good = source.current().version
    page = templates / "t" / "touch.html"
    original = page.read_text(encoding="utf-8")

    broken = original.replace(
        "{% block content %}",
        "{% block content %}<p>BROKEN EDIT {{ rep_name }}</p>\n<p>{{ offer }}</p>\n",
    )
    _touch_later(page, broken)
    assert source.current().version == good  # refused: the last good version stays
    ActivityEnvironment().run(activity.send_email, touch("edit-1", "Hi", n=1))
    (sent,) = standin.messages_with(lead_id="edit-1")
    assert "BROKEN EDIT" not in sent.contents["text/html"]  # the file on disk is not rendered

    status = read_rules_status(engine)
    assert status is not None and status.version == good and status.rejection_pending
    problems = status.rejected_problems
    assert any("templates/t/touch.html:2: " in p and "rep_name" in p for p in problems)
    assert any("templates/t/touch.html:3: " in p and "offer" in p for p in problems)
    shown = _config_status(database_url)
    assert shown.returncode == 1, shown.stderr
    reported = json.loads(shown.stdout)
    assert reported["version"] == good
    assert reported["last_rejected_edit"]["pending"] is True
    assert reported["last_rejected_edit"]["problems"] == status.rejected_problems

    _touch_later(page, original.replace("{% block content %}", "{% block content %}<p>FIXED</p>"))
    fixed = source.current().version
    assert fixed != good
    ActivityEnvironment().run(activity.send_email, touch("edit-2", "Hi", n=2))
    (sent,) = standin.messages_with(lead_id="edit-2")
    assert "FIXED" in sent.contents["text/html"]
    after = _config_status(database_url)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["version"] == fixed
    assert json.loads(after.stdout)["last_rejected_edit"]["pending"] is False


def test_the_rules_version_covers_the_templates(tmp_path: Path) -> None:
    """Finding 3: a template edit alone makes a new rules version (workflows see it change)."""
    templates = tmp_path / "templates"
    shutil.copytree(TEST_TEMPLATES, templates)
    source = RulesSource(TEST_RULES, templates, recheck_every=0)
    before = source.current().version
    page = templates / "t" / "touch.html"
    _touch_later(page, page.read_text(encoding="utf-8") + "\n")
    assert source.current().version != before


async def test_a_lead_named_like_a_template_still_gets_its_rep_alert_end_to_end(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """Finding 6, through the workflow: the hand-off alert of a lead whose last name is
    ``{{ nope }}`` is sent (the SLA clock runs), its subject holds the name as text."""
    lead = lead_id("hostile")
    async with running_engine(time_skipping_env.client, standin, tmp_path) as engine:
        handle = await engine.profile(
            lead_id=lead, email="h@corp.example", first_name="Ada", last_name="{{ nope }}"
        )
        state = await engine.request_call(lead)
        assert state.owner is not None
        (alert,) = await wait_for_email(standin, lead, "handoff")
        assert alert.subject == "New sales-ready lead: Ada {{ nope }}"
        assert (await lead_state(handle)).last_error is None
