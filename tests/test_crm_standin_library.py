"""The Salesforce stand-in as ``simple-salesforce`` sees it (the library the CRM push uses):
logging in by OAuth client credentials, upserts and reads by external id, a delete, an expired
session the library logs in again for, and each refusal raised as the library's own error
for it. The only thing between them is the transport that sends what the library addresses to
``*.salesforce.com`` to the stand-in's loopback address (``activities.crm.salesforce_session``).
Then the CRM client on top: the library's errors as retried or final activity errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest
from simple_salesforce import Salesforce, SFType
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from temporalio.exceptions import ApplicationError

from activities.crm import LEAD_EXTERNAL_ID, TASK_EXTERNAL_ID, CrmClient, salesforce_session
from nurture.config.settings import CrmSettings
from nurture.standins.crm_standin import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    SalesforceStandIn,
    to_18_char_id,
)

ADA = {"FirstName": "Ada", "LastName": "Lovelace", "Company": "Analytical Engines"}


@pytest.fixture
def crm() -> Iterator[SalesforceStandIn]:
    with SalesforceStandIn() as server:
        yield server


def library(crm: SalesforceStandIn, secret: str = DEFAULT_CLIENT_SECRET) -> Salesforce:
    session, domain = salesforce_session(crm.url)
    return Salesforce(
        consumer_key=DEFAULT_CLIENT_ID,
        consumer_secret=secret,
        domain=domain,
        session=session,
        version="60.0",
    )


def lead(sf: Salesforce) -> SFType:
    return cast(SFType, sf.Lead)  # typed as the bulk APIs too


def task(sf: Salesforce) -> SFType:
    return cast(SFType, sf.Task)


def error_code(err: SalesforceError) -> str:
    """The first error's code, as Salesforce lists them in its answer."""
    errors = cast(list[dict[str, str]], err.content)
    return errors[0]["errorCode"]


def logins(crm: SalesforceStandIn) -> int:
    return sum(1 for r in crm.requests if r.path == "/services/oauth2/token")


def test_the_library_logs_in_upserts_reads_and_deletes_by_external_id(
    crm: SalesforceStandIn,
) -> None:
    sf = library(crm)
    created = lead(sf).upsert(f"{LEAD_EXTERNAL_ID}/ada-1", ADA, raw_response=True)
    assert created.status_code == 201
    crm_id = created.json()["id"]
    assert to_18_char_id(crm_id) == crm_id
    assert lead(sf).upsert(f"{LEAD_EXTERNAL_ID}/ada-1", {"Status": "Working - Contacted"}) in (
        200,
        204,
    )
    found = lead(sf).get_by_custom_id(LEAD_EXTERNAL_ID, "ada-1")
    assert found["Id"] == crm_id and found["Status"] == "Working - Contacted"
    assert found["Company"] == "Analytical Engines"

    note = {"WhoId": crm_id, "Subject": "page_view", "Status": "Completed"}
    assert task(sf).upsert(f"{TASK_EXTERNAL_ID}/ev-1", note) == 201
    assert task(sf).upsert(f"{TASK_EXTERNAL_ID}/ev-1", note) in (200, 204)  # once, not twice
    assert len(crm.tasks_for(crm_id)) == 1

    assert lead(sf).delete(f"{LEAD_EXTERNAL_ID}/ada-1") == 204
    assert crm.lead_by_external_id("ada-1") is None
    with pytest.raises(SalesforceResourceNotFound):
        lead(sf).delete(f"{LEAD_EXTERNAL_ID}/ada-1")


def test_an_expired_session_is_logged_in_again_by_the_library(crm: SalesforceStandIn) -> None:
    sf = library(crm)
    assert logins(crm) == 1
    crm.expire_session()
    assert lead(sf).upsert(f"{LEAD_EXTERNAL_ID}/ada-2", ADA) == 201
    assert logins(crm) == 2


def test_each_refusal_is_the_librarys_own_error(crm: SalesforceStandIn) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as login:
        library(crm, secret="wrong")
    assert login.value.code == "invalid_client"

    sf = library(crm)
    with pytest.raises(SalesforceMalformedRequest) as bad:
        lead(sf).upsert(f"{LEAD_EXTERNAL_ID}/ada-3", {**ADA, "NoSuchField__c": 1})
    assert error_code(bad.value) == "INVALID_FIELD"
    crm.fail_next(403)
    with pytest.raises(SalesforceRefusedRequest) as limited:
        lead(sf).upsert(f"{LEAD_EXTERNAL_ID}/ada-3", ADA)
    assert error_code(limited.value) == "REQUEST_LIMIT_EXCEEDED"
    crm.fail_next(503)
    with pytest.raises(SalesforceGeneralError) as down:
        lead(sf).upsert(f"{LEAD_EXTERNAL_ID}/ada-3", ADA)
    assert down.value.status == 503


def _client(crm: SalesforceStandIn, secret: str = DEFAULT_CLIENT_SECRET) -> CrmClient:
    return CrmClient(CrmSettings(crm.url, client_id=DEFAULT_CLIENT_ID, client_secret=secret))


def _refusal(call: object) -> ApplicationError:
    assert callable(call)
    with pytest.raises(ApplicationError) as refused:
        call()
    return refused.value


def test_the_crm_client_retries_what_may_mend_and_refuses_what_will_not(
    crm: SalesforceStandIn,
) -> None:
    client = _client(crm)
    crm.down()  # down when the worker starts: nothing is lost, the push is retried
    outage = _refusal(lambda: client.upsert_lead("ada-4", ADA))
    assert outage.type == "CrmUnavailable" and not outage.non_retryable
    crm.up()
    crm_id = client.upsert_lead("ada-4", ADA)
    assert client.lead_id("ada-4") == crm_id

    crm.fail_next(403)
    limited = _refusal(lambda: client.upsert_lead("ada-4", ADA))
    assert limited.type == "CrmUnavailable" and limited.next_retry_delay is not None
    crm.fail_next(500)
    assert _refusal(lambda: client.upsert_lead("ada-4", ADA)).type == "CrmUnavailable"
    refused = _refusal(lambda: client.upsert_lead("ada-4", {"NoSuchField__c": 1}))
    assert refused.type == "CrmRejected" and refused.non_retryable
    assert "INVALID_FIELD" in refused.message

    assert client.delete_lead("ada-4") is True
    assert client.delete_lead("ada-4") is False  # already gone: erasure goes on

    wrong = _refusal(lambda: _client(crm, secret="wrong").upsert_lead("ada-5", ADA))
    assert wrong.type == "CrmRejected" and "invalid_client" in wrong.message


def test_a_salesforce_url_logs_in_at_its_own_domain() -> None:
    session, domain = salesforce_session("https://acme.my.salesforce.com")
    assert domain == "acme.my"
    assert session.get_adapter("https://acme.my.salesforce.com/x").to is None  # type: ignore[attr-defined]
