"""The load generator's engine: many connections, every answer verified.

Theory of operation
-------------------

One Trio task per connection. The request bytes are built once; a pipelined
batch of depth D is those bytes repeated D times and goes out in one
``send_all``. Responses are parsed with the same :class:`MessageProtocol` the
server uses, and each one is checked against the expected answer: a byte
comparison against answers already seen to be right, falling back to
decoding the JSON ``"result"`` for a server that encodes differently (another
spacing, another codec), whose bytes are then remembered.

Two modes:

- ``keepalive``: each task opens its connection before the clock starts, then
  sends batches on it for the whole run. A failure (closed, reset, timeout,
  broken framing) fails the batch's unanswered requests and the task
  reconnects, except in one case, which a keep-alive client must handle:
  a connection that has answered a batch before ends (end of file or reset)
  before any byte of the next answer. The server closed it as the batch was
  on its way (a graceful shutdown, an idle timeout) and never read it, so,
  as HTTP clients do for idempotent requests, the unanswered requests are
  sent again, once, on a new connection: counted as ``retried``, and as
  failed only if that fails too (``BenchConfig.retry`` turns it off).
- ``oneshot``: the tutorial's pattern, a new connection per request, closed
  by us after the answer; the latency includes the connect (and the TLS
  handshake), and the timeout covers the whole exchange.

Over plain TCP the tasks send and receive on the socket itself rather than
through ``trio.SocketStream`` (the same transport the server uses): the
stream layer's bookkeeping was a measurable share of the load generator's
CPU (see :func:`_io_of`).

The run ends after ``duration`` seconds (requests still in flight are
dropped, neither counted nor failed, as wrk does) or once ``requests``
requests have been answered or failed. Every request that fails counts once,
under one kind (:data:`ERROR_KINDS`).

Latency is measured per request from the write of its batch to the parse of
its response (for a retried request, from its first write), with
``time.perf_counter``. Server CPU time, when a pid is
given, is read from ``/proc`` (Linux) for that process and its descendants
just before the clock starts and just after it stops.
"""

from __future__ import annotations

import functools
import sys
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs
import trio

from .._errors import RemoteProtocolError
from .._limits import RECEIVE_SIZE
from .._message import (
    Message,
)
from .._protocol import CLOSED, NEED_DATA, MessageProtocol
from .._transport import close_stream, send, transport_for
from ._config import BenchConfig, BenchError, Progress
from ._constants import CONNECT_RETRY_DELAY, ERROR_KINDS, PROGRESS_INTERVAL
from ._proc import _own_cpu_seconds, process_tree_cpu_seconds
from ._result import BenchResult


