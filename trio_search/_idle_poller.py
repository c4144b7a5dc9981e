"""Connections between requests, waited for together rather than by a task each.

Theory of operation
-------------------

A task of its own and a cancel scope per connection cost about as much as
everything else a one-shot connection does (docs/performance.md): spawning
the task, entering and leaving its scope, registering its socket with
Trio's epoll and waking it for the client's end of file. Yet most of a
connection's life, and all of a one-shot connection's after its answer, is
a wait between requests, which needs neither: it has one deadline (the idle
timeout, the same for every connection) and nothing to cancel but the wait.

So a plain TCP connection the server accepted itself waits between requests
*in the poller*: its socket registered (one-shot) in an epoll set of the
:class:`IdlePoller`, and no task. One task waits for that set to become
readable and, for each connection with input, calls its
:meth:`~IdleConnection.serve_ready`, which reads once and answers there and
then the complete requests that need nothing but the event loop. The
connection then waits in the poller again, or has closed (the client's end
of file), or needs to wait for something else (the rest of a request, a
worker thread, a client slow to take its answers, a broken frame to answer
and linger after): it then moves into a task of its own, which serves it to
its end under its timer (see trio_search._connection). A new connection is
handed to the poller as soon as it is accepted, so a one-shot client whose
request is already in the socket is answered in the accept loop itself.

A second task, the sweeper, ends connections whose deadline has passed,
oldest first. Every connection waits the same idle timeout, counted from
when it began waiting, so the order in which connections came to the poller
is the order of their deadlines: the sweeper sleeps until the first one's,
and is woken early only when a graceful shutdown or an eviction brings a
deadline forward.

The poller needs ``select.epoll`` (Linux); elsewhere :func:`make_idle_poller`
returns ``None`` and every connection has a task.
"""

from __future__ import annotations

import contextlib
import enum
import select
from collections.abc import Callable
from typing import Protocol

import attrs
import trio

from ._limits import POLL_BATCH
from ._log import logger

#: What the poller waits for: input (an end of file, a reset and a hang-up
#: are reported with it), once, until the connection is registered again.
_EVENTS = select.EPOLLIN | select.EPOLLONESHOT if hasattr(select, "EPOLLIN") else 0


class Next(enum.Enum):
    """Where a connection goes after the poller's call."""

    #: Back to waiting in the poller for its next request.
    WAIT = "wait in the poller"
    #: Into a task of its own, which serves it to its end.
    TASK = "a task of its own"
    #: Nowhere: it has ended and is closed.
    CLOSED = "closed"


class IdleConnection(Protocol):
    """What the poller needs of a connection."""

    def fileno(self) -> int:
        """The socket's descriptor."""
        ...

    def serve_ready(self) -> Next:
        """Read once without waiting and answer the complete requests."""
        ...

    def idle_deadline(self) -> float:
        """Until when it may wait for its next request (``trio.current_time()`` clock)."""
        ...

    def expire(self) -> Next:
        """Its deadline has passed: end it (or serve what it has, if that
        is what the deadline now means)."""
        ...

    def abandon(self) -> None:
        """Close it now, silently: the server is stopping."""
        ...

    def move_to_task(self) -> None:
        """Be served by a task of its own from now on, whatever it waits for."""
        ...


