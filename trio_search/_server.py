"""The server's lifecycle: listen, accept under a nursery, shut down gracefully.

Theory of operation
-------------------

:meth:`SearchServer.serve` opens its listeners, then runs two nested
nurseries. The outer one holds a task per connection; the inner one holds
an accept loop per listener, which starts each connection in the outer
nursery. So the accept loop can stop alone while connections go on.

:meth:`SearchServer.shutdown` starts a graceful shutdown: it cancels the
accept loop (the listeners close, so new connections are refused), asks
every connection to close once idle (idle ones close at once), and gives the
rest ``shutdown_grace`` seconds, as the deadline of the connections'
nursery, after which Trio cancels them. Cancelling the task running
:meth:`~SearchServer.serve` stops everything at once.

While it accepts, a server whose index is a directory on disk also checks it
every :data:`INDEX_POLL_INTERVAL` seconds (in a worker thread) and searches
what other processes committed. :meth:`SearchServer.reload_index` loads the
data anew (SIGHUP in ``trio-search-server``) and swaps it in whole.
"""

from __future__ import annotations

import collections
import functools
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import attrs
import trio

from . import _codes as codes
from ._app import Application, SearchApp
from ._budget import BufferBudget
from ._connection import IdleConnections, ServerConnection, refuse_busy
from ._engine import SearchIndex
from ._errors import TrioSearchError
from ._idle_poller import IdleConnection, IdlePoller, make_idle_poller
from ._index import BUILTIN_INDEX
from ._limits import (
    DECODE_THREADS,
    INDEX_POLL_INTERVAL,
    TRIM_AFTER_BYTES,
    TRIM_CHECK_INTERVAL,
)
from ._listeners import RetryingListener, listener_address, open_listeners
from ._log import logger
from ._log_limit import WARNING_INTERVAL, PeerWarnings, address_of
from ._memory import trim
from ._metrics import Metrics
from ._net import format_address, peer_name
from ._settings import ServerSettings
from ._stats import ServerStats
from ._thread_pool import ThreadPool
from ._transport import TcpStream


