"""Which columns hold personal data, declared on the tables themselves.

A column that holds personal data (an address, a name, a company, a title, a phone number, a
postal address, an IP address, free text that may quote any of them, a provider's payload, an
email's subject or body) is declared with ``PERSONAL`` on its SQLModel ``Field``::

    email: str | None = Field(default=None, max_length=320, sa_column_kwargs=PERSONAL)

Erasure (``nurture.privacy.pseudonymise``) finds these columns from the tables' metadata, so a
new table or column is covered the day it is marked, with no list to keep up to date elsewhere.
``tests/test_erasure_read_model.py`` fails when a text column of a table keyed by lead is left
unmarked and still shows the person after erasure.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, String, Table

PERSONAL_INFO_KEY = "personal"
PERSONAL: dict[str, Any] = {"info": {PERSONAL_INFO_KEY: True}}
"""``sa_column_kwargs`` of a column holding personal data."""


def is_personal(column: Column[Any]) -> bool:
    return bool(column.info.get(PERSONAL_INFO_KEY))


def is_text(column: Column[Any]) -> bool:
    """Whether the column holds text (SQLModel's ``AutoString`` wraps a ``String``)."""
    kind = column.type
    return isinstance(kind, String) or isinstance(getattr(kind, "impl", None), String)


def personal_columns(table: Table) -> list[Column[Any]]:
    """The table's columns declared personal, in table order."""
    return [column for column in table.columns if is_personal(column)]
