"""Links the CLI and the worker hand out point where the HTTP service really is (finding 22)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nurture.access.consent import LinkSigner, UnsubscribeClaim

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret-0123456789abcdef"
LINK_ENV = ("NURTURE_PUBLIC_URL", "NURTURE_HTTP_HOST", "NURTURE_HTTP_PORT", "SENDGRID_API_KEY")


def nurture(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in LINK_ENV}
    return subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), *args],
        cwd=tmp_path,
        env={**clean, "NURTURE_SECRET_KEY": SECRET, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", [["inbox-link", "--rep", "alice"], ["dashboard-link"]])
def test_links_follow_the_http_port_the_service_runs_on(tmp_path: Path, command: list[str]) -> None:
    """Finding 22: with NURTURE_HTTP_PORT=9123 the printed link is on 9123, not 8080."""
    result = nurture(tmp_path, *command, NURTURE_HTTP_PORT="9123")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("http://127.0.0.1:9123/"), result.stdout


@pytest.mark.parametrize("command", [["inbox-link", "--rep", "alice"], ["dashboard-link"]])
def test_links_follow_the_public_url_when_it_is_set(tmp_path: Path, command: list[str]) -> None:
    """Finding 22: NURTURE_PUBLIC_URL wins over the local port (reps open links elsewhere)."""
    result = nurture(
        tmp_path,
        *command,
        NURTURE_HTTP_PORT="9123",
        NURTURE_PUBLIC_URL="https://nurture.example.com/",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("https://nurture.example.com/"), result.stdout
    assert "//" not in result.stdout.removeprefix("https://")


def test_a_wildcard_listen_address_gives_a_link_a_browser_can_open(tmp_path: Path) -> None:
    """Finding 22: a service on 0.0.0.0 is reached at 127.0.0.1 from this machine."""
    result = nurture(
        tmp_path,
        "inbox-link",
        "--rep",
        "alice",
        NURTURE_HTTP_HOST="0.0.0.0",
        NURTURE_HTTP_PORT="81",
    )
    assert result.stdout.startswith("http://127.0.0.1:81/inbox/"), result.stdout


@pytest.mark.parametrize("command", ["inbox-link", "dashboard-link", "up"])
def test_help_says_links_need_the_public_url_to_open_elsewhere(
    tmp_path: Path, command: str
) -> None:
    """Finding 22: the help tells the user about NURTURE_PUBLIC_URL."""
    result = nurture(tmp_path, command, "--help")
    assert result.returncode == 0, result.stderr
    assert "NURTURE_PUBLIC_URL" in result.stdout
    if command == "up":  # finding 29: it says what it runs, the HTTP service included
        said = " ".join(result.stdout.split())
        assert "the HTTP service (API, rep inbox, dashboard" in said and "--http-port" in said, said


def test_the_worker_signs_unsubscribe_links_on_the_same_base(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Finding 22: the worker's links (unsubscribe, and the rep links built from the same
    signer) come from the one function the CLI uses; a port given by the serving process
    (``nurture serve --port``, ``nurture up --http-port``) wins over the environment."""
    for name in LINK_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NURTURE_SECRET_KEY", SECRET)
    monkeypatch.setenv("NURTURE_HTTP_PORT", "9123")
    claim = UnsubscribeClaim(lead_id="ada", key="touch-1")
    assert (
        LinkSigner.from_env(tmp_path).unsubscribe_url(claim).startswith("http://127.0.0.1:9123/u/")
    )
    served = LinkSigner.from_env(tmp_path, http_host="::1", http_port=9200)
    assert served.public_url == "http://[::1]:9200"
    monkeypatch.setenv("NURTURE_PUBLIC_URL", "https://go.example")
    assert LinkSigner.from_env(tmp_path, http_port=9200).public_url == "https://go.example"
