"""The tutorial's search, end to end over a real socket (the quickest check)."""

from __future__ import annotations

import trio

from tests.helpers import json_request, read_messages, result_of, start_server


async def test_search_over_tcp(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery)
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(json_request({"action": "search", "value": "morpheus"}))
        (response,) = await read_messages(stream, 1)
    assert result_of(response) == {"result": "Follow the white rabbit. \U0001f430"}
