"""Fault drill: SendGrid (the stand-in, driven by the real client) refuses about a third of
the sends with 5xx, rate-limits some with 429 and X-RateLimit-Reset, and takes a few without
its answer reaching us (the 202 held past the activity timeout), while a population of leads
gets its touches and half of it hands off to a rep. Every touch and every handoff alert still
goes out exactly once (the stand-in counts them by idempotency key) and every lead ends where
it should.

The faults are seeded per message and attempt (not per arrival order), so a failing run is
reproduced by running it again with the same ``SEED``. Single-lead error classes under time
skipping are in ``test_sendgrid_errors.py``; this is the population drill on the dev server.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from pathlib import Path

import pytest
from python_http_client.exceptions import ServiceUnavailableError, TooManyRequestsError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Mail
from sqlmodel import Session, select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from nurture.client.sales import read_state
from nurture.contract.messages import LeadState
from nurture.domain.leads import workflow_id_for
from nurture.standins.sendgrid_standin import SendFault, SendGridStandIn
from nurture.store.db import OutboxMessage, make_engine
from tests.conftest import Engine, lead_id, running_engine, wait_for_state
from tests.drills import drill_rules

SEED = 20261124
LEADS = 30  # even ones ask for a call after their first touch: handed off to a rep
TIME_SCALE = 3600.0  # the drill cadence's hours are seconds
ACTIVITY_TIMEOUT = 2.0  # seconds (engine.yaml of the drill)
LOST_RESPONSE_HOLD = 3.0  # a 202 held this long never reaches the activity: it timed out
# Chances of each fault on each of a message's first FAULTY_ATTEMPTS attempts; later ones go
# through, which bounds the drill's runtime (retries back off 1, 2, 4 s). With SEED: 110 sends
# for 60 messages, a third of them refused with 5xx, 14 rate-limited, 5 answers lost.
SERVER_ERROR, RATE_LIMITED, LOST_RESPONSE = 0.38, 0.10, 0.05
FAULTY_ATTEMPTS = 3
REP = {"id": "dana", "email": "dana@test.example"}  # the healthcare pool: one rep, always


class SeededFaults:
    """The stand-in's fault rule: each attempt of each message meets a fault drawn from
    ``Random(seed, message, attempt)``. Lead ids are random per run, so a message is named
    by its lead's place in the population: the same seed gives the same faults to the same
    messages whatever order concurrent sends arrive in. Records every decision."""

    def __init__(self, seed: int, names: dict[str, str]) -> None:
        self.seed = seed
        self.names = names
        self.decisions: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, custom_args: dict[str, str]) -> SendFault | None:
        key, lead = custom_args.get("nurture_key", ""), custom_args.get("lead_id", "")
        with self._lock:
            attempts = self.decisions.setdefault(key, [])
            fault, label = self._draw(key.replace(lead, self.names.get(lead, lead)), len(attempts))
            attempts.append(label)
        return fault

    def _draw(self, message: str, earlier: int) -> tuple[SendFault | None, str]:
        if earlier >= FAULTY_ATTEMPTS:
            return None, "accepted"
        rng = random.Random(f"{self.seed}:{message}:{earlier + 1}")
        draw = rng.random()
        if draw < SERVER_ERROR:
            status = rng.choice([500, 502, 503])
            return SendFault(status=status), str(status)
        if draw < SERVER_ERROR + RATE_LIMITED:
            return SendFault(status=429), "429"
        if draw < SERVER_ERROR + RATE_LIMITED + LOST_RESPONSE:
            return SendFault(delay=LOST_RESPONSE_HOLD), "lost-response"
        return None, "accepted"

    def tally(self) -> Counter[str]:
        with self._lock:
            return Counter(label for labels in self.decisions.values() for label in labels)


def outbox(engine: Engine) -> list[OutboxMessage]:
    with Session(make_engine(engine.database_url)) as session:
        return list(session.exec(select(OutboxMessage)).all())


def sends_by_key(standin: SendGridStandIn) -> Counter[str]:
    return Counter(m.custom_args.get("nurture_key", "") for m in standin.messages)


async def no_pending_activities(handle: WorkflowHandle) -> bool:
    description = await handle.describe()
    return not description.raw_description.pending_activities


def mail(key: str, lead: str) -> Mail:
    message = Mail("from@corp.example", "to@corp.example", "Hi", "Hello")
    message.add_custom_arg(CustomArg("nurture_key", key))
    message.add_custom_arg(CustomArg("lead_id", lead))
    return message


def test_the_fault_rule_decides_after_queued_faults_from_the_message_and_its_attempt(
    standin: SendGridStandIn,
) -> None:
    seen: list[dict[str, str]] = []

    def refuse_first_attempts(args: dict[str, str]) -> SendFault | None:
        seen.append(args)
        return SendFault(status=503) if len(seen) == 1 else None

    client = SendGridAPIClient(api_key="SG.test", host=standin.url)
    standin.fail_next(429)  # queued faults come first
    standin.set_fault_rule(refuse_first_attempts)
    with pytest.raises(TooManyRequestsError):
        client.send(mail("k1", "lead-a"))
    with pytest.raises(ServiceUnavailableError):
        client.send(mail("k1", "lead-a"))
    assert client.send(mail("k1", "lead-a")).status_code == 202
    assert seen[0] == {"nurture_key": "k1", "lead_id": "lead-a"} and len(seen) == 2
    standin.set_fault_rule(None)
    assert client.send(mail("k2", "lead-a")).status_code == 202 and len(seen) == 2
    assert [m.custom_args["nurture_key"] for m in standin.messages] == ["k1", "k2"]


def test_seeded_faults_are_the_same_for_the_same_message_in_any_run() -> None:
    def draws(lead: str) -> list[str]:
        faults = SeededFaults(SEED, {lead: "lead07"})
        args = {"nurture_key": f"touch:{lead}:drill:e1:c1:first", "lead_id": lead}
        for _ in range(FAULTY_ATTEMPTS + 1):
            faults(args)
        return faults.decisions[args["nurture_key"]]

    first, again = draws(lead_id("sg07")), draws(lead_id("sg07"))
    assert first == again and first[-1] == "accepted"  # attempts past FAULTY_ATTEMPTS pass


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_sendgrid_failing_a_third_of_sends_still_delivers_every_touch_and_alert_once(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    config = drill_rules(tmp_path, [("first", "1h"), ("second", "4h")], f"{ACTIVITY_TIMEOUT:g}s")
    leads = [lead_id(f"sg{i:02d}") for i in range(LEADS)]
    callers = set(leads[::2])
    faults = SeededFaults(SEED, {lead: f"lead{i:02d}" for i, lead in enumerate(leads)})
    standin.set_fault_rule(faults)
    client = dev_env.client
    async with running_engine(
        client, standin, tmp_path, config_dir=config, time_scale=TIME_SCALE
    ) as engine:
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()

            async def life(i: int, lead: str) -> None:
                if lead in callers:  # the healthcare pool: always the same rep, same keys
                    fields = {"industry": "healthcare", "region": "AMER"}
                else:
                    fields = {"region": "EMEA"}
                handle = await engine.profile(
                    lead_id=lead, email=f"{lead}@corp.example", first_name=f"L{i}", **fields
                )
                if lead in callers:
                    await wait_for_state(handle, lambda s: s.touches_sent >= 1, timeout=40)
                    await engine.event(lead, "requested_call")

            await asyncio.gather(*(life(i, lead) for i, lead in enumerate(leads)))

            def settled(state: LeadState) -> bool:
                if state.lead_id in callers:
                    return state.stage == "assigned"
                return state.cadence is not None and state.cadence.parked

            expected_messages = 2 * LEADS  # two touches, or a touch and a handoff alert
            handles = [client.get_workflow_handle(workflow_id_for(lead)) for lead in leads]
            deadline = loop.time() + 60
            while True:
                states = list(await asyncio.gather(*(read_state(client, i) for i in leads)))
                idle = await asyncio.gather(*(no_pending_activities(h) for h in handles))
                if (
                    all(settled(s) for s in states)
                    and all(idle)
                    and len(standin.messages) >= expected_messages
                ):
                    break
                if loop.time() > deadline:
                    stuck = [s.lead_id for s, i in zip(states, idle, strict=True) if not i]
                    raise AssertionError(
                        f"not settled within 60 s: {len(standin.messages)} of "
                        f"{expected_messages} messages, stages "
                        f"{Counter(s.stage for s in states)}, pending activities on {stuck}"
                    )
                await asyncio.sleep(0.25)
            settled_after = loop.time() - started
            await asyncio.sleep(LOST_RESPONSE_HOLD)  # a late duplicate would have landed by now
            rows = outbox(engine)
        finally:
            await asyncio.gather(
                *(client.get_workflow_handle(workflow_id_for(i)).terminate("over") for i in leads),
                return_exceptions=True,  # a lead the drill never got to start
            )

    # --- nothing went out twice, and everything that had to go out did --------------------
    sent = sends_by_key(standin)
    twice = {key: n for key, n in sent.items() if n > 1}
    assert not twice, f"sent more than once (key: times): {twice}"
    assert len(standin.messages) == expected_messages
    by_lead: dict[str, Counter[str]] = {lead: Counter() for lead in leads}
    for message in standin.messages:
        by_lead[message.custom_args["lead_id"]][message.custom_args["category"]] += 1
    for state in states:
        lead = state.lead_id
        assert state.last_error is None, f"{lead}: {state.last_error}"
        if lead in callers:
            assert by_lead[lead] == {"touch": 1, "handoff": 1}, lead
            assert (state.stage, state.owner, state.handoffs) == ("assigned", REP["id"], 1)
            assert state.touches_sent == 1, lead
            (alert,) = standin.messages_with(lead_id=lead, category="handoff")
            assert alert.to == [REP["email"]]
        else:
            assert by_lead[lead] == {"touch": 2}, lead
            assert (state.stage, state.handoffs, state.touches_sent) == ("nurturing", 0, 2)

    # --- the outbox agrees, and the faults really hit: every attempt asked SendGrid once ---
    assert {r.key for r in rows} == set(sent)
    assert all(r.status == "sent" for r in rows), [(r.key, r.status) for r in rows]
    for row in rows:
        labels = faults.decisions[row.key]
        assert row.attempts == len(labels), (row.key, row.attempts, labels)
        # Exactly one attempt was taken by SendGrid: the last, or a lost 202 found afterwards.
        assert len([x for x in labels if x in ("accepted", "lost-response")]) == 1, labels
    tally = faults.tally()
    attempts = sum(tally.values())
    server_errors = sum(n for label, n in tally.items() if label.startswith("5"))
    print(f"\ndrill: {attempts} sends for {expected_messages} messages: {dict(tally)}")
    print(f"drill: settled in {settled_after:.1f} s")
    assert server_errors / attempts > 0.25 and tally["429"] >= 5 and tally["lost-response"] >= 3
