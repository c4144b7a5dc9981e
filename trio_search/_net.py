"""Small helpers about sockets and streams: naming peers, listener addresses,
accepting through a shortage of file descriptors."""

from __future__ import annotations

import errno
from typing import Any

import trio

from ._transport import socket_of

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
