"""A server-wide budget for the request bytes its connections hold.

Each connection's protocol object buffers a request until it is whole, up
to ``--max-content-length`` (1 MiB by default); 2,000 connections each
sending 900 KB of a declared 1 MB took the server to 1.8 GB. The budget
counts the bytes every connection holds. Past it, a connection in the
middle of a request stops reading (TCP backpressure: the client's sends
block) until others free room, and its request timeout keeps running, so a
client that cannot finish is closed in time and frees its share.

So that requests in progress cannot all wait on each other until they time
out, one of them at a time, the first to find the budget spent, goes on
reading to its end and frees its bytes. A connection between requests
still reads, one receive at a time, so small requests go on being answered.
The budget is thus exceeded by at most one request's content and one
receive per connection.
"""

from __future__ import annotations

import attrs
import trio


@attrs.define(eq=False)
class BufferBudget:
    """Bytes that connections may hold at once, and who waits for room.

    Args:
        limit: The budget, in bytes.
    """

    limit: int
    #: Bytes held now, by every connection together.
    used: int = attrs.field(default=0, init=False)
    #: Bytes held at most since the server started.
    peak: int = attrs.field(default=0, init=False)
    _waiting: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot, init=False)
    #: The connection whose request may go on reading past the budget.
    _going_on: object | None = attrs.field(default=None, init=False)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.limit

    def adjust(self, delta: int) -> None:
        """Count ``delta`` more bytes held (fewer if negative)."""
        self.used += delta
        if self.used > self.peak:
            self.peak = self.used
        if delta < 0 and self.used < self.limit and self._waiting:
            self._waiting.unpark_all()

    async def wait_for_room(self, who: object) -> None:
        """Return once ``who`` may read more of its request: less than the
        budget is held, or ``who`` is the one request that goes on."""
        while self.exhausted:
            if self._going_on is None or self._going_on is who:
                self._going_on = who
                return
            await self._waiting.park()

    def request_done(self, who: object) -> None:
        """``who`` holds no request in progress any more (answered, or closed)."""
        if self._going_on is who:
            self._going_on = None
            self._waiting.unpark_all()
