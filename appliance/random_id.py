"""Random ids for requests and served queries."""

from __future__ import annotations

import os


def random_hex_id() -> str:
    """32 random hex digits, as `uuid.uuid4().hex` gives, without building a UUID (a few µs
    less on every request; nothing reads an id's version bits)."""
    return os.urandom(16).hex()
