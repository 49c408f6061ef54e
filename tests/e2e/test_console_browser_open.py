"""The console on an appliance with no key at all: no sign-in, and every control, as the
server allows every request there."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


def test_an_open_appliance_needs_no_sign_in_and_shows_every_control(
    open_page: Any, open_server: Server
) -> None:
    page = open_page
    page.goto("/")
    expect(page.locator("#scope-badge")).to_have_text("open (no keys)")
    expect(page.locator("#login")).to_be_hidden()
    expect(page.locator("#sign-out")).to_be_hidden()
    page.fill("#query", "salmon swim upstream")
    with page.expect_response(re.compile(r"/collections/default/search$")) as answer:
        page.click("#search-button")
    # No key was sent: there is none to send.
    assert answer.value.request.header_value("authorization") is None
    expect(page.locator("#results .result").first).to_have_attribute("data-doc-id", "salmon")
    page.goto("/#collections")
    expect(page.locator("#create-collection")).to_be_visible()
    expect(page.locator(".delete-collection")).to_have_count(1)
    page.goto("/#jobs")
    expect(page.locator("#upload-form")).to_be_visible()
