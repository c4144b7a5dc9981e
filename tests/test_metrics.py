"""Prometheus metrics: the metric set, the /metrics HTTP endpoint, and the
sum over worker processes.

The HTTP core is tested without sockets; timeouts and the connection limit
on the autojump clock over memory streams; routes, keep-alive and many
scrapes at once on a real socket, port 0, loopback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import h11
import pytest
import trio
import trio.testing
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from trio_search import ConfigurationError
from trio_search._http_metrics import (
    METRICS_EVICT_AFTER,
    METRICS_LINGER_TIMEOUT,
    METRICS_MAX_CONNECTIONS,
    METRICS_MAX_HEADER_SIZE,
    METRICS_REQUEST_TIMEOUT,
    METRICS_SEND_TIMEOUT,
    NEED_DATA,
    MetricsHTTP,
    Reply,
    handle_metrics_connection,
    open_metrics_listeners,
    parse_metrics_address,
    serve_metrics,
)
from trio_search._metrics import ACTIONS, LATENCY_BUCKETS, MAX_ERROR_CODES, Metrics
from trio_search._metrics_aggregate import (
    LOCK_SUFFIX,
    MAX_SNAPSHOT_BYTES,
    SNAPSHOT_INTERVAL,
    aggregate,
    exposition_of,
    is_live,
    merge_snapshots,
    write_snapshots,
)
from trio_search._server_cli import main as server_main

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(exposition: bytes) -> Samples:
    """Every sample of an exposition, by name and labels."""
    samples: Samples = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def busy_metrics() -> Metrics:
    """A Metrics object with something counted in every metric."""
    metrics = Metrics()
    metrics.count_request("search", 0.000_3)
    metrics.count_request("search", 0.000_04)
    metrics.count_request("query", 0.02)
    metrics.count_request("no such action", 2.0)
    metrics.count_error("busy")
    metrics.count_error("bad_header")
    metrics.count_error("bad_header")
    for _ in range(3):
        metrics.connection_opened()
    metrics.connection_closed()
    metrics.connection_refused("busy")
    metrics.connection_refused("per_ip")
    metrics.connection_refused("per_ip")
    metrics.count_bytes(received=100, sent=250)
    metrics.count_bytes(sent=50)
    metrics.index_loaded(documents=12, generation=7, loaded_at=1_700_000_000.5)
    return metrics


# ---------------------------------------------------------------- the metric set


def test_updates_appear_in_exposition() -> None:
    samples = parse(busy_metrics().exposition())
    requests = "trio_search_requests_total"
    assert value(samples, requests, action="search") == 2
    assert value(samples, requests, action="query") == 1
    assert value(samples, requests, action="other") == 1
    assert value(samples, requests, action="stats") == 0
    assert value(samples, requests, action="binary") == 0
    assert value(samples, "trio_search_errors_total", code="busy") == 1
    assert value(samples, "trio_search_errors_total", code="bad_header") == 2
    assert value(samples, "trio_search_connections_open") == 2
    assert value(samples, "trio_search_connections_accepted_total") == 3
    assert value(samples, "trio_search_connections_refused_total", reason="busy") == 1
    assert value(samples, "trio_search_connections_refused_total", reason="per_ip") == 2
    assert value(samples, "trio_search_received_bytes_total") == 100
    assert value(samples, "trio_search_sent_bytes_total") == 300
    assert value(samples, "trio_search_index_documents") == 12
    assert value(samples, "trio_search_index_generation") == 7
    assert value(samples, "trio_search_index_last_reload_timestamp_seconds") == 1_700_000_000.5
    latency = "trio_search_request_duration_seconds"
    assert value(samples, latency + "_count") == 4
    assert value(samples, latency + "_sum") == pytest.approx(2.020_34)
    assert value(samples, latency + "_bucket", le="5e-05") == 1
    assert value(samples, latency + "_bucket", le="0.0005") == 2
    assert value(samples, latency + "_bucket", le="0.025") == 3
    assert value(samples, latency + "_bucket", le="1.0") == 3
    assert value(samples, latency + "_bucket", le="+Inf") == 4


def test_latency_buckets_span_50_microseconds_to_1_second() -> None:
    assert LATENCY_BUCKETS[0] == 0.000_05
    assert LATENCY_BUCKETS[-1] == 1.0
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)


def test_every_action_is_labelled_from_the_start() -> None:
    samples = parse(Metrics().exposition())
    for action in ACTIONS:
        assert value(samples, "trio_search_requests_total", action=action) == 0


def test_index_loaded_defaults_to_now() -> None:
    metrics = Metrics()
    metrics.index_loaded(documents=1, generation=1)
    reloaded = value(parse(metrics.exposition()), "trio_search_index_last_reload_timestamp_seconds")
    assert abs(reloaded - __import__("time").time()) < 60


def test_unknown_refusal_reason_is_a_bug() -> None:
    with pytest.raises(ValueError, match="unknown refusal reason"):
        Metrics().connection_refused("tired")


def test_error_codes_are_bounded() -> None:
    metrics = Metrics()
    for number in range(MAX_ERROR_CODES + 10):
        metrics.count_error(f"code_{number}")
    metrics.count_error("code_0")
    samples = parse(metrics.exposition())
    codes = {
        dict(labels)["code"]: count
        for (name, labels), count in samples.items()
        if name == "trio_search_errors_total"
    }
    assert len(codes) == MAX_ERROR_CODES + 1
    assert codes["code_0"] == 2
    assert codes["other"] == 10


def test_two_instances_do_not_share_state() -> None:
    first, second = Metrics(), Metrics()
    first.count_request("search", 0.001)
    first.connection_opened()
    assert value(parse(first.exposition()), "trio_search_requests_total", action="search") == 1
    samples = parse(second.exposition())
    assert value(samples, "trio_search_requests_total", action="search") == 0
    assert value(samples, "trio_search_connections_open") == 0
    # Nothing lands in prometheus_client's global registry.
    assert REGISTRY.get_sample_value("trio_search_requests_total", {"action": "search"}) is None


# ---------------------------------------------------------------- HTTP, without I/O


@attrs.frozen
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def read_responses(data: bytes, count: int, method: bytes = b"GET") -> list[Response]:
    """``count`` responses parsed from ``data`` by an h11 client."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(data)
    responses = []
    for _ in range(count):
        client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        client.send(h11.EndOfMessage())
        event = client.next_event()
        assert isinstance(event, h11.Response), event
        body = b""
        while not isinstance(part := client.next_event(), h11.EndOfMessage):
            assert isinstance(part, h11.Data), part
            body += part.data
        headers = {name.decode(): value.decode() for name, value in event.headers}
        responses.append(Response(event.status_code, headers, body))
        if client.our_state is h11.DONE and client.their_state is h11.DONE:
            client.start_next_cycle()
    return responses


