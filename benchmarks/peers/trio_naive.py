"""Peer: a naive Trio server, as a first Trio program would be written.

``trio.serve_tcp`` with one task per connection, reading each request with a
``receive_exactly`` helper (prefix, header, content) over ``receive_some``,
then ``send_all`` of its answer: one request at a time, keep-alive, no
batching of pipelined requests, no limits or timeouts.

Usage: python trio_naive.py --host 127.0.0.1 --port 65432
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import struct
import sys

import trio

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


class Reader:
    """``receive_exactly`` over a Trio stream, keeping what a read brought extra."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    async def receive_exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            self.buffer += data
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data


async def handle(stream: trio.SocketStream) -> None:
    reader = Reader(stream)
    try:
        while True:
            (header_length,) = struct.unpack(">H", await reader.receive_exactly(2))
            header = json.loads((await reader.receive_exactly(header_length)).decode("utf-8"))
            if not isinstance(header, dict) or any(key not in header for key in REQUIRED):
                break
            content = await reader.receive_exactly(int(header["content-length"]))
            await stream.send_all(respond(header, content))
    except (
        EOFError,
        trio.BrokenResourceError,
        ValueError,
        TypeError,
        LookupError,
        AttributeError,
    ):
        # A closed or garbled connection: the tutorial just closes it too.
        pass
    finally:
        await stream.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=65432)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(functools.partial(trio.serve_tcp, handle, args.port, host=args.host))


if __name__ == "__main__":
    main()
