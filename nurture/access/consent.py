"""Consent: signed one-click unsubscribe links and preferences links, and where the signing
secret comes from.

A link carries the lead and the touch it came with (not the address: links end up in logs),
signed with the engine's secret (itsdangerous), so nobody can unsubscribe someone else, or
change their topics, by editing a URL. Unsubscribe links never expire: RFC 8058 and the
mailbox providers expect them to keep working; preferences links, in the same footer, neither.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nurture.access.signed_links import SignedLinkError, SignedLinks
from nurture.runtime.secret_files import read_or_create

SECRET_ENV = "NURTURE_SECRET_KEY"
PUBLIC_URL_ENV = "NURTURE_PUBLIC_URL"
HTTP_HOST_ENV = "NURTURE_HTTP_HOST"
HTTP_PORT_ENV = "NURTURE_HTTP_PORT"
DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8080
DEFAULT_PUBLIC_URL = f"http://{DEFAULT_HTTP_HOST}:{DEFAULT_HTTP_PORT}"
_ANY_ADDRESS = ("", "0.0.0.0", "::")


class ConsentConfigError(Exception):
    """Unsubscribe links cannot be made or checked safely with this configuration."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class InvalidLinkError(SignedLinkError):
    """A link that was not made by this engine, or was altered on the way."""


@dataclass(frozen=True)
class UnsubscribeClaim:
    lead_id: str
    key: str  # the idempotency key (touch id) of the email the link came with

    @property
    def event_id(self) -> str:
        """One unsubscribe per email: clicking twice, or link + SendGrid's unsubscribe event
        for the same touch, counts once (the webhook uses the same id)."""
        return f"unsubscribe:{self.key}"


@dataclass(frozen=True, repr=False)
class LinkSigner(SignedLinks):
    """Makes and checks the signed tokens in unsubscribe links (they never expire)."""

    secret: str
    public_url: str = DEFAULT_PUBLIC_URL

    salt = "nurture.unsubscribe.v1"
    error = InvalidLinkError
    damaged = "this unsubscribe link is damaged or was not sent by us"

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ValueError(f"{SECRET_ENV} must be at least 16 characters long")

    @classmethod
    def from_env(
        cls,
        data_dir: Path | None = None,
        *,
        create: bool = True,
        http_host: str | None = None,
        http_port: int | None = None,
    ) -> LinkSigner:
        """``NURTURE_SECRET_KEY`` and the links' base (see :func:`public_url_from_env`;
        ``http_host``/``http_port`` are where this process serves HTTP, when it does).

        Without a key, the one in ``<data dir>/secret.key`` is used (generated on first use
        when ``create``), so links stay valid across restarts of one machine. With a real
        SendGrid key (real recipients) both must be set, the URL public and https: links
        signed by one secret and checked with another would leave people unable to leave.
        """
        directory = data_dir or Path(os.environ.get("NURTURE_DATA_DIR", "data"))
        public_url = os.environ.get(PUBLIC_URL_ENV, "")
        secret = os.environ.get(SECRET_ENV, "")
        if os.environ.get("SENDGRID_API_KEY"):
            problems = []
            if not secret:
                problems.append(
                    f"{SECRET_ENV} is not set: give every worker and HTTP service the same "
                    "secret of 16+ characters (e.g. 'openssl rand -base64 32')"
                )
            if not public_url.startswith("https://"):
                problems.append(
                    f"{PUBLIC_URL_ENV} must be the https address where 'nurture serve' is "
                    f"reachable from the internet (got {public_url or 'nothing'!r})"
                )
            if problems:
                raise ConsentConfigError(problems)
        if not secret:
            secret = _secret_file(directory, create)
        try:
            return cls(secret=secret, public_url=public_url_from_env(http_host, http_port))
        except ValueError as exc:
            raise ConsentConfigError([str(exc)]) from None

    def token(self, claim: UnsubscribeClaim) -> str:
        return self._sign([claim.lead_id, claim.key])

    def unsubscribe_url(self, claim: UnsubscribeClaim) -> str:
        return self._link("u", self.token(claim))

    def footer_links(self, claim: UnsubscribeClaim) -> dict[str, str]:
        """The signed links every marketing email's footer carries, by template variable."""
        return {
            "unsubscribe_url": self.unsubscribe_url(claim),
            "preferences_url": self.preferences_url(claim),
        }

    def _preferences(self) -> PreferenceLinks:
        return PreferenceLinks(self.secret, self.public_url)

    def preferences_url(self, claim: UnsubscribeClaim) -> str:
        """The link to the page where the person chooses the topics they get email about."""
        return self._preferences().url(claim)

    def verify_preferences(self, token: str) -> UnsubscribeClaim:
        return self._preferences().verify(token)

    def verify(self, token: str) -> UnsubscribeClaim:
        claim, _ = self._read(token, _unsubscribe_claim)
        return claim

    def is_unsubscribe_link(self, url: str) -> bool:
        """Whether ``url`` is one of our unsubscribe links (wherever it is served from)."""
        path = urlsplit(url).path
        if not path.startswith("/u/"):
            return False
        try:
            self.verify(path[3:])
        except InvalidLinkError:
            return False
        return True


