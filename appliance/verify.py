"""`appliance verify`: compare every index with the store, read-only, and list any difference.

It loads each collection the way start-up does (snapshot, then the rows newer than it; an
index on a server, Milvus, as the server holds it, without catching it up) and checks that the
index holds exactly the store's vector ids for the collection's model, that every document has
a vector, that stored vectors have the right size and belong to their document's collection,
that a snapshot never claims a vector id the store never issued, and that the keyword (FTS)
table, where there is one, has one row per document. Nothing is
repaired and no snapshot is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from appliance.collections.manager import CollectionManager
from appliance.config import Settings
from appliance.errors import InvalidRequest
from appliance.index.base import IndexConfig
from appliance.index.registry import backend_for
from appliance.index.snapshots import load_snapshot
from appliance.models.model_id import ModelId
from appliance.models.registry import ModelRegistry
from appliance.store import collections as collection_store
from appliance.store import documents as document_store
from appliance.store import versions as version_store
from appliance.store.database import Database
from appliance.store.keyword import FTS_TABLE, fts_document_ids
from appliance.store.schema import DocumentRow, VectorRow


@dataclass
class CollectionCheck:
    name: str
    documents: int = 0
    vectors: int = 0
    indexed: int = 0
    snapshot: str = "none"
    problems: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    collections: list[CollectionCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fts: str = "absent"

    @property
    def ok(self) -> bool:
        return not self.problems and all(not c.problems for c in self.collections)

    def lines(self) -> list[str]:
        out = []
        for check in self.collections:
            state = "ok" if not check.problems else "MISMATCH"
            out.append(
                f"{check.name}: {state}: {check.documents} documents, {check.vectors} vectors, "
                f"{check.indexed} indexed; snapshot {check.snapshot}"
            )
            out.extend(f"  - {problem}" for problem in check.problems)
        out.append(f"keyword index: {self.fts}")
        out.extend(f"MISMATCH: {problem}" for problem in self.problems)
        out.append("verify: ok" if self.ok else "verify: FAILED")
        return out


def _dimension_of(db: Database, settings: Settings) -> Callable[[str], int]:
    """A model's vector dimension without loading it: as the store recorded it where the
    vectors were made, else as the model registry records it."""
    registry = ModelRegistry(settings.registry_path) if settings.registry_path else ModelRegistry()

    def dimension_of(model_id: str) -> int:
        with db.read() as session:
            stored = version_store.model_dimension(session, model_id)
        if stored is not None:
            return stored
        record = registry.get(ModelId.parse(model_id).name)
        if record is not None and record.dimension:
            return record.dimension
        raise InvalidRequest(
            f"cannot tell the vector dimension of {model_id}: the store holds none of its "
            "vectors and the model registry has no record of it"
        )

    return dimension_of


def _sample(ids: np.ndarray | Sequence[int], limit: int = 5) -> str:
    values = sorted(int(i) for i in ids)
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "")


def _set_differences(
    expected: np.ndarray, found: np.ndarray, missing_problem: str, extra_problem: str
) -> list[str]:
    """Problems for ids expected but not found and found but not expected; each problem text
    is completed with the count before it and a sample of the ids after it."""
    problems = []
    missing = np.setdiff1d(expected, found)
    extra = np.setdiff1d(found, expected)
    if len(missing):
        problems.append(f"{len(missing)} {missing_problem}: {_sample(missing)}")
    if len(extra):
        problems.append(f"{len(extra)} {extra_problem}: {_sample(extra)}")
    return problems


def _check_store(session: Session, collection_id: int, model_id: str, dim: int) -> list[str]:
    problems = []
    orphans = session.scalars(
        select(DocumentRow.id)
        .outerjoin(
            VectorRow,
            (VectorRow.document_id == DocumentRow.id) & (VectorRow.model_id == model_id),
        )
        .where(DocumentRow.collection_id == collection_id, VectorRow.id.is_(None))
    ).all()
    if orphans:
        problems.append(
            f"{len(orphans)} documents have no vector for {model_id} (half-written): "
            f"document ids {_sample(orphans)}"
        )
    misfiled = session.scalars(
        select(VectorRow.id)
        .join(DocumentRow, DocumentRow.id == VectorRow.document_id)
        .where(
            VectorRow.collection_id == collection_id,
            DocumentRow.collection_id != collection_id,
        )
    ).all()
    if misfiled:
        problems.append(
            f"{len(misfiled)} vectors belong to a document of another collection: "
            f"{_sample(misfiled)}"
        )
    wrong_size = session.scalars(
        select(VectorRow.id).where(
            VectorRow.collection_id == collection_id,
            VectorRow.model_id == model_id,
            func.length(VectorRow.vector) != dim * 4,
        )
    ).all()
    if wrong_size:
        problems.append(
            f"{len(wrong_size)} vectors are not {dim} float32 values: {_sample(wrong_size)}"
        )
    return problems


def _check_snapshot(
    check: CollectionCheck,
    directory: Path,
    config: IndexConfig,
    dim: int,
    model_id: str,
    stored: np.ndarray,
    issued: int,
) -> None:
    loaded = load_snapshot(directory, config, dim, model_id, full_check=True)
    if loaded is None:
        check.snapshot = "missing, stale or corrupt (start-up rebuilds from the store)"
        return
    index, info = loaded
    ids = index.ids()
    beyond = ids[ids > issued]
    if len(beyond):
        check.problems.append(
            f"the snapshot holds {len(beyond)} vector ids the store never issued: {_sample(beyond)}"
        )
    if info.max_id > issued:
        check.problems.append(f"snapshot watermark {info.max_id} is beyond the store ({issued})")
    behind = len(np.setdiff1d(stored, ids))
    gone = len(np.setdiff1d(ids, stored))
    check.snapshot = (
        f"{len(ids)} vectors up to id {info.max_id} (start-up replays +{behind} -{gone})"
    )


def _check_fts(session: Session, report: VerifyReport) -> None:
    fts_ids = fts_document_ids(session)
    if fts_ids is None:
        report.fts = f"absent (no {FTS_TABLE} table): not checked"
        return
    doc_ids = np.fromiter(session.scalars(select(DocumentRow.id)), dtype=np.int64)
    report.problems.extend(
        _set_differences(
            doc_ids,
            fts_ids,
            f"documents have no {FTS_TABLE} row",
            f"{FTS_TABLE} rows have no document",
        )
    )
    report.fts = f"{len(fts_ids)} rows for {len(doc_ids)} documents"


def verify(settings: Settings) -> VerifyReport:
    """Compare every collection's index with the store. Writes nothing."""
    report = VerifyReport()
    if not settings.database_url and not settings.database_path.is_file():
        report.problems.append(f"no store at {settings.database_path}")
        return report
    db = Database(settings.database_location)
    try:
        dimension_of = _dimension_of(db, settings)
        manager = CollectionManager(
            db,
            settings.index_dir,
            dimension_of=dimension_of,
            exact_filter_threshold=settings.exact_filter_threshold,
            index_server=settings.index_server(),
            # Milvus is compared with the store as it is: catching it up would repair it.
            repair_server_indexes=False,
        )
        # As start-up does: each snapshot, caught up with the rows newer than it.
        manager.open_all()
        for name in manager.names():
            live = manager.get(name)
            check = CollectionCheck(name)
            report.collections.append(check)
            with db.read() as session:
                check.documents = document_store.count_documents(session, live.id)
                stored = document_store.vector_ids(session, live.id, live.model_id)
                check.vectors = len(stored)
                check.problems.extend(_check_store(session, live.id, live.model_id, live.dimension))
                issued = document_store.issued_vector_id(session)
                generation = collection_store.collection_generation(session, live.id)
            indexed, check.indexed = live.indexed()
            check.problems.extend(
                _set_differences(
                    stored,
                    indexed,
                    "stored vectors are not in the index",
                    f"indexed ids are not stored vectors of {live.model_id}",
                )
            )
            if check.indexed != len(indexed):
                check.problems.append(
                    f"the index counts {check.indexed} vectors but lists {len(indexed)} ids"
                )
            if live.generation != generation:
                check.problems.append(
                    f"index generation {live.generation} is not the store's {generation}"
                )
            if backend_for(live.config).persistent:
                # No snapshot: the server's collection is the index, compared above as it
                # is (start-up or the next write catches a lagging one up).
                name = getattr(live.index, "name", live.config.label)
                check.snapshot = f"none ({live.config.backend} collection {name} is the index)"
                continue
            _check_snapshot(
                check,
                # Where CollectionManager keeps a collection's snapshot.
                settings.index_dir / f"collection-{live.id}",
                live.config,
                live.dimension,
                live.model_id,
                stored,
                issued,
            )
        with db.read() as session:
            _check_fts(session, report)
    finally:
        db.close()
    return report
