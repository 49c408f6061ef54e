"""OpenAI-compatible /v1/embeddings and /v1/models, driven by the official `openai` client
against a real server on a loopback port."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from appliance.api.app import create_app
from appliance.api.auth import required_scope
from appliance.embedding.encoder import Encoder
from appliance.errors import DimensionsNotSupported, InvalidRequest, UnknownModel
from appliance.ingest.pipeline import DocumentInput
from appliance.models.registry import DEFAULT_REGISTRY_FILE
from appliance.service import Appliance
from appliance.store import documents as document_store
from appliance.store import keys as key_store
from tests.conftest import ANIMALS

MODEL = "all-MiniLM-L6-v2"
LONG_TEXT = "the quick brown fox jumps over the lazy dog " * 100  # ~900 tokens


class Server:
    """The app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, appliance: Appliance) -> None:
        self.appliance = appliance
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(
            create_app(appliance.settings, appliance), log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(30)
        self._socket.close()

    def client(self, api_key: str = "none") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0)


@pytest.fixture
def serve(open_appliance: Callable[..., Appliance]) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(**overrides: Any) -> Server:
        appliance = open_appliance(**overrides)
        appliance.ensure_collection(appliance.settings.default_collection)
        server = Server(appliance).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__()


@pytest.fixture
def server(serve: Callable[..., Server]) -> Server:
    return serve()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _stored_vectors(appliance: Appliance, collection: str) -> dict[str, np.ndarray]:
    """External document id → its stored (single-chunk) vector."""
    live = appliance.collections.get(collection)
    out: dict[str, np.ndarray] = {}
    with appliance.db.read() as session:
        for ids, vectors in document_store.iter_all_vectors(
            session, live.id, live.model_id, appliance.encoder.dimension
        ):
            chunks = document_store.chunks_by_vector_ids(session, [int(i) for i in ids])
            docs = document_store.documents_by_ids(
                session, sorted({c.document_id for c in chunks.values()})
            )
            for vector_id, vector in zip(ids, vectors, strict=True):
                out[docs[chunks[int(vector_id)].document_id].external_id] = vector
    return out


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not exported")


def test_floats_equal_the_vectors_a_collection_stores(server: Server) -> None:
    appliance = server.appliance
    appliance.create_collection("pets")
    appliance.ingest.upsert("pets", [DocumentInput(i, t, m) for i, t, m in ANIMALS])
    stored = _stored_vectors(appliance, "pets")

    texts = [text for _, text, _ in ANIMALS]
    answer = server.client().embeddings.create(model=MODEL, input=texts, encoding_format="float")
    assert answer.object == "list" and answer.model == MODEL
    assert [item.index for item in answer.data] == list(range(len(texts)))
    assert all(item.object == "embedding" for item in answer.data)
    got = np.array([item.embedding for item in answer.data], dtype=np.float32)
    assert got.shape == (len(texts), 384)
    expected = np.stack([stored[doc_id] for doc_id, _, _ in ANIMALS])
    assert _cosines(got, expected).min() >= 0.9999
    assert answer.usage.prompt_tokens == appliance.encoder.count_tokens(texts)
    assert answer.usage.total_tokens == answer.usage.prompt_tokens


def test_base64_as_the_client_decodes_it_and_as_sent(server: Server) -> None:
    client = server.client()
    floats = client.embeddings.create(model=MODEL, input="a cat", encoding_format="float")
    # Without encoding_format the client asks for base64 and decodes it itself.
    decoded = client.embeddings.create(model=MODEL, input="a cat")
    assert isinstance(decoded.data[0].embedding, list)
    np.testing.assert_array_equal(
        np.array(decoded.data[0].embedding, dtype=np.float32),
        np.array(floats.data[0].embedding, dtype=np.float32),
    )
    # Asked for explicitly, the client hands the string over: little-endian float32.
    raw = client.embeddings.create(model=MODEL, input=["a cat"], encoding_format="base64")
    blob = raw.data[0].embedding
    assert isinstance(blob, str)
    vector = np.frombuffer(base64.b64decode(blob), dtype="<f4")
    np.testing.assert_array_equal(vector, np.array(floats.data[0].embedding, dtype=np.float32))


