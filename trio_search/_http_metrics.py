"""``GET /metrics`` over HTTP/1.1, served by the Trio program itself.

A sans-IO core (:class:`MetricsHTTP`, on h11) turns received bytes into
replies; :func:`handle_metrics_connection` is the thin Trio adapter that
moves the bytes and enforces the timeouts; :func:`serve_metrics` accepts
connections on listeners and runs as a task in the server's own nursery,
so no thread and no task outlives it.

Routes: ``GET /metrics`` (any query string) answers 200 with the
exposition (``HEAD`` its headers); other paths 404; other methods 405; bytes that are not HTTP/1.1
400 (431 for an over-long head), as h11 judges them. Connections are kept
alive between scrapes for :data:`METRICS_REQUEST_TIMEOUT` seconds. Request
bodies are never read: a request with one is answered, then the connection
is closed.

Producing one server's exposition is synchronous CPU work, about 1 ms (8 KB
of text): short enough for the event loop at scrape rates (one every 15 s
or so). A supervisor aggregates its workers' snapshot files under an
exclusive ``flock`` that the workers take too, which can wait for as long as
a worker holds it (a worker stopped by SIGSTOP or a debugger: indefinitely):
``serve_metrics(..., blocking=True)`` runs it in a worker thread, so that
the supervisor's loop goes on handling signals and its workers.

A failure while serving one scrape (a bug, an exposition that raises) is
logged and ends that connection only: the metrics endpoint never takes
down the server whose nursery it runs in.

At most :data:`METRICS_MAX_CONNECTIONS` connections are served at once
(:class:`MetricsConnections` counts them). A client that arrives at the
limit is accepted and takes the slot of the connection that has waited
longest for a request, once that one has waited
:data:`METRICS_EVICT_AFTER`: it is closed, as the search port closes its
longest-idle connection for a new client. Otherwise anyone could keep
every scrape out by holding the slots with connections that send nothing.
A connection whose request is being answered is never closed for another;
when every connection is, the new client waits for one to end.
"""

from __future__ import annotations

import contextlib
import email.utils
import enum
import errno
import http
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import h11
import trio
from prometheus_client import CONTENT_TYPE_LATEST

from . import _codes as codes
from ._errors import ConfigurationError
from ._listeners import RetryingListener, listener_address
from ._log import logger
from ._log_limit import WARNING_INTERVAL, PeerWarnings
from ._net import format_address, peer_name
from ._transport import linger_close

#: Seconds a connection has to deliver a complete request head, from its
#: start or from the end of the previous answer; so also how long an idle
#: keep-alive connection stays open. A scraper sends its request at once,
#: and reconnecting for the next scrape costs it little.
METRICS_REQUEST_TIMEOUT = 10.0

#: Seconds an answer may take to send to a client that does not read.
METRICS_SEND_TIMEOUT = 10.0

#: Seconds a scrape waits for an exposition run in a worker thread
#: (``serve_metrics(..., blocking=True)``), its turn included; past that it
#: is answered 500 and the thread is left to finish. Prometheus gives up on
#: a scrape after 10 s by default.
METRICS_EXPOSITION_TIMEOUT = 10.0

#: Largest request head accepted, in bytes (h11's ``max_incomplete_event_size``).
#: A scrape's head is about 200 bytes; h11's default is 16 KiB.
METRICS_MAX_HEADER_SIZE = 8 * 1024

#: The methods ``/metrics`` answers: HEAD, which every HTTP server must
#: take where it takes GET (RFC 9110, 9.1), has GET's headers, no body.
_READ_METHODS = (b"GET", b"HEAD")

#: Connections served at once. Scrapers are few (Prometheus keeps one per
#: target); a further client takes the slot of one waiting for a request
#: (see :data:`METRICS_EVICT_AFTER`), or waits until one ends.
METRICS_MAX_CONNECTIONS = 64

#: Seconds a connection must have waited for a request (since it was
#: accepted or last answered) before a client arriving at
#: :data:`METRICS_MAX_CONNECTIONS` may close it to take its slot. A scraper
#: sends its request head within a round trip of connecting, so one that
#: waits longer is idle between scrapes, or no scraper; younger ones are
#: spared so that a burst of scrapes past the limit does not close scrapes
#: whose requests are on their way. Also the longest a new scrape waits for
#: its slot when the connections filling the endpoint send nothing.
METRICS_EVICT_AFTER = 1.0

#: Bytes asked of the transport per receive: a whole request head at once.
METRICS_RECEIVE_SIZE = 16 * 1024

