"""Small helpers about sockets and streams: naming peers, listener addresses,
accepting through a shortage of file descriptors."""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ._limits import ACCEPT_RETRY_DELAY

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


def _socket_of(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    """The socket under ``stream``, looking through TLS and similar wrappers."""
    while True:
        sock = getattr(stream, "socket", None)
        if sock is not None:
            return sock  # type: ignore[no-any-return]
        inner = getattr(stream, "transport_stream", None)
        if inner is None:
            return None
        stream = inner


def has_pending_input(stream: trio.abc.Stream) -> bool:
    """Whether bytes, or an end of file, wait unread for ``stream``: in a TLS
    stream's buffers, or in the kernel for the socket under it; never
    blocks. ``False`` for a stream without a socket (memory streams), whose
    buffer cannot be inspected.

    TLS matters here: reading one large request can pull the client's next
    requests (separate TLS records) out of the socket into the TLS object,
    where the socket no longer shows them; a graceful shutdown that looked
    only at the socket lost them.
    """
    if isinstance(stream, trio.SSLStream) and _tls_has_pending_input(stream):
        return True
    sock = _socket_of(stream)
    if sock is None:
        return False
    try:
        fd = sock.fileno()
        if fd < 0:
            return False
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([fd], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return False


def _tls_has_pending_input(stream: trio.SSLStream[Any]) -> bool:
    try:
        if stream.pending() > 0:  # decrypted, not yet read (SSLObject.pending)
            return True
    except (OSError, ValueError, AttributeError):
        pass
    # Received but not yet decrypted: Trio keeps these in a memory BIO that it
    # does not expose; looked up defensively, so a Trio without it only
    # loses this check.
    incoming = getattr(stream, "_incoming", None)
    return bool(getattr(incoming, "pending", 0))


def peer_has_gone(stream: trio.abc.Stream) -> bool:
    """Whether the connection under ``stream`` was reset or hung up in both
    directions; never blocks. A plain end of file is not enough: a client
    may half-close after its last request and still read the answers.
    ``False`` for a stream without a socket."""
    sock = _socket_of(stream)
    if sock is None or not hasattr(select, "poll"):
        return False
    try:
        fd = sock.fileno()
        if fd < 0:
            return False
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return any(events & (select.POLLHUP | select.POLLERR) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def peer_name(stream: trio.abc.Stream) -> str:
    """The remote address of ``stream``, for logs; ``"?"`` when there is none
    (memory streams in tests, a socket already reset)."""
    sock = _socket_of(stream)
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
