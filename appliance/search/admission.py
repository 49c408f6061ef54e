"""A bound on the searches in flight: past it a search is refused at once (`Overloaded`,
answered 503 with Retry-After) instead of waiting in a queue that grows without end, so the
latency of the searches admitted stays bounded when more clients arrive than the box serves.
"""

from __future__ import annotations

import threading
from types import TracebackType

from appliance.errors import Overloaded


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.in_flight = 0
        self.refused = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Admission:
        with self._lock:
            if self.in_flight >= self.limit:
                self.refused += 1
                raise Overloaded(
                    f"{self.in_flight} searches are already in flight, the most this server "
                    f"admits (max_pending_queries); retry after a second"
                )
            self.in_flight += 1
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        with self._lock:
            self.in_flight -= 1