#: Seconds a connection that is to close waits, after its last answer and
#: with its sending side shut, for the client to close first: closing with
#: unread input makes TCP send a reset, which can destroy the answer.
METRICS_LINGER_TIMEOUT = 2.0

#: Bytes discarded at most while lingering.
METRICS_LINGER_BYTES = 64 * 1024

#: The path that answers with the metrics.
METRICS_PATH = b"/metrics"


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by :meth:`MetricsHTTP.next_reply` until more bytes arrive.
NEED_DATA = _NeedData()


@attrs.frozen
class ExpositionWanted:
    """A request for the metrics, from a :class:`MetricsHTTP` made without
    an exposition: the caller produces it (in a worker thread, say) and
    passes it to :meth:`MetricsHTTP.answer`.

    Attributes:
        head: A ``HEAD`` request: the answer has no body.
        close: The connection closes after the answer.
    """

    head: bool
    close: bool


@attrs.frozen
class Reply:
    """Bytes to send, and whether the connection then serves another request.

    Attributes:
        data: The whole HTTP response.
        keep_alive: ``False``: close the connection once ``data`` is sent.
        status: The response's status code.
    """

    data: bytes
    keep_alive: bool
    status: int


@attrs.define(eq=False)
class MetricsHTTP:
    """The HTTP side of one metrics connection, without I/O.

    Feed it bytes with :meth:`receive_data` (``b""`` at end of file) and ask
    :meth:`next_reply` what to send. After a reply with ``keep_alive`` it is
    ready for the next request.

    Args:
        exposition: Returns the metrics in Prometheus' text format; called
            once per ``GET /metrics``. ``None``: :meth:`next_reply` returns
            an :class:`ExpositionWanted` instead, for :meth:`answer`.
        max_header_size: Largest request head accepted, in bytes.
    """

    exposition: Callable[[], bytes] | None
    max_header_size: int = METRICS_MAX_HEADER_SIZE
    _conn: h11.Connection = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_header_size)

    def receive_data(self, data: bytes | bytearray) -> None:
        """Bytes received from the client; ``b""`` when it has closed."""
        self._conn.receive_data(bytes(data))  # no copy for bytes, as sockets give

    def next_reply(self) -> Reply | ExpositionWanted | _NeedData | None:
        """The next reply to send; :data:`NEED_DATA` when a request is not
        complete yet; ``None`` when the connection should close with no
        reply (the client closed between requests); without an
        ``exposition``, :class:`ExpositionWanted` for a request that needs
        it (then call :meth:`answer` before this again)."""
        try:
            event = self._conn.next_event()
            if event is h11.NEED_DATA:
                return NEED_DATA
            if not isinstance(event, h11.Request):
                # ConnectionClosed, or PAUSED (cannot happen: every reply
                # starts the next cycle or ends the connection).
                return None
            # Bodies are not read: with none, the end of the message is
            # already there; with one, answer and close.
            has_body = not isinstance(self._conn.next_event(), h11.EndOfMessage)
        except h11.RemoteProtocolError as exc:
            if self._conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
                return None
            return self._reply(exc.error_status_hint, close=True)
        return self._answer(event, close=has_body)

    def timeout_reply(self) -> Reply | None:
        """What to send when the request timeout has passed: 408 if part of
        a request arrived, ``None`` (just close) for an idle connection."""
        if self._conn.our_state is not h11.IDLE or not self._conn.trailing_data[0]:
            return None
        return self._reply(http.HTTPStatus.REQUEST_TIMEOUT, close=True)

    def _answer(self, request: h11.Request, *, close: bool) -> Reply | ExpositionWanted:
        path = request.target.split(b"?", 1)[0]
        # An answer to HEAD has the headers of the answer to GET, no body.
        head = request.method == b"HEAD"
        if path != METRICS_PATH:
            return self._reply(http.HTTPStatus.NOT_FOUND, close=close, head=head)
        if request.method not in _READ_METHODS:
            return self._reply(
                http.HTTPStatus.METHOD_NOT_ALLOWED,
                close=close,
                head=head,
                headers=[("Allow", "GET, HEAD")],
            )
        wanted = ExpositionWanted(head=head, close=close)
        if self.exposition is None:
            return wanted
        return self.answer(wanted, expose(self.exposition))

    def answer(self, wanted: ExpositionWanted, body: bytes | None) -> Reply:
        """The reply to a request for the metrics: ``body`` is the
        exposition, or ``None`` if producing it failed (500)."""
        if body is None:
            return self._reply(
                http.HTTPStatus.INTERNAL_SERVER_ERROR, close=wanted.close, head=wanted.head
            )
        return self._reply(
            http.HTTPStatus.OK,
            close=wanted.close,
            head=wanted.head,
            body=body,
            content_type=CONTENT_TYPE_LATEST,
        )

    def _reply(
        self,
        status: int,
        *,
        close: bool,
        head: bool = False,
        body: bytes | None = None,
        content_type: str = "text/plain; charset=utf-8",
        headers: Sequence[tuple[str, str]] = (),
    ) -> Reply:
        phrase = http.HTTPStatus(status).phrase
        if body is None:
            body = f"{status} {phrase}\n".encode()
        all_headers = [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            *headers,
        ]
        if close:
            all_headers.append(("Connection", "close"))
        conn = self._conn
        data = b"".join(
            (
                conn.send(h11.Response(status_code=status, headers=all_headers, reason=phrase)),
                b"" if head else conn.send(h11.Data(data=body)),
                conn.send(h11.EndOfMessage()),
            )
        )
        keep_alive = conn.our_state is h11.DONE and conn.their_state is h11.DONE
        if keep_alive:
            conn.start_next_cycle()
        return Reply(data=data, keep_alive=keep_alive, status=int(status))


