"""The server over real loopback sockets: the tutorial's app, keep-alive,
pipelining, odd write patterns, many clients, and embedding."""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

import pytest
import trio
import trio.testing

from tests.helpers import (
    json_request,
    parse_all,
    raw_message,
    read_messages,
    read_until_eof,
    result_of,
    start_server,
)
from trio_search import (
    Deferred,
    Message,
    Reply,
    SearchApp,
    SearchServer,
    ServerSettings,
    json_response,
)

RABBIT = "Follow the white rabbit. \U0001f430"

#: What a client reads from a response: content type, encoding, and the
#: decoded JSON (text/json) or the raw content (anything else).
Answer = tuple[str, str, Any]


def text(result: Any, **more: Any) -> Answer:
    return ("text/json", "utf-8", {"result": result, **more})


def binary(content: bytes) -> Answer:
    return ("binary/custom-server-binary-type", "binary", content)


def answers(data: bytes) -> list[Answer]:
    """Every response in ``data``, as a client reads it."""
    return [
        (m.content_type, m.content_encoding, result_of(m) if m.is_json else m.content)
        for m in parse_all(data)
    ]


#: PROTOCOL.md's table: request bytes, and the answer expected.
TUTORIAL_ROWS = {
    "hit morpheus": (json_request({"action": "search", "value": "morpheus"}), text(RABBIT)),
    "hit ring": (
        json_request({"action": "search", "value": "ring"}),
        text("In the caves beneath the Misty Mountains. \U0001f48d"),
    ),
    "hit dog": (
        json_request({"action": "search", "value": "\U0001f436"}),
        text("\U0001f43e Playing ball! \U0001f3d0"),
    ),
    "miss": (json_request({"action": "search", "value": "neo"}), text("No match for 'neo'.")),
    "invalid action": (
        json_request({"action": "dance", "value": "morpheus"}),
        text("Error: invalid action 'dance'.", error="invalid_action"),
    ),
    "binary echo": (
        raw_message(b"binaryhello world", "binary/custom-client-binary-type", "binary"),
        binary(b"First 10 bytes of request: binaryhell"),
    ),
    "other content type": (
        raw_message("café au lait".encode(), "text/plain", "utf-8"),
        binary("First 10 bytes of request: café au l".encode()),
    ),
}


def search(value: str) -> bytes:
    return json_request({"action": "search", "value": value})


async def exchange(address: tuple[str, int], request: bytes) -> bytes:
    """Send ``request`` alone on a new connection, half-close, return all the
    bytes the server sends back before closing."""
    async with await trio.open_tcp_stream(*address) as stream:
        await stream.send_all(request)
        await stream.send_eof()
        return await read_until_eof(stream)


@pytest.mark.parametrize("row", TUTORIAL_ROWS.values(), ids=TUTORIAL_ROWS.keys())
async def test_protocol_md_rows(nursery: trio.Nursery, row: tuple[bytes, Answer]) -> None:
    request, expected = row
    _, address = await start_server(nursery)
    with trio.fail_after(5):
        # Half-closing after the request also shows the server answers it and
        # then closes its side, as the tutorial's client expects.
        assert answers(await exchange(address, request)) == [expected]


async def test_response_header_is_what_the_tutorial_client_reads(nursery: trio.Nursery) -> None:
    _, address = await start_server(nursery)
    with trio.fail_after(5):
        async with await trio.open_tcp_stream(*address) as stream:
            await stream.send_all(search("morpheus"))
            (response,) = await read_messages(stream, 1)
    assert response.content_type == "text/json"
    assert response.content_encoding == "utf-8"
    assert response.byteorder == sys.byteorder


async def test_utf16_request(nursery: trio.Nursery) -> None:
    _, address = await start_server(nursery)
    request = json_request({"action": "search", "value": "\U0001f436"}, encoding="utf-16")
    with trio.fail_after(5):
        response = await exchange(address, request)
    # Answered in UTF-8, whatever the request's encoding (as the tutorial does).
    assert answers(response) == [text("\U0001f43e Playing ball! \U0001f3d0")]


