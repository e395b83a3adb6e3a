"""The master keys that wrap every lead's data key (envelope encryption).

``NURTURE_MASTER_KEY`` is the current master key: 32 random bytes in base64 (``nurture
master-key generate`` prints one). Rotating it: set the new key there and move the old one to
``NURTURE_MASTER_KEYS_OLD`` (comma-separated) on every worker, service and CLI host, restart
them all (a process still on the old key keeps wrapping new leads' keys with it), then
``nurture master-key rewrap`` re-wraps every data key with the new one; after that the old key
can be dropped everywhere. A master key is
known by its id, a fingerprint of the key (never the key): each data key row names the master
key that wrapped it, so reading works across a rotation.

On the embedded default (no SendGrid key) the master key is kept in ``<data dir>/master.key``,
made on first use. With a real SendGrid key it must be set: a key generated on one machine
would leave every other worker unable to read the leads.

:class:`KeyWrapper` is all the key store needs from a master key, so a cloud KMS (wrap and
unwrap by API call) can take its place.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nurture.runtime.secret_files import read_or_create

MASTER_KEY_ENV = "NURTURE_MASTER_KEY"
OLD_MASTER_KEYS_ENV = "NURTURE_MASTER_KEYS_OLD"
KEY_BYTES = 32
NONCE_BYTES = 12


class MasterKeyError(ValueError):
    """The master key configuration cannot encrypt or decrypt safely; the message says why
    (a ValueError: entry points refuse to start on it as on any bad setting)."""


class UnknownMasterKeyError(MasterKeyError):
    """A data key was wrapped by a master key this process was not given."""


class KeyWrapper(Protocol):
    """Wraps and unwraps data keys: the master keys here, or a cloud KMS."""

    @property
    def current_id(self) -> str: ...

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        """``(master key id, wrapped key)``; ``context`` is bound to the result (the data
        key's id), so a wrapped key moved to another row does not unwrap."""
        ...

    def unwrap(self, master_key_id: str, wrapped: bytes, context: bytes) -> bytes: ...


def generate() -> str:
    """A new master key, as ``NURTURE_MASTER_KEY`` takes it."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def key_id(key: bytes) -> str:
    """The master key's public name: a fingerprint that reveals nothing of the key."""
    return "mk-" + hashlib.sha256(b"nurture master key id\x00" + key).hexdigest()[:16]


def parse(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise MasterKeyError(
            f"{source} must be {KEY_BYTES} random bytes in base64 "
            "(make one with 'nurture master-key generate')"
        )
    return key


@dataclass(frozen=True, repr=False)
class MasterKeys:
    """The current master key and older ones kept for reading."""

    current: bytes
    old: tuple[bytes, ...] = ()
    _by_id: dict[str, AESGCM] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        keys = {key_id(key): AESGCM(key) for key in (*self.old, self.current)}
        object.__setattr__(self, "_by_id", keys)

    def __repr__(self) -> str:
        return f"MasterKeys(current={self.current_id!r}, old={len(self.old)})"

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._by_id)

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._by_id[self.current_id].encrypt(nonce, data_key, context)
        return self.current_id, nonce + sealed

    def unwrap(self, master_key_id: str, wrapped: bytes, context: bytes) -> bytes:
        cipher = self._by_id.get(master_key_id)
        if cipher is None:
            raise UnknownMasterKeyError(
                f"a data key is wrapped by master key {master_key_id}, which this process was "
                f"not given: put it in {OLD_MASTER_KEYS_ENV} until 'nurture master-key rewrap' "
                "has run"
            )
        return cipher.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context)

    @classmethod
    def from_env(cls, data_dir: Path) -> MasterKeys:
        """``NURTURE_MASTER_KEY`` (+ ``NURTURE_MASTER_KEYS_OLD``), else ``<data dir>/master.key``
        on the embedded default."""
        text = os.environ.get(MASTER_KEY_ENV, "").strip()
        if text:
            current = parse(text, MASTER_KEY_ENV)
        elif os.environ.get("SENDGRID_API_KEY"):
            raise MasterKeyError(
                f"{MASTER_KEY_ENV} is not set: with real recipients every worker, HTTP service "
                "and CLI must share one master key (make one with 'nurture master-key generate')"
            )
        else:
            current = parse(read_or_create(data_dir / "master.key", generate), "master.key")
        old = tuple(
            parse(part, OLD_MASTER_KEYS_ENV)
            for part in os.environ.get(OLD_MASTER_KEYS_ENV, "").split(",")
            if part.strip()
        )
        return cls(current=current, old=old)
