"""Graceful shutdown: of the embedded server, and of ``trio-search-server``
on SIGTERM and SIGINT.

The embedded server's timing runs on the autojump clock over memory streams
(served through an in-memory listener); the refusal of new connections and
the command's signal handling use real sockets and a subprocess.
"""

from __future__ import annotations

import signal
import socket
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tests.helpers import (
    json_request,
    read_messages,
    read_until_eof,
    result_of,
    server_subprocess,
)
from trio_search import SearchServer, ServerSettings
from trio_search._limits import FIRST_REQUEST_GRACE

MORPHEUS = json_request({"action": "search", "value": "morpheus"})
MORPHEUS_ANSWER = {"result": "Follow the white rabbit. \U0001f430"}
HALF = len(MORPHEUS) // 2


@attrs.define(eq=False)
class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """A listener whose clients connect in memory, for the autojump clock."""

    nursery: trio.Nursery
    _send: trio.MemorySendChannel[trio.abc.Stream] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[trio.abc.Stream] = attrs.field(init=False)
    closed: bool = False

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[trio.abc.Stream](100)

    def connect(self, *, lockstep: bool = False) -> trio.abc.Stream:
        """Connect a client; raises ConnectionRefusedError once closed.

        A ``lockstep`` connection has no buffer, like a TCP connection whose
        windows are full: a send blocks until the peer reads.
        """
        if self.closed:
            raise ConnectionRefusedError("listener closed")
        pair = trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
        client, server_side = pair()
        self._send.send_nowait(server_side)
        return client

    def accept_stream(self, server_side: trio.abc.Stream) -> None:
        """Hand the server a connection made elsewhere."""
        self._send.send_nowait(server_side)

    async def accept(self) -> trio.abc.Stream:
        return await self._receive.receive()

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


async def start(
    nursery: trio.Nursery, **settings: float
) -> tuple[SearchServer, MemoryListener, trio.Event]:
    """A server on a memory listener; the event is set when serve() returns."""
    server = SearchServer(ServerSettings(port=0, **settings))  # type: ignore[arg-type]
    listener = MemoryListener(nursery)
    stopped = trio.Event()

    async def serve(task_status: trio.TaskStatus[None]) -> None:
        await server.serve([listener], task_status=task_status)
        stopped.set()

    await nursery.start(serve)
    return server, listener, stopped


async def ask_morpheus(stream: trio.abc.Stream) -> None:
    await stream.send_all(MORPHEUS)
    (response,) = await read_messages(stream, 1)
    assert result_of(response) == MORPHEUS_ANSWER