async def test_custom_index(nursery: trio.Nursery) -> None:
    server = SearchServer(ServerSettings(port=0), index={"neo": "The One. \U0001f576", "x": ""})
    _, address = await start_server(nursery, server)
    with trio.fail_after(5):
        assert answers(await exchange(address, search("neo"))) == [text("The One. \U0001f576")]
        assert answers(await exchange(address, search("x"))) == [text("")]
        # The built-in data is replaced, not extended.
        assert answers(await exchange(address, search("morpheus"))) == [
            text("No match for 'morpheus'.")
        ]


async def test_keep_alive_many_requests_one_connection(nursery: trio.Nursery) -> None:
    server, address = await start_server(nursery)
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(*address) as stream:
            for i in range(200):
                await stream.send_all(search(f"key{i}"))
                (response,) = await read_messages(stream, 1)
                assert result_of(response) == {"result": f"No match for 'key{i}'."}
    assert server.stats.connections_total == 1
    assert server.stats.requests == 200


async def test_pipelined_requests_answered_in_order(nursery: trio.Nursery) -> None:
    _, address = await start_server(nursery)
    rows = list(TUTORIAL_ROWS.values())
    requests = [search(f"key{i}") if i % 2 else rows[i % len(rows)][0] for i in range(300)]
    with trio.fail_after(10):
        # The bytes answering each request asked alone...
        alone = {request: await exchange(address, request) for request in set(requests)}
        # ...are, byte for byte and in order, the answer to all of them sent
        # in one write.
        pipelined = await exchange(address, b"".join(requests))
    assert pipelined == b"".join(alone[request] for request in requests)
    assert answers(pipelined)[1] == text("No match for 'key1'.")


async def test_requests_split_into_one_byte_writes(nursery: trio.Nursery) -> None:
    server, address = await start_server(nursery)
    requests = search("morpheus") + search("neo") + TUTORIAL_ROWS["binary echo"][0]
    expected = [text(RABBIT), text("No match for 'neo'."), TUTORIAL_ROWS["binary echo"][1]]
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(*address) as stream:
            for i in range(len(requests)):
                await stream.send_all(requests[i : i + 1])
                # Let the server read this byte alone before the next one.
                await trio.testing.wait_all_tasks_blocked()
            await stream.send_eof()
            assert answers(await read_until_eof(stream)) == expected
    assert server.stats.requests == 3


async def test_half_closed_client_still_gets_every_answer(nursery: trio.Nursery) -> None:
    _, address = await start_server(nursery)
    with trio.fail_after(5):
        async with await trio.open_tcp_stream(*address) as stream:
            await stream.send_all(search("ring") + search("morpheus"))
            await stream.send_eof()
            responses = await read_messages(stream, 2)
            assert await read_until_eof(stream) == b""
    assert [result_of(r)["result"] for r in responses] == [
        "In the caves beneath the Misty Mountains. \U0001f48d",
        RABBIT,
    ]


async def test_1000_simultaneous_clients(nursery: trio.Nursery) -> None:
    server, address = await start_server(nursery)
    clients = 1000
    answered = 0
    all_answered = trio.Event()
    results: dict[int, Any] = {}

    async def client(i: int) -> None:
        nonlocal answered
        value = "morpheus" if i % 10 == 0 else f"key{i}"
        async with await trio.open_tcp_stream(*address) as stream:
            await stream.send_all(search(value))
            (response,) = await read_messages(stream, 1)
            results[i] = result_of(response)["result"]
            answered += 1
            if answered == clients:
                all_answered.set()
            # Keep the connection open until every client has its answer, so
            # all 1000 are being served at the same time.
            await all_answered.wait()

    async def check_all_open() -> None:
        await all_answered.wait()
        assert server.stats.connections_open == clients

    with trio.fail_after(20):
        async with trio.open_nursery() as clients_nursery:
            clients_nursery.start_soon(check_all_open)
            for i in range(clients):
                clients_nursery.start_soon(client, i)
    assert results == {
        i: RABBIT if i % 10 == 0 else f"No match for 'key{i}'." for i in range(clients)
    }
    assert server.stats.connections_total == clients