def request(target: str = "/metrics", method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode()


def reply_to(data: bytes, exposition: Callable[[], bytes] = lambda: b"m 1\n") -> Reply:
    connection = MetricsHTTP(exposition)
    connection.receive_data(data)
    reply = connection.next_reply()
    assert isinstance(reply, Reply), reply
    return reply


def test_get_metrics() -> None:
    reply = reply_to(request())
    assert reply.keep_alive
    [response] = read_responses(reply.data, 1)
    assert response.status == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert response.body == b"m 1\n"
    assert "date" in response.headers


def test_query_string_is_ignored() -> None:
    assert reply_to(request("/metrics?name[]=x")).status == 200


def test_request_fed_one_byte_at_a_time() -> None:
    connection = MetricsHTTP(lambda: b"m 1\n")
    data = request()
    for byte in data[:-1]:
        connection.receive_data(bytes([byte]))
        assert connection.next_reply() is NEED_DATA
    connection.receive_data(data[-1:])
    reply = connection.next_reply()
    assert isinstance(reply, Reply) and reply.status == 200


@pytest.mark.parametrize("target", ["/", "/metric", "/metrics/", "/favicon.ico"])
def test_other_paths_are_not_found(target: str) -> None:
    reply = reply_to(request(target))
    assert reply.status == 404
    assert reply.keep_alive


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_other_methods_are_not_allowed(method: str) -> None:
    reply = reply_to(request(method=method))
    assert reply.status == 405
    [response] = read_responses(reply.data, 1, method=method.encode())
    assert response.headers["allow"] == "GET, HEAD"


def test_head_has_get_s_headers_and_no_body() -> None:
    connection = MetricsHTTP(lambda: b"m 1\n")
    connection.receive_data(request(method="HEAD") + request())
    head, get = connection.next_reply(), connection.next_reply()
    assert isinstance(head, Reply) and isinstance(get, Reply)
    assert head.status == 200 and head.keep_alive
    [head_response] = read_responses(head.data, 1, method=b"HEAD")
    [get_response] = read_responses(get.data, 1)
    assert head_response.body == b""
    assert get_response.body == b"m 1\n"
    del head_response.headers["date"], get_response.headers["date"]
    assert head_response.headers == get_response.headers


@pytest.mark.parametrize(
    "garbage",
    [b"hello\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", b"GET\r\n\r\n"],
)
def test_garbage_is_a_bad_request(garbage: bytes) -> None:
    reply = reply_to(garbage)
    assert reply.status == 400
    assert not reply.keep_alive
    [response] = read_responses(reply.data, 1)
    assert response.headers["connection"] == "close"


def test_over_long_head_is_refused() -> None:
    connection = MetricsHTTP(lambda: b"")
    # Still incomplete past the limit: h11 gives up rather than buffer more.
    connection.receive_data(b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * METRICS_MAX_HEADER_SIZE)
    reply = connection.next_reply()
    assert isinstance(reply, Reply)
    assert reply.status == 431
    assert not reply.keep_alive


def test_request_with_body_is_answered_then_closed() -> None:
    reply = reply_to(request(method="GET", extra="Content-Length: 5\r\n") + b"he")
    assert reply.status == 200
    assert not reply.keep_alive
    assert read_responses(reply.data, 1)[0].headers["connection"] == "close"


def test_pipelined_requests_each_get_a_reply() -> None:
    connection = MetricsHTTP(lambda: b"m 1\n")
    connection.receive_data(request() + request("/") + request())
    replies = [connection.next_reply() for _ in range(3)]
    assert [reply.status for reply in replies if isinstance(reply, Reply)] == [200, 404, 200]
    assert connection.next_reply() is NEED_DATA


def test_client_asking_to_close() -> None:
    reply = reply_to(request(extra="Connection: close\r\n"))
    assert reply.status == 200
    assert not reply.keep_alive


def test_http_1_0_is_not_kept_alive() -> None:
    reply = reply_to(b"GET /metrics HTTP/1.0\r\n\r\n")
    assert reply.status == 200
    assert not reply.keep_alive


def test_failing_exposition_is_a_server_error(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> bytes:
        raise RuntimeError("boom")

    reply = reply_to(request(), broken)
    assert reply.status == 500
    assert reply.keep_alive
    assert "metrics exposition failed" in caplog.text


def test_end_of_file_between_requests_closes_quietly() -> None:
    connection = MetricsHTTP(lambda: b"")
    connection.receive_data(b"")
    assert connection.next_reply() is None


def test_end_of_file_inside_a_request_is_a_bad_request() -> None:
    connection = MetricsHTTP(lambda: b"")
    connection.receive_data(b"GET /metr")
    assert connection.next_reply() is NEED_DATA
    connection.receive_data(b"")
    reply = connection.next_reply()
    assert isinstance(reply, Reply) and reply.status == 400


def test_timeout_reply() -> None:
    idle = MetricsHTTP(lambda: b"")
    assert idle.timeout_reply() is None
    partial = MetricsHTTP(lambda: b"")
    partial.receive_data(b"GET /metrics HTTP/1.1\r\nHo")
    assert partial.next_reply() is NEED_DATA
    reply = partial.timeout_reply()
    assert reply is not None and reply.status == 408 and not reply.keep_alive


# ---------------------------------------------------------------- HTTP, memory streams


async def read_until_eof(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data


async def test_idle_client_is_closed(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    client, server_side = trio.testing.memory_stream_pair()
    nursery.start_soon(handle_metrics_connection, server_side, lambda: b"")
    start = trio.current_time()
    assert await read_until_eof(client) == b""
    assert trio.current_time() - start == pytest.approx(METRICS_REQUEST_TIMEOUT)


async def test_idle_keep_alive_connection_is_closed(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    client, server_side = trio.testing.memory_stream_pair()
    nursery.start_soon(handle_metrics_connection, server_side, lambda: b"m 1\n")
    await client.send_all(request())
    await trio.sleep(1)
    start = trio.current_time()
    data = await read_until_eof(client)
    assert [response.status for response in read_responses(data, 1)] == [200]
    assert trio.current_time() - start == pytest.approx(METRICS_REQUEST_TIMEOUT - 1)


async def test_slow_client_gets_408(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    client, server_side = trio.testing.memory_stream_pair()
    nursery.start_soon(handle_metrics_connection, server_side, lambda: b"")

    async def drip(data: bytes) -> None:
        # One byte a second: each byte is progress, but the whole head is late.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            for index in range(len(data)):
                await client.send_all(data[index : index + 1])
                await trio.sleep(1)

    start = trio.current_time()
    nursery.start_soon(drip, request())
    answer = await client.receive_some()
    assert trio.current_time() - start == pytest.approx(METRICS_REQUEST_TIMEOUT)
    # The server shut its side after answering; it closes when we do.
    assert await read_until_eof(client) == b""
    [response] = read_responses(answer, 1)
    assert response.status == 408
    assert response.headers["connection"] == "close"


async def test_client_that_does_not_read_is_closed(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    # No buffer in between, so the answer is never taken.
    client, server_side = trio.testing.lockstep_stream_pair()
    done = trio.Event()

    async def serve() -> None:
        await handle_metrics_connection(server_side, lambda: b"m 1\n" * 1000)
        done.set()

    nursery.start_soon(serve)
    await client.send_all(request())
    start = trio.current_time()
    await done.wait()
    assert trio.current_time() - start == pytest.approx(METRICS_SEND_TIMEOUT)
    with pytest.raises(trio.BrokenResourceError):
        await client.send_all(b"x")


async def test_linger_is_bounded(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    client, server_side = trio.testing.memory_stream_pair()
    done = trio.Event()

    async def serve() -> None:
        await handle_metrics_connection(server_side, lambda: b"")
        done.set()

    nursery.start_soon(serve)
    await client.send_all(b"garbage\r\n\r\n")
    start = trio.current_time()
    await done.wait()  # the client never closes
    assert trio.current_time() - start == pytest.approx(METRICS_LINGER_TIMEOUT)
    assert read_responses(await read_until_eof(client), 1)[0].status == 400


async def test_stream_is_closed_when_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, server_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(handle_metrics_connection, server_side, lambda: b"")
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert await client.receive_some() == b""


@attrs.define(eq=False)
class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """A listener whose clients connect in memory, for the autojump clock."""

    _send: trio.MemorySendChannel[trio.abc.Stream] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[trio.abc.Stream] = attrs.field(init=False)
    closed: bool = False

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[trio.abc.Stream](1000)

    def connect(
        self,
        pair: Callable[
            [], tuple[trio.abc.Stream, trio.abc.Stream]
        ] = trio.testing.memory_stream_pair,
    ) -> trio.abc.Stream:
        """A new client; with ``lockstep_stream_pair``, one whose answers
        stay unsent until it reads them."""
        client, server_side = pair()
        self._send.send_nowait(server_side)
        return client

    async def accept(self) -> trio.abc.Stream:
        return await self._receive.receive()

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


async def is_open(client: trio.abc.ReceiveStream) -> bool:
    """Whether the server still holds ``client``'s connection open (it
    neither answers nor closes it within a second)."""
    with trio.move_on_after(1):
        await client.receive_some()
        return False
    return True


async def wait_silently(client: trio.abc.Stream) -> None:
    """The client sends nothing."""


async def send_part_of_a_head(client: trio.abc.Stream) -> None:
    await client.send_all(request()[:5])


async def keep_alive_after_a_scrape(client: trio.abc.Stream) -> None:
    await client.send_all(request())
    assert b"200 OK" in await client.receive_some()


@pytest.mark.parametrize("wait", [wait_silently, send_part_of_a_head, keep_alive_after_a_scrape])
async def test_at_the_limit_a_scrape_takes_the_slot_of_the_longest_waiting(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    wait: Callable[[trio.abc.Stream], Awaitable[None]],
) -> None:
    """Connections that wait for a request fill the endpoint: a scrape still
    gets its answer, at most METRICS_EVICT_AFTER later, in the slot of the
    one that waited longest, which is closed; the others stay open."""
    caplog.set_level(logging.INFO, logger="trio_search")
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_metrics, [listener], lambda: b"m 1\n")
        waiting = []
        for _ in range(METRICS_MAX_CONNECTIONS):
            client = listener.connect()
            await wait(client)
            waiting.append(client)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        scrape = listener.connect()
        await scrape.send_all(request(extra="Connection: close\r\n"))
        [response] = read_responses(await read_until_eof(scrape), 1)
        assert response.status == 200
        assert response.body == b"m 1\n"
        assert trio.current_time() - start == pytest.approx(METRICS_EVICT_AFTER)
        assert await read_until_eof(waiting[0]) == b""
        assert await is_open(waiting[1])
        assert await is_open(waiting[-1])
        nursery.cancel_scope.cancel()
    [line] = [r.getMessage() for r in caplog.records if "to make room" in r.getMessage()]
    assert line == (
        f"?: metrics connection closed after {METRICS_EVICT_AFTER:.1f} s without a request, "
        f"to make room for a new one (at most {METRICS_MAX_CONNECTIONS} at once)"
    )
    assert listener.closed


async def test_a_connection_being_answered_is_not_closed_for_a_new_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_metrics, [listener], lambda: b"m 1\n")
        # The oldest connection: its answer waits for it to read.
        being_answered = listener.connect(trio.testing.lockstep_stream_pair)
        await being_answered.send_all(request())
        silent = [listener.connect() for _ in range(METRICS_MAX_CONNECTIONS - 1)]
        await trio.sleep(METRICS_SEND_TIMEOUT / 2)
        scrape = listener.connect()
        await scrape.send_all(request(extra="Connection: close\r\n"))
        assert read_responses(await read_until_eof(scrape), 1)[0].status == 200
        assert await read_until_eof(silent[0]) == b""  # the longest waiting
        assert await is_open(silent[1])
        assert read_responses(await being_answered.receive_some(), 1)[0].status == 200
        nursery.cancel_scope.cancel()


async def test_when_every_connection_is_being_answered_a_new_one_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_metrics, [listener], lambda: b"m 1\n")
        clients = [
            listener.connect(trio.testing.lockstep_stream_pair)
            for _ in range(METRICS_MAX_CONNECTIONS)
        ]
        for client in clients:
            await client.send_all(request())  # and never read the answer
        start = trio.current_time()
        scrape = listener.connect()
        await scrape.send_all(request(extra="Connection: close\r\n"))
        # Served once the others' answers time out, not before.
        assert read_responses(await read_until_eof(scrape), 1)[0].status == 200
        assert trio.current_time() - start == pytest.approx(METRICS_SEND_TIMEOUT)
        nursery.cancel_scope.cancel()
    assert listener.closed


async def test_connection_limit(autojump_clock: trio.testing.MockClock) -> None:
    """Past the limit, a connection is served only in the place of another:
    never more than METRICS_MAX_CONNECTIONS at once."""
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_metrics, [listener], lambda: b"m 1\n")
        clients = [listener.connect() for _ in range(METRICS_MAX_CONNECTIONS * 3)]
        for client in clients:
            await client.send_all(request())
        await trio.testing.wait_all_tasks_blocked()
        # The connections within the limit are answered at once...
        for client in clients[:METRICS_MAX_CONNECTIONS]:
            assert b"200 OK" in await client.receive_some()
        # ...and each one past it in the place of one of those.
        for index, client in enumerate(clients[METRICS_MAX_CONNECTIONS:]):
            assert b"200 OK" in await client.receive_some()
            assert await clients[index].receive_some() == b""
        nursery.cancel_scope.cancel()
    assert listener.closed


# ---------------------------------------------------------------- HTTP, real sockets


async def start_endpoint(
    nursery: trio.Nursery, exposition: Callable[[], bytes], host: str = "127.0.0.1"
) -> tuple[str, int]:
    listeners = await open_metrics_listeners(host, 0)
    [address] = await nursery.start(serve_metrics, listeners, exposition)
    return address[0], address[1]


async def send_and_read_to_eof(address: tuple[str, int], data: bytes) -> bytes:
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(*address) as stream:
            await stream.send_all(data)
            return await read_until_eof(stream)


async def test_endpoint_answers_a_scrape(nursery: trio.Nursery) -> None:
    metrics = busy_metrics()
    address = await start_endpoint(nursery, metrics.exposition)
    data = await send_and_read_to_eof(address, request(extra="Connection: close\r\n"))
    [response] = read_responses(data, 1)
    assert response.status == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert parse(response.body) == parse(metrics.exposition())


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (request("/", extra="Connection: close\r\n"), 404),
        (request("/nope", extra="Connection: close\r\n"), 404),
        (request(method="POST", extra="Connection: close\r\n"), 405),
        (b"\x00\x01garbage\r\n\r\n", 400),
    ],
)
async def test_endpoint_errors(nursery: trio.Nursery, data: bytes, status: int) -> None:
    address = await start_endpoint(nursery, lambda: b"m 1\n")
    [response] = read_responses(await send_and_read_to_eof(address, data), 1)
    assert response.status == status


async def test_endpoint_keep_alive(nursery: trio.Nursery) -> None:
    counter = iter(range(100))
    address = await start_endpoint(nursery, lambda: f"m {next(counter)}\n".encode())
    client = h11.Connection(h11.CLIENT)
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(*address) as stream:
            for expected in (b"m 0\n", b"m 1\n"):
                get = h11.Request(method="GET", target="/metrics", headers=[("Host", "x")])
                await stream.send_all(client.send(get) + client.send(h11.EndOfMessage()))
                body = b""
                while True:
                    event = client.next_event()
                    if event is h11.NEED_DATA:
                        client.receive_data(await stream.receive_some())
                    elif isinstance(event, h11.Response):
                        assert event.status_code == 200
                    elif isinstance(event, h11.Data):
                        body += event.data
                    else:
                        assert isinstance(event, h11.EndOfMessage)
                        break
                assert body == expected
                client.start_next_cycle()


async def test_endpoint_many_concurrent_scrapes(nursery: trio.Nursery) -> None:
    metrics = busy_metrics()
    address = await start_endpoint(nursery, metrics.exposition)
    expected = parse(metrics.exposition())
    clients = METRICS_MAX_CONNECTIONS * 2  # half of them wait in the backlog first
    statuses: list[int] = []

    async def scrape() -> None:
        data = await send_and_read_to_eof(address, request(extra="Connection: close\r\n"))
        [response] = read_responses(data, 1)
        assert parse(response.body) == expected
        statuses.append(response.status)

    with trio.fail_after(30):
        async with trio.open_nursery() as scrapers:
            for _ in range(clients):
                scrapers.start_soon(scrape)
    assert statuses == [200] * clients


async def test_endpoint_full_of_silent_connections_answers_a_scrape(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """The user's report: METRICS_MAX_CONNECTIONS sockets that send nothing
    no longer keep a scrape waiting until they time out (10 s, Prometheus'
    own scrape timeout)."""
    caplog.set_level(logging.INFO, logger="trio_search")
    metrics = busy_metrics()
    address = await start_endpoint(nursery, metrics.exposition)
    async with contextlib.AsyncExitStack() as silent_clients:
        silent = [
            await silent_clients.enter_async_context(await trio.open_tcp_stream(*address))
            for _ in range(METRICS_MAX_CONNECTIONS)
        ]
        with trio.fail_after(METRICS_EVICT_AFTER + 3):
            data = await send_and_read_to_eof(address, request(extra="Connection: close\r\n"))
            [response] = read_responses(data, 1)
            assert response.status == 200
            assert parse(response.body) == parse(metrics.exposition())
            # Its slot was the first silent connection's (accepted first).
            assert await read_until_eof(silent[0]) == b""
        host, port = silent[0].socket.getsockname()[:2]
    assert any(
        record.levelno == logging.INFO
        and record.getMessage().startswith(f"{host}:{port}: metrics connection closed after")
        for record in caplog.records
    )


async def test_endpoint_on_ipv6(nursery: trio.Nursery) -> None:
    try:
        address = await start_endpoint(nursery, lambda: b"m 1\n", host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    data = await send_and_read_to_eof(address, request(extra="Connection: close\r\n"))
    assert read_responses(data, 1)[0].status == 200


async def test_listeners_closed_when_cancelled() -> None:
    listeners = await open_metrics_listeners("127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_metrics, listeners, lambda: b"")
        nursery.cancel_scope.cancel()
    assert all(listener.socket.fileno() == -1 for listener in listeners)


# ---------------------------------------------------------------- --metrics HOST:PORT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9100", ("::1", 9100)),
        ("[fe80::1%eth0]:65535", ("fe80::1%eth0", 65535)),
        (":9100", ("", 9100)),
    ],
)
def test_parse_metrics_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_metrics_address(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9100", "no port"),
        ("localhost", "no port"),
        ("::1:9100", "needs brackets"),
        ("[::1]", "no ':PORT'"),
        ("[::1]9100", "no ':PORT'"),
        ("[::1:9100", "no ']'"),
        ("[]:9100", "empty IPv6"),
        ("host:", "not a number"),
        ("host:http", "not a number"),
        ("host:-1", "not a number"),
        ("host:\u0661\u0662", "not a number"),
        ("host:65536", "above 65535"),
    ],
)
def test_parse_metrics_address_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        parse_metrics_address(text)
    assert caught.value.code == "bad_option"
    assert "HOST:PORT" in str(caught.value)


# ---------------------------------------------------------------- workers


@attrs.define(eq=False)
class Worker:
    """A worker's snapshot task, running."""

    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    ended: trio.Event = attrs.field(factory=trio.Event)

    async def stop(self) -> None:
        """A clean exit: cancel it, and wait for its last snapshot (written
        in a worker thread)."""
        self.scope.cancel()
        await self.ended.wait()


async def start_worker(
    nursery: trio.Nursery, directory: Path, metrics: Metrics, name: str
) -> Worker:
    """A worker's snapshot task, started once its first snapshot is written."""
    worker = Worker()

    async def run(task_status: trio.TaskStatus[None]) -> None:
        try:
            with worker.scope:
                await write_snapshots(
                    directory, metrics.snapshot, worker=name, task_status=task_status
                )
        finally:
            worker.ended.set()

    await nursery.start(run)
    return worker


def worker_metrics(requests: int, connections: int, generation: int) -> Metrics:
    metrics = Metrics()
    for _ in range(requests):
        metrics.count_request("search", 0.001)
    for _ in range(connections):
        metrics.connection_opened()
    metrics.count_error("busy")
    metrics.index_loaded(documents=10 * generation, generation=generation, loaded_at=generation)
    return metrics


async def test_two_workers_are_summed(tmp_path: Path, nursery: trio.Nursery) -> None:
    await start_worker(nursery, tmp_path, worker_metrics(3, 2, generation=5), "w1")
    await start_worker(nursery, tmp_path, worker_metrics(4, 1, generation=6), "w2")
    samples = parse(aggregate(tmp_path))
    assert value(samples, "trio_search_requests_total", action="search") == 7
    assert value(samples, "trio_search_requests_total", action="query") == 0
    assert value(samples, "trio_search_errors_total", code="busy") == 2
    assert value(samples, "trio_search_connections_open") == 3
    assert value(samples, "trio_search_connections_accepted_total") == 3
    assert value(samples, "trio_search_request_duration_seconds_count") == 7
    assert value(samples, "trio_search_request_duration_seconds_bucket", le="0.001") == 7
    assert value(samples, "trio_search_request_duration_seconds_bucket", le="0.0005") == 0
    # Every worker serves the same index: its figures are the newest, not a sum.
    assert value(samples, "trio_search_index_generation") == 6
    assert value(samples, "trio_search_index_documents") == 60
    assert value(samples, "trio_search_index_last_reload_timestamp_seconds") == 6
    assert not any(name.endswith("_created") for name, _ in samples)


def snapshot_files(directory: Path) -> list[Path]:
    return list(directory.glob("*.json"))


async def test_restarted_worker_neither_vanishes_nor_counts_twice(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    first = worker_metrics(3, 2, generation=5)
    stop_first = await start_worker(nursery, tmp_path, first, "w1")
    await start_worker(nursery, tmp_path, worker_metrics(4, 1, generation=5), "w2")
    # Counted after the last periodic snapshot: the clean exit writes it.
    first.count_request("search", 0.001)
    await stop_first.stop()
    samples = parse(aggregate(tmp_path))
    assert value(samples, "trio_search_requests_total", action="search") == 8
    assert value(samples, "trio_search_connections_open") == 1  # only w2's
    # Slot 1 again: a new process counting from zero, in files of its own.
    await start_worker(nursery, tmp_path, worker_metrics(2, 5, generation=5), "w1")
    samples = parse(aggregate(tmp_path))
    assert value(samples, "trio_search_requests_total", action="search") == 10
    assert value(samples, "trio_search_connections_open") == 6
    assert value(samples, "trio_search_connections_accepted_total") == 2 + 1 + 5
    # The exited worker's counts moved to the retired sum, its files went.
    names = sorted(path.name.split("-")[0] for path in snapshot_files(tmp_path))
    assert names == ["retired.json", "w1", "w2"]
    assert parse(aggregate(tmp_path)) == samples


async def test_many_restarts_stay_exact_and_bounded(tmp_path: Path, nursery: trio.Nursery) -> None:
    await start_worker(nursery, tmp_path, worker_metrics(1, 1, generation=1), "w2")
    seen = []
    for restart in range(1, 21):
        stop = await start_worker(nursery, tmp_path, worker_metrics(2, 1, generation=1), "w1")
        await stop.stop()
        samples = parse(aggregate(tmp_path))
        seen.append(value(samples, "trio_search_requests_total", action="search"))
        assert value(samples, "trio_search_connections_open") == 1
        assert value(samples, "trio_search_request_duration_seconds_count") == 1 + 2 * restart
        assert len(snapshot_files(tmp_path)) == 2  # w2's and the retired sum
    assert seen == [1 + 2 * restart for restart in range(1, 21)]


def test_interrupted_retirement_counts_once(tmp_path: Path) -> None:
    """A call that wrote the retired sum but died before deleting the files
    it folded in: the next call neither counts them again nor keeps them."""
    dead = snapshot("c", "counter", [["c_total", {}, 2]])
    (tmp_path / "w1-1-1.json").write_text(json.dumps(dead))
    retired = {**snapshot("c", "counter", [["c_total", {}, 5]]), "folded": ["w1-1-1"]}
    (tmp_path / "retired.json").write_text(json.dumps(retired))
    assert parse(aggregate(tmp_path)) == {("c_total", frozenset()): 5}
    assert not (tmp_path / "w1-1-1.json").exists()
    # A later death: folded in, and the stale name dropped.
    (tmp_path / "w1-2-2.json").write_text(json.dumps(dead))
    assert parse(aggregate(tmp_path)) == {("c_total", frozenset()): 7}
    assert json.loads((tmp_path / "retired.json").read_text())["folded"] == ["w1-2-2"]


async def test_snapshots_follow_the_counts(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    metrics = Metrics()
    await start_worker(nursery, tmp_path, metrics, "w1")
    metrics.count_request("query", 0.01)
    assert value(parse(aggregate(tmp_path)), "trio_search_requests_total", action="query") == 0
    # (The autojump clock also moves while a snapshot is written in its
    # thread: a bound of a few intervals, not one and a half.)
    with trio.fail_after(SNAPSHOT_INTERVAL * 3):
        # Polling the files is the point here.
        while value(parse(aggregate(tmp_path)), "trio_search_requests_total", action="query") != 1:  # noqa: ASYNC110
            await trio.sleep(SNAPSHOT_INTERVAL / 10)


KILLED_WORKER = textwrap.dedent(
    """
    import sys, trio
    from trio_search._metrics import Metrics
    from trio_search._metrics_aggregate import write_snapshots

    async def main():
        metrics = Metrics()
        for _ in range(5):
            metrics.count_request("search", 0.001)
        metrics.connection_opened()
        async with trio.open_nursery() as nursery:
            await nursery.start(write_snapshots, sys.argv[1], metrics.snapshot)
            print("ready", flush=True)
            await trio.sleep_forever()

    trio.run(main)
    """
)


@pytest.mark.slow
def test_killed_worker_keeps_its_counts_and_drops_its_gauges(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_WORKER, str(tmp_path)], stdout=subprocess.PIPE, env=env
    ) as worker:
        assert worker.stdout is not None
        assert worker.stdout.readline() == b"ready\n"
        [lock] = tmp_path.glob("*" + LOCK_SUFFIX)
        assert is_live(lock)
        samples = parse(aggregate(tmp_path))
        assert value(samples, "trio_search_connections_open") == 1
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    assert not is_live(lock)
    samples = parse(aggregate(tmp_path))
    assert value(samples, "trio_search_requests_total", action="search") == 5
    assert ("trio_search_connections_open", frozenset()) not in samples


def test_bad_files_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = {"version": 1, "metrics": [{"name": "c", "type": "counter", "help": "h",
                                       "samples": [["c_total", {}, 2]]}]}  # fmt: skip
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "half.json.tmp").write_text("{")  # a write in progress
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "wrong.json").write_text(json.dumps({"version": 99, "metrics": []}))
    (tmp_path / "huge.json").write_bytes(b" " * (MAX_SNAPSHOT_BYTES + 1))
    assert parse(aggregate(tmp_path)) == {("c_total", frozenset()): 2}
    assert len(caplog.records) == 3
    assert parse(aggregate(tmp_path)) == {("c_total", frozenset()): 2}  # good.json retired


def snapshot(name: str, typ: str, samples: list[Any], mode: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "type": typ, "help": "h", "samples": samples}
    if mode is not None:
        entry["aggregate"] = mode
    return {"version": 1, "metrics": [entry]}


def test_merge_gauges_by_mode_over_live_workers() -> None:
    def merged(mode: str) -> Samples:
        return parse(
            exposition_of(
                merge_snapshots(
                    [
                        (snapshot("g", "gauge", [["g", {"k": "a"}, 2]], mode), True),
                        (snapshot("g", "gauge", [["g", {"k": "a"}, 5]], mode), True),
                        (snapshot("g", "gauge", [["g", {"k": "a"}, 100]], mode), False),
                    ]
                )
            )
        )

    assert merged("sum") == {("g", frozenset({("k", "a")})): 7}
    assert merged("max") == {("g", frozenset({("k", "a")})): 5}


def test_merge_rejects_conflicting_types() -> None:
    with pytest.raises(ValueError, match="is a counter and a gauge"):
        merge_snapshots(
            [
                (snapshot("x", "counter", [["x_total", {}, 1]]), True),
                (snapshot("x", "gauge", [["x", {}, 1]], "sum"), True),
            ]
        )


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"version": 1},
        snapshot("g", "gauge", [["g", {}, 1]], "avg"),
        snapshot("s", "stateset", []),
        snapshot("c", "counter", [["c_total", {}, "1"]]),
        snapshot("c", "counter", [["c_total", {"k": 1}, 1]]),
        snapshot("c", "counter", [["c_total", {}, float("nan")]]),
        snapshot("c", "counter", [["c_total", {}]]),
    ],
)
def test_merge_rejects_malformed_snapshots(bad: Any) -> None:
    with pytest.raises(ValueError):
        merge_snapshots([(bad, True)])


