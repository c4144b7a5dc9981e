"""Peer: the tutorial's protocol on asyncio Streams, the way most people write it.

``asyncio.start_server`` with one coroutine per connection that reads each
request with ``readexactly`` (prefix, header, content), answers it, and
waits for the next one on the same connection (keep-alive). Pipelined
requests are answered one at a time, in order, each with its own
``write`` + ``drain``.

Usage: python asyncio_streams.py --host 127.0.0.1 --port 65432
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import struct
import sys

INDEX = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}
REQUIRED = ("byteorder", "content-length", "content-type", "content-encoding")


def encode(content: bytes, content_type: str, content_encoding: str) -> bytes:
    header = json.dumps(
        {
            "byteorder": sys.byteorder,
            "content-type": content_type,
            "content-encoding": content_encoding,
            "content-length": len(content),
        },
        ensure_ascii=False,
    ).encode("utf-8")
    return struct.pack(">H", len(header)) + header + content


def respond(header: dict[str, object], content: bytes) -> bytes:
    if header["content-type"] != "text/json":
        return encode(
            b"First 10 bytes of request: " + content[:10],
            "binary/custom-server-binary-type",
            "binary",
        )
    request = json.loads(content.decode(str(header["content-encoding"])))
    action = request.get("action")
    if action == "search":
        query = request.get("value")
        answer = INDEX.get(query) or f"No match for '{query}'."
        result = {"result": answer}
    else:
        result = {"result": f"Error: invalid action '{action}'."}
    return encode(json.dumps(result, ensure_ascii=False).encode("utf-8"), "text/json", "utf-8")


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            (header_length,) = struct.unpack(">H", await reader.readexactly(2))
            header = json.loads((await reader.readexactly(header_length)).decode("utf-8"))
            if not isinstance(header, dict) or any(key not in header for key in REQUIRED):
                break
            content = await reader.readexactly(int(header["content-length"]))
            writer.write(respond(header, content))
            await writer.drain()
    except (
        asyncio.IncompleteReadError,
        ConnectionError,
        ValueError,
        TypeError,
        LookupError,
        AttributeError,
    ):
        # A closed or garbled connection: the tutorial just closes it too.
        pass
    finally:
        writer.close()


async def serve(host: str, port: int) -> None:
    server = await asyncio.start_server(handle, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=65432)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
