"""The CLI verbs, run in-process with click's runner on a real data directory."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from appliance.cli import main
from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance
from tests.conftest import ANIMALS


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "animals.jsonl"
    path.write_text(
        "\n".join(json.dumps({"id": i, "text": t, "metadata": m}) for i, t, m in ANIMALS) + "\n"
    )
    return path


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_ingest_then_search_as_json_and_text(corpus: Path, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert "6 documents (6 embedded" in _run(
        "ingest", str(corpus), "-c", "pets", "--data-dir", data
    )
    assert "6 documents (0 embedded, 6 unchanged)" in _run(
        "ingest", str(corpus), "-c", "pets", "--data-dir", data
    )
    payload = json.loads(
        _run("search", "which animal barks", "-c", "pets", "--json", "--data-dir", data)
    )
    assert payload["results"][0]["id"] == "dog"
    filtered = json.loads(
        _run(
            "search",
            "which animal barks",
            "-c",
            "pets",
            "--filter",
            '{"kind": {"$in": ["bird", "fish"]}}',
            "--limit",
            "2",
            "--json",
            "--data-dir",
            data,
        )
    )
    assert len(filtered["results"]) == 2
    assert {hit["metadata"]["kind"] for hit in filtered["results"]} <= {"bird", "fish"}
    text = _run("search", "birds in the cold", "-c", "pets", "--data-dir", data)
    assert text.splitlines()[0].split()[2] == "penguin"


def test_ingest_reads_beir_corpus_with_titles(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"_id": "d1", "title": "Vitamin D", "text": "Sunlight makes it in skin."})
        + "\n"
        + json.dumps({"_id": "d2", "title": "Sailing", "text": "Boats tack against wind."})
        + "\n"
    )
    data = str(tmp_path / "data")
    _run("ingest", str(corpus), "--data-dir", data)
    payload = json.loads(_run("search", "vitamin from the sun", "--json", "--data-dir", data))
    assert payload["results"][0]["id"] == "d1"
    assert payload["results"][0]["metadata"]["title"] == "Vitamin D"


def test_errors_are_messages_not_tracebacks(tmp_path: Path, corpus: Path) -> None:
    data = str(tmp_path / "data")
    result = CliRunner().invoke(main, ["search", "x", "-c", "nope", "--data-dir", data])
    assert result.exit_code == 2 and "collection 'nope' does not exist" in result.output
    result = CliRunner().invoke(main, ["search", "x", "--filter", "{bad", "--data-dir", data])
    assert result.exit_code == 2 and "not valid JSON" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n')
    result = CliRunner().invoke(main, ["ingest", str(bad), "--data-dir", data])
    assert result.exit_code == 2 and "needs an id" in result.output


def test_models_list_and_verify() -> None:
    assert "all-MiniLM-L6-v2" in _run("models", "list")
    assert _run("models", "verify", "all-MiniLM-L6-v2").startswith("ok: all-MiniLM-L6-v2@")


def test_commands_print_no_loading_weights_bar(corpus: Path, tmp_path: Path) -> None:
    from transformers.utils import logging as transformers_logging

    transformers_logging.enable_progress_bar()  # as in a fresh process
    data = str(tmp_path / "data")
    outputs = []
    for args in (
        ["ingest", str(corpus), "-c", "pets", "--data-dir", data],
        ["search", "which animal barks", "-c", "pets", "--data-dir", data],
    ):
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert all("Loading weights" not in output for output in outputs)
    assert "ingest → pets" in outputs[0]  # the appliance's own progress bar stays


def test_ingest_into_one_collection_leaves_the_others_alone(
    corpus: Path,
    tmp_path: Path,
    open_appliance: Callable[..., Appliance],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = open_appliance()
    for name in ("a", "b"):
        first.create_collection(name)
        first.ingest.upsert(name, [DocumentInput(i, t, m) for i, t, m in ANIMALS])
    first.close()  # snapshots saved
    # A server's write to b since its last snapshot: b's snapshot is now behind the store.
    beside = open_appliance()
    beside.ingest.upsert("b", [DocumentInput("owl", "An owl hoots at night.", {})])
    b_id = beside.collections.get("b").id
    manifest = tmp_path / "data" / "indexes" / f"collection-{b_id}" / "manifest.json"
    saved = manifest.read_bytes()

    with caplog.at_level(logging.INFO, logger="appliance.collections.manager"):
        out = _run("ingest", str(corpus), "-c", "a", "--data-dir", str(tmp_path / "data"))
    assert "6 documents (0 embedded, 6 unchanged)" in out
    assert "collection b" not in caplog.text
    assert manifest.read_bytes() == saved
    # b loads, caught up, when a command asks for it.
    payload = json.loads(
        _run("search", "hoots", "-c", "b", "--json", "--data-dir", str(tmp_path / "data"))
    )
    assert payload["results"][0]["id"] == "owl"


def _lines_with_bad_ones(tmp_path: Path) -> Path:
    """20 good lines, then line 21 without text, 22 bad JSON, 23 an empty text, 24 a repeat
    of line 1's id, 25 good."""
    lines = [json.dumps({"id": f"d{n}", "text": f"document number {n}"}) for n in range(1, 21)]
    lines += [
        json.dumps({"id": "no-text"}),
        '{"id": "broken", "text": ',
        json.dumps({"id": "blank", "text": "   "}),
        json.dumps({"id": "d1", "text": "the same id again"}),
        json.dumps({"id": "d25", "text": "the last good line"}),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ingest_errors_name_the_file_line(tmp_path: Path) -> None:
    path = _lines_with_bad_ones(tmp_path)
    data = str(tmp_path / "data")
    result = CliRunner().invoke(
        main, ["ingest", str(path), "--batch-size", "8", "--data-dir", data]
    )
    assert result.exit_code == 2
    assert f"{path}:21 needs an id (or _id) and a text" in result.output
    assert "documents[" not in result.output

    empty = tmp_path / "empty-text.jsonl"
    empty.write_text(
        "\n" + json.dumps({"id": "a", "text": "ok"}) + "\n" + '{"id": "b", "text": ""}\n'
    )
    result = CliRunner().invoke(main, ["ingest", str(empty), "--data-dir", data])
    assert result.exit_code == 2
    assert f"{empty}:3: document.text is empty" in result.output


def test_ingest_skip_invalid_skips_and_counts_the_bad_lines(tmp_path: Path) -> None:
    path = _lines_with_bad_ones(tmp_path)
    data = str(tmp_path / "data")
    result = CliRunner().invoke(
        main,
        [
            "ingest",
            str(path),
            "-c",
            "mixed",
            "--skip-invalid",
            "--batch-size",
            "8",
            "--data-dir",
            data,
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "21 documents (21 embedded, 0 unchanged), 4 invalid lines skipped" in result.stdout
    assert "skipped line 21:" in result.stderr and "needs an id" in result.stderr
    assert "skipped line 22:" in result.stderr and "invalid JSON" in result.stderr
    assert "skipped line 23:" in result.stderr and "text is empty" in result.stderr
    assert "skipped line 24:" in result.stderr and "already on line 1" in result.stderr
    payload = json.loads(
        _run("search", "the last good line", "-c", "mixed", "--json", "--data-dir", data)
    )
    assert payload["results"][0]["id"] == "d25"
    # d1 kept its first text: the repeat was skipped.
    first = json.loads(
        _run("search", "document number 1", "-c", "mixed", "--json", "--data-dir", data)
    )
    assert {hit["id"]: hit["text"] for hit in first["results"]}["d1"] == "document number 1"


def test_collections_create_list_show_delete(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    created = _run("collections", "create", "notes", "--data-dir", data)
    assert created.startswith("created collection notes: hnswlib:M=32,ef_construction=200 (ef=128)")
    assert "model all-MiniLM-L6-v2@" in created
    shown = json.loads(
        _run(
            "collections",
            "create",
            "flat",
            "--index-backend",
            "faiss",
            "--spec",
            "Flat",
            "--json",
            "--data-dir",
            data,
        )
    )
    assert shown["index"] == {"backend": "faiss", "spec": "Flat"} and shown["documents"] == 0
    listed = _run("collections", "list", "--data-dir", data).splitlines()
    assert [line.split("\t")[:3] for line in listed] == [["flat", "0", "0"], ["notes", "0", "0"]]
    assert listed[0].split("\t")[3] == "faiss:Flat"
    names = json.loads(_run("collections", "list", "--json", "--data-dir", data))["collections"]
    assert [c["name"] for c in names] == ["flat", "notes"]
    text = _run("collections", "show", "notes", "--data-dir", data)
    assert "     documents: 0" in text and "index: hnswlib:M=32,ef_construction=200" in text
    assert _run("collections", "delete", "notes", "--yes", "--data-dir", data) == (
        "deleted collection notes\n"
    )
    assert [
        c.split("\t")[0] for c in _run("collections", "list", "--data-dir", data).split("\n") if c
    ] == ["flat"]


def test_collections_verbs_refuse_with_messages(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    runner = CliRunner()
    _run("collections", "create", "pets", "--data-dir", data)
    again = runner.invoke(main, ["collections", "create", "pets", "--data-dir", data])
    assert again.exit_code == 2 and again.stderr.startswith("error (collection_exists):")
    bad = runner.invoke(main, ["collections", "create", "no spaces", "--data-dir", data])
    assert bad.exit_code == 2 and "letters, digits" in bad.stderr
    spec = runner.invoke(
        main,
        [
            "collections",
            "create",
            "x",
            "--index-backend",
            "faiss",
            "--spec",
            "Nope",
            "--data-dir",
            data,
        ],
    )
    assert spec.exit_code == 2 and spec.stderr.startswith("error (invalid_index_spec):")
    missing = runner.invoke(main, ["collections", "show", "nope", "--data-dir", data])
    assert missing.exit_code == 2 and "collection 'nope' does not exist" in missing.stderr
    kept = runner.invoke(main, ["collections", "delete", "pets", "--data-dir", data], input="n\n")
    assert kept.exit_code == 1 and "Aborted" in kept.output
    assert _run("collections", "list", "--data-dir", data).startswith("pets\t")


def test_search_modes(corpus: Path, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    _run("ingest", str(corpus), "-c", "pets", "--data-dir", data)

    def top(mode: str, query: str) -> str:
        args = ["search", query, "-c", "pets", "--mode", mode, "--json", "--data-dir", data]
        return str(json.loads(_run(*args))["results"][0]["id"])

    assert top("dense", "which animal barks") == "dog"
    assert top("keyword", "penguin") == "penguin"
    assert top("hybrid", "which animal barks") == "dog"
    # Keyword search finds only the words: nothing shares a word with this query.
    none = json.loads(
        _run("search", "zyzzyva", "-c", "pets", "--mode", "keyword", "--json", "--data-dir", data)
    )
    assert none["results"] == []
    bad = CliRunner().invoke(main, ["search", "x", "--mode", "fuzzy", "--data-dir", data])
    assert bad.exit_code == 2 and "'fuzzy' is not one of" in bad.output


@pytest.fixture
def server(appliance: Appliance, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient[Any]]:
    """A server over `appliance`; the CLI's client reaches it through an httpx transport."""
    from appliance import client as client_module
    from appliance.api.app import create_app

    with TestClient(create_app(appliance.settings, appliance)) as test_client:

        def answer(request: httpx.Request) -> httpx.Response:
            response = test_client.request(
                request.method,
                request.url.path,
                content=request.content,
                headers=dict(request.headers),
            )
            return httpx.Response(
                response.status_code, content=response.content, headers=response.headers
            )

        class InProcessClient(client_module.ApplianceClient):
            def __init__(self, url: str, **kwargs: Any) -> None:
                super().__init__(url, **kwargs, transport=httpx.MockTransport(answer))

        monkeypatch.setattr(client_module, "ApplianceClient", InProcessClient)
        yield test_client


def test_remote_verbs_go_through_the_client(server: TestClient[Any]) -> None:
    url = ["--url", "http://appliance.test:8000"]
    created = json.loads(
        _run("collections", "create", "pets", "--index-backend", "faiss", "--json", *url)
    )
    assert created["index"]["backend"] == "faiss"
    documents = [{"id": i, "text": t, "metadata": m} for i, t, m in ANIMALS]
    put = server.put("/collections/pets/documents", json={"documents": documents})
    assert put.status_code == 200, put.text
    assert _run("collections", "list", *url).startswith("pets\t6\t6\tfaiss:HNSW32,Flat")
    assert json.loads(_run("collections", "show", "pets", "--json", *url))["documents"] == 6
    hits = json.loads(_run("search", "which animal barks", "-c", "pets", "--json", *url))
    assert hits["results"][0]["id"] == "dog"
    keyword = _run("search", "penguin", "-c", "pets", "--mode", "keyword", *url)
    assert keyword.splitlines()[0].split()[2] == "penguin"
    missing = CliRunner().invoke(main, ["collections", "show", "nope", *url])
    assert missing.exit_code == 2
    assert missing.stderr.startswith("error (collection_not_found): collection 'nope'")
    assert _run("collections", "delete", "pets", "--yes", *url) == "deleted collection pets\n"


def test_remote_verbs_say_when_no_server_answers() -> None:
    result = CliRunner().invoke(main, ["collections", "list", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "cannot reach http://127.0.0.1:9" in result.stderr


def test_new_verbs_print_no_loading_weights_bar(tmp_path: Path) -> None:
    """A fresh process, as an operator runs it: `python -m appliance.cli` loads the model for
    `collections create` (its model id) without transformers' progress bar."""
    import subprocess
    import sys

    data = str(tmp_path / "data")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance.cli",
            "collections",
            "create",
            "notes",
            "--data-dir",
            data,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("created collection notes")
    assert "Loading weights" not in done.stdout + done.stderr
    result = CliRunner().invoke(main, ["collections", "show", "notes", "--data-dir", data])
    assert result.exit_code == 0 and "Loading weights" not in result.output