@attrs.define(eq=False)
class _Run:
    """The state one run shares between its tasks."""

    config: BenchConfig
    sockaddr: Any
    family: int
    remaining: int
    batches: dict[int, bytes]
    ok: int = 0
    #: Requests sent again on a new connection (see the theory of operation).
    retried: int = 0
    errors: Counter[str] = attrs.field(factory=Counter)
    first_errors: dict[str, str] = attrs.field(factory=dict)
    latencies: list[array[float]] = attrs.field(factory=list)

    def claim(self, most: int) -> int:
        """Take up to ``most`` requests to send; 0 once all are taken."""
        count = min(most, self.remaining)
        self.remaining -= count
        return count

    def fail(self, kind: str, count: int, detail: str) -> None:
        """Count ``count`` requests failed as ``kind``; keep the first detail."""
        self.errors[kind] += count
        if kind not in self.first_errors:
            self.first_errors[kind] = detail

    def wrong_answer(self, message: Message) -> None:
        self.fail("wrong_answer", 1, _describe(message))

    async def connect(self) -> trio.abc.Stream:
        """A new connection (TLS handshake done).

        Raises:
            OSError: the TCP connect failed.
            trio.BrokenResourceError: the TLS handshake failed.
        """
        sock = trio.socket.socket(self.family, trio.socket.SOCK_STREAM)
        try:
            await sock.connect(self.sockaddr)
        except BaseException:
            sock.close()
            raise
        stream: trio.abc.Stream = trio.SocketStream(sock)
        config = self.config
        if config.ssl_context is not None:
            tls = trio.SSLStream(
                stream,
                config.ssl_context,
                server_hostname=config.server_hostname or config.host,
                https_compatible=False,
            )
            try:
                await tls.do_handshake()
            except BaseException:
                await trio.aclose_forcefully(tls)
                raise
            stream = tls
        return stream

    async def connect_or_fail(self, count: int) -> trio.abc.Stream | None:
        """:meth:`connect`, or None after failing ``count`` requests."""
        try:
            with trio.fail_after(self.config.timeout):
                return await self.connect()
        except OSError as exc:
            self.fail("connect_error", count, f"connect failed: {exc.strerror or exc}")
        except trio.BrokenResourceError as exc:
            self.fail("tls_error", count, f"TLS handshake failed: {exc.__cause__ or exc}")
        except trio.TooSlowError:
            self.fail("timeout", count, f"connect not done within {self.config.timeout:g} s")
        await trio.sleep(CONNECT_RETRY_DELAY)
        return None

    async def keepalive_task(self, stream: trio.abc.Stream | None) -> None:
        """Send batches on one connection (``stream``, or a new one) until the
        run ends; reconnect after a failure, first sending a batch's
        unanswered requests again if its reused connection ended before
        answering them (see the theory of operation)."""
        latencies: array[float] = array("d")
        self.latencies.append(latencies)
        pipeline = self.config.pipeline
        timeout = self.config.timeout
        retry = self.config.retry
        is_right = self.config.checker.is_right
        batches = self.batches
        perf_counter = time.perf_counter
        # Requests to send again on the next connection, already claimed.
        resend = 0
        sent_at = 0.0
        try:
            while True:
                # A batch to send again goes first, and its latency counts
                # from its first write.
                retrying = resend > 0
                count = resend if retrying else self.claim(pipeline)
                resend = 0
                if not count:
                    return
                if stream is None:
                    stream = await self.connect_or_fail(count)
                    if stream is None:
                        continue
                protocol = MessageProtocol()
                send_all, receive_some = _io_of(stream)
                # Whether this connection answered a batch before the one
                # being sent: only then does its end call for a retry.
                reused = False
                answered = 0
                failure: tuple[str, str] | None = None
                # One scope per connection; its deadline moves with each batch.
                with trio.CancelScope() as scope:
                    while True:
                        scope.deadline = trio.current_time() + timeout
                        answered = 0
                        if not retrying:
                            sent_at = perf_counter()
                        try:
                            await send_all(batches[count])
                            while answered < count:
                                event = protocol.next_message()
                                if event is NEED_DATA:
                                    protocol.receive_data(await receive_some(RECEIVE_SIZE))
                                    continue
                                if event is CLOSED:
                                    failure = _CLOSED_EARLY
                                    break
                                answered += 1
                                if is_right(event):
                                    latencies.append(perf_counter() - sent_at)
                                    self.ok += 1
                                else:
                                    self.wrong_answer(event)
                        except (trio.BrokenResourceError, OSError, RemoteProtocolError) as exc:
                            failure = _broken_exchange(exc)
                        if failure is not None:
                            break
                        reused, retrying = True, False
                        count = self.claim(pipeline)
                        if not count:
                            return
                if scope.cancelled_caught:
                    failure = ("timeout", f"no answer within {timeout:g} s")
                assert failure is not None
                unanswered = count - answered
                if retry and reused and _ended_before_answer(failure, protocol):
                    self.retried += unanswered
                    resend = unanswered
                else:
                    self.fail(failure[0], unanswered, failure[1])
                await trio.aclose_forcefully(stream)
                stream = None
        finally:
            if stream is not None:
                await trio.aclose_forcefully(stream)

    async def oneshot_task(self) -> None:
        """Connect, send one request, read its answer, close; until the run ends."""
        latencies: array[float] = array("d")
        self.latencies.append(latencies)
        request = self.batches[1]
        is_right = self.config.checker.is_right
        timeout = self.config.timeout
        timed_out = ("timeout", f"no answer within {timeout:g} s of connecting")
        perf_counter = time.perf_counter
        while self.claim(1):
            failure: tuple[str, str] | None = timed_out
            connect_failed = False
            sent_at = perf_counter()
            # One deadline for the whole exchange: connect, request, answer.
            with trio.move_on_after(timeout):
                try:
                    stream = await self.connect()
                except OSError as exc:
                    failure = ("connect_error", f"connect failed: {exc.strerror or exc}")
                    connect_failed = True
                except trio.BrokenResourceError as exc:
                    failure = ("tls_error", f"TLS handshake failed: {exc.__cause__ or exc}")
                    connect_failed = True
                else:
                    send_all, receive_some = _io_of(stream)
                    protocol = MessageProtocol()
                    try:
                        await send_all(request)
                        while True:
                            event = protocol.next_message()
                            if event is NEED_DATA:
                                protocol.receive_data(await receive_some(RECEIVE_SIZE))
                                continue
                            if event is CLOSED:
                                failure = _CLOSED_EARLY
                            elif is_right(event):
                                latencies.append(perf_counter() - sent_at)
                                self.ok += 1
                                failure = None
                            else:
                                failure = ("wrong_answer", _describe(event))
                            break
                    except (trio.BrokenResourceError, OSError, RemoteProtocolError) as exc:
                        failure = _broken_exchange(exc)
                    finally:
                        await close_stream(stream)
            if failure is not None:
                self.fail(failure[0], 1, failure[1])
            if connect_failed:
                await trio.sleep(CONNECT_RETRY_DELAY)


