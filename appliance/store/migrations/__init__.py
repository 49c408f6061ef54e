"""The Alembic environment of the store: `env.py`, and one file per schema revision in `versions/`.

Run through `appliance.store.migration` (and `appliance migrate`), never the `alembic` command:
that module holds the write lock, backs the database up and checks foreign keys around it.

A schema change is a new file in `versions/` (`script.py.mako` is its shape): `revision` a new
id, `down_revision` the current head, the change written with `op` (batch ops for anything SQLite
cannot ALTER), and never an edit of an older revision. tests/test_migrations.py fails until the
models and the head revision agree, and shows the difference.
"""
