"""Fault drills: while a population of leads runs its cadence and some hand off, (1) the only
worker is killed with SIGKILL ten times at seeded random moments, (2) the Temporal dev server
is stopped and started again from its SQLite file. Afterwards every lead ends where it
should, every cadence timer has fired, and no email went out twice (the SendGrid stand-in
counts them by idempotency key)."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from nurture.cli.embedded import EmbeddedOptions, start_dev_server, stop_process, wait_for_server
from nurture.cli.simulate import read_states
from nurture.client.starting import send_event, send_profile
from nurture.contract.messages import LeadState
from nurture.domain.leads import LeadEvent, LeadProfile
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import TEST_TEMPLATES, lead_id, wait_until
from tests.drills import drill_rules
from tests.test_crash_recovery import start_worker

SEED = 20261124
KILLS = 10
NURTURED = 12  # leads that follow the whole cadence
CALLERS = 6  # leads that ask for a call part-way: handed off to a rep
TOUCHES = 5  # the drill cadence: five touches an hour apart (a second each at x3600)


def ready_count(log: Path) -> int:
    return log.read_text().count('"worker ready"') if log.exists() else 0


def more_ready(log: Path, before: int) -> Callable[[], bool]:
    return lambda: ready_count(log) > before


def touch_keys(standin: SendGridStandIn, lead: str) -> Counter[str]:
    return Counter(
        m.custom_args["nurture_key"]
        for m in standin.messages_with(lead_id=lead)
        if m.custom_args.get("category") == "touch"
    )


@dataclass
class Population:
    nurtured: list[str] = field(default_factory=lambda: [lead_id("n") for _ in range(NURTURED)])
    callers: list[str] = field(default_factory=lambda: [lead_id("c") for _ in range(CALLERS)])

    @property
    def everyone(self) -> list[str]:
        return self.nurtured + self.callers

    async def start(self, client: Client, task_queue: str) -> None:
        for lead in self.everyone:
            profile = LeadProfile(lead_id=lead, email=f"{lead}@corp.example", region="EMEA")
            await send_profile(client, profile, task_queue=task_queue)

    async def call(self, client: Client, task_queue: str) -> None:
        for lead in self.callers:
            event = LeadEvent(lead_id=lead, type="requested_call", event_id=f"{lead}-c")
            await send_event(client, event, task_queue=task_queue)

    async def states(self, client: Client) -> list[LeadState]:
        """As ``nurture simulate`` reads them: a lead whose workflow task a killed worker held
        refuses queries until the task times out and another worker runs it (10 s), so each
        is asked again for a while. Here every lead must answer in the end."""
        reading = await read_states(client, self.everyone)
        assert not reading.unread, f"the engine never answered for {reading.unread}"
        return reading.states

    async def settle(self, client: Client, timeout: float = 120) -> list[LeadState]:
        """The states once every nurtured lead finished its cadence and every caller is with a
        rep (or the timeout passed: the assertions then say what is missing)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            now = await self.states(client)
            done = all(
                s.cadence is not None and s.cadence.parked
                for s in now
                if s.lead_id in self.nurtured
            ) and all(s.stage == "assigned" for s in now if s.lead_id in self.callers)
            if done or asyncio.get_running_loop().time() > deadline:
                return now
            await asyncio.sleep(0.5)

    def check(self, final: list[LeadState], standin: SendGridStandIn) -> None:
        by_id = {s.lead_id: s for s in final}
        for lead in self.nurtured:  # every timer of the cadence fired: all touches, once each
            keys = touch_keys(standin, lead)
            assert by_id[lead].touches_sent == TOUCHES, (lead, by_id[lead].timeline[-5:])
            assert len(keys) == TOUCHES and set(keys.values()) == {1}, (lead, keys)
        for lead in self.callers:  # handed off once, the rep alerted once
            state = by_id[lead]
            assert state.stage == "assigned" and state.handoffs == 1 and state.owner, lead
            alerts = [
                m.custom_args["category"]
                for m in standin.messages_with(lead_id=lead)
                if m.custom_args["category"] != "touch"
            ]
            assert alerts == ["handoff"], lead
            keys = touch_keys(standin, lead)
            assert set(keys.values()) <= {1} and len(keys) == state.touches_sent, (lead, keys)
        every_key = Counter(m.custom_args["nurture_key"] for m in standin.messages)
        assert {k: n for k, n in every_key.items() if n > 1} == {}


@pytest.mark.e2e
async def test_ten_worker_kills_lose_no_lead_fire_every_timer_and_send_nothing_twice(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    config = drill_rules(tmp_path, [(f"d{n}", "1h") for n in range(1, TOUCHES + 1)], "2s")
    db_url = f"sqlite:///{tmp_path / 'nurture.db'}"
    task_queue = f"drill-{lead_id('q')}"
    log = tmp_path / "worker.log"
    client = dev_env.client
    population = Population()
    await population.start(client, task_queue)
    worker: subprocess.Popen[bytes] | None = None
    try:
        for kill in range(KILLS):
            started = ready_count(log)
            worker = start_worker(dev_env, config, task_queue, db_url, standin, log)
            await wait_until(more_ready(log, started), what="the worker starting", timeout=60)
            if kill == KILLS // 2:  # the callers ask for a call while the workers come and go
                await population.call(client, task_queue)
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            worker.send_signal(signal.SIGKILL)
            await asyncio.to_thread(worker.wait, 10)
            await asyncio.sleep(rng.uniform(0.0, 0.8))  # timers come due while nobody runs
        worker = start_worker(dev_env, config, task_queue, db_url, standin, log)
        final = await population.settle(client)
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            await asyncio.to_thread(worker.wait, 15)
    assert ready_count(log) == KILLS + 1
    population.check(final, standin)


@pytest.mark.e2e
async def test_a_dev_server_restart_from_its_file_loses_nothing(
    standin: SendGridStandIn, tmp_path: Path
) -> None:
    config = drill_rules(tmp_path, [(f"d{n}", "1h") for n in range(1, TOUCHES + 1)], "2s")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server_options = EmbeddedOptions(
        data_dir=tmp_path / "temporal",
        config_dir=config,
        templates_dir=TEST_TEMPLATES,
        port=port,
        headless=True,
    )
    address = f"127.0.0.1:{port}"
    task_queue = f"drill-{lead_id('q')}"
    log = tmp_path / "worker.log"
    population = Population()
    server = start_dev_server(server_options)
    worker: subprocess.Popen[bytes] | None = None
    try:
        client = await wait_for_server(address, server)
        worker = start_worker(
            address, config, task_queue, f"sqlite:///{tmp_path / 'n.db'}", standin, log
        )
        await wait_until(more_ready(log, 0), what="the worker starting", timeout=60)
        await population.start(client, task_queue)
        await wait_until(
            lambda: len(standin.messages) >= NURTURED, what="first touches going out", timeout=60
        )
        await population.call(client, task_queue)
        await asyncio.to_thread(stop_process, server)  # mid-population: touches still to come
        await asyncio.sleep(3)  # its ports free again; cadence timers come due meanwhile
        server = start_dev_server(server_options)  # the same SQLite file
        client = await wait_for_server(address, server)
        final = await population.settle(client)
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            await asyncio.to_thread(worker.wait, 15)
        await asyncio.to_thread(stop_process, server)
    population.check(final, standin)
