"""What a run does, and how it reports progress."""

from __future__ import annotations

import ssl

import attrs

from .._errors import ConfigurationError
from ._checks import AnswerChecker
from ._constants import MODES


class BenchError(ConfigurationError):
    """The run cannot start (unknown host, bad settings)."""


def _check_mode(_instance: object, _attribute: object, value: str) -> None:
    if value not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {value!r}")


@attrs.frozen
class BenchConfig:
    """What to run.

    Args:
        host: Server address or hostname.
        port: Server port.
        request: Wire bytes of one request (:func:`search_request`).
        checker: Decides whether a response is right.
        connections: Connections (tasks) at once.
        duration: Seconds to run; or
        requests: the number of requests to send (exactly one of the two).
        mode: ``"keepalive"`` or ``"oneshot"`` (a connection per request).
        pipeline: Requests in flight per connection, sent in one write
            (``keepalive`` only).
        timeout: Seconds a batch may wait for its answers.
        ssl_context: Connect over TLS with this context.
        server_hostname: Name the TLS certificate is checked against
            (default: ``host``).
        server_pid: Measure this process's CPU time (Linux ``/proc``).
        retry: Send a batch's unanswered requests again, once, on a new
            connection when a reused keep-alive connection ends before
            answering them (``keepalive`` only; counted as retried).
    """

    host: str
    port: int
    request: bytes
    checker: AnswerChecker
    connections: int = 1
    duration: float | None = None
    requests: int | None = None
    mode: str = attrs.field(default="keepalive", validator=_check_mode)
    pipeline: int = 1
    timeout: float = 10.0
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    server_pid: int | None = None
    retry: bool = True

    def __attrs_post_init__(self) -> None:
        if (self.duration is None) == (self.requests is None):
            raise ValueError("give exactly one of duration and requests")
        if self.connections < 1 or self.pipeline < 1:
            raise ValueError("connections and pipeline must be at least 1")
        if self.mode == "oneshot" and self.pipeline != 1:
            raise ValueError("oneshot mode sends one request per connection: pipeline must be 1")


@attrs.frozen
class Progress:
    """A progress report: totals since the clock started."""

    elapsed: float
    ok: int
    errors: int
    #: Answers per second over the last interval.
    rate: float
