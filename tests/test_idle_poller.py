"""Plain TCP connections between requests wait in the server's poller, with
no task of their own (trio_search._idle_poller); anything that must wait
moves them into a task. These tests follow a connection along every way in
and out of the poller, on the autojump clock, over socket pairs accepted as
the server's TCP listeners accept (see ``SocketPairListener``).
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from tests.helpers import (
    SocketPairListener,
    framed,
    json_request,
    read_messages,
    read_until_eof,
    result_of,
)
from trio_search import Message, SearchServer, ServerSettings
from trio_search._app import Deferred, Reply
from trio_search._limits import FIRST_REQUEST_GRACE, THREAD_DECODE_THRESHOLD

MORPHEUS = json_request({"action": "search", "value": "morpheus"})
MORPHEUS_ANSWER = {"result": "Follow the white rabbit. \U0001f430"}


@pytest.fixture
async def listener() -> AsyncIterator[SocketPairListener]:
    listener = SocketPairListener()
    yield listener
    listener.close_clients()


async def start(
    nursery: trio.Nursery,
    listener: SocketPairListener,
    index: dict[str, str] | None = None,
    **settings: Any,
) -> SearchServer:
    settings.setdefault("port", 0)
    server = (
        SearchServer(ServerSettings(**settings))
        if index is None
        else SearchServer(ServerSettings(**settings), index=index)
    )
    await nursery.start(server.serve, [listener])
    return server


def waiting(server: SearchServer) -> int:
    """Connections waiting in the server's poller."""
    assert server._poller is not None
    return len(server._poller)


async def ask_morpheus(client: trio.abc.Stream) -> None:
    await client.send_all(MORPHEUS)
    (response,) = await read_messages(client, 1)
    assert result_of(response) == MORPHEUS_ANSWER


async def test_a_one_shot_client_is_answered_and_counted_out(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    listener: SocketPairListener,
) -> None:
    server = await start(nursery, listener)
    client = listener.connect()
    await client.send_all(MORPHEUS)  # there before the server accepts
    with trio.fail_after(1):
        (response,) = await read_messages(client, 1)
    assert result_of(response) == MORPHEUS_ANSWER
    await trio.testing.wait_all_tasks_blocked()
    assert waiting(server) == 1
    assert server.stats.connections_open == 1
    await client.aclose()
    await trio.testing.wait_all_tasks_blocked()
    assert waiting(server) == 0
    assert server.stats.connections_open == 0
    assert server.stats.connections_total == 1
    assert server.stats.requests == 1
    assert not server.stats.errors


async def test_keep_alive_and_pipelined_requests_from_the_poller(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    listener: SocketPairListener,
) -> None:
    server = await start(nursery, listener)
    client = listener.connect()
    with trio.fail_after(1):
        for _ in range(3):
            await ask_morpheus(client)
        # A batch in one write is answered in one.
        await client.send_all(MORPHEUS * 5)
        responses = await read_messages(client, 5)
    assert [result_of(response) for response in responses] == [MORPHEUS_ANSWER] * 5
    assert server.stats.requests == 8
    await trio.testing.wait_all_tasks_blocked()
    assert waiting(server) == 1


async def test_idle_timeout_in_the_poller_is_exact_and_counted(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    listener: SocketPairListener,
) -> None:
    server = await start(nursery, listener, idle_timeout=10)
    silent = listener.connect()
    await trio.sleep(3)
    answered = listener.connect()
    await ask_morpheus(answered)
    start_time = trio.current_time()
    with trio.fail_after(60):
        assert await read_until_eof(silent) == b""
        assert trio.current_time() - start_time == pytest.approx(7)
        assert await read_until_eof(answered) == b""
        assert trio.current_time() - start_time == pytest.approx(10)
    await trio.testing.wait_all_tasks_blocked()
    assert server.stats.errors["idle_timeout"] == 2
    assert server.stats.connections_open == 0


