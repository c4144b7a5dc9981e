"""Log lines about clients, rate-limited per client address.

One client pipelining bad requests used to write a WARNING line per request
(103,000 lines, 9.7 MB, in 10 s), slowing every other client. A
:class:`PeerWarnings` lets each address write :data:`WARNINGS_PER_INTERVAL`
lines per :data:`WARNING_INTERVAL`; past that, its warnings are counted, and
:meth:`PeerWarnings.flush` (called once per interval by the server) writes
one summary line per address with the number left out. The ``stats``
counters still count every event: only the log is thinned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs

from ._errors import printable

#: Warning lines one client address may write per interval.
WARNINGS_PER_INTERVAL = 5
#: Seconds per interval, and between summary lines.
WARNING_INTERVAL = 10.0
#: Client addresses tracked at once, at most; past that the table is
#: flushed early, so a flood from many addresses cannot grow it unbounded.
MAX_TRACKED_ADDRESSES = 10_000


def address_of(peer: str) -> str:
    """The client's address without its port: ``"[::1]:5000"`` -> ``"[::1]"``."""
    host, _, port = peer.rpartition(":")
    return host if host and port.isdigit() else peer


@attrs.define(eq=False)
class PeerWarnings:
    """Rate-limited WARNING lines, per client address.

    Args:
        logger: Where the lines go.
        clock: The current time in seconds (``trio.current_time`` in a server).
    """

    logger: logging.Logger
    clock: Callable[[], float]
    _interval_start: float | None = attrs.field(default=None, init=False)
    _written: dict[str, int] = attrs.field(factory=dict, init=False)
    #: Per address: lines left out this interval, and the highest level
    #: among them (the summary's level).
    _left_out: dict[str, tuple[int, int]] = attrs.field(factory=dict, init=False)

    def warning(self, peer: str, message: str, *args: Any) -> None:
        """Log ``"{peer}: " + message % args`` at WARNING, unless this
        client's address has had its share of lines this interval."""
        self.log(logging.WARNING, peer, message, *args)

    def info(self, peer: str, message: str, *args: Any) -> None:
        """As :meth:`warning`, at INFO: lines that come one per connection
        (a reset, an eviction), which a client opening connections in a loop
        would otherwise multiply."""
        self.log(logging.INFO, peer, message, *args)

    def log(self, level: int, peer: str, message: str, *args: Any) -> None:
        """Log at ``level`` within this client's share of lines. A line the
        logger would drop anyway (below its level) is neither counted nor
        summarized: at ``--log-level WARNING``, a flood of INFO lines must
        not produce WARNING summaries of lines nobody saw."""
        if not self.logger.isEnabledFor(level):
            return
        now = self.clock()
        if self._interval_start is None:
            self._interval_start = now
        elif now - self._interval_start >= WARNING_INTERVAL:
            self.flush()
        address = address_of(peer)
        written = self._written.get(address, 0)
        if written < WARNINGS_PER_INTERVAL:
            if len(self._written) >= MAX_TRACKED_ADDRESSES:
                self.flush()
            self._written[address] = written + 1
            # A client's text quoted in the line (a header value, a path)
            # cannot break it into lines of its own.
            safe = [printable(arg) if type(arg) is str else arg for arg in args]
            self.logger.log(level, "%s: " + message, printable(peer), *safe)
        else:
            count, highest = self._left_out.get(address, (0, level))
            self._left_out[address] = (count + 1, max(highest, level))

    def flush(self) -> None:
        """Write one summary line per address whose warnings were left out,
        and start a new interval."""
        for address, (count, level) in self._left_out.items():
            self.logger.log(
                level,
                "%s: %d more line(s) like the above not logged in the last %g s",
                address,
                count,
                WARNING_INTERVAL,
            )
        self._written.clear()
        self._left_out.clear()
        self._interval_start = self.clock()
