"""Peer: the tutorial's protocol on asyncio Streams, the way most people write it.

``asyncio.start_server`` with one coroutine per connection that reads each
request with ``readexactly`` (prefix, header, content), answers it, and
waits for the next one on the same connection (keep-alive). Pipelined
requests are answered one at a time, in order, each with its own
``write`` + ``drain``.

Usage: python asyncio_streams.py --host 127.0.0.1 --port 65432
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct

from _tutorial_app import GARBLED, REQUIRED, answer, parse_args


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            (header_length,) = struct.unpack(">H", await reader.readexactly(2))
            header = json.loads((await reader.readexactly(header_length)).decode("utf-8"))
            if not isinstance(header, dict) or any(key not in header for key in REQUIRED):
                break
            content = await reader.readexactly(int(header["content-length"]))
            writer.write(answer(header, content))
            await writer.drain()
    except (
        asyncio.IncompleteReadError,
        ConnectionError,
        *GARBLED,
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
    args = parse_args(__doc__)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