def test_token_id_inputs_are_decoded_with_the_models_tokenizer(
    server: Server, encoder: Encoder
) -> None:
    client = server.client()
    texts = ["the cat purrs on the warm windowsill", "salmon swim upstream"]
    ids = [encoder._tokenizer.encode(text, add_special_tokens=False).ids for text in texts]
    by_text = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    by_ids = client.embeddings.create(model=MODEL, input=ids, encoding_format="float")
    one = client.embeddings.create(model=MODEL, input=ids[0], encoding_format="float")
    vectors = np.array([item.embedding for item in by_text.data])
    assert _cosines(np.array([item.embedding for item in by_ids.data]), vectors).min() >= 0.9999
    assert _cosines(np.array([one.data[0].embedding]), vectors[:1]).min() >= 0.9999
    assert by_ids.usage.prompt_tokens == by_text.usage.prompt_tokens

    with pytest.raises(openai.BadRequestError) as bad:
        client.embeddings.create(model=MODEL, input=[[1, 2, 10**7]])
    assert "token id 10000000" in bad.value.response.json()["detail"]
    with pytest.raises(openai.BadRequestError) as mixed:
        client.embeddings.create(model=MODEL, input=["a", 5])  # type: ignore[arg-type]
    assert "mixes texts and token ids" in mixed.value.response.json()["detail"]


def test_unknown_model_is_404_with_the_registered_names(server: Server) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        server.client().embeddings.create(model="text-embedding-3-small", input="x")
    body = missing.value.response.json()
    assert body["error"] == "unknown_model"
    assert "'text-embedding-3-small'" in body["detail"] and MODEL in body["detail"]


def test_dimensions_are_refused_unless_the_model_can_give_them(server: Server) -> None:
    client = server.client()
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model=MODEL, input="x", dimensions=128)
    body = refused.value.response.json()
    assert body["error"] == "dimensions_not_supported"
    assert "384-dimensional" in body["detail"] and "dimensions" in body["detail"]
    # The model's own size is no change, so it is accepted.
    same = client.embeddings.create(model=MODEL, input="x", dimensions=384, user="someone")
    assert len(same.data[0].embedding) == 384


def test_models_list_and_retrieve(server: Server) -> None:
    client = server.client()
    models = client.models.list()
    assert models.data[0].id == MODEL
    assert all(model.object == "model" for model in models.data)
    card = client.models.retrieve(MODEL)
    assert card.id == MODEL and card.owned_by == "appliance"
    assert card.model_dump()["dimension"] == 384
    assert card.model_dump()["max_input_tokens"] == 256
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_long_inputs_are_truncated_to_the_window_and_named_in_a_header(
    server: Server, encoder: Encoder
) -> None:
    client = server.client()
    raw = client.embeddings.with_raw_response.create(
        model=MODEL, input=["short", LONG_TEXT, "also short", LONG_TEXT], encoding_format="float"
    )
    assert raw.headers["X-Truncated-Inputs"] == "1,3"
    answer = raw.parse()
    assert answer.usage.prompt_tokens == encoder.count_tokens(["short", "also short"]) + 2 * 256
    # The vector is the one of the text cut at the window, as sentence-transformers cuts it.
    window_ids = encoder._tokenizer.encode(LONG_TEXT, add_special_tokens=False).ids[:254]
    cut = encoder.encode([encoder.decode(window_ids)])
    assert _cosines(np.array([answer.data[1].embedding]), cut).min() >= 0.9999
    plain = client.embeddings.with_raw_response.create(model=MODEL, input="short")
    assert "X-Truncated-Inputs" not in plain.headers


def test_input_limits_are_settings(serve: Callable[..., Server]) -> None:
    client = serve(embeddings_max_inputs=3, embeddings_max_input_tokens=300).client()
    with pytest.raises(openai.BadRequestError) as many:
        client.embeddings.create(model=MODEL, input=["a", "b", "c", "d"])
    assert "at most 3" in many.value.response.json()["detail"]
    with pytest.raises(openai.BadRequestError) as long:
        client.embeddings.create(model=MODEL, input=["ok", LONG_TEXT])
    assert "input[1] has" in long.value.response.json()["detail"]
    assert "at most 300" in long.value.response.json()["detail"]
    assert len(client.embeddings.create(model=MODEL, input=["a", "b", "c"]).data) == 3


