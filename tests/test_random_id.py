"""Random ids for requests and served queries: drawn in blocks, never handed out twice."""

from __future__ import annotations

import re
import threading

from appliance import random_id
from appliance.random_id import random_hex_id


def test_ids_are_32_hex_digits_and_distinct_across_draws() -> None:
    ids = [random_hex_id() for _ in range(3 * random_id._IDS_PER_DRAW + 7)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_threads_drawing_at_once_never_share_an_id() -> None:
    random_id._pool.clear()  # every thread starts on an empty pool: concurrent draws
    start = threading.Barrier(8)
    drawn: list[list[str]] = [[] for _ in range(8)]

    def draw(into: list[str]) -> None:
        start.wait()
        into.extend(random_hex_id() for _ in range(2_000))

    threads = [threading.Thread(target=draw, args=(ids,)) for ids in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for ids in drawn for i in ids]
    assert len(every) == 16_000 and len(set(every)) == len(every)
