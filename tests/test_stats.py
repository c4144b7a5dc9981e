"""The ``stats`` action: live counters as a user of the server sees them."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from tests.helpers import (
    json_request,
    raw_message,
    read_messages,
    read_until_eof,
    result_of,
    start_server,
)
from tests.test_shutdown import start as start_on_memory
from trio_search import SearchServer, open_client

STATS = json_request({"action": "stats"})
KEYS = {
    "connections_open",
    "connections_total",
    "connections_refused_busy",
    "requests",
    "errors",
    "errors_by_code",
    "uptime_s",
    "index_documents",
    "index_generation",
    "index_loaded_at",
    "query_cache_hits",
    "query_cache_stored",
    "buffered_bytes",
    "buffered_bytes_peak",
}


async def ask_stats(stream: trio.abc.Stream) -> dict[str, Any]:
    await stream.send_all(STATS)
    (response,) = await read_messages(stream, 1)
    content = result_of(response)
    assert set(content) == {"result"}, content
    stats: dict[str, Any] = content["result"]
    assert set(stats) == KEYS
    return stats


async def test_counters_follow_what_happens(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    _, listener, _ = await start_on_memory(nursery, max_connections=3, idle_timeout=600)
    watcher = listener.connect()
    with trio.fail_after(600):
        await trio.sleep(12.5)
        stats = await ask_stats(watcher)
        assert stats.pop("index_loaded_at").endswith("+00:00")
        assert stats.pop("buffered_bytes") == len(STATS)  # this request itself
        assert stats.pop("buffered_bytes_peak") > 0
        # (The built-in index is shared by every test of the process.)
        assert stats.pop("query_cache_hits") >= 0
        assert stats.pop("query_cache_stored") >= 0
        assert stats == {
            "index_documents": 3,
            "index_generation": 1,
            "connections_open": 1,
            "connections_total": 1,
            "connections_refused_busy": 0,
            "requests": 0,  # the ones answered before this one
            "errors": 0,
            "errors_by_code": {},
            "uptime_s": 12.5,
        }

        # A bad request on a second connection: answered, counted, and the
        # connection stays open.
        other = listener.connect()
        await other.send_all(raw_message(b"{not json"))
        (response,) = await read_messages(other, 1)
        assert result_of(response)["error"] == "invalid_json"
        stats = await ask_stats(watcher)
        assert stats["connections_open"] == 2
        assert stats["connections_total"] == 2
        assert stats["requests"] == 2
        assert (stats["errors"], stats["errors_by_code"]) == (1, {"invalid_json": 1})

        # Broken framing: answered, counted, the connection closed.
        await other.send_all(b"\x00\x00")
        (response,) = await read_messages(other, 1)
        assert result_of(response)["error"] == "empty_header"
        assert await read_until_eof(other) == b""
        await other.aclose()
        await trio.testing.wait_all_tasks_blocked()
        stats = await ask_stats(watcher)
        assert stats["connections_open"] == 1
        assert stats["connections_total"] == 2
        assert stats["requests"] == 3  # a framing error is not a request
        assert stats["errors"] == 2
        assert stats["errors_by_code"] == {"invalid_json": 1, "empty_header": 1}

        # Two more, each in the middle of a request, fill the limit of 3
        # with no idle connection to close: the next is refused as busy.
        fillers = [listener.connect() for _ in range(2)]
        for stream in [*fillers, watcher]:
            await stream.send_all(STATS[:3])
        await trio.testing.wait_all_tasks_blocked()
        refused = listener.connect()
        (response,) = await read_messages(refused, 1)
        assert result_of(response)["error"] == "busy"
        await watcher.send_all(STATS[3:])
        (response,) = await read_messages(watcher, 1)
        stats = result_of(response)["result"]
        assert stats["connections_open"] == 3
        assert stats["connections_total"] == 4
        assert stats["connections_refused_busy"] == 1
        assert stats["errors_by_code"]["busy"] == 1

        # Clients finish and leave: the open count falls, the totals stay.
        for filler in fillers:
            await filler.send_all(STATS[3:])
            await read_messages(filler, 1)
            await filler.aclose()
        await trio.testing.wait_all_tasks_blocked()
        stats = await ask_stats(watcher)
        assert stats["connections_open"] == 1
        assert stats["connections_total"] == 4
        assert stats["errors"] == 3

        # Uptime counts from the start of serving.
        await trio.sleep(100)
        stats = await ask_stats(watcher)
        assert stats["uptime_s"] == pytest.approx(112.5)


async def test_timeouts_are_counted_by_code(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    _, listener, _ = await start_on_memory(nursery, idle_timeout=10, request_timeout=5)
    idle = listener.connect()
    slow = listener.connect()
    await slow.send_all(STATS[:3])
    with trio.fail_after(60):
        await read_until_eof(slow)
        await read_until_eof(idle)
        watcher = listener.connect()
        stats = await ask_stats(watcher)
    assert stats["errors_by_code"] == {"request_timeout": 1, "idle_timeout": 1}
    assert stats["connections_open"] == 1
    assert stats["connections_total"] == 3


async def test_stats_over_tcp_with_the_client(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery)
    with trio.fail_after(10):
        async with open_client(host, port) as client:
            assert await client.search("morpheus")
            stats = await client.request_json({"action": "stats"})
    assert stats["result"]["requests"] == 1
    assert stats["result"]["connections_open"] == 1
    assert stats["result"]["uptime_s"] >= 0


async def test_uptime_counts_from_the_first_connection_when_serve_is_never_called(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    # A program that accepts its connections itself (docs/embedding.md:
    # handle_stream) and reports server.stats: its uptime used to count
    # from the clock's zero (days, on a real clock), as only serve() set it.
    server = SearchServer()
    await trio.sleep(1000)  # the program's own start-up
    client, server_side = trio.testing.memory_stream_pair()
    nursery.start_soon(server.handle_stream, server_side, "memory")
    await trio.sleep(12.5)
    with trio.fail_after(10):
        stats = await ask_stats(client)
    assert stats["uptime_s"] == pytest.approx(12.5)
    assert server.stats.snapshot(trio.current_time())["uptime_s"] == pytest.approx(12.5)
    # A second connection does not start it again.
    other, other_side = trio.testing.memory_stream_pair()
    nursery.start_soon(server.handle_stream, other_side, "memory")
    await trio.sleep(7.5)
    with trio.fail_after(10):
        assert (await ask_stats(other))["uptime_s"] == pytest.approx(20)