async def test_supervisor_serves_the_sum(tmp_path: Path, nursery: trio.Nursery) -> None:
    await start_worker(nursery, tmp_path, worker_metrics(3, 2, generation=5), "w1")
    await start_worker(nursery, tmp_path, worker_metrics(4, 1, generation=5), "w2")
    address = await start_endpoint(nursery, functools.partial(aggregate, tmp_path))
    data = await send_and_read_to_eof(address, request(extra="Connection: close\r\n"))
    samples = parse(read_responses(data, 1)[0].body)
    assert value(samples, "trio_search_requests_total", action="search") == 7


async def test_a_metrics_port_in_use_is_said_to_be_the_metrics_one() -> None:
    taken = await open_metrics_listeners("127.0.0.1", 0)
    port = taken[0].socket.getsockname()[1]
    try:
        with pytest.raises(ConfigurationError) as caught:
            await open_metrics_listeners("127.0.0.1", port)
    finally:
        for listener in taken:
            await listener.aclose()
    assert caught.value.message == (
        f"cannot listen for --metrics on 127.0.0.1:{port}: Address already in use"
    )


async def test_a_metrics_port_taken_by_the_server_itself_says_so() -> None:
    taken = await open_metrics_listeners("127.0.0.1", 0)  # as the search port
    port = taken[0].socket.getsockname()[1]
    try:
        with pytest.raises(ConfigurationError) as caught:
            await open_metrics_listeners("127.0.0.1", port, search_port=port)
    finally:
        for listener in taken:
            await listener.aclose()
    assert caught.value.message.endswith(
        "Address already in use (by the server itself: it is --port too; "
        "give the metrics their own)"
    )


@pytest.mark.parametrize(
    ("host", "metrics"),
    [("127.0.0.1", "127.0.0.1:{port}"), ("127.0.0.1", ":{port}"), ("", "[::1]:{port}")],
)
def test_metrics_on_the_search_port_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], host: str, metrics: str
) -> None:
    port = 38_211
    with pytest.raises(SystemExit) as exited:
        server_main(["--host", host, "--port", str(port), "--metrics", metrics.format(port=port)])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"trio-search-server: error: --metrics and --port both name port {port}: "
        "the metrics need a port of their own (see --help)\n"
    )


def test_a_server_without_metrics_says_how_to_make_one_with_them() -> None:
    import trio_search
    from trio_search import SearchServer, ServerSettings

    settings = ServerSettings(port=0)
    with pytest.raises(RuntimeError) as caught:
        SearchServer(settings).metrics_exposition()
    advice = str(caught.value).partition("make it with ")[2]
    assert advice == "SearchServer(settings, metrics=trio_search.Metrics())"
    # What it says works as written.
    with_metrics = SearchServer(settings, metrics=trio_search.Metrics())
    assert b"trio_search_requests_total" in with_metrics.metrics_exposition()
