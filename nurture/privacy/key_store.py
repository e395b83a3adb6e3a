"""Each lead's data key: made on first use, kept wrapped in our database, shredded on erasure.

The codec asks for the key to encrypt a workflow's payloads with (its owner's newest live key,
made on first use) and for the keys named in payloads it must decrypt. Unwrapped keys are kept
in memory, so a busy lead costs no query; every process looks for newly shredded keys at most
once a second (one indexed query) and drops them, so a shredded key stops decrypting everywhere
within about a second. Database work runs in a thread: the codec runs on the worker's event loop.

Two processes making the first key of one lead at once each make one: both work, since a
payload names the key it was encrypted with.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from nurture.privacy.master_keys import KEY_BYTES, KeyWrapper
from nurture.store.clock import utcnow
from nurture.store.data_keys import DataKey

ENGINE_OWNER = "engine"
"""The owner of payloads made outside any workflow (e.g. the Temporal UI encoding a signal's
input through the codec server)."""
CHECK_SHREDDED_EVERY = 1.0
"""Seconds between two looks for keys shredded by another process."""
CACHED_KEYS = 20_000


NEVER = datetime(1970, 1, 1, tzinfo=UTC)


class KeyShreddedError(Exception):
    """The payload's data key was destroyed: what it encrypted can never be read again."""


class UnknownKeyError(Exception):
    """The payload names a data key this database never held (another database's payload?)."""


@dataclass(frozen=True)
class DataKeyMaterial:
    key_id: str
    key: bytes


def shred_keys(engine: Engine, owner: str) -> int:
    """Destroy every data key of ``owner`` (a lead's workflow id): everything they encrypted,
    in every run's history wherever it is kept, is unreadable from now on. Idempotent: returns
    how many keys this call destroyed."""
    with Session(engine) as session:
        result = session.exec(  # type: ignore[call-overload]
            update(DataKey)
            .where(col(DataKey.owner) == owner, col(DataKey.shredded_at).is_(None))
            .values(wrapped=None, shredded_at=utcnow())
        )
        session.commit()
        return int(result.rowcount or 0)


def rewrap_keys(
    engine: Engine, wrapper: KeyWrapper, progress: Callable[[int], None] = lambda _: None
) -> int:
    """Re-wrap every live data key not wrapped by the current master key (after a rotation);
    ``progress`` is told how many were done after each batch. Returns how many."""
    done = 0
    while True:
        with Session(engine) as session:
            rows = session.exec(
                select(DataKey)
                .where(
                    col(DataKey.wrapped).is_not(None),
                    col(DataKey.master_key_id) != wrapper.current_id,
                )
                .limit(500)
            ).all()
            if not rows:
                return done
            for row in rows:
                context = row.key_id.encode()
                key = wrapper.unwrap(row.master_key_id or "", _unb64(row.wrapped), context)
                row.master_key_id, wrapped = wrapper.wrap(key, context)
                row.wrapped = base64.b64encode(wrapped).decode()
                session.add(row)
            session.commit()
        done += len(rows)
        progress(done)


