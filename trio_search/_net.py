"""Small helpers about sockets and streams: naming peers, listener addresses,
accepting through a shortage of file descriptors."""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ._limits import ACCEPT_RETRY_DELAY
from ._transport import socket_of

logger = logging.getLogger("trio_search")

#: accept() errors that mean "out of resources for now", not "broken".
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


def format_address(address: Any) -> str:
    """``host:port`` for IPv4, ``[host]:port`` for IPv6, ``str()`` otherwise."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if ":" in str(host):
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    return str(address) if address else "?"


def peer_name(stream: trio.abc.Stream) -> str:
    """The remote address of ``stream``, for logs; ``"?"`` when there is none
    (memory streams in tests, a socket already reset)."""
    sock = socket_of(stream)
    if sock is None:
        return "?"
    try:
        return format_address(sock.getpeername())
    except OSError:
        return "?"


def listener_address(listener: trio.abc.Listener[Any]) -> tuple[str, int] | None:
    """The ``(host, port)`` a TCP listener (or TLS listener over one) is bound
    to; ``None`` for a listener with no socket (e.g. in-memory, in tests)."""
    inner: Any = listener
    while not hasattr(inner, "socket") and hasattr(inner, "transport_listener"):
        inner = inner.transport_listener
    sock: trio.socket.SocketType | None = getattr(inner, "socket", None)
    if sock is None:
        return None
    host, port = sock.getsockname()[:2]
    return host, port


@attrs.define(eq=False)
class RetryingListener(trio.abc.Listener[trio.abc.Stream]):
    """Wraps a listener so that running out of descriptors slows accepting
    but never stops it, and says so once rather than ten times a second.

    While ``accept`` fails with one of :data:`ACCEPT_CAPACITY_ERRNOS`, it
    retries every :data:`ACCEPT_RETRY_DELAY` seconds; the waiting clients
    stay in the kernel's listen backlog. The first failure logs a WARNING,
    the first success after it an INFO line with the duration. Other errors
    propagate. (``trio.serve_listeners`` would also retry, but logs an ERROR
    with a traceback on every attempt.)

    Args:
        transport_listener: The listener to accept from.
        connections_open: Reports the current load for the log line.
    """

    transport_listener: trio.abc.Listener[Any]
    connections_open: Callable[[], int] = lambda: 0
    _failing_since: float | None = attrs.field(default=None, init=False)
    _failures: int = attrs.field(default=0, init=False)
    _error_name: str = attrs.field(default="", init=False)

    def accept_waiting(
        self, wrap: Callable[[trio.SocketStream], trio.abc.Stream] | None
    ) -> list[trio.abc.Stream]:
        """Accept, without waiting, every connection already in the listen
        backlog, so that a graceful shutdown serves them rather than the
        kernel resetting them when the listener closes.

        Args:
            wrap: Makes each accepted TCP stream what this listener would
                have returned (a TLS stream, say); ``None`` when the listener
                is not a plain or wrapped ``trio.SocketListener`` whose
                wrapping the caller knows: then nothing is accepted.
        """
        inner: Any = self.transport_listener
        while not isinstance(inner, trio.SocketListener) and hasattr(inner, "transport_listener"):
            inner = inner.transport_listener
        if wrap is None or not isinstance(inner, trio.SocketListener):
            return []
        listening = inner.socket
        streams: list[trio.abc.Stream] = []
        try:
            # A duplicate of the listening socket, to accept without Trio's
            # checkpoint (the caller is being cancelled).
            raw = socket.fromfd(listening.fileno(), listening.family, listening.type)
        except OSError:
            return streams
        with raw:
            raw.setblocking(False)
            while True:
                try:
                    connection, _ = raw.accept()
                except OSError:  # BlockingIOError: the backlog is empty
                    break
                connection.setblocking(False)
                streams.append(wrap(trio.SocketStream(trio.socket.from_stdlib_socket(connection))))
        return streams

    async def accept(self) -> trio.abc.Stream:
        """Accept the next connection, waiting out a shortage of resources."""
        while True:
            try:
                stream: trio.abc.Stream = await self.transport_listener.accept()
            except OSError as exc:
                if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                    raise
                self._note_failure(exc.errno)
                await trio.sleep(ACCEPT_RETRY_DELAY)
                continue
            if self._failing_since is not None:
                logger.info(
                    "accepting again after %s for %.1f s (%d failed attempts)",
                    self._error_name,
                    trio.current_time() - self._failing_since,
                    self._failures,
                )
                self._failing_since = None
                self._failures = 0
            return stream

    def _note_failure(self, code: int) -> None:
        self._failures += 1
        if self._failing_since is not None:
            return
        self._failing_since = trio.current_time()
        self._error_name = errno.errorcode.get(code, str(code))
        logger.warning(
            "accepting new connections is failing: %s (%s) with %d connection(s) open; "
            "new clients wait in the listen backlog, retrying every %g s",
            self._error_name,
            os.strerror(code),
            self.connections_open(),
            ACCEPT_RETRY_DELAY,
        )

    async def aclose(self) -> None:
        """Close the wrapped listener."""
        await self.transport_listener.aclose()
