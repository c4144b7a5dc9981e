"""A connection's one timer: a cancel scope and what the connection waits for.

A connection spends its life waiting: for the next request, for the rest of
one, for the client to take its answers, for a worker thread. Each wait has
its own deadline and its own meaning when the deadline passes (an idle
client is closed quietly, a slow request is told ``request_timeout``, ...).
Rather than a cancel scope per wait, which costs more than moving a
deadline, the connection has one :class:`ConnectionTimer`, and
:meth:`ConnectionTimer.wait_for` sets what is awaited and its deadline
together, so the two can never disagree.

Moving a deadline still costs (Trio re-files it in its deadline heap), and
the idle deadline moves after every response. So :meth:`ConnectionTimer.wait_idle`
only ever moves it *earlier*: a scope whose deadline is already earlier
keeps it, and if it fires before the real idle deadline,
:attr:`ConnectionTimer.fired_early` says so and the connection simply waits
on under a new scope. A busy keep-alive connection thus re-files no deadline
per request, and pays for one early firing per idle timeout at most.
"""

from __future__ import annotations

import enum
import math

import attrs
import trio


class Waiting(enum.Enum):
    """What a connection waits for, which says what a timeout means."""

    IDLE = "the next request"
    REQUEST = "the rest of a request"
    SEND = "the client to take its answers"
    WORK = "a worker thread"
    LINGER = "nothing more: it lingers under a bound of its own"


@attrs.define(eq=False)
class ConnectionTimer:
    """One cancel scope for every wait of a connection.

    Enter :meth:`scope` around the waits; a scope that was cancelled (the
    deadline passed, or :meth:`cancel`) is spent: take a new one.
    """

    #: What the connection waits for now.
    waiting_for: Waiting = Waiting.IDLE
    #: While waiting for the next request: the real idle deadline, which the
    #: scope's may precede (see the module's docstring).
    idle_until: float = math.inf
    _scope: trio.CancelScope | None = attrs.field(default=None, init=False)
    #: Whether the scope was cancelled by :meth:`cancel_if_waiting_for`,
    #: rather than by its deadline.
    _cancelled: bool = attrs.field(default=False, init=False)

    def scope(self, idle_until: float = math.inf) -> trio.CancelScope:
        """A new cancel scope, waiting for the next request until
        ``idle_until`` (``trio.current_time()`` clock) unless told otherwise."""
        self._scope = trio.CancelScope(deadline=idle_until)
        self.waiting_for = Waiting.IDLE
        self.idle_until = idle_until
        self._cancelled = False
        return self._scope

    def wait_for(self, what: Waiting, deadline: float = math.inf) -> None:
        """From now on the connection waits for ``what``, until ``deadline``
        (``trio.current_time()`` clock)."""
        self.waiting_for = what
        scope = self._scope
        if scope is not None and scope.deadline != deadline:
            scope.deadline = deadline

    def wait_idle(self, deadline: float) -> None:
        """From now on the connection waits for its next request, until
        ``deadline``; the scope's deadline only moves if that is earlier."""
        self.waiting_for = Waiting.IDLE
        self.idle_until = deadline
        scope = self._scope
        if scope is not None and scope.deadline > deadline:
            scope.deadline = deadline

    @property
    def fired_early(self) -> bool:
        """Whether the scope fired while waiting for a request, before the
        real idle deadline: nothing has timed out, wait on."""
        return (
            self.waiting_for is Waiting.IDLE
            and not self._cancelled
            and trio.current_time() < self.idle_until
        )

    @property
    def spent(self) -> bool:
        """Whether the current scope was cancelled (it fired, or was cancelled)."""
        return self._scope is not None and self._scope.cancel_called

    def cancel_if_waiting_for(self, what: Waiting) -> bool:
        """Cancel the wait now if it is for ``what``; return whether it was."""
        if self._scope is None or self.waiting_for is not what:
            return False
        self._cancelled = True
        self._scope.cancel()
        return True

    def done(self) -> None:
        """The scope has been left: nothing to cancel until the next one."""
        self._scope = None
