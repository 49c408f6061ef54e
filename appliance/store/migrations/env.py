"""Alembic's environment: runs the revisions on the connection `appliance.store.migration` holds.

That connection is already inside the store's write transaction (SQLite: `BEGIN IMMEDIATE`
with foreign keys off; PostgreSQL: the writers' advisory lock, transactional DDL), so every
revision and the version stamp commit together, or not at all.
"""

from __future__ import annotations

from alembic import context

from appliance.store.migration import include_object, target_metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run schema migrations with `appliance migrate` (appliance.store.migration), which "
        "takes the write lock and backs the database up first; not with the alembic command"
    )
context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    include_object=include_object,
    # SQLite alters most things by copying the table: let revisions say so with batch ops.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
