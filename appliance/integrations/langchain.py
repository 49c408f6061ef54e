"""LangChain over the appliance's HTTP API: `ApplianceVectorStore` (the server embeds, stores
and searches) and `ApplianceEmbeddings` (the OpenAI-compatible `/v1/embeddings`). Needs the
`[langchain]` extra (langchain-core)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from appliance.api.schemas import JobOut
from appliance.client import DEFAULT_URL, ApplianceAPIError, ApplianceClient
from appliance.models.model_id import ModelId

# The registry's default model, for a server that does not say which one it loaded.
_FALLBACK_MODEL = "all-MiniLM-L6-v2"


def _model_name(model_id: str) -> str:
    """`all-MiniLM-L6-v2@707f563058cc13d5` -> `all-MiniLM-L6-v2` (the name /v1 accepts)."""
    return ModelId.parse(model_id).label


class ApplianceEmbeddings(Embeddings):
    """Embeddings from the appliance's `POST /v1/embeddings`. `model` absent: the model the
    server loaded (its `/ready` says which)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        model: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        batch_size: int = 128,
        client: ApplianceClient | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.url = url
        self.model = model
        self.batch_size = batch_size
        self._client = client or ApplianceClient(url, api_key=api_key, timeout=timeout)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        model = self._resolved_model()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            vectors.extend(self._client.embed(batch, model=model).vectors())
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self._client.embed([text], model=self._resolved_model()).vectors()[0]

    def close(self) -> None:
        self._client.close()

    def _resolved_model(self) -> str:
        if self.model is None:
            loaded = self._client.ready().model
            self.model = _model_name(loaded) if loaded else _FALLBACK_MODEL
        return self.model


class ApplianceVectorStore(VectorStore):
    """A LangChain vector store over one appliance collection, created when missing.

    The appliance embeds texts and queries itself with the collection's model, so `embedding`
    may be left out; when given it is only what `embeddings` returns (the vectors stored and
    searched are always the server's). `mode` (dense, keyword or hybrid) and `index` (the API's
    index spec, used only when the collection is created) default to the server's settings.
    """

    def __init__(
        self,
        collection_name: str,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        embedding: Embeddings | None = None,
        *,
        mode: str | None = None,
        index: dict[str, Any] | None = None,
        batch_size: int = 256,
        timeout: float = 60.0,
        client: ApplianceClient | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.collection_name = collection_name
        self.url = url
        self.mode = mode
        self.batch_size = batch_size
        self._api_key = api_key
        self._timeout = timeout
        self._embedding = embedding
        self._client = client or ApplianceClient(url, api_key=api_key, timeout=timeout)
        self._ensure_collection(index)

    @property
    def client(self) -> ApplianceClient:
        return self._client

    @property
    def embeddings(self) -> Embeddings:
        """The embedding given, else the collection's own model through `/v1/embeddings`."""
        if self._embedding is None:
            model_id = self._client.get_collection(self.collection_name).model_id
            self._embedding = ApplianceEmbeddings(
                self.url, model=_model_name(model_id), api_key=self._api_key, timeout=self._timeout
            )
        return self._embedding

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Upsert texts (same id: replaced). Missing ids, or None entries, get a new uuid4."""
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"{len(metadatas)} metadatas for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        assigned = [
            given if given else str(uuid.uuid4())
            for given in (ids if ids is not None else [None] * len(texts))
        ]
        documents = [
            {
                "id": doc_id,
                "text": text,
                "metadata": dict(metadatas[i]) if metadatas is not None else {},
            }
            for i, (doc_id, text) in enumerate(zip(assigned, texts, strict=True))
        ]
        for start in range(0, len(documents), self.batch_size):
            answer = self._client.upsert_documents(
                self.collection_name, documents[start : start + self.batch_size]
            )
            if isinstance(answer, JobOut):
                # Over the server's async threshold: the batch is searchable once the job ends.
                self._client.wait_for_job(answer.id, timeout=max(self._timeout, 600.0))
        return assigned

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete documents by id; ids not in the collection are skipped."""
        if ids is None:
            raise ValueError(
                "pass the ids to delete; to empty the collection, delete it with "
                "`client.delete_collection`"
            )
        for doc_id in ids:
            try:
                self._client.delete_document(self.collection_name, doc_id)
            except ApplianceAPIError as exc:
                if exc.error != "document_not_found":
                    raise
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in the order given; missing ids are left out."""
        found = []
        for doc_id in ids:
            try:
                stored = self._client.get_document(self.collection_name, doc_id)
            except ApplianceAPIError as exc:
                if exc.error == "document_not_found":
                    continue
                raise
            found.append(Document(id=stored.id, page_content=stored.text, metadata=stored.metadata))
        return found

    def similarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The k best documents with the appliance's score (higher is better; in dense mode
        the cosine similarity). `filter` is the appliance's Mongo-style metadata filter; other
        keyword arguments (mode, fusion, alpha, rerank, params, ...) go to the search API."""
        kwargs.setdefault("mode", self.mode)
        answer = self._client.search(self.collection_name, query, limit=k, filter=filter, **kwargs)
        return [
            (Document(id=hit.id, page_content=hit.text, metadata=hit.metadata), hit.score)
            for hit in answer.results
        ]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self.mode != "dense":
            raise NotImplementedError(
                "relevance scores need mode='dense' (cosine similarity); keyword and hybrid "
                "scores are not on a fixed scale"
            )
        return lambda score: score

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        collection_name: str = "langchain",
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """A store over `collection_name` (created when missing) holding these texts."""
        store = cls(collection_name, url=url, api_key=api_key, embedding=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    def from_documents(
        cls, documents: list[Document], embedding: Embeddings | None = None, **kwargs: Any
    ) -> Self:
        """A store holding these documents (their ids kept); the same keywords as from_texts."""
        if "ids" not in kwargs and any(doc.id for doc in documents):
            kwargs["ids"] = [doc.id for doc in documents]
        return cls.from_texts(
            [doc.page_content for doc in documents],
            embedding,
            metadatas=[doc.metadata for doc in documents],
            **kwargs,
        )

    def close(self) -> None:
        self._client.close()

    def _ensure_collection(self, index: dict[str, Any] | None) -> None:
        try:
            self._client.get_collection(self.collection_name)
        except ApplianceAPIError as exc:
            if exc.error != "collection_not_found":
                raise
            try:
                self._client.create_collection(self.collection_name, index=index)
            except ApplianceAPIError as race:
                # Another client created it in between: that one is as good.
                if race.error != "collection_exists":
                    raise
