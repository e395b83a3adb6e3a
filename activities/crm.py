"""Pushing leads to a Salesforce-shaped CRM and keeping them up to date.

Every write is an upsert by external id (``Nurture_Lead_Id__c`` for leads,
``Nurture_Event_Id__c`` for forwarded activity), so a retried push never creates a second
record. An outage or a 5xx is retried (the activity's retry policy, forever); a refusal (a 4xx
such as a converted lead that can no longer change) is final and surfaces on the lead.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from nurture.config.settings import CrmSettings
from nurture.contract.messages import CRM_ADD_TASK, CRM_UPSERT_LEAD, CrmLeadUpsert, CrmNote

log = structlog.get_logger(__name__)

LEAD_EXTERNAL_ID = "Nurture_Lead_Id__c"
TASK_EXTERNAL_ID = "Nurture_Event_Id__c"


class CrmClient:
    """A small Salesforce REST client: OAuth client-credentials login, one re-login on 401."""

    def __init__(self, settings: CrmSettings) -> None:
        self.settings = settings
        self.http = httpx.Client(timeout=20)
        self._lock = threading.Lock()
        self._token = settings.token
        self._instance = settings.base_url

    def _login(self) -> None:
        s = self.settings
        if not (s.client_id and s.client_secret):
            raise ApplicationError(
                "the CRM refused the token and no NURTURE_CRM_CLIENT_ID/SECRET are set",
                type="CrmRejected",
                non_retryable=True,
            )
        answer = self.http.post(
            f"{s.base_url}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": s.client_id,
                "client_secret": s.client_secret,
            },
        )
        if answer.status_code != 200:
            raise _refusal(answer, "CRM login")
        body = answer.json()
        self._token, self._instance = body["access_token"], body.get("instance_url", s.base_url)

    def request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        url_path = f"/services/data/{self.settings.api_version}{path}"
        for attempt in (1, 2):
            with self._lock:
                if self._token is None:
                    self._login()
                token, instance = self._token, self._instance
            try:
                answer = self.http.request(
                    method,
                    f"{instance}{url_path}",
                    json=json,
                    headers={"Authorization": f"Bearer {token}"},
                )
            except httpx.TransportError as exc:
                raise ApplicationError(f"CRM unreachable: {exc}", type="CrmUnavailable") from exc
            if answer.status_code == 401:
                with self._lock:
                    if self._token == token:  # not already renewed by another thread
                        self._token = None  # expired session: log in again
                if attempt == 1:
                    continue
                raise ApplicationError(
                    "CRM session refused right after login", type="CrmUnavailable"
                )
            return answer
        return answer

    def delete_lead(self, lead_id: str) -> bool:
        """Delete the lead (and, as Salesforce does, its activities) by our lead id; False when
        the CRM has no such lead (never pushed, or deleted before)."""
        path = f"/sobjects/Lead/{LEAD_EXTERNAL_ID}/{quote(lead_id, safe='')}"
        answer = self.request("DELETE", path)
        if answer.status_code == 404:
            return False
        _check(answer, "delete lead")
        return True

    def lead_id(self, lead_id: str) -> str:
        answer = self.request("GET", f"/sobjects/Lead/{LEAD_EXTERNAL_ID}/{quote(lead_id, safe='')}")
        _check(answer, "read lead")
        return str(answer.json()["Id"])


def _check(answer: httpx.Response, what: str) -> None:
    if answer.status_code < 300:
        return
    raise _refusal(answer, what)


def _refusal(answer: httpx.Response, what: str) -> ApplicationError:
    try:
        errors = answer.json()
        detail = "; ".join(f"{e.get('errorCode')}: {e.get('message')}" for e in errors)
    except (ValueError, AttributeError, TypeError):
        detail = answer.text[:200]
    status = answer.status_code
    if status >= 500 or (status == 403 and "REQUEST_LIMIT_EXCEEDED" in detail):
        delay = timedelta(minutes=1) if status == 403 else None
        return ApplicationError(
            f"{what}: CRM unavailable ({status}): {detail}",
            type="CrmUnavailable",
            next_retry_delay=delay,
        )
    return ApplicationError(
        f"{what}: CRM refused ({status}): {detail}", type="CrmRejected", non_retryable=True
    )


class CrmActivities:
    def __init__(self, settings: CrmSettings | None) -> None:
        self.client = CrmClient(settings) if settings else None

    def _client(self) -> CrmClient:
        if self.client is None:
            raise ApplicationError(
                "CRM push is enabled in routing.yaml but this worker has no CRM: set "
                "NURTURE_CRM_URL (and NURTURE_CRM_CLIENT_ID/SECRET or NURTURE_CRM_TOKEN)",
                type="ConfigError",
                non_retryable=True,
            )
        return self.client

    @activity.defn(name=CRM_UPSERT_LEAD)
    def upsert_lead(self, push: CrmLeadUpsert) -> str:
        """Create or update the lead; the CRM's id of it."""
        client = self._client()
        path = f"/sobjects/Lead/{LEAD_EXTERNAL_ID}/{quote(push.lead_id, safe='')}"
        answer = client.request("PATCH", path, json=push.fields)
        _check(answer, "push lead")
        crm_id = answer.json().get("id") if answer.content else None
        crm_id = crm_id or client.lead_id(push.lead_id)  # API versions before 46 answer 204
        log.info(
            "lead pushed to CRM",
            lead_id=push.lead_id,
            crm_id=crm_id,
            key=push.key,
            workflow_id=activity.info().workflow_id,
            status=push.fields.get("Status"),
        )
        return str(crm_id)

    @activity.defn(name=CRM_ADD_TASK)
    def add_task(self, note: CrmNote) -> None:
        client = self._client()
        who = client.lead_id(note.lead_id)
        path = f"/sobjects/Task/{TASK_EXTERNAL_ID}/{quote(note.key, safe='')}"
        answer = client.request(
            "PATCH",
            path,
            json={
                "WhoId": who,
                "Subject": note.subject[:255],
                "Description": note.description,
                "Status": "Completed",
            },
        )
        _check(answer, "forward activity")