async def test_the_rest_of_a_request_has_the_request_timeout_in_a_task(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    listener: SocketPairListener,
) -> None:
    server = await start(nursery, listener, idle_timeout=60, request_timeout=5)
    in_time, too_slow = listener.connect(), listener.connect()
    await ask_morpheus(in_time)
    await in_time.send_all(MORPHEUS[:10])
    await too_slow.send_all(MORPHEUS[:10])
    start_time = trio.current_time()
    await trio.sleep(4)
    await in_time.send_all(MORPHEUS[10:])
    with trio.fail_after(60):
        (response,) = await read_messages(in_time, 1)
        assert result_of(response) == MORPHEUS_ANSWER
        (response,) = await read_messages(too_slow, 1)
        assert result_of(response)["error"] == "request_timeout"
        assert trio.current_time() - start_time == pytest.approx(5)
        assert await read_until_eof(too_slow) == b""
    assert server.stats.errors["request_timeout"] == 1


async def test_broken_framing_is_answered_then_the_connection_closes(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    listener: SocketPairListener,
) -> None:
    server = await start(nursery, listener)
    client = listener.connect()
    await client.send_all(MORPHEUS + framed(b"not json") + MORPHEUS)
    with trio.fail_after(10):
        first, error = await read_messages(client, 2)
        assert result_of(first) == MORPHEUS_ANSWER
        assert result_of(error)["error"] == "bad_header"
        await client.send_eof()
        assert await read_until_eof(client) == b""
    assert server.stats.errors["bad_header"] == 1


async def test_work_for_a_thread_moves_the_connection_into_a_task(
    nursery: trio.Nursery,
    listener: SocketPairListener,
) -> None:
    server = await start(nursery, listener)
    client = listener.connect()
    padding = "x" * THREAD_DECODE_THRESHOLD
    large = json_request({"action": "search", "value": "morpheus", "padding": padding})
    with trio.fail_after(10):
        await client.send_all(MORPHEUS + large)
        first, second = await read_messages(client, 2)
        assert result_of(first) == MORPHEUS_ANSWER
        assert result_of(second) == MORPHEUS_ANSWER
        await ask_morpheus(client)  # served on, by its task
    assert server.stats.requests == 3


async def test_answers_the_kernel_does_not_take_at_once_are_sent_by_a_task(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    listener: SocketPairListener,
) -> None:
    answer = "y" * 900_000  # more than a socket pair's buffer
    server = await start(
        nursery,
        listener,
        index={"big": answer, "morpheus": MORPHEUS_ANSWER["result"]},
        request_timeout=5,
    )
    reader, stuck = listener.connect(), listener.connect()
    big = json_request({"action": "search", "value": "big"})
    await reader.send_all(big)
    await stuck.send_all(big)
    with trio.fail_after(60):
        (response,) = await read_messages(reader, 1)
        assert result_of(response) == {"result": answer}
        await ask_morpheus(reader)
        # A client that does not take its answer has the request timeout.
        await trio.sleep(5)
    await trio.testing.wait_all_tasks_blocked()
    assert server.stats.errors["send_timeout"] == 1
    assert server.stats.connections_open == 1


async def test_a_reset_while_waiting_is_counted_as_connection_lost(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    listener: SocketPairListener,
) -> None:
    server = await start(nursery, listener)
    client = listener.connect()
    await ask_morpheus(client)
    await client.send_all(MORPHEUS)
    # Closed with the answer unread: the server's write, or its next read,
    # finds the connection reset.
    client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.socket.close()
    await trio.testing.wait_all_tasks_blocked()
    assert server.stats.connections_open == 0
    assert server.stats.requests + server.stats.errors["connection_lost"] >= 2


async def test_the_longest_idle_waiting_connection_makes_room(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    listener: SocketPairListener,
) -> None:
    server = await start(nursery, listener, max_connections=2, idle_timeout=600)
    oldest, newer = listener.connect(), listener.connect()
    await ask_morpheus(oldest)
    await trio.sleep(1)
    await ask_morpheus(newer)
    new = listener.connect()
    with trio.fail_after(5):
        await ask_morpheus(new)
        assert await read_until_eof(oldest) == b""
    await ask_morpheus(newer)
    assert server.stats.errors["evicted_idle"] == 1
    assert server.stats.connections_open == 2


