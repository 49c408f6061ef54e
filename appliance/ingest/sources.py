"""Reading documents from files: JSONL with id/text/metadata, and BEIR `corpus.jsonl`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from appliance.errors import InvalidRequest
from appliance.ingest.pipeline import DocumentInput


def json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidRequest(
                    f"{path}:{number}: invalid JSON ({exc.msg}); each line must be one object, "
                    "and this one is not valid JSON"
                ) from exc
            if not isinstance(record, dict):
                raise InvalidRequest(f"{path}:{number}: expected a JSON object")
            yield number, record


def read_jsonl(path: Path) -> Iterator[DocumentInput]:
    """One document per line: `{"id", "text", "metadata"}`, or BEIR's `{"_id", "title",
    "text", "metadata"}` (embedded as title + " " + text, the title also kept in metadata)."""
    for number, record in json_lines(path):
        doc_id = record.get("id", record.get("_id"))
        if doc_id is None or "text" not in record:
            raise InvalidRequest(f"{path}:{number} needs an id (or _id) and a text")
        metadata = dict(record.get("metadata") or {})
        text = str(record["text"])
        title = record.get("title")
        if title:
            metadata.setdefault("title", title)
            text = f"{title} {text}".strip()
        yield DocumentInput(id=str(doc_id), text=text, metadata=metadata)


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())
