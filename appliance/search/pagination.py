"""Paging through one ranking: `offset` results skipped, `limit` shown.

A page is cut from the ranking of its first `offset + limit` results, retrieved exactly as a
single request for that many would be (the same candidate counts, the same fusion inputs), so
page 2 of size 10 is items 10..19 of one request for 20. On an approximate index (HNSW) this
holds while offset + limit stays within the search's ef, which the backends raise to k anyway.
"""

from __future__ import annotations

from appliance.errors import InvalidRequest

# The deepest result a search pages to (offset + limit), as Elasticsearch's
# max_result_window bounds from + size: deeper pages cost a ranking that large each time.
MAX_RESULT_WINDOW = 1_000


def result_window(offset: int, limit: int) -> int:
    """How many results of the ranking a page needs; InvalidRequest past the bound."""
    if offset < 0:
        raise InvalidRequest(f"offset is {offset}; it must be 0 or more")
    if limit < 1:
        raise InvalidRequest(f"limit is {limit}; it must be 1 or more")
    window = offset + limit
    if window > MAX_RESULT_WINDOW:
        raise InvalidRequest(
            f"offset + limit is {window}; a search pages through at most the first "
            f"{MAX_RESULT_WINDOW} results: lower offset or limit, or narrow the query with a "
            "filter"
        )
    return window
