"""Broken rule files and templates are refused with problems a marketer can act on
("file: key: what is wrong"), and leads/events are validated at the edge.

Every broken variant is a copy of tests/fixtures/{rules,templates} in tmp_path with one edit.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from nurture.config.config_loader import ConfigError, load_rules
from nurture.domain.leads import LeadEvent, LeadProfile

FIXTURES = Path(__file__).parent / "fixtures"
TEST_RULES = FIXTURES / "rules"
TEST_TEMPLATES = FIXTURES / "templates"


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """Private copies of the fixture rules and templates: (config dir, templates dir)."""
    config = tmp_path / "config"
    templates = tmp_path / "templates"
    shutil.copytree(TEST_RULES, config)
    shutil.copytree(TEST_TEMPLATES, templates)
    return config, templates


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def problems_of(config: Path, templates: Path | None = None, time_scale: float = 1.0) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_rules(config, templates, time_scale)
    problems = info.value.problems
    assert problems, "a ConfigError must list at least one problem"
    for problem in problems:
        assert problem in str(info.value)
    return problems


def only_problem(config: Path, templates: Path | None = None) -> str:
    problems = problems_of(config, templates)
    assert len(problems) == 1, problems
    return problems[0]


def in_file(problem: str, path: Path) -> str:
    """Check the problem starts with the file's path (and line, when the key is in the file);
    return the rest ("key: what is wrong").

    Assertions look at the rest only: tmp_path holds the test's name, which would otherwise
    let a word from the name satisfy a check on the message.
    """
    assert re.match(rf"{re.escape(str(path))}(:\d+)?: ", problem), f"{problem!r} not in {path}"
    return re.sub(rf"^{re.escape(str(path))}(:\d+)?: ", "", problem)


# --- the shipped fixture rules ------------------------------------------------------------


def test_the_fixture_rules_and_templates_load():
    rules = load_rules(TEST_RULES, TEST_TEMPLATES)
    assert rules.scoring.behaviours["form_fill"] == 20
    assert [c.id for c in rules.cadences.cadences] == [
        "enterprise",
        "multichannel",
        "general",
        "recycle",
    ]
    assert rules.routing.sla.contact_within == timedelta(hours=4)
    assert rules.engine.max_events_per_run == 400
    assert rules.version


def test_the_rules_version_changes_when_a_file_changes(dirs):
    config, _ = dirs
    before = load_rules(config).version
    assert load_rules(config).version == before
    edit(config / "scoring.yaml", "form_fill: 20", "form_fill: 25")
    assert load_rules(config).version != before


def test_engine_yaml_is_optional(dirs):
    config, _ = dirs
    (config / "engine.yaml").unlink()
    assert load_rules(config).engine.max_events_per_run == 2000


# --- broken rule files --------------------------------------------------------------------


def test_behaviour_points_that_are_not_a_number_are_refused(dirs):
    config, _ = dirs
    edit(config / "scoring.yaml", "page_view: 1", "page_view: ten")
    problem = in_file(only_problem(config), config / "scoring.yaml")
    assert "behaviours.page_view" in problem
    assert "integer" in problem and "'ten'" in problem


def test_a_misspelt_top_level_key_is_called_unknown(dirs):
    config, _ = dirs
    edit(config / "scoring.yaml", "return_visit_after: 1d", "return_visti_after: 1d")
    problem = in_file(only_problem(config), config / "scoring.yaml")
    assert problem.startswith("return_visti_after: ")
    assert "unknown key" in problem and "spelling" in problem


def test_a_missing_required_key_is_named(dirs):
    config, _ = dirs
    edit(config / "routing.yaml", "fallback_owner: maria\n", "")
    problem = only_problem(config)
    assert problem == f"{config / 'routing.yaml'}: fallback_owner: required key is missing"


def test_a_duration_written_in_words_is_refused_with_the_expected_form(dirs):
    config, _ = dirs
    edit(config / "scoring.yaml", "inactive_after: 14d", "inactive_after: 3 days")
    problem = in_file(only_problem(config), config / "scoring.yaml")
    assert "decay.inactive_after" in problem
    assert "'3 days'" in problem and "4h" in problem


def test_a_problem_quotes_the_bad_value_once(dirs):
    config, _ = dirs
    edit(config / "scoring.yaml", "inactive_after: 14d", "inactive_after: 3 days")
    problem = in_file(only_problem(config), config / "scoring.yaml")
    assert problem.count("3 days") == 1, problem


def test_an_absurd_duration_is_a_config_error_not_a_crash(dirs):
    config, _ = dirs
    edit(config / "routing.yaml", "contact_within: 4h", "contact_within: .inf")
    problem = in_file(only_problem(config), config / "routing.yaml")
    assert problem.startswith("sla.contact_within: ")


def test_cadences_without_a_catch_all_are_refused(dirs):
    config, _ = dirs
    edit(
        config / "cadences.yaml",
        "    name: Everyone else\n",
        "    name: Everyone else\n    segment: {region: EMEA}\n",
    )
    problem = in_file(only_problem(config), config / "cadences.yaml")
    assert "catch-all" in problem and "segment" in problem


def test_two_recycle_cadences_are_refused(dirs):
    config, _ = dirs
    edit(
        config / "cadences.yaml",
        "    name: Enterprise, 12 weekly touches\n",
        "    name: Enterprise, 12 weekly touches\n    recycle: true\n",
    )
    problem = in_file(only_problem(config), config / "cadences.yaml")
    assert "recycle: true" in problem and "found 2" in problem


def test_no_recycle_cadence_is_refused(dirs):
    config, _ = dirs
    edit(config / "cadences.yaml", "    recycle: true\n", "")
    problem = in_file(only_problem(config), config / "cadences.yaml")
    assert "recycle: true" in problem and "found 0" in problem


def test_duplicate_step_names_are_refused(dirs):
    config, _ = dirs
    edit(config / "cadences.yaml", "{name: s03,", "{name: s02,")
    problem = in_file(only_problem(config), config / "cadences.yaml")
    assert problem == 'cadence "enterprise": step names must be unique', problem


def test_a_routing_pool_naming_an_unknown_rep_is_refused(dirs):
    config, _ = dirs
    edit(config / "routing.yaml", "pool: [alice, bob]", "pool: [alice, bobby]")
    problem = in_file(only_problem(config), config / "routing.yaml")
    assert problem.startswith('routing rule "emea": ') and "bobby" in problem
    assert "pool" in problem, f"the problem should name the key (pool): {problem}"


def test_a_manager_who_is_not_a_rep_is_refused(dirs):
    config, _ = dirs
    edit(
        config / "routing.yaml",
        "region: EMEA, manager: maria}\n  - {id: bob",
        "region: EMEA, manager: mario}\n  - {id: bob",
    )
    problem = in_file(only_problem(config), config / "routing.yaml")
    assert problem == "rep \"alice\": manager 'mario' is not a listed rep", problem


def test_a_fallback_owner_who_is_not_a_rep_is_refused(dirs):
    config, _ = dirs
    edit(config / "routing.yaml", "fallback_owner: maria", "fallback_owner: zoe")
    problem = in_file(only_problem(config), config / "routing.yaml")
    assert "fallback_owner 'zoe'" in problem


def test_a_fit_rule_on_an_unknown_profile_field_is_refused(dirs):
    config, _ = dirs
    edit(
        config / "scoring.yaml",
        "when: {title: {contains: [vp, director, chief]}}",
        "when: {job_title: {contains: [vp]}}",
    )
    problem = in_file(only_problem(config), config / "scoring.yaml")
    assert problem.startswith('fit rule "senior title": ')
    assert "unknown profile field 'job_title'" in problem and "custom.<name>" in problem


def test_a_segment_on_an_unknown_profile_field_is_refused(dirs):
    config, _ = dirs
    edit(
        config / "cadences.yaml",
        "segment: {company_size: {min: 500}}",
        "segment: {employees: {min: 500}}",
    )
    problem = in_file(only_problem(config), config / "cadences.yaml")
    assert problem.startswith('cadence "enterprise": segment: ')
    assert "unknown profile field 'employees'" in problem


def test_custom_fields_may_be_used_in_fit_rules(dirs):
    config, _ = dirs
    edit(
        config / "scoring.yaml",
        "when: {title: {contains: [vp, director, chief]}}",
        "when: {custom.plan: [pro]}",
    )
    assert load_rules(config).scoring.fit[0].when["custom.plan"].holds("PRO")


def test_invalid_yaml_is_reported_with_file_and_line(dirs):
    config, _ = dirs
    edit(config / "routing.yaml", "fallback_owner: maria", "fallback_owner: [maria")
    problem = only_problem(config)
    line = next(
        i
        for i, text in enumerate((config / "routing.yaml").read_text().splitlines(), 1)
        if "fallback_owner" in text
    )
    assert problem.startswith(f"{config / 'routing.yaml'}:")
    assert "not valid YAML" in problem
    # The parser notices the unclosed bracket at or just after the line that has it.
    reported = int(problem.split(f"{config / 'routing.yaml'}:", 1)[1].split(":", 1)[0])
    assert line <= reported <= line + 2


def test_a_file_that_is_not_a_mapping_is_refused(dirs):
    config, _ = dirs
    (config / "scoring.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    problem = in_file(only_problem(config), config / "scoring.yaml")
    assert "mapping" in problem


def test_a_missing_rule_file_is_named(dirs):
    config, _ = dirs
    (config / "routing.yaml").unlink()
    problem = only_problem(config)
    assert problem.startswith(f"{config / 'routing.yaml'}: missing")


def test_a_missing_config_directory_is_named(tmp_path):
    problem = only_problem(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in problem


def test_every_broken_file_is_reported_at_once(dirs):
    config, _ = dirs
    edit(config / "scoring.yaml", "page_view: 1", "page_view: ten")
    edit(config / "routing.yaml", "fallback_owner: maria", "fallback_owner: zoe")
    (config / "cadences.yaml").unlink()
    problems = problems_of(config)
    assert len(problems) == 3
    assert {Path(p.split(":", 1)[0]).name for p in problems} == {
        "scoring.yaml",
        "routing.yaml",
        "cadences.yaml",
    }


@pytest.mark.parametrize("scale", [0, -1])
def test_time_scale_must_be_positive(scale):
    assert "time_scale" in problems_of(TEST_RULES, time_scale=scale)[0]


# --- time_scale ---------------------------------------------------------------------------


def test_time_scale_divides_the_durations_in_the_files():
    rules = load_rules(TEST_RULES, time_scale=60)
    assert rules.routing.sla.contact_within == timedelta(minutes=4)
    assert rules.routing.forward_activity_every == timedelta(seconds=15)
    assert rules.scoring.return_visit_after == timedelta(minutes=24)
    assert rules.scoring.decay.every == timedelta(hours=2, minutes=48)
    general = rules.cadences.get("general")
    assert general.steps[0].delay == timedelta(minutes=1)
    assert general.between_cycles == timedelta(minutes=336)
    assert rules.version.endswith("@x60")


def test_scaled_rules_are_not_scaled_again_after_a_round_trip():
    rules = load_rules(TEST_RULES, time_scale=60)
    again = type(rules).model_validate_json(rules.model_dump_json())
    assert again == rules


def test_time_scale_also_divides_durations_left_at_their_default(dirs):
    config, _ = dirs
    edit(config / "scoring.yaml", "return_visit_after: 1d\n", "")
    rules = load_rules(config, time_scale=60)
    # The default is 24h; at 60x every other duration is scaled, so this one must be too.
    assert rules.scoring.return_visit_after == timedelta(minutes=24)


def test_time_scale_also_divides_durations_written_as_seconds(dirs):
    config, _ = dirs
    edit(config / "routing.yaml", "contact_within: 4h", "contact_within: 14400")
    rules = load_rules(config, time_scale=60)
    assert rules.routing.sla.contact_within == timedelta(minutes=4)


def test_time_scale_does_not_shrink_the_activity_timeout():
    # Scaling makes a week pass in minutes for demos; a SendGrid call or a database write
    # still takes real time, so activity timeouts must not shrink with it (10s -> 0.17s).
    rules = load_rules(TEST_RULES, time_scale=60)
    assert rules.engine.activity_timeout == timedelta(seconds=10)


def test_a_problem_says_the_file_line_and_the_names_of_the_cadence_and_step(dirs):
    """Finding 25: not ``cadences.yaml: cadences.0.steps.1.delay: ...`` but the line and the
    names a marketer knows the cadence and step by."""
    config, _ = dirs
    cadences = config / "cadences.yaml"
    edit(cadences, "{name: s02, delay: 1w,", "{name: s02, delay: 3dd,")
    edit(cadences, "{name: s03, delay: 1w,", "{name: s03, colour: red, delay: 1w,")
    line = (
        cadences.read_text()
        .splitlines()
        .index(next(t for t in cadences.read_text().splitlines() if "delay: 3dd" in t))
    )
    assert problems_of(config) == [
        f'{cadences}:{line + 1}: cadence "enterprise", step 2 "s02": '
        "delay '3dd' is not a duration (use 90s, 4h, 3d, 2w or 1h30m)",
        f'{cadences}:{line + 2}: cadence "enterprise", step 3 "s03": '
        "colour: unknown key (check the spelling)",
    ]


def test_a_problem_in_a_rep_names_the_rep_and_its_line(dirs):
    config, _ = dirs
    routing = config / "routing.yaml"
    edit(routing, "max_open_leads: 2", "max_open_leads: two")
    problem = only_problem(config)
    lines = routing.read_text().splitlines()
    number = next(i for i, t in enumerate(lines, 1) if "max_open_leads: two" in t)
    assert problem.startswith(f"{routing}:{number}: rep "), problem
    assert "max_open_leads" in problem and "'two'" in problem


# --- templates ----------------------------------------------------------------------------


def test_a_template_using_an_undefined_variable_is_refused_with_file_line_and_name(dirs):
    config, templates = dirs
    (templates / "t" / "touch.html").write_text(
        '{% extends "layout.html" %}\n'
        "{% block content %}\n"
        "<p>Hi {{ lead.first_name or 'there' }}</p>\n"
        "<p>Your code: {{ offer_code }}</p>{% endblock %}\n",
        encoding="utf-8",
    )
    problems = problems_of(config, templates)
    assert all(p.startswith("templates/t/touch.html:4: ") for p in problems), problems
    assert all("offer_code" in p for p in problems)
    assert any("cadence general step hello" in p for p in problems)


def test_every_undefined_variable_of_every_template_is_reported_in_one_run(dirs):
    """Finding 24: not one undefined name per template per run: all of them, each with its
    file:line, in the touch template and in a notification alike."""
    config, templates = dirs
    (templates / "t" / "touch.html").write_text(
        '{% extends "layout.html" %}\n'
        "{% block content %}\n"
        "<p>{{ offer_code }}</p>\n"
        "<p>{{ lead.nickname }}</p>\n"
        "<p>{% for x in coupons %}{{ x }}{% endfor %}</p>{% endblock %}\n",
        encoding="utf-8",
    )
    handoff = templates / "notifications" / "handoff.html"
    handoff.write_text(
        handoff.read_text().replace("{% block content %}", "{% block content %}{{ rep_name }}")
    )
    problems = problems_of(config, templates)
    for where, name in (
        ("templates/t/touch.html:3: ", "offer_code"),
        ("templates/t/touch.html:4: ", "nickname"),
        ("templates/t/touch.html:5: ", "coupons"),
        ("templates/notifications/handoff.html:2: ", "rep_name"),
    ):
        assert any(p.startswith(where) and name in p for p in problems), (where, problems)


def test_an_undefined_variable_in_one_steps_own_template_names_that_step(dirs):
    config, templates = dirs
    (templates / "t" / "promo.html").write_text(
        "<p>Hello</p>\n<p>{{ lead.nickname }}</p>\n", encoding="utf-8"
    )
    edit(
        config / "cadences.yaml",
        'template: t/touch.html, subject: "News"',
        'template: t/promo.html, subject: "News"',
    )
    problem = only_problem(config, templates)
    assert problem.startswith("templates/t/promo.html:2: undefined variable")
    assert "nickname" in problem and "cadence recycle step later" in problem


def test_a_template_syntax_error_is_reported_with_file_and_line(dirs):
    config, templates = dirs
    (templates / "t" / "touch.html").write_text(
        "<p>\nHi {{ lead.first_name }\n</p>\n", encoding="utf-8"
    )
    problems = problems_of(config, templates)
    assert all(p.startswith("templates/t/touch.html:2: syntax error") for p in problems), problems


def test_a_missing_template_file_is_named(dirs):
    config, templates = dirs
    edit(
        config / "cadences.yaml",
        'template: t/touch.html, subject: "Touch 12"',
        'template: t/gone.html, subject: "Touch 12"',
    )
    problem = only_problem(config, templates)
    assert problem.startswith("templates/t/gone.html: template file not found")
    assert "cadence enterprise step s12" in problem


def test_a_missing_notification_template_is_named(dirs):
    config, templates = dirs
    (templates / "notifications" / "escalation.html").unlink()
    problem = only_problem(config, templates)
    assert problem.startswith("templates/notifications/escalation.html: template file not found")


def test_an_undefined_variable_in_a_subject_points_at_the_subject_not_the_template(dirs):
    config, templates = dirs
    edit(
        config / "cadences.yaml",
        'subject: "Following up"',
        'subject: "Following up {{ lead.nickname }}"',
    )
    problem = only_problem(config, templates)
    assert "nickname" in problem and "cadence general step follow-up" in problem
    # touch.html is fine; blaming it sends the marketer to the wrong file.
    assert "subject" in problem, problem


def test_templates_are_not_checked_without_a_templates_dir(dirs):
    config, templates = dirs
    (templates / "t" / "touch.html").write_text("{{ broken }", encoding="utf-8")
    assert load_rules(config).cadences.get("general") is not None


# --- LeadEvent / LeadProfile at the edge --------------------------------------------------

AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_an_event_time_without_a_time_zone_is_refused():
    with pytest.raises(ValidationError) as info:
        LeadEvent.model_validate(
            {"lead_id": "l1", "type": "page_view", "at": "2026-11-24T10:00:00"}
        )
    assert "time zone" in str(info.value)


def test_an_event_time_with_a_time_zone_is_accepted():
    event = LeadEvent.model_validate(
        {"lead_id": "l1", "type": "page_view", "at": "2026-11-24T10:00:00Z"}
    )
    assert event.at == AT


@pytest.mark.parametrize("lead_id", ["", " lead", "-lead", "lead id", "lead/1", "x" * 201])
def test_a_bad_lead_id_is_refused(lead_id):
    with pytest.raises(ValidationError, match="lead_id"):
        LeadEvent.model_validate({"lead_id": lead_id, "type": "page_view"})
    with pytest.raises(ValidationError, match="lead_id"):
        LeadProfile.model_validate({"lead_id": lead_id})


@pytest.mark.parametrize("lead_id", ["lead-1", "crm:00Q5e000", "ada@example.com", "a.b_c+d"])
def test_ordinary_lead_ids_are_accepted(lead_id):
    assert LeadProfile.model_validate({"lead_id": lead_id}).lead_id == lead_id


@pytest.mark.parametrize("kind", ["PageView", "page-view", "1st_visit", "", "page view"])
def test_a_bad_event_type_is_refused(kind):
    with pytest.raises(ValidationError, match="type"):
        LeadEvent.model_validate({"lead_id": "l1", "type": kind})


def test_an_unknown_event_field_is_refused():
    with pytest.raises(ValidationError) as info:
        LeadEvent.model_validate({"lead_id": "l1", "type": "page_view", "page": "/pricing"})
    assert "page" in str(info.value) and "extra" in str(info.value).lower()


def test_an_unknown_profile_field_is_refused():
    with pytest.raises(ValidationError) as info:
        LeadProfile.model_validate({"lead_id": "l1", "job_title": "VP"})
    assert "job_title" in str(info.value)


@pytest.mark.parametrize(
    "fields", [{"email": "not-an-email"}, {"company_size": -1}, {"budget": -5}]
)
def test_impossible_profile_values_are_refused(fields):
    with pytest.raises(ValidationError):
        LeadProfile.model_validate({"lead_id": "l1", **fields})


def _event(**fields: object) -> LeadEvent:
    return LeadEvent.model_validate(
        {
            "lead_id": "l1",
            "type": "page_view",
            "at": AT,
            "url": "https://x.example/pricing",
            **fields,
        }
    )


def test_the_same_event_sent_twice_gets_the_same_identity():
    first, second = _event().with_identity(), _event().with_identity()
    assert first.event_id is not None and first.event_id.startswith("ev-")
    assert first.event_id == second.event_id


def test_props_order_does_not_change_an_events_identity():
    a = _event(props={"a": 1, "b": 2}).with_identity()
    b = _event(props={"b": 2, "a": 1}).with_identity()
    assert a.event_id == b.event_id


@pytest.mark.parametrize(
    "change",
    [
        {"at": AT + timedelta(seconds=1)},
        {"url": "https://x.example/blog/a"},
        {"type": "email_click"},
        {"lead_id": "l2"},
        {"props": {"x": 1}},
        {"campaign": "c1"},
    ],
)
def test_different_events_get_different_identities(change):
    assert _event().with_identity().event_id != _event(**change).with_identity().event_id


def test_an_event_that_has_an_id_keeps_it():
    assert _event(event_id="crm-42").with_identity().event_id == "crm-42"


def test_an_event_without_a_time_gets_no_identity():
    event = LeadEvent.model_validate({"lead_id": "l1", "type": "page_view"})
    assert event.with_identity().event_id is None
