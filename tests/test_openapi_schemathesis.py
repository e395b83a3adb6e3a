"""Finding 20 of issue 13: ``/openapi.json`` tells the truth. schemathesis (every check: no 5xx,
only documented statuses, bodies that match the declared schemas, requests the spec allows are
accepted and those it forbids refused, ``Allow`` on 405, auth not ignored) runs against the real
service over HTTP, with a dev server and a worker behind it, once per role and without a key,
with bounded examples so the whole file stays well under two minutes on two cores."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.core.failures import Failure
from schemathesis.engine import events, from_schema
from schemathesis.engine.recorder import Interaction
from schemathesis.schemas import BaseSchema
from temporalio.testing import WorkflowEnvironment

from nurture.access.auth import create_key
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from tests.conftest import running_engine

SEED = 20  # fixed: a failure here reproduces with the same cases
MAX_EXAMPLES = 4  # per operation and phase; the coverage phase adds its boundary cases
ROLES = ["ingest", "marketer", "rep", "operator", None]  # None: no key at all

PUBLIC = {"GET /healthz", "POST /webhooks/sendgrid", "POST /webhooks/crm", "GET /u/{token}"}
PUBLIC |= {"POST /u/{token}", "GET /p/{token}", "POST /p/{token}"}
PUBLIC |= {"GET /t.js", "POST /t/{site_key}", "POST /t/{site_key}/identify"}  # the website's
PUBLIC |= {"POST /f/{site_key}/{form}"}
REP_WORK = {f"POST /api/leads/{{lead_id}}/{a}" for a in ("accept", "contact", "reject", "outcome")}
REP_WORK |= {"GET /api/leads/{lead_id}", "GET /api/tasks", "POST /api/tasks/{task_id}/complete"}
INGEST = {"POST /api/events", "POST /api/leads"}
OPERATOR_ONLY = {"DELETE /api/leads/{lead_id}"}
MARKETING = {
    "POST /api/leads/import",
    "GET /api/leads/{lead_id}",
    "GET /api/reports/{name}",
    "GET /api/campaigns",
    "PUT /api/campaigns/{name}",
    "POST /api/campaigns/{name}/costs",
    "GET /api/dashboard/charts",
}
PERSONAL_DATA = {"GET /api/leads/{lead_id}/export"}  # operators only: all held on a person
# What each run explores in depth (the role's own work); every other operation still gets a
# few cases, enough to see its 401/403 answered as declared. None: the public routes.
IN_DEPTH: dict[str | None, set[str]] = {
    "ingest": INGEST,
    "marketer": INGEST | MARKETING,
    "rep": REP_WORK,
    "operator": INGEST | MARKETING | REP_WORK | OPERATOR_ONLY | PERSONAL_DATA,
    None: PUBLIC,
}
# schemathesis' defaults, plus 413: a body over an endpoint's limit is refused as too large.
REFUSED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
REFUSED += ["5xx"]
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # schemathesis' defaults
# Rules no JSON Schema can state, so a request the spec allows may still get a 422 naming the
# rule: by operation, the fields such a 422 may name ("*": the request as a whole). A 422 naming
# any other field is a mismatch: everything else the handlers refuse, the spec forbids.
ANY = "*"
BEYOND_THE_SCHEMA: dict[str, dict[str, str]] = {
    **{op: {ANY: "an operator key names the rep it acts for"} for op in REP_WORK},
    "POST /api/leads/import": {
        ANY: "a CSV file: its header needs lead_id; rows checked one by one"
    },
    "GET /api/reports/{name}": {ANY: "since must be before until"},
    "GET /api/dashboard/charts": {ANY: "since must be before until"},
    "POST /api/campaigns/{name}/costs": {
        ANY: "a period ends after it starts; costs cover 1970-01-01 until 2200-01-01"
    },
    "POST /api/leads": {
        "consent": "text or version given; an ip for a form; at from 2000 to a day ahead of now "
        "with an offset a zone has used; plain text, a version slug, an IP address",
    },
    "POST /api/events": {
        "at": "from 2000 to a day ahead of now: relative to the clock; an offset a zone has used",
        "props": "at most 8 levels deep and 16 KiB as JSON, text without control characters",
    },
}


# Batches explored: a batch of 10,000 valid items (the declared limit, a boundary the coverage
# phase tries) starts as many leads and takes minutes. schemathesis reads the spec with this
# bound instead, so a longer batch the service takes is no mismatch; test_ingest_edge holds the
# service to the real limit.
BATCH_EXPLORED = 20


def _with_bounded_batches(spec: dict[str, Any]) -> dict[str, Any]:
    for label in INGEST:
        method, path = label.lower().split(" ")
        body = spec["paths"][path][method]["requestBody"]["content"]["application/json"]
        for schema in body["schema"]["anyOf"]:
            if schema.get("type") == "array":
                schema["maxItems"] = BATCH_EXPLORED
    return spec


def excused(failure: Failure, interaction: Interaction | None) -> bool:
    """A 422 for a rule beyond the schema, or a batch longer than explored."""
    request = interaction.request.body if interaction else None
    if failure.code == "ST201" and failure.operation in INGEST and _longer_batch(request):
        return True
    response = interaction.response.content if interaction and interaction.response else None
    beyond = BEYOND_THE_SCHEMA.get(failure.operation or "", {})
    if failure.code != "ST202" or getattr(failure, "status_code", None) != 422 or not beyond:
        return False
    return ANY in beyond or _refused_fields(response) <= set(beyond)


def _longer_batch(body: bytes | None) -> bool:
    try:
        items = json.loads(body or b"")
    except ValueError:
        return False
    return isinstance(items, list) and len(items) > BATCH_EXPLORED


def _refused_fields(response: bytes | None) -> set[object]:
    """The fields a 422 names: of each refused item (a batch) or of the request."""
    try:
        body = json.loads(response or b"")
    except ValueError:
        return {None}
    errors = [e for item in body.get("items", []) for e in item["errors"]] or body["errors"]
    locs = [e["loc"][1:] if e["loc"][:1] == ["body"] else e["loc"] for e in errors]
    return {loc[0] if loc else None for loc in locs}


@dataclass
class Service:
    url: str
    keys: dict[str, str]


@dataclass
class Findings:
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
async def service(
    dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    tmp_path: Path = tmp_path_factory.mktemp("schemathesis")
    with SendGridStandIn() as standin:
        async with running_engine(
            dev_env.client, standin, tmp_path, web=True, crm_webhook_secret="crm-secret"
        ) as engine:
            db = make_engine(engine.database_url)
            keys = {
                "ingest": create_key(db, "ingest", "tracker")[1],
                "marketer": create_key(db, "marketer", "mia")[1],
                "rep": create_key(db, "rep", "alice", rep_id="alice")[1],
                "operator": create_key(db, "operator", "ops")[1],
            }
            assert engine.web_url is not None
            yield Service(engine.web_url, keys)


def run_schemathesis(openapi_url: str, role: str | None, key: str | None) -> Findings:
    """Two schemathesis runs (the engine ``st run`` drives) with every check enabled: every
    phase on the role's own operations, a few fuzzed cases on the others."""
    found = Findings()
    own = sorted(IN_DEPTH[role])
    spec = _with_bounded_batches(httpx.get(openapi_url).json())
    for in_depth in (True, False):
        config = schemathesis.Config.from_dict(
            {
                "seed": SEED,
                "headers": {"Authorization": f"Bearer {key}"} if key else {},
                "generation": {"max-examples": MAX_EXAMPLES if in_depth else 1, "database": "none"},
                "phases": {
                    "stateful": {"max-steps": 6, "enabled": in_depth},
                    "coverage": {"enabled": in_depth},
                },
                "checks": {"negative_data_rejection": {"expected-statuses": REFUSED}},
                "cache": {"enabled": False},
                "request-timeout": 30,
                "base-url": openapi_url.removesuffix("/openapi.json"),
            }
        )
        schema = schemathesis.openapi.from_dict(copy.deepcopy(spec), config=config)
        selected = schema.include(name=own) if in_depth else schema.exclude(name=own)
        _collect(selected, found)
    return found


