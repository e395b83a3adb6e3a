"""A database that cannot be reached: what SQLAlchemy raises then, and how to say so.

Temporary (the server refused or cut the connection, a pool waited too long for one): the
edge answers 503 and the commands exit 2, so a client sends the same request again later."""

from __future__ import annotations

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)


def unavailable_in_words(exc: Exception) -> str:
    """The driver's first line ("connection failed: … is not currently accepting
    connections"), never the statement or its parameters, which may hold a person's data."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return (lines[0] if lines else type(cause).__name__)[:300]
