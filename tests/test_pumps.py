"""The queue-and-pump mechanics of the lead workflow (``workflows/pumps.py``), on a plain
asyncio loop: no Temporal needed."""

from __future__ import annotations

import asyncio

from workflows.pumps import Pump


class Recorder:
    """Work that records what it saw and waits until the test lets it finish."""

    def __init__(self, batch: int = 1) -> None:
        self.batch = batch
        self.seen: list[list[str]] = []
        self.running = 0
        self.most_at_once = 0
        self.release = asyncio.Event()
        self.release.set()

    async def work(self, queued: list[str]) -> int:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.seen.append(list(queued[: self.batch]))
        await self.release.wait()
        self.running -= 1
        return min(self.batch, len(queued))


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_items_are_worked_off_in_order_by_one_task_at_a_time() -> None:
    work = Recorder()
    pump = Pump(["a", "b"], work.work)
    pump.start()
    pump.put("c")
    pump.start()
    await settle()
    assert work.seen == [["a"], ["b"], ["c"]]
    assert work.most_at_once == 1
    assert pump.items == []


async def test_an_item_stays_queued_until_its_work_is_done() -> None:
    """So a continue-as-new meanwhile carries it to the next run."""
    work = Recorder(batch=2)
    work.release.clear()
    pump = Pump(["a", "b", "c"], work.work)
    pump.start()
    await settle()
    assert work.seen == [["a", "b"]]
    assert pump.items == ["a", "b", "c"]
    pump.put("d")  # joins the queue; the running task takes it next
    work.release.set()
    await settle()
    assert work.seen == [["a", "b"], ["c", "d"]]
    assert (pump.items, work.most_at_once) == ([], 1)


async def test_nothing_to_do_starts_nothing_and_more_work_starts_it_with_an_empty_queue() -> None:
    """``more``: the lead's row changed; writing it (the work) makes it current again."""
    work = Recorder()
    row = {"changed": False}

    async def write_row(queued: list[str]) -> int:
        row["changed"] = False
        return await work.work(queued)

    pump: Pump[str] = Pump([], write_row, more=lambda: row["changed"])
    pump.start()
    assert not pump.busy
    await settle()
    assert work.seen == []
    row["changed"] = True
    pump.start()
    await settle()
    assert work.seen == [[]]
    assert not row["changed"]


async def test_a_finished_pump_starts_again_when_work_arrives() -> None:
    work = Recorder()
    pump = Pump(["a"], work.work)
    pump.start()
    await settle()
    assert not pump.busy
    pump.put("b")
    assert pump.busy
    await settle()
    assert work.seen == [["a"], ["b"]]


async def test_items_taken_back_in_place_are_not_worked_off() -> None:
    """An undone rep action truncates the queue it added to (the same list object)."""
    work = Recorder()
    pump = Pump(["a"], work.work)
    queue = pump.items
    pump.put("b", "c")
    del queue[1:]
    await settle()
    assert work.seen == [["a"]]
