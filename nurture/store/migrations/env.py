"""Alembic's environment: runs the revisions on the connection that
:func:`nurture.store.migrations.migrate` passes in ``config.attributes["connection"]`` (inside its
transaction and lock), or else on the configured database (``NURTURE_DATABASE_URL``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import nurture.store.read_model  # noqa: F401  (target_metadata: every table, for drafting revisions)
from nurture.store.db import database_url_from_env, make_engine


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=SQLModel.metadata)
    with context.begin_transaction():  # a no-op inside migrate()'s own transaction
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")
given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    with make_engine(database_url_from_env(), migrate=False).connect() as conn:
        run(conn)
        conn.commit()
