"""Cache warming: replay searches so their answers (and query embeddings) are cached before
users ask, from a list of queries or from the most frequent recent ones kept in SQLite.

The query log counts searches in memory and adds the counts to SQLite every few seconds from
a background thread, so a search never waits on a disk write for it. Counts not yet flushed
when the process dies are lost; they are statistics, not acknowledged writes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from appliance.errors import ApplianceError
from appliance.search.pipeline import Mode, SearchOptions, SearchService
from appliance.store import query_log as query_log_store
from appliance.store.database import Database

log = logging.getLogger(__name__)


def options_from(params: str) -> SearchOptions:
    values = json.loads(params)
    mode: Mode | None = values.get("mode")
    return SearchOptions(limit=int(values["limit"]), filter=values.get("filter"), mode=mode)


class QueryLog:
    def __init__(self, db: Database, *, flush_seconds: float = 10.0) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self._counts: Counter[tuple[int, str, str]] = Counter()
        self._seen: dict[tuple[int, str, str], datetime] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def note(self, collection_id: int, query: str, params: str) -> None:
        key = (collection_id, query, params)
        with self._lock:
            self._counts[key] += 1
            self._seen[key] = datetime.now(UTC)

    def flush(self) -> int:
        """Add the counts gathered so far to SQLite; returns how many searches they were."""
        with self._lock:
            counts, seen = self._counts, self._seen
            self._counts, self._seen = Counter(), {}
        if not counts:
            return 0
        rows = [(c, q, p, n, seen[(c, q, p)]) for (c, q, p), n in counts.items()]
        try:
            with self.db.write() as session:
                dropped = query_log_store.add_counts(session, rows)
        except Exception:
            # Statistics only: never let them break searching (a full disk). The counts of
            # this interval are dropped.
            log.warning("could not record the query log", exc_info=True)
            return 0
        if dropped:
            log.debug("query log: %d searches of dropped collections not recorded", dropped)
        return sum(counts.values()) - dropped

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="query-log", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def frequent(self, limit: int, within_days: float) -> list[query_log_store.LoggedQuery]:
        since = datetime.now(UTC) - timedelta(days=within_days)
        with self.db.read() as session:
            return query_log_store.frequent_queries(session, since=since, limit=limit)


@dataclass
class WarmReport:
    queries: int = 0
    warmed: int = 0
    already_cached: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def warm(search: SearchService, searches: Iterable[tuple[str, str, SearchOptions]]) -> WarmReport:
    """Run each (collection, query, options) once so its answer is cached; one bad query
    (a dropped collection, a bad filter) is reported, not fatal."""
    report = WarmReport()
    started = time.perf_counter()
    for collection, query, options in searches:
        report.queries += 1
        try:
            outcome = search.search(collection, query, options=options, log_query=False)
        except ApplianceError as exc:
            report.failed.append(f"{collection}: {query[:80]!r}: {exc.detail}")
            continue
        if outcome.cached:
            report.already_cached += 1
        else:
            report.warmed += 1
    report.seconds = time.perf_counter() - started
    return report
