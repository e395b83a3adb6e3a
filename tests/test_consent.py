"""Signed unsubscribe links and where their secret comes from."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from nurture.access.consent import (
    ConsentConfigError,
    InvalidLinkError,
    LinkSigner,
    UnsubscribeClaim,
)

SECRET = "a-secret-long-enough-for-tests"


def test_a_link_round_trips_and_any_edit_or_other_secret_is_refused() -> None:
    signer = LinkSigner(secret=SECRET, public_url="https://go.example/")
    claim = UnsubscribeClaim(lead_id="ada", key="touch:ada:smb:e1:c1:welcome")
    url = signer.unsubscribe_url(claim)
    assert url.startswith("https://go.example/u/")
    token = url.rsplit("/", 1)[-1]
    assert signer.verify(token) == claim
    assert "@" not in token  # no address in the URL
    other = LinkSigner(secret="another-secret-of-some-length")
    for bad in (token[:-2] + "xx", token.replace(".", "!"), "", "garbage"):
        with pytest.raises(InvalidLinkError):
            signer.verify(bad)
    with pytest.raises(InvalidLinkError):
        other.verify(token)
    assert SECRET not in repr(signer)


def test_with_real_sendgrid_a_shared_secret_and_an_https_public_url_are_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.real")
    monkeypatch.delenv("NURTURE_SECRET_KEY", raising=False)
    monkeypatch.setenv("NURTURE_PUBLIC_URL", "http://127.0.0.1:8080")
    with pytest.raises(ConsentConfigError) as caught:
        LinkSigner.from_env(tmp_path)
    assert len(caught.value.problems) == 2
    assert "NURTURE_SECRET_KEY is not set" in caught.value.problems[0]
    assert "NURTURE_PUBLIC_URL must be the https address" in caught.value.problems[1]
    monkeypatch.setenv("NURTURE_SECRET_KEY", "short")
    monkeypatch.setenv("NURTURE_PUBLIC_URL", "https://go.example")
    with pytest.raises(ConsentConfigError, match="at least 16 characters"):
        LinkSigner.from_env(tmp_path)
    monkeypatch.setenv("NURTURE_SECRET_KEY", SECRET)
    assert LinkSigner.from_env(tmp_path).public_url == "https://go.example"
    assert not (tmp_path / "secret.key").exists()


def test_locally_one_secret_is_made_once_and_shared_and_serve_never_makes_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("SENDGRID_API_KEY", "NURTURE_SECRET_KEY", "NURTURE_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConsentConfigError, match="no NURTURE_SECRET_KEY and no"):
        LinkSigner.from_env(tmp_path, create=False)
    secrets: list[str] = []
    threads = [
        threading.Thread(target=lambda: secrets.append(LinkSigner.from_env(tmp_path).secret))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(secrets)) == 1 and len(secrets[0]) >= 32
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert LinkSigner.from_env(tmp_path, create=False).secret == secrets[0]
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]


def test_inbox_links_name_the_rep_expire_and_refuse_edits() -> None:
    from datetime import timedelta

    from nurture.access.rep_links import RepClaim, RepLinkError, RepLinks

    links = RepLinks(SECRET, "https://go.example")
    url = links.url(RepClaim(rep="alice", action="reject", lead_id="ada"))
    assert url.startswith("https://go.example/inbox/") and url.endswith("/reject")
    token = url.split("/")[-2]
    assert links.verify(token) == RepClaim(rep="alice", action="reject", lead_id="ada")
    with pytest.raises(RepLinkError, match="damaged"):
        links.verify(token[:-3] + "abc")
    with pytest.raises(RepLinkError, match="expired"):
        RepLinks(SECRET, "https://go.example", max_age=timedelta(seconds=-1)).verify(token)
    assert SECRET not in repr(links)
