"""The payload codec: every payload a client or worker sends to Temporal is encrypted with the
data key of the lead it belongs to (AES-256-GCM), so the server, its database and anyone
reading a history without the codec see ciphertext; erasing the lead destroys the key.

Which lead a payload belongs to comes from the serialization context the SDK gives the codec
(the workflow id of the workflow, or of the workflow that ran the activity). Payloads made
outside any workflow use the engine's own key. The encrypted payload names its data key in
its metadata, so decoding needs no context; payloads that were never encrypted (histories
recorded before encryption) pass through unchanged.

``None`` (an activity's or a local activity's answer, mostly: ``binary/null``, no data at all)
is left plain: sealing nothing costs ~150 bytes of history per answer and hides nothing.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

from nurture.privacy.key_store import ENGINE_OWNER, KeyShreddedError, KeyStore, UnknownKeyError

ENCODING = b"binary/encrypted"
NOTHING = b"binary/null"
KEY_ID = "encryption-key-id"
CIPHER = "encryption-cipher"
AES_256_GCM = b"AES-256-GCM"
NONCE_BYTES = 12


@dataclass(frozen=True)
class EnvelopeCodec(PayloadCodec, WithSerializationContext):
    store: KeyStore
    owner: str = ENGINE_OWNER

    def with_context(self, context: SerializationContext) -> Self:
        workflow_id = None
        if isinstance(context, WorkflowSerializationContext | ActivitySerializationContext):
            workflow_id = context.workflow_id
        return type(self)(self.store, workflow_id or ENGINE_OWNER)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if not payloads:
            return []
        material = await self.store.key_for(self.owner)
        cipher, aad = AESGCM(material.key), material.key_id.encode()
        encoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") == NOTHING and not payload.data:
                encoded.append(payload)
                continue
            nonce = secrets.token_bytes(NONCE_BYTES)
            encoded.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID: aad, CIPHER: AES_256_GCM},
                    data=nonce + cipher.encrypt(nonce, payload.SerializeToString(), aad),
                )
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Plain payloads; raises if one's key was shredded (:class:`KeyShreddedError`)."""
        wanted = _key_ids(payloads)
        return _opened(payloads, await self.store.keys(wanted) if wanted else {}, strict=True)

    async def decode_readable(self, payloads: Sequence[Payload]) -> list[Payload]:
        """For a person reading a history (the codec server): what can be decrypted is; a
        payload whose key was shredded, or that another database's key encrypted, is left
        as the ciphertext it is."""
        keys: dict[str, bytes] = {}
        for key_id in _key_ids(payloads):
            with contextlib.suppress(KeyShreddedError, UnknownKeyError):
                keys |= await self.store.keys([key_id])
        return _opened(payloads, keys, strict=False)


def _key_ids(payloads: Sequence[Payload]) -> set[str]:
    return {key_id for p in payloads if (key_id := _key_id(p)) is not None}


def _key_id(payload: Payload) -> str | None:
    """The data key an encrypted payload names; None for a plain payload, or one whose name
    is not one we make (hex), which no key opens."""
    if payload.metadata.get("encoding") != ENCODING:
        return None
    name = payload.metadata.get(KEY_ID, b"")
    return name.decode() if name and len(name) <= 64 and name.isalnum() and name.isascii() else None


def _opened(payloads: Sequence[Payload], keys: dict[str, bytes], *, strict: bool) -> list[Payload]:
    """``payloads`` decrypted with ``keys``; not ``strict``, one that does not decrypt (altered
    on the way: GCM checks) is left as it is instead of failing the lot."""
    opened = []
    for payload in payloads:
        key_id = _key_id(payload)
        key = keys.get(key_id) if key_id is not None else None
        if key is None or key_id is None:
            if strict and payload.metadata.get("encoding") == ENCODING:
                raise InvalidTag(f"an encrypted payload names no key of ours ({key_id!r})")
            opened.append(payload)
            continue
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            if len(nonce) < NONCE_BYTES:
                raise InvalidTag("shorter than a nonce")
            opened.append(Payload.FromString(AESGCM(key).decrypt(nonce, sealed, key_id.encode())))
        except (InvalidTag, DecodeError):
            if strict:
                raise
            opened.append(payload)
    return opened
