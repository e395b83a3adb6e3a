"""The SendGrid stand-in, exercised through the real ``sendgrid`` client only."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from python_http_client.exceptions import (
    BadRequestsError,
    GatewayTimeoutError,
    HTTPError,
    InternalServerError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
)
from sendgrid import SendGridAPIClient
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.mail import Category, CustomArg, Header, Mail

from nurture.standins.sendgrid_standin import (
    EventWebhookDeliveryError,
    EventWebhookError,
    SendGridStandIn,
)
from tests.receivers import PostReceiver, post_receiver

REPO_ROOT = Path(__file__).resolve().parent.parent
NURTURE_KEY = "lead-1:welcome:1"


@pytest.fixture
def standin() -> Iterator[SendGridStandIn]:
    with SendGridStandIn() as server:
        yield server


@pytest.fixture
def client(standin: SendGridStandIn) -> SendGridAPIClient:
    return SendGridAPIClient(api_key="SG.test", host=standin.url)


def welcome_mail(key: str = NURTURE_KEY, to: str = "lead@example.com") -> Mail:
    mail = Mail(
        from_email="nurture@acme.example",
        to_emails=to,
        subject="Welcome aboard",
        plain_text_content="Hello in plain text",
        html_content="<p>Hello in <b>HTML</b></p>",
    )
    mail.custom_arg = CustomArg("nurture_key", key)
    mail.custom_arg = CustomArg("lead_id", "lead-1")
    mail.category = Category("nurture")
    mail.header = Header("X-Nurture-Step", "welcome")
    return mail


def valid_body() -> dict[str, Any]:
    """A minimal valid v3 body, for cases the Mail helper would refuse to build."""
    return {
        "from": {"email": "nurture@acme.example"},
        "personalizations": [{"to": [{"email": "lead@example.com"}]}],
        "subject": "Welcome aboard",
        "content": [{"type": "text/plain", "value": "Hello"}],
        "custom_args": {"nurture_key": NURTURE_KEY},
    }


def error_fields(exc: HTTPError) -> list[str | None]:
    return [e["field"] for e in json.loads(exc.body)["errors"]]


def activity(client: SendGridAPIClient, query: str, limit: int = 10) -> list[dict[str, Any]]:
    response = client.client.messages.get(query_params={"query": query, "limit": limit})
    assert response.status_code == 200
    messages: list[dict[str, Any]] = json.loads(response.body)["messages"]
    return messages


# --- accepted sends -------------------------------------------------------------------------


def test_valid_send_answers_202_with_message_id_and_records_the_message(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    response = client.send(welcome_mail())

    assert response.status_code == 202
    assert response.body == b""
    message_id = response.headers["X-Message-Id"]
    assert message_id
    [recorded] = standin.messages
    assert recorded.message_id == message_id
    assert recorded.from_email == "nurture@acme.example"
    assert recorded.to == ["lead@example.com"]
    assert recorded.subject == "Welcome aboard"
    assert recorded.contents == {
        "text/plain": "Hello in plain text",
        "text/html": "<p>Hello in <b>HTML</b></p>",
    }
    assert recorded.custom_args == {"nurture_key": NURTURE_KEY, "lead_id": "lead-1"}
    assert recorded.categories == ["nurture"]
    assert recorded.headers == {"X-Nurture-Step": "welcome"}
    assert recorded.received_at.utcoffset() is not None
    assert recorded.body["personalizations"][0]["to"] == [{"email": "lead@example.com"}]
    assert standin.accepted_event.is_set()


def test_each_accepted_send_gets_a_distinct_message_id(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    ids = {client.send(welcome_mail(key=f"lead-1:x:{i}")).headers["X-Message-Id"] for i in range(3)}

    assert len(ids) == 3
    assert {m.message_id for m in standin.messages} == ids


def test_personalization_custom_args_override_top_level_ones(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    body = valid_body()
    body["custom_args"] = {"nurture_key": "top", "tenant": "acme"}
    body["personalizations"][0]["custom_args"] = {"nurture_key": "per-recipient"}
    body["personalizations"][0]["cc"] = [{"email": "owner@acme.example"}]

    client.client.mail.send.post(request_body=body)

    [recorded] = standin.messages
    assert recorded.custom_args == {"nurture_key": "per-recipient", "tenant": "acme"}
    assert recorded.to == ["lead@example.com", "owner@acme.example"]


def test_subject_in_every_personalization_replaces_top_level_subject(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    body = valid_body()
    del body["subject"]
    body["personalizations"][0]["subject"] = "Per-lead subject"

    assert client.client.mail.send.post(request_body=body).status_code == 202
    assert standin.messages[0].subject == "Per-lead subject"


def test_template_id_makes_subject_and_content_optional(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    body = valid_body()
    del body["subject"], body["content"]
    body["template_id"] = "d-0123456789abcdef0123456789abcdef"

    assert client.client.mail.send.post(request_body=body).status_code == 202
    assert standin.messages[0].contents == {}


def test_messages_with_filters_recorded_messages_by_custom_args(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    client.send(welcome_mail(key="lead-1:a:1"))
    client.send(welcome_mail(key="lead-2:a:1"))

    assert [m.custom_args["nurture_key"] for m in standin.messages_with(lead_id="lead-1")] == [
        "lead-1:a:1",
        "lead-2:a:1",
    ]
    [only] = standin.messages_with(nurture_key="lead-2:a:1")
    assert only.custom_args["nurture_key"] == "lead-2:a:1"
    assert standin.messages_with(nurture_key="nope") == []

    standin.clear()
    assert standin.messages == []
    assert not standin.accepted_event.is_set()


# --- authentication -------------------------------------------------------------------------


def test_wrong_api_key_is_rejected_with_401_and_nothing_recorded() -> None:
    with SendGridStandIn(api_key="SG.right") as standin:
        client = SendGridAPIClient(api_key="SG.wrong", host=standin.url)

        with pytest.raises(UnauthorizedError) as caught:
            client.send(welcome_mail())

        assert caught.value.status_code == 401
        assert json.loads(caught.value.body) == {
            "errors": [
                {
                    "message": "The provided authorization grant is invalid, expired, or revoked",
                    "field": None,
                    "help": None,
                }
            ]
        }
        assert standin.messages == []


def test_configured_api_key_is_accepted() -> None:
    with SendGridStandIn(api_key="SG.right") as standin:
        client = SendGridAPIClient(api_key="SG.right", host=standin.url)

        assert client.send(welcome_mail()).status_code == 202
        assert len(standin.messages) == 1


def test_missing_authorization_header_is_rejected_with_401(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    client.client.request_headers.pop("Authorization")

    with pytest.raises(UnauthorizedError) as caught:
        client.send(welcome_mail())

    assert caught.value.status_code == 401
    assert json.loads(caught.value.body)["errors"][0]["message"] == "authorization required"
    assert standin.messages == []


def test_client_without_an_api_key_is_rejected_with_401(
    standin: SendGridStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    client = SendGridAPIClient(api_key="", host=standin.url)  # sends "Bearer None"

    with pytest.raises(UnauthorizedError):
        client.send(welcome_mail())
    assert standin.messages == []


# --- validation -----------------------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Mutator setting a dotted path (list indexes as numbers) in a body."""

    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return mutate


