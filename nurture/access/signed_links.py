"""What every signed link shares (unsubscribe, rep inbox, dashboard): a payload signed with the
deployment's secret by itsdangerous, under a salt of its own kind so that no kind of link can
stand in for another, optionally expiring, and served under the public base URL.

The salts and token formats are what links already handed out carry: changing one revokes
every link of that kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

from itsdangerous import (
    BadData,
    Serializer,
    SignatureExpired,
    TimestampSigner,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)
from itsdangerous.encoding import base64_decode, base64_encode

T = TypeVar("T")


class SignedLinkError(ValueError):
    """A link that is damaged, forged or expired; the message says which, for the person who
    clicked it."""


def canonical(token: str) -> bool:
    """Whether each part of ``token`` is spelt as its bytes encode. Base64 leaves spare bits
    in a part's last character, so four spellings of a link decode to the same signed bytes:
    only the one that was signed is the link (an altered link is refused, whatever changed)."""
    try:
        return all(
            base64_encode(base64_decode(part)) == part.encode("ascii")
            for part in token.lstrip(".").split(".")  # a leading "." marks a compressed payload
        )
    except (BadData, UnicodeEncodeError, ValueError):
        return False


class _SignedAt(TimestampSigner):
    """itsdangerous' timestamp signer, at a given moment instead of now."""

    def __init__(self, *args: Any, at: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.at = at

    def get_timestamp(self) -> int:
        return self.at


@dataclass(frozen=True, repr=False)
class SignedLinks:
    """Signs and reads one kind of link. Subclasses are frozen dataclasses with ``repr=False``
    (so that the secret never reaches a log line) and set the class attributes below."""

    secret: str
    public_url: str

    salt: ClassVar[str]
    timed: ClassVar[bool] = False
    """Whether a token carries the time it was signed (itsdangerous' timed serializer)."""
    error: ClassVar[type[SignedLinkError]] = SignedLinkError
    damaged: ClassVar[str] = "this link is damaged or was not made by Nurture"
    expired: ClassVar[str] = "this link has expired"

    def _serializer(self) -> Serializer[str]:
        kind = URLSafeTimedSerializer if self.timed else URLSafeSerializer
        return kind(self.secret, salt=self.salt)

    def _sign(self, payload: object, signed_at: datetime | None = None) -> str:
        """The token of ``payload``; a :attr:`timed` one says it was signed at ``signed_at``
        (default now; a naive time is UTC, as the database hands it back): the same payload
        signed at the same second is the same token."""
        if signed_at is None:
            return str(self._serializer().dumps(payload))
        if not self.timed:
            raise TypeError(f"{type(self).__name__} tokens carry no time")
        serializer = URLSafeTimedSerializer(
            self.secret,
            salt=self.salt,
            signer=_SignedAt,
            signer_kwargs={"at": int(_utc(signed_at).timestamp())},
        )
        return str(serializer.dumps(payload))

    def _read(
        self, token: str, read: Callable[[Any], T], max_age: timedelta | None = None
    ) -> tuple[T, datetime | None]:
        """``read(payload)`` and when the token was signed (None when not :attr:`timed`).
        A token that is damaged, forged or not what ``read`` expects raises :attr:`error`
        with :attr:`damaged`; one older than ``max_age``, with :attr:`expired`."""
        serializer = self._serializer()
        try:
            if not canonical(token):
                raise BadData("not the spelling the token was signed with")
            if isinstance(serializer, URLSafeTimedSerializer):
                seconds = None if max_age is None else int(max_age.total_seconds())
                payload, signed_at = serializer.loads(token, max_age=seconds, return_timestamp=True)
                return read(payload), signed_at
            return read(serializer.loads(token)), None
        except SignatureExpired:
            raise self.error(self.expired) from None
        except (BadData, ValueError, TypeError, KeyError):
            raise self.error(self.damaged) from None

    def _link(self, *path: str) -> str:
        """The URL of ``path`` under the public base URL."""
        return "/".join((self.public_url.rstrip("/"), *path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(public_url={self.public_url!r}, secret='***')"


@dataclass(frozen=True, repr=False)
class ExpiringLinks(SignedLinks):
    """Links that carry when they were made, and expire: by default ``max_age`` after that."""

    max_age: timedelta = timedelta(days=7)

    timed = True


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
