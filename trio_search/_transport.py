"""How a connection moves bytes, chosen once when it starts.

Theory of operation
-------------------

Trio's ``SocketStream`` wraps each read and write in context managers and a
trip through the scheduler that together cost more than the system call
itself when the kernel is ready. So a plain TCP stream gets a
:class:`SocketTransport`, which reads and writes the socket's file
descriptor directly when the kernel is ready and waits with Trio's own
``wait_readable`` when it is not; cancel scopes, fairness and
``notify_closing`` work exactly as with Trio's streams:

- a read that finds data returns after one shielded checkpoint (a yield to
  the scheduler, as Trio's own reads do), so a client that always has data
  ready cannot starve the others; the first read of a new connection skips
  it (its task has only just started);
- a read that finds none waits in ``trio.lowlevel.wait_readable``, which
  honours the caller's cancel scopes;
- a write takes what the kernel accepts at once (:meth:`send_now`); the
  caller waits (with :meth:`send_all`, under its timeout) only for the rest.

A connection the server accepts itself on a plain TCP listener is a
:class:`TcpStream`: the accepted socket with no Trio socket object and no
``SocketStream`` around it (building both, with their socket options and
checks, was a tenth of the CPU a one-shot connection cost). It is a full
Trio stream for the code that needs one (lingering, refusing, PROXY headers),
and gets a :class:`SocketTransport` like ``SocketStream``.

Every other stream (TLS, memory, anything with buffers of its own) gets a
:class:`StreamTransport` over the stream's own methods. Both raise
``trio.BrokenResourceError`` for a broken connection, so the code that
serves requests, the client and the load generator never branch on which
one they have. The socket under any stream is found one way,
:func:`socket_of`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import sys
import termios
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import trio

from ._limits import LINGER_BYTES, RECEIVE_SIZE

#: A socket as :func:`socket_of` finds it: Trio's, or the standard library's
#: under a :class:`TcpStream`.
AnySocket = trio.socket.SocketType | socket.socket


def socket_of(stream: trio.abc.Stream) -> AnySocket | None:
    """The socket under ``stream``, looking through TLS and similar wrappers
    (``transport_stream``); ``None`` for a stream with no socket."""
    inner: Any = stream
    while True:
        sock = getattr(inner, "socket", None)
        if sock is not None:
            return sock  # type: ignore[no-any-return]
        inner = getattr(inner, "transport_stream", None)
        if inner is None:
            return None


#: The peer shut its side down (Linux reports it as POLLRDHUP), hung up or
#: reset.
_CLOSED_EVENTS = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR


def _poll(sock: AnySocket | None) -> int:
    """The ``poll`` events ready on ``sock`` now (0 for none or no socket)."""
    if sock is None:
        return 0
    try:
        fd = sock.fileno()
        if fd < 0:
            return 0
        poller = select.poll()
        poller.register(fd, select.POLLIN | getattr(select, "POLLRDHUP", 0))
        return sum(events for _, events in poller.poll(0))
    except (OSError, ValueError):
        return 0


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


def pending_bytes(stream: trio.abc.Stream) -> int | None:
    """Bytes waiting unread in the kernel for a plain socket stream
    (FIONREAD); ``None`` when that cannot be known (TLS, memory streams)."""
    if type(stream) is not trio.SocketStream and type(stream) is not TcpStream:
        return None
    try:
        raw = fcntl.ioctl(stream.socket.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return None
    return int.from_bytes(raw, sys.byteorder)


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
    return bool(_poll(socket_of(stream)) & select.POLLIN)


def peer_has_gone(stream: trio.abc.Stream) -> bool:
    """Whether the connection under ``stream`` was reset or hung up in both
    directions; never blocks. A plain end of file is not enough: a client
    may half-close after its last request and still read the answers.
    ``False`` for a stream without a socket."""
    return bool(_poll(socket_of(stream)) & (select.POLLHUP | select.POLLERR))


class Transport(Protocol):
    """What a connection needs of its byte stream."""

    @property
    def stream(self) -> trio.abc.Stream: ...

    async def receive(self, max_bytes: int) -> bytes | bytearray:
        """At most ``max_bytes``, waiting if none are there; ``b""`` at end
        of file. Raises ``trio.BrokenResourceError`` if the connection broke."""
        ...

    def send_now(self, data: bytes) -> int:
        """Write what can be written without waiting; return how much."""
        ...

    async def send_all(self, data: bytes | memoryview) -> None:
        """Write all of ``data``, waiting for the peer to take it."""
        ...

    def has_pending_input(self) -> bool:
        """Whether bytes (or an end of file) wait unread; never blocks."""
        ...

    def peer_has_gone(self) -> bool:
        """Whether the peer reset or hung up; never blocks."""
        ...

    def peer_closed(self) -> bool:
        """Whether the peer closed its sending side (or reset); never blocks."""
        ...

    async def aclose(self) -> None:
        """Close now, whatever state the stream is in."""
        ...


@attrs.define(eq=False)
class TcpStream(trio.abc.HalfCloseableStream):
    """An accepted TCP connection on a plain, non-blocking standard-library
    socket (see the theory of operation).

    Like every Trio stream, it must not be closed by one task while another
    waits on it. Unlike ``SocketStream`` it does not wake such a waiter (that
    costs an ``epoll_ctl`` per connection): the server's one task per
    connection reads, writes and closes it.

    Args:
        socket: The accepted socket, non-blocking.
        peer_address: The peer's address, as ``accept`` returned it.
    """

    socket: socket.socket
    peer_address: Any = None

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                data = self.socket.recv(max_bytes or _RECEIVE_SOME_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.socket)
                continue
            except OSError as exc:
                raise _broken("read", exc) from exc
            await trio.lowlevel.cancel_shielded_checkpoint()
            return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        with memoryview(data) as view:
            sent = 0
            while sent < len(view):
                try:
                    sent += self.socket.send(view[sent:])
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(self.socket)
                except OSError as exc:
                    raise _broken("write", exc) from exc
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self.socket)

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise _broken("shutdown", exc) from exc
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def aclose(self) -> None:
        self.socket.close()
        await trio.lowlevel.checkpoint()


#: Bytes :meth:`TcpStream.receive_some` asks for when not told (as Trio's
#: ``SocketStream``).
_RECEIVE_SOME_SIZE = 64 * 1024


def _broken(what: str, exc: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    """The Trio error for a failed socket call, as ``SocketStream`` raises."""
    if exc.errno == errno.EBADF:
        return trio.ClosedResourceError("this stream was already closed")
    return trio.BrokenResourceError(f"socket {what} failed: {exc}")


@attrs.define(eq=False)
class SocketTransport:
    """A plain TCP stream, read and written on its file descriptor."""

    stream: trio.SocketStream | TcpStream
    _fd: int = attrs.field(init=False)
    #: Whether a read may skip its yield: only the first (see the theory).
    _fresh: bool = attrs.field(default=True, init=False)

    def __attrs_post_init__(self) -> None:
        self._fd = self.stream.socket.fileno()

    async def receive(self, max_bytes: int) -> bytes | bytearray:
        fd = self._fd
        try:
            data = os.read(fd, max_bytes)
        except BlockingIOError:
            self._fresh = False
            while True:
                await trio.lowlevel.wait_readable(fd)
                try:
                    return os.read(fd, max_bytes)
                except BlockingIOError:
                    continue  # woken without data (rare); wait again
                except OSError as exc:
                    raise trio.BrokenResourceError(f"socket read failed: {exc}") from exc
        except OSError as exc:
            raise trio.BrokenResourceError(f"socket read failed: {exc}") from exc
        if self._fresh:
            self._fresh = False
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return data

    def fileno(self) -> int:
        return self._fd

    def receive_now(self, max_bytes: int) -> bytes | None:
        """At most ``max_bytes`` without waiting: ``None`` if none are
        there, ``b""`` at end of file. Raises ``trio.BrokenResourceError``
        if the connection broke."""
        try:
            return os.read(self._fd, max_bytes)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise trio.BrokenResourceError(f"socket read failed: {exc}") from exc

    def close_now(self) -> None:
        """Close the socket (see :meth:`aclose`)."""
        self.stream.socket.close()

    def send_now(self, data: bytes) -> int:
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise trio.BrokenResourceError(f"socket write failed: {exc}") from exc

    async def send_all(self, data: bytes | memoryview) -> None:
        await self.stream.send_all(data)

    def has_pending_input(self) -> bool:
        return bool(_poll(self.stream.socket) & select.POLLIN)

    def peer_has_gone(self) -> bool:
        return bool(_poll(self.stream.socket) & (select.POLLHUP | select.POLLERR))

    def peer_closed(self) -> bool:
        return bool(_poll(self.stream.socket) & _CLOSED_EVENTS)

    async def aclose(self) -> None:
        # Nothing to flush: closed without a checkpoint, a cost otherwise
        # paid on every connection. (A TcpStream's socket closes without
        # Trio's notify_closing: this transport's task is the only one that
        # waits on it, and it is not waiting now.)
        self.stream.socket.close()


@attrs.define(eq=False)
class StreamTransport:
    """Any other Trio stream, through its own methods."""

    stream: trio.abc.Stream

    async def receive(self, max_bytes: int) -> bytes | bytearray:
        return await self.stream.receive_some(max_bytes)

    def send_now(self, data: bytes) -> int:
        return 0

    async def send_all(self, data: bytes | memoryview) -> None:
        await self.stream.send_all(data)

    def has_pending_input(self) -> bool:
        return has_pending_input(self.stream)

    def peer_has_gone(self) -> bool:
        return peer_has_gone(self.stream)

    def peer_closed(self) -> bool:
        return bool(_poll(socket_of(self.stream)) & _CLOSED_EVENTS)

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


async def send(transport: Transport, data: bytes) -> None:
    """Write all of ``data``: what the kernel takes at once, then wait for
    the peer to take the rest."""
    sent = transport.send_now(data)
    if sent < len(data):
        await transport.send_all(memoryview(data)[sent:] if sent else data)


@attrs.define(eq=False)
class PrefixedStream(trio.abc.Stream):
    """``stream`` with ``prefix`` (bytes already read from it) returned
    first: what is left after a PROXY header, for the TLS layer above to
    read as if it had never been taken out."""

    stream: trio.abc.Stream
    prefix: bytes

    @property
    def transport_stream(self) -> trio.abc.Stream:
        return self.stream

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.prefix:
            size = len(self.prefix) if max_bytes is None else max_bytes
            data, self.prefix = self.prefix[:size], self.prefix[size:]
            await trio.lowlevel.checkpoint()
            return data
        return await self.stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        send_eof = getattr(self.stream, "send_eof", None)
        if send_eof is not None:
            await send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()


def transport_for(stream: trio.abc.Stream) -> Transport:
    """The transport for ``stream``: direct socket I/O for a
    :class:`TcpStream` and exactly a plain ``trio.SocketStream`` (not a
    subclass, which may buffer), the stream's
    own methods for anything else."""
    if type(stream) is TcpStream or type(stream) is trio.SocketStream:
        return SocketTransport(stream)
    return StreamTransport(stream)


async def close_stream(stream: trio.abc.Stream) -> None:
    """Close ``stream`` now, whatever state it is in (see :meth:`Transport.aclose`)."""
    await transport_for(stream).aclose()


async def linger_close(
    stream: trio.abc.Stream,
    linger_s: float,
    max_bytes: int = LINGER_BYTES,
    receive_size: int = RECEIVE_SIZE,
) -> None:
    """Half-close, then discard what the peer still sends, for at most
    ``linger_s`` seconds and ``max_bytes`` bytes; the caller closes.

    Closing a TCP socket with unread input makes the kernel send a reset,
    which can destroy an answer before the client reads it (and turns the
    client's clean end of file into "connection reset"). Streams without
    ``send_eof`` (TLS) are left alone.
    """
    send_eof: Callable[[], object] | None = getattr(stream, "send_eof", None)
    if send_eof is None:
        return
    with trio.move_on_after(linger_s):
        await stream.send_eof()  # type: ignore[attr-defined]
        discarded = 0
        while discarded < max_bytes:
            chunk = await stream.receive_some(receive_size)
            if not chunk:
                break
            discarded += len(chunk)
