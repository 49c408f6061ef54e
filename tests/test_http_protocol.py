"""Each response's head goes out in one write with its body, through a real uvicorn server."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from litestar import Litestar, get, head, post
from litestar.params import JSONBody
from litestar.response import Stream

from appliance.api.http_protocol import CoalescingHttpToolsProtocol, HeadWithBodyTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_the_held_write_goes_out_as_the_prefix_of_the_next() -> None:
    inner = RecordingTransport()
    transport = HeadWithBodyTransport(inner)
    transport.write(b"100 continue")  # not held
    transport.hold = True
    transport.write(b"head|")
    assert inner.writes == [b"100 continue"] and not transport.hold
    transport.write(b"body")
    transport.write(b"more")
    assert inner.writes == [b"100 continue", b"head|body", b"more"]
    transport.flush()  # nothing held: nothing written
    assert len(inner.writes) == 3
    assert transport.get_extra_info("peername") == "info:peername"


def test_a_held_head_is_sent_by_flush_or_close() -> None:
    inner = RecordingTransport()
    transport = HeadWithBodyTransport(inner)
    transport.hold = True
    transport.write(b"head")
    transport.flush()
    assert inner.writes == [b"head"]
    transport.hold = True
    transport.write(b"second head")
    transport.close()
    assert inner.writes == [b"head", b"second head"] and inner.closed


@get("/small", sync_to_thread=False)
def small() -> dict[str, str]:
    return {"answer": "x" * 3000}


@head("/small", sync_to_thread=False)
def small_head() -> None:
    return None


@post("/echo", sync_to_thread=False)
def echo(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    return data


@get("/stream", sync_to_thread=False)
def stream() -> Stream:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one,", b"two,", b"three"):
            await asyncio.sleep(0)
            yield part

    return Stream(parts())


@get("/boom", sync_to_thread=False)
def boom() -> None:
    raise RuntimeError("boom")


class CountingProtocol(CoalescingHttpToolsProtocol):
    """Records every write that reaches the connection's real transport."""

    writes: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        real_write = transport.write

        class Counting:
            def __getattr__(self, name: str) -> Any:
                return getattr(transport, name)

            def write(self, data: bytes) -> None:
                CountingProtocol.writes.append(bytes(data))
                real_write(data)

        super().connection_made(Counting())  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    app = Litestar(route_handlers=[small, small_head, echo, stream, boom], debug=False)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=CountingProtocol, log_level="critical"
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield port
    instance.should_exit = True
    thread.join(timeout=10)


def _requests(port: int, *calls: tuple[str, str, bytes | None]) -> list[tuple[int, bytes]]:
    """The calls on one keep-alive connection: status and body of each."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    answers = []
    for method, path, body in calls:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        answers.append((response.status, response.read()))
    connection.close()
    return answers


def test_each_ordinary_response_is_one_write(server: int) -> None:
    CountingProtocol.writes.clear()
    answers = _requests(
        server, ("GET", "/small", None), ("POST", "/echo", b'{"a": 1}'), ("GET", "/nope", None)
    )
    assert [status for status, _ in answers] == [200, 201, 404]
    assert answers[1][1] == b'{"a":1}'
    assert len(CountingProtocol.writes) == 3
    first = CountingProtocol.writes[0]
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b'x"}')


def test_head_streaming_and_errors_still_answer(server: int) -> None:
    CountingProtocol.writes.clear()
    answers = _requests(
        server, ("HEAD", "/small", None), ("GET", "/stream", None), ("GET", "/boom", None)
    )
    assert answers == [(200, b""), (200, b"one,two,three"), (500, answers[2][1])]
    assert b"Internal Server Error" in answers[2][1]
    # The HEAD answer's head alone; the stream's head with its first part.
    assert CountingProtocol.writes[0].startswith(b"HTTP/1.1 200 OK")
    assert CountingProtocol.writes[0].endswith(b"\r\n\r\n")
    stream_head = next(w for w in CountingProtocol.writes if b"one," in w)
    assert stream_head.startswith(b"HTTP/1.1 200 OK")
