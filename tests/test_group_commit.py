"""Group commit (``nurture/store/group_commit.py``): writers that arrive together share one
transaction, and none returns before the transaction holding its write committed; a refused
item fails only its own writer; a failed transaction fails its writers and the next goes on."""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from nurture.store.group_commit import GroupCommit

WRITERS = 16


class Store:
    """Transactions as lists of items, each ``write_all`` taking ``pause`` seconds."""

    def __init__(self, pause: float = 0.05, refuse: int | None = None) -> None:
        self.committed: list[list[int]] = []
        self.pause = pause
        self.refuse = refuse
        self.fail_next = False
        self._inside = threading.Lock()

    def write_all(self, items: Sequence[int]) -> None:
        assert self._inside.acquire(blocking=False), "two transactions at once"
        try:
            time.sleep(self.pause)
            if self.fail_next:
                self.fail_next = False
                raise ConnectionError("the database went away")
            if self.refuse in items:
                raise ValueError(f"{self.refuse} does not fit its column")
            self.committed.append(list(items))
        finally:
            self._inside.release()

    def holds(self, item: int) -> bool:
        return any(item in group for group in self.committed)


def write_from_threads(commit: GroupCommit[int], store: Store) -> dict[int, str]:
    """Each item written by a thread of its own, all at once: what each writer saw on return."""
    start = threading.Barrier(WRITERS)

    def writer(item: int) -> str:
        start.wait()
        try:
            commit.write(item)
        except Exception as exc:  # what the local activity would raise
            return f"raised {type(exc).__name__}"
        return "committed" if store.holds(item) else "returned before its commit"

    with ThreadPoolExecutor(WRITERS) as pool:
        return dict(zip(range(WRITERS), pool.map(writer, range(WRITERS)), strict=True))


def test_writers_arriving_together_share_transactions_and_return_after_their_commit() -> None:
    store = Store()
    seen = write_from_threads(GroupCommit(store.write_all), store)
    assert set(seen.values()) == {"committed"}
    written = sorted(item for group in store.committed for item in group)
    assert written == list(range(WRITERS))  # each once
    assert len(store.committed) < WRITERS / 2  # most shared a transaction


def test_a_group_is_never_larger_than_its_bound() -> None:
    store = Store()
    write_from_threads(GroupCommit(store.write_all, most=3), store)
    assert max(len(group) for group in store.committed) <= 3
    assert sorted(item for group in store.committed for item in group) == list(range(WRITERS))


def test_one_refused_item_fails_its_own_writer_only() -> None:
    store = Store(pause=0.01, refuse=5)
    commit = GroupCommit(store.write_all, isolate=lambda exc: isinstance(exc, ValueError))
    seen = write_from_threads(commit, store)
    assert seen.pop(5) == "raised ValueError"
    assert set(seen.values()) == {"committed"}


def test_a_failed_transaction_fails_its_writers_and_the_next_one_goes_on() -> None:
    store = Store(pause=0.01)
    commit = GroupCommit(store.write_all, isolate=lambda exc: isinstance(exc, ValueError))
    store.fail_next = True
    seen = write_from_threads(commit, store)
    failed = [item for item, outcome in seen.items() if outcome == "raised ConnectionError"]
    assert failed and all(not store.holds(item) for item in failed)  # retried by their activity
    assert all(seen[item] == "committed" for item in set(seen) - set(failed))
    commit.write(99)  # the writer is not left stuck behind the failure
    assert store.holds(99)


@pytest.mark.parametrize("pause", [0.0, 0.001])
def test_writers_in_waves_all_commit(pause: float) -> None:
    """Threads arriving while a transaction is being written, or just after: none is left
    waiting without a leader."""
    store = Store(pause=pause)
    commit: GroupCommit[int] = GroupCommit(store.write_all, most=4)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(commit.write, range(2_000)))
    assert sorted(item for group in store.committed for item in group) == list(range(2_000))


class Interrupted(BaseException):
    """What a thread may be stopped with inside a transaction (not an ``Exception``)."""


def test_an_interrupted_leader_fails_its_group_and_hands_over() -> None:
    """A leader stopped inside its transaction: the writers of its group raise instead of
    waiting for ever or returning as if written, and later writers still commit."""
    store = Store(pause=0.05)
    interrupt = threading.Event()
    interrupt.set()

    def write_all(items: Sequence[int]) -> None:
        if interrupt.is_set():
            interrupt.clear()
            time.sleep(0.05)  # the others queue up behind this transaction
            raise Interrupted
        store.write_all(items)

    commit: GroupCommit[int] = GroupCommit(write_all)
    start = threading.Barrier(WRITERS)

    def writer(item: int) -> str:
        start.wait()
        try:
            commit.write(item)
        except Interrupted:
            return "interrupted"
        except RuntimeError:
            return "raised RuntimeError"
        return "committed" if store.holds(item) else "returned before its commit"

    seen: list[str] = []
    threads = [
        threading.Thread(target=lambda i=i: seen.append(writer(i)), daemon=True)
        for i in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert len(seen) == WRITERS, f"{WRITERS - len(seen)} writers still waiting for a leader"
    assert seen.count("interrupted") == 1
    assert "returned before its commit" not in seen
    assert set(seen) <= {"interrupted", "raised RuntimeError", "committed"}
    commit.write(99)
    assert store.holds(99)


class Cancelled(BaseException):
    """What Temporal raises in a thread to cancel its synchronous activity (a local activity
    past its timeout): delivered with ``PyThreadState_SetAsyncExc``, as the SDK does, so a
    thread blocked waiting meets it only as it wakes."""


def cancel(thread: threading.Thread) -> None:
    assert thread.ident is not None
    delivered = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(Cancelled)
    )
    assert delivered == 1


def test_a_writer_cancelled_while_it_waits_strands_no_one() -> None:
    """Seen with 10,000 leads: a local activity timed out while its writer waited here; woken
    to lead the next group, the writer raised the cancellation instead, and every later writer
    of the worker waited for ever (every lead's workflow task with it). The lead it was handed
    must go on, and its item leaves the queue or is written."""
    store = Store(pause=0.0)
    first_held = threading.Event()
    release = threading.Event()

    def write_all(items: Sequence[int]) -> None:
        if not first_held.is_set():
            first_held.set()
            release.wait(5)  # the first transaction runs until the next writer is cancelled
        store.write_all(items)

    commit: GroupCommit[int] = GroupCommit(write_all)
    leader = threading.Thread(target=commit.write, args=(0,), daemon=True)
    leader.start()
    assert first_held.wait(5)
    outcome: list[str] = []

    def waiter() -> None:
        try:
            commit.write(1)
        except Cancelled:
            outcome.append("cancelled")
        else:
            outcome.append("committed")

    waiting = threading.Thread(target=waiter, daemon=True)
    waiting.start()
    time.sleep(0.2)  # queued behind the first transaction
    cancel(waiting)  # pending until it wakes
    release.set()
    leader.join(5)
    waiting.join(5)
    assert outcome == ["cancelled"]
    later = threading.Thread(target=commit.write, args=(2,), daemon=True)
    later.start()
    later.join(5)
    assert not later.is_alive(), "a later writer waits for a leader that was cancelled"
    assert store.holds(0) and store.holds(2)
