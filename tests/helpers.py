"""Helpers for tests: start a real server on port 0, talk raw bytes to it."""

from __future__ import annotations

import json
import struct
import sys
from typing import Any

import trio

from trio_search import CLOSED, NEED_DATA, Message, MessageProtocol, SearchServer, ServerSettings


async def start_server(
    nursery: trio.Nursery, server: SearchServer | None = None, **settings: Any
) -> tuple[SearchServer, tuple[str, int]]:
    """Start ``server`` (or a new one with ``settings``) on 127.0.0.1, port 0."""
    if server is None:
        settings.setdefault("port", 0)
        server = SearchServer(ServerSettings(**settings))
    addresses = await nursery.start(server.serve)
    return server, addresses[0]


def raw_message(
    content: bytes,
    content_type: str = "text/json",
    content_encoding: str = "utf-8",
    **extra: Any,
) -> bytes:
    """Wire bytes built by hand, the tutorial's way (not with our encoder)."""
    header = {
        "byteorder": sys.byteorder,
        "content-type": content_type,
        "content-encoding": content_encoding,
        "content-length": len(content),
        **extra,
    }
    header_bytes = json.dumps(header, ensure_ascii=False).encode("utf-8")
    return struct.pack(">H", len(header_bytes)) + header_bytes + content


def json_request(obj: Any, encoding: str = "utf-8") -> bytes:
    """A text/json request as the tutorial's client sends it."""
    return raw_message(json.dumps(obj, ensure_ascii=False).encode(encoding), "text/json", encoding)


async def read_messages(stream: trio.abc.ReceiveStream, count: int) -> list[Message]:
    """Read exactly ``count`` messages from ``stream``."""
    protocol = MessageProtocol()
    messages: list[Message] = []
    while len(messages) < count:
        event = protocol.next_message()
        if event is NEED_DATA:
            protocol.receive_data(await stream.receive_some(65536))
        elif event is CLOSED:
            raise AssertionError(f"stream closed after {len(messages)} of {count} messages")
        else:
            messages.append(event)
    return messages


async def read_until_eof(stream: trio.abc.ReceiveStream) -> bytes:
    """Everything the peer sends until it closes."""
    chunks = []
    while chunk := await stream.receive_some(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def result_of(message: Message) -> Any:
    """The decoded JSON content of a text/json response."""
    assert message.content_type == "text/json", message
    return json.loads(message.content.decode(message.content_encoding))


def json_response(obj: Any) -> bytes:
    """The exact bytes the tutorial's server sends for a text/json answer."""
    return raw_message(json.dumps(obj, ensure_ascii=False).encode("utf-8"))


def framed(header: bytes, content: bytes = b"") -> bytes:
    """A message with a hand-made header, valid or not, after its length prefix."""
    return struct.pack(">H", len(header)) + header + content


def parse_all(data: bytes) -> list[Message]:
    """Every message in ``data``, which must end exactly after the last one."""
    protocol = MessageProtocol()
    protocol.receive_data(data)
    protocol.receive_data(b"")
    messages: list[Message] = []
    while (event := protocol.next_message()) is not CLOSED:
        assert event is not NEED_DATA
        messages.append(event)
    return messages


def local_address(stream: trio.SocketStream) -> str:
    """``host:port`` of our end of ``stream``: the peer address the server logs."""
    host, port = stream.socket.getsockname()[:2]
    return f"{host}:{port}"
