"""One client connection: read requests, answer them in order, enforce limits.

Theory of operation
-------------------

A plain TCP connection the server accepted spends its waits between
requests in the server's poller (trio_search._idle_poller), with no task:
:meth:`ServerConnection.serve_ready` reads once, answers what is complete
and says where the connection goes next. Whatever must wait for something
else moves it, with what it has read or answered so far, into a task of its
own running :meth:`ServerConnection.serve`, as every other connection (TLS,
PROXY protocol, streams given to ``handle_stream``) runs from the start.
Its state (:class:`_State`) says which.

In its task, a connection loops: answer every complete request the
protocol object has buffered (all of a pipelined batch, written back in one
write, unless answering it takes longer than one turn on the event loop,
``INLINE_TURN_SECONDS``: then the answers so far are written and the other
connections run before the rest), then wait for more bytes. One cancel
scope, the connection's *timer*, bounds every wait; its deadline moves with
what the connection waits for (moving a deadline costs far less than a new
scope per wait):

- between requests, the *idle* timeout, counted from accept (before any TLS
  handshake) and from each response; a graceful shutdown cancels this wait
  at once, unless bytes already wait unread in the socket (a pipelining
  client's next requests, or a keep-alive client's next one that landed as
  the shutdown began), which are then read and answered first, and the
  connection closes right after that answer;
- inside a request, the *request* timeout, counted from its first byte;
- while writing answers the client does not take, the request timeout too,
  so a client that never reads cannot hold the task.

When the timer fires, :meth:`ServerConnection._timed_out` tells the client
what happened where it can: the ``request_timeout`` answer to a client that
was already too slow gets only ``CLOSING_SEND_TIMEOUT``. A timer that fired
(or was cancelled by a shutdown) just as bytes arrived is spent; the bytes
win and the connection goes on under a fresh timer.

Content errors are answered and the connection goes on; framing errors and
timeouts are answered where the stream allows, then the connection
half-closes and lingers briefly (so a TCP reset does not destroy the answer)
and ends. Every path closes the stream, and no exception leaves
:meth:`ServerConnection.serve` except Trio's own cancellation (nor any
:meth:`ServerConnection.serve_ready`). In the poller, the same limits hold
without a timer: the idle deadline is the poller's sweeper's, a request
that does not arrive whole in one read, and anything else with a deadline
of its own, is finished in the task.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from typing import NamedTuple

import attrs
import trio

from . import _codes as codes
from ._app import Application, Deferred, Reply, error_reply
from ._budget import BufferBudget
from ._errors import RemoteProtocolError, ServerBusy, TrioSearchError
from ._idle_poller import IdlePoller, Next
from ._limits import (
    BUSY_LINGER_TIMEOUT,
    CLOSING_SEND_TIMEOUT,
    FIRST_REQUEST_GRACE,
    INLINE_TURN_SECONDS,
    LINGER_TIMEOUT,
    MAX_LOGGED_REASON,
    PARKED_CHECK_INTERVAL,
    RECEIVE_SIZE,
)
from ._log import logger
from ._log_limit import PeerWarnings
from ._net import format_address, peer_name
from ._protocol import CLOSED, NEED_DATA, MessageProtocol
from ._proxy_protocol import ProxyHeader, ProxyHeaderParser
from ._settings import ServerSettings
from ._stats import ServerStats
from ._thread_pool import JobNotWanted, ThreadPool
from ._timer import ConnectionTimer, Waiting
from ._transport import (
    PrefixedStream,
    SocketTransport,
    TcpStream,
    Transport,
    close_stream,
    linger_close,
    pending_bytes,
    socket_of,
    transport_for,
)


class _Outcome(enum.Enum):
    """How a run of :meth:`ServerConnection._serve_requests` ended."""

    #: The connection is over: the peer closed, broke the framing, or a
    #: shutdown reached it.
    ENDED = "ended"
    #: The timer fired just as bytes arrived, or as a worker thread took the
    #: work it was waiting for: the bytes or the work win, and serving goes
    #: on under a new timer.
    TIMER_SPENT = "timer spent"


class _State(enum.Enum):
    """Who serves a connection now."""

    #: Admitted with a poller, which has not served it yet.
    NEW = "new"
    #: Waiting in the poller for its next request (no task, no timer).
    IN_POLLER = "in the poller"
    #: Served by a task of its own, to its end, under its timer.
    TASK = "in a task"
    #: Closed by the poller (a task's end is its own).
    CLOSED = "closed"


class _Batch(NamedTuple):
    """The requests answered from what has arrived, and what ended the batch:
    more bytes needed (the default), the peer's end of file (``closed``),
    broken framing (``broken``), an answer that needs a worker thread
    (``work``), or the connection's turn on the event loop used up with
    requests left to answer (``paused``). (A named tuple: made two or three
    times per request, it costs a third of a frozen attrs class.)"""

    replies: list[Reply]
    closed: bool = False
    broken: RemoteProtocolError | None = None
    work: Deferred | None = None
    paused: bool = False


class IdleConnections:
    """A server's connections waiting between requests, longest-idle first:
    the ones to close when a new client needs room (``--max-connections``).

    A connection moves to the end each time it starts waiting, and leaves
    when bytes arrive, so the first one has waited longest; each move is
    O(1) (a dict keeps insertion order).
    """

    def __init__(self) -> None:
        self._order: dict[ServerConnection, None] = {}

    def waiting(self, connection: ServerConnection) -> None:
        self._order.pop(connection, None)
        self._order[connection] = None

    def busy(self, connection: ServerConnection) -> None:
        self._order.pop(connection, None)

    def longest_idle(self) -> ServerConnection | None:
        return next(iter(self._order), None)


@attrs.define(eq=False)
class ServerConnection:
    """Serves one accepted stream until the peer closes, a limit ends it, or
    a shutdown reaches it.

    A connection made with a ``poller`` waits there between requests and is
    served by it while its requests need no waiting (see
    trio_search._idle_poller); it moves into a task of its own, which runs
    :meth:`serve`, for anything else. One made without is served by a task
    from the start.

    Args:
        stream: Any Trio stream: a TCP socket, TLS, or a memory stream.
        peer: The peer's address, for logs (``None``: found when first
            needed, from what ``accept`` returned for a :class:`TcpStream`).
        app: Answers each request.
        settings: Limits and timeouts.
        stats: Counters to update.
        workers: The worker threads that answers needing blocking work
            (large requests, queries on large indexes) run in.
        warnings: Where warnings about the client go, rate-limited per
            address (a new, unshared one if not given).
        idle: The server's register of connections waiting between requests.
        budget: The server-wide budget of request bytes held (unlimited
            if not given).
    """

    stream: trio.abc.Stream
    _peer: str | None = attrs.field(alias="peer")
    app: Application
    settings: ServerSettings
    stats: ServerStats
    workers: ThreadPool
    warnings: PeerWarnings = attrs.field(factory=lambda: PeerWarnings(logger, trio.current_time))
    idle: IdleConnections = attrs.field(factory=IdleConnections)
    budget: BufferBudget = attrs.field(factory=lambda: BufferBudget(2**62))
    #: Where the connection waits between requests, if not in its own task
    #: (a plain TCP connection the server accepted; see trio_search._idle_poller).
    poller: IdlePoller | None = None
    #: The address it counts under in the server's per-address limit.
    counted_as: str | None = attrs.field(default=None, init=False)
    _state: _State = attrs.field(default=_State.NEW, init=False)
    #: Parses the requests; made by the first read.
    _protocol: MessageProtocol | None = attrs.field(default=None, init=False)
    #: Answered by the poller but not finished there: the task finishes it.
    _handed_over: _Batch | None = attrs.field(default=None, init=False)
    #: Bytes of answers the kernel did not take from the poller.
    _unsent: bytes | memoryview = attrs.field(default=b"", init=False)
    #: Bytes of this connection counted in ``budget``.
    _charged: int = attrs.field(default=0, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    #: Closed to make room for a new client at the connection limit.
    _evicted: bool = attrs.field(default=False, init=False)
    #: Why the connection ends was logged and counted (a broken message, a
    #: timeout): the peer going away while it is told is not a second event.
    _reported: bool = attrs.field(default=False, init=False)
    #: Bounds every wait of its task; see the module's theory of operation.
    #: Made with the task (a connection the poller serves to its end never
    #: needs one).
    _timer: ConnectionTimer = attrs.field(init=False)
    #: When the bytes completing the current batch arrived (for the
    #: request-latency metric only).
    _received_at: float = attrs.field(default=0.0, init=False)
    #: When the current wait between requests began: accept, or the last response.
    _idle_since: float = attrs.field(factory=trio.current_time, init=False)
    #: Until when a connection that has had nothing answered yet counts as
    #: just accepted: a graceful shutdown then waits for its first request.
    _fresh_until: float = attrs.field(
        default=attrs.Factory(lambda self: self._idle_since + FIRST_REQUEST_GRACE, takes_self=True),
        init=False,
    )
    #: When the request being received must be complete.
    _request_deadline: float = attrs.field(default=math.inf, init=False)
    #: How bytes move, chosen once (see trio_search._transport).
    _transport: Transport = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._transport = transport_for(self.stream)
        if self.poller is None:
            self._state = _State.TASK
            self._timer = ConnectionTimer()

    @property
    def peer(self) -> str:
        """The peer's address, for logs."""
        peer = self._peer
        if peer is None:
            stream = self.stream
            peer = self._peer = (
                format_address(stream.peer_address)
                if type(stream) is TcpStream
                else peer_name(stream)
            )
        return peer

    @peer.setter
    def peer(self, peer: str) -> None:
        self._peer = peer

    # -- Waiting in the poller (see trio_search._idle_poller): no task, no
    # timer; every call is synchronous.

    def fileno(self) -> int:
        """The socket's descriptor (for the poller)."""
        transport = self._transport
        assert isinstance(transport, SocketTransport)
        return transport.fileno()

    def serve_ready(self) -> Next:
        """Read once without waiting, answer the complete requests read, and
        say where the connection goes next: back to waiting in the poller,
        closed, or into a task of its own for anything that must wait.
        Never raises."""
        try:
            return self._serve_ready()
        except Exception:
            # As in serve(): a bug of ours ends this connection, not the
            # poller and every connection waiting in it.
            logger.exception("%s: internal error; closing the connection", self.peer)
            self.stats.count_error(codes.INTERNAL_ERROR)
            return self._close_now()

    def move_to_task(self) -> None:
        """Go on in a task of its own, from where the connection is (the
        poller cannot keep it)."""
        self._to_task()

    def _serve_ready(self) -> Next:
        transport = self._transport
        assert isinstance(transport, SocketTransport)
        try:
            data = transport.receive_now(RECEIVE_SIZE)
        except trio.BrokenResourceError as exc:
            self._lost(exc)
            return self._close_now()
        if data is None:
            return self._wait_in_poller()  # woken without data
        protocol = self._protocol
        if not data and (protocol is None or not protocol.mid_message):
            # The end of a one-shot client (or any other) between requests.
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s: closed by peer", self.peer)
            return self._close_now()
        if protocol is None:
            protocol = self._protocol = self._new_protocol()
        self.idle.busy(self)
        self._feed(protocol, data)
        del data
        batch = self._answer_ready(protocol)
        self._charge(protocol)
        if batch.work is not None or batch.broken is not None or batch.paused:
            self._handed_over = batch
            return self._to_task()
        if batch.replies:
            try:
                unsent = self._write_now(batch.replies)
            except trio.BrokenResourceError as exc:
                self._lost(exc)
                return self._close_now()
            self._idle_since = trio.current_time()
            self._fresh_until = -math.inf
            if unsent:
                self._unsent = unsent
                return self._to_task()
        if batch.closed:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s: closed by peer", self.peer)
            return self._close_now()
        if protocol.mid_message:
            # The rest of a request: under the request timeout, from now.
            self._request_deadline = trio.current_time() + self.settings.request_timeout
            return self._to_task()
        self.budget.request_done(self)
        if (
            self._closing
            and not transport.has_pending_input()
            and self._fresh_until <= trio.current_time()
        ):
            logger.debug("%s: closed for shutdown", self.peer)
            return self._close_now()
        return self._wait_in_poller()

    def _wait_in_poller(self) -> Next:
        self._state = _State.IN_POLLER
        self.idle.waiting(self)
        if self._closing:
            # A shorter deadline than the sweeper may know of (see
            # close_when_idle).
            assert self.poller is not None
            self.poller.deadline_moved()
        return Next.WAIT

    def _to_task(self) -> Next:
        self._state = _State.TASK
        self._timer = ConnectionTimer()
        return Next.TASK

    def idle_deadline(self) -> float:
        """Until when the connection may wait for its next request."""
        return self._idle_deadline()

    def expire(self) -> Next:
        """The deadline of the wait in the poller has passed: end the
        connection, saying why, as a task's timer would (but first answer
        a request that landed as a shutdown began: see
        :meth:`_request_arrived_as_closed`)."""
        if self._closing and not self._evicted and pending_bytes(self.stream):
            # Read at once (it cannot wait), so this cannot repeat without
            # progress; after the answer, the connection closes.
            return self.serve_ready()
        self._log_idle_end()
        return self._close_now()

    def abandon(self) -> None:
        """Close now, silently (the server stops, its grace is over)."""
        self._close_now()

    def _close_now(self) -> Next:
        """Close the stream and give back what the connection holds."""
        self._state = _State.CLOSED
        self._release()
        transport = self._transport
        assert isinstance(transport, SocketTransport)
        transport.close_now()
        return Next.CLOSED

    def _release(self) -> None:
        self.idle.busy(self)
        if self._charged:
            self.budget.adjust(-self._charged)
            self._charged = 0
        self.budget.request_done(self)

    def _lost(self, exc: trio.BrokenResourceError | trio.ClosedResourceError | OSError) -> None:
        reason = exc.__cause__ or exc
        self.warnings.info(self.peer, "connection lost: %s", str(reason) or type(reason).__name__)
        self.stats.count_error(codes.CONNECTION_LOST)

    def _new_protocol(self) -> MessageProtocol:
        return MessageProtocol(
            max_header_length=self.settings.max_header_length,
            max_content_length=self.settings.max_content_length,
        )

    def close_when_idle(self) -> None:
        """Begin a graceful close: end now if waiting between requests,
        otherwise after the requests already received are answered.

        "Received" includes bytes waiting unread in the socket's buffer: a
        pipelining client's next requests arrive while the server is still
        writing earlier answers, and closing then would also reset the
        connection before the client has read those answers.
        """
        self._closing = True
        state = self._state
        if state is _State.IN_POLLER:
            # Its deadline is now the end of its first request's grace, or
            # past: the poller's sweeper ends it (or serves bytes that have
            # arrived by then, as the task below would).
            assert self.poller is not None
            self.poller.deadline_moved()
            return
        if state is not _State.TASK:
            return  # new (the poller's first call sees it) or closed
        if self._transport.has_pending_input():
            return
        if self._fresh_until > trio.current_time():
            # Accepted just now (as a shutdown began, say) and nothing
            # answered yet: its first request is probably on its way.
            if self._timer.waiting_for is Waiting.IDLE:
                self._timer.wait_idle(self._fresh_until)
            return
        self._timer.cancel_if_waiting_for(Waiting.IDLE)

    def evict(self) -> None:
        """Close this idle connection to make room for a new client."""
        self._evicted = True
        self.idle.busy(self)
        self.close_when_idle()

    async def serve(self) -> None:
        """Serve the connection to its end, then close the stream.

        Cancellation (a server shutdown past its grace period) closes the
        stream and propagates.
        """
        try:
            await self._serve()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            if self._reported:
                logger.debug("%s: gone before its error answer: %s", self.peer, exc)
            else:
                self._lost(exc)
        except Exception:
            # A bug of ours must not escape into the server's nursery and take
            # the other connections down with it.
            logger.exception("%s: internal error; closing the connection", self.peer)
            self.stats.count_error(codes.INTERNAL_ERROR)
        finally:
            self._release()
            await self._transport.aclose()

    async def _serve(self) -> None:
        protocol = self._protocol
        if protocol is None:
            protocol = self._protocol = self._new_protocol()
            if not await self._begin(protocol):
                return
        timer = self._timer
        while True:
            # The idle deadline (a shutdown's shorter one is set by the
            # first wait for a request, after what is buffered is answered).
            with timer.scope(self._idle_since + self.settings.idle_timeout) as scope:
                outcome = await self._serve_requests(protocol)
            timer.done()
            if scope.cancelled_caught:
                if timer.fired_early and not self._closing:
                    continue  # before the real idle deadline: wait on
                if self._request_arrived_as_closed():
                    continue  # the bytes win: read, answered, then closed
                await self._timed_out()
                return
            if outcome is _Outcome.ENDED:
                return
            # The timer was spent by a race with arriving bytes: a new one.

    async def _begin(self, protocol: MessageProtocol) -> bool:
        """What comes before the first request: a PROXY header, a TLS
        handshake. Returns whether to go on."""
        if self.settings.proxy_protocol:
            after_header = await self._read_proxy_header()
            if after_header is None:
                return False
            context = self.settings.ssl_context
            if context is not None:
                # TLS starts after the PROXY header: the bytes read past it
                # are the start of the handshake.
                self.stream = trio.SSLStream(
                    PrefixedStream(self.stream, after_header),
                    context,
                    server_side=True,
                    https_compatible=True,
                )
                self._transport = transport_for(self.stream)
            elif after_header:
                protocol.receive_data(after_header)
        return not (
            type(self.stream) is not TcpStream
            and isinstance(self.stream, trio.SSLStream)
            and not await self._tls_handshake()
        )

    def _idle_deadline(self) -> float:
        """Until when the connection may wait for its next request."""
        deadline = self._idle_since + self.settings.idle_timeout
        if self._closing:
            deadline = min(deadline, self._fresh_until)
        return deadline

    async def _serve_requests(self, protocol: MessageProtocol) -> _Outcome:
        """Serve until the connection ends, or the timer is spent by bytes
        that arrived as it fired (call again with a new timer). A timeout
        raises ``Cancelled``, caught by the timer's scope."""
        transport = self._transport
        request_began = False
        if self._unsent:
            # Answers the poller could not write in full.
            unsent, self._unsent = self._unsent, b""
            self._timer.wait_for(Waiting.SEND, trio.current_time() + self.settings.request_timeout)
            await transport.send_all(unsent)
            del unsent
            self._idle_since = trio.current_time()
        while True:
            batch = self._handed_over or self._answer_ready(protocol)
            self._handed_over = None
            replies = batch.replies
            while batch.work is not None:
                # An answer that needs blocking work: made in a worker thread,
                # in its place among the replies. Those before it go out
                # first: the work may wait for a thread, and time out.
                if replies:
                    await self._send(replies)
                    replies = []
                replies.append(self._counted(await self._respond_in_worker(batch.work)))
                batch = self._answer_ready(protocol)
                replies += batch.replies
                if self._timer.spent:
                    # The work's deadline passed after a thread took it, before
                    # the event loop heard (running work has no deadline): the
                    # timer is spent, and would cut the next wait short. Serve
                    # on under a new one, these replies first.
                    self._handed_over = batch._replace(replies=replies)
                    return _Outcome.TIMER_SPENT
            if batch.broken is not None:
                # Answer what arrived intact, then report the broken framing.
                self._report_error(batch.broken)
                replies.append(error_reply(batch.broken))
                await self._send(replies)
                self._timer.wait_for(Waiting.LINGER)
                await self._linger_close()
                return _Outcome.ENDED
            self._charge(protocol)  # the answered requests' bytes are freed
            if replies:
                await self._send(replies)
                self._idle_since = trio.current_time()
                self._fresh_until = -math.inf
            if batch.paused:
                # Let the other connections run, then answer the rest.
                await trio.lowlevel.cancel_shielded_checkpoint()
                continue
            if batch.closed:
                logger.debug("%s: closed by peer", self.peer)
                return _Outcome.ENDED
            mid_message = protocol.mid_message
            if (
                self._closing
                and not mid_message
                and not transport.has_pending_input()
                and self._fresh_until <= trio.current_time()
            ):
                logger.debug("%s: closed for shutdown", self.peer)
                return _Outcome.ENDED
            self._arm_for_next_read(mid_message, request_began=request_began or bool(replies))
            # Hold nothing of the last batch while waiting, which is most of
            # an idle connection's life.
            del replies
            if not mid_message:
                self.budget.request_done(self)
            elif self.budget.exhausted and not await self._wait_for_room(protocol):
                # The client closed its side without the rest of its request:
                # an end of file now, rather than reading what cannot help.
                protocol.receive_data(b"")
                continue
            data = await transport.receive(RECEIVE_SIZE)
            # A read between requests brings the first bytes of the next one.
            request_began = not mid_message
            if request_began:
                self.idle.busy(self)
            self._feed(protocol, data)
            del data  # copied into the protocol's buffer
            self._charge(protocol)
            if self._timer.spent:
                if request_began:
                    # The next call cannot tell: start the request's time here.
                    self._request_deadline = trio.current_time() + self.settings.request_timeout
                return _Outcome.TIMER_SPENT

    def _answer_ready(self, protocol: MessageProtocol) -> _Batch:
        """Answer the complete requests the protocol object holds, in order,
        up to one whose answer needs a worker thread, a broken frame, the
        end of what has arrived, or the end of this connection's turn
        (:data:`INLINE_TURN_SECONDS`)."""
        respond = self.app.respond
        stats = self.stats
        replies: list[Reply] = []
        turn_ends = time.perf_counter() + INLINE_TURN_SECONDS
        while True:
            try:
                request = protocol.next_message()
            except RemoteProtocolError as exc:
                return _Batch(replies, broken=exc)
            if request is NEED_DATA:
                return _Batch(replies)
            if request is CLOSED:
                return _Batch(replies, closed=True)
            answer = respond(request)
            if isinstance(answer, Deferred):
                return _Batch(replies, work=answer)
            if answer.error is None and stats.metrics is None:
                stats.requests += 1  # what _counted does for a success, inline
                replies.append(answer)
            else:
                replies.append(self._counted(answer))
            if time.perf_counter() > turn_ends:
                return _Batch(replies, paused=True)

    async def _wait_for_room(self, protocol: MessageProtocol) -> bool:
        """Wait for room in the budget (backpressure), or for the client to
        close its side. Returns whether to read on: ``False`` when the client
        closed and the bytes it left in the socket cannot complete its
        request, which then ends as truncated, without those bytes ever
        being held."""
        while True:
            with trio.move_on_after(PARKED_CHECK_INTERVAL):
                await self.budget.wait_for_room(self)
                return True
            if self._transport.peer_closed():
                needed = protocol.bytes_needed
                left = pending_bytes(self.stream)
                return needed is None or left is None or left >= needed

    def _charge(self, protocol: MessageProtocol) -> None:
        """Count what the protocol object holds now in the server's budget."""
        held = protocol.buffered
        if held != self._charged:
            self.budget.adjust(held - self._charged)
            self._charged = held

    def _counted(self, reply: Reply) -> Reply:
        # Counted once answered: a stats request reports the ones before it.
        self.stats.requests += 1
        metrics = self.stats.metrics
        if metrics is not None:
            metrics.count_request(reply.action, trio.current_time() - self._received_at)
        if reply.error is not None:
            self.stats.count_error(reply.error)
            self.warnings.warning(self.peer, "request refused (%s)", reply.error)
        return reply

    def _arm_for_next_read(self, mid_message: bool, request_began: bool) -> None:
        """Point the timer at the deadline of what the next read waits for.

        ``request_began``: the bytes buffered were all read just now (after a
        wait between requests, or after the requests before them were
        answered), so an unfinished request's time starts now.
        """
        if not mid_message:
            self._timer.wait_idle(self._idle_deadline())
            self.idle.waiting(self)
            return
        if request_began:
            self._request_deadline = trio.current_time() + self.settings.request_timeout
        self._timer.wait_for(Waiting.REQUEST, self._request_deadline)

    def _request_arrived_as_closed(self) -> bool:
        """Whether a graceful shutdown cut the wait for the next request just
        as bytes of one reached the socket.

        :meth:`close_when_idle` looks for waiting bytes when the shutdown
        begins, but the connection's task only runs later: a keep-alive
        client's next request can land in between. Closing then would reset
        it unread; instead it is read and answered like one that came in
        time, and the connection closes right after the answer (the check in
        :meth:`_serve_requests`). Only bytes the kernel holds count
        (FIONREAD, plain TCP): a read of them cannot wait, so this cannot
        repeat without progress.
        """
        if self._timer.waiting_for is not Waiting.IDLE or not self._closing or self._evicted:
            return False
        return bool(pending_bytes(self.stream))

    async def _timed_out(self) -> None:
        """Close after the timer fired, telling the client where it can."""
        waiting_for = self._timer.waiting_for
        if waiting_for is Waiting.IDLE:
            self._log_idle_end()
        elif waiting_for is Waiting.REQUEST:
            error = RemoteProtocolError(
                f"request not received within {self.settings.request_timeout:g} s",
                code=codes.REQUEST_TIMEOUT,
            )
            self._report_error(error)
            # This client is slow already: the answer gets a short while only.
            with trio.move_on_after(CLOSING_SEND_TIMEOUT) as sending:
                await self._transport.send_all(error_reply(error).wire)
            if sending.cancelled_caught:
                self._log_send_timeout(CLOSING_SEND_TIMEOUT)
            else:
                await self._linger_close()
        elif waiting_for is Waiting.WORK:
            overloaded = TrioSearchError(
                f"server overloaded: request not answered within "
                f"{self.settings.request_timeout:g} s",
                code=codes.OVERLOADED,
            )
            self._report_error(overloaded)
            with trio.move_on_after(CLOSING_SEND_TIMEOUT):
                await self._transport.send_all(error_reply(overloaded).wire)
                await self._linger_close()
        else:
            self._log_send_timeout(self.settings.request_timeout)

    def _log_idle_end(self) -> None:
        """Say why a connection waiting for its next request is closed."""
        if self._evicted:
            self.warnings.info(
                self.peer,
                "closed after %.1f s idle, to make room for a new client (--max-connections)",
                trio.current_time() - self._idle_since,
            )
            self.stats.count_error(codes.EVICTED_IDLE)
        elif self._closing:
            logger.debug("%s: idle connection closed for shutdown", self.peer)
        else:
            self.warnings.info(self.peer, "idle for %g s; closing", self.settings.idle_timeout)
            self.stats.count_error(codes.IDLE_TIMEOUT)

    async def _respond_in_worker(self, deferred: Deferred) -> Reply:
        """Run an answer's blocking work in a worker thread, so it never
        stalls the other connections; its result becomes the reply here, on
        the event loop (where the application may call Trio)."""
        # Waiting for a thread counts toward the request timeout. The work
        # itself cannot be interrupted, and the content and query limits
        # bound it: it has no deadline.
        self._timer.wait_for(Waiting.WORK, trio.current_time() + self.settings.request_timeout)
        transport = self._transport

        def wanted() -> bool:
            # Reset while its work waited: nobody would read the answer.
            return not transport.peer_has_gone()

        def started() -> None:
            self._timer.wait_for(Waiting.WORK)  # no deadline once it runs

        while True:
            try:
                result = await self.workers.run(deferred.work, wanted, started)
            except JobNotWanted:
                raise trio.BrokenResourceError("the client went away before its answer") from None
            answer = deferred.finish(result)
            if isinstance(answer, Reply):
                return answer
            deferred = answer

    async def _send(self, replies: list[Reply]) -> None:
        """Write ``replies`` in order, in one write: at once if the kernel
        takes them (the usual case), else within the request timeout."""
        unsent = self._write_now(replies)
        if unsent:
            self._timer.wait_for(Waiting.SEND, trio.current_time() + self.settings.request_timeout)
            await self._transport.send_all(unsent)

    def _write_now(self, replies: list[Reply]) -> bytes | memoryview:
        """Write ``replies`` in order, in one write, as far as the kernel
        takes them without waiting (counted); return what is left."""
        data = b"".join([reply.wire for reply in replies])
        if self.stats.metrics is not None:
            self.stats.metrics.count_bytes(sent=len(data))
        sent = self._transport.send_now(data)
        if sent == len(data):
            return b""
        return memoryview(data)[sent:] if sent else data

    def _feed(self, protocol: MessageProtocol, data: bytes | bytearray) -> None:
        """Give bytes read to the protocol object (which copies them), counted."""
        protocol.receive_data(data)
        if self.stats.metrics is not None:
            self.stats.metrics.count_bytes(received=len(data))
            self._received_at = trio.current_time()

    def _log_send_timeout(self, limit: float) -> None:
        self.warnings.warning(self.peer, "response not taken within %g s; closing", limit)
        self.stats.count_error(codes.SEND_TIMEOUT)

    async def _read_proxy_header(self) -> bytes | None:
        """Read the PROXY protocol header a trusted balancer sends first, and
        take the client's address from it. Returns the bytes read past the
        header, or ``None`` (logged, counted) when the connection must end:
        an untrusted peer, a malformed header, or none within the request
        timeout."""
        sock = socket_of(self.stream)
        try:
            address = sock.getpeername()[0] if sock is not None else None
        except OSError as exc:
            # Reset already (ENOTCONN): a balancer's health check may
            # connect and reset at once.
            self._lost(exc)
            return None
        if not isinstance(address, str) or not self.settings.trusted_proxies.is_trusted(address):
            self.warnings.warning(
                self.peer, "PROXY protocol header expected from a trusted proxy only; closing"
            )
            self.stats.count_error(codes.UNTRUSTED_PROXY)
            return None
        parser = ProxyHeaderParser()
        with trio.move_on_after(self.settings.request_timeout):
            try:
                while (header := parser.next_event()) is NEED_DATA:
                    parser.receive_data(await self._transport.receive(RECEIVE_SIZE))
            except RemoteProtocolError as exc:
                self.warnings.warning(self.peer, "%s (%s); closing", exc.message, exc.code)
                self.stats.count_error(exc.code)
                return None
            assert isinstance(header, ProxyHeader)
            if header.source is not None:
                logger.debug(
                    "%s: PROXY header: client %s", self.peer, format_address(header.source)
                )
                self.peer = format_address(header.source)
            return parser.trailing_data
        self.warnings.warning(
            self.peer, "no PROXY header within %g s; closing", self.settings.request_timeout
        )
        self.stats.count_error(codes.PROXY_HEADER_TIMEOUT)
        return None

    async def _tls_handshake(self) -> bool:
        assert isinstance(self.stream, trio.SSLStream)
        with trio.move_on_after(self.settings.request_timeout):
            try:
                await self.stream.do_handshake()
            except trio.BrokenResourceError as exc:
                self.warnings.warning(self.peer, "TLS handshake failed: %s", exc.__cause__ or exc)
                self.stats.count_error(codes.TLS_HANDSHAKE)
                return False
            return True
        self.warnings.warning(
            self.peer, "TLS handshake not done within %g s", self.settings.request_timeout
        )
        self.stats.count_error(codes.TLS_HANDSHAKE_TIMEOUT)
        return False

    async def _linger_close(self) -> None:
        await linger_close(self.stream, LINGER_TIMEOUT)

    def _report_error(self, error: TrioSearchError) -> None:
        """Log and count an error that ends the connection."""
        self._reported = True
        reason = error.message
        if len(reason) > MAX_LOGGED_REASON:
            # The reason may quote the peer's header values: bound what a
            # client can write into the log.
            reason = reason[:MAX_LOGGED_REASON] + "..."
        self.warnings.warning(self.peer, "%s (%s); closing", reason, error.code)
        self.stats.count_error(error.code)


async def refuse_busy(
    stream: trio.abc.Stream,
    peer: str,
    send_timeout: float,
    warnings: PeerWarnings,
    per_address: str | None = None,
) -> None:
    """Answer "server busy" at once and close ``stream``; never raises
    except for cancellation. ``per_address`` says the client's own address
    is over its limit, and how."""
    if per_address is None:
        error = ServerBusy("server busy, try again later", code=codes.BUSY)
        warnings.warning(peer, "refused: connection limit reached")
    else:
        error = ServerBusy(f"server busy: {per_address}, try again later", code=codes.BUSY)
        warnings.warning(peer, "refused: %s", per_address)
    try:
        with trio.move_on_after(send_timeout):
            await stream.send_all(error_reply(error).wire)
            await linger_close(stream, BUSY_LINGER_TIMEOUT)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await close_stream(stream)
