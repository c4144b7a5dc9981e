"""Accepting in batches on plain TCP listeners, and the TcpStream it makes:
a full Trio stream on a standard-library socket, over real loopback sockets."""

from __future__ import annotations

import logging
import socket

import pytest
import trio
import trio.testing

from tests.helpers import json_request, local_address, read_messages, result_of, start_server
from trio_search._limits import ACCEPT_BATCH
from trio_search._listeners import RetryingListener, open_listeners
from trio_search._transport import SocketTransport, TcpStream, pending_bytes, transport_for

RABBIT = "Follow the white rabbit. \U0001f430"


async def _listener() -> tuple[RetryingListener, tuple[str, int]]:
    (listener,) = await open_listeners("127.0.0.1", 0)
    host, port = listener.socket.getsockname()[:2]
    return RetryingListener(listener), (host, port)


async def _wait_until_queued(address: tuple[str, int], count: int) -> list[trio.SocketStream]:
    """``count`` clients connected (their handshakes done, waiting in the backlog)."""
    return [await trio.open_tcp_stream(*address) for _ in range(count)]


async def _accepted_pair() -> tuple[TcpStream, trio.SocketStream, RetryingListener]:
    listener, address = await _listener()
    (client,) = await _wait_until_queued(address, 1)
    (accepted,) = await listener.accept_batch()
    assert isinstance(accepted, TcpStream)
    return accepted, client, listener


async def test_one_wake_up_accepts_every_waiting_client() -> None:
    listener, address = await _listener()
    async with listener:
        clients = await _wait_until_queued(address, 5)
        batch = await listener.accept_batch()
        assert len(batch) == 5
        assert all(type(stream) is TcpStream for stream in batch)
        # Each knows its peer's address from accept(), as the client sees it.
        peers = sorted(f"{s.peer_address[0]}:{s.peer_address[1]}" for s in batch)  # type: ignore[attr-defined]
        assert peers == sorted(local_address(client) for client in clients)
        for stream in [*batch, *clients]:
            await stream.aclose()


async def test_a_batch_is_bounded() -> None:
    listener, address = await _listener()
    async with listener:
        clients = await _wait_until_queued(address, ACCEPT_BATCH + 3)
        first = await listener.accept_batch()
        second = await listener.accept_batch()
        assert (len(first), len(second)) == (ACCEPT_BATCH, 3)
        for stream in [*first, *second, *clients]:
            await stream.aclose()


@pytest.mark.parametrize("ours", [True, False], ids=["open_listeners", "plain"])
async def test_accepted_connections_have_tcp_nodelay(ours: bool) -> None:
    # Our listeners have it, so accepted sockets inherit it (on Linux) and
    # it is not set again; a listener without it gets it set per connection.
    if ours:
        listener, address = await _listener()
    else:
        sock = trio.socket.socket()
        await sock.bind(("127.0.0.1", 0))
        sock.listen()
        listener = RetryingListener(trio.SocketListener(sock))
        address = sock.getsockname()[:2]
    async with listener:
        for _ in range(2):  # the first batch finds out, the second relies on it
            (client,) = await _wait_until_queued(address, 1)
            (accepted,) = await listener.accept_batch()
            assert isinstance(accepted, TcpStream)
            assert accepted.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            await accepted.aclose()
            await client.aclose()


async def test_other_listeners_give_one_at_a_time() -> None:
    server_side = trio.testing.memory_stream_pair()[1]

    class OneListener(trio.abc.Listener[trio.abc.Stream]):
        async def accept(self) -> trio.abc.Stream:
            await trio.lowlevel.checkpoint()
            return server_side

        async def aclose(self) -> None:
            await trio.lowlevel.checkpoint()

    assert await RetryingListener(OneListener()).accept_batch() == [server_side]


async def test_tcp_stream_reads_writes_and_half_closes() -> None:
    accepted, client, listener = await _accepted_pair()
    async with listener, client:
        assert type(transport_for(accepted)) is SocketTransport
        await client.send_all(b"hello")
        assert await accepted.receive_some() == b"hello"
        # Nothing there: receive_some waits for it.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accepted.receive_some, 10)
            await trio.sleep(0.05)
            await client.send_all(b"!")
        await client.send_all(b"abc")
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(accepted.socket)
        assert pending_bytes(accepted) == 3
        assert await accepted.receive_some(10) == b"abc"
        # More than the kernel buffers hold: send_all waits for the reader.
        big = bytes(range(256)) * 40_000
        received = bytearray()

        async def read_all() -> None:
            while chunk := await client.receive_some():
                received.extend(chunk)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            await accepted.send_all(big)
            await accepted.send_eof()  # the reader sees the end
        assert received == big
        await accepted.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await accepted.receive_some()


async def test_tcp_stream_reports_a_reset_as_broken() -> None:
    accepted, client, listener = await _accepted_pair()
    async with listener:
        await client.send_all(b"unread")
        client.socket.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        await client.aclose()  # with SO_LINGER 0: a reset
        await trio.sleep(0.05)
        with pytest.raises(trio.BrokenResourceError):
            for _ in range(3):
                await accepted.receive_some()
                await accepted.send_all(b"x" * 100_000)
        await accepted.aclose()


async def test_the_server_serves_and_logs_accepted_clients(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_search")
    _, address = await start_server(nursery)
    clients = await _wait_until_queued(address, 3)
    names = [local_address(client) for client in clients]
    for client in clients:
        await client.send_all(json_request({"action": "search", "value": "morpheus"}))
    for client in clients:
        (answer,) = await read_messages(client, 1)
        assert result_of(answer) == {"result": RABBIT}
        await client.aclose()
    # Logged under the address accept() returned (no getpeername call).
    messages = [record.getMessage() for record in caplog.records]
    for name in names:
        assert f"{name}: connected" in messages
