"""Peer: the fastest plain-Python way we know, asyncio.Protocol on uvloop with orjson.

No streams and no coroutine per request: ``data_received`` appends to a
``bytearray``, parses every complete request in it, and answers the whole
batch with one ``transport.write`` (keep-alive and pipelining). Headers and
JSON content go through orjson; content in another codec than UTF-8 is
decoded with that codec first.

Usage: python asyncio_uvloop_orjson.py --host 127.0.0.1 --port 65432
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import cast

import orjson
import uvloop

INDEX = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}
REQUIRED = ("byteorder", "content-length", "content-type", "content-encoding")
BYTEORDER = sys.byteorder


def encode(content: bytes, content_type: str, content_encoding: str) -> bytes:
    header = orjson.dumps(
        {
            "byteorder": BYTEORDER,
            "content-type": content_type,
            "content-encoding": content_encoding,
            "content-length": len(content),
        }
    )
    return len(header).to_bytes(2, "big") + header + content


def respond(header: dict[str, object], content: bytes) -> bytes:
    if header["content-type"] != "text/json":
        return encode(
            b"First 10 bytes of request: " + content[:10],
            "binary/custom-server-binary-type",
            "binary",
        )
    encoding = header["content-encoding"]
    if encoding in ("utf-8", "utf8"):
        request = orjson.loads(content)
    else:
        request = orjson.loads(content.decode(str(encoding)))
    action = request.get("action")
    if action == "search":
        query = request.get("value")
        answer = INDEX.get(query) or f"No match for '{query}'."
        result = {"result": answer}
    else:
        result = {"result": f"Error: invalid action '{action}'."}
    return encode(orjson.dumps(result), "text/json", "utf-8")


class SearchProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        offset = 0
        end = len(buffer)
        replies = []
        try:
            while end - offset >= 2:
                header_end = offset + 2 + ((buffer[offset] << 8) | buffer[offset + 1])
                if header_end > end:
                    break
                header = orjson.loads(buffer[offset + 2 : header_end])
                if not isinstance(header, dict) or any(key not in header for key in REQUIRED):
                    raise ValueError("bad header")
                content_end = header_end + int(header["content-length"])
                if content_end > end:
                    break
                replies.append(respond(header, bytes(buffer[header_end:content_end])))
                offset = content_end
        except (ValueError, TypeError, LookupError, AttributeError):
            # Garbled input: answer what came before it, then close, as the tutorial does.
            assert self.transport is not None
            self.transport.write(b"".join(replies))
            self.transport.close()
            return
        del buffer[:offset]
        if replies:
            assert self.transport is not None
            self.transport.write(b"".join(replies))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(SearchProtocol, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=65432)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
