"""Random ids for requests and served queries."""

from __future__ import annotations

import os

# Ids drawn per call to the system's random source. `os.urandom` is a system call that lets go
# of the GIL: on an event loop each release can hand the loop's turn to a busy thread (the
# embedding batcher) until that thread's time slice ends. One draw serves this many ids.
_IDS_PER_DRAW = 256
_ID_BYTES = 16
_pool: list[str] = []


def random_hex_id() -> str:
    """32 random hex digits from the system's random source, as `uuid.uuid4().hex` gives
    (nothing reads an id's version bits)."""
    try:
        return _pool.pop()  # atomic under the GIL: two threads never get one id
    except IndexError:
        digits = os.urandom(_ID_BYTES * _IDS_PER_DRAW).hex()
        width = _ID_BYTES * 2
        fresh = [digits[at : at + width] for at in range(0, len(digits), width)]
        # The last one is this call's; the rest wait. Two threads drawing at once both add
        # theirs: more ids, never a shared one.
        _pool.extend(fresh[:-1])
        return fresh[-1]
