"""A connection's one timer: a cancel scope and what the connection waits for.

A connection spends its life waiting: for the next request, for the rest of
one, for the client to take its answers, for a worker thread. Each wait has
its own deadline and its own meaning when the deadline passes (an idle
client is closed quietly, a slow request is told ``request_timeout``, ...).
Rather than a cancel scope per wait, which costs more than moving a
deadline, the connection has one :class:`ConnectionTimer`, and
:meth:`ConnectionTimer.wait_for` sets what is awaited and its deadline
together, so the two can never disagree.
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
    _scope: trio.CancelScope | None = attrs.field(default=None, init=False)

    def scope(self) -> trio.CancelScope:
        """A new cancel scope, waiting for the next request until told otherwise."""
        self._scope = trio.CancelScope()
        self.waiting_for = Waiting.IDLE
        return self._scope

    def wait_for(self, what: Waiting, deadline: float = math.inf) -> None:
        """From now on the connection waits for ``what``, until ``deadline``
        (``trio.current_time()`` clock)."""
        self.waiting_for = what
        if self._scope is not None:
            self._scope.deadline = deadline

    @property
    def spent(self) -> bool:
        """Whether the current scope was cancelled (it fired, or was cancelled)."""
        return self._scope is not None and self._scope.cancel_called

    def cancel_if_waiting_for(self, what: Waiting) -> bool:
        """Cancel the wait now if it is for ``what``; return whether it was."""
        if self._scope is None or self.waiting_for is not what:
            return False
        self._scope.cancel()
        return True

    def done(self) -> None:
        """The scope has been left: nothing to cancel until the next one."""
        self._scope = None
