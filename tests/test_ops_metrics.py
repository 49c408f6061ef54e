"""Operating metrics on /metrics, and the deploy/ alert rules and dashboard that use them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from appliance.api.app import create_app
from appliance.service import Appliance
from tests.conftest import ANIMALS

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "appliance-dashboard.json"
DOCS = {"documents": [{"id": i, "text": t, "metadata": m} for i, t, m in ANIMALS]}

# Referenced by the rules or dashboard but not exported by this code.
NOT_EXPORTED_HERE = {
    "up",  # made by Prometheus itself for every scrape target
}
# Exported by work landing beside this one (result cache, search feedback); listed so this
# test does not depend on the order the two land in.
FROM_PARALLEL_WORK = {
    "result_cache_hits_total",
    "result_cache_misses_total",
    "search_feedback_relevance_sum",
    "search_feedback_relevance_count",
    "search_feedback_relevance_bucket",
}
_PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan",
}  # fmt: skip


Samples = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture
def before(appliance: Appliance) -> tuple[int, float]:
    """The session's shared encoder has counted other tests' texts already."""
    return appliance.encoder.tokens_encoded, appliance.encoder.compute_seconds


@pytest.fixture
def scraped(appliance: Appliance, before: tuple[int, float]) -> Iterator[Samples]:
    """Sample name → [(labels, value)] after one ingest and two identical searches."""
    appliance.ensure_collection(appliance.settings.default_collection)
    with TestClient(create_app(appliance.settings, appliance)) as client:
        assert client.put("/collections/default/documents", json=DOCS).status_code == 200
        for _ in range(2):
            assert client.post("/search", json={"query": "which animal barks"}).status_code == 200
        assert client.get("/collections/missing").status_code == 404
        text = client.get("/metrics").text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    yield samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    matching = [v for found, v in samples[name] if labels.items() <= found.items()]
    assert len(matching) == 1, (name, labels, samples.get(name))
    return matching[0]


def test_embedding_cost_and_index_metrics_after_an_ingest(
    scraped: Samples, before: tuple[int, float], appliance: Appliance
) -> None:
    tokens = _value(scraped, "embedding_tokens_total")
    assert tokens == appliance.encoder.tokens_encoded
    # Six short sentences and one query: each a handful of words plus [CLS] and [SEP].
    assert 7 * 5 <= tokens - before[0] <= 7 * 40
    assert 0 < _value(scraped, "embedding_compute_seconds_total") - before[1] < 60
    prices = appliance.settings.embedding_reference_prices_usd_per_million
    for reference, price in prices.items():
        cost = _value(scraped, "embedding_cost_equivalent_usd_total", reference=reference)
        assert cost == pytest.approx(tokens * price / 1e6)
    # 384 float32 dimensions per vector at least, for each of the six documents.
    assert 6 * 384 * 4 <= _value(scraped, "index_bytes", collection="default") < 10_000_000
    assert _value(scraped, "appliance_ready") == 1


def test_query_batches_are_counted(scraped: Samples, appliance: Appliance) -> None:
    batcher = appliance.query_batcher
    assert batcher is not None
    batches = _value(scraped, "query_embedding_batches_total")
    texts = _value(scraped, "query_embedding_batched_texts_total")
    assert (batches, texts) == (batcher.batches, batcher.batched_texts)
    assert 1 <= batches <= texts  # the fresh query went through the batcher, once


def test_token_count_includes_special_tokens_and_stops_at_the_sequence_length(
    appliance: Appliance,
) -> None:
    encoder = appliance.encoder
    assert encoder.count_tokens(["hello"]) == 3  # [CLS] hello [SEP]
    assert encoder.count_tokens(["word " * 5000]) == encoder.max_seq_length


def _metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # label values, strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    expr = re.sub(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", "", expr)  # numbers: 1e-9
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        rest = expr[match.end() :].lstrip()
        word = match.group()
        if not rest.startswith("(") and word.lower() not in _PROMQL_WORDS:
            names.add(word)
    return names


def _rule_exprs() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_promql_name_extraction() -> None:
    expr = 'histogram_quantile(0.99, sum by (le, x) (rate(a_bucket{t=~"b|c"}[5m]))) > 1e-9 and up'
    assert _metric_names(expr) == {"a_bucket", "up"}


def test_every_metric_the_rules_and_dashboard_use_is_exported(
    scraped: Samples,
) -> None:
    exprs = _rule_exprs() + _dashboard_exprs()
    assert len(_rule_exprs()) >= 4 and len(_dashboard_exprs()) >= 8
    used = set().union(*(_metric_names(expr) for expr in exprs))
    assert {"errors_total", "search_latency_seconds_bucket", "embedding_cache_hits_total"} <= used
    missing = used - set(scraped) - NOT_EXPORTED_HERE - FROM_PARALLEL_WORK
    assert not missing, f"referenced but not on /metrics: {sorted(missing)}"


def test_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
