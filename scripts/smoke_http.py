"""HTTP smoke test of a served appliance, standard library only (runs in any Python 3.11).

    python scripts/smoke_http.py http://127.0.0.1:8000 write [--key KEY]
    python scripts/smoke_http.py http://127.0.0.1:8000 check [--key KEY]

Both wait for `/ready` and print how long that took. `write` creates a collection, upserts
three documents and searches them; `check` (after a restart, say) finds the same documents
and the same top hit without writing anything. Exit status 1 on the first failed check.
Used by `make bundle-test` and `make image-test`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

COLLECTION = "smoke"
DOCUMENTS = [
    {
        "id": "gzip",
        "text": "gzip.compress(data) compresses bytes with the DEFLATE algorithm.",
        "metadata": {"module": "gzip"},
    },
    {
        "id": "json",
        "text": "json.loads parses a JSON document from a string into Python objects.",
        "metadata": {"module": "json"},
    },
    {
        "id": "sqlite3",
        "text": "sqlite3.connect opens a connection to an SQLite database file.",
        "metadata": {"module": "sqlite3"},
    },
]
QUERY, EXPECTED_TOP = "how do I read JSON text", "json"


class SmokeFailure(Exception):
    pass


def request(
    base: str, method: str, path: str, body: Any = None, key: str | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} if data is not None else {}
    if key:
        headers["authorization"] = f"Bearer {key}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def expect(status: int, wanted: int, what: str, payload: Any) -> None:
    if status != wanted:
        raise SmokeFailure(f"{what}: HTTP {status}, expected {wanted}: {payload}")


def wait_ready(base: str, timeout: float) -> float:
    start = time.monotonic()
    last: object = "no answer"
    while time.monotonic() - start < timeout:
        try:
            status, payload = request(base, "GET", "/ready")
            if status == 200:
                return time.monotonic() - start
            last = payload
        except OSError as exc:  # not listening yet
            last = exc
        time.sleep(0.25)
    raise SmokeFailure(f"/ready not 200 within {timeout:.0f} s: {last}")


def search_top(base: str, key: str | None) -> str:
    status, payload = request(
        base, "POST", f"/collections/{COLLECTION}/search", {"query": QUERY, "limit": 3}, key
    )
    expect(status, 200, "search", payload)
    hits = payload["results"]
    if not hits or hits[0]["id"] != EXPECTED_TOP:
        raise SmokeFailure(f"search {QUERY!r}: top hit should be {EXPECTED_TOP!r}: {hits}")
    return str(hits[0]["id"])


def check_documents(base: str, key: str | None) -> None:
    for doc in DOCUMENTS:
        status, payload = request(
            base, "GET", f"/collections/{COLLECTION}/documents/{doc['id']}", key=key
        )
        expect(status, 200, f"GET document {doc['id']}", payload)
        if payload["text"] != doc["text"] or payload["metadata"] != doc["metadata"]:
            raise SmokeFailure(f"document {doc['id']} came back changed: {payload}")


def write(base: str, key: str | None) -> None:
    status, payload = request(base, "POST", "/collections", {"name": COLLECTION}, key)
    expect(status, 201, "create collection", payload)
    status, payload = request(
        base, "PUT", f"/collections/{COLLECTION}/documents", {"documents": DOCUMENTS}, key
    )
    expect(status, 200, "upsert", payload)
    if payload["upserted"] != len(DOCUMENTS):
        raise SmokeFailure(f"upsert: {payload}")
    check_documents(base, key)
    top = search_top(base, key)
    print(f"smoke: created {COLLECTION!r}, upserted {len(DOCUMENTS)}, top hit {top!r}")


def check(base: str, key: str | None) -> None:
    check_documents(base, key)
    print(f"smoke: {len(DOCUMENTS)} documents still there, top hit {search_top(base, key)!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("phase", choices=["write", "check"])
    parser.add_argument("--key", default=None, help="an API key, sent as a Bearer token")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--expect-auth", action="store_true", help="a request without key is 401")
    args = parser.parse_args()
    base = args.base_url.rstrip("/")
    try:
        seconds = wait_ready(base, args.ready_timeout)
        print(f"smoke: /ready after {seconds:.1f} s")
        if args.expect_auth:
            status, payload = request(base, "GET", "/collections")
            expect(status, 401, "GET /collections without a key", payload)
        (write if args.phase == "write" else check)(base, args.key)
    except SmokeFailure as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
