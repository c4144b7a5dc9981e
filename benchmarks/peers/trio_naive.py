"""Peer: a naive Trio server, as a first Trio program would be written.

``trio.serve_tcp`` with one task per connection, reading each request with a
``receive_exactly`` helper (prefix, header, content) over ``receive_some``,
then ``send_all`` of its answer: one request at a time, keep-alive, no
batching of pipelined requests, no limits or timeouts.

Usage: python trio_naive.py --host 127.0.0.1 --port 65432
"""

from __future__ import annotations

import contextlib
import functools
import json
import struct

import trio
from _tutorial_app import GARBLED, REQUIRED, answer, parse_args


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
            await stream.send_all(answer(header, content))
    except (
        EOFError,
        trio.BrokenResourceError,
        *GARBLED,
    ):
        # A closed or garbled connection: the tutorial just closes it too.
        pass
    finally:
        await stream.aclose()


def main() -> None:
    args = parse_args(__doc__)
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(functools.partial(trio.serve_tcp, handle, args.port, host=args.host))


if __name__ == "__main__":
    main()
