"""Direct reads and writes on a plain TCP stream's socket: the hot path.

Trio's ``SocketStream`` wraps each read and write in context managers and a
trip through the scheduler that together cost more than the system call
itself when the kernel is ready. For a plain TCP stream, the server reads
and writes the socket's file descriptor directly when the kernel is ready,
and waits with Trio's own ``wait_readable`` when it is not, so cancel
scopes, fairness and ``notify_closing`` work exactly as with Trio's streams:

- a read that finds data returns after one shielded checkpoint (a yield to
  the scheduler, as Trio's own reads do), so a client that always has data
  ready cannot starve the others;
- a read that finds none waits in ``trio.lowlevel.wait_readable``, which
  honours the caller's cancel scopes;
- a write takes what the kernel accepts at once; the caller waits (with
  ``send_all`` under its timeout) only for the rest, when the client is
  slow to read.

OS errors become ``trio.BrokenResourceError``, as from Trio's streams. TLS
and in-memory streams are not sockets: they keep Trio's own path. :func:`close_stream`
closes any stream at once, a plain TCP one without a checkpoint.
"""

from __future__ import annotations

import os

import trio


def socket_fd(stream: trio.abc.Stream) -> int | None:
    """The file descriptor of a plain TCP stream; ``None`` for any other
    stream (TLS, memory, a subclass that may buffer)."""
    if type(stream) is trio.SocketStream:
        return stream.socket.fileno()
    return None


async def receive_some(fd: int, max_bytes: int, *, yield_if_ready: bool = True) -> bytes:
    """Read at most ``max_bytes`` from the socket ``fd``, waiting if none are
    there; ``b""`` at end of file.

    Args:
        yield_if_ready: Yield to the scheduler even when bytes were ready. A
            caller may pass False where its task has just started, so it
            cannot have kept the others waiting yet.

    Raises:
        trio.BrokenResourceError: the connection failed (e.g. reset).
        trio.Cancelled: while waiting, as any Trio checkpoint.
    """
    try:
        data = os.read(fd, max_bytes)
    except BlockingIOError:
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
    if yield_if_ready:
        await trio.lowlevel.cancel_shielded_checkpoint()
    return data


def send_now(fd: int, data: bytes) -> int:
    """Write to the socket ``fd`` what the kernel takes without waiting.

    Returns:
        How many bytes of ``data`` were written (0 when the buffer is full).

    Raises:
        trio.BrokenResourceError: the connection failed (e.g. reset).
    """
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
    except OSError as exc:
        raise trio.BrokenResourceError(f"socket write failed: {exc}") from exc


async def close_stream(stream: trio.abc.Stream) -> None:
    """Close ``stream`` now, whatever state it is in.

    A plain TCP stream is closed synchronously: it has nothing to flush, and
    this skips the cancelled checkpoint of ``trio.aclose_forcefully``, a cost
    paid on every connection.
    """
    if type(stream) is trio.SocketStream:
        stream.socket.close()
    else:
        await trio.aclose_forcefully(stream)
