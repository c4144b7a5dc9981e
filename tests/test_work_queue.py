"""Work queued for a worker thread: it has a deadline, and it is dropped when
its client has gone (issue 8, item 3)."""

from __future__ import annotations

import socket
import struct
import threading
import time

import trio
import trio.testing

from tests.helpers import json_request, read_messages, read_until_eof, result_of
from tests.test_metrics import parse, value
from tests.test_shutdown import MemoryListener
from trio_search import (
    Deferred,
    Message,
    Metrics,
    Reply,
    RequestError,
    SearchApp,
    SearchServer,
    ServerSettings,
    decode_json,
    json_response,
)

SLOW = json_request({"action": "slow"})
MORPHEUS = json_request({"action": "search", "value": "morpheus"})


class GatedApp:
    """``slow`` takes a worker thread until ``gate`` opens; the rest is search."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.done = 0
        self.search = SearchApp()

    def _work(self) -> str:
        assert self.gate.wait(60)
        self.done += 1
        return "slow answer"

    def respond(self, request: Message) -> Reply | Deferred:
        try:
            body = decode_json(request.content, request.content_encoding)
        except RequestError:
            body = None
        if isinstance(body, dict) and body.get("action") == "slow":
            return Deferred(self._work, lambda text: Reply(json_response({"result": text})))
        return self.search.respond(request)


async def test_work_waiting_for_a_thread_past_the_request_timeout_is_refused(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    app = GatedApp()
    server = SearchServer(ServerSettings(port=0, request_timeout=5, idle_timeout=600), app=app)
    listener = MemoryListener(nursery)
    await nursery.start(server.serve, [listener])
    # Both worker threads taken, for longer than the request timeout.
    busy = [listener.connect(), listener.connect()]
    for client in busy:
        await client.send_all(SLOW)
    await trio.sleep(1)
    late = listener.connect()
    await late.send_all(MORPHEUS + SLOW)
    start = trio.current_time()
    with trio.fail_after(60):
        first, refused = await read_messages(late, 2)
    # What was answered before the queued work is not lost.
    assert result_of(first) == {"result": "Follow the white rabbit. \U0001f430"}
    assert result_of(refused)["error"] == "overloaded"
    assert trio.current_time() - start == 5
    assert await read_until_eof(late) == b""
    assert server.stats.errors["overloaded"] == 1
    # The work already running has no deadline: it finishes and is answered.
    app.gate.set()
    for client in busy:
        (answer,) = await read_messages(client, 1)
        assert result_of(answer) == {"result": "slow answer"}
    assert app.done == 2


async def test_work_of_a_client_that_reset_is_dropped(nursery: trio.Nursery) -> None:
    app = GatedApp()
    server = SearchServer(ServerSettings(port=0), app=app)
    (host, port), *_ = await nursery.start(server.serve)
    with trio.fail_after(20):
        busy = [await trio.open_tcp_stream(host, port) for _ in range(2)]
        for client in busy:
            await client.send_all(SLOW)
        gone = trio.socket.socket()
        await gone.connect((host, port))
        await gone.send(SLOW)
        await trio.sleep(0.3)  # its work is queued behind the two
        # Close with a reset (SO_LINGER 0), as a killed client's kernel does.
        gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        gone.close()
        await trio.sleep(0.3)
        app.gate.set()
        for client in busy:
            (answer,) = await read_messages(client, 1)
            assert result_of(answer) == {"result": "slow answer"}
            await client.aclose()
        # The server's counter is what we wait for; it has no event.
        while server.stats.connections_open:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert app.done == 2  # the third was never run
    assert server.stats.errors["connection_lost"] == 1


async def test_the_worker_threads_show_in_the_metrics(nursery: trio.Nursery) -> None:
    # Busy threads and work queued for them are what an operator needs to
    # see when costly queries pile up.
    app = GatedApp()
    server = SearchServer(ServerSettings(port=0), app=app, metrics=Metrics())
    (host, port), *_ = await nursery.start(server.serve)

    def gauges() -> tuple[float, float]:
        samples = parse(server.metrics_exposition())
        return (
            value(samples, "trio_search_worker_threads_busy"),
            value(samples, "trio_search_worker_jobs_queued"),
        )

    with trio.fail_after(20):
        assert gauges() == (0, 0)
        clients = [await trio.open_tcp_stream(host, port) for _ in range(3)]
        for client in clients:
            await client.send_all(SLOW)
        while gauges() != (2, 1):  # noqa: ASYNC110 (threads have no Trio event)
            await trio.sleep(0.01)
        await trio.sleep(0.1)  # the third waits that long at least
        app.gate.set()
        for client in clients:
            (answer,) = await read_messages(client, 1)
            assert result_of(answer) == {"result": "slow answer"}
            await client.aclose()
        while gauges() != (0, 0):  # noqa: ASYNC110
            await trio.sleep(0.01)
    samples = parse(server.metrics_exposition())
    assert value(samples, "trio_search_worker_queue_wait_seconds_count") == 3
    # The third waited for one of the first two to finish.
    assert value(samples, "trio_search_worker_queue_wait_seconds_sum") >= 0.1


def stall_the_event_loop(seconds: float) -> None:
    """Keep the event loop from running anything for ``seconds``."""
    time.sleep(seconds)


async def test_work_a_thread_takes_as_its_deadline_passes_is_answered(
    nursery: trio.Nursery,
) -> None:
    # The deadline of work waiting for a thread passes after a thread took it
    # but before the event loop heard (the loop was busy): the work runs to
    # its end, and neither its answer nor the next request's may be lost to
    # the spent timer (they were: "overloaded" for the next work, which never
    # waited, or, over a stream the kernel does not take at once, a send
    # timeout and no answer).
    app = GatedApp()
    server = SearchServer(ServerSettings(port=0, request_timeout=0.5, idle_timeout=600), app=app)
    listener = MemoryListener(nursery)
    await nursery.start(server.serve, [listener])
    busy = [listener.connect(), listener.connect()]
    for client in busy:
        await client.send_all(SLOW)
    await trio.sleep(0.1)  # both threads taken
    late = listener.connect()
    await late.send_all(SLOW + SLOW)
    await trio.sleep(0.1)  # the first queued, its deadline 0.5 s away
    app.gate.set()  # the threads finish, and one takes it at once...
    stall_the_event_loop(0.6)  # ...while the loop is busy past its deadline
    with trio.fail_after(10):
        answers = await read_messages(late, 2)
    assert [result_of(answer) for answer in answers] == [{"result": "slow answer"}] * 2
    for client in busy:
        (answer,) = await read_messages(client, 1)
        assert result_of(answer) == {"result": "slow answer"}
    assert "overloaded" not in server.stats.errors
