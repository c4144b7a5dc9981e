"""Listening sockets: binding every address of a host, and accepting through
a shortage of descriptors.

:func:`open_listeners` is the one way the server (and each ``--workers``
worker, with ``reuse_port``) opens its listeners; :func:`bind_sockets` binds
without listening, for a supervisor that reserves the port for its workers.
With port 0 and several addresses (``--host ''``: IPv4 and IPv6), every
address gets the port the kernel chose for the first, so that one number
describes the server; if another program holds that port on another
address, the kernel picks again (:data:`SAME_PORT_ATTEMPTS` times).
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ._limits import ACCEPT_BATCH, ACCEPT_RETRY_DELAY, SAME_PORT_ATTEMPTS
from ._log import logger
from ._net import ACCEPT_CAPACITY_ERRNOS
from ._transport import TcpStream

#: Listen backlog: the system's maximum, as ``trio.open_tcp_listeners`` asks.
LISTEN_BACKLOG = 0xFFFF

#: accept() errors about one connection that was gone before it was taken
#: (reset, refused by a firewall, ...): skipped, as ``trio.SocketListener``
#: skips them.
IGNORED_ACCEPT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "EPERM",
        "ECONNABORTED",
        "EPROTO",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
        "ENOSR",
        "ESOCKTNOSUPPORT",
        "EPROTONOSUPPORT",
        "ETIMEDOUT",
        "ECONNRESET",
    )
    if hasattr(errno, name)
)


_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


async def _bind_once(host: str | None, port: int, reuse_port: bool) -> list[trio.socket.SocketType]:
    addresses = await trio.socket.getaddrinfo(
        host, port, type=trio.socket.SOCK_STREAM, flags=trio.socket.AI_PASSIVE
    )
    sockets: list[trio.socket.SocketType] = []
    unsupported: OSError | None = None
    try:
        for family, type_, proto, _, sockaddr in addresses:
            try:
                sock = trio.socket.socket(family, type_, proto)
            except OSError as exc:
                # Like Trio: an address family this host lacks is skipped.
                if exc.errno != errno.EAFNOSUPPORT:
                    raise
                unsupported = exc
                continue
            sockets.append(sock)
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEPORT, 1)
            if type_ == trio.socket.SOCK_STREAM and family in _TCP_FAMILIES:
                # Accepted sockets inherit it on Linux: no system call per
                # connection then (see RetryingListener.accept_batch).
                sock.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, 1)
            if family == trio.socket.AF_INET6:
                sock.setsockopt(trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                chosen = sockets[0].getsockname()[1]
                sockaddr = (sockaddr[0], chosen, *sockaddr[2:])
            await sock.bind(sockaddr)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        assert unsupported is not None
        raise unsupported
    return sockets


async def bind_sockets(
    host: str | None, port: int, *, reuse_port: bool = False
) -> list[trio.socket.SocketType]:
    """Bind, without listening, a TCP socket on each address of ``host``
    (``None``: every interface, IPv4 and IPv6), all on the same port.

    Args:
        reuse_port: Set SO_REUSEPORT, so that several processes can bind
            (and listen on) the same port.

    Raises:
        OSError: an address cannot be bound (in use, unknown host, ...). No
            socket is left open then.
    """
    for attempt in range(SAME_PORT_ATTEMPTS):
        try:
            return await _bind_once(host, port, reuse_port)
        except OSError as exc:
            # Port 0: the port chosen for the first address was taken on
            # another; let the kernel pick again.
            if port != 0 or exc.errno != errno.EADDRINUSE or attempt == SAME_PORT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def open_listeners(
    host: str | None, port: int, *, reuse_port: bool = False
) -> list[trio.SocketListener]:
    """Listen on each address of ``host``, all on the same port (see
    :func:`bind_sockets`).

    Raises:
        OSError: as :func:`bind_sockets`.
    """
    sockets = await bind_sockets(host, port, reuse_port=reuse_port)
    try:
        for sock in sockets:
            sock.listen(LISTEN_BACKLOG)
        return [trio.SocketListener(sock) for sock in sockets]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise


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
    #: For a plain ``trio.SocketListener``: the standard-library socket to
    #: accept on without Trio's wrappers, found by the first accept_batch.
    _raw: socket.socket | None = attrs.field(default=None, init=False)
    #: Whether ``_raw`` is a duplicate of our own, for aclose to close.
    _raw_is_duplicate: bool = attrs.field(default=False, init=False)
    #: Whether accepted sockets come with TCP_NODELAY already (inherited
    #: from the listening socket, as on Linux): then it is not set again
    #: per connection. ``None`` until the first connection tells.
    _nodelay_inherited: bool | None = attrs.field(default=None, init=False)

    async def accept_batch(self) -> list[trio.abc.Stream]:
        """Wait for a connection, then accept every one already waiting (up
        to :data:`ACCEPT_BATCH`); at least one.

        On a plain TCP listener, connections come as :class:`TcpStream`,
        accepted with one system call each and no checkpoint between them
        (a wait, then a batch: one trip through the scheduler for all that
        arrived meanwhile). Other listeners return what their ``accept``
        does, one at a time.
        """
        if type(self.transport_listener) is not trio.SocketListener:
            return [await self.accept()]
        listening = self.transport_listener.socket
        while True:
            try:
                if self._raw is None:
                    self._raw = _stdlib_socket_of(listening)
                    if self._raw is None:
                        self._raw = socket.fromfd(
                            listening.fileno(), listening.family, listening.type
                        )
                        self._raw_is_duplicate = True
                await trio.lowlevel.wait_readable(self._raw)
                inherited = self._nodelay_inherited
                streams = _accept_ready(self._raw, ACCEPT_BATCH, set_nodelay=inherited is False)
                if inherited is None and streams:
                    inherited = self._nodelay_inherited = _has_nodelay(streams[0])
                    if not inherited:
                        for stream in streams:
                            _set_nodelay(stream)
            except OSError as exc:
                await self._wait_out(exc)
                continue
            if streams:
                self._note_success()
                return streams

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
                await self._wait_out(exc)
                continue
            self._note_success()
            return stream

    async def _wait_out(self, error: OSError) -> None:
        """Wait before accepting again after a shortage of resources
        (``ACCEPT_CAPACITY_ERRNOS``); any other error is raised."""
        if error.errno not in ACCEPT_CAPACITY_ERRNOS:
            raise error
        self._note_failure(error.errno)
        await trio.sleep(ACCEPT_RETRY_DELAY)

    def _note_success(self) -> None:
        if self._failing_since is not None:
            logger.info(
                "accepting again after %s for %.1f s (%d failed attempts)",
                self._error_name,
                trio.current_time() - self._failing_since,
                self._failures,
            )
            self._failing_since = None
            self._failures = 0

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
        if self._raw is not None and self._raw_is_duplicate:
            self._raw.close()
        self._raw = None
        await self.transport_listener.aclose()


def _stdlib_socket_of(listening: trio.socket.SocketType) -> socket.socket | None:
    """The standard-library socket under a Trio socket (it wraps one, as
    ``_sock``), or ``None`` if this Trio keeps it otherwise: then a
    duplicate is made, which costs a descriptor (the one a server out of
    descriptors most misses)."""
    raw = getattr(listening, "_sock", None)
    if type(raw) is socket.socket and raw.fileno() == listening.fileno():
        return raw
    return None


def _has_nodelay(stream: trio.abc.Stream) -> bool:
    assert isinstance(stream, TcpStream)
    return stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def _set_nodelay(stream: trio.abc.Stream) -> None:
    assert isinstance(stream, TcpStream)
    stream.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _accept_ready(
    listening: socket.socket, most: int, *, set_nodelay: bool = True
) -> list[trio.abc.Stream]:
    """Accept up to ``most`` connections without waiting, as
    :class:`TcpStream`; fewer (maybe none) when the backlog empties.

    Raises:
        OSError: one of :data:`ACCEPT_CAPACITY_ERRNOS` (or worse) before
            any connection was accepted; after one, the error is left for
            the next call.
    """
    streams: list[trio.abc.Stream] = []
    # The C-level accept: (descriptor, address). socket.accept() would also
    # convert the listener's family and type to enums, per connection.
    accept = listening._accept  # type: ignore[attr-defined]
    family, type_ = int(listening.family), int(listening.type)
    while len(streams) < most:
        try:
            fd, address = accept()
        except BlockingIOError:
            break
        except OSError as exc:
            if exc.errno in IGNORED_ACCEPT_ERRNOS:
                continue
            if streams:
                break
            raise
        sock = socket.socket(family, type_, 0, fd)
        sock.setblocking(False)
        if set_nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        streams.append(TcpStream(sock, address))
    return streams