async def test_connections_per_address_are_counted_out_of_the_poller(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    listener: SocketPairListener,
) -> None:
    server = await start(nursery, listener, max_connections_per_ip=1)
    first = listener.connect()
    await ask_morpheus(first)
    refused = listener.connect()
    with trio.fail_after(5):
        (response,) = await read_messages(refused, 1)
        assert result_of(response)["error"] == "busy"
    await first.aclose()
    await trio.testing.wait_all_tasks_blocked()
    assert not server._per_address
    await ask_morpheus(listener.connect())


async def test_shutdown_ends_waiting_connections_and_serves_what_is_on_its_way(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    listener: SocketPairListener,
) -> None:
    server = SearchServer(ServerSettings(port=0, shutdown_grace=10, idle_timeout=60))
    stopped = trio.Event()

    async def serve() -> None:
        await server.serve([listener])
        stopped.set()

    nursery.start_soon(serve)
    idle, landing, fresh, silent = (listener.connect() for _ in range(4))
    await ask_morpheus(idle)
    await ask_morpheus(landing)
    await trio.testing.wait_all_tasks_blocked()
    start_time = trio.current_time()
    server.shutdown()
    # No checkpoint since: the request lands before the poller has run.
    await landing.send_all(MORPHEUS)
    with trio.fail_after(5):
        assert await read_until_eof(idle) == b""
        (response,) = await read_messages(landing, 1)
        assert result_of(response) == MORPHEUS_ANSWER
        assert await read_until_eof(landing) == b""
        # Accepted, nothing answered yet: its first request gets a grace.
        await trio.sleep(FIRST_REQUEST_GRACE / 2)
        await ask_morpheus(fresh)
        assert await read_until_eof(fresh) == b""
        assert await read_until_eof(silent) == b""
        assert trio.current_time() - start_time == pytest.approx(FIRST_REQUEST_GRACE)
        await stopped.wait()
    assert server.stats.requests == 4
    assert server.stats.connections_open == 0


async def test_cancelling_the_server_closes_waiting_connections(
    autojump_clock: trio.testing.MockClock, listener: SocketPairListener
) -> None:
    server = SearchServer(ServerSettings(port=0))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, [listener])
        client = listener.connect()
        await ask_morpheus(client)
        nursery.cancel_scope.cancel()
    assert server.stats.connections_open == 0
    with trio.fail_after(1):
        assert await read_until_eof(client) == b""


async def test_a_bug_in_the_application_ends_one_connection_not_the_poller(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    listener: SocketPairListener,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await start(nursery, listener)
    search_app = server.app
    assert search_app is not None
    boom = json_request({"action": "search", "value": "boom"})

    class Buggy:
        def respond(self, request: Message) -> Reply | Deferred:
            if request.content == boom[-len(request.content) :]:
                raise RuntimeError("a bug")
            assert search_app is not None
            return search_app.respond(request)

    server.app = Buggy()
    victim, bystander = listener.connect(), listener.connect()
    await ask_morpheus(bystander)
    await victim.send_all(boom)
    with trio.fail_after(5):
        assert await read_until_eof(victim) == b""
        await ask_morpheus(bystander)
    assert server.stats.errors["internal_error"] == 1
    assert "internal error" in caplog.text


async def test_a_connection_the_poller_cannot_keep_goes_on_in_a_task(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, listener: SocketPairListener
) -> None:
    server = await start(nursery, listener, idle_timeout=10)
    poller = server._poller
    assert poller is not None
    epoll = poller._epoll

    class Full:
        """The poller's epoll set, refusing new descriptors (ENOSPC)."""

        def register(self, fd: int, events: int) -> None:
            raise OSError(errno.ENOSPC, "no space left on device")

        def __getattr__(self, name: str) -> Any:
            return getattr(epoll, name)

    poller._epoll = Full()  # type: ignore[assignment]
    client = listener.connect()
    with trio.fail_after(60):
        await ask_morpheus(client)
        await ask_morpheus(client)
        start_time = trio.current_time()
        assert await read_until_eof(client) == b""
    assert trio.current_time() - start_time == pytest.approx(10)
    assert waiting(server) == 0
    assert server.stats.errors["idle_timeout"] == 1
    poller._epoll = epoll
