"""Small helpers about sockets and streams: naming peers, listener addresses."""

from __future__ import annotations

from typing import Any

import trio


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


def listener_address(listener: trio.abc.Listener[Any]) -> tuple[str, int]:
    """The ``(host, port)`` a TCP listener (or TLS listener over one) is bound to."""
    inner: Any = getattr(listener, "transport_listener", listener)
    sock: trio.socket.SocketType = inner.socket
    host, port = sock.getsockname()[:2]
    return host, port
