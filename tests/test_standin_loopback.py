"""The lifecycle both stand-ins get from their loopback base, as each had it on its own."""

from __future__ import annotations

import http.client
import threading

import pytest

from nurture.standins.crm_standin import SalesforceStandIn
from nurture.standins.sendgrid_standin import SendGridStandIn


@pytest.mark.parametrize("kind", [SendGridStandIn, SalesforceStandIn])
def test_start_stop_and_url(kind: type[SendGridStandIn] | type[SalesforceStandIn]) -> None:
    standin = kind()
    with pytest.raises(RuntimeError, match=f"{kind.__name__} is not running"):
        _ = standin.url
    with standin:
        port = int(standin.url.rsplit(":", 1)[1])
        assert standin.url == f"http://127.0.0.1:{port}"
        assert any(t.name.endswith(f"-standin:{port}") for t in threading.enumerate())
        with pytest.raises(RuntimeError, match=f"{kind.__name__} is already running"):
            standin.start()
    standin.stop()  # stopping twice is fine
    with pytest.raises(ConnectionRefusedError):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/")


def test_the_url_names_the_host_as_each_stand_in_always_did() -> None:
    """SendGrid's URL names the bound address; Salesforce's instance URL the host as given."""
    with SendGridStandIn(host="localhost") as sendgrid:
        assert sendgrid.url.startswith("http://127.0.0.1:")
    with SalesforceStandIn(host="localhost") as salesforce:
        assert salesforce.url.startswith("http://localhost:")


def test_the_server_header_is_each_stand_ins_own() -> None:
    for standin, server in (
        (SendGridStandIn(), "nginx"),
        (SalesforceStandIn(), "SalesforceStandIn"),
    ):
        with standin:
            host, port = standin.url.removeprefix("http://").rsplit(":", 1)
            connection = http.client.HTTPConnection(host, int(port), timeout=5)
            connection.request("GET", "/nowhere")
            response = connection.getresponse()
            response.read()
            connection.close()
            assert response.getheader("Server") == server