class KeyStore:
    """Data keys for the codec of one process (clients and workers each hold one)."""

    def __init__(self, engine: Engine, wrapper: KeyWrapper) -> None:
        self.engine = engine
        self.wrapper = wrapper
        self._keys: OrderedDict[str, bytes] = OrderedDict()
        self._current: OrderedDict[str, str] = OrderedDict()
        self._making: dict[str, asyncio.Future[DataKeyMaterial]] = {}
        self._last_shredded: datetime | None = None  # None: not looked yet
        self._checked_at = float("-inf")

    async def key_for(self, owner: str) -> DataKeyMaterial:
        """The key to encrypt ``owner``'s payloads with (made on first use)."""
        await self._drop_shredded()
        key_id = self._current.get(owner)
        if key_id is not None and key_id in self._keys:
            self._current.move_to_end(owner)
            return DataKeyMaterial(key_id, self._keys[key_id])
        making = self._making.get(owner)
        if making is None:
            making = asyncio.get_running_loop().create_future()
            self._making[owner] = making
            try:
                material = await asyncio.to_thread(self._current_or_new, owner)
            except BaseException as exc:
                making.set_exception(exc)
                making.exception()  # retrieved: nobody else may be waiting
                raise
            finally:
                del self._making[owner]
            making.set_result(material)
            self._remember(material, owner)
            return material
        return await asyncio.shield(making)

    async def keys(self, key_ids: Iterable[str]) -> dict[str, bytes]:
        """The keys named by payloads to decrypt; raises if one was shredded or is unknown."""
        await self._drop_shredded()
        wanted = set(key_ids)
        missing = wanted - self._keys.keys()
        if missing:
            for material in await asyncio.to_thread(self._load, missing):
                self._remember(material)
        found = {key_id: self._keys[key_id] for key_id in wanted if key_id in self._keys}
        return found

    def forget(self, owner: str) -> None:
        """Drop ``owner``'s keys from this process's memory (after shredding them here)."""
        key_id = self._current.pop(owner, None)
        if key_id is not None:
            self._keys.pop(key_id, None)

    # --- the database ---------------------------------------------------------------------

    def _current_or_new(self, owner: str) -> DataKeyMaterial:
        with Session(self.engine) as session:
            row = session.exec(
                select(DataKey)
                .where(col(DataKey.owner) == owner, col(DataKey.wrapped).is_not(None))
                .order_by(col(DataKey.created_at).desc())
                .limit(1)
            ).first()
            if row is not None:
                return self._unwrapped(row)
            key_id, key = secrets.token_hex(16), secrets.token_bytes(KEY_BYTES)
            master_key_id, wrapped = self.wrapper.wrap(key, key_id.encode())
            session.add(
                DataKey(
                    key_id=key_id,
                    owner=owner,
                    master_key_id=master_key_id,
                    wrapped=base64.b64encode(wrapped).decode(),
                )
            )
            session.commit()
            return DataKeyMaterial(key_id, key)

    def _load(self, key_ids: set[str]) -> list[DataKeyMaterial]:
        with Session(self.engine) as session:
            rows = session.exec(select(DataKey).where(col(DataKey.key_id).in_(key_ids))).all()
        known = {row.key_id: row for row in rows}
        for key_id in key_ids:
            row = known.get(key_id)
            if row is None:
                raise UnknownKeyError(f"data key {key_id} is not in this database")
            if row.wrapped is None:
                raise KeyShreddedError(
                    f"data key {key_id} was shredded at {row.shredded_at:%Y-%m-%d %H:%M:%S} "
                    "UTC (the lead was erased): its payloads can never be read again"
                )
        return [self._unwrapped(row) for row in rows]

    def _unwrapped(self, row: DataKey) -> DataKeyMaterial:
        key = self.wrapper.unwrap(row.master_key_id or "", _unb64(row.wrapped), row.key_id.encode())
        return DataKeyMaterial(row.key_id, key)

    def _remember(self, material: DataKeyMaterial, owner: str | None = None) -> None:
        self._keys[material.key_id] = material.key
        self._keys.move_to_end(material.key_id)
        if owner is not None:
            self._current[owner] = material.key_id
            self._current.move_to_end(owner)
        while len(self._keys) > CACHED_KEYS:
            self._keys.popitem(last=False)
        while len(self._current) > CACHED_KEYS:
            self._current.popitem(last=False)

    async def _drop_shredded(self) -> None:
        """Forget keys another process shredded since the last look (at most once a second)."""
        now = time.monotonic()
        if now - self._checked_at < CHECK_SHREDDED_EVERY:
            return
        self._checked_at = now
        if self._last_shredded is None:  # the first look: nothing cached yet, only where from
            latest = await asyncio.to_thread(self._latest_shredding)
            self._last_shredded = latest or NEVER
            return
        for key_id, owner, at in await asyncio.to_thread(self._shredded_since, self._last_shredded):
            self._keys.pop(key_id, None)
            if self._current.get(owner) == key_id:
                del self._current[owner]
            self._last_shredded = max(self._last_shredded, at)

    def _latest_shredding(self) -> datetime | None:
        with Session(self.engine) as session:
            return session.exec(select(func.max(DataKey.shredded_at))).one()

    def _shredded_since(self, since: datetime) -> list[tuple[str, str, datetime]]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(DataKey.key_id, DataKey.owner, DataKey.shredded_at).where(
                    col(DataKey.shredded_at) >= since
                )
            ).all()
        return [(key_id, owner, at) for key_id, owner, at in rows if at is not None]


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text or "")
