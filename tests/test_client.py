"""The client API against the real server, and against servers that misbehave
or close after each reply (as the tutorial's app-server.py does)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from tests.helpers import (
    TUTORIAL_DATA,
    json_response,
    raw_message,
    read_messages,
    result_of,
    serve_one_request_then_close,
    start_fake_server,
    start_server,
)
from trio_search import (
    ErrorResponse,
    Message,
    SearchApp,
    SearchClient,
    SearchServer,
    ServerResponseError,
    encode_message,
    open_client,
)

RABBIT = TUTORIAL_DATA["morpheus"]


def search_request(value: str) -> Message:
    return Message(json.dumps({"action": "search", "value": value}).encode())


async def test_search_hits_and_miss(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            answers = {key: await client.search(key) for key in [*TUTORIAL_DATA, "neo"]}
    assert answers == {**TUTORIAL_DATA, "neo": "No match for 'neo'."}


async def test_many_requests_over_one_connection(nursery: trio.Nursery) -> None:
    server, (host, port) = await start_server(nursery)
    with trio.fail_after(10):
        async with open_client(host, port) as client:
            for i in range(300):
                assert await client.search(f"key{i}") == f"No match for 'key{i}'."
    assert server.stats.connections_total == 1


async def test_request_many_is_answered_in_order(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery)
    keys = [f"key{i}" if i % 3 else "morpheus" for i in range(100)]
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            responses = await client.request_many(search_request(k) for k in keys)
    assert [result_of(r)["result"] for r in responses] == [
        RABBIT if k == "morpheus" else f"No match for '{k}'." for k in keys
    ]


async def test_request_many_sends_before_reading(nursery: trio.Nursery) -> None:
    """A server that answers only once it holds the whole batch would wait
    forever for a client that waits for each answer before the next send."""
    count = 20

    async def answer_whole_batches(stream: trio.SocketStream) -> None:
        async with stream:
            requests = await read_messages(stream, count)
            app = SearchApp()
            await stream.send_all(
                b"".join(encode_message(app.respond(r).message) for r in requests)
            )

    host, port = await start_fake_server(nursery, answer_whole_batches)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            responses = await client.request_many(search_request("ring") for _ in range(count))
    assert len(responses) == count


async def test_request_binary(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            response = await client.request_binary(b"\x00\x01binary payload")
    assert response.content == b"First 10 bytes of request: \x00\x01binary p"
    assert response.content_type == "binary/custom-server-binary-type"
    assert response.content_encoding == "binary"


async def test_request_json_stats(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            for key in TUTORIAL_DATA:
                await client.search(key)
            answer = await client.request_json({"action": "stats"}, encoding="utf-16")
    stats = answer["result"]
    assert stats["requests"] == 3
    assert stats["connections_open"] == 1


async def test_error_answer_raises_error_response(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery, max_content_length=64)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            with pytest.raises(ErrorResponse) as info:
                await client.search("x" * 100)
    assert info.value.code == "content_too_long"
    assert info.value.message.startswith("Error: ")


async def test_client_over_memory_streams() -> None:
    server = SearchServer()
    client_stream, server_stream = trio.testing.memory_stream_pair()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle_stream, server_stream)
            client = SearchClient(client_stream)
            assert await client.search("morpheus") == RABBIT
            await client.aclose()


def answer_with(data: bytes) -> Callable[[trio.SocketStream], Awaitable[None]]:
    """A fake server handler: read one request, send ``data``, close."""

    async def handler(stream: trio.SocketStream) -> None:
        async with stream:
            await read_messages(stream, 1)
            await stream.send_all(data)

    return handler


BAD_SERVERS = {
    "HTTP": (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "header_too_long"),
    "closes without answering": (b"", "no_response"),
    "closes mid-answer": (json_response({"result": RABBIT})[:-5], "truncated"),
    "header not JSON": (b"\x00\x05hello", "bad_header"),
    "content not JSON": (raw_message(b"rabbit"), "invalid_json"),
    "binary answer to a search": (
        raw_message(b"rabbit", "binary/x", "binary"),
        "unexpected_content_type",
    ),
    "JSON without result": (json_response({"answer": RABBIT}), "bad_result"),
    "result not a string": (json_response({"result": 42}), "bad_result"),
}


@pytest.mark.parametrize("case", BAD_SERVERS.values(), ids=BAD_SERVERS.keys())
async def test_bad_server_raises_server_response_error(
    nursery: trio.Nursery, case: tuple[bytes, str | None]
) -> None:
    data, code = case
    host, port = await start_fake_server(nursery, answer_with(data))
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            with pytest.raises(ServerResponseError) as info:
                await client.search("morpheus")
    assert info.value.code == code


async def test_server_that_closes_after_each_reply(nursery: trio.Nursery) -> None:
    host, port = await start_fake_server(nursery, serve_one_request_then_close)
    answers = {}
    with trio.fail_after(5):
        for key in [*TUTORIAL_DATA, "neo"]:
            async with open_client(host, port) as client:
                answers[key] = await client.search(key)
        async with open_client(host, port) as client:
            binary = await client.request_binary(b"binaryhello world")
        async with open_client(host, port) as client:
            await client.search("ring")
            # The server has closed: a second request fails cleanly, no hang.
            with pytest.raises((ServerResponseError, trio.BrokenResourceError)):
                await client.search("ring")
    assert answers == {**TUTORIAL_DATA, "neo": "No match for 'neo'."}
    assert binary.content == b"First 10 bytes of request: binaryhell"


async def test_unreachable_server_raises_oserror(nursery: trio.Nursery) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    with trio.fail_after(5), pytest.raises(OSError):
        async with open_client("127.0.0.1", port):
            pass
