"""Links handed out before the signed-link base keep working after it: the salts, token formats
and URLs below are written out as the code before the base made them (itsdangerous directly),
so a change to any of them fails here."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from itsdangerous import TimestampSigner, URLSafeSerializer, URLSafeTimedSerializer

from nurture.access.consent import InvalidLinkError, LinkSigner, UnsubscribeClaim
from nurture.access.dashboard_links import DashboardLinkError, DashboardLinks
from nurture.access.rep_links import RepClaim, RepLinkError, RepLinks
from nurture.access.signed_links import SignedLinkError

SECRET = "a-secret-long-enough-for-tests"
BASE = "https://go.example/"
DAY = 24 * 3600


def signed_at(seconds_ago: int) -> type[TimestampSigner]:
    """A signer that dates its tokens ``seconds_ago``: a link made earlier."""
    stamp = int(time.time()) - seconds_ago

    class Earlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return stamp

    return Earlier


def old_timed(salt: str, seconds_ago: int = 0) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(SECRET, salt=salt, signer=signed_at(seconds_ago))


def test_unsubscribe_links_are_the_same_tokens_and_urls_as_before() -> None:
    old = URLSafeSerializer(SECRET, salt="nurture.unsubscribe.v1")
    claim = UnsubscribeClaim(lead_id="ada", key="touch:ada:smb:e1:c1:welcome")
    token = old.dumps(["ada", "touch:ada:smb:e1:c1:welcome"])
    signer = LinkSigner(secret=SECRET, public_url=BASE)
    assert signer.token(claim) == token  # untimed: the very same token
    assert signer.unsubscribe_url(claim) == f"https://go.example/u/{token}"
    assert signer.verify(token) == claim
    assert signer.is_unsubscribe_link(f"http://elsewhere:8080/u/{token}")
    with pytest.raises(InvalidLinkError, match="unsubscribe link is damaged"):
        signer.verify(old.dumps(["ada"]))


def test_rep_links_made_yesterday_still_open_and_expire_after_a_week() -> None:
    links = RepLinks(SECRET, BASE)
    yesterday = old_timed("nurture.rep-links.v1", DAY)
    accept = yesterday.dumps(["alice", "accept", "lead-1"])
    inbox = yesterday.dumps(["alice", "inbox", None])
    assert links.verify(accept) == RepClaim(rep="alice", action="accept", lead_id="lead-1")
    assert links.verify(inbox) == RepClaim(rep="alice", action="inbox")
    with pytest.raises(RepLinkError, match="has expired"):
        links.verify(old_timed("nurture.rep-links.v1", 8 * DAY).dumps(["alice", "inbox", None]))
    with pytest.raises(RepLinkError, match="damaged"):
        links.verify(yesterday.dumps(["alice", "delete", "lead-1"]))
    # what is made now reads as before, at the same addresses
    url = links.url(RepClaim(rep="bob", action="reject", lead_id="lead-2"))
    prefix, token, action = url.rsplit("/", 2)
    assert (prefix, action) == ("https://go.example/inbox", "reject")
    assert URLSafeTimedSerializer(SECRET, salt="nurture.rep-links.v1").loads(token) == [
        "bob",
        "reject",
        "lead-2",
    ]
    inbox_url = links.url(RepClaim(rep="bob", action="inbox"))
    assert inbox_url.startswith("https://go.example/inbox/") and inbox_url.count("/") == 4


def test_dashboard_links_keep_their_days_and_salt() -> None:
    links = DashboardLinks(SECRET, BASE)
    two_days_ago = old_timed("dashboard", 2 * DAY).dumps({"days": 7.0})
    left = links.verify(two_days_ago)
    assert timedelta(days=4, hours=23) < left <= timedelta(days=5)
    with pytest.raises(DashboardLinkError, match="has expired"):
        links.verify(old_timed("dashboard", 8 * DAY).dumps({"days": 7.0}))
    assert links.verify(old_timed("dashboard", 8 * DAY).dumps({"days": 30})) > timedelta(days=21)
    for forged in ({"days": 400}, {"weeks": 1}, [7]):
        with pytest.raises(DashboardLinkError, match="damaged"):
            links.verify(old_timed("dashboard").dumps(forged))
    url = links.url(timedelta(days=30))
    assert url.startswith("https://go.example/dashboard/")
    token = url.rsplit("/", 1)[-1]
    assert URLSafeTimedSerializer(SECRET, salt="dashboard").loads(token) == {"days": 30.0}


def test_no_kind_of_link_stands_in_for_another_and_no_secret_is_shown() -> None:
    signer, rep, dashboard = (
        LinkSigner(SECRET),
        RepLinks(SECRET, BASE),
        DashboardLinks(SECRET, BASE),
    )
    tokens = {
        "unsubscribe": signer.token(UnsubscribeClaim("l", "k")),
        "rep": rep.token(RepClaim("ana", "inbox")),
        "dashboard": dashboard.token(),
    }
    verifiers: dict[str, Callable[[str], object]] = {
        "unsubscribe": signer.verify,
        "rep": rep.verify,
        "dashboard": dashboard.verify,
    }
    for name, verify in verifiers.items():
        for other, token in tokens.items():
            if other != name:
                with pytest.raises(SignedLinkError):
                    verify(token)
    for links in (signer, rep, dashboard):
        assert SECRET not in repr(links)
        assert repr(links).startswith(f"{type(links).__name__}(public_url=")


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def respellings(token: str) -> list[str]:
    """The same token with its last character's spare bits set otherwise: the signature's
    bytes do not change (base64 of 20 bytes leaves 2 bits unused in its last character)."""
    last = ALPHABET.index(token[-1])
    spare = 0b11 if len(token.rsplit(".", 1)[-1]) % 4 == 3 else 0b1111
    return [token[:-1] + ALPHABET[(last & ~spare) | bits] for bits in range(spare + 1)]


@pytest.mark.parametrize(
    "sign_and_check",
    [
        pytest.param(
            lambda: (
                (s := LinkSigner(secret=SECRET, public_url=BASE)).token(
                    UnsubscribeClaim(lead_id="ada", key="k")
                ),
                s.verify,
            ),
            id="unsubscribe",
        ),
        pytest.param(
            lambda: (
                (r := RepLinks(SECRET, BASE)).token(RepClaim(rep="alice", action="inbox")),
                r.verify,
            ),
            id="rep inbox",
        ),
        pytest.param(
            lambda: ((d := DashboardLinks(SECRET, BASE)).token(), d.verify),
            id="dashboard",
        ),
    ],
)
def test_only_the_signed_spelling_of_a_link_opens(
    sign_and_check: Callable[[], tuple[str, Callable[[str], object]]],
) -> None:
    """Found trying it from outside (issue 14): a link ending in 4, 5, 6 or 7 opened alike
    (the same signature bytes). An altered link is refused, whatever was altered."""
    token, verify = sign_and_check()
    verify(token)
    others = [t for t in respellings(token) if t != token]
    assert others
    for other in others:
        with pytest.raises(SignedLinkError):
            verify(other)