def expose(exposition: Callable[[], bytes]) -> bytes | None:
    """``exposition()``, or ``None`` (logged) if it raised."""
    try:
        return exposition()
    except Exception:
        logger.exception("metrics exposition failed")
        return None


class Phase(enum.Enum):
    """Where a metrics connection is, as :class:`MetricsConnections` sees it."""

    #: Waiting for a request head, with nothing or part of one received:
    #: since it was accepted, or since its last answer (keep-alive). The
    #: only phase in which it may be closed for a new client.
    WAITING = "waiting for a request"
    #: Anything else: its task starting, a request being answered, lingering
    #: after the last answer. Never closed for a new client.
    BUSY = "busy"
    #: Closed for a new client: it ends without reading further.
    EVICTED = "evicted"


@attrs.define(eq=False)
class MetricsConnection:
    """One connection counted by :class:`MetricsConnections`.

    Attributes:
        stream: The connection's stream.
        phase: See :class:`Phase`.
        waiting_since: When it entered :attr:`Phase.WAITING` (Trio time).
        reading: While waiting: the scope of that wait, which an eviction
            cancels.
    """

    stream: trio.abc.Stream
    phase: Phase = Phase.BUSY
    waiting_since: float = 0.0
    reading: trio.CancelScope | None = None


@attrs.define(eq=False)
class MetricsConnections:
    """The metrics endpoint's connections: how many are open, and which are
    waiting for a request, longest first (the one to close when a new client
    needs room).

    A connection moves to the end of the waiting ones each time it starts
    waiting, and leaves when its request is complete, so the first has
    waited longest; each move is O(1) (a dict keeps insertion order), as in
    ``IdleConnections`` for the search port.

    Args:
        limit: Connections served at once.
    """

    limit: int = METRICS_MAX_CONNECTIONS
    #: Where eviction lines go, rate-limited per client address.
    warnings: PeerWarnings = attrs.field(factory=lambda: PeerWarnings(logger, trio.current_time))
    #: Connections counted in and not yet out.
    open: int = attrs.field(default=0, init=False)
    #: Of those, the ones evicted and not yet closed: room on its way.
    _evicting: int = attrs.field(default=0, init=False)
    _waiting: dict[MetricsConnection, None] = attrs.field(factory=dict, init=False)
    #: Where :meth:`make_room` waits; woken when a connection ends or
    #: starts waiting.
    _changed: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot, init=False)

    def add(self, stream: trio.abc.Stream) -> MetricsConnection:
        """Count a new connection in (after :meth:`make_room`)."""
        self.open += 1
        return MetricsConnection(stream)

    def remove(self, connection: MetricsConnection) -> None:
        """Count a connection out; its stream is closed."""
        self.open -= 1
        if connection.phase is Phase.EVICTED:
            self._evicting -= 1
        self._waiting.pop(connection, None)
        self._changed.unpark_all()

    @contextlib.contextmanager
    def waiting(self, connection: MetricsConnection, reading: trio.CancelScope) -> Iterator[None]:
        """Within this block ``connection`` waits for a request, in
        ``reading``, which an eviction cancels (then its phase is
        :attr:`Phase.EVICTED`)."""
        connection.phase = Phase.WAITING
        connection.waiting_since = trio.current_time()
        connection.reading = reading
        self._waiting[connection] = None
        self._changed.unpark_all()
        try:
            yield
        finally:
            self._waiting.pop(connection, None)
            connection.reading = None
            if connection.phase is Phase.WAITING:
                connection.phase = Phase.BUSY

    async def make_room(self) -> None:
        """Return when one more connection may be served: at once below the
        limit; at the limit, once a connection has ended, or once the one
        that has waited longest for a request, and at least
        :data:`METRICS_EVICT_AFTER`, has been closed to make room."""
        while self.open >= self.limit:
            wake_at = math.inf
            # Unless an eviction under way will make the room already.
            if self.open - self._evicting >= self.limit:
                victim = next(iter(self._waiting), None)
                if victim is not None:
                    evictable_at = victim.waiting_since + METRICS_EVICT_AFTER
                    if trio.current_time() >= evictable_at:
                        self._evict(victim)
                    else:
                        wake_at = evictable_at
            with trio.move_on_at(wake_at):
                await self._changed.park()

    def _evict(self, connection: MetricsConnection) -> None:
        assert connection.phase is Phase.WAITING and connection.reading is not None
        connection.phase = Phase.EVICTED
        self._evicting += 1
        self._waiting.pop(connection)
        connection.reading.cancel()
        self.warnings.info(
            peer_name(connection.stream),
            "metrics connection closed after %.1f s without a request, "
            "to make room for a new one (at most %d at once)",
            trio.current_time() - connection.waiting_since,
            self.limit,
        )

    async def summarize_warnings(self) -> None:
        """Say, once per interval, how many eviction lines each client
        address had left out; runs until cancelled."""
        try:
            while True:
                await trio.sleep(WARNING_INTERVAL)
                self.warnings.flush()
        finally:
            self.warnings.flush()