@attrs.define(eq=False)
class IdlePoller:
    """Waits for every resting connection's next request at once.

    Args:
        start_task: Starts a connection's own task (when it must wait for
            something else than its next request).
        ended: Called once for each connection that ended here.
        idle_timeout: The server's idle timeout, in seconds: how long the
            sweeper may sleep when no connection waits.
    """

    start_task: Callable[[IdleConnection], None]
    ended: Callable[[IdleConnection], None]
    idle_timeout: float
    _epoll: select.epoll = attrs.field(factory=select.epoll, init=False)
    #: Waiting connections by descriptor, for the events epoll reports.
    _by_fd: dict[int, IdleConnection] = attrs.field(factory=dict, init=False)
    #: The same, in the order they began waiting: the order of their deadlines.
    _order: dict[IdleConnection, None] = attrs.field(factory=dict, init=False)
    #: Descriptors in the epoll set.
    _registered: set[int] = attrs.field(factory=set, init=False)
    _sweeper_sleep: trio.CancelScope | None = attrs.field(default=None, init=False)
    #: A deadline other than the first one's came forward: look at them all.
    _rescan: bool = attrs.field(default=False, init=False)
    _scope: trio.CancelScope | None = attrs.field(default=None, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    #: Whether connections may be added: the poller runs and is not about
    #: to stop.
    accepting: bool = attrs.field(default=False, init=False)

    def __len__(self) -> int:
        return len(self._order)

    def add(self, connection: IdleConnection) -> None:
        """Serve what a new connection has sent already, and keep it waiting
        here (or start its task)."""
        self._after(connection, connection.serve_ready())

    def _after(self, connection: IdleConnection, where: Next) -> None:
        """Put ``connection`` where the call that served it says."""
        fd = connection.fileno()
        if where is Next.WAIT:
            try:
                if fd in self._registered:
                    self._epoll.modify(fd, _EVENTS)
                else:
                    self._epoll.register(fd, _EVENTS)
                    self._registered.add(fd)
            except OSError as exc:
                # (Out of kernel memory or epoll watches, say.) Its own
                # task waits with Trio's epoll instead.
                logger.warning("cannot wait in the idle poller (%s); in a task instead", exc)
                connection.move_to_task()
                where = Next.TASK
        if where is Next.WAIT:
            self._by_fd[fd] = connection
            self._order.pop(connection, None)
            self._order[connection] = None
            return
        self._forget(connection, fd)
        if fd in self._registered:
            self._registered.discard(fd)
            if where is Next.TASK:
                # Its task waits with Trio's own epoll from now on.
                with contextlib.suppress(OSError):
                    self._epoll.unregister(fd)
            # (Closing the socket took it out of the epoll set.)
        if where is Next.TASK:
            self.start_task(connection)
        else:
            self.ended(connection)
        self._check_done()

    def _forget(self, connection: IdleConnection, fd: int) -> None:
        if self._by_fd.get(fd) is connection:
            del self._by_fd[fd]
        self._order.pop(connection, None)

    def deadline_moved(self) -> None:
        """A waiting connection's deadline came forward: the sweeper looks again."""
        self._rescan = True
        if self._sweeper_sleep is not None:
            self._sweeper_sleep.cancel()

    def close(self) -> None:
        """A graceful shutdown: the poller stops once no connection waits."""
        self._closing = True
        self.deadline_moved()
        self._check_done()

    def _check_done(self) -> None:
        if self._closing and not self._order and self._scope is not None:
            self.accepting = False
            self._scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Poll and sweep until :meth:`close` and no connection waits, or
        until cancelled; then end every connection still waiting."""
        self.accepting = True
        try:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                nursery.start_soon(self._poll)
                nursery.start_soon(self._sweep)
                task_status.started()
                self._check_done()
        finally:
            self.accepting = False
            self._closing = True
            for connection in list(self._order):
                self._forget(connection, connection.fileno())
                connection.abandon()
                self.ended(connection)
            self._epoll.close()

    async def _poll(self) -> None:
        epoll = self._epoll
        while True:
            await trio.lowlevel.wait_readable(epoll.fileno())
            for fd, _ in epoll.poll(0, POLL_BATCH):
                connection = self._by_fd.pop(fd, None)
                if connection is not None:
                    self._after(connection, connection.serve_ready())

    async def _sweep(self) -> None:
        while True:
            now = trio.current_time()
            # A connection that begins waiting later has a later deadline
            # than this, whatever its idle timeout counts from.
            deadline = now + self.idle_timeout
            if self._rescan:
                # Rare (a shutdown, an eviction): every deadline, not only
                # the first.
                self._rescan = False
                for connection in list(self._order):
                    if connection.idle_deadline() <= now:
                        self._forget(connection, connection.fileno())
                        self._after(connection, connection.expire())
                deadline = min(
                    [connection.idle_deadline() for connection in self._order], default=deadline
                )
            while self._order:
                connection = next(iter(self._order))
                first = connection.idle_deadline()
                if first > now:
                    deadline = min(deadline, first)
                    break
                self._forget(connection, connection.fileno())
                self._after(connection, connection.expire())
            with trio.CancelScope(deadline=deadline) as self._sweeper_sleep:
                await trio.sleep_forever()
            self._sweeper_sleep = None


def make_idle_poller(
    start_task: Callable[[IdleConnection], None],
    ended: Callable[[IdleConnection], None],
    idle_timeout: float,
) -> IdlePoller | None:
    """An :class:`IdlePoller`, or ``None`` where there is no epoll."""
    if not hasattr(select, "epoll"):
        return None
    return IdlePoller(start_task, ended, idle_timeout)