def _io_of(
    stream: trio.abc.Stream,
) -> tuple[Callable[[bytes], Awaitable[None]], Callable[[int], Awaitable[bytes | bytearray]]]:
    """``send_all`` and ``receive_some`` for ``stream``, through its transport
    (trio_search._transport): straight on the socket for plain TCP, whose
    stream layer's bookkeeping is a measurable share of the load generator's
    CPU. Both raise ``trio.BrokenResourceError`` for a broken connection."""
    transport = transport_for(stream)
    return functools.partial(send, transport), transport.receive


_CLOSED_EARLY = ("closed", "the server closed the connection before answering")


def _ended_before_answer(failure: tuple[str, str], protocol: MessageProtocol) -> bool:
    """Whether ``failure`` is the connection ending (end of file or reset)
    with no byte of the next answer received: what a retry is for. A
    truncated answer is ``bad_framing``, and a timeout may be a server that
    read the request."""
    return failure[0] == "closed" and not protocol.mid_message


def _broken_exchange(exc: Exception) -> tuple[str, str]:
    """The failure kind and description of an exchange that raised ``exc``."""
    if isinstance(exc, RemoteProtocolError):
        return "bad_framing", f"{exc.message} ({exc.code})"
    if isinstance(exc, trio.BrokenResourceError):
        return "closed", f"connection broken: {exc.__cause__ or exc}"
    return "closed", f"connection broken: {exc}"


#: Content bytes quoted in the description of a wrong answer.
_QUOTED_CONTENT = 200


def _describe(message: Message) -> str:
    return (
        f"{message.content_type} ({message.content_encoding}): "
        f"{message.content[:_QUOTED_CONTENT]!r}"
    )


async def _resolve(host: str, port: int) -> tuple[int, Any]:
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    except OSError as exc:
        raise BenchError(f"cannot resolve {host!r}: {exc}") from exc
    if not infos:
        raise BenchError(f"cannot resolve {host!r}")
    family, _type, _proto, _name, sockaddr = infos[0]
    return int(family), sockaddr