async def _next_reply(
    stream: trio.abc.ReceiveStream, connection: MetricsHTTP
) -> Reply | ExpositionWanted | None:
    while True:
        reply = connection.next_reply()
        if not isinstance(reply, _NeedData):
            return reply
        connection.receive_data(await stream.receive_some(METRICS_RECEIVE_SIZE))


async def _read_request(
    connections: MetricsConnections, connection: MetricsConnection, http_side: MetricsHTTP
) -> Reply | ExpositionWanted | None:
    """The reply to the next request, or to its lateness (408); ``None``:
    close without a reply (the client closed, was idle too long, or the
    connection was evicted); :class:`ExpositionWanted` as
    :meth:`MetricsHTTP.next_reply` gives it."""
    with trio.move_on_after(METRICS_REQUEST_TIMEOUT) as reading:
        with connections.waiting(connection, reading):
            reply = await _next_reply(connection.stream, http_side)
    if connection.phase is Phase.EVICTED:
        # Also when the request's last bytes came in the same instant as
        # the eviction: the client sees the close, as a moment earlier.
        return None
    if reading.cancelled_caught:
        return http_side.timeout_reply()
    return reply


async def _serve_connection(
    connections: MetricsConnections,
    connection: MetricsConnection,
    exposition: Callable[[], bytes],
    threads: trio.CapacityLimiter | None = None,
) -> None:
    """Serve one counted connection, close its stream, and count it out.
    ``threads``: run ``exposition`` in a worker thread, under this limiter."""
    stream = connection.stream
    try:
        async with stream:
            http_side = MetricsHTTP(None if threads is not None else exposition)
            try:
                while True:
                    reply = await _read_request(connections, connection, http_side)
                    if reply is None:
                        return
                    if isinstance(reply, ExpositionWanted):
                        assert threads is not None
                        # Abandoned if cancelled or late: neither a stop nor
                        # a scrape waits for ever for a lock that another
                        # process may hold for ever.
                        body = None
                        with trio.move_on_after(METRICS_EXPOSITION_TIMEOUT) as late:
                            body = await trio.to_thread.run_sync(
                                expose, exposition, limiter=threads, abandon_on_cancel=True
                            )
                        if late.cancelled_caught:
                            logger.error(
                                "metrics exposition not done within %g s",
                                METRICS_EXPOSITION_TIMEOUT,
                            )
                        reply = http_side.answer(reply, body)
                    with trio.move_on_after(METRICS_SEND_TIMEOUT) as sending:
                        await stream.send_all(reply.data)
                    if sending.cancelled_caught:
                        return
                    if not reply.keep_alive:
                        await linger_close(
                            stream,
                            METRICS_LINGER_TIMEOUT,
                            METRICS_LINGER_BYTES,
                            METRICS_RECEIVE_SIZE,
                        )
                        return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the client reset the connection
            except Exception:
                logger.exception("metrics connection failed")
    finally:
        connections.remove(connection)