def test_empty_inputs_are_400(server: Server) -> None:
    bodies: list[dict[str, Any]] = [
        {"input": ""},
        {"input": []},
        {"input": [[]]},
        {"input": ["a", ""]},
    ]
    for body in bodies:
        response = httpx.post(f"{server.url}/v1/embeddings", json={"model": MODEL, **body})
        assert response.status_code == 400, body
        assert response.json()["error"] == "invalid_request"


def test_it_counts_tokens_and_cost_and_uses_the_embedding_cache(server: Server) -> None:
    client = server.client()
    tokens = _metric(server.url, "embedding_tokens_total")
    cost = _metric(server.url, "embedding_cost_equivalent_usd_total")
    hits = _metric(server.url, "embedding_cache_hits_total")
    texts = [f"a text never embedded before number {n}" for n in range(3)]
    answer = client.embeddings.create(model=MODEL, input=texts)
    assert _metric(server.url, "embedding_tokens_total") == tokens + answer.usage.prompt_tokens
    assert _metric(server.url, "embedding_cost_equivalent_usd_total") > cost
    # The same texts again are served from the embedding cache: nothing more is embedded.
    again = client.embeddings.create(model=MODEL, input=texts)
    assert again.usage.prompt_tokens == answer.usage.prompt_tokens
    assert _metric(server.url, "embedding_tokens_total") == tokens + answer.usage.prompt_tokens
    assert _metric(server.url, "embedding_cache_hits_total") == hits + 3


def test_read_keys_may_embed(server: Server) -> None:
    assert required_scope("POST", "/v1/embeddings") == "read"
    assert required_scope("GET", "/v1/models") == "read"
    appliance = server.appliance
    with appliance.db.write() as session:
        read_key = key_store.create_key(session, "read")[1]
    answer = server.client(read_key).embeddings.create(model=MODEL, input="a cat")
    assert len(answer.data[0].embedding) == 384
    assert server.client(read_key).models.list().data[0].id == MODEL
    with pytest.raises(openai.AuthenticationError):
        server.client("lsa_wrong_key").embeddings.create(model=MODEL, input="a cat")


def test_matryoshka_dimensions_from_the_registry(
    open_appliance: Callable[..., Appliance], tmp_path: Path
) -> None:
    registry = json.loads(DEFAULT_REGISTRY_FILE.read_text())
    registry["models"][0]["matryoshka_dimensions"] = [128]
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry))
    appliance = open_appliance(model_registry=str(path))
    full = appliance.embeddings.embed(["a cat"], model=MODEL).vectors
    cut = appliance.embeddings.embed(["a cat"], model=MODEL, dimensions=128).vectors
    assert cut.shape == (1, 128)
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(cut[0], full[0, :128] / np.linalg.norm(full[0, :128]), rtol=1e-5)
    with pytest.raises(DimensionsNotSupported, match="it can give 128 or 384"):
        appliance.embeddings.embed(["a cat"], model=MODEL, dimensions=64)
    assert appliance.embeddings.model(MODEL).matryoshka_dimensions == (128,)


def test_service_errors_are_types(appliance: Appliance) -> None:
    with pytest.raises(UnknownModel):
        appliance.embeddings.embed("x", model="nope")
    with pytest.raises(InvalidRequest):
        appliance.embeddings.embed([], model=MODEL)
    # No model: the appliance's default one.
    assert appliance.embeddings.embed("x").model == MODEL


def test_openapi_documents_the_input_shapes(server: Server) -> None:
    schema = httpx.get(f"{server.url}/schema/openapi.json").json()
    request = schema["components"]["schemas"]["EmbeddingsRequest"]
    shapes = request["properties"]["input"]["oneOf"]
    assert {"type": "string", "minLength": 1} in shapes
    assert len(shapes) == 4 and all(s.get("minItems") == 1 for s in shapes[1:])
    assert "/v1/embeddings" in schema["paths"] and "/v1/models" in schema["paths"]
    headers = schema["paths"]["/v1/embeddings"]["post"]["responses"]["200"]["headers"]
    assert "X-Truncated-Inputs" in headers
