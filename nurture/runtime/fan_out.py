"""Many awaits at once, but never more than a bound: the dev server refuses a namespace's
excess concurrent requests, and a busy engine should not meet thousands of queries at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


async def gather_bounded(
    at_once: int, work: Callable[[Item], Awaitable[Result]], items: Iterable[Item]
) -> list[Result]:
    """``work(item)`` for every item, at most ``at_once`` running at a time; the results in
    the items' order (the first error raised, as ``asyncio.gather``)."""
    gate = asyncio.Semaphore(at_once)

    async def one(item: Item) -> Result:
        async with gate:
            return await work(item)

    return await asyncio.gather(*(one(item) for item in items))
