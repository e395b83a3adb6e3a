"""The Salesforce stand-in, over real HTTP with httpx: what a lead pusher sees from Salesforce."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nurture.standins.crm_standin import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    LEAD_EXTERNAL_ID,
    NOTIFICATION_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    OutboundDeliveryError,
    RecordedRequest,
    SalesforceStandIn,
    to_18_char_id,
)
from tests.receivers import PostReceiver, ReceivedPost, post_receiver

REPO_ROOT = Path(__file__).resolve().parent.parent
V60 = "/services/data/v60.0"
LEADS = f"{V60}/sobjects/Lead"
TASKS = f"{V60}/sobjects/Task"
ADA = {"FirstName": "Ada", "LastName": "Lovelace", "Company": "Analytical Engines"}
SECRET = "outbound-secret-0123456789"
REP = "005000000000001AAA"


@pytest.fixture
def crm() -> Iterator[SalesforceStandIn]:
    with SalesforceStandIn() as server:
        yield server


@pytest.fixture
def api(crm: SalesforceStandIn) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {crm.access_token}"}
    with httpx.Client(base_url=crm.url, headers=headers, timeout=5.0) as client:
        yield client


def upsert_lead(api: httpx.Client, key: str, **fields: Any) -> httpx.Response:
    return api.patch(f"{LEADS}/{LEAD_EXTERNAL_ID}/{key}", json=fields or ADA)


def upsert_task(api: httpx.Client, key: str, **fields: Any) -> httpx.Response:
    return api.patch(f"{TASKS}/Nurture_Event_Id__c/{key}", json=fields)


# --- a receiver for outbound notifications --------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[PostReceiver]:
    with post_receiver("/crm/notifications") as server:
        yield server


def verify(received: ReceivedPost, secret: str = SECRET) -> dict[str, Any]:
    """What an engine's receiver does: check the HMAC of timestamp + "." + raw body and that
    the timestamp is recent, then parse the body."""
    timestamp = received.headers[TIMESTAMP_HEADER]
    assert abs(time.time() - int(timestamp)) < 60
    signed = timestamp.encode() + b"." + received.body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received.headers[SIGNATURE_HEADER], expected)
    parsed: dict[str, Any] = json.loads(received.body)
    return parsed


def lead_field(crm: SalesforceStandIn, external_id: str, name: str) -> Any:
    lead = crm.lead_by_external_id(external_id)
    assert lead is not None, f"no lead {external_id!r}"
    return lead[name]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- discovery ------------------------------------------------------------------------------


def test_versions_are_listed_without_auth(crm: SalesforceStandIn) -> None:
    response = httpx.get(f"{crm.url}/services/data/")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    versions = response.json()
    assert versions[-1] == {"label": "Spring '24", "url": "/services/data/v60.0", "version": "60.0"}
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions


def test_lead_describe_names_the_fields_and_the_external_id(api: httpx.Client) -> None:
    response = api.get(f"{LEADS}/describe")

    assert response.status_code == 200
    described = {f["name"]: f for f in response.json()["fields"]}
    assert {
        "Id",
        "FirstName",
        "LastName",
        "Company",
        "Title",
        "Email",
        "Phone",
        "LeadSource",
        "Rating",
        "Status",
        "OwnerId",
        "Description",
        LEAD_EXTERNAL_ID,
    } <= described.keys()
    assert described[LEAD_EXTERNAL_ID]["externalId"] is True
    assert described["LastName"]["nillable"] is False
    assert [v["value"] for v in described["Rating"]["picklistValues"]] == ["Hot", "Warm", "Cold"]
    assert described["Status"]["restrictedPicklist"] is True
    assert response.json()["keyPrefix"] == "00Q"


def test_salesforce_ids_carry_the_case_checksum() -> None:
    # Ids from Salesforce's own documentation.
    for documented in ("00190000001pPvHAAU", "001D000000Kv3g5IAB", "0018a00001rBqb8AAC"):
        assert to_18_char_id(documented[:15]) == documented
        assert to_18_char_id(documented.upper()) == documented
        assert to_18_char_id(documented.lower()) == documented
    assert to_18_char_id("not-an-id") is None
    assert to_18_char_id("00190000001pPvH999") is None


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic dXNlcjpwYXNz"])
def test_missing_or_wrong_session_is_401_invalid_session_id(
    crm: SalesforceStandIn, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    response = httpx.patch(f"{crm.url}{LEADS}/{LEAD_EXTERNAL_ID}/ada", json=ADA, headers=headers)

    assert response.status_code == 401
    assert response.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    assert crm.leads == []


def test_client_credentials_flow_issues_a_signed_token_for_this_instance(
    crm: SalesforceStandIn,
) -> None:
    response = httpx.post(
        f"{crm.url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },
    )

    assert response.status_code == 200
    token = response.json()
    assert token["instance_url"] == crm.url
    assert token["token_type"] == "Bearer"
    assert token["access_token"] == crm.access_token == "00D-standin-token"
    # Salesforce's signature: base64 HMAC-SHA256 of id + issued_at under the client secret.
    mac = hmac.new(
        DEFAULT_CLIENT_SECRET.encode(), (token["id"] + token["issued_at"]).encode(), "sha256"
    )
    assert token["signature"] == base64.b64encode(mac.digest()).decode()
    assert abs(int(token["issued_at"]) / 1000 - time.time()) < 60

    created = httpx.post(
        f"{token['instance_url']}{LEADS}",
        json=ADA,
        headers={"Authorization": f"{token['token_type']} {token['access_token']}"},
    )
    assert created.status_code == 201


def test_client_credentials_may_come_as_http_basic(crm: SalesforceStandIn) -> None:
    response = httpx.post(
        f"{crm.url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )

    assert response.status_code == 200
    assert response.json()["access_token"] == crm.access_token


@pytest.mark.parametrize(
    ("form", "error"),
    [
        (
            {"client_id": DEFAULT_CLIENT_ID, "client_secret": "wrong"},
            {"error": "invalid_client", "error_description": "invalid client credentials"},
        ),
        (
            {"client_id": "someone-else", "client_secret": DEFAULT_CLIENT_SECRET},
            {"error": "invalid_client_id", "error_description": "client identifier invalid"},
        ),
        (
            {
                "grant_type": "password",
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
            },
            {"error": "unsupported_grant_type", "error_description": "grant type not supported"},
        ),
    ],
)
def test_bad_client_credentials_are_400_with_an_oauth_error(
    crm: SalesforceStandIn, form: dict[str, str], error: dict[str, str]
) -> None:
    response = httpx.post(
        f"{crm.url}/services/oauth2/token", data={"grant_type": "client_credentials", **form}
    )

    assert response.status_code == 400
    assert response.json() == error


def test_an_expired_session_is_refused_until_the_client_authenticates_again(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    old = crm.access_token
    new = crm.expire_session()

    assert new != old
    assert api.post(LEADS, json=ADA).json()[0]["errorCode"] == "INVALID_SESSION_ID"
    token = httpx.post(
        f"{crm.url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    ).json()["access_token"]
    assert token == new
    response = api.post(LEADS, json=ADA, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201


# --- leads ----------------------------------------------------------------------------------


def test_create_answers_201_and_the_record_reads_back_as_salesforce_returns_it(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    response = api.post(LEADS, json={**ADA, "Email": "ada@engines.example", "Rating": "Hot"})

    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "success": True, "errors": []}
    lead_id = body["id"]
    assert len(lead_id) == 18 and lead_id.startswith("00Q")
    assert to_18_char_id(lead_id[:15]) == lead_id

    record = api.get(f"{LEADS}/{lead_id}").json()
    assert record["attributes"] == {"type": "Lead", "url": f"{LEADS}/{lead_id}"}
    assert record["Id"] == lead_id
    assert record["Name"] == "Ada Lovelace"
    assert record["Status"] == "Open - Not Contacted"  # the picklist default
    assert record["OwnerId"] == crm.user_id
    assert record["Email"] == "ada@engines.example"
    assert record["IsConverted"] is False
    assert record["CreatedDate"].endswith("+0000")
    # 15-character and case-folded 18-character ids find the same record.
    assert api.get(f"{LEADS}/{lead_id[:15]}").json()["Id"] == lead_id
    assert api.get(f"{LEADS}/{lead_id.upper()}").json()["Id"] == lead_id
    only = api.get(f"{LEADS}/{lead_id}", params={"fields": "Email,rating"}).json()
    assert only == {
        "attributes": record["attributes"],
        "Email": "ada@engines.example",
        "Rating": "Hot",
        "Id": lead_id,
    }
    assert crm.leads == [{k: v for k, v in record.items() if k != "attributes"}]


def test_upsert_by_external_id_creates_once_then_updates_the_same_record(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    first = upsert_lead(api, "ada")
    second = upsert_lead(api, "ada", Title="Countess", Rating="Warm")

    assert first.status_code == 201
    assert first.json() == {
        "id": first.json()["id"],
        "success": True,
        "errors": [],
        "created": True,
    }
    # From API version 46.0 on, an upsert that updates answers 200 with created=false.
    assert second.status_code == 200
    assert second.json() == {
        "id": first.json()["id"],
        "success": True,
        "errors": [],
        "created": False,
    }
    [lead] = crm.leads
    assert lead["Id"] == first.json()["id"]
    assert (lead["LastName"], lead["Title"], lead["Rating"]) == ("Lovelace", "Countess", "Warm")
    assert lead[LEAD_EXTERNAL_ID] == "ada"
    assert crm.lead_by_external_id("ada") == lead
    by_external = api.get(f"{LEADS}/{LEAD_EXTERNAL_ID}/ada").json()
    assert by_external["Id"] == lead["Id"]


def test_upsert_before_api_46_answers_204_without_a_body_on_update(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    path = f"/services/data/v45.0/sobjects/Lead/{LEAD_EXTERNAL_ID}/ada"

    created = api.patch(path, json=ADA)
    updated = api.patch(path, json={"Title": "Countess"})

    assert created.status_code == 201
    assert created.json() == {"id": created.json()["id"], "success": True, "errors": []}
    assert updated.status_code == 204
    assert updated.content == b""
    assert len(crm.leads) == 1


def test_external_ids_match_case_insensitively_and_never_duplicate(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    lead_id = upsert_lead(api, "ada").json()["id"]

    assert upsert_lead(api, "ADA", Title="Countess").status_code == 200
    duplicate = api.post(LEADS, json={**ADA, LEAD_EXTERNAL_ID: "Ada"})

    assert duplicate.status_code == 400
    assert duplicate.json() == [
        {
            "message": f"duplicate value found: {LEAD_EXTERNAL_ID} duplicates value on record "
            f"with id: {lead_id}",
            "errorCode": "DUPLICATE_VALUE",
            "fields": [],
        }
    ]
    assert [lead["Id"] for lead in crm.leads] == [lead_id]


def test_a_retry_after_a_lost_answer_updates_instead_of_duplicating(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    crm.delay_after_commit(2.0)

    with pytest.raises(httpx.ReadTimeout):
        api.patch(f"{LEADS}/{LEAD_EXTERNAL_ID}/ada", json=ADA, timeout=0.3)
    retried = upsert_lead(api, "ada")

    assert retried.status_code == 200
    assert retried.json()["created"] is False
    assert len(crm.leads) == 1


def test_concurrent_upserts_of_one_external_id_make_one_lead(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    statuses: list[int] = []

    def push() -> None:
        statuses.append(upsert_lead(api, "ada").status_code)

    threads = [threading.Thread(target=push) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] * 7 + [201]
    assert len(crm.leads) == 1


def test_missing_required_fields_are_named_together(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    response = api.post(LEADS, json={"FirstName": "Ada", "Email": "ada@engines.example"})

    assert response.status_code == 400
    assert response.json() == [
        {
            "message": "Required fields are missing: [LastName, Company]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["LastName", "Company"],
        }
    ]
    assert crm.leads == []


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            {"Foo": "bar"},
            {
                "message": "No such column 'Foo' on sobject of type Lead",
                "errorCode": "INVALID_FIELD",
            },
        ),
        (
            {"Email": "not-an-address"},
            {
                "message": "Email: invalid email address: not-an-address",
                "errorCode": "INVALID_EMAIL_ADDRESS",
                "fields": ["Email"],
            },
        ),
        (
            {"Rating": "Lukewarm"},
            {
                "message": "Rating: bad value for restricted picklist field: Lukewarm",
                "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                "fields": ["Rating"],
            },
        ),
        (
            {"Status": "New"},
            {
                "message": "Lead Status: bad value for restricted picklist field: New",
                "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                "fields": ["Status"],
            },
        ),
        (
            {"Title": "x" * 129},
            {
                "message": f"Title: data value too large: {'x' * 129} (max length=128)",
                "errorCode": "STRING_TOO_LONG",
                "fields": ["Title"],
            },
        ),
        (
            {"OwnerId": "nobody"},
            {
                "message": "Owner ID: id value of incorrect type: nobody",
                "errorCode": "MALFORMED_ID",
                "fields": ["OwnerId"],
            },
        ),
        (
            {"Name": "Ada Lovelace"},
            {
                "message": "Unable to create/update fields: Name. Please check the security "
                "settings of this field and verify that it is read/write for your profile or "
                "permission set.",
                "errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
                "fields": ["Name"],
            },
        ),
        (
            {"Company": {"Name": "Engines"}},
            {
                "message": "Cannot deserialize instance of string from START_OBJECT value { or "
                "request may be missing a required field",
                "errorCode": "JSON_PARSER_ERROR",
            },
        ),
    ],
)
def test_invalid_fields_are_refused_with_salesforce_errors(
    crm: SalesforceStandIn, api: httpx.Client, fields: dict[str, Any], error: dict[str, Any]
) -> None:
    for response in (
        api.post(LEADS, json={**ADA, **fields}),
        upsert_lead(api, "x", **{**ADA, **fields}),
    ):
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json;charset=UTF-8"
        assert response.json() == [error]
    assert crm.leads == []


def test_description_takes_32000_characters_and_no_more(api: httpx.Client) -> None:
    assert api.post(LEADS, json={**ADA, "Description": "d" * 32000}).status_code == 201
    too_long = api.post(LEADS, json={**ADA, "Description": "d" * 32001})
    assert too_long.status_code == 400
    assert too_long.json()[0]["errorCode"] == "STRING_TOO_LONG"
    assert too_long.json()[0]["message"].endswith("(max length=32000)")


def test_field_names_are_case_insensitive_and_blank_means_null(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    body = {
        "lastname": "Lovelace",
        "COMPANY": "Engines",
        "Title": "",
        "attributes": {"type": "Lead"},
    }

    assert api.post(LEADS, json=body).status_code == 201
    [lead] = crm.leads
    assert (lead["LastName"], lead["Company"], lead["Title"]) == ("Lovelace", "Engines", None)


def test_upsert_body_must_not_carry_the_external_id(api: httpx.Client) -> None:
    response = upsert_lead(api, "ada", **ADA, Nurture_Lead_Id__c="ada")

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_FIELD"
    assert response.json()[0]["fields"] == [LEAD_EXTERNAL_ID]


def test_malformed_json_and_other_media_types_are_refused(api: httpx.Client) -> None:
    broken = api.post(LEADS, content=b'{"LastName": ', headers={"Content-Type": "application/json"})
    xml = api.post(LEADS, content=b"<Lead/>", headers={"Content-Type": "text/plain"})

    assert broken.status_code == 400
    assert broken.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert xml.status_code == 415
    assert xml.json()[0]["errorCode"] == "UNSUPPORTED_MEDIA_TYPE"


def test_update_by_id_answers_204_and_cannot_null_a_required_field(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    lead_id = api.post(LEADS, json=ADA).json()["id"]

    updated = api.patch(f"{LEADS}/{lead_id}", json={"Status": "Working - Contacted"})
    nulled = api.patch(f"{LEADS}/{lead_id}", json={"LastName": None})

    assert updated.status_code == 204 and updated.content == b""
    assert nulled.status_code == 400
    assert nulled.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    [lead] = crm.leads
    assert (lead["Status"], lead["LastName"]) == ("Working - Contacted", "Lovelace")


def test_unknown_records_and_resources_are_404_not_found(api: httpx.Client) -> None:
    unknown_id = "00Q000000000000EAA"
    not_found = [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]

    assert api.get(f"{LEADS}/{unknown_id}").json() == not_found
    assert api.patch(f"{LEADS}/{unknown_id}", json={"Title": "x"}).status_code == 404
    assert api.get(f"{V60}/sobjects/Opportunityish").json() == not_found
    assert api.patch(f"{LEADS}/Email/ada@x.example", json=ADA).json() == not_found
    assert api.get("/services/data/v61.0/sobjects/Lead").status_code == 404
    by_value = api.get(f"{LEADS}/{LEAD_EXTERNAL_ID}/nobody")
    assert by_value.status_code == 404
    assert by_value.json() == [
        {
            "message": "Provided external ID field does not exist or is not accessible: nobody",
            "errorCode": "NOT_FOUND",
        }
    ]
    malformed = api.patch(f"{LEADS}/not-an-id", json={"Title": "x"})
    assert malformed.status_code == 400
    assert malformed.json() == [
        {
            "message": "Lead ID: id value of incorrect type: not-an-id",
            "errorCode": "MALFORMED_ID",
            "fields": ["Id"],
        }
    ]


def test_a_method_the_resource_does_not_take_is_405(api: httpx.Client) -> None:
    response = api.put(LEADS, json=ADA)

    assert response.status_code == 405
    assert response.json() == [
        {
            "message": "HTTP Method 'PUT' not allowed. Allowed are HEAD,GET,POST",
            "errorCode": "METHOD_NOT_ALLOWED",
        }
    ]


def test_a_deleted_lead_is_gone_and_an_upsert_creates_it_again(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    old_id = upsert_lead(api, "ada").json()["id"]

    assert api.delete(f"{LEADS}/{old_id}").status_code == 204
    assert api.get(f"{LEADS}/{old_id}").status_code == 404
    assert api.delete(f"{LEADS}/{old_id}").json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    again = upsert_lead(api, "ada")

    assert again.status_code == 201
    assert [lead["Id"] for lead in crm.leads] == [again.json()["id"]] != [old_id]


# --- tasks ----------------------------------------------------------------------------------


def test_task_upsert_by_event_id_is_idempotent(crm: SalesforceStandIn, api: httpx.Client) -> None:
    lead_id = upsert_lead(api, "ada").json()["id"]
    activity = {
        "WhoId": lead_id,
        "Subject": "Visited /pricing",
        "Status": "Completed",
        "ActivityDate": "2026-11-24",
        "Description": "Score 85 (A)",
    }

    first = upsert_task(api, "evt-1", **activity)
    again = upsert_task(api, "evt-1", **activity)

    assert first.status_code == 201 and first.json()["created"] is True
    assert again.status_code == 200 and again.json() == {**first.json(), "created": False}
    [task] = crm.tasks_for(lead_id)
    assert crm.tasks_for("ada") == [task]
    assert task["Id"].startswith("00T") and len(task["Id"]) == 18
    assert (task["Subject"], task["Status"], task["IsClosed"]) == (
        "Visited /pricing",
        "Completed",
        True,
    )
    assert task["Nurture_Event_Id__c"] == "evt-1"
    record = api.get(f"{TASKS}/{task['Id']}").json()
    assert record["attributes"]["type"] == "Task"
    assert record["WhoId"] == lead_id


def test_a_task_for_a_lead_given_by_its_15_character_id_stores_the_18(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    lead_id = api.post(LEADS, json=ADA).json()["id"]

    assert api.post(TASKS, json={"WhoId": lead_id[:15], "Subject": "Call"}).status_code == 201
    assert [t["WhoId"] for t in crm.tasks] == [lead_id]


@pytest.mark.parametrize("who", ["00Q000000000000EAA", "001000000000000AAA", "nonsense"])
def test_a_task_about_no_such_lead_is_field_integrity_exception(
    crm: SalesforceStandIn, api: httpx.Client, who: str
) -> None:
    response = upsert_task(api, "evt-1", WhoId=who, Subject="Email: Welcome")

    assert response.status_code == 400
    assert response.json() == [
        {
            "message": f"Name ID: id value of incorrect type: {who}",
            "errorCode": "FIELD_INTEGRITY_EXCEPTION",
            "fields": ["WhoId"],
        }
    ]
    assert crm.tasks == []


def test_a_task_needs_a_subject_a_known_status_and_a_date(api: httpx.Client) -> None:
    lead_id = api.post(LEADS, json=ADA).json()["id"]

    no_subject = api.post(TASKS, json={"WhoId": lead_id})
    bad_status = api.post(TASKS, json={"WhoId": lead_id, "Subject": "x", "Status": "Done"})
    bad_date = api.post(TASKS, json={"WhoId": lead_id, "Subject": "x", "ActivityDate": "24/11"})

    assert no_subject.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert no_subject.json()[0]["fields"] == ["Subject"]
    assert bad_status.json()[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert bad_date.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


# --- faults and outages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, "SERVER_UNAVAILABLE"),
        (500, "UNKNOWN_EXCEPTION"),
        (403, "REQUEST_LIMIT_EXCEEDED"),
        (401, "INVALID_SESSION_ID"),
    ],
)
def test_fail_next_refuses_requests_without_touching_data(
    crm: SalesforceStandIn, api: httpx.Client, status: int, code: str
) -> None:
    crm.fail_next(status, count=2)

    refused = [upsert_lead(api, "ada") for _ in range(2)]
    accepted = upsert_lead(api, "ada")

    for response in refused:
        assert response.status_code == status
        [error] = response.json()
        assert error["errorCode"] == code and error["message"]
    assert accepted.status_code == 201
    assert len(crm.leads) == 1
    assert [r.status for r in crm.requests] == [status, status, 201]


def test_fail_next_refuses_429_because_salesforce_answers_403(crm: SalesforceStandIn) -> None:
    with pytest.raises(ValueError, match="403"):
        crm.fail_next(429)
    with pytest.raises(ValueError):
        crm.fail_next(404)


def test_down_refuses_connections_and_up_serves_the_same_url_with_the_data(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    url = crm.url
    assert upsert_lead(api, "ada").status_code == 201  # leaves a pooled keep-alive connection

    crm.down()
    assert crm.is_down and crm.url == url
    with pytest.raises(httpx.TransportError):
        upsert_lead(api, "ada")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/services/data/")

    crm.up()
    again = upsert_lead(api, "ada", Title="Countess")
    assert again.status_code == 200
    assert lead_field(crm, "ada", "Title") == "Countess"


# --- outbound notifications -----------------------------------------------------------------


def test_a_rejection_is_posted_signed_to_the_engine(
    crm: SalesforceStandIn, api: httpx.Client, receiver: PostReceiver
) -> None:
    lead_id = upsert_lead(api, "ada", **ADA, Nurture_Handoff__c=2).json()["id"]
    crm.set_outbound(receiver.url, SECRET)

    status = crm.rep_changes_status(
        "ada", "Closed - Not Converted", reason="No budget this year", owner_id=REP
    )

    assert status == 200
    [post] = receiver.posts
    notification = verify(post)
    assert notification == {
        "NotificationId": post.headers[NOTIFICATION_ID_HEADER],
        "sobject": "Lead",
        "id": lead_id,
        LEAD_EXTERNAL_ID: "ada",
        "Nurture_Handoff__c": 2,
        "Status": "Closed - Not Converted",
        "Reason": "No budget this year",
        "OwnerId": REP,
        "LastModifiedDate": notification["LastModifiedDate"],
    }
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers[NOTIFICATION_ID_HEADER]
    lead = crm.lead(lead_id)
    assert lead is not None
    assert (lead["Status"], lead["Status_Reason__c"], lead["OwnerId"]) == (
        "Closed - Not Converted",
        "No budget this year",
        REP,
    )
    assert lead["LastModifiedDate"] == notification["LastModifiedDate"]
    assert crm.pending_notifications == []


def test_a_tampered_notification_fails_verification(
    crm: SalesforceStandIn, api: httpx.Client, receiver: PostReceiver
) -> None:
    upsert_lead(api, "ada")
    crm.set_outbound(receiver.url, SECRET)
    crm.rep_changes_status("ada", "Working - Contacted")
    [post] = receiver.posts

    with pytest.raises(AssertionError):
        verify(ReceivedPost(post.path, post.headers, post.body.replace(b"Working", b"Closed!")))
    with pytest.raises(AssertionError):
        verify(post, secret="another-secret")
    redated = copy.copy(post.headers)
    redated.replace_header(TIMESTAMP_HEADER, str(int(post.headers[TIMESTAMP_HEADER]) - 1))
    with pytest.raises(AssertionError):  # the timestamp is signed too
        verify(ReceivedPost(post.path, redated, post.body))


def test_an_unacknowledged_notification_stays_pending_until_redelivered(
    crm: SalesforceStandIn, api: httpx.Client, receiver: PostReceiver
) -> None:
    upsert_lead(api, "ada")
    crm.set_outbound(receiver.url, SECRET)
    receiver.status = 503

    assert crm.rep_changes_status("ada", "Working - Contacted") == 503
    assert [n["Status"] for n in crm.pending_notifications] == ["Working - Contacted"]

    receiver.status = 204
    [delivery] = crm.redeliver()

    assert (delivery.status, delivery.attempt, delivery.acknowledged) == (204, 2, True)
    first, second = receiver.posts
    assert first.body == second.body
    assert first.headers[NOTIFICATION_ID_HEADER] == second.headers[NOTIFICATION_ID_HEADER]
    assert crm.pending_notifications == []
    assert [d.status for d in crm.outbound_deliveries] == [503, 204]


def test_an_unreachable_engine_raises_but_the_crm_change_stands(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    upsert_lead(api, "ada")
    crm.set_outbound(f"http://127.0.0.1:{free_port()}/hook", SECRET)

    with pytest.raises(OutboundDeliveryError):
        crm.rep_changes_status("ada", "Working - Contacted")

    assert lead_field(crm, "ada", "Status") == "Working - Contacted"
    assert len(crm.pending_notifications) == 1
    assert crm.outbound_deliveries[0].status is None


def test_a_converted_lead_is_read_only_to_the_api(
    crm: SalesforceStandIn, api: httpx.Client, receiver: PostReceiver
) -> None:
    lead_id = upsert_lead(api, "ada").json()["id"]
    crm.set_outbound(receiver.url, SECRET)

    assert crm.rep_changes_status("ada", "Closed - Converted") == 200

    lead = crm.lead("ada")
    assert lead is not None and lead["IsConverted"] is True and lead["ConvertedDate"]
    converted = [
        {
            "message": "cannot reference converted lead",
            "errorCode": "CANNOT_UPDATE_CONVERTED_LEAD",
            "fields": [],
        }
    ]
    assert upsert_lead(api, "ada", Title="x").json() == converted
    assert upsert_task(api, "evt-9", WhoId=lead_id, Subject="Opened email").json() == converted
    assert api.get(f"{LEADS}/{lead_id}").json()["Status"] == "Closed - Converted"
    with pytest.raises(ValueError):
        crm.rep_changes_status("ada", "Working - Contacted")


def test_rep_changes_status_checks_its_arguments(
    crm: SalesforceStandIn, api: httpx.Client, receiver: PostReceiver
) -> None:
    upsert_lead(api, "ada")

    with pytest.raises(RuntimeError):
        crm.rep_changes_status("ada", "Working - Contacted")  # no outbound URL yet
    crm.set_outbound(receiver.url, SECRET)
    with pytest.raises(KeyError):
        crm.rep_changes_status("nobody", "Working - Contacted")
    with pytest.raises(ValueError):
        crm.rep_changes_status("ada", "Qualified")
    with pytest.raises(ValueError):
        crm.rep_changes_status("ada", "Working - Contacted", owner_id="001000000000000AAA")
    assert lead_field(crm, "ada", "Status") == "Open - Not Contacted"
    assert receiver.posts == []


def test_the_demo_control_route_changes_status_over_http(
    crm: SalesforceStandIn, api: httpx.Client, receiver: PostReceiver
) -> None:
    upsert_lead(api, "ada")
    crm.set_outbound(receiver.url, SECRET)

    response = httpx.post(
        f"{crm.url}/_standin/leads/ada/status",
        json={"Status": "Closed - Not Converted", "Reason": "Student"},
    )

    assert response.status_code == 200
    assert response.json() == {"receiver_status": 200}
    assert verify(receiver.posts[0])["Reason"] == "Student"


# --- inspection and the command line --------------------------------------------------------


def test_requests_are_recorded_and_api_usage_is_reported(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    first = upsert_lead(api, "ada")
    second = api.get(f"{LEADS}/{first.json()['id']}")

    assert first.headers["sforce-limit-info"] == "api-usage=1/15000"
    assert second.headers["sforce-limit-info"] == "api-usage=2/15000"
    assert crm.requests == [
        RecordedRequest("PATCH", f"{LEADS}/{LEAD_EXTERNAL_ID}/ada", 201),
        RecordedRequest("GET", f"{LEADS}/{first.json()['id']}", 200),
    ]


def test_wait_for_wakes_on_a_change_and_times_out_otherwise(
    crm: SalesforceStandIn, api: httpx.Client
) -> None:
    timer = threading.Timer(0.2, lambda: upsert_lead(api, "late"))
    timer.start()
    try:
        assert crm.wait_for(lambda: crm.lead_by_external_id("late") is not None, timeout=5)
    finally:
        timer.join()
    started = time.monotonic()
    assert not crm.wait_for(lambda: len(crm.leads) > 1, timeout=0.2)
    assert time.monotonic() - started < 2


def test_command_line_serves_until_interrupted() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nurture.standins.crm_standin", "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" on ", 1)[1].split()[0]
        token = httpx.post(
            f"{url}/services/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        ).json()["access_token"]
        created = httpx.patch(
            f"{url}{LEADS}/{LEAD_EXTERNAL_ID}/ada",
            json=ADA,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201

        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "1 lead(s), 0 task(s)" in out


def test_the_demo_control_needs_the_token_when_the_standin_has_one(
    receiver: PostReceiver,
) -> None:
    """Finding 19 of issue 13, for the CRM stand-in too: with a control token (the command
    line always has one) no local caller gets a signed status change posted without it."""
    with SalesforceStandIn(control_token="t0ken") as guarded:
        headers = {"Authorization": f"Bearer {guarded.access_token}"}
        with httpx.Client(base_url=guarded.url, headers=headers, timeout=5.0) as api:
            upsert_lead(api, "ada")
        guarded.set_outbound(receiver.url, SECRET)
        control = f"{guarded.url}/_standin/leads/ada/status"
        change = {"Status": "Working - Contacted"}

        refused = httpx.post(control, json=change)
        assert refused.status_code == 401
        assert "X-Standin-Token" in refused.json()[0]["message"]
        assert receiver.posts == []
        allowed = httpx.post(control, json=change, headers={"X-Standin-Token": "t0ken"})
        assert allowed.status_code == 200 and len(receiver.posts) == 1
