"""The SendGrid stand-in, exercised through the real ``sendgrid`` client only."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
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
from sendgrid.helpers.mail import Category, CustomArg, Header, Mail

from nurture.sendgrid_standin import SendGridStandIn

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
        [sys.executable, "-m", "nurture.sendgrid_standin", "--port", "0", "--api-key", "SG.cli"],
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
