"""The server-wide budget of request bytes held (issue 8, item 2)."""

from __future__ import annotations

import trio
import trio.testing

from tests.helpers import json_request, raw_message, read_messages, result_of
from tests.test_shutdown import MemoryListener
from trio_search import SearchServer, ServerSettings

MORPHEUS = json_request({"action": "search", "value": "morpheus"})
BUDGET = 10_000


async def test_past_the_budget_one_request_goes_on_the_others_wait_small_ones_pass(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = SearchServer(ServerSettings(port=0, max_buffered_bytes=BUDGET))
    listener = MemoryListener(nursery)
    await nursery.start(server.serve, [listener])
    large = raw_message(b"x" * 8_000, "binary/custom-client-binary-type", "binary")
    head, rest = large[:-2_000], large[-2_000:]
    first, second, small = listener.connect(), listener.connect(), listener.connect()

    async def send(client: trio.abc.Stream, data: bytes) -> int:
        await client.send_all(data)
        await trio.testing.wait_all_tasks_blocked()
        return int(server._stats_snapshot()["buffered_bytes"])

    # Two uploads, each 6,000 bytes into 8,000: the second takes the server
    # past the budget, and is the one request that goes on reading.
    await send(first, head)
    held = await send(second, head)
    assert held > BUDGET
    # The first's receive was already waiting: it takes one more chunk ...
    held = await send(first, rest[:500])
    # ... then reads no more, while the second goes on ...
    assert await send(first, rest[500:1_000]) == held
    assert await send(second, rest[:1_000]) == held + 1_000
    # ... and small requests on other connections are answered meanwhile.
    await small.send_all(MORPHEUS)
    (answer,) = await read_messages(small, 1)
    assert result_of(answer) == {"result": "Follow the white rabbit. \U0001f430"}
    # The second finishes; its bytes are freed and the first goes on.
    await second.send_all(rest[1_000:])
    with trio.fail_after(5):
        (answer,) = await read_messages(second, 1)
        assert answer.content == b"First 10 bytes of request: xxxxxxxxxx"
        await first.send_all(rest[1_000:])
        (answer,) = await read_messages(first, 1)
        assert answer.content == b"First 10 bytes of request: xxxxxxxxxx"
    stats = server._stats_snapshot()
    assert stats["buffered_bytes"] == 0
    # At most one request's content and one receive per connection over.
    assert stats["buffered_bytes_peak"] <= BUDGET + len(large) + 3 * 65_536


async def test_a_request_kept_waiting_for_room_times_out(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = SearchServer(
        ServerSettings(port=0, max_buffered_bytes=BUDGET, request_timeout=5, idle_timeout=600)
    )
    listener = MemoryListener(nursery)
    await nursery.start(server.serve, [listener])
    large = raw_message(b"x" * 8_000, "binary/custom-client-binary-type", "binary")
    waiting, stalled = listener.connect(), listener.connect()
    await waiting.send_all(large[:6_000])
    await trio.testing.wait_all_tasks_blocked()
    # The request that goes on past the budget stalls (a slow client) ...
    await stalled.send_all(large[:6_000])
    await trio.testing.wait_all_tasks_blocked()
    # (The other's receive was already waiting: it takes one more chunk.)
    await waiting.send_all(large[6_000:7_000])
    await trio.testing.wait_all_tasks_blocked()
    start = trio.current_time()
    await waiting.send_all(large[7_000:])
    # ... so the other waits for room, under its request timeout.
    with trio.fail_after(60):
        (answer,) = await read_messages(waiting, 1)
    assert result_of(answer)["error"] == "request_timeout"
    assert trio.current_time() - start <= 5
    await trio.sleep(3)  # the connections linger a moment, then end
    assert server._stats_snapshot()["buffered_bytes"] == 0
