"""Data keys and master keys without a Temporal server: rotation, shredding, re-creation after
erasure, tampering, and payloads from before encryption."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from sqlmodel import Session, select
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter

from nurture.privacy.codec import EnvelopeCodec
from nurture.privacy.key_store import KeyShreddedError, KeyStore, rewrap_keys, shred_keys
from nurture.privacy.master_keys import (
    MASTER_KEY_ENV,
    MasterKeyError,
    MasterKeys,
    UnknownMasterKeyError,
    generate,
    parse,
)
from nurture.store.data_keys import DataKey
from nurture.store.db import make_engine

ADA = "lead-ada"


def _master() -> MasterKeys:
    return MasterKeys(current=parse(generate(), "test"))


def _payload(text: str) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([text])[0]


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_engine(f"sqlite:///{tmp_path / 'keys.db'}")


async def test_a_rotated_master_key_reads_old_keys_until_rewrapped(engine) -> None:  # type: ignore[no-untyped-def]
    old = _master()
    sealed = await EnvelopeCodec(KeyStore(engine, old), ADA).encode([_payload("ada@x.example")])
    new = MasterKeys(current=parse(generate(), "new"), old=(old.current,))

    assert (await EnvelopeCodec(KeyStore(engine, new)).decode(sealed))[0].data == b'"ada@x.example"'
    without_old = MasterKeys(current=new.current)
    with pytest.raises(UnknownMasterKeyError, match="NURTURE_MASTER_KEYS_OLD"):
        await EnvelopeCodec(KeyStore(engine, without_old)).decode(sealed)

    done: list[int] = []
    assert rewrap_keys(engine, new, done.append) == 1 and done == [1]
    assert rewrap_keys(engine, new) == 0  # safe to run again
    decoded = await EnvelopeCodec(KeyStore(engine, without_old)).decode(sealed)
    assert decoded[0].data == b'"ada@x.example"'
    with Session(engine) as session:
        (row,) = session.exec(select(DataKey)).all()
    assert row.master_key_id == new.current_id and row.owner == ADA


async def test_a_wrapped_key_copied_to_another_row_does_not_unwrap(engine) -> None:  # type: ignore[no-untyped-def]
    master = _master()
    store = KeyStore(engine, master)
    await store.key_for(ADA)
    await store.key_for("lead-bob")
    with Session(engine) as session:
        ada, bob = sorted(session.exec(select(DataKey)).all(), key=lambda r: r.owner)
        bob.wrapped = ada.wrapped
        session.add(bob)
        session.commit()
        bob_id = bob.key_id
    with pytest.raises(InvalidTag):
        await KeyStore(engine, master).keys([bob_id])


async def test_one_process_makes_one_key_per_lead_even_when_asked_at_once(engine) -> None:  # type: ignore[no-untyped-def]
    store = KeyStore(engine, _master())
    keys = await asyncio.gather(*(store.key_for(ADA) for _ in range(20)))
    assert len({k.key_id for k in keys}) == 1
    with Session(engine) as session:
        assert len(session.exec(select(DataKey)).all()) == 1


async def test_after_erasure_a_lead_of_the_same_id_gets_a_new_key(engine) -> None:  # type: ignore[no-untyped-def]
    """Re-imported after ``forget``: the new lead's payloads are readable, the old never."""
    master = _master()
    store, elsewhere = KeyStore(engine, master), KeyStore(engine, master)
    before = await EnvelopeCodec(store, ADA).encode([_payload("old")])
    await EnvelopeCodec(elsewhere, ADA).decode(before)  # another process holds the key too
    assert shred_keys(engine, ADA) == 1
    await asyncio.sleep(1.1)
    after = await EnvelopeCodec(elsewhere, ADA).encode([_payload("new")])  # not the old key
    assert after[0].metadata["encryption-key-id"] != before[0].metadata["encryption-key-id"]
    assert (await EnvelopeCodec(store).decode(after))[0].data == b'"new"'
    for reader in (store, elsewhere, KeyStore(engine, master)):
        with pytest.raises(KeyShreddedError, match="can never be read again"):
            await EnvelopeCodec(reader).decode(before)
        assert await EnvelopeCodec(reader).decode_readable(before) == before


async def test_tampered_payloads_fail_and_plain_ones_pass_through(engine) -> None:  # type: ignore[no-untyped-def]
    codec = EnvelopeCodec(KeyStore(engine, _master()), ADA)
    (sealed,) = await codec.encode([_payload("ada@x.example")])
    assert b"ada@x.example" not in sealed.data
    tampered = Payload(
        metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    )
    with pytest.raises(InvalidTag):
        await codec.decode([tampered])
    assert await codec.decode_readable([tampered]) == [tampered]
    plain = _payload("recorded before encryption")
    assert await codec.decode([plain, sealed]) == [plain, _payload("ada@x.example")]


def test_the_master_key_comes_from_the_environment_or_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    made = MasterKeys.from_env(tmp_path)
    assert MasterKeys.from_env(tmp_path).current == made.current  # kept, not made again
    mode = stat.S_IMODE(os.stat(tmp_path / "master.key").st_mode)
    assert mode & 0o077 == 0, oct(mode)
    assert made.current.hex() not in repr(made) and made.current_id in repr(made)

    monkeypatch.setenv("SENDGRID_API_KEY", "SG.real")
    with pytest.raises(MasterKeyError, match="is not set"):
        MasterKeys.from_env(tmp_path / "elsewhere")
    for bad in ("short", "not base64 at all!", generate()[:-4]):
        monkeypatch.setenv(MASTER_KEY_ENV, bad)
        with pytest.raises(MasterKeyError, match="32 random bytes"):
            MasterKeys.from_env(tmp_path)