def _personalizations(n: int) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        body["personalizations"] = [{"to": [{"email": f"lead{i}@example.com"}]} for i in range(n)]

    return mutate


def _html_before_text(body: dict[str, Any]) -> None:
    body["content"] = [
        {"type": "text/html", "value": "<p>Hi</p>"},
        {"type": "text/plain", "value": "Hi"},
    ]


def _subject_in_one_personalization_only(body: dict[str, Any]) -> None:
    del body["subject"]
    body["personalizations"].append({"to": [{"email": "x@example.com"}], "subject": "S"})


VALIDATION_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing from", _delete("from"), "from.email"),
    ("from without email", _set("from", {"name": "Acme"}), "from.email"),
    ("malformed from email", _set("from.email", "not-an-address"), "from.email"),
    ("missing personalizations", _delete("personalizations"), "personalizations"),
    ("empty personalizations", _set("personalizations", []), "personalizations"),
    ("personalization without to", _set("personalizations.0", {}), "personalizations.0.to"),
    ("empty to array", _set("personalizations.0.to", []), "personalizations.0.to"),
    (
        "malformed to email",
        _set("personalizations.0.to.0.email", "lead@"),
        "personalizations.0.to.0.email",
    ),
    (
        "malformed cc email",
        _set("personalizations.0.cc", [{"email": "a b@example.com"}]),
        "personalizations.0.cc.0.email",
    ),
    (
        "malformed bcc email",
        _set("personalizations.0.bcc", [{"email": "bcc@nodot"}]),
        "personalizations.0.bcc.0.email",
    ),
    ("malformed reply_to email", _set("reply_to", {"email": "@example.com"}), "reply_to.email"),
    ("missing subject", _delete("subject"), "subject"),
    ("subject in only some personalizations", _subject_in_one_personalization_only, "subject"),
    ("missing content", _delete("content"), "content"),
    ("empty content", _set("content", []), "content"),
    ("empty content value", _set("content.0.value", ""), "content.0.value"),
    ("html before plain text", _html_before_text, "content"),
    ("too many personalizations", _personalizations(1001), "personalizations"),
    ("integer custom arg", _set("custom_args.attempt", 1), "custom_args.attempt"),
    (
        "integer personalization custom arg",
        _set("personalizations.0.custom_args", {"attempt": 1}),
        "personalizations.0.custom_args.attempt",
    ),
    ("custom args over 10,000 bytes", _set("custom_args.blob", "x" * 10_000), "custom_args"),
    ("headers not an object", _set("headers", ["X-A: 1"]), "headers"),
    ("integer header value", _set("headers", {"X-Attempt": 1}), "headers.X-Attempt"),
    ("reserved header", _set("headers", {"Reply-To": "x@example.com"}), "headers.Reply-To"),
    ("reserved header, any case", _set("headers", {"x-SG-id": "1"}), "headers.x-SG-id"),
    (
        "reserved personalization header",
        _set("personalizations.0.headers", {"DKIM-Signature": "v=1"}),
        "personalizations.0.headers.DKIM-Signature",
    ),
    (
        "duplicate recipient across to and cc",
        _set("personalizations.0.cc", [{"email": "LEAD@example.com"}]),
        "personalizations.0",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [pytest.param(m, f, id=name) for name, m, f in VALIDATION_CASES],
)
def test_invalid_body_is_rejected_with_400_naming_the_field(
    standin: SendGridStandIn,
    client: SendGridAPIClient,
    mutate: Callable[[dict[str, Any]], None],
    field: str,
) -> None:
    body = copy.deepcopy(valid_body())
    mutate(body)

    with pytest.raises(BadRequestsError) as caught:
        client.client.mail.send.post(request_body=body)

    assert caught.value.status_code == 400
    errors = json.loads(caught.value.body)["errors"]
    assert errors, "SendGrid always answers a non-empty errors array"
    assert all({"message", "field", "help"} <= set(e) for e in errors)
    assert field in error_fields(caught.value)
    assert standin.messages == []


