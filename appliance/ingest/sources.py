"""Reading documents from files: JSONL with id/text/metadata, and BEIR `corpus.jsonl`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.errors import InvalidRequest
from appliance.ingest.pipeline import DocumentInput


@dataclass(frozen=True)
class SourceLine:
    """One non-blank line of a JSONL file: its document, or why it is none."""

    number: int
    document: DocumentInput | None
    error: str = ""


def _parse(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"{path}:{number}: invalid JSON ({exc.msg}); each line must be one object, "
            "and this one is not valid JSON"
        ) from exc
    if not isinstance(record, dict):
        raise InvalidRequest(f"{path}:{number}: expected a JSON object")
    return record


def json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, _parse(path, number, line)


def _document(path: Path, number: int, record: dict[str, Any]) -> DocumentInput:
    doc_id = record.get("id", record.get("_id"))
    if doc_id is None or "text" not in record:
        raise InvalidRequest(f"{path}:{number} needs an id (or _id) and a text")
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidRequest(f"{path}:{number}: metadata must be an object")
    metadata = dict(metadata)
    text = str(record["text"])
    title = record.get("title")
    if title:
        metadata.setdefault("title", title)
        text = f"{title} {text}".strip()
    return DocumentInput(id=str(doc_id), text=text, metadata=metadata)


def document_lines(path: Path) -> Iterator[SourceLine]:
    """Each non-blank line as a document, or with the reason it is not one; reading goes on
    past a bad line (`appliance ingest --skip-invalid`)."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield SourceLine(number, _document(path, number, _parse(path, number, line)))
            except InvalidRequest as exc:
                yield SourceLine(number, None, exc.detail)


def read_jsonl(path: Path) -> Iterator[DocumentInput]:
    """One document per line: `{"id", "text", "metadata"}`, or BEIR's `{"_id", "title",
    "text", "metadata"}` (embedded as title + " " + text, the title also kept in metadata)."""
    for number, record in json_lines(path):
        yield _document(path, number, record)


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())
