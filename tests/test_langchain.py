"""The LangChain integration against a real `appliance serve`: LangChain's own standard suites
(langchain-tests) for the vector store and the embeddings, then what they do not cover."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    VectorStoreIntegrationTests,
)

from appliance.client import ApplianceAPIError, ApplianceClient
from appliance.integrations.langchain import ApplianceEmbeddings, ApplianceVectorStore
from tests.live_server import LIVE_ASYNC_THRESHOLD as ASYNC_THRESHOLD
from tests.live_server import LIVE_KEY as KEY

# The standard suites' async tests are coroutines; anyio's pytest plugin runs them.
pytestmark = pytest.mark.anyio


@pytest.fixture
def server_url(live_server_url: str) -> str:
    return live_server_url


@pytest.fixture
def admin(server_url: str) -> Iterator[ApplianceClient]:
    with ApplianceClient(server_url, api_key=KEY) as client:
        yield client


def _fresh_name() -> str:
    return f"lc-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(server_url: str, admin: ApplianceClient) -> Iterator[ApplianceVectorStore]:
    opened = ApplianceVectorStore(_fresh_name(), url=server_url, api_key=KEY, mode="dense")
    yield opened
    admin.delete_collection(opened.collection_name)
    opened.close()


class TestApplianceVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, server_url: str, admin: ApplianceClient) -> Iterator[VectorStore]:
        # A fresh collection per test; the server embeds, so no embedding is passed.
        opened = ApplianceVectorStore(_fresh_name(), url=server_url, api_key=KEY)
        try:
            yield opened
        finally:
            admin.delete_collection(opened.collection_name)
            opened.close()


def _has_embeddings_route(url: str) -> bool:
    schema = httpx.get(
        f"{url}/schema/openapi.json", headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    )
    schema.raise_for_status()
    return "/v1/embeddings" in schema.json()["paths"]


class TestApplianceEmbeddingsStandard(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return ApplianceEmbeddings

    @pytest.fixture
    def model(self, server_url: str) -> Iterator[Embeddings]:
        # POST /v1/embeddings comes with the OpenAI-compatible routes (issue 13, item 2);
        # until a server has them this suite has nothing to talk to.
        if not _has_embeddings_route(server_url):
            pytest.skip("the server has no POST /v1/embeddings (OpenAI-compatible routes)")
        embeddings = ApplianceEmbeddings(url=server_url, api_key=KEY)
        yield embeddings
        embeddings.close()


ANIMALS = [
    ("cat", "The cat purrs and sleeps on the warm windowsill.", {"kind": "mammal", "legs": 4}),
    ("eagle", "The eagle soars high above the mountains.", {"kind": "bird", "legs": 2}),
    ("penguin", "Penguins waddle on the ice and dive for fish.", {"kind": "bird", "legs": 2}),
    ("spider", "A spider spins a web to catch flies.", {"kind": "arachnid", "legs": 8}),
]


def _add_animals(store: ApplianceVectorStore) -> list[str]:
    return store.add_texts(
        [text for _, text, _ in ANIMALS],
        [meta for _, _, meta in ANIMALS],
        ids=[doc_id for doc_id, _, _ in ANIMALS],
    )


def test_search_with_scores_and_mongo_style_filters(store: ApplianceVectorStore) -> None:
    assert _add_animals(store) == ["cat", "eagle", "penguin", "spider"]
    scored = store.similarity_search_with_score("a bird flying over peaks", k=4)
    assert scored[0][0].id == "eagle"
    scores = [score for _, score in scored]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    birds = store.similarity_search("an animal", k=4, filter={"kind": "bird"})
    assert {doc.id for doc in birds} == {"eagle", "penguin"}
    many_legs = store.similarity_search_with_score("an animal", k=4, filter={"legs": {"$gt": 2}})
    assert {doc.id for doc, _ in many_legs} == {"cat", "spider"}
    assert many_legs[0][0].metadata in (
        {"kind": "mammal", "legs": 4},
        {"kind": "arachnid", "legs": 8},
    )
    with pytest.raises(ApplianceAPIError) as bad:
        store.similarity_search("x", filter={"legs": {"$near": 2}})
    assert bad.value.status_code == 400


def test_search_options_pass_through(store: ApplianceVectorStore) -> None:
    _add_animals(store)
    keyword = store.similarity_search("spider", k=4, mode="keyword")
    assert [doc.id for doc in keyword] == ["spider"]


def test_relevance_scores_are_cosine_in_dense_mode(
    store: ApplianceVectorStore, server_url: str, admin: ApplianceClient
) -> None:
    _add_animals(store)
    relevant = store.similarity_search_with_relevance_scores("penguins diving for fish", k=2)
    assert relevant[0][0].id == "penguin" and relevant[0][1] > 0.5
    hybrid = ApplianceVectorStore(store.collection_name, url=server_url, api_key=KEY)
    with pytest.raises(NotImplementedError, match="mode='dense'"):
        hybrid.similarity_search_with_relevance_scores("penguins", k=2)
    retriever = store.as_retriever(search_kwargs={"k": 1, "filter": {"kind": "arachnid"}})
    assert [doc.id for doc in retriever.invoke("a web")] == ["spider"]


def test_from_texts_creates_the_collection(server_url: str, admin: ApplianceClient) -> None:
    name = _fresh_name()
    store = ApplianceVectorStore.from_texts(
        ["alpha text", "beta text"],
        metadatas=[{"n": 1}, {"n": 2}],
        ids=["a", "b"],
        collection_name=name,
        url=server_url,
        api_key=KEY,
        index={"backend": "faiss", "spec": "Flat"},
    )
    try:
        info = admin.get_collection(name)
        assert (info.documents, info.index["backend"]) == (2, "faiss")
        assert store.get_by_ids(["b", "missing", "a"]) == [
            Document(id="b", page_content="beta text", metadata={"n": 2}),
            Document(id="a", page_content="alpha text", metadata={"n": 1}),
        ]
        # A second store over the same name opens the collection as it is.
        again = ApplianceVectorStore.from_documents(
            [Document(page_content="gamma text", id="c")],
            collection_name=name,
            url=server_url,
            api_key=KEY,
        )
        assert admin.get_collection(name).documents == 3
        assert again.similarity_search("gamma", k=1)[0].id == "c"
    finally:
        admin.delete_collection(name)


def test_batches_and_server_jobs(store: ApplianceVectorStore) -> None:
    # Over the server's async threshold the upsert is a job, which add_texts waits for.
    texts = [f"note number {i}" for i in range(ASYNC_THRESHOLD + 2)]
    ids = store.add_texts(texts)
    assert len(set(ids)) == len(texts) and all(uuid.UUID(doc_id) for doc_id in ids)
    assert [doc.page_content for doc in store.get_by_ids(ids)] == texts
    store.batch_size = 2
    more = store.add_texts(["one more", "and another", "and a third"], ids=["m1", None, "m3"])
    assert more[0] == "m1" and more[2] == "m3" and uuid.UUID(more[1])
    assert len(store.get_by_ids(more)) == 3


def test_delete_and_argument_errors(store: ApplianceVectorStore) -> None:
    _add_animals(store)
    assert store.delete(["cat", "not-there", "spider"]) is True
    assert [doc.id for doc in store.get_by_ids(["cat", "eagle", "spider"])] == ["eagle"]
    with pytest.raises(ValueError, match="pass the ids"):
        store.delete()
    with pytest.raises(ValueError, match="2 metadatas for 1 texts"):
        store.add_texts(["x"], [{}, {}])
    with pytest.raises(ValueError, match="1 ids for 2 texts"):
        store.add_texts(["x", "y"], ids=["a"])
    assert store.add_texts([]) == []


def test_embeddings_property(store: ApplianceVectorStore, server_url: str) -> None:
    own = store.embeddings
    assert isinstance(own, ApplianceEmbeddings)
    # The collection's model, by the name /v1/embeddings takes.
    assert own.model == "all-MiniLM-L6-v2"
    given = DeterministicFakeEmbedding(size=6)
    with_given = ApplianceVectorStore(
        store.collection_name, url=server_url, api_key=KEY, embedding=given
    )
    assert with_given.embeddings is given


def test_a_wrong_key_is_a_typed_error(server_url: str) -> None:
    with pytest.raises(ApplianceAPIError) as caught:
        ApplianceVectorStore(_fresh_name(), url=server_url, api_key="wrong")
    assert caught.value.status_code == 401


def test_embeddings_ask_for_the_loaded_model_and_batch_in_order() -> None:
    # Pins what ApplianceEmbeddings sends /v1/embeddings (the route is another branch's).
    sent: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ready":
            return httpx.Response(200, json={"status": "ready", "model": "bge-small@0a1b2c"})
        body = json.loads(request.content)
        sent.append(body)
        # Answered out of order, as the contract allows: index says which input is which.
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), 0.5]}
            for i, text in reversed(list(enumerate(body["input"])))
        ]
        return httpx.Response(200, json={"object": "list", "data": data, "model": body["model"]})

    client = ApplianceClient("http://appliance.test", transport=httpx.MockTransport(handle))
    embeddings = ApplianceEmbeddings(batch_size=2, client=client)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    assert embeddings.embed_documents(texts) == [[float(n), 0.5] for n in range(1, 6)]
    assert [body["input"] for body in sent] == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]
    assert {body["model"] for body in sent} == {"bge-small"}
    assert {body["encoding_format"] for body in sent} == {"float"}
    assert embeddings.embed_query("hello") == [5.0, 0.5]
    assert ApplianceEmbeddings(model="e5", client=client).embed_query("x") == [1.0, 0.5]
    assert sent[-1]["model"] == "e5"
    assert embeddings.embed_documents([]) == []
