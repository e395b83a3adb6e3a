"""Issue 13, finding 3 (workflow side): a touch whose email cannot be rendered is held in its
place, visible on the lead, in the read model and in ``nurture audit``, and goes out once the
template is fixed and the rules version changes (time-skipping server, real worker)."""

from __future__ import annotations

import asyncio
import shutil
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from nurture.cli.audit import audit, held_touches
from nurture.domain.leads import workflow_id_for
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from nurture.store.read_model import TouchRecord, table_of
from tests.conftest import (
    TEST_RULES,
    TEST_TEMPLATES,
    lead_id,
    lead_state,
    running_engine,
    wait_for_email,
    wait_for_state,
)

TRAP = '{% if lead.company == "Held Touch Co" %}{{ rep_name }}{% endif %}'
"""Renders for the sample leads the rules check uses, fails for this test's lead only."""


def _copies(tmp_path: Path) -> tuple[Path, Path]:
    config, templates = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(TEST_RULES, config)
    shutil.copytree(TEST_TEMPLATES, templates)
    touch = templates / "t" / "touch.html"
    touch.write_text(touch.read_text().replace("{% block content %}", "{% block content %}" + TRAP))
    return config, templates


def _touch_rows(database_url: str, lead: str) -> list[tuple[str, str, str | None]]:
    touch = table_of(TouchRecord)
    with make_engine(database_url).connect() as conn:
        rows = conn.execute(
            select(touch.c.key, touch.c.status, touch.c.detail)
            .where(touch.c.lead_id == lead)
            .order_by(touch.c.at, touch.c.key)
        )
        return [(key.removeprefix(f"{lead}:"), status, detail) for key, status, detail in rows]


async def test_a_touch_that_cannot_be_rendered_is_held_and_sent_once_the_template_is_fixed(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """Before: the touch was dropped (``last_error: TemplateError``, the cadence moved on,
    ``touches_skipped`` 0). Now it keeps its step, the lead and the read model say why, the
    audit lists it as blocked, hourly checks change nothing while the rules stay the same, and
    the fix (with its new rules version) sends it and the cadence goes on."""
    env = time_skipping_env
    config, templates = _copies(tmp_path)
    lead = lead_id("held")
    async with running_engine(
        env.client, standin, tmp_path, config_dir=config, templates_dir=templates
    ) as engine:
        await engine.profile(
            lead_id=lead, email=f"{lead}@corp.example", company="Held Touch Co", company_size=900
        )
        handle = engine.client.get_workflow_handle(workflow_id_for(lead))
        held = await wait_for_state(handle, lambda s: s.held_touch is not None)
        assert held.held_touch is not None
        assert held.held_touch.label == "enterprise/s01 (cycle 1)"
        assert "rep_name" in held.held_touch.reason
        assert held.cadence is not None and held.cadence.step_index == 0
        assert held.touches_sent == held.touches_skipped == 0
        assert [e.kind for e in held.timeline].count("touch held") == 1

        await env.sleep(timedelta(hours=3))  # three hourly checks: same rules, still held
        waiting = await lead_state(handle)
        assert waiting.held_touch is not None and waiting.held_touch.checks >= 2
        assert waiting.cadence is not None and waiting.cadence.step_index == 0
        assert standin.messages_with(lead_id=lead, category="touch") == []
        blocked = held_touches(make_engine(engine.database_url))
        mine = [row for row in blocked if row["lead_id"] == lead]
        assert len(mine) == 1 and "rep_name" in mine[0]["reason"]
        assert mine[0]["touch"] == "enterprise/s01 (cycle 1)"

        # The marketer fixes the template; the rules version changes with it (a config file
        # is touched too, so this holds whether or not templates are part of the version).
        touch = templates / "t" / "touch.html"
        touch.write_text(touch.read_text().replace(TRAP, ""))
        (config / "cadences.yaml").write_text(
            (config / "cadences.yaml").read_text() + "# template fixed\n"
        )
        await asyncio.sleep(1.1)  # the worker looks at the files at most once a second
        await env.sleep(timedelta(hours=1, minutes=1))
        sent = await wait_for_state(handle, lambda s: s.touches_sent == 1)
        await wait_for_email(standin, lead, "touch")

    assert sent.held_touch is None
    assert sent.cadence is not None and sent.cadence.step_index == 1
    assert [e.kind for e in sent.timeline].count("touch released") == 1
    rows = _touch_rows(engine.database_url, lead)
    assert [status for _key, status, _detail in rows] == ["held", "sent"]
    assert rows[0][0].endswith(":held") and rows[1][0] == rows[0][0].removesuffix(":held")
    assert not [
        row for row in held_touches(make_engine(engine.database_url)) if row["lead_id"] == lead
    ]


async def test_nurture_audit_lists_a_held_touch_as_blocked_with_its_reason(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """Finding 3: ``nurture audit`` (with the read model) counts the held touch and lists it
    among the leads at risk, with the template error as the reason (exit status 1)."""
    config, templates = _copies(tmp_path)
    lead = lead_id("blocked")
    async with running_engine(
        dev_env.client, standin, tmp_path, config_dir=config, templates_dir=templates
    ) as engine:
        handle = await engine.profile(
            lead_id=lead, email=f"{lead}@corp.example", company="Held Touch Co", company_size=900
        )
        await wait_for_state(handle, lambda s: s.held_touch is not None and s.ledger_flushes > 0)
        read_model = make_engine(engine.database_url)
        for _ in range(40):  # the read model is written by the lead's own local activity
            report = await audit(dev_env.client, timedelta(0), read_model)
            mine = [p for p in report.problems if p["lead_id"] == lead]
            if mine:
                break
            await asyncio.sleep(0.25)
    assert report.held_touches >= 1 and not report.as_json()["ok"]
    assert len(mine) == 1 and mine[0]["stage"] == "nurturing"
    assert mine[0]["problem"].startswith("touch enterprise/s01 held since ")
    assert "rep_name" in mine[0]["problem"] and "blocked" in mine[0]["problem"]