def test_the_unmodified_validation_base_body_is_accepted(client: SendGridAPIClient) -> None:
    """Guards the validation table: each case fails only because of its own change."""
    assert client.client.mail.send.post(request_body=valid_body()).status_code == 202


def test_all_validation_errors_are_reported_together(client: SendGridAPIClient) -> None:
    body = valid_body()
    del body["subject"]
    body["from"]["email"] = "broken"

    with pytest.raises(BadRequestsError) as caught:
        client.client.mail.send.post(request_body=body)

    assert {"from.email", "subject"} <= set(error_fields(caught.value))


def test_invalid_json_is_rejected_with_400(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    with pytest.raises(BadRequestsError) as caught:
        client.client.mail.send.post(
            request_body='{"from": {"email": ',
            request_headers={"Content-Type": "application/json; charset=utf-8"},
        )

    assert caught.value.status_code == 400
    assert json.loads(caught.value.body)["errors"][0]["message"] == "Bad Request"
    assert standin.messages == []


def test_request_over_30_mb_is_rejected_as_payload_too_large(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    body = valid_body()
    body["content"][0]["value"] = "x" * (30 * 1024 * 1024)

    with pytest.raises(PayloadTooLargeError) as caught:
        client.client.mail.send.post(request_body=body)

    assert caught.value.status_code == 413
    assert json.loads(caught.value.body)["errors"][0]["message"]
    assert standin.messages == []


# --- fault injection ------------------------------------------------------------------------


def test_fail_next_429_raises_too_many_requests_with_rate_limit_headers_and_records_nothing(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    standin.fail_next(429)
    before = int(time.time())

    with pytest.raises(TooManyRequestsError) as caught:
        client.send(welcome_mail())

    assert caught.value.status_code == 429
    headers = caught.value.headers
    assert int(headers["X-RateLimit-Limit"]) > 0
    assert headers["X-RateLimit-Remaining"] == "0"
    assert int(headers["X-RateLimit-Reset"]) >= before
    assert json.loads(caught.value.body) == {
        "errors": [{"field": None, "message": "too many requests"}]
    }
    assert standin.messages == []
    assert not standin.accepted_event.is_set()

    assert client.send(welcome_mail()).status_code == 202, "only the next send fails"
    assert len(standin.messages) == 1


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(500, InternalServerError), (503, ServiceUnavailableError), (504, GatewayTimeoutError)],
)
def test_fail_next_5xx_raises_the_server_error_class_and_records_nothing(
    standin: SendGridStandIn,
    client: SendGridAPIClient,
    status: int,
    error_class: type[HTTPError],
) -> None:
    standin.fail_next(status, count=2)

    for _ in range(2):
        with pytest.raises(error_class) as caught:
            client.send(welcome_mail())
        assert caught.value.status_code == status
        assert json.loads(caught.value.body)["errors"][0]["message"]
    assert standin.messages == []

    assert client.send(welcome_mail()).status_code == 202
    assert len(standin.messages) == 1


def test_invalid_sends_do_not_consume_injected_faults(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    standin.fail_next(503)
    body = valid_body()
    del body["from"]

    with pytest.raises(BadRequestsError):
        client.client.mail.send.post(request_body=body)
    with pytest.raises(ServiceUnavailableError):
        client.send(welcome_mail())


def test_fail_next_rejects_non_error_statuses(standin: SendGridStandIn) -> None:
    with pytest.raises(ValueError):
        standin.fail_next(202)


def test_delay_after_accept_records_the_message_before_answering(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    standin.delay_after_accept(0.5)
    outcome: dict[str, Any] = {}

    def send() -> None:
        outcome["response"] = client.send(welcome_mail())

    sender = threading.Thread(target=send)
    sender.start()

    assert standin.wait_for_messages(1, timeout=2)
    assert sender.is_alive(), "the 202 must still be held back after the message was recorded"
    sender.join(timeout=5)
    assert outcome["response"].status_code == 202
    assert outcome["response"].headers["X-Message-Id"] == standin.messages[0].message_id


def test_delay_after_accept_leaves_mail_recorded_when_the_client_gives_up(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    standin.delay_after_accept(2.0)

    with pytest.raises(OSError):  # socket timeout (TimeoutError or URLError), no 202
        client.client.mail.send.post(request_body=welcome_mail().get(), timeout=0.3)

    assert standin.accepted_event.is_set()
    [recorded] = standin.messages_with(nurture_key=NURTURE_KEY)
    assert activity(client, f"unique_args['nurture_key']=\"{NURTURE_KEY}\"")[0][
        "msg_id"
    ].startswith(recorded.message_id + ".")


# --- Email Activity Feed --------------------------------------------------------------------


def test_messages_endpoint_finds_a_message_by_its_custom_arg(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    client.send(welcome_mail(key="lead-1:welcome:1", to="one@example.com"))
    message_id = client.send(welcome_mail(key="lead-2:welcome:1", to="two@example.com")).headers[
        "X-Message-Id"
    ]

    [found] = activity(client, "unique_args['nurture_key']=\"lead-2:welcome:1\"")

    assert found["msg_id"].startswith(message_id + ".")
    assert found["to_email"] == "two@example.com"
    assert found["from_email"] == "nurture@acme.example"
    assert found["subject"] == "Welcome aboard"
    assert found["status"] == "delivered"
    assert found["last_event_time"].endswith("Z")


def test_messages_endpoint_finds_nothing_for_an_unknown_key(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    client.send(welcome_mail())

    assert activity(client, "unique_args['nurture_key']=\"lead-9:never:1\"") == []


def test_messages_endpoint_supports_and_msg_id_like_and_parentheses(
    client: SendGridAPIClient,
) -> None:
    message_id = client.send(welcome_mail(key="k1", to="one@example.com")).headers["X-Message-Id"]
    client.send(welcome_mail(key="k2", to="two@example.com"))

    both = '(unique_args[\'nurture_key\']="k1" AND to_email="one@example.com")'
    assert len(activity(client, both)) == 1
    mismatch = 'unique_args[\'nurture_key\']="k1" AND to_email="two@example.com"'
    assert activity(client, mismatch) == []
    either = "unique_args['nurture_key']=\"k1\" OR unique_args['nurture_key']=\"k2\""
    assert len(activity(client, either)) == 2

    [by_prefix] = activity(client, f'msg_id LIKE "{message_id}%"')
    assert activity(client, f'msg_id="{by_prefix["msg_id"]}"') == [by_prefix]
    assert activity(client, f'msg_id="{message_id}"') == [], "msg_id= is an exact match"


def test_messages_endpoint_lists_newest_first_and_honours_limit(
    client: SendGridAPIClient,
) -> None:
    for i in range(3):
        client.send(welcome_mail(key=f"k{i}", to=f"lead{i}@example.com"))

    response = client.client.messages.get(query_params={"limit": 2})
    rows = json.loads(response.body)["messages"]

    assert [r["to_email"] for r in rows] == ["lead2@example.com", "lead1@example.com"]


def test_messages_endpoint_rejects_a_malformed_query(client: SendGridAPIClient) -> None:
    with pytest.raises(BadRequestsError) as caught:
        client.client.messages.get(query_params={"query": "unique_args['k'] ~ 1", "limit": 10})

    assert error_fields(caught.value) == ["query"]


def test_messages_endpoint_requires_the_api_key() -> None:
    with SendGridStandIn(api_key="SG.right") as standin:
        client = SendGridAPIClient(api_key="SG.wrong", host=standin.url)

        with pytest.raises(UnauthorizedError):
            client.client.messages.get(query_params={"limit": 10})


# --- routing --------------------------------------------------------------------------------


def test_unknown_path_answers_404_with_errors_body(client: SendGridAPIClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.client.marketing.contacts.get()

    assert caught.value.status_code == 404
    assert json.loads(caught.value.body)["errors"][0]["message"]


def test_wrong_method_answers_405(standin: SendGridStandIn, client: SendGridAPIClient) -> None:
    with pytest.raises(MethodNotAllowedError) as caught:
        client.client.mail.send.get()

    assert caught.value.status_code == 405
    assert standin.messages == []


def test_stop_closes_the_port() -> None:
    standin = SendGridStandIn().start()
    url = standin.url
    standin.stop()

    with pytest.raises(OSError):
        SendGridAPIClient(api_key="SG.test", host=url).send(welcome_mail())


def test_command_line_serves_until_interrupted() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nurture.standins.sendgrid_standin",
            "--port",
            "0",
            "--api-key",
            "SG.cli",
        ],
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
        assert url.startswith("http://127.0.0.1:")

        assert SendGridAPIClient(api_key="SG.cli", host=url).send(welcome_mail()).status_code == 202

        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "1 message(s) accepted" in out


# --- mail headers ---------------------------------------------------------------------------


def test_headers_are_recorded_so_list_unsubscribe_can_be_checked(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    mail = welcome_mail()
    mail.header = Header("List-Unsubscribe", "<https://acme.example/u/tok>")
    mail.header = Header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    mail.header = Header("X-Per-Recipient", "yes", p=0)

    assert client.send(mail).status_code == 202

    [recorded] = standin.messages
    assert recorded.headers == {
        "X-Nurture-Step": "welcome",
        "List-Unsubscribe": "<https://acme.example/u/tok>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Per-Recipient": "yes",
    }


def test_reserved_header_error_says_it_is_reserved(client: SendGridAPIClient) -> None:
    body = valid_body()
    body["headers"] = {"Subject": "sneaky", "X-Fine": "ok"}

    with pytest.raises(BadRequestsError) as caught:
        client.client.mail.send.post(request_body=body)

    [error] = json.loads(caught.value.body)["errors"]
    assert error["field"] == "headers.Subject"
    assert "reserved" in error["message"]
    assert error["help"].endswith("#message.headers")


# --- Event Webhook --------------------------------------------------------------------------

# DER prefix of every P-256 SubjectPublicKeyInfo: SEQUENCE { id-ecPublicKey, prime256v1 } ...
P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")


@pytest.fixture
def receiver() -> Iterator[PostReceiver]:
    with post_receiver("/webhooks/sendgrid", reply=b'{"ok":true}') as server:
        yield server


def configure_webhook(client: SendGridAPIClient, url: str, **flags: bool) -> dict[str, Any]:
    response = client.client.user.webhooks.event.settings.patch(
        request_body={"enabled": True, "url": url, **flags}
    )
    assert response.status_code == 200
    settings: dict[str, Any] = json.loads(response.body)
    return settings


def fetch_verification_key(client: SendGridAPIClient) -> ec.EllipticCurvePublicKey:
    """The key the way an engine gets it: the real client, then the real helper."""
    response = client.client.user.webhooks.event.settings.signed.get()
    key = EventWebhook().convert_public_key_to_ecdsa(json.loads(response.body)["public_key"])
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def verifies(key: ec.EllipticCurvePublicKey, payload: bytes | str, signature: str, ts: str) -> bool:
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    return bool(EventWebhook().verify_signature(text, signature, ts, key))


def send_welcome(client: SendGridAPIClient, mail: Mail | None = None) -> str:
    message_id: str = client.send(mail or welcome_mail()).headers["X-Message-Id"]
    return message_id


def control_post(url: str, body: object) -> tuple[int, dict[str, Any]]:
    """POST JSON with urllib (as curl would in a demo); return status and parsed answer."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_signed_settings_serve_a_p256_spki_key_the_sendgrid_helper_loads(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    response = client.client.user.webhooks.event.settings.signed.get()

    assert response.status_code == 200
    body = json.loads(response.body)
    assert body["enabled"] is True
    assert body["public_key"] == standin.webhook_public_key
    assert base64.b64decode(body["public_key"]).startswith(P256_SPKI_PREFIX)
    assert fetch_verification_key(client).curve.name == "secp256r1"
    with SendGridStandIn() as other:
        assert other.webhook_public_key != standin.webhook_public_key, "one key pair each"


def test_emitted_events_arrive_as_one_signed_batch_the_sendgrid_helper_verifies(
    standin: SendGridStandIn, client: SendGridAPIClient, receiver: PostReceiver
) -> None:
    message_id = send_welcome(client)
    configure_webhook(client, receiver.url)

    delivery = standin.emit_events(
        message_id,
        [
            {"event": "processed"},
            {"event": "delivered"},
            {"event": "open"},
            {"event": "click", "url": "https://acme.example/pricing"},
        ],
    )

    assert (delivery.status, delivery.response_body) == (200, b'{"ok":true}')
    assert delivery.url == receiver.url
    [post] = receiver.posts
    assert post.path == "/webhooks/sendgrid"
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["User-Agent"] == "SendGrid Event API"
    signature = post.headers["X-Twilio-Email-Event-Webhook-Signature"]
    timestamp = post.headers["X-Twilio-Email-Event-Webhook-Timestamp"]
    assert (signature, timestamp) == (delivery.signature, delivery.timestamp)
    assert abs(int(timestamp) - time.time()) < 60
    assert post.body == delivery.payload
    assert post.body.endswith(b"]\r\n"), "SendGrid's body ends with CRLF, and it is signed"
    assert json.loads(post.body) == delivery.events
    assert [e["event"] for e in delivery.events] == ["processed", "delivered", "open", "click"]
    assert verifies(fetch_verification_key(client), post.body, signature, timestamp)
    assert standin.webhook_deliveries == [delivery]


def test_a_tampered_payload_timestamp_or_key_fails_verification(
    standin: SendGridStandIn, client: SendGridAPIClient, receiver: PostReceiver
) -> None:
    configure_webhook(client, receiver.url)
    delivery = standin.emit_events(send_welcome(client), [{"event": "delivered"}])
    key = fetch_verification_key(client)
    payload, signature, timestamp = (
        delivery.payload.decode(),
        delivery.signature,
        delivery.timestamp,
    )
    assert signature is not None
    assert verifies(key, payload, signature, timestamp)

    tampered = payload.replace("lead@example.com", "eve@example.com")
    assert tampered != payload
    assert not verifies(key, tampered, signature, timestamp)
    assert not verifies(key, payload.removesuffix("\r\n"), signature, timestamp)
    assert not verifies(key, payload, signature, str(int(timestamp) + 1))
    with SendGridStandIn() as other:
        other_key = EventWebhook().convert_public_key_to_ecdsa(other.webhook_public_key)
        assert not verifies(other_key, payload, signature, timestamp)


def test_a_delivery_can_be_replayed_byte_for_byte(
    standin: SendGridStandIn, client: SendGridAPIClient, receiver: PostReceiver
) -> None:
    """SendGrid retries a batch as is; a test replays it with the recorded delivery."""
    configure_webhook(client, receiver.url)
    delivery = standin.emit_events(send_welcome(client), [{"event": "open"}])

    request = urllib.request.Request(
        delivery.url, data=delivery.payload, headers=delivery.headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200

    first, replay = receiver.posts
    assert replay.body == first.body
    for name in (
        "X-Twilio-Email-Event-Webhook-Signature",
        "X-Twilio-Email-Event-Webhook-Timestamp",
    ):
        assert replay.headers[name] == first.headers[name]


def test_sign_produces_what_the_sendgrid_helper_verifies(standin: SendGridStandIn) -> None:
    payload = b'[{"email":"lead@example.com","event":"open"}]\r\n'
    signature = standin.sign(payload, "1700000000")
    key = EventWebhook().convert_public_key_to_ecdsa(standin.webhook_public_key)

    assert verifies(key, payload, signature, "1700000000")
    assert not verifies(key, payload, signature, "1700000001")


def test_events_carry_sendgrid_fields_and_the_mails_custom_args(
    standin: SendGridStandIn, client: SendGridAPIClient, receiver: PostReceiver
) -> None:
    message_id = send_welcome(client)
    [row] = activity(client, f'msg_id LIKE "{message_id}%"')
    configure_webhook(client, receiver.url)

    events = standin.emit_events(
        message_id,
        [
            {"event": "processed"},
            {"event": "delivered"},
            {"event": "deferred"},
            {"event": "open"},
            {"event": "click", "url": "https://acme.example/pricing"},
            {"event": "bounce"},
            {"event": "bounce", "type": "blocked"},
            {"event": "dropped"},
            {"event": "spamreport"},
            {"event": "unsubscribe"},
        ],
    ).events

    for event in events:
        assert event["email"] == "lead@example.com"
        assert isinstance(event["timestamp"], int)
        assert abs(event["timestamp"] - time.time()) < 60
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", event["sg_event_id"])
        assert event["sg_message_id"] == row["msg_id"]
        assert event["sg_message_id"].startswith(f"{message_id}.filterdrecv")
        assert event["category"] == ["nurture"]
        assert (event["nurture_key"], event["lead_id"]) == (NURTURE_KEY, "lead-1")
    assert len({e["sg_event_id"] for e in events}) == len(events)
    processed, delivered, deferred, opened, click, bounce, blocked, dropped, spam, unsub = events
    for event in (processed, delivered, deferred, bounce, blocked, dropped):
        assert event["smtp-id"] == f"<{message_id}@ismtpd-standin.sendgrid.net>"
    for event in (opened, click, spam, unsub):
        assert "smtp-id" not in event, "SendGrid sends smtp-id with delivery events only"
    assert delivered["response"].startswith("250")
    assert deferred["attempt"] and deferred["response"].startswith("4")
    for event in (opened, click):
        assert event["useragent"] and event["ip"]
    assert click["url"] == "https://acme.example/pricing"
    assert bounce["type"] == "bounce" and bounce["status"].startswith("5.") and bounce["reason"]
    assert blocked["type"] == "blocked" and blocked["reason"]
    assert dropped["reason"] == "Bounced Address"


def test_personalization_custom_args_override_message_level_ones_per_recipient(
    standin: SendGridStandIn, client: SendGridAPIClient, receiver: PostReceiver
) -> None:
    body = valid_body()
    body["custom_args"] = {"nurture_key": "top", "tenant": "acme"}
    body["personalizations"] = [
        {"to": [{"email": "lead@example.com"}], "custom_args": {"nurture_key": "k-lead"}},
        {"to": [{"email": "boss@example.com"}], "custom_args": {"nurture_key": "k-boss"}},
    ]
    message_id = client.client.mail.send.post(request_body=body).headers["X-Message-Id"]
    configure_webhook(client, receiver.url)

    lead, boss = standin.emit_events(
        message_id, [{"event": "delivered"}, {"event": "delivered", "email": "BOSS@example.com"}]
    ).events

    assert (lead["email"], lead["nurture_key"], lead["tenant"]) == (
        "lead@example.com",
        "k-lead",
        "acme",
    )
    assert (boss["nurture_key"], boss["tenant"]) == ("k-boss", "acme")
    assert lead["sg_message_id"] != boss["sg_message_id"]
    rows = activity(client, f'msg_id LIKE "{message_id}%"')
    assert {r["msg_id"] for r in rows} == {lead["sg_message_id"], boss["sg_message_id"]}
    assert "category" not in lead, "no categories on the mail, no category on its events"


def test_entries_override_fields_for_duplicates_and_fixed_times(
    standin: SendGridStandIn, client: SendGridAPIClient, receiver: PostReceiver
) -> None:
    configure_webhook(client, receiver.url)

    first, duplicate = standin.emit_events(
        send_welcome(client),
        [
            {"event": "open", "sg_event_id": "fixed"},
            {"event": "open", "sg_event_id": "fixed", "timestamp": 1_700_000_000, "extra": 1},
        ],
    ).events

    assert first["sg_event_id"] == duplicate["sg_event_id"] == "fixed"
    assert duplicate["timestamp"] == 1_700_000_000
    assert duplicate["extra"] == 1


def test_group_unsubscribe_carries_the_mails_asm_group_id(
    standin: SendGridStandIn, client: SendGridAPIClient, receiver: PostReceiver
) -> None:
    body = valid_body()
    body["asm"] = {"group_id": 42}
    message_id = client.client.mail.send.post(request_body=body).headers["X-Message-Id"]
    configure_webhook(client, receiver.url)

    delivered, unsubscribed = standin.emit_events(
        message_id, [{"event": "delivered"}, {"event": "group_unsubscribe"}]
    ).events

    assert delivered["asm_group_id"] == unsubscribed["asm_group_id"] == 42
    assert unsubscribed["event"] == "group_unsubscribe"
    assert "smtp-id" not in unsubscribed


@pytest.mark.parametrize(
    ("events", "message"),
    [
        pytest.param([], "at least one", id="no events"),
        pytest.param([{"event": "opened"}], "unknown event", id="unknown event"),
        pytest.param(["open"], "must be an object", id="entry not an object"),
        pytest.param([{"event": "click"}], "url", id="click without url"),
        pytest.param([{"event": "bounce", "type": "soft"}], "blocked", id="bad bounce type"),
        pytest.param(
            [{"event": "open", "email": "eve@example.com"}], "not a recipient", id="stranger"
        ),
        pytest.param([{"event": "group_unsubscribe"}], "asm_group_id", id="no asm group"),
    ],
)
def test_bad_entries_raise_value_error_and_post_nothing(
    standin: SendGridStandIn,
    client: SendGridAPIClient,
    receiver: PostReceiver,
    events: list[Any],
    message: str,
) -> None:
    message_id = send_welcome(client)
    configure_webhook(client, receiver.url)

    with pytest.raises(ValueError, match=message):
        standin.emit_events(message_id, events)

    assert receiver.posts == []
    assert standin.webhook_deliveries == []


def test_emitting_for_an_unknown_message_raises_value_error(
    standin: SendGridStandIn, receiver: PostReceiver
) -> None:
    standin.set_event_webhook(receiver.url)

    with pytest.raises(ValueError, match="X-Message-Id"):
        standin.emit_events("no-such-message", [{"event": "open"}])


def test_emitting_without_a_webhook_url_raises_a_clear_error(
    standin: SendGridStandIn, client: SendGridAPIClient, receiver: PostReceiver
) -> None:
    message_id = send_welcome(client)

    with pytest.raises(EventWebhookError, match="no Event Webhook URL is configured"):
        standin.emit_events(message_id, [{"event": "open"}])

    standin.set_event_webhook(receiver.url)
    standin.set_event_webhook(None)
    with pytest.raises(EventWebhookError):
        standin.emit_events(message_id, [{"event": "open"}])

    client.client.user.webhooks.event.settings.patch(
        request_body={"enabled": False, "url": receiver.url}
    )
    with pytest.raises(EventWebhookError):
        standin.emit_events(message_id, [{"event": "open"}])
    assert receiver.posts == []


def test_an_unreachable_webhook_raises_a_delivery_error(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    standin.set_event_webhook(f"http://127.0.0.1:{closed_port}/hook")

    with pytest.raises(EventWebhookDeliveryError, match="could not post"):
        standin.emit_events(send_welcome(client), [{"event": "open"}])


def test_a_receiver_error_status_is_reported_not_raised(
    standin: SendGridStandIn, client: SendGridAPIClient, receiver: PostReceiver
) -> None:
    receiver.status, receiver.reply = 500, b'{"error":"boom"}'
    standin.set_event_webhook(receiver.url)

    delivery = standin.emit_events(send_welcome(client), [{"event": "open"}])

    assert (delivery.status, delivery.response_body) == (500, b'{"error":"boom"}')
    assert standin.webhook_deliveries == [delivery]
    standin.clear()
    assert standin.webhook_deliveries == []
    assert standin.event_webhook_settings["url"] == receiver.url, "clear() keeps settings"


def test_settings_start_disabled_with_every_event_type_on(client: SendGridAPIClient) -> None:
    response = client.client.user.webhooks.event.settings.get()

    assert response.status_code == 200
    settings = json.loads(response.body)
    assert (settings["enabled"], settings["url"]) == (False, "")
    for flag in (
        "open",
        "click",
        "bounce",
        "dropped",
        "spam_report",
        "unsubscribe",
        "delivered",
        "processed",
        "deferred",
        "group_unsubscribe",
        "group_resubscribe",
    ):
        assert settings[flag] is True, flag


def test_patch_settings_sets_url_and_event_types_and_get_reflects_them(
    standin: SendGridStandIn, client: SendGridAPIClient
) -> None:
    answered = configure_webhook(client, "https://engine.example/webhooks/sendgrid", open=False)

    shown = json.loads(client.client.user.webhooks.event.settings.get().body)
    assert answered == shown == standin.event_webhook_settings
    assert (shown["enabled"], shown["url"]) == (True, "https://engine.example/webhooks/sendgrid")
    assert shown["open"] is False and shown["click"] is True

    client.client.user.webhooks.event.settings.patch(
        request_body={"url": "https://engine.example/v2"}
    )
    shown = json.loads(client.client.user.webhooks.event.settings.get().body)
    assert (shown["enabled"], shown["url"], shown["open"]) == (
        True,
        "https://engine.example/v2",
        False,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"enabled": True, "url": "ftp://engine.example/hook"}, "url", id="ftp url"),
        pytest.param({"enabled": True, "url": "engine.example/hook"}, "url", id="relative url"),
        pytest.param({"enabled": True, "url": "https://"}, "url", id="no host"),
        pytest.param({"enabled": True, "url": "https://a b.example/"}, "url", id="space"),
        pytest.param({"enabled": True, "url": 42}, "url", id="url not a string"),
        pytest.param({"enabled": True}, "url", id="missing url"),
        pytest.param({"enabled": "yes", "url": "https://e.example/"}, "enabled", id="enabled str"),
        pytest.param({"url": "https://e.example/", "click": "true"}, "click", id="flag str"),
    ],
)
def test_patch_settings_rejects_invalid_bodies_with_sendgrid_errors(
    standin: SendGridStandIn, client: SendGridAPIClient, body: dict[str, Any], field: str
) -> None:
    before = standin.event_webhook_settings

    with pytest.raises(BadRequestsError) as caught:
        client.client.user.webhooks.event.settings.patch(request_body=body)

    assert caught.value.status_code == 400
    errors = json.loads(caught.value.body)["errors"]
    assert errors and all({"field", "message"} <= set(e) for e in errors)
    assert field in error_fields(caught.value)
    assert standin.event_webhook_settings == before


def test_set_event_webhook_rejects_a_non_http_url(standin: SendGridStandIn) -> None:
    with pytest.raises(ValueError, match="not a valid url"):
        standin.set_event_webhook("mailto:ops@acme.example")


def test_event_types_switched_off_are_not_posted(
    standin: SendGridStandIn, client: SendGridAPIClient, receiver: PostReceiver
) -> None:
    message_id = send_welcome(client)
    configure_webhook(client, receiver.url, open=False, spam_report=False)

    delivery = standin.emit_events(
        message_id, [{"event": "delivered"}, {"event": "open"}, {"event": "spamreport"}]
    )
    assert [e["event"] for e in delivery.events] == ["delivered"]
    assert [e["event"] for e in json.loads(receiver.posts[0].body)] == ["delivered"]

    nothing = standin.emit_events(message_id, [{"event": "open"}])
    assert (nothing.status, nothing.events, nothing.payload, nothing.signature) == (
        None,
        [],
        b"",
        None,
    )
    assert len(receiver.posts) == 1, "SendGrid posts nothing for switched-off types"


def test_signature_verification_can_be_switched_off_and_on(
    standin: SendGridStandIn, client: SendGridAPIClient, receiver: PostReceiver
) -> None:
    message_id = send_welcome(client)
    configure_webhook(client, receiver.url)
    signed = client.client.user.webhooks.event.settings.signed

    off = json.loads(signed.patch(request_body={"enabled": False}).body)
    assert (off["enabled"], off["public_key"]) == (False, "")
    delivery = standin.emit_events(message_id, [{"event": "open"}])
    assert delivery.signature is None
    assert receiver.posts[0].headers["X-Twilio-Email-Event-Webhook-Signature"] is None
    assert receiver.posts[0].headers["X-Twilio-Email-Event-Webhook-Timestamp"] is None

    standin.set_event_webhook(receiver.url)
    assert standin.emit_events(message_id, [{"event": "open"}]).signature is None, "kept off"

    on = json.loads(signed.patch(request_body={"enabled": True}).body)
    assert on["public_key"] == standin.webhook_public_key
    delivery = standin.emit_events(message_id, [{"event": "open"}])
    assert delivery.signature is not None
    key = fetch_verification_key(client)
    assert verifies(key, receiver.posts[-1].body, delivery.signature, delivery.timestamp)

    standin.set_event_webhook(receiver.url, signed=False)
    assert "public_key" not in standin.event_webhook_settings

    with pytest.raises(BadRequestsError) as caught:
        signed.patch(request_body={"enabled": "no"})
    assert error_fields(caught.value) == ["enabled"]


def test_webhook_settings_endpoints_require_the_api_key() -> None:
    with SendGridStandIn(api_key="SG.right") as standin:
        webhooks = SendGridAPIClient(api_key="SG.wrong", host=standin.url).client.user.webhooks
        calls: list[Callable[[], Any]] = [
            webhooks.event.settings.get,
            lambda: webhooks.event.settings.patch(request_body={"url": "https://e.example/"}),
            webhooks.event.settings.signed.get,
            lambda: webhooks.event.settings.signed.patch(request_body={"enabled": False}),
        ]
        for call in calls:
            with pytest.raises(UnauthorizedError):
                call()
        assert standin.event_webhook_settings["url"] == ""


def test_webhook_settings_answer_405_to_other_methods(client: SendGridAPIClient) -> None:
    with pytest.raises(MethodNotAllowedError):
        client.client.user.webhooks.event.settings.post(request_body={"url": "https://e.example/"})


def test_http_control_endpoint_emits_events_for_demos(
    standin: SendGridStandIn, client: SendGridAPIClient, receiver: PostReceiver
) -> None:
    message_id = send_welcome(client)
    url = f"{standin.url}/_standin/messages/{message_id}/events"

    status, answer = control_post(url, [{"event": "open"}])
    assert status == 409
    assert "no Event Webhook URL" in answer["errors"][0]["message"]

    configure_webhook(client, receiver.url)
    status, answer = control_post(url, [{"event": "click", "url": "https://acme.example/p"}])
    assert status == 200
    assert answer["status"] == 200
    assert (
        answer["signature"] == receiver.posts[0].headers["X-Twilio-Email-Event-Webhook-Signature"]
    )
    assert answer["events"] == json.loads(receiver.posts[0].body)
    assert verifies(
        fetch_verification_key(client),
        receiver.posts[0].body,
        answer["signature"],
        answer["timestamp"],
    )

    assert control_post(url, [{"event": "click"}])[0] == 400
    assert control_post(url, {"event": "open"})[0] == 400
    missing = f"{standin.url}/_standin/messages/no-such-id/events"
    assert control_post(missing, [{"event": "open"}])[0] == 404
    assert len(receiver.posts) == 1


def test_http_controls_need_the_token_when_the_standin_has_one(receiver: PostReceiver) -> None:
    """Finding 19 of issue 13: outside tests (``nurture up``, the command line) the stand-in
    has a control token, and without it no local caller gets webhook events signed."""
    with SendGridStandIn(control_token="t0ken") as guarded:
        client = SendGridAPIClient(api_key="SG.test-key", host=guarded.url)
        message_id = send_welcome(client)
        configure_webhook(client, receiver.url)
        url = f"{guarded.url}/_standin/messages/{message_id}/events"

        status, answer = control_post(url, [{"event": "open"}])
        assert status == 401 and "X-Standin-Token" in answer["errors"][0]["message"]
        assert control_post(f"{url}?token=wrong", [{"event": "open"}])[0] == 401
        assert receiver.posts == []
        assert control_post(f"{url}?token=t0ken", [{"event": "open"}])[0] == 200
        assert len(receiver.posts) == 1
        mailbox = urllib.request.Request(f"{guarded.url}/_standin/mailbox")
        with pytest.raises(urllib.error.HTTPError) as shut:
            urllib.request.urlopen(mailbox, timeout=10)
        assert shut.value.code == 401
        mailbox.add_header("X-Standin-Token", "t0ken")
        with urllib.request.urlopen(mailbox, timeout=10) as page:
            assert "Welcome aboard" in page.read().decode()
