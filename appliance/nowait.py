"""Calls that must not wait. The API answers a search on its event loop when nothing would
make it wait (no writer at the index, nothing to catch up with, its query embedded ahead): a
search there costs no thread hop and no turn at the GIL behind other threads. Inside
`without_waiting()`, every place a search could wait raises `WouldWait` instead, and the
caller runs the search again on a thread, where waiting is fine.

A search raises it before anything it does is seen (the query log and the recent queries are
written at its end), so running it again repeats nothing.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_NO_WAIT: contextvars.ContextVar[bool] = contextvars.ContextVar("no_wait", default=False)


class WouldWait(Exception):
    """The call would have waited (for a lock, a catch-up with the store, an embedding)."""


@contextmanager
def without_waiting() -> Iterator[None]:
    token = _NO_WAIT.set(True)
    try:
        yield
    finally:
        _NO_WAIT.reset(token)


def waiting_allowed() -> bool:
    return not _NO_WAIT.get()


def refuse_to_wait(reason: str) -> None:
    """Raise WouldWait(reason) inside `without_waiting()`; nothing otherwise."""
    if _NO_WAIT.get():
        raise WouldWait(reason)


@contextmanager
def holding(lock: threading.Lock | threading.RLock, what: str) -> Iterator[None]:
    """`with lock:`, or WouldWait inside `without_waiting()` when another thread holds it."""
    if not lock.acquire(blocking=waiting_allowed()):
        raise WouldWait(f"{what} is held by another thread")
    try:
        yield
    finally:
        lock.release()
