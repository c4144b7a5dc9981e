"""Requests as bytes, and reading answers, for the suite's clients.

Framing is the package's own (:func:`trio_search.encode_message`,
:class:`trio_search.MessageProtocol`); connections are plain TCP or TLS to
127.0.0.1 with the suite's test CA.
"""

from __future__ import annotations

import errno
import json
import socket
import ssl
import struct
import sys
from typing import Any

import trio

from trio_search import CLOSED, NEED_DATA, Message, MessageProtocol, encode_message

#: Largest answer the suite's clients accept, in bytes (a 1 MB echo must fit).
MAX_ANSWER = 16 * 1024 * 1024
BINARY_TYPE = "binary/custom-client-binary-type"


def json_request(obj: Any) -> bytes:
    """A ``text/json`` request, as the tutorial's client sends it."""
    return encode_message(
        Message(json.dumps(obj, ensure_ascii=False).encode(), "text/json", "utf-8")
    )


def binary_request(content: bytes) -> bytes:
    return encode_message(Message(content, BINARY_TYPE, "binary"))


def binary_header(content_length: int) -> bytes:
    """The prefix and header of a binary request declaring ``content_length``
    bytes, without its content (to send part of it)."""
    header = json.dumps(
        {
            "byteorder": sys.byteorder,
            "content-type": BINARY_TYPE,
            "content-encoding": "binary",
            "content-length": content_length,
        }
    ).encode()
    return struct.pack(">H", len(header)) + header


class ConnectRefused(Exception):
    """The server refused the connection (nothing listening)."""


async def connect(
    port: int, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> trio.abc.Stream:
    """A connection to the server; TLS handshake done when ``tls`` is given.

    Raises:
        ConnectRefused: ECONNREFUSED.
        OSError, trio.BrokenResourceError: anything else.
    """
    try:
        stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
    except OSError as exc:
        if _refused(exc):
            raise ConnectRefused(str(exc)) from exc
        raise
    if tls is not None:
        tls_stream = trio.SSLStream(stream, tls, server_hostname=host, https_compatible=True)
        try:
            await tls_stream.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(tls_stream)
            raise
        stream = tls_stream
    return stream


def _refused(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it: ``trio.open_tcp_stream`` wraps
    the errors of its attempts) is ECONNREFUSED."""
    if exc is None:
        return False
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_refused(inner) for inner in exc.exceptions)
    return _refused(exc.__cause__)


def reset_on_close(stream: trio.abc.Stream) -> None:
    """Make closing ``stream`` send a TCP reset (SO_LINGER 0)."""
    sock = getattr(stream, "socket", None)
    if sock is None:
        sock = getattr(getattr(stream, "transport_stream", None), "socket", None)
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class Reader:
    """Reads whole answers from one stream."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.protocol = MessageProtocol(max_header_length=65535, max_content_length=MAX_ANSWER)
        self.bytes_read = 0

    async def next(self) -> Message | None:
        """The next answer, or ``None`` if the server closed cleanly first.

        Raises:
            trio.BrokenResourceError: reset.
            trio_search.RemoteProtocolError: closed mid-answer, or garbage.
        """
        while True:
            event = self.protocol.next_message()
            if event is CLOSED:
                return None
            if event is not NEED_DATA:
                return event
            data = await self.stream.receive_some(65536)
            self.bytes_read += len(data)
            self.protocol.receive_data(data)


def error_code(message: Message) -> str | None:
    """The ``error`` code of a text/json answer, ``None`` for a good answer."""
    if message.content_type != "text/json":
        return None
    try:
        answer = json.loads(message.content)
    except ValueError:
        return "unparseable"
    return answer.get("error") if isinstance(answer, dict) else None
