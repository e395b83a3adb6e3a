"""Send an email exactly once through the real SendGrid client.

The outbox row is written *before* the provider is called. If a worker dies after SendGrid
accepted a message but before the row says ``sent``, the retry finds the row ``pending`` and asks
SendGrid's Email Activity API whether a message with this idempotency key went out, instead of
sending blindly again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Content, CustomArg, From, Header, Mail, To
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from nurture.access.consent import LinkSigner, UnsubscribeClaim
from nurture.access.email_links import LinkTagging, SiteOrigins
from nurture.access.rep_links import RepClaim, RepLinks
from nurture.access.visitor_links import IdentifyLinks
from nurture.config.settings import MailerSettings
from nurture.config.templating import (
    RenderedEmail,
    TemplateProblem,
    TemplateSet,
    TemplateSource,
    render_email,
    template_source,
)
from nurture.contract.messages import SEND_EMAIL, EmailRequest, EmailResult
from nurture.contract.names import EMAILS_COUNTER
from nurture.store import suppression
from nurture.store.db import OutboxMessage

log = structlog.get_logger(__name__)

IDEMPOTENCY_ARG = "nurture_key"


class Mailer:
    """The real ``sendgrid`` client, pointed at SendGrid or at the local stand-in."""

    def __init__(self, settings: MailerSettings) -> None:
        self.settings = settings
        self.client = SendGridAPIClient(api_key=settings.api_key, host=settings.base_url)

    def send(
        self, request: EmailRequest, email: RenderedEmail, headers: dict[str, str] | None = None
    ) -> str:
        mail = Mail(
            from_email=From(request.sender.email, request.sender.name),
            to_emails=To(request.to_email, request.to_name),
            subject=email.subject,
        )
        mail.add_content(Content("text/plain", email.text))
        mail.add_content(Content("text/html", email.html))
        # Custom args come back on every webhook event, mapping it to the lead and the touch.
        for name, value in (
            (IDEMPOTENCY_ARG, request.key),
            ("lead_id", request.lead_id),
            ("category", request.category),
            ("touch_id", request.key if request.category == "touch" else ""),
            ("variant", request.variant or ""),  # the A/B version, for SendGrid's own stats
        ):
            if value:
                mail.add_custom_arg(CustomArg(name, value))
        for name, value in (headers or {}).items():
            mail.add_header(Header(name, value))
        response = self.client.send(mail)
        return str(response.headers.get("X-Message-Id", ""))

    def find_sent(self, key: str) -> str | None:
        """The message id SendGrid accepted for this idempotency key, if any."""
        response = self.client.client.messages.get(
            query_params={"query": f"unique_args['{IDEMPOTENCY_ARG}']=\"{key}\"", "limit": 1}
        )
        messages = json.loads(response.body or b"{}").get("messages", [])
        return str(messages[0].get("msg_id")) if messages else None

    def erase_recipients(self, addresses: list[str]) -> str:
        """Ask SendGrid to erase what it holds on these recipients (the Recipients' Data
        Erasure API); the job's id. Raises ``python_http_client`` errors as the client does."""
        response = self.client.client.recipients.erasejob.post(
            request_body={"email_addresses": addresses}
        )
        return str(json.loads(response.body or b"{}").get("job_id", ""))


