"""Live counters of a server, as the ``stats`` action reports them."""

from __future__ import annotations

import collections
from typing import Any

import attrs

from ._metrics import Metrics


@attrs.define
class ServerStats:
    """Counters updated by the server; read them at any time.

    Attributes:
        started_at: ``trio.current_time()`` (or any clock) when serving
            began: set by ``SearchServer.serve``, or by the first
            ``SearchServer.handle_stream`` if that comes first.
        connections_open: Connections being served now.
        connections_total: Connections accepted since start.
        connections_refused_busy: Connections answered "busy" at the limit.
        requests: Well-framed requests answered, those answered with an
            error included (a ``stats`` answer counts the ones before it).
        errors: Error responses and dropped connections, by error code.
    """

    started_at: float = 0.0
    connections_open: int = 0
    connections_total: int = 0
    connections_refused_busy: int = 0
    requests: int = 0
    errors: collections.Counter[str] = attrs.field(factory=collections.Counter)
    #: Also counts every error here, when the server exports metrics.
    metrics: Metrics | None = attrs.field(default=None, repr=False)

    def count_error(self, code: str) -> None:
        """Count one failure with its error code."""
        self.errors[code] += 1
        if self.metrics is not None:
            self.metrics.count_error(code)

    def snapshot(self, now: float) -> dict[str, Any]:
        """The counters as a JSON-ready dict, ``now`` on the same clock as
        ``started_at``."""
        return {
            "connections_open": self.connections_open,
            "connections_total": self.connections_total,
            "connections_refused_busy": self.connections_refused_busy,
            "requests": self.requests,
            "errors": sum(self.errors.values()),
            "errors_by_code": dict(self.errors),
            "uptime_s": round(max(0.0, now - self.started_at), 3),
        }