@attrs.define(eq=False)
class SearchServer:
    """The trio_search server, to run under a nursery.

    Example::

        server = SearchServer(ServerSettings(port=0))
        addresses = await nursery.start(server.serve)

    Args:
        settings: Address, limits and timeouts.
        index: The search data: a :class:`SearchIndex` (in memory, or a
            directory whose commits are followed), or key -> answer strings.
        loader: Loads the data anew for :meth:`reload_index` (blocking; run
            in a worker thread); ``None``: the index cannot be reloaded.
        app: Serve this application instead of the search app over
            ``index``: any object with ``respond(request) -> Reply | Deferred``.
        metrics: Count requests, errors, connections, latency and bytes in
            this Prometheus metric set (see :meth:`metrics_exposition`);
            ``None``: no metrics, and none of their cost.
    """

    settings: ServerSettings = attrs.field(factory=ServerSettings)
    index: SearchIndex | Mapping[str, str] = BUILTIN_INDEX
    loader: Callable[[], SearchIndex] | None = None
    app: Application | None = None
    metrics: Metrics | None = None
    stats: ServerStats = attrs.field(factory=ServerStats, init=False)
    #: Totals across every worker of a ``--workers`` run, when known; the
    #: ``stats`` action reports them under ``all_workers``.
    all_workers: dict[str, Any] | None = attrs.field(default=None, init=False)
    #: ``(host, port)`` of each listener, once :meth:`serve` has started.
    addresses: list[tuple[str, int]] = attrs.field(factory=list, init=False)
    _search_app: SearchApp | None = attrs.field(default=None, init=False)
    _workers: ThreadPool = attrs.field(init=False)
    _reload_lock: trio.Lock = attrs.field(factory=trio.Lock, init=False)
    _idle: IdleConnections = attrs.field(factory=IdleConnections, init=False)
    _budget: BufferBudget = attrs.field(init=False)
    _own_listeners: list[trio.abc.Listener[Any]] = attrs.field(factory=list, init=False)
    _per_address: collections.Counter[str] = attrs.field(factory=collections.Counter, init=False)
    _warnings: PeerWarnings = attrs.field(
        factory=lambda: PeerWarnings(logger, trio.current_time), init=False
    )
    _connections: set[ServerConnection] = attrs.field(factory=set, init=False)
    _accept_scope: trio.CancelScope | None = attrs.field(default=None, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    #: Whether serving has begun (:meth:`serve`, or a first :meth:`handle_stream`).
    _started: bool = attrs.field(default=False, init=False)
    #: Where accepted plain TCP connections wait between requests (see
    #: trio_search._idle_poller); ``None`` outside :meth:`serve`, or where
    #: there is no epoll.
    _poller: IdlePoller | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self.stats.metrics = self.metrics
        if self.app is None:
            self._search_app = SearchApp(self.index, self._stats_snapshot)
            self.app = self._search_app
        waited = None if self.metrics is None else self.metrics.worker_waited
        self._workers = ThreadPool(DECODE_THREADS, waited)
        self._budget = BufferBudget(self.settings.max_buffered_bytes)

    @property
    def search_index(self) -> SearchIndex | None:
        """The index now searched (``None`` when serving an application of one's own)."""
        return None if self._search_app is None else self._search_app.index

    async def reload_index(self) -> bool:
        """Load the data anew with ``loader`` and search it from now on.

        Requests being answered finish on the old index. If loading fails,
        the old index stays and one ERROR line says why (with the traceback
        when the loader raised something other than a ``TrioSearchError`` or
        ``OSError``, which would be a bug of its own): whatever the loader
        raises, this returns False rather than raise, so that a task calling
        it cannot take the server down. Returns whether the new index is in
        place.
        """
        if self._search_app is None or self.loader is None:
            logger.error("reload requested, but this server's data cannot be reloaded")
            return False
        async with self._reload_lock:
            started = time.perf_counter()
            try:
                index = await self._workers.run(functools.partial(load_and_read, self.loader))
            except (TrioSearchError, OSError) as exc:
                logger.error("reload failed; still serving the previous data: %s", exc)
                return False
            except Exception as exc:
                # The loader is the embedding program's: a bug there
                # (json.JSONDecodeError, KeyError, ...) is told in full.
                logger.error(
                    "reload failed; still serving the previous data: the loader raised %s: %s",
                    type(exc).__name__,
                    exc,
                    exc_info=exc,
                )
                return False
            index.number_after(self._search_app.index)
            self._search_app.replace_index(index)
            logger.info(
                "reloaded: %d documents, generation %d, in %.3f s",
                index.documents,
                index.generation,
                time.perf_counter() - started,
            )
            return True

    async def _return_memory_after_peaks(self) -> None:
        """After a peak of buffered requests has passed (an attack, a burst
        of uploads), give the freed memory back to the system."""
        trimmed_peak = 0
        while True:
            await trio.sleep(TRIM_CHECK_INTERVAL)
            budget = self._budget
            if budget.peak - trimmed_peak >= TRIM_AFTER_BYTES and budget.used < TRIM_AFTER_BYTES:
                # Connections that ended in an exception can sit in reference
                # cycles (traceback -> frame -> their buffers) until the
                # cyclic collector's next full pass, which an idle server
                # may not reach for a long time: collect, then trim.
                gc.collect()
                # malloc_trim takes milliseconds on a large heap (and,
                # through ctypes, lets go of the GIL): not on the loop.
                await trio.to_thread.run_sync(trim)
                trimmed_peak = budget.peak

    async def _summarize_warnings(self) -> None:
        """Say, once per interval, how many warnings each client had left out."""
        while True:
            await trio.sleep(WARNING_INTERVAL)
            self._warnings.flush()

    async def _follow_commits(self) -> None:
        """Search what other processes commit to an on-disk index, within
        about :data:`INDEX_POLL_INTERVAL` seconds."""
        while True:
            await trio.sleep(INDEX_POLL_INTERVAL)
            app = self._search_app
            if app is None or app.index.path is None:
                continue
            index = app.index
            async with self._reload_lock:
                if app.index is not index:
                    continue  # reloaded meanwhile
                try:
                    # Every look at the directory is a stat at least: on a
                    # disk that hangs (NFS), only this task may wait for it.
                    new, changed = await trio.to_thread.run_sync(_look_for_commits, index)
                    if new is not index:
                        app.replace_index(new)
                        index = new
                except (TrioSearchError, OSError, ValueError) as exc:
                    logger.error(
                        "cannot read index %s: %s; still serving generation %d",
                        index.path,
                        exc,
                        index.generation,
                    )
                    continue
                except Exception as exc:
                    # Anything else (tantivy has more exception types than
                    # it documents) would end this task and, with it, the
                    # server: told in full, and tried again at the next poll.
                    logger.error(
                        "cannot read index %s: %s: %s; still serving generation %d",
                        index.path,
                        type(exc).__name__,
                        exc,
                        index.generation,
                        exc_info=exc,
                    )
                    continue
                if changed:
                    logger.info(
                        "index %s: generation %d, %d documents",
                        index.path,
                        index.generation,
                        index.documents,
                    )

    def _connections_open(self) -> int:
        return self.stats.connections_open

    def _stats_snapshot(self) -> dict[str, Any]:
        snapshot = self.stats.snapshot(trio.current_time())
        snapshot["buffered_bytes"] = self._budget.used
        snapshot["buffered_bytes_peak"] = self._budget.peak
        if self.all_workers is not None:
            snapshot["all_workers"] = self.all_workers
        return snapshot

    def update_index_metrics(self) -> None:
        """Bring the index and worker-thread gauges up to date (before a
        scrape or snapshot)."""
        if self.metrics is not None:
            self.metrics.workers_counted(self._workers.running, self._workers.queued)
        index = self.search_index
        if self.metrics is not None and index is not None:
            self.metrics.index_loaded(index.documents, index.generation, index.loaded_at)
            counts = index.ranking_cache_counts
            self.metrics.query_cache_counted(counts.hits, counts.stored)

    def metrics_exposition(self) -> bytes:
        """The server's metrics in Prometheus' text format (``GET /metrics``).

        Raises:
            RuntimeError: the server was made without ``metrics``.
        """
        if self.metrics is None:
            raise RuntimeError(
                "this server has no metrics: make it with "
                "SearchServer(settings, metrics=trio_search.Metrics())"
            )
        self.update_index_metrics()
        return self.metrics.exposition()

    async def open_listeners(self) -> list[trio.abc.Listener[Any]]:
        """Bind and listen on the configured address (TLS-wrapped if set).

        Raises:
            OSError: the address cannot be bound (in use, unknown host, ...).
        """
        host = self.settings.host or None
        tcp_listeners = await open_listeners(
            host, self.settings.port, reuse_port=self.settings.reuse_port
        )
        context = self.settings.ssl_context
        if context is None or self.settings.proxy_protocol:
            # With the PROXY protocol, TLS starts after its header: each
            # connection wraps itself once it has read it.
            self._own_listeners += tcp_listeners
            return list(tcp_listeners)
        # Our messages are self-delimiting, so a peer closing without TLS's
        # close_notify cannot truncate one unnoticed (the protocol object
        # reports "truncated"): treat it as a plain end of file, as HTTPS does.
        tls_listeners: list[trio.abc.Listener[Any]] = [
            trio.SSLListener(listener, context, https_compatible=True) for listener in tcp_listeners
        ]
        self._own_listeners += tls_listeners
        return tls_listeners

    async def serve(
        self,
        listeners: list[trio.abc.Listener[Any]] | None = None,
        *,
        task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen and serve until shut down or cancelled.

        Args:
            listeners: Serve these instead of opening the configured address.

        Reports ``(host, port)`` of every listener to ``nursery.start``.
        Returns after a graceful shutdown has finished.

        Raises:
            OSError: the configured address cannot be bound.
        """
        if listeners is None:
            listeners = await self.open_listeners()
        self._note_started()
        self.addresses = [
            address for address in map(listener_address, listeners) if address is not None
        ]
        retrying = [RetryingListener(listener, self._connections_open) for listener in listeners]
        async with trio.open_nursery() as connections:
            if not self.settings.proxy_protocol:
                # (A PROXY header comes first: such connections start in a task.)
                self._poller = make_idle_poller(
                    lambda connection: connections.start_soon(self._run_connection, connection),
                    self._connection_ended,
                    self.settings.idle_timeout,
                )
            if self._poller is not None:
                await connections.start(self._poller.run)
                if self._closing:
                    self._poller.close()
            reported = False
            async with trio.open_nursery() as acceptor:
                self._accept_scope = acceptor.cancel_scope
                if self._closing:
                    acceptor.cancel_scope.cancel()
                for listener in retrying:
                    # Listeners of our own making: we know how to accept from
                    # their backlog at shutdown (see _accept_loop).
                    own = listener.transport_listener in self._own_listeners
                    await acceptor.start(self._accept_loop, listener, connections, own)
                acceptor.start_soon(self._follow_commits)
                acceptor.start_soon(self._summarize_warnings)
                acceptor.start_soon(self._return_memory_after_peaks)
                if self.addresses:
                    logger.info(
                        "listening on %s", ", ".join(format_address(a) for a in self.addresses)
                    )
                task_status.started(self.addresses)
                reported = True
            # The accept loop ended: a graceful shutdown is under way.
            if not reported:
                # Shut down before every accept loop ran (shutdown() came
                # first, or while listening began): the listeners no loop
                # took are closed here (closing is idempotent), and
                # nursery.start still hears that serve() began.
                for listener in retrying:
                    await trio.aclose_forcefully(listener)
                task_status.started(self.addresses)
            grace = self.settings.shutdown_grace
            if self._connections:
                logger.info(
                    "stopped accepting; waiting up to %g s for %d connection(s)",
                    grace,
                    len(self._connections),
                )
            connections.cancel_scope.deadline = trio.current_time() + grace
        self._warnings.flush()
        if connections.cancel_scope.cancelled_caught:
            logger.warning("shutdown grace of %g s over; remaining connections cancelled", grace)
        logger.info("server stopped")

    def _note_started(self) -> None:
        """Count ``uptime_s`` from now, unless serving began earlier: from
        :meth:`serve`, or the first :meth:`handle_stream` of a program that
        accepts its connections itself."""
        if not self._started:
            self._started = True
            self.stats.started_at = trio.current_time()

    @property
    def shutting_down(self) -> bool:
        """Whether :meth:`shutdown` has been called."""
        return self._closing

    def shutdown(self) -> None:
        """Begin a graceful shutdown; :meth:`serve` returns once it is done.

        Safe to call more than once, and before :meth:`serve` starts.
        """
        if self._closing:
            return
        self._closing = True
        logger.info("shutting down: no new connections")
        if self._accept_scope is not None:
            self._accept_scope.cancel()
        for connection in list(self._connections):
            connection.close_when_idle()
        if self._poller is not None:
            self._poller.close()

    async def _accept_loop(
        self,
        listener: trio.abc.Listener[trio.abc.Stream],
        connections: trio.Nursery,
        drain_backlog: bool,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept until cancelled, starting each connection in ``connections``;
        the listener is closed on the way out, so new clients are refused.

        (Like ``trio.serve_listeners``, without its second forced close of
        every stream: :meth:`handle_stream` always closes its own.)
        """
        async with listener:
            task_status.started()
            try:
                accept_batch = (
                    listener.accept_batch
                    if isinstance(listener, RetryingListener)
                    else _one_at_a_time(listener)
                )
                while True:
                    for stream in await accept_batch():
                        poller = self._poller
                        if type(stream) is TcpStream and poller is not None and poller.accepting:
                            self._accept_into(poller, stream, connections)
                        else:
                            connections.start_soon(self.handle_stream, stream, _peer_of(stream))
            finally:
                if drain_backlog and self._closing and isinstance(listener, RetryingListener):
                    # Clients already in the backlog sent their requests
                    # before the shutdown: serve them, as if accepted in time.
                    for stream in listener.accept_waiting(self._wrap_accepted()):
                        connections.start_soon(self.handle_stream, stream, _peer_of(stream))

    def _wrap_accepted(self) -> Callable[[trio.SocketStream], trio.abc.Stream]:
        """What :meth:`open_listeners`' listeners make of an accepted TCP stream."""
        context = self.settings.ssl_context
        if context is None or self.settings.proxy_protocol:
            return lambda stream: stream
        return lambda stream: trio.SSLStream(
            stream, context, server_side=True, https_compatible=True
        )

    async def handle_stream(self, stream: trio.abc.Stream, peer: str = "?") -> None:
        """Serve one connection on any Trio stream, then close it.

        This is what each accepted TCP connection runs, unless it waits
        between requests in the server's poller; call it yourself to
        serve memory streams, pipes, or streams you accept elsewhere. It
        counts toward ``max_connections`` and the live counters; the first
        call starts ``uptime_s`` if :meth:`serve` has not.
        """
        self._note_started()
        connection = self._admit(stream, peer)
        if isinstance(connection, _Refusal):
            await refuse_busy(stream, peer, *connection)
            return
        await self._run_connection(connection)

    def _accept_into(
        self, poller: IdlePoller, stream: TcpStream, connections: trio.Nursery
    ) -> None:
        """Admit a connection accepted on a plain TCP listener, and hand it
        to the poller, which answers at once the request it may hold."""
        connection = self._admit(stream, None, poller)
        if isinstance(connection, _Refusal):
            connections.start_soon(refuse_busy, stream, _peer_of(stream), *connection)
            return
        if self._closing:
            connection.close_when_idle()
        poller.add(connection)

    def _admit(
        self, stream: trio.abc.Stream, peer: str | None, poller: IdlePoller | None = None
    ) -> ServerConnection | _Refusal:
        """Count a new connection in, or say why it is refused (busy).
        ``peer``: as :class:`ServerConnection` takes it."""
        stats = self.stats
        settings = self.settings
        per_address = settings.max_connections_per_ip
        # Connections are counted per address only under a per-address limit.
        address = None
        if per_address is not None:
            if peer is None:
                peer = _peer_of(stream)
            address = address_of(peer)
        metrics = self.metrics
        if (
            per_address is not None
            and address is not None
            and self._per_address[address] >= per_address
        ):
            stats.connections_refused_busy += 1
            stats.count_error(codes.BUSY)
            if metrics is not None:
                metrics.connection_refused("per_ip")
            noun = "connection" if per_address == 1 else "connections"
            reason = f"more than {per_address} {noun} from this address"
            return _Refusal(settings.request_timeout, self._warnings, reason)
        if stats.connections_open >= settings.max_connections:
            # Make room by closing the connection idle the longest; refuse
            # only when every connection is in the middle of something.
            victim = None if self._closing else self._idle.longest_idle()
            if victim is None:
                stats.connections_refused_busy += 1
                stats.count_error(codes.BUSY)
                if metrics is not None:
                    metrics.connection_refused("busy")
                return _Refusal(settings.request_timeout, self._warnings)
            victim.evict()
        assert self.app is not None
        connection = ServerConnection(
            stream,
            peer,
            self.app,
            settings,
            stats,
            self._workers,
            self._warnings,
            self._idle,
            self._budget,
            poller,
        )
        stats.connections_open += 1
        stats.connections_total += 1
        if metrics is not None:
            metrics.connection_opened()
        if address is not None:
            self._per_address[address] += 1
            connection.counted_as = address
        self._connections.add(connection)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s: connected", connection.peer)
        return connection

    async def _run_connection(self, connection: IdleConnection) -> None:
        """Serve an admitted connection in a task of its own, to its end."""
        assert isinstance(connection, ServerConnection)
        try:
            if self._closing:
                connection.close_when_idle()
            await connection.serve()
        finally:
            self._connection_ended(connection)

    def _connection_ended(self, connection: IdleConnection) -> None:
        """Count a connection out (its stream is closed)."""
        assert isinstance(connection, ServerConnection)
        self._connections.discard(connection)
        stats = self.stats
        stats.connections_open -= 1
        if self.metrics is not None:
            self.metrics.connection_closed()
        address = connection.counted_as
        if address is not None:
            self._per_address[address] -= 1
            if not self._per_address[address]:
                del self._per_address[address]


class _Refusal(NamedTuple):
    """Why :meth:`SearchServer._admit` refused a connection: the arguments
    of :func:`refuse_busy` after the stream and peer."""

    send_timeout: float
    warnings: PeerWarnings
    per_address: str | None = None


def _one_at_a_time(
    listener: trio.abc.Listener[trio.abc.Stream],
) -> Callable[[], Awaitable[list[trio.abc.Stream]]]:
    """``accept_batch`` for a listener without one: a batch of one."""

    async def accept_one() -> list[trio.abc.Stream]:
        return [await listener.accept()]

    return accept_one


def _peer_of(stream: trio.abc.Stream) -> str:
    """The peer's name for logs: for a TcpStream, the address accept()
    returned (no getpeername() call)."""
    if type(stream) is TcpStream:
        return format_address(stream.peer_address)
    return peer_name(stream)


def _look_for_commits(index: SearchIndex) -> tuple[SearchIndex, bool]:
    """What another process committed to ``index``'s directory: the index
    opened anew if the directory was replaced whole (a rebuild), else
    ``index`` itself, and whether it changed. Blocks (stat calls, and
    opening an index): for a worker thread."""
    if index.replaced_on_disk():
        assert index.path is not None
        opener = functools.partial(
            SearchIndex.open, index.path, ranking_cache_hits=index.ranking_cache_hits
        )
        return load_and_read(opener), True
    return index, index.refresh()


def load_and_read(load: Callable[[], SearchIndex]) -> SearchIndex:
    """``load()``'s index, its dictionary read ahead (see
    :meth:`SearchIndex.read_dictionary`). Blocks: for a worker thread."""
    index = load()
    started = time.perf_counter()
    index.read_dictionary()
    logger.debug("dictionary read ahead in %.3f s", time.perf_counter() - started)
    return index
