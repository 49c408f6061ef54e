"""The web console in headless Chromium against a real server: sign in with a key, search,
filter, send feedback, watch a job finish, and see only the controls the key's scope allows."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Server, screenshot

pytestmark = pytest.mark.e2e


def sign_in(page: Any, server: Server, scope: str, at: str = "/") -> None:
    page.goto(at)
    expect(page.locator("#login")).to_be_visible()
    page.fill("#api-key", server.keys[scope])
    page.click("#login-form button[type=submit]")
    expect(page.locator("#scope-badge")).to_have_text(f"{scope} key")
    expect(page.locator("#login")).to_be_hidden()


def run_search(page: Any, query: str, filter_json: str = "") -> None:
    page.fill("#query", query)
    page.fill("#filter", filter_json)
    with page.expect_response(re.compile(r"/collections/default/search$")):
        page.click("#search-button")


def result_ids(page: Any) -> list[str]:
    ids: list[str] = page.locator("#results .result").evaluate_all(
        "items => items.map(item => item.dataset.docId)"
    )
    return ids


def test_the_console_asks_for_a_key_and_refuses_a_wrong_one(page: Any, server: Server) -> None:
    page.goto("/")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#page-search")).to_be_hidden()
    page.fill("#api-key", "lsa_not_a_real_key")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("unknown or revoked")
    screenshot(page, "login")
    page.fill("#api-key", server.keys["read"])
    page.click("#login-form button[type=submit]")
    expect(page.locator("#scope-badge")).to_have_text("read key")
    # The key lives in this tab's session storage: a reload stays signed in.
    assert page.evaluate("sessionStorage.getItem('appliance.key')") == server.keys["read"]
    page.reload()
    expect(page.locator("#scope-badge")).to_have_text("read key")
    expect(page.locator("#page-search")).to_be_visible()
    page.click("#sign-out")
    expect(page.locator("#login")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('appliance.key')") is None


def test_a_query_finds_the_right_document_first_with_terms_and_timings(
    page: Any, server: Server
) -> None:
    sign_in(page, server, "read")
    expect(page.locator("#query")).to_have_attribute("type", "search")
    expect(page.locator("#collection option[value=default]")).to_have_count(1)
    run_search(page, "which animal barks at the mailman")
    first = page.locator("#results .result").first
    expect(first).to_have_attribute("data-doc-id", "dog")
    marked = first.locator(".passage mark").all_text_contents()
    assert {"barks", "mailman"} <= {m.lower() for m in marked}, marked
    expect(first.locator(".score")).to_have_text(re.compile(r"^\d\.\d{4}$"))
    expect(first.locator(".metadata")).to_contain_text("mammal")
    expect(page.locator("#timings tr")).not_to_have_count(0)
    expect(page.locator("#search-summary")).to_contain_text("results in")
    screenshot(page, "search")


def test_document_text_is_shown_as_text_never_as_markup(page: Any, server: Server) -> None:
    sign_in(page, server, "read")
    run_search(page, "a note about markup")
    first = page.locator("#results .result").first
    expect(first).to_have_attribute("data-doc-id", "markup")
    expect(first.locator(".passage")).to_contain_text("<img src=/x onerror=alert(1)>")
    expect(page.locator("#results img, #results b")).to_have_count(0)


def test_a_filter_narrows_the_results(page: Any, server: Server) -> None:
    sign_in(page, server, "read")
    run_search(page, "an animal that hunts", '{"kind": "bird"}')
    ids = result_ids(page)
    assert ids and set(ids) <= {"eagle", "penguin", "owl"}, ids
    run_search(page, "hunting prey above the mountains", '{"kind": "bird", "legs": {"$gte": 2}}')
    expect(page.locator("#results .result").first).to_have_attribute("data-doc-id", "eagle")
    # A filter that is not JSON is refused in the page, with no request sent.
    page.fill("#filter", "{kind: bird")
    page.click("#search-button")
    expect(page.locator("#search-error")).to_contain_text("not valid JSON")
    # One the server refuses shows the server's reason.
    run_search(page, "an animal", '{"legs": {"$near": 3}}')
    expect(page.locator("#search-error")).not_to_be_empty()


def test_feedback_on_a_result_is_recorded_by_the_server(page: Any, server: Server) -> None:
    sign_in(page, server, "read")
    run_search(page, "a spider spins a web")
    first = page.locator("#results .result").first
    expect(first).to_have_attribute("data-doc-id", "spider")
    query_id = page.locator("#search-summary").get_attribute("data-query-id")
    assert query_id
    with page.expect_response(re.compile(r"/collections/default/feedback$")) as answer:
        first.locator("button[data-relevance='3']").click()
    assert answer.value.status == 201
    expect(first.locator(".feedback-status")).to_have_text("recorded (3/3)")
    expect(first.locator("button.chosen")).to_have_attribute("data-relevance", "3")
    assert (query_id, "spider", 3) in server.feedback()


def test_a_background_job_is_followed_until_it_is_done(page: Any, server: Server) -> None:
    sign_in(page, server, "write", at="/#jobs")
    expect(page.locator("#page-jobs")).to_be_visible()
    documents = [
        {"id": f"note-{i}", "text": f"Field note {i}: the weather on day {i} was mild."}
        for i in range(40)
    ]
    job = server.request(
        "/collections/default/documents?async=true", {"documents": documents}, "PUT", "write"
    )
    row = page.locator(f"#jobs tr[data-job-id='{job['id']}']")
    expect(row).to_have_attribute("data-state", "succeeded", timeout=60_000)
    expect(row.locator(".progress-text")).to_have_text("40 / 40")
    # And one started from the page itself.
    page.fill(
        "#upload-documents",
        '{"id": "moth", "text": "A moth flutters around the lamp.", "metadata": {"kind": "bug"}}\n'
        '{"id": "bee", "text": "A bee collects nectar from flowers."}',
    )
    page.click("#upload-form button[type=submit]")
    newest = page.locator("#jobs tbody tr").first
    expect(newest.locator(".progress-text")).to_have_text("2 / 2")
    expect(newest).to_have_attribute("data-state", "succeeded", timeout=60_000)
    screenshot(page, "jobs")
    assert server.request("/collections/default/documents/moth", scope="read")["id"] == "moth"


def test_a_read_key_sees_no_admin_controls_and_the_server_refuses_it_anyway(
    page: Any, server: Server
) -> None:
    sign_in(page, server, "read", at="/#collections")
    card = page.locator("article.collection[data-collection=default]")
    expect(card).to_be_visible()
    expect(card.locator(".stats")).to_contain_text("all-MiniLM-L6-v2")
    expect(page.locator(".delete-collection")).to_have_count(0)
    expect(page.locator("#create-collection")).to_be_hidden()
    page.goto("/#jobs")
    expect(page.locator("#page-jobs")).to_be_visible()
    expect(page.locator("#upload-form")).to_be_hidden()
    status = page.evaluate(
        """key => fetch('/collections/default', {method: 'DELETE',
            headers: {Authorization: 'Bearer ' + key}}).then(r => r.status)""",
        server.keys["read"],
    )
    assert status == 403


def test_an_admin_creates_and_deletes_a_collection(page: Any, server: Server) -> None:
    sign_in(page, server, "admin", at="/#collections")
    expect(
        page.locator("article.collection[data-collection=default] .delete-collection")
    ).to_be_visible()
    page.fill("#new-name", "scratch")
    page.click("#create-collection button[type=submit]")
    card = page.locator("article.collection[data-collection=scratch]")
    expect(card).to_be_visible()
    expect(card.locator(".versions tbody tr")).to_have_count(1)
    expect(page.locator("article.collection[data-collection=default] .versions")).to_contain_text(
        "active"
    )
    screenshot(page, "collections")
    card.locator(".delete-collection").click()
    expect(card.locator(".delete-collection")).to_contain_text("Delete scratch")
    card.locator(".delete-collection").click()
    expect(card).to_have_count(0)
    names = [c["name"] for c in server.request("/collections", scope="read")["collections"]]
    assert "scratch" not in names


def test_the_status_page_shows_readiness_caches_latency_and_cost(page: Any, server: Server) -> None:
    sign_in(page, server, "read", at="/?poll_ms=300#status")
    expect(page.locator("#ready-state")).to_have_text("ready")
    expect(page.locator("#ready-details")).to_contain_text("all-MiniLM-L6-v2")
    for round_ in range(12):
        for query in ("a bird of prey", "a fish in a river", f"day {round_} weather"):
            server.request("/collections/default/search", {"query": query}, "POST", "read")
        time.sleep(0.15)
    expect(page.locator("#latency-chart polyline[data-series=p99]")).to_have_count(1)
    points = page.locator("#latency-chart polyline[data-series=p50]").get_attribute("points")
    assert points and len(points.split()) >= 2, points
    expect(page.locator("#latency-now")).to_contain_text("p99")
    expect(page.locator("#cache-details")).to_contain_text("%")
    expect(page.locator("#embedding-details")).to_contain_text("Tokens embedded")
    expect(page.locator("#embedding-details")).to_contain_text("openai-text-embedding-3-small")
    expect(page.locator("#embedding-details")).to_contain_text("$")
    screenshot(page, "status")