async def run_bench(
    config: BenchConfig,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    progress_interval: float = PROGRESS_INTERVAL,
    stop: trio.Event | None = None,
) -> BenchResult:
    """Run the load described by ``config`` and return what it measured.

    Args:
        on_progress: Called every ``progress_interval`` seconds while running.
        stop: Setting this event ends the run early (its figures are kept).

    Raises:
        BenchError: the host cannot be resolved.
    """
    family, sockaddr = await _resolve(config.host, config.port)
    total = config.requests if config.requests is not None else sys.maxsize
    batches = {depth: config.request * depth for depth in range(1, config.pipeline + 1)}
    run = _Run(config, sockaddr, family, total, batches)

    streams: list[trio.abc.Stream | None] = []
    if config.mode == "keepalive":
        # Connect before the clock starts; a failure here is retried (and
        # counted) by the task.
        async def open_one() -> None:
            try:
                with trio.fail_after(config.timeout):
                    streams.append(await run.connect())
            except (OSError, trio.BrokenResourceError, trio.TooSlowError):
                streams.append(None)

        async with trio.open_nursery() as nursery:
            for _ in range(config.connections):
                nursery.start_soon(open_one)

    server_cpu_start = (
        process_tree_cpu_seconds(config.server_pid) if config.server_pid is not None else None
    )
    client_cpu_start = _own_cpu_seconds()
    started = time.perf_counter()
    try:
        async with trio.open_nursery() as outer:
            if stop is not None:

                async def wait_stop() -> None:
                    await stop.wait()
                    outer.cancel_scope.cancel()

                outer.start_soon(wait_stop)
            if on_progress is not None:
                outer.start_soon(_report_progress, run, started, on_progress, progress_interval)
            if config.duration is not None:
                outer.cancel_scope.deadline = trio.current_time() + config.duration
            async with trio.open_nursery() as workers:
                if config.mode == "keepalive":
                    for stream in streams:
                        workers.start_soon(run.keepalive_task, stream)
                    streams.clear()
                else:
                    for _ in range(config.connections):
                        workers.start_soon(run.oneshot_task)
            outer.cancel_scope.cancel()
    finally:
        for stream in streams:
            if stream is not None:
                await trio.aclose_forcefully(stream)
    elapsed = time.perf_counter() - started
    if config.duration is not None and not (stop is not None and stop.is_set()):
        elapsed = min(elapsed, config.duration)
    client_cpu = _own_cpu_seconds() - client_cpu_start
    server_cpu = None
    if server_cpu_start is not None and config.server_pid is not None:
        server_cpu_end = process_tree_cpu_seconds(config.server_pid)
        if server_cpu_end is not None:
            server_cpu = server_cpu_end - server_cpu_start
    return BenchResult(
        config=config,
        elapsed=elapsed,
        ok=run.ok,
        retried=run.retried,
        errors={kind: run.errors[kind] for kind in ERROR_KINDS},
        first_errors=dict(run.first_errors),
        latencies=sorted(_chain(run.latencies)),
        client_cpu=client_cpu,
        server_cpu=server_cpu,
    )


def _chain(arrays: Iterable[array[float]]) -> list[float]:
    merged: list[float] = []
    for values in arrays:
        merged.extend(values)
    return merged


async def _report_progress(
    run: _Run, started: float, on_progress: Callable[[Progress], None], interval: float
) -> None:
    last_done, last_at = 0, started
    while True:
        await trio.sleep(interval)
        now = time.perf_counter()
        done = run.ok + sum(run.errors.values())
        rate = (done - last_done) / (now - last_at) if now > last_at else 0.0
        on_progress(Progress(now - started, run.ok, sum(run.errors.values()), rate))
        last_done, last_at = done, now