class EmailActivities:
    def __init__(
        self,
        engine: Engine,
        mailer: Mailer,
        templates: Path | TemplateSet | TemplateSource,
        signer: LinkSigner,
        site_origins: SiteOrigins | None = None,
    ) -> None:
        """``templates``: the worker's ``RulesSource`` (the templates of the rules version in
        force, from memory), or a directory read once. ``site_origins``: the websites whose
        links in a lead's email carry the lead's identifying token (default: the live sites
        in ``engine``, read once a minute)."""
        self.engine = engine
        self.mailer = mailer
        self.templates = template_source(templates)
        self.signer = signer
        self.rep_links = RepLinks(signer.secret, signer.public_url)
        self.identify_links = IdentifyLinks(signer.secret, signer.public_url)
        self.site_origins = site_origins or SiteOrigins(engine)

    @activity.defn(name=SEND_EMAIL)
    def send_email(self, request: EmailRequest) -> EmailResult:
        """Send once (:meth:`_send`), counted in ``nurture_emails_sent_total`` by category and
        what became of it: sent, already_sent, suppressed, or refused for good (by SendGrid,
        or a template that cannot be rendered). Attempts that will be retried count nothing."""
        try:
            result = self._send(request)
        except ApplicationError as exc:
            if exc.non_retryable:
                self._count(request, "refused")
            raise
        self._count(request, result.status)
        return result

    @staticmethod
    def _count(request: EmailRequest, status: str) -> None:
        counter = activity.metric_meter().create_counter(EMAILS_COUNTER)
        counter.add(1, {"category": request.category, "status": status})

    def _send(self, request: EmailRequest) -> EmailResult:
        bound = log.bind(
            lead_id=request.lead_id,
            workflow_id=activity.info().workflow_id,
            key=request.key,
            category=request.category,
        )
        marketing = request.category == "touch"
        context, headers = request.context, {}
        links: dict[str, str] = {}
        if marketing:
            links = self.signer.footer_links(
                UnsubscribeClaim(lead_id=request.lead_id, key=request.key)
            )
            url = links["unsubscribe_url"]
            context = {**context, **links}
            # RFC 2369 + RFC 8058: mailbox providers show an unsubscribe button that POSTs here.
            headers = {
                "List-Unsubscribe": f"<{url}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        elif isinstance(context.get("rep"), dict) and context["rep"].get("id"):
            context = {**context, **self._rep_links(str(context["rep"]["id"]), request.lead_id)}
        try:
            # Only a touch's subject is a template (cadences.yaml, a marketer's). A rep alert's
            # subject holds lead data (a name) and is plain text: lead data is never template
            # source. Lead values reach templates as variables, escaped in HTML bodies.
            rendered = render_email(
                self.templates.templates().environment,
                request.template,
                request.subject,
                context,
                subject_is_template=marketing,
            )
        except TemplateProblem as exc:
            # Not retried as is: the workflow holds the touch until the rules change.
            raise ApplicationError(str(exc), type="TemplateError", non_retryable=True) from exc
        with Session(self.engine) as session:
            row = session.get(OutboxMessage, request.key)
            if row is not None and row.status == "sent":
                bound.info("email already sent; not sending again")
                return EmailResult(
                    key=request.key, message_id=row.provider_message_id, status="already_sent"
                )
            if row is not None:
                # Asked first: the lead may have unsubscribed from this very email since.
                accepted = self._ask_provider(request.key)
                if accepted is not None:
                    self._mark_sent(session, row, accepted)
                    bound.info("provider had accepted it before a crash; not sending again")
                    return EmailResult(key=request.key, message_id=accepted, status="already_sent")
            suppressed = (
                suppression.why_suppressed(self.engine, request.to_email) if marketing else None
            )
            if suppressed is not None:
                bound.info("address is on the suppression list; not sending", reason=suppressed)
                return EmailResult(
                    key=request.key, message_id=None, status="suppressed", detail=suppressed
                )
            if row is None:
                row = OutboxMessage(
                    key=request.key,
                    lead_id=request.lead_id,
                    category=request.category,
                    to_email=request.to_email,
                    subject=rendered.subject[:998],
                )
            if marketing:  # to the lead: links to our sites say whose browser opens them
                rendered = self._identifying(rendered, request.lead_id, row, links.values())
            # What this attempt sends, as the person receives it (their export shows it).
            row.text_body, row.html_body = rendered.text, rendered.html
            session.add(row)
            row.attempts += 1
            session.commit()
            try:
                message_id = self.mailer.send(request, rendered, headers)
            except HTTPError as exc:
                error = classify(exc)
                if error.non_retryable:  # final: the outbox says so; the reason is on the lead
                    row.status = "refused"
                    session.add(row)
                    session.commit()
                raise error from exc
            self._mark_sent(session, row, message_id)
        bound.info("email sent", message_id=message_id)
        return EmailResult(key=request.key, message_id=message_id, status="sent")

    def _identifying(
        self, email: RenderedEmail, lead_id: str, row: OutboxMessage, own_links: Iterable[str]
    ) -> RenderedEmail:
        """The email with the lead's token on every link to a live site (docs/tracking.md).
        The token is signed at the moment the outbox row was made, so every attempt of this
        send (its key) carries the same one: a retry delivers what the first attempt would
        have. A database error reading the sites sends the email untagged (logged)."""
        origins = self.site_origins.current()
        if not origins:
            return email
        tagging = LinkTagging(
            origins=origins,
            token=self.identify_links.token_for(lead_id, signed_at=row.created_at),
            own_links=tuple(own_links),
        )
        return dataclasses.replace(
            email, html=tagging.html(email.html), text=tagging.text(email.text)
        )

    def _rep_links(self, rep: str, lead_id: str) -> dict[str, str]:
        """Signed, expiring links for the alert's recipient: the inbox, and accept/reject."""
        links = self.rep_links
        return {
            "inbox_url": links.url(RepClaim(rep=rep, action="inbox")),
            "accept_url": links.url(RepClaim(rep=rep, action="accept", lead_id=lead_id)),
            "reject_url": links.url(RepClaim(rep=rep, action="reject", lead_id=lead_id)),
        }

    def _ask_provider(self, key: str) -> str | None:
        try:
            return self.mailer.find_sent(key)
        except HTTPError as exc:
            raise classify(exc) from exc

    @staticmethod
    def _mark_sent(session: Session, row: OutboxMessage, message_id: str) -> None:
        row.status = "sent"
        row.provider_message_id = message_id
        row.sent_at = datetime.now(UTC)
        session.add(row)
        session.commit()


def classify(exc: HTTPError) -> ApplicationError:
    """429 and 5xx are worth retrying (after the provider's reset time); other 4xx are not."""
    status = int(getattr(exc, "status_code", 0) or 0)
    detail = _error_detail(exc)
    if status == 429:
        reset = (getattr(exc, "headers", None) or {}).get("X-RateLimit-Reset")
        delay = None
        if reset and str(reset).isdigit():
            delay = timedelta(seconds=max(1, int(reset) - int(datetime.now(UTC).timestamp())))
        return ApplicationError(
            f"SendGrid rate limit: {detail}", type="SendGridRateLimited", next_retry_delay=delay
        )
    if status >= 500 or status == 0:
        return ApplicationError(
            f"SendGrid unavailable ({status}): {detail}", type="SendGridUnavailable"
        )
    return ApplicationError(
        f"SendGrid refused the message ({status}): {detail}",
        type="SendGridRejected",
        non_retryable=True,
    )


def _error_detail(exc: HTTPError) -> str:
    body = getattr(exc, "body", b"") or b""
    try:
        errors = json.loads(body).get("errors", [])
        return "; ".join(
            f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message"))
            for e in errors
        ) or str(body[:200])
    except (ValueError, AttributeError):
        return str(body[:200])
