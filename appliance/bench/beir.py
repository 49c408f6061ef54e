"""Load a BEIR-format dataset directory: queries and qrels in memory, the corpus left on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.errors import InvalidRequest
from appliance.ingest.sources import json_lines

_QRELS_HEADER = ("query-id", "corpus-id", "score")
_QRELS_HEADER_TEXT = "\t".join(_QRELS_HEADER)


@dataclass(frozen=True)
class BeirDataset:
    name: str
    # Path to corpus.jsonl; the corpus can be large, so callers stream it themselves.
    corpus_path: Path
    # Only queries that have at least one qrels row in the chosen split.
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(directory: Path, split: str = "test") -> BeirDataset:
    """Read queries and `qrels/<split>.tsv` from `directory`; only check `corpus.jsonl` exists."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidRequest(f"BEIR dataset directory not found: {directory}")
    corpus_path = directory / "corpus.jsonl"
    queries_path = directory / "queries.jsonl"
    qrels_path = directory / "qrels" / f"{split}.tsv"
    for required in (corpus_path, queries_path, qrels_path):
        if not required.is_file():
            raise InvalidRequest(f"BEIR dataset {directory} is missing {required}")

    qrels = _read_qrels(qrels_path)
    all_queries = _read_queries(queries_path)
    missing = sorted(qid for qid in qrels if qid not in all_queries)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InvalidRequest(
            f"{qrels_path} references {len(missing)} query id(s) absent from "
            f"{queries_path}: {shown}"
        )
    queries = {qid: all_queries[qid] for qid in qrels}
    return BeirDataset(name=directory.name, corpus_path=corpus_path, queries=queries, qrels=qrels)


def _read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for lineno, record in json_lines(path):
        qid, text = record.get("_id"), record.get("text")
        if qid is None or not isinstance(text, str):
            raise InvalidRequest(f"{path}:{lineno}: a query needs '_id' and string 'text'")
        queries[str(qid)] = text
    return queries


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
        if tuple(field.strip() for field in header) != _QRELS_HEADER:
            raise InvalidRequest(
                f"{path}:1: expected header {_QRELS_HEADER_TEXT!r}, got {header!r}"
            )
        for lineno, line in enumerate(fh, start=2):
            stripped = line.rstrip("\r\n")
            if not stripped.strip():
                continue
            fields = stripped.split("\t")
            if len(fields) != 3:
                raise InvalidRequest(
                    f"{path}:{lineno}: expected 3 tab-separated fields, got {len(fields)}"
                )
            qid, doc_id, raw_score = (field.strip() for field in fields)
            try:
                score = int(raw_score)
            except ValueError as exc:
                raise InvalidRequest(
                    f"{path}:{lineno}: score must be an integer, got {raw_score!r}"
                ) from exc
            qrels.setdefault(qid, {})[doc_id] = score
    return qrels
