"""Pushing leads to Salesforce and keeping them up to date, through ``simple-salesforce``.

Every write is an upsert by external id (``Nurture_Lead_Id__c`` for leads,
``Nurture_Event_Id__c`` for forwarded activity), so a retried push never creates a second
record. An outage or a 5xx is retried (the activity's retry policy, forever); a refusal (a 4xx
such as a converted lead that can no longer change) is final and surfaces on the lead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, NoReturn, cast
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

import requests
import structlog
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce, SFType
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceResourceNotFound,
)
from temporalio import activity
from temporalio.exceptions import ApplicationError

from nurture.config.settings import CrmSettings
from nurture.contract.messages import CRM_ADD_TASK, CRM_UPSERT_LEAD, CrmLeadUpsert, CrmNote

log = structlog.get_logger(__name__)

LEAD_EXTERNAL_ID = "Nurture_Lead_Id__c"
TASK_EXTERNAL_ID = "Nurture_Event_Id__c"
SALESFORCE_HOSTS = ".salesforce.com"
TIMEOUT_SECONDS = 20.0
REDIRECTED_DOMAIN = "crm.my"
"""The login domain given to the library for a CRM that is not on ``salesforce.com`` (a stand-in
on loopback): any My Domain name does (client credentials need one), the transport sends the
login wherever ``NURTURE_CRM_URL`` says."""
REFUSED_LOGINS = frozenset({"invalid_client", "invalid_client_id", "invalid_grant", "INVALID AUTH"})
"""OAuth errors no retry mends: the credentials are wrong until someone changes them (``INVALID
AUTH``: the library's own refusal of client credentials at ``login``/``test``, not a My
Domain)."""


class CrmClient:
    """Salesforce as ``simple-salesforce`` reaches it: OAuth client credentials (logging in
    again when the session expires is the library's), or a session token. Connected at first
    use, so a CRM down when the worker starts only delays the pushes."""

    def __init__(self, settings: CrmSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._salesforce: Salesforce | None = None

    def upsert_lead(self, lead_id: str, fields: dict[str, Any]) -> str:
        """Create or update the lead; the CRM's id of it."""
        with _answers("push lead", self.settings):
            answer = self._sobject("Lead").upsert(
                _by(LEAD_EXTERNAL_ID, lead_id), fields, raw_response=True
            )
            crm_id = answer.json().get("id") if answer.content else None
        return str(crm_id or self.lead_id(lead_id))  # API versions before 46 answer 204

    def add_task(self, key: str, fields: dict[str, Any]) -> None:
        with _answers("forward activity", self.settings):
            self._sobject("Task").upsert(_by(TASK_EXTERNAL_ID, key), fields)

    def delete_lead(self, lead_id: str) -> bool:
        """Delete the lead (and, as Salesforce does, its activities) by our lead id; False when
        the CRM has no such lead (never pushed, or deleted before)."""
        with _answers("delete lead", self.settings):
            try:
                self._sobject("Lead").delete(_by(LEAD_EXTERNAL_ID, lead_id))
            except SalesforceResourceNotFound:
                return False
        return True

    def lead_id(self, lead_id: str) -> str:
        with _answers("read lead", self.settings):
            found = self._sobject("Lead").get_by_custom_id(LEAD_EXTERNAL_ID, lead_id)
        return str(found["Id"])

    def _sobject(self, name: str) -> SFType:
        return cast(SFType, getattr(self._connected(), name))  # typed as bulk APIs too

    def _connected(self) -> Salesforce:
        with self._lock:
            if self._salesforce is None:
                self._salesforce = self._connect()
            return self._salesforce

    def _connect(self) -> Salesforce:
        s = self.settings
        session, domain = salesforce_session(s.base_url)
        version = s.api_version.removeprefix("v")
        if s.client_id and s.client_secret:
            return Salesforce(
                consumer_key=s.client_id,
                consumer_secret=s.client_secret,
                domain=domain,
                session=session,
                version=version,
            )
        if s.token:
            return Salesforce(
                instance_url=s.base_url, session_id=s.token, session=session, version=version
            )
        raise ApplicationError(
            "the CRM needs NURTURE_CRM_CLIENT_ID and NURTURE_CRM_CLIENT_SECRET, or "
            "NURTURE_CRM_TOKEN",
            type="CrmRejected",
            non_retryable=True,
        )


class _Transport(HTTPAdapter):
    """Every request with a timeout (the library sets none); with ``to``, every request the
    library addresses to Salesforce (``https://<domain>.salesforce.com`` to log in, then
    ``https://<instance>``) sent there instead: a Salesforce-compatible server elsewhere, such
    as the stand-in on loopback (``nurture standin crm``)."""

    def __init__(self, to: SplitResult | None = None) -> None:
        super().__init__()
        self.to = to

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["timeout"] = kwargs.get("timeout") or TIMEOUT_SECONDS
        if self.to is not None and request.url:
            url = urlsplit(request.url)
            request.url = urlunsplit((self.to.scheme, self.to.netloc, url.path, url.query, ""))
        return super().send(request, **kwargs)


def salesforce_session(base_url: str) -> tuple[requests.Session, str]:
    """The HTTP session for the CRM at ``base_url``, and the login domain the library wants
    (``acme.my`` for ``https://acme.my.salesforce.com``)."""
    url = urlsplit(base_url)
    host = url.hostname or ""
    session = requests.Session()
    if url.scheme == "https" and host.endswith(SALESFORCE_HOSTS):
        session.mount("https://", _Transport())
        return session, host.removesuffix(SALESFORCE_HOSTS)
    session.mount("https://", _Transport(to=url))
    return session, REDIRECTED_DOMAIN


def _by(external_id_field: str, value: str) -> str:
    return f"{external_id_field}/{quote(value, safe='')}"


@contextmanager
def _answers(what: str, settings: CrmSettings) -> Iterator[None]:
    """The library's errors as the activity's: retried (``CrmUnavailable``) or final
    (``CrmRejected``, surfacing on the lead)."""
    try:
        yield
    except SalesforceAuthenticationFailed as exc:
        _login_failed(exc)
    except SalesforceError as exc:
        raise _refusal(exc, what, settings) from exc
    except requests.RequestException as exc:
        raise ApplicationError(f"{what}: CRM unreachable: {exc}", type="CrmUnavailable") from exc


def _login_failed(exc: SalesforceAuthenticationFailed) -> NoReturn:
    if exc.code in REFUSED_LOGINS:
        raise ApplicationError(
            f"CRM login refused: {exc.code}: {exc.message}", type="CrmRejected", non_retryable=True
        ) from exc
    raise ApplicationError(f"CRM login failed: {exc.code}", type="CrmUnavailable") from exc


def _refusal(exc: SalesforceError, what: str, settings: CrmSettings) -> ApplicationError:
    content = exc.content
    if isinstance(content, list):
        detail = "; ".join(
            f"{e.get('errorCode')}: {e.get('message')}" for e in content if isinstance(e, dict)
        )
    else:
        detail = str(content)[:200]
    status = exc.status
    if status == 401 and not (settings.client_id and settings.client_secret):
        return ApplicationError(
            "the CRM refused the token and no NURTURE_CRM_CLIENT_ID/SECRET are set",
            type="CrmRejected",
            non_retryable=True,
        )
    if status >= 500 or status == 401 or (status == 403 and "REQUEST_LIMIT_EXCEEDED" in detail):
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
        crm_id = self._client().upsert_lead(push.lead_id, push.fields)
        log.info(
            "lead pushed to CRM",
            lead_id=push.lead_id,
            crm_id=crm_id,
            key=push.key,
            workflow_id=activity.info().workflow_id,
            status=push.fields.get("Status"),
        )
        return crm_id

    @activity.defn(name=CRM_ADD_TASK)
    def add_task(self, note: CrmNote) -> None:
        client = self._client()
        fields = {
            "WhoId": client.lead_id(note.lead_id),
            "Subject": note.subject[:255],
            "Description": note.description,
            "Status": "Completed",
        }
        client.add_task(note.key, fields)
