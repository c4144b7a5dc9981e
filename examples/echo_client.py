"""The tutorial's echo-client.py on Trio: send ``Hello, world``, print the echo.

Usage: python echo_client.py [HOST PORT]

HOST and PORT default to the tutorial's 127.0.0.1 and 65432.
"""

from __future__ import annotations

import sys

import trio

HOST = "127.0.0.1"  # The server's hostname or IP address
PORT = 65432  # The port used by the server
MESSAGE = b"Hello, world"
#: Seconds the whole exchange (connect, send, read the echo) may take.
TIMEOUT = 10.0


def parse_port(text: str) -> int:
    """A port number from the command line; ValueError if it is not one."""
    if not (text.isdecimal() and 1 <= int(text) <= 65535):
        raise ValueError(f"port must be a number from 1 to 65535, not {text!r}")
    return int(text)


async def echo_once(host: str, port: int, message: bytes = MESSAGE) -> bytes:
    """Send ``message``, then read until the server has echoed all of it."""
    with trio.fail_after(TIMEOUT):
        async with await trio.open_tcp_stream(host, port) as stream:
            await stream.send_all(message)
            # TCP has no message boundaries: the echo may come in pieces.
            data = bytearray()
            while len(data) < len(message):
                chunk = await stream.receive_some()
                if not chunk:  # the server closed early: show what we got
                    break
                data += chunk
    return bytes(data)


async def run(host: str, port: int) -> int:
    """Echo ``MESSAGE`` once and print it; return the exit status."""
    try:
        data = await echo_once(host, port)
    except (OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
        print(f"Echo from {(host, port)} failed: {exc or 'timed out'}", file=sys.stderr)
        return 1
    print(f"Received {data!r}")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 3):
        print(f"Usage: {argv[0]} [<host> <port>]", file=sys.stderr)
        return 2
    try:
        host, port = (argv[1], parse_port(argv[2])) if len(argv) == 3 else (HOST, PORT)
    except ValueError as exc:
        print(f"{argv[0]}: error: {exc}", file=sys.stderr)
        return 2
    status = 1
    try:
        status = trio.run(run, host, port)
    except* KeyboardInterrupt:
        print("Caught keyboard interrupt, exiting")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
