"""The connection limit, running out of file descriptors, and the options
that set every limit."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import signal
import struct
import subprocess
import sys

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
    start_server,
)
from trio_search import SearchServer, ServerSettings
from trio_search._server_cli import build_parser

MORPHEUS = json_request({"action": "search", "value": "morpheus"})
MORPHEUS_ANSWER = {"result": "Follow the white rabbit. \U0001f430"}
HALF = len(MORPHEUS) // 2
BIN = os.path.dirname(sys.executable)
BUSY = {"result": "Error: server busy, try again later.", "error": "busy"}


async def ask_morpheus(stream: trio.abc.Stream) -> None:
    await stream.send_all(MORPHEUS)
    (response,) = await read_messages(stream, 1)
    assert result_of(response) == MORPHEUS_ANSWER


async def wait_for_open_connections(server: SearchServer, count: int) -> None:
    # Real sockets: the server sees a client's close a moment after it
    # happens, and the counter has no event to wait on.
    while server.stats.connections_open != count:  # noqa: ASYNC110
        await trio.sleep(0.01)


async def test_connection_beyond_the_limit_is_told_busy(nursery: trio.Nursery) -> None:
    server, (host, port) = await start_server(nursery, max_connections=2)
    with trio.fail_after(10):
        first = await trio.open_tcp_stream(host, port)
        second = await trio.open_tcp_stream(host, port)
        await ask_morpheus(first)
        await ask_morpheus(second)
        # Both in the middle of their next request: none is idle, so none
        # can make room.
        for stream in (first, second):
            await stream.send_all(MORPHEUS[:HALF])
        await trio.sleep(0.1)
        # Like the tutorial's client, the third sends its request at once;
        # it gets "busy" instead of an answer, then the connection closes.
        third = await trio.open_tcp_stream(host, port)
        async with third:
            await third.send_all(MORPHEUS)
            # Reading late must not matter: the answer is not destroyed by
            # a reset, and the connection ends with a clean end of file.
            await trio.sleep(0.1)
            (response,) = await read_messages(third, 1)
            assert result_of(response) == BUSY
            assert await read_until_eof(third) == b""
        # The two served connections were not disturbed.
        for stream in (first, second):
            await stream.send_all(MORPHEUS[HALF:])
            (response,) = await read_messages(stream, 1)
            assert result_of(response) == MORPHEUS_ANSWER
        # Capacity returns as connections close.
        await first.aclose()
        await wait_for_open_connections(server, 1)
        fourth = await trio.open_tcp_stream(host, port)
        async with fourth, second:
            await ask_morpheus(fourth)
    assert server.stats.connections_refused_busy == 1
    assert server.stats.errors["busy"] == 1


async def test_busy_answer_is_immediate(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = SearchServer(ServerSettings(port=0, max_connections=1))
    held, held_server_side = trio.testing.memory_stream_pair()
    nursery.start_soon(server.handle_stream, held_server_side, "held")
    await held.send_all(MORPHEUS[:HALF])  # busy with a request: not idle
    await trio.testing.wait_all_tasks_blocked()
    refused, refused_server_side = trio.testing.memory_stream_pair()
    start = trio.current_time()
    nursery.start_soon(server.handle_stream, refused_server_side, "refused")
    with trio.fail_after(60):
        (response,) = await read_messages(refused, 1)
        assert result_of(response) == BUSY
        assert await read_until_eof(refused) == b""
    assert trio.current_time() == start
    await held.send_all(MORPHEUS[HALF:])
    (response,) = await read_messages(held, 1)
    assert result_of(response) == MORPHEUS_ANSWER


async def test_at_the_limit_the_longest_idle_connection_makes_room(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = SearchServer(ServerSettings(port=0, max_connections=3, idle_timeout=600))
    streams = []
    for name in ("oldest", "middle", "newest"):
        client, server_side = trio.testing.memory_stream_pair()
        nursery.start_soon(server.handle_stream, server_side, name)
        await ask_morpheus(client)  # idle from now on
        streams.append(client)
        await trio.sleep(10)
    oldest, middle, newest = streams
    await ask_morpheus(oldest)  # oldest to connect, but active 30 s after the others
    with trio.fail_after(60):
        client, server_side = trio.testing.memory_stream_pair()
        nursery.start_soon(server.handle_stream, server_side, "new")
        # The one idle the longest is closed for it (with a clean end of file) ...
        assert await read_until_eof(middle) == b""
        # ... and the new client is served, like the others.
        await ask_morpheus(client)
        await ask_morpheus(oldest)
        await ask_morpheus(newest)
    assert server.stats.errors["evicted_idle"] == 1
    assert server.stats.connections_refused_busy == 0


async def test_one_connection_per_address_says_connection(nursery: trio.Nursery) -> None:
    _server, (host, port) = await start_server(nursery, max_connections_per_ip=1)
    with trio.fail_after(10):
        first = await trio.open_tcp_stream(host, port)
        await ask_morpheus(first)
        second = await trio.open_tcp_stream(host, port)
        (response,) = await read_messages(second, 1)
        assert result_of(response)["result"] == (
            "Error: server busy: more than 1 connection from this address, try again later."
        )
        await first.aclose()
        await second.aclose()


async def test_connections_per_address_are_limited_when_asked(nursery: trio.Nursery) -> None:
    server, (host, port) = await start_server(nursery, max_connections_per_ip=2)
    with trio.fail_after(10):
        first = await trio.open_tcp_stream(host, port)
        second = await trio.open_tcp_stream(host, port)
        await ask_morpheus(first)
        await ask_morpheus(second)
        third = await trio.open_tcp_stream(host, port)
        (response,) = await read_messages(third, 1)
        assert result_of(response) == {
            "result": "Error: server busy: more than 2 connections from this address, "
            "try again later.",
            "error": "busy",
        }
        await third.aclose()
        await first.aclose()
        await wait_for_open_connections(server, 1)
        fourth = await trio.open_tcp_stream(host, port)
        async with fourth, second:
            await ask_morpheus(fourth)
    assert server.stats.connections_refused_busy == 1


@attrs.define(eq=False)
class FlakyListener(trio.abc.Listener[trio.abc.Stream]):
    """Accepts streams from a channel, failing with ``error`` ``failures``
    times first, like a listening socket in a process out of descriptors."""

    streams: trio.MemoryReceiveChannel[trio.abc.Stream]
    failures: int
    error: int = errno.EMFILE
    accept_calls: int = 0

    async def accept(self) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        self.accept_calls += 1
        if self.failures:
            self.failures -= 1
            raise OSError(self.error, os.strerror(self.error))
        return await self.streams.receive()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@pytest.mark.parametrize("error", [errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])
async def test_out_of_file_descriptors_slows_accepting_but_recovers(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
    error: int,
) -> None:
    caplog.set_level(logging.INFO)
    send, receive = trio.open_memory_channel[trio.abc.Stream](10)
    listener = FlakyListener(receive, failures=50, error=error)
    server = SearchServer(ServerSettings(port=0))
    await nursery.start(server.serve, [listener])
    client, server_side = trio.testing.memory_stream_pair()
    await send.send(server_side)
    with trio.fail_after(60):
        await ask_morpheus(client)
    # 50 failures, the accept that succeeded, and the one waiting now.
    assert listener.accept_calls == 52
    # One warning when it starts, one line when it is over; no flood.
    name = errno.errorcode[error]
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("trio")]
    trouble = [m for m in messages if name in m]
    assert len(trouble) == 2, messages
    assert "accepting new connections is failing" in trouble[0]
    assert "accepting again" in trouble[1]
    # It happens again later (after the accept already waiting): reported again.
    listener.failures = 3
    clients = []
    for _ in range(2):
        client, server_side = trio.testing.memory_stream_pair()
        await send.send(server_side)
        clients.append(client)
    with trio.fail_after(60):
        for client in clients:
            await ask_morpheus(client)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("trio")]
    assert len([m for m in messages if name in m]) == 4
    server.shutdown()


@pytest.mark.slow
async def test_real_emfile_recovers() -> None:
    # A server allowed 40 descriptors, facing 60 clients at once: the ones
    # it cannot accept wait in the listen backlog, and are served as soon as
    # earlier clients leave.
    limit, clients = 40, 60
    async with server_subprocess(nofile=(limit, limit)) as server:
        host, port = server.addresses[0]
        with trio.fail_after(20):
            streams = [await trio.open_tcp_stream(host, port) for _ in range(clients)]
            answered: list[int] = []
            ten_answered = trio.Event()

            async def ask(i: int) -> None:
                await ask_morpheus(streams[i])
                answered.append(i)
                if len(answered) == 10:
                    ten_answered.set()

            async with trio.open_nursery() as nursery:
                for i in range(clients):
                    nursery.start_soon(ask, i)
                # Some are served, the rest wait for descriptors.
                await ten_answered.wait()
                await trio.sleep(0.3)
                served_first = list(answered)
                assert len(served_first) < clients
                for i in served_first:
                    await streams[i].aclose()
            # Everyone got the answer in the end.
            assert sorted(answered) == list(range(clients))
            for stream in streams:
                await stream.aclose()
            server.signal(signal.SIGTERM)
            assert await server.wait() == 0
    assert b"accepting new connections is failing: EMFILE" in server.stderr
    # The hard limit is 40 too: the server cannot raise it, and says so.
    assert b"raised the open-files limit" not in server.stderr
    assert b"open-files limit 40 is below --max-connections" in server.stderr
    assert b"accepting again after EMFILE" in server.stderr


async def test_a_client_cannot_write_much_into_the_log(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    _, (host, port) = await start_server(nursery)
    # The error's reason quotes the bad value, 15,000 characters of it.
    header = json.dumps(
        {
            "byteorder": "little",
            "content-type": "text/json",
            "content-encoding": "utf-8",
            "content-length": "x" * 15_000,
        }
    ).encode()
    async with await trio.open_tcp_stream(host, port) as stream:
        with trio.fail_after(10):
            await stream.send_all(struct.pack(">H", len(header)) + header)
            (response,) = await read_messages(stream, 1)
    assert result_of(response)["error"] == "bad_content_length"
    assert caplog.records
    assert max(len(r.getMessage()) for r in caplog.records) < 400


LIMIT_OPTIONS = {
    # option: (ServerSettings field, unit word in the help)
    "--max-connections": ("max_connections", "connections"),
    "--max-content-length": ("max_content_length", "bytes"),
    "--max-header-length": ("max_header_length", "bytes"),
    "--idle-timeout": ("idle_timeout", "seconds"),
    "--request-timeout": ("request_timeout", "seconds"),
    "--shutdown-grace": ("shutdown_grace", "seconds"),
}


@pytest.mark.parametrize("option", sorted(LIMIT_OPTIONS))
def test_every_limit_is_an_option_with_default_and_unit(option: str) -> None:
    field, unit = LIMIT_OPTIONS[option]
    help_text = " ".join(build_parser().format_help().split())
    match = re.search(re.escape(option) + r" \w+ (.*?)\(default: ([^)]*)\)", help_text)
    assert match, f"{option} not in --help"
    description, default = match.groups()
    assert unit in description
    # The option's default is the embedded server's default.
    assert float(default) == getattr(ServerSettings(), field)


def test_installed_server_help_lists_the_limits() -> None:
    result = subprocess.run(
        ["trio-search-server", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={
            **os.environ,
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
        },
    )
    # Whitespace normalised: where argparse wraps a line depends on the help's length.
    text = " ".join(result.stdout.split())
    for option in LIMIT_OPTIONS:
        assert option in text
    assert "(default: 10000)" in text
