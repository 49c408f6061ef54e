"""uvicorn's httptools protocol, with each response's head sent in one write with its body.

uvicorn writes a response's status line and headers in one `transport.write` and its body in
another. The event loop sends each at once (uvloop and asyncio's alike): two system calls a
response, and two TCP segments that each wake the client. Under
load that first write was ~15 % of the event loop's time (py-spy, 32 connections). Here the
head is held until the body's first write and goes out with it: one system call and one
segment per ordinary response. A response whose body never comes (HEAD, an app that stops
after the head) gets its head when its body ends or its connection is closed, as before.

Served by `appliance serve` (`uvicorn.run(..., http=CoalescingHttpToolsProtocol)`); the
parsing, flow control, keep-alive and pipelining are uvicorn's, unchanged.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class HeadWithBodyTransport:
    """A response cycle's transport: the write made while `hold` is set (the head) is kept
    and sent as the prefix of the next write, or by `flush`/`close`."""

    __slots__ = ("_head", "_transport", "hold")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self.hold = False

    def write(self, data: bytes) -> None:
        if self.hold:
            self.hold = False
            self._head = data
            return
        if self._head is not None:
            data, self._head = self._head + data, None
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        transport = HeadWithBodyTransport(cycle.transport)
        cycle.transport = transport  # type: ignore[assignment]
        send = cycle.send

        async def coalescing_send(message: Any) -> None:
            starts = message["type"] == "http.response.start" and not cycle.response_started
            transport.hold = starts
            try:
                await send(message)
            finally:
                transport.hold = False
                if not starts:
                    transport.flush()  # a body that wrote nothing (HEAD) still gets its head

        # run_asgi hands the app `self.send`, and sends its own 500 through it.
        cycle.send = coalescing_send  # type: ignore[method-assign]
        super()._start_asgi_task(cycle, app)
