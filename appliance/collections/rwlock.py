"""A readers-writer lock: searches share an index, a write has it to itself.

Why not a library: the standard library has none, and the PyPI ones (readerwriterlock,
fasteners) either let a stream of readers starve a writer or bring more than these thirty lines
do; an appliance that installs offline keeps its dependency list short.

Writers are preferred: once a writer waits, new readers queue behind it, so a steady stream of
searches cannot keep a write (and the freshness of every later search) waiting forever. A
thread that already holds the lock may take it again (read within read, read or write within
write), so a method that holds it may call another that takes it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from appliance.nowait import refuse_to_wait


class ReadWriteLock:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None  # the thread id of the writer inside
        self._writer_depth = 0
        self._writers_waiting = 0
        self._local = threading.local()

    @property
    def readers(self) -> int:
        """Threads inside on the read side now (for tests and metrics)."""
        return self._readers

    def _read_depth(self) -> int:
        return int(getattr(self._local, "depth", 0))

    @contextmanager
    def read(self) -> Iterator[None]:
        me = threading.get_ident()
        depth = self._read_depth()
        if depth or self._writer == me:
            # Re-entry: waiting here behind a queued writer would deadlock with ourselves.
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth = depth
            return
        with self._cond:
            if self._writer is not None or self._writers_waiting:
                refuse_to_wait("a writer holds the index or waits for it")
            while self._writer is not None or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._writer == me:
            self._writer_depth += 1
            try:
                yield
            finally:
                self._writer_depth -= 1
            return
        if self._read_depth():
            raise RuntimeError("a reader cannot take the write side of the lock it holds")
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer is not None or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer, self._writer_depth = me, 1
        try:
            yield
        finally:
            with self._cond:
                self._writer, self._writer_depth = None, 0
                self._cond.notify_all()
