"""Idle and request timeouts, as a client notices them.

Timing tests run on the autojump clock (so they cost no wall time and are
exact), each over memory streams, over a real socket pair, where the server
takes its production path (direct reads and writes on the socket's
descriptor), and over a socket pair accepted as the server accepts plain
TCP connections, which wait between requests in its poller (see
trio_search._idle_poller); two tests check the same over TCP with short real
timeouts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
import trio
import trio.testing

from tests.helpers import (
    SocketPairListener,
    json_request,
    read_messages,
    read_until_eof,
    result_of,
    start_server,
)
from trio_search import SearchServer, ServerSettings

MORPHEUS = json_request({"action": "search", "value": "morpheus"})
MORPHEUS_ANSWER = {"result": "Follow the white rabbit. \U0001f430"}


def make_server(idle: float = 10.0, request: float = 5.0) -> SearchServer:
    return SearchServer(ServerSettings(port=0, idle_timeout=idle, request_timeout=request))


Connect = Callable[[trio.Nursery, SearchServer], trio.abc.Stream]


@pytest.fixture(params=["memory", "socket", "poller"])
async def connect(request: pytest.FixtureRequest) -> AsyncIterator[Connect]:
    """Connects a client the server serves as if accepted: over memory
    streams, over a real socket pair, where the server takes the production
    path (direct reads and writes on the descriptor), or over a socket pair
    accepted by the running server, which serves it through its poller. A
    socket pair has no network in between, so the autojump clock stays
    exact."""

    def make(nursery: trio.Nursery, server: SearchServer) -> trio.abc.Stream:
        client: trio.abc.Stream
        server_side: trio.abc.Stream
        if request.param == "poller":
            listener = listeners.get(server)
            if listener is None:
                listener = listeners[server] = SocketPairListener()
                nursery.start_soon(server.serve, [listener])
            return listener.connect()
        if request.param == "memory":
            client, server_side = trio.testing.memory_stream_pair()
        else:
            a, b = trio.socket.socketpair()
            client, server_side = trio.SocketStream(a), trio.SocketStream(b)
            sockets.append(a)
        nursery.start_soon(server.handle_stream, server_side, request.param)
        return client

    sockets: list[trio.socket.SocketType] = []
    listeners: dict[SearchServer, SocketPairListener] = {}
    yield make
    for sock in sockets:
        sock.close()
    for listener in listeners.values():
        listener.close_clients()


async def drip(stream: trio.abc.SendStream, data: bytes, interval: float) -> None:
    """Send ``data`` one byte per ``interval`` seconds until done or cut off."""
    try:
        for i in range(len(data)):
            await stream.send_all(data[i : i + 1])
            await trio.sleep(interval)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def test_idle_timeout_counts_from_accept(
    connect: Connect, autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = make_server(idle=10)
    start = trio.current_time()
    client = connect(nursery, server)
    with trio.fail_after(60):
        assert await client.receive_some() == b""
    # Closed exactly at the limit, not before.
    assert trio.current_time() - start == pytest.approx(10)
    await trio.testing.wait_all_tasks_blocked()
    assert server.stats.errors["idle_timeout"] == 1
    assert server.stats.connections_open == 0


async def test_idle_timeout_counts_from_each_response(
    connect: Connect, autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = make_server(idle=10)
    client = connect(nursery, server)
    with trio.fail_after(60):
        for _ in range(3):
            # 9 s of silence each time: always just inside the idle limit.
            await trio.sleep(9)
            await client.send_all(MORPHEUS)
            (response,) = await read_messages(client, 1)
            assert result_of(response) == MORPHEUS_ANSWER
        answered = trio.current_time()
        assert await client.receive_some() == b""
    assert trio.current_time() - answered == pytest.approx(10)


async def test_slowloris_cut_off_at_request_timeout(
    connect: Connect, autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = make_server(idle=10, request=5)
    client = connect(nursery, server)
    with trio.fail_after(60):
        await trio.sleep(3)
        first_byte = trio.current_time()
        # One byte a second: the request would take far longer than 5 s.
        nursery.start_soon(drip, client, MORPHEUS, 1.0)
        (response,) = await read_messages(client, 1)
        assert trio.current_time() - first_byte == pytest.approx(5)
        assert result_of(response) == {
            "result": "Error: request not received within 5 s.",
            "error": "request_timeout",
        }
        assert await read_until_eof(client) == b""
    assert server.stats.errors["request_timeout"] == 1


async def test_request_timeout_is_for_the_whole_request_not_each_read(
    connect: Connect, autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    # Each byte comes well within the idle limit; the request as a whole is
    # still bounded by the request timeout, counted from its first byte.
    server = make_server(idle=100, request=20)
    client = connect(nursery, server)
    with trio.fail_after(200):
        first_byte = trio.current_time()
        nursery.start_soon(drip, client, MORPHEUS, 4.0)
        (response,) = await read_messages(client, 1)
    assert result_of(response)["error"] == "request_timeout"
    assert trio.current_time() - first_byte == pytest.approx(20)


async def test_slow_but_in_time_request_is_answered(
    connect: Connect, autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = make_server(idle=10, request=5)
    client = connect(nursery, server)
    half = len(MORPHEUS) // 2
    with trio.fail_after(60):
        await client.send_all(MORPHEUS[:half])
        await trio.sleep(4.9)
        await client.send_all(MORPHEUS[half:])
        (response,) = await read_messages(client, 1)
    assert result_of(response) == MORPHEUS_ANSWER


async def test_client_that_never_reads_is_dropped_at_request_timeout(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = make_server(idle=100, request=5)
    # Lockstep streams have no buffer: a send blocks until the peer reads,
    # like a TCP connection whose windows are full.
    client, server_side = trio.testing.lockstep_stream_pair()
    nursery.start_soon(client.send_all, MORPHEUS)
    start = trio.current_time()
    with trio.fail_after(60):
        await server.handle_stream(server_side, "memory")
    assert trio.current_time() - start == pytest.approx(5)
    assert server.stats.errors["send_timeout"] == 1
    assert server.stats.connections_open == 0
    # The client finds the connection closed.
    with trio.fail_after(1):
        await read_until_eof(client)


async def test_slowloris_that_never_reads_is_dropped_soon_after_the_timeout(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = make_server(idle=100, request=30)
    client, server_side = trio.testing.lockstep_stream_pair()
    nursery.start_soon(drip, client, MORPHEUS, 1.0)
    start = trio.current_time()
    with trio.fail_after(600):
        await server.handle_stream(server_side, "memory")
    # 30 s for the request, then 2 s (CLOSING_SEND_TIMEOUT) to take the
    # error response, not another full request timeout.
    assert trio.current_time() - start == pytest.approx(30 + 2)
    assert server.stats.errors["request_timeout"] == 1
    assert server.stats.errors["send_timeout"] == 1


async def test_other_connections_are_served_meanwhile(
    connect: Connect, autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = make_server(idle=10, request=5)
    slow = connect(nursery, server)
    nursery.start_soon(drip, slow, MORPHEUS, 1.0)
    idle = connect(nursery, server)
    stuck, stuck_server_side = trio.testing.lockstep_stream_pair()
    nursery.start_soon(server.handle_stream, stuck_server_side, "memory")
    nursery.start_soon(stuck.send_all, MORPHEUS * 3)
    await trio.testing.wait_all_tasks_blocked()
    start = trio.current_time()
    with trio.fail_after(60):
        for _ in range(3):
            client = connect(nursery, server)
            await client.send_all(MORPHEUS)
            (response,) = await read_messages(client, 1)
            assert result_of(response) == MORPHEUS_ANSWER
            await client.aclose()
    # Answered with no time passing, while the others were held.
    assert trio.current_time() == start
    await trio.testing.wait_all_tasks_blocked()
    assert server.stats.connections_open == 3
    with trio.fail_after(60):
        assert await read_until_eof(idle) == b""
        # The dripping client is still sending when the server's linger ends:
        # over a real socket, closing with its bytes unread is a reset.
        with contextlib.suppress(trio.BrokenResourceError):
            await read_until_eof(slow)


async def test_real_socket_idle_timeout(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery, idle_timeout=0.2, request_timeout=5)
    stream = await trio.open_tcp_stream(host, port)
    start = trio.current_time()
    async with stream:
        with trio.fail_after(5):
            await stream.send_all(MORPHEUS)
            (response,) = await read_messages(stream, 1)
            assert result_of(response) == MORPHEUS_ANSWER
            assert await stream.receive_some() == b""
    assert 0.2 <= trio.current_time() - start < 2


async def test_real_socket_slowloris(nursery: trio.Nursery) -> None:
    server, (host, port) = await start_server(nursery, idle_timeout=5, request_timeout=0.3)
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        start = trio.current_time()
        await stream.send_all(MORPHEUS[:5])
        with trio.fail_after(5):
            (response,) = await read_messages(stream, 1)
            assert result_of(response)["error"] == "request_timeout"
            # The server also discards what the client still sends, so the
            # close does not turn into a reset that would destroy the answer.
            await stream.send_all(MORPHEUS[5:])
            assert await read_until_eof(stream) == b""
    assert 0.3 <= trio.current_time() - start < 3
    assert server.stats.errors["request_timeout"] == 1
