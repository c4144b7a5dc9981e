"""Helpers for tests: start a real server on port 0, talk raw bytes to it."""

from __future__ import annotations

import functools
import json
import struct
import sys
from collections.abc import Awaitable, Callable
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


async def receive_exactly(stream: trio.abc.ReceiveStream, count: int) -> bytes:
    """Exactly ``count`` bytes from ``stream``; EOFError if it ends first."""
    data = bytearray()
    while len(data) < count:
        chunk = await stream.receive_some(count - len(data))
        if not chunk:
            raise EOFError(f"stream ended after {len(data)} of {count} bytes")
        data += chunk
    return bytes(data)


#: The tutorial's data, for the one-request server below.
TUTORIAL_DATA = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}


async def serve_one_request_then_close(stream: trio.abc.Stream) -> None:
    """A ``trio.serve_tcp`` handler that behaves like the tutorial's
    app-server.py (written from PROTOCOL.md): read one request, answer it,
    close the connection."""
    async with stream:
        (header_length,) = struct.unpack(">H", await receive_exactly(stream, 2))
        header = json.loads((await receive_exactly(stream, header_length)).decode("utf-8"))
        content = await receive_exactly(stream, header["content-length"])
        if header["content-type"] == "text/json":
            request = json.loads(content.decode(header["content-encoding"]))
            action, value = request.get("action"), request.get("value")
            if action == "search":
                answer = TUTORIAL_DATA.get(value, f"No match for '{value}'.")
            else:
                answer = f"Error: invalid action '{action}'."
            response = json_response({"result": answer})
        else:
            response = raw_message(
                b"First 10 bytes of request: " + content[:10],
                "binary/custom-server-binary-type",
                "binary",
            )
        await stream.send_all(response)


async def start_fake_server(
    nursery: trio.Nursery, handler: Callable[[trio.SocketStream], Awaitable[None]]
) -> tuple[str, int]:
    """Serve ``handler`` on 127.0.0.1, a free port; return the address."""
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    host, port = listeners[0].socket.getsockname()[:2]
    return host, port
