"""Ingesting a JSONL file in batches, each problem named by its file line; optionally
skipping invalid lines and counting them instead of stopping at the first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import InvalidRequest
from appliance.ingest.pipeline import DocumentInput, IngestService
from appliance.ingest.sources import document_lines


@dataclass
class FileOutcome:
    embedded: int = 0
    unchanged: int = 0
    # (line number, why) of each line skipped as invalid.
    skipped: list[tuple[int, str]] = field(default_factory=list)

    @property
    def upserted(self) -> int:
        return self.embedded + self.unchanged


def ingest_file(
    ingest: IngestService,
    collection: str,
    path: Path,
    *,
    batch_size: int = 256,
    skip_invalid: bool = False,
    progress: Callable[[int], object] = lambda lines: None,
) -> FileOutcome:
    """Upsert every document of a JSONL file. Each line is checked before its batch is sent,
    so an error says `FILE:LINE`; with `skip_invalid` such lines are counted and left out
    (the rest is ingested). `progress(n)`: n more lines handled."""
    outcome = FileOutcome()
    first_line: dict[str, int] = {}  # id → the line that gave it
    batch: list[DocumentInput] = []

    def send() -> None:
        result = ingest.upsert(collection, batch)
        outcome.embedded += result.embedded
        outcome.unchanged += result.unchanged
        progress(len(batch))
        batch.clear()

    for line in document_lines(path):
        try:
            if line.document is None:
                raise InvalidRequest(line.error)
            doc = line.document
            ingest.check(doc, f"{path}:{line.number}: document")
            if doc.id in first_line:
                raise InvalidRequest(
                    f"{path}:{line.number}: id {doc.id!r} is already on line {first_line[doc.id]}"
                )
        except InvalidRequest as exc:
            if not skip_invalid:
                raise
            outcome.skipped.append((line.number, exc.detail))
            progress(1)
            continue
        first_line[doc.id] = line.number
        batch.append(doc)
        if len(batch) >= batch_size:
            send()
    if batch:
        send()
    return outcome