def _collect(schema: BaseSchema, found: Findings) -> None:
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            found.cases += len(event.recorder.cases)
            for case_id, checks in event.recorder.checks.items():
                interaction = event.recorder.interactions.get(case_id)
                found.failures.extend(
                    _described(check.failure_info)
                    for check in checks
                    if check.failure_info and not excused(check.failure_info.failure, interaction)
                )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            where = getattr(event, "label", None) or ""
            found.errors.append(f"{where}: {getattr(event, 'value', None) or event.exception}")
        elif isinstance(event, events.EngineFinished):
            found.failures.extend(f"{f.operation}: {f.title}: {f.message}" for f in event.failures)


def _described(info: object) -> str:
    failure = info.failure  # type: ignore[attr-defined]
    sample = info.code_sample  # type: ignore[attr-defined]
    return f"{failure.operation}: {failure.title}: {failure.message}\n    {sample}"


async def test_every_operation_of_the_spec_has_a_role(service: Service) -> None:
    """Finding 20: a new endpoint is explored in depth by the runs of the roles that use it."""
    async with httpx.AsyncClient() as http:
        spec = (await http.get(f"{service.url}/openapi.json")).json()
    labels = {f"{m.upper()} {path}" for path, ops in spec["paths"].items() for m in ops}
    assert labels == PUBLIC | INGEST | MARKETING | REP_WORK | OPERATOR_ONLY | PERSONAL_DATA


