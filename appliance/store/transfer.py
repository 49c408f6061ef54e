"""Copy a whole store into an empty one, SQLite to PostgreSQL or back: every row of every
table with its id, in one read snapshot of the source and one write transaction on the target.

Vectors are copied as stored, never re-embedded. Ids are kept, and so is the highest vector id
the source ever issued (the target's sequence continues past it), so the indexes and snapshots
derived from the source are exact for the target too: a data dir moves with its store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import Integer, Table, func, insert, select, text
from sqlalchemy.orm import Session

from appliance.errors import ApplianceError
from appliance.store import documents as document_store
from appliance.store.database import Database
from appliance.store.dialect import StoreLocation, describe, session_dialect
from appliance.store.migration import target_metadata

_BATCH = 2_000


class TransferError(ApplianceError):
    code = "store_transfer_error"


@dataclass
class TransferReport:
    source: StoreLocation
    target: StoreLocation
    # Rows copied per table, in the order they were copied.
    rows: dict[str, int] = field(default_factory=dict)
    issued_vector_id: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"copied {describe(self.source)} -> {describe(self.target)}"]
        out += [f"  {table}: {count} rows" for table, count in self.rows.items()]
        out.append(f"  vector ids continue after {self.issued_vector_id}")
        out.append(f"  {self.seconds:.1f} s")
        return out


def _tables() -> list[Table]:
    # Parents before children (collections before documents before vectors).
    return list(target_metadata().sorted_tables)


def _count(session: Session, table: Table) -> int:
    return int(session.scalar(select(func.count()).select_from(table)) or 0)


def copy_store(source: StoreLocation, target: StoreLocation) -> TransferReport:
    """Copy every row of `source` into `target`, which must hold no rows (it is created at the
    schema head if it does not exist). Both are brought to this release's schema first."""
    if describe(source) == describe(target):
        raise TransferError("the source and the target are the same store")
    started = time.perf_counter()
    report = TransferReport(source, target)
    source_db = Database(source)
    try:
        target_db = Database(target)
        try:
            with source_db.read() as reader, target_db.write() as writer:
                busy = [table.name for table in _tables() if _count(writer, table)]
                if busy:
                    raise TransferError(
                        f"the target {describe(target)} is not empty ({', '.join(busy)} hold "
                        "rows); copy into a new, empty database"
                    )
                for table in _tables():
                    report.rows[table.name] = _copy_table(reader, writer, table)
                report.issued_vector_id = document_store.issued_vector_id(reader)
                _continue_ids(writer, report.issued_vector_id)
        finally:
            target_db.close()
    finally:
        source_db.close()
    report.seconds = time.perf_counter() - started
    return report


def _copy_table(reader: Session, writer: Session, table: Table) -> int:
    key = list(table.primary_key.columns)
    statement = select(table).order_by(*key)
    copied = 0
    # Streamed (a server-side cursor on PostgreSQL): a store larger than memory copies too.
    rows = reader.execute(statement, execution_options={"yield_per": _BATCH}).mappings()
    for batch in rows.partitions():
        writer.execute(insert(table), [dict(row) for row in batch])
        copied += len(batch)
    return copied


def _continue_ids(writer: Session, issued_vector_id: int) -> None:
    """Make the target issue ids after the copied ones: past the source's highest issued
    vector id (never reused), past the highest id of every other table."""
    if session_dialect(writer) == "postgresql":
        for table in _tables():
            column = table.c.get("id")
            if column is None or not isinstance(column.type, Integer):
                continue  # jobs are keyed by a random string
            highest = int(writer.scalar(select(func.max(column))) or 0)
            if table.name == "vectors":
                highest = max(highest, issued_vector_id)
            if highest:
                writer.execute(
                    text("SELECT setval(pg_get_serial_sequence(:table, 'id'), :value)"),
                    {"table": table.name, "value": highest},
                )
        return
    # SQLite: explicit ids already moved sqlite_sequence to the highest copied vector id.
    if issued_vector_id:
        updated = writer.execute(
            text("UPDATE sqlite_sequence SET seq = max(seq, :value) WHERE name = 'vectors'"),
            {"value": issued_vector_id},
        )
        if not getattr(updated, "rowcount", 0):
            writer.execute(
                text("INSERT INTO sqlite_sequence (name, seq) VALUES ('vectors', :value)"),
                {"value": issued_vector_id},
            )