async def test_shutdown_closes_listener_and_idle_connections_at_once(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server, listener, stopped = await start(nursery, shutdown_grace=10, idle_timeout=60)
    idle = listener.connect()
    fresh = listener.connect()  # accepted, has sent nothing yet
    await ask_morpheus(idle)
    await trio.testing.wait_all_tasks_blocked()
    start_time = trio.current_time()
    server.shutdown()
    with trio.fail_after(60):
        assert await read_until_eof(idle) == b""
        assert trio.current_time() == start_time
        # One just accepted gets a moment for its first request, then goes.
        assert await read_until_eof(fresh) == b""
        await stopped.wait()
    assert trio.current_time() - start_time <= FIRST_REQUEST_GRACE
    assert listener.closed
    with pytest.raises(ConnectionRefusedError):
        listener.connect()


async def test_request_in_progress_finishes_within_the_grace(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server, listener, stopped = await start(nursery, shutdown_grace=10, request_timeout=30)
    client = listener.connect()
    await client.send_all(MORPHEUS[:HALF])
    await trio.testing.wait_all_tasks_blocked()
    start_time = trio.current_time()
    server.shutdown()
    with trio.fail_after(60):
        await trio.sleep(9)
        await client.send_all(MORPHEUS[HALF:])
        (response,) = await read_messages(client, 1)
        assert result_of(response) == MORPHEUS_ANSWER
        # Answered, then closed, since the server is shutting down.
        assert await read_until_eof(client) == b""
        await stopped.wait()
    assert trio.current_time() - start_time == pytest.approx(9)


async def test_requests_still_in_progress_after_the_grace_are_cancelled(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server, listener, stopped = await start(nursery, shutdown_grace=10, request_timeout=30)
    slow = listener.connect()
    await slow.send_all(MORPHEUS[:HALF])
    await trio.testing.wait_all_tasks_blocked()
    start_time = trio.current_time()
    server.shutdown()
    with trio.fail_after(60):
        await stopped.wait()
        assert trio.current_time() - start_time == pytest.approx(10)
        assert await read_until_eof(slow) == b""


async def test_shutdown_grace_bounds_a_client_that_does_not_read(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server, listener, stopped = await start(nursery, shutdown_grace=3, request_timeout=30)
    client = listener.connect(lockstep=True)
    nursery.start_soon(client.send_all, MORPHEUS)
    await trio.testing.wait_all_tasks_blocked()
    start_time = trio.current_time()
    server.shutdown()
    with trio.fail_after(60):
        await stopped.wait()
    assert trio.current_time() - start_time == pytest.approx(3)


async def test_requests_fully_received_before_shutdown_are_answered(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server, listener, stopped = await start(nursery, shutdown_grace=10)
    idle = listener.connect()
    await ask_morpheus(idle)
    await trio.testing.wait_all_tasks_blocked()
    # Three pipelined requests arrive, and the shutdown comes before the
    # server's task has even looked at them.
    await idle.send_all(MORPHEUS * 3)
    server.shutdown()
    with trio.fail_after(60):
        responses = await read_messages(idle, 3)
        assert [result_of(r) for r in responses] == [MORPHEUS_ANSWER] * 3
        assert await read_until_eof(idle) == b""
        await stopped.wait()


async def test_requests_waiting_in_the_kernel_at_shutdown_are_answered(
    nursery: trio.Nursery,
) -> None:
    # A pipelining client that does not read for a while: the server is
    # blocked writing answers while the client's next requests wait, whole,
    # in the server's socket buffer. The shutdown must answer those too.
    server, listener, stopped = await start(nursery, shutdown_grace=10)
    server_socket, client_socket = trio.socket.socketpair()
    # A small send buffer, so the server blocks on its first batch of answers.
    server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    listener.accept_stream(trio.SocketStream(server_socket))
    client = trio.SocketStream(client_socket)
    with trio.fail_after(10):
        await client.send_all(MORPHEUS * 200)
        await trio.testing.wait_all_tasks_blocked()
        # All 200 read and answered; the answers, 30 KB, wait for the client.
        assert server.stats.requests == 200
        await client.send_all(MORPHEUS * 3)  # received, not yet read
        await trio.testing.wait_all_tasks_blocked()
        server.shutdown()
        responses = await read_messages(client, 203)
        assert all(result_of(r) == MORPHEUS_ANSWER for r in responses)
        assert await read_until_eof(client) == b""
        await stopped.wait()
    await client.aclose()


@pytest.mark.parametrize("whole", [True, False], ids=["whole", "first-half"])
async def test_a_request_landing_as_the_shutdown_begins_is_answered(
    nursery: trio.Nursery, whole: bool
) -> None:
    # A keep-alive client's next request reaches the socket after the
    # shutdown has looked for waiting bytes but before the connection's task
    # has closed it: it used to be reset unread; it is answered, then the
    # connection closes right after the answer.
    server = SearchServer(ServerSettings(port=0, shutdown_grace=10))
    (host, port), *_ = await nursery.start(server.serve)
    sock = socket.create_connection((host, port))
    sock.setblocking(False)
    client = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
    async with client:
        with trio.fail_after(10):
            await ask_morpheus(client)
            await trio.testing.wait_all_tasks_blocked()
            # No checkpoint between the two: the connection's task has not
            # run when the request lands in its socket.
            server.shutdown()
            sock.send(MORPHEUS if whole else MORPHEUS[:HALF])
            if not whole:
                # Begun, so the rest gets the request timeout to come.
                await trio.sleep(0.1)
                await client.send_all(MORPHEUS[HALF:])
            (response,) = await read_messages(client, 1)
            assert result_of(response) == MORPHEUS_ANSWER
            assert await read_until_eof(client) == b""
    assert server.stats.requests == 2


async def test_shutdown_before_serve_starts(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = SearchServer(ServerSettings(port=0))
    server.shutdown()
    listener = MemoryListener(nursery)
    with trio.fail_after(60):
        await server.serve([listener])
    assert listener.closed


async def test_shutdown_before_serve_is_started_by_a_nursery(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    # As docs/embedding.md starts it: nursery.start hears that serve() began
    # (listening on nothing), and every listener given is closed.
    server = SearchServer(ServerSettings(port=0))
    server.shutdown()
    listeners = [MemoryListener(nursery), MemoryListener(nursery)]
    with trio.fail_after(60):
        async with trio.open_nursery() as inner:
            assert await inner.start(server.serve, listeners) == []
    assert [listener.closed for listener in listeners] == [True, True]


async def test_shutdown_while_listening_begins_is_a_clean_start_and_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_open = SearchServer.open_listeners

    async def shut_down_meanwhile(self: SearchServer) -> list[trio.abc.Listener[Any]]:
        opened = await real_open(self)
        self.shutdown()  # from another task, as a signal handler would
        return opened

    monkeypatch.setattr(SearchServer, "open_listeners", shut_down_meanwhile)
    server = SearchServer(ServerSettings(port=0))
    with trio.fail_after(10):
        async with trio.open_nursery() as inner:
            ((host, port),) = await inner.start(server.serve)
    with pytest.raises(OSError):
        await trio.open_tcp_stream(host, port)


async def test_new_tcp_connections_are_refused_after_shutdown(nursery: trio.Nursery) -> None:
    server = SearchServer(ServerSettings(port=0))
    stopped = trio.Event()

    async def serve(task_status: trio.TaskStatus[list[tuple[str, int]]]) -> None:
        await server.serve(task_status=task_status)
        stopped.set()

    (host, port), *_ = await nursery.start(serve)
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(host, port) as idle:
            await ask_morpheus(idle)
            server.shutdown()
            assert await read_until_eof(idle) == b""
            await stopped.wait()
        with pytest.raises(OSError):
            await trio.open_tcp_stream(host, port)


# --- the command: trio-search-server in a subprocess -------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_command_exits_0_on_signal(signum: int) -> None:
    async with server_subprocess() as server:
        host, port = server.addresses[0]
        async with await trio.open_tcp_stream(host, port) as idle:
            await ask_morpheus(idle)
            server.signal(signum)
            with trio.fail_after(10):
                assert await read_until_eof(idle) == b""
            assert await server.wait() == 0
    assert f"{signal.Signals(signum).name} received: shutting down gracefully".encode() in (
        server.stderr
    )
    assert b"server stopped" in server.stderr


async def test_command_answers_a_request_in_progress_then_exits() -> None:
    async with server_subprocess("--shutdown-grace", "20") as server:
        host, port = server.addresses[0]
        async with await trio.open_tcp_stream(host, port) as client:
            await client.send_all(MORPHEUS[:HALF])
            await trio.sleep(0.1)
            server.signal(signal.SIGTERM)
            await trio.sleep(0.3)
            # New connections are refused while the old one finishes.
            with pytest.raises(OSError):
                await trio.open_tcp_stream(host, port)
            await client.send_all(MORPHEUS[HALF:])
            with trio.fail_after(10):
                (response,) = await read_messages(client, 1)
                assert result_of(response) == MORPHEUS_ANSWER
            assert await server.wait() == 0


async def test_command_honours_shutdown_grace() -> None:
    async with server_subprocess("--shutdown-grace", "0.5") as server:
        host, port = server.addresses[0]
        async with await trio.open_tcp_stream(host, port) as client:
            await client.send_all(MORPHEUS[:HALF])
            await trio.sleep(0.1)
            start_time = trio.current_time()
            server.signal(signal.SIGTERM)
            assert await server.wait() == 0
            assert 0.5 <= trio.current_time() - start_time < 5
            assert await read_until_eof(client) == b""
    assert b"shutdown grace of 0.5 s over" in server.stderr


async def test_command_second_signal_stops_at_once() -> None:
    async with server_subprocess("--shutdown-grace", "60") as server:
        host, port = server.addresses[0]
        async with await trio.open_tcp_stream(host, port) as client:
            await client.send_all(MORPHEUS[:HALF])
            await trio.sleep(0.1)
            server.signal(signal.SIGTERM)
            await trio.sleep(0.3)
            start_time = trio.current_time()
            server.signal(signal.SIGINT)
            assert await server.wait() == 0
            assert trio.current_time() - start_time < 5
    assert b"SIGINT again: stopping now" in server.stderr


@pytest.mark.parametrize("count", [1, 40])
async def test_clients_waiting_in_the_backlog_at_shutdown_are_served(
    nursery: trio.Nursery, count: int
) -> None:
    # One-shot clients whose requests were sent before the shutdown, but
    # not yet accepted, used to be reset when the listener closed.
    server = SearchServer(ServerSettings(port=0))
    (host, port), *_ = await nursery.start(server.serve)
    clients = []
    # Blocking calls, with no checkpoint between them: the server's accept
    # loop cannot run, so every connection waits in the kernel's backlog.
    for _ in range(count):
        sock = socket.create_connection((host, port))
        sock.sendall(MORPHEUS)
        clients.append(sock)
    server.shutdown()
    with trio.fail_after(10):
        for sock in clients:
            sock.setblocking(False)
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
            async with stream:
                (response,) = await read_messages(stream, 1)
                assert result_of(response) == MORPHEUS_ANSWER
                assert await read_until_eof(stream) == b""
    assert server.stats.requests == count
    # Once the listener has closed, new clients are refused, not accepted.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port)).close()


async def test_a_connection_accepted_as_shutdown_begins_gets_its_first_request_answered(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    # Under --workers a worker may accept a one-shot client just as its
    # shutdown begins, the request still on its way: it is answered, not
    # closed at once.
    server, listener, _ = await start(nursery)
    client = listener.connect()
    await trio.testing.wait_all_tasks_blocked()
    server.shutdown()
    await trio.sleep(0.1)
    await client.send_all(MORPHEUS)
    with trio.fail_after(5):
        (response,) = await read_messages(client, 1)
        assert result_of(response) == MORPHEUS_ANSWER
        assert await read_until_eof(client) == b""


async def test_a_silent_connection_at_shutdown_is_closed_after_a_moment(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server, listener, _ = await start(nursery)
    client = listener.connect()
    await trio.testing.wait_all_tasks_blocked()
    start_time = trio.current_time()
    server.shutdown()
    with trio.fail_after(5):
        assert await read_until_eof(client) == b""
    assert trio.current_time() - start_time <= 0.5
