"""Issue 15: a lead's history holds no personal data in the clear, only ciphertext under the
lead's own data key; through the codec it reads plainly; once the key is shredded, never again."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from nurture.domain.leads import workflow_id_for
from nurture.privacy.codec import KEY_ID, EnvelopeCodec
from nurture.privacy.key_store import KeyShreddedError, KeyStore, shred_keys
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import lead_id, running_engine, wait_for_email

EMAIL = "ada.lovelace@analytical.example"
PERSONAL = [EMAIL, "Augusta Ada", "Lovelace-King", "Analytical Engines Ltd", "+44 20 7946 0018"]
"""Long enough that no ciphertext or base64 holds one by chance (a 3-letter name would, in
about one history of ten)."""


def payloads(message: Message) -> list[Payload]:
    """Every payload anywhere in ``message`` (an event, a failure…) but search attributes,
    which the server indexes and so must stay readable (they hold no personal data)."""
    found = []
    for field, value in message.ListFields():
        if field.name == "search_attributes":
            continue
        values = value if field.is_repeated else [value]
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = list(value.values())
            if values and not isinstance(values[0], Message):
                continue
        for item in values:
            if isinstance(item, Payload):
                found.append(item)
            elif isinstance(item, Message):
                found.extend(payloads(item))
    return found


async def _lived_lead(client: Client, standin: SendGridStandIn, tmp_path: Path) -> tuple[str, str]:
    """A lead with a full profile, emailed once and handed to a rep: its id and the rep's
    address."""
    lead = lead_id("private")
    async with running_engine(client, standin, tmp_path) as engine:
        await engine.profile(
            lead_id=lead,
            email=EMAIL,
            first_name="Augusta Ada",
            last_name="Lovelace-King",
            company="Analytical Engines Ltd",
            phone="+44 20 7946 0018",
            country="GB",
            company_size=900,
        )
        await wait_for_email(standin, lead, "touch")
        await engine.request_call(lead)
        (alert,) = await wait_for_email(standin, lead, "handoff")
    return lead, alert.to[0]


async def test_the_raw_history_holds_no_personal_data_and_reads_through_the_codec(
    dev_env: WorkflowEnvironment,
    standin: SendGridStandIn,
    tmp_path: Path,
    key_store: KeyStore,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # structlog loggers cached by an earlier test in this process write through the standard
    # library, whose root level that test put back to WARNING: capture INFO either way.
    caplog.set_level(logging.INFO)
    lead, rep_email = await _lived_lead(dev_env.client, standin, tmp_path)
    logged = "".join(capsys.readouterr()) + caplog.text
    assert lead in logged  # the worker logged this lead's life…
    for value in [*PERSONAL, rep_email]:
        assert value not in logged  # …and nothing that identifies the person
    workflow_id = workflow_id_for(lead)
    plain_client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,  # what anyone without the codec sees
    )
    raw = await plain_client.get_workflow_handle(workflow_id).fetch_history()
    everything = raw.to_json() + repr(raw.events)
    for value in [*PERSONAL, rep_email]:
        assert value not in everything
        assert all(value.encode() not in p.data for p in history_payloads(raw))

    # Every payload is encrypted, and with one key: this lead's (so shredding it reaches all);
    # only None is left as it is (no data at all).
    payloads = history_payloads(raw)
    encrypted = [p for p in payloads if p.metadata["encoding"] != b"binary/null"]
    assert all(not p.data for p in payloads if p not in encrypted)
    assert encrypted and all(p.metadata["encoding"] == b"binary/encrypted" for p in encrypted)
    assert len({p.metadata[KEY_ID] for p in encrypted}) == 1

    # Through the codec the same history reads plainly: the lead's address, the rep's.
    codec = EnvelopeCodec(key_store)
    decoded = await codec.decode(encrypted)
    plain = b"".join(p.data for p in decoded)
    assert EMAIL.encode() in plain and rep_email.encode() in plain


async def test_a_shredded_key_leaves_the_history_unreadable_everywhere(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path, key_store: KeyStore
) -> None:
    lead, _ = await _lived_lead(dev_env.client, standin, tmp_path)
    await dev_env.client.get_workflow_handle(workflow_id_for(lead)).terminate("erased")
    encrypted = history_payloads(await _raw_history(dev_env, lead))
    elsewhere = KeyStore(key_store.engine, key_store.wrapper)  # another process's cache
    for store in (key_store, elsewhere):
        assert EMAIL.encode() in b"".join(
            p.data for p in await EnvelopeCodec(store).decode(encrypted)
        )

    assert shred_keys(key_store.engine, workflow_id_for(lead)) == 1
    assert shred_keys(key_store.engine, workflow_id_for(lead)) == 0  # idempotent
    await asyncio.sleep(1.1)  # every process looks for shredded keys once a second
    for store in (key_store, elsewhere, KeyStore(key_store.engine, key_store.wrapper)):
        with pytest.raises(KeyShreddedError):
            await EnvelopeCodec(store).decode(encrypted)


async def _raw_history(dev_env: WorkflowEnvironment, lead: str) -> WorkflowHistory:
    plain = await Client.connect(
        dev_env.client.service_client.config.target_host, data_converter=pydantic_data_converter
    )
    return await plain.get_workflow_handle(workflow_id_for(lead)).fetch_history()


def history_payloads(history: WorkflowHistory) -> list[Payload]:
    """The payloads of a history but its patch markers (the SDK writes their data itself: a
    patch id), so those the engine's converter made."""
    return [
        p
        for event in history.events
        if not event.HasField("marker_recorded_event_attributes")
        for p in payloads(event)
    ]
