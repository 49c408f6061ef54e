"""The CLI verbs, run in-process with click's runner on a real data directory."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

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
