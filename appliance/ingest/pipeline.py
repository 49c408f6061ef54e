"""Document ingestion: validate a batch, embed only what changed, commit, update the index."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from appliance.collections.manager import CollectionManager
from appliance.embedding.chunking import ChunkingConfig, chunk_spans
from appliance.embedding.encoder import Encoder
from appliance.embedding.pool import EncoderPool
from appliance.errors import InvalidRequest
from appliance.store import documents as document_store
from appliance.store.documents import ConcurrentWrite, EmbeddedText, NewDocument, content_hash

MAX_ID_CHARS = 512
_WRITE_ATTEMPTS = 3


@dataclass(frozen=True)
class DocumentInput:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UpsertOutcome:
    upserted: int
    embedded: int
    unchanged: int


class IngestService:
    def __init__(
        self,
        collections: CollectionManager,
        encoders: EncoderPool,
        *,
        max_batch_documents: int,
        max_text_chars: int,
    ) -> None:
        self.collections = collections
        self.encoders = encoders
        self.max_batch_documents = max_batch_documents
        self.max_text_chars = max_text_chars

    def validate(self, documents: Sequence[DocumentInput]) -> list[NewDocument]:
        """Check the whole batch before anything is written; say exactly what to fix."""
        self.check_batch_size(documents)
        seen: set[str] = set()
        checked = []
        for position, doc in enumerate(documents):
            where = f"documents[{position}]"
            if doc.id in seen:
                raise InvalidRequest(f"{where}.id {doc.id!r} appears twice in this batch")
            seen.add(doc.id)
            checked.append(self.check(doc, where))
        return checked

    def check_batch_size(self, documents: Sequence[DocumentInput]) -> None:
        """The batch bound, the same for an upsert answered at once and one run as a job."""
        if not documents:
            raise InvalidRequest("documents is empty; send at least one {id, text, metadata}")
        if len(documents) > self.max_batch_documents:
            raise InvalidRequest(
                f"batch has {len(documents)} documents; send at most "
                f"{self.max_batch_documents} per request"
            )

    def check(self, doc: DocumentInput, where: str) -> NewDocument:
        """One document's checks; `where` names it in the message (`documents[3]`)."""
        if not doc.id or len(doc.id) > MAX_ID_CHARS:
            raise InvalidRequest(f"{where}.id must be 1 to {MAX_ID_CHARS} characters")
        if not doc.text.strip():
            raise InvalidRequest(f"{where}.text is empty; a document needs some text")
        if len(doc.text) > self.max_text_chars:
            raise InvalidRequest(
                f"{where}.text has {len(doc.text)} characters; the limit is {self.max_text_chars}"
            )
        if "\x00" in doc.text or "\x00" in doc.id:
            raise InvalidRequest(f"{where} contains a NUL character")
        _check_metadata(doc.metadata, where)
        return NewDocument(doc.id, doc.text, doc.metadata, content_hash(doc.text))

    def embed(
        self, texts: Sequence[str], chunking: ChunkingConfig, encoder: Encoder
    ) -> list[EmbeddedText]:
        """Split each text into chunks (one if it fits the model) and embed all in one batch."""
        if chunking.enabled:
            max_tokens = chunking.max_tokens or encoder.max_chunk_tokens
            spans = [
                chunk_spans(len(text), offsets, max_tokens, chunking.overlap)
                for text, offsets in zip(texts, encoder.token_offsets(texts), strict=True)
            ]
        else:
            spans = [[(0, len(text))] for text in texts]
        pieces = [
            text[start:end]
            for text, text_spans in zip(texts, spans, strict=True)
            for start, end in text_spans
        ]
        # Identical pieces (boilerplate, empty pages) are embedded once and share the same
        # vector bytes, which the index then holds once (index/duplicates.py).
        unique = list(dict.fromkeys(pieces))
        if len(unique) < len(pieces):
            position = {piece: row for row, piece in enumerate(unique)}
            vectors = encoder.encode(unique)[[position[piece] for piece in pieces]]
        else:
            vectors = encoder.encode(pieces)
        out = []
        row = 0
        for text_spans in spans:
            out.append(EmbeddedText(spans=text_spans, vectors=vectors[row : row + len(text_spans)]))
            row += len(text_spans)
        return out

    def upsert(self, collection: str, documents: Sequence[DocumentInput]) -> UpsertOutcome:
        """Returns after the batch is committed: an acknowledged write is durable."""
        checked = self.validate(documents)
        live = self.collections.get(collection)
        for attempt in range(_WRITE_ATTEMPTS):
            model_id = live.model_id
            encoder = self.encoders.get(model_id)
            with live.reader() as snapshot:
                existing = snapshot.documents.existing(
                    model_id, [doc.external_id for doc in checked]
                )
            to_embed = [
                doc
                for doc in checked
                if doc.external_id not in existing
                or existing[doc.external_id].content_hash != doc.content_hash
                or not existing[doc.external_id].has_vectors
            ]
            embedded = self.embed([doc.text for doc in to_embed], live.chunking, encoder)
            by_id = dict(zip((doc.external_id for doc in to_embed), embedded, strict=True))
            try:
                live.commit(
                    partial(
                        document_store.upsert_documents,
                        collection_id=live.id,
                        model_id=model_id,
                        documents=checked,
                        vectors=by_id,
                    ),
                    model_id=model_id,
                )
            except ConcurrentWrite:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise
                continue
            return UpsertOutcome(
                upserted=len(checked),
                embedded=len(to_embed),
                unchanged=len(checked) - len(to_embed),
            )
        raise AssertionError("unreachable")

    def delete(self, collection: str, ids: Sequence[str]) -> int:
        live = self.collections.get(collection)
        deleted, _result = live.commit(
            lambda session: document_store.delete_documents(session, live.id, ids)
        )
        return deleted


def _check_metadata(metadata: Any, where: str) -> None:
    if not isinstance(metadata, dict):
        raise InvalidRequest(f"{where}.metadata must be an object")
    stack: list[tuple[Any, int]] = [(metadata, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > 8:
            raise InvalidRequest(f"{where}.metadata is nested deeper than 8 levels")
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise InvalidRequest(f"{where}.metadata keys must be strings")
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequest(f"{where}.metadata holds a non-finite number")
        elif value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidRequest(f"{where}.metadata holds an unsupported value {value!r}")
