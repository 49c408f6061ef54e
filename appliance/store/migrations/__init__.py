"""The Alembic environment of the store: `env.py`, and one file per schema revision in `versions/`.

Run through `appliance.store.migration` (and `appliance migrate`), never the `alembic` command:
that module holds the write lock, backs the database up and checks foreign keys around it.
"""