async def test_handle_stream_serves_a_memory_stream() -> None:
    server = SearchServer()
    client_stream, server_stream = trio.testing.memory_stream_pair()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle_stream, server_stream, "memory")
            await client_stream.send_all(search("morpheus") + search("neo"))
            responses = await read_messages(client_stream, 2)
            # Closing our end ends the handler, so the nursery can exit.
            await client_stream.aclose()
    assert [result_of(r)["result"] for r in responses] == [RABBIT, "No match for 'neo'."]
    assert server.stats.connections_open == 0
    assert server.stats.requests == 2


async def test_large_stats_request_is_answered_and_the_connection_stays_open(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    # Content above THREAD_DECODE_THRESHOLD (64 KiB) is decoded in a worker
    # thread; a stats request that large used to be logged as internal_error
    # and its connection closed without an answer.
    big_stats = json_request({"action": "stats", "pad": "x" * 70_000})
    assert len(big_stats) > 70_000
    server, address = await start_server(nursery)
    with caplog.at_level("WARNING", logger="trio_search"), trio.fail_after(10):
        async with await trio.open_tcp_stream(*address) as stream:
            await stream.send_all(big_stats)
            (response,) = await read_messages(stream, 1)
            stats = result_of(response)["result"]
            assert stats["connections_open"] == 1
            assert stats["index_documents"] == 3
            # The same connection serves the next requests, large and small.
            await stream.send_all(search("morpheus") + big_stats)
            first, second = await read_messages(stream, 2)
            assert result_of(first) == {"result": RABBIT}
            assert result_of(second)["result"]["requests"] == 2
    assert [record.getMessage() for record in caplog.records] == []
    assert server.stats.requests == 3
    assert not server.stats.errors


class CostlyInlineApp:
    """``costly`` answers on the event loop after 1 ms of CPU (a query on a
    small index costs about that), and the first one makes ``other`` send
    a search while the pipelined batch is being answered; the rest is search.
    Records which connection's request it answered, in order."""

    def __init__(self, other: socket.socket) -> None:
        self.other = other
        self.answered: list[str] = []
        self.search = SearchApp()

    def respond(self, request: Message) -> Reply | Deferred:
        body = json.loads(request.content)
        if body.get("action") != "costly":
            self.answered.append("other")
            return self.search.respond(request)
        if not self.answered:
            self.other.send(json_request({"action": "search", "value": "ring"}))
        self.answered.append("pipelined")
        until = time.perf_counter() + 0.001
        while time.perf_counter() < until:
            pass
        return Reply(json_response({"result": body["value"]}))


async def test_a_long_pipelined_batch_lets_other_connections_take_turns(
    nursery: trio.Nursery,
) -> None:
    """A client pipelining many requests answered on the event loop does not
    hold the other connections until its whole batch is answered (100 such
    requests held them for 100 ms; a 64 KiB read of queries, 0.5 s)."""
    other = socket.socket()
    app = CostlyInlineApp(other)
    server = SearchServer(ServerSettings(port=0), app=app)
    _, (host, port) = await start_server(nursery, server)
    other.connect((host, port))  # completed by the kernel's backlog
    other_stream = trio.SocketStream(trio.socket.from_stdlib_socket(other))
    count = 100
    with trio.fail_after(30):
        async with await trio.open_tcp_stream(host, port) as client:
            await client.send_all(
                b"".join(json_request({"action": "costly", "value": n}) for n in range(count))
            )
            answers = await read_messages(client, count)
        (answer,) = await read_messages(other_stream, 1)
        await other_stream.aclose()
    assert [result_of(message)["result"] for message in answers] == list(range(count))
    assert result_of(answer) == {"result": "In the caves beneath the Misty Mountains. \U0001f48d"}
    # Answered in the middle of the batch, not after it.
    assert app.answered.index("other") < count // 2