async def handle_metrics_connection(
    stream: trio.abc.Stream, exposition: Callable[[], bytes]
) -> None:
    """Serve metrics requests on ``stream`` until the client closes, times
    out, or sends something that ends the connection; close ``stream``.

    Returns normally on every client behaviour, broken connections
    included; only cancellation propagates. The stream is closed on every
    path, cancellation included. (The connection is counted by no limit:
    :func:`serve_metrics` counts the connections it accepts.)
    """
    connections = MetricsConnections()
    await _serve_connection(connections, connections.add(stream), exposition)


async def _accept_loop(
    listener: trio.abc.Listener[Any],
    exposition: Callable[[], bytes],
    connections: MetricsConnections,
    nursery: trio.Nursery,
    threads: trio.CapacityLimiter | None,
) -> None:
    retrying = RetryingListener(listener, connections_open=lambda: connections.open)
    while True:
        stream = await retrying.accept()
        try:
            # At the limit the client waits here, accepted, for room.
            await connections.make_room()
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        connection = connections.add(stream)
        try:
            nursery.start_soon(_serve_connection, connections, connection, exposition, threads)
        except BaseException:
            connections.remove(connection)
            await trio.aclose_forcefully(stream)
            raise


async def serve_metrics(
    listeners: Sequence[trio.abc.Listener[Any]],
    exposition: Callable[[], bytes],
    *,
    blocking: bool = False,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``GET /metrics`` on ``listeners`` until cancelled; run it in
    the server's nursery with ``await nursery.start(serve_metrics, ...)``.

    At most :data:`METRICS_MAX_CONNECTIONS` connections are served at once,
    across all listeners; a client arriving at the limit takes the slot of
    the connection waiting longest for a request (see
    :data:`METRICS_EVICT_AFTER`), or waits until one ends if every
    connection is being answered. The listeners are closed when this
    returns, and every connection before that.

    Args:
        listeners: Where to accept (``trio.SocketListener`` from
            :func:`open_metrics_listeners`, or any Trio listener).
        exposition: Returns the body of a ``/metrics`` answer:
            ``Metrics.exposition``, or ``functools.partial(aggregate,
            directory)`` in a supervisor.
        blocking: ``exposition`` may block (files, locks): run it in a
            worker thread, one scrape at a time, never on the event loop.
        task_status: Started with the ``(host, port)`` of each socket
            listener once accepting.
    """
    connections = MetricsConnections()
    # One scrape at a time: they would take turns on the lock anyway.
    threads = trio.CapacityLimiter(1) if blocking else None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(connections.summarize_warnings)
            for listener in listeners:
                nursery.start_soon(
                    _accept_loop, listener, exposition, connections, nursery, threads
                )
            addresses = [listener_address(listener) for listener in listeners]
            task_status.started([address for address in addresses if address is not None])
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)


async def open_metrics_listeners(
    host: str, port: int, search_port: int | None = None
) -> list[trio.SocketListener]:
    """Listen for metrics scrapes on ``host``:``port`` (``""`` is every
    interface; port 0 picks a free one).

    Args:
        search_port: The port the server itself listens on (bound first):
            named when the metrics' port is in use because it is that one.

    Raises:
        ConfigurationError: the address cannot be bound (in use, or not
            this machine's), said as the metrics listener's, so that it is
            not taken for the search port's.
    """
    try:
        return await trio.open_tcp_listeners(port, host=host or None)
    except OSError as exc:
        where = format_address((host or "*", port))
        message = f"cannot listen for --metrics on {where}: {exc.strerror or exc}"
        if exc.errno == errno.EADDRINUSE and port and port == search_port:
            message += " (by the server itself: it is --port too; give the metrics their own)"
        raise ConfigurationError(message) from exc


def parse_metrics_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``--metrics``) as ``(host, port)``: ``127.0.0.1:9100``,
    ``localhost:9100``, ``[::1]:9100`` (IPv6 in brackets), ``:9100`` (every
    interface, host ``""``).

    Raises:
        ConfigurationError: ``text`` is not of that form (code ``bad_option``).
    """

    def bad(reason: str) -> ConfigurationError:
        return ConfigurationError(
            f"--metrics {text!r}: {reason} (expected HOST:PORT, e.g. 127.0.0.1:9100 or [::1]:9100)",
            code=codes.BAD_OPTION,
        )

    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise bad("no ']' after the IPv6 address")
        if not host:
            raise bad("empty IPv6 address")
        if not rest.startswith(":"):
            raise bad("no ':PORT' after the IPv6 address")
        port_text = rest[1:]
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            raise bad("no port")
        if ":" in host:
            raise bad("an IPv6 address needs brackets, as in [::1]:9100")
    if not port_text.isdigit() or not port_text.isascii():
        raise bad(f"port {port_text!r} is not a number")
    port = int(port_text)
    if port > 65535:
        raise bad(f"port {port} is above 65535")
    return host, port