@dataclass(frozen=True, repr=False)
class PreferenceLinks(SignedLinks):
    """Links to the preferences page: the same claim as an unsubscribe link's, under a salt of
    their own (a preferences link cannot unsubscribe by one-click POST, nor the reverse)."""

    salt = "nurture.preferences.v1"
    error = InvalidLinkError
    damaged = "this preferences link is damaged or was not sent by us"

    def url(self, claim: UnsubscribeClaim) -> str:
        return self._link("p", self._sign([claim.lead_id, claim.key]))

    def verify(self, token: str) -> UnsubscribeClaim:
        claim, _ = self._read(token, _unsubscribe_claim)
        return claim


def _unsubscribe_claim(payload: Any) -> UnsubscribeClaim:
    lead_id, key = payload
    return UnsubscribeClaim(lead_id=str(lead_id), key=str(key))


def public_url_from_env(http_host: str | None = None, http_port: int | None = None) -> str:
    """The base of every link we hand out (rep inbox, accept/reject, dashboard, unsubscribe):
    ``NURTURE_PUBLIC_URL`` when set, else where the HTTP service listens on this machine
    (``http_host``/``http_port`` if given, else ``NURTURE_HTTP_HOST``/``NURTURE_HTTP_PORT``,
    the settings 'nurture serve' listens on). One function, so that the CLI, the worker's
    emails and the service itself never disagree about where a link points."""
    public_url = os.environ.get(PUBLIC_URL_ENV, "").strip()
    if public_url:
        return public_url.rstrip("/")
    host = http_host if http_host is not None else os.environ.get(HTTP_HOST_ENV, "")
    if http_port is None:
        port = os.environ.get(HTTP_PORT_ENV, "").strip() or str(DEFAULT_HTTP_PORT)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{HTTP_PORT_ENV} must be a port number, not {port!r}")
        http_port = int(port)
    return local_url(host, http_port)


def local_url(host: str, port: int) -> str:
    """The address a browser on this machine reaches a service listening on ``host:port``
    at (a wildcard address such as 0.0.0.0 is not one a browser can open)."""
    host = host.strip()
    if host in _ANY_ADDRESS:
        host = DEFAULT_HTTP_HOST
    if ":" in host and not host.startswith("["):  # an IPv6 address
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _secret_file(data_dir: Path, create: bool) -> str:
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    if not create:
        raise ConsentConfigError(
            [
                f"no {SECRET_ENV} and no {path}: set {SECRET_ENV} to the secret the workers "
                "sign unsubscribe links with (or point NURTURE_DATA_DIR at their data dir)"
            ]
        )
    return read_or_create(path, lambda: secrets.token_urlsafe(32))