async def test_every_reference_in_the_spec_resolves(service: Service) -> None:
    """Found from outside: ``POST /api/leads`` referred to ``#/$defs/ConsentGiven``, which is
    nowhere in the spec, so schemathesis never sent a consent. Every ``$ref`` points into it."""
    async with httpx.AsyncClient() as http:
        spec = (await http.get(f"{service.url}/openapi.json")).json()
    refs = set(_refs(spec))
    assert "#/components/schemas/ConsentGiven-Input" in refs  # the edge's consent, bounds and all
    assert not {ref for ref in refs if _resolved(spec, ref) is None}


def _refs(schema: object) -> Iterator[str]:
    if isinstance(schema, dict):
        if isinstance(schema.get("$ref"), str):
            yield schema["$ref"]
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


def _resolved(spec: object, ref: str) -> object:
    """What a local JSON pointer (RFC 6901) ``ref`` points to in ``spec``, or None."""
    if not ref.startswith("#/"):
        return None
    found = spec
    for part in ref.removeprefix("#/").split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(found, dict) or key not in found:
            return None
        found = found[key]
    return found


async def test_a_refusal_names_the_field_and_a_405_names_every_method(service: Service) -> None:
    """Finding 20: 422 is ``{"detail": words, "errors": [...]}`` as declared (not FastAPI's bare
    list), and OPTIONS on a path with a route per method is 405 with all of them in Allow."""
    operator = {"Authorization": f"Bearer {service.keys['operator']}"}
    async with httpx.AsyncClient(base_url=service.url) as http:
        short = await http.post("/api/leads/x/reject", json={"reason": "no"}, headers=operator)
        options = await http.options("/u/some-token")
        import_options = await http.options("/api/leads/import", headers=operator)
    assert short.status_code == 422
    assert short.json()["detail"] == "body.reason: String should have at least 3 characters"
    assert short.json()["errors"][0]["loc"] == ["body", "reason"]
    assert options.status_code == 405 and options.headers["Allow"] == "GET, POST"
    assert import_options.headers["Allow"] == "POST"  # not GET /api/leads/{lead_id}'s


@pytest.mark.parametrize("role", ROLES, ids=[role or "no-key" for role in ROLES])
async def test_the_openapi_spec_is_what_the_service_does(
    service: Service, role: str | None
) -> None:
    """Finding 20: with this role's key (or none), schemathesis finds 0 failures."""
    key = service.keys[role] if role else None
    found = await asyncio.to_thread(run_schemathesis, f"{service.url}/openapi.json", role, key)
    assert found.cases > 0
    assert not found.errors, "\n".join(found.errors)
    assert not found.failures, f"{len(set(found.failures))} failures:\n" + "\n".join(
        sorted(set(found.failures))
    )


async def test_json_items_are_the_types_the_spec_says(service: Service) -> None:
    """Finding 20: a JSON item is validated strictly, as its schema says (``"at": 0`` was taken
    as 1970, ``"budget": false`` as 0), and the schema states the edge's rules (no '@' in a lead
    id, time zones by name) so that what it allows is accepted."""
    ingest = {"Authorization": f"Bearer {service.keys['ingest']}"}
    async with httpx.AsyncClient(base_url=service.url, headers=ingest) as http:
        spec = (await http.get("/openapi.json")).json()
        epoch = await http.post("/api/events", json={"lead_id": "s1", "type": "page_view", "at": 0})
        falsy = await http.post("/api/leads", json={"lead_id": "s1", "budget": False})
        whole = await http.post("/api/leads", json={"lead_id": "s1", "company_size": 596.0})
    assert epoch.status_code == 422 and epoch.json()["items"][0]["errors"][0]["loc"] == ["at"]
    assert falsy.status_code == 422 and falsy.json()["items"][0]["errors"][0]["loc"] == ["budget"]
    assert whole.status_code == 200
    body = spec["paths"]["/api/leads"]["post"]["requestBody"]["content"]["application/json"]
    profile = body["schema"]["anyOf"][0]["properties"]
    assert "@" not in profile["lead_id"]["pattern"] and "sent_fields" not in profile
    assert "Europe/Berlin" in profile["timezone"]["anyOf"][0]["enum"]
