"""The data dir's lock: an exclusive `flock` on DATA_DIR/appliance.lock. `appliance serve` holds
it for its whole life, and a restore or a migration holds it while it replaces files, so none of
them runs under a live server (a server keeps writing to the file a restore moved away).

The lock is re-entrant within one process: a server that upgrades its own data dir on open, or
tests that open several appliances on one directory, take it again without conflict. The
kernel drops it when the holding process ends, however it ends, so a crash never leaves a
stale lock behind. The file itself is never deleted: a new file would be a second lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from appliance.errors import DataDirBusy, InvalidConfig

LOCK_FILE = "appliance.lock"


@dataclass
class _Held:
    fd: int
    count: int


# Per process: one open file description per data dir, counted by its holders.
_held: dict[Path, _Held] = {}
_guard = threading.Lock()


def lock_path(data_dir: Path) -> Path:
    return data_dir / LOCK_FILE


def _key(data_dir: Path) -> Path:
    return data_dir.resolve()


def _busy(error: OSError) -> bool:
    return error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


def _read_holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process"


def _unusable(path: Path, error: OSError) -> InvalidConfig:
    return InvalidConfig(
        f"cannot open the data dir's lock file {path}: {error.strerror}; run as the user that "
        "owns the data dir"
    )


class DataDirLock:
    """The exclusive lock on one data dir, taken by `acquire` (never waits) and given up by
    `release`; also a context manager."""

    def __init__(self, data_dir: Path, purpose: str) -> None:
        self.data_dir = data_dir
        self.purpose = purpose
        self._acquired = False

    def acquire(self) -> DataDirLock:
        """Take the lock, or raise DataDirBusy naming the holder if another process has it."""
        if self._acquired:
            return self
        key = _key(self.data_dir)
        with _guard:
            held = _held.get(key)
            if held is not None:
                held.count += 1
                self._acquired = True
                return self
            path = lock_path(self.data_dir)
            try:
                self.data_dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise _unusable(path, exc) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if not _busy(exc):
                    raise
                raise DataDirBusy(
                    f"the data dir {self.data_dir} is in use by {_read_holder(path)}; "
                    f"stop the server first (only one process may hold a data dir), "
                    f"then run {self.purpose} again"
                ) from exc
            # Who holds it, for the message another process shows when refused.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{self.purpose} (pid {os.getpid()})\n".encode(), 0)
            _held[key] = _Held(fd, 1)
        self._acquired = True
        return self

    def release(self) -> None:
        if not self._acquired:
            return
        self._acquired = False
        key = _key(self.data_dir)
        with _guard:
            held = _held[key]
            held.count -= 1
            if held.count == 0:
                del _held[key]
                os.ftruncate(held.fd, 0)
                os.close(held.fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def hold_data_dir(data_dir: Path, purpose: str) -> DataDirLock:
    """Take the data dir's lock for `purpose` (e.g. "`appliance restore`"); raises DataDirBusy
    when another process holds it."""
    return DataDirLock(data_dir, purpose).acquire()


def data_dir_holder(data_dir: Path) -> str | None:
    """Who holds the data dir's lock ("`appliance serve` (pid 123)"), or None when it is free
    or held by this process. Only a snapshot: use `hold_data_dir` to act on the answer."""
    with _guard:
        if _key(data_dir) in _held:
            return None
    path = lock_path(data_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unusable(path, exc) from exc
    try:
        # A shared probe: two probes never refuse each other.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if not _busy(exc):
            raise
        return _read_holder(path)
    finally:
        os.close(fd)
    return None


def data_dir_held(data_dir: Path) -> bool:
    """Whether another process (a server, a restore, a migration) holds the data dir."""
    return data_dir_holder(data_dir) is not None
