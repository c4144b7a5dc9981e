"""The tutorial's multiconn-client.py on Trio: N connections side by side,
each sending two messages and reading their echoes.

Usage: python multiconn_client.py HOST PORT NUM_CONNECTIONS

Each connection is one task in a nursery: it sends a message, reads its echo
back (however TCP splits it), then does the same with the next. A connection
that fails or times out is reported and the others go on; the exit status is
1 if any failed.
"""

from __future__ import annotations

import sys

import trio

MESSAGES = [b"Message 1 from client.", b"Message 2 from client."]
#: Seconds one connection may take, from connect to the last echo.
TIMEOUT = 10.0


def parse_port(text: str) -> int:
    """A port number from the command line; ValueError if it is not one."""
    if not (text.isdecimal() and 1 <= int(text) <= 65535):
        raise ValueError(f"port must be a number from 1 to 65535, not {text!r}")
    return int(text)


def parse_count(text: str) -> int:
    """A number of connections from the command line; ValueError if it is not one."""
    if not (text.isdecimal() and int(text) >= 1):
        raise ValueError(f"num_connections must be a number from 1 up, not {text!r}")
    return int(text)


async def receive_exactly(stream: trio.SocketStream, count: int) -> bytes:
    """Read ``count`` bytes; raise EOFError if the server closes first."""
    data = bytearray()
    while len(data) < count:
        chunk = await stream.receive_some(count - len(data))
        if not chunk:
            raise EOFError(f"server closed after {len(data)} of {count} bytes")
        data += chunk
    return bytes(data)


async def run_connection(connid: int, host: str, port: int) -> bool:
    """One connection's whole life; True if every echo came back intact."""
    print(f"Starting connection {connid} to {(host, port)}")
    try:
        with trio.fail_after(TIMEOUT):
            async with await trio.open_tcp_stream(host, port) as stream:
                for message in MESSAGES:
                    print(f"Sending {message!r} to connection {connid}")
                    await stream.send_all(message)
                    echo = await receive_exactly(stream, len(message))
                    print(f"Received {echo!r} from connection {connid}")
                    if echo != message:
                        print(f"Connection {connid}: wrong echo", file=sys.stderr)
                        return False
    except (OSError, EOFError, trio.BrokenResourceError, trio.TooSlowError) as exc:
        print(f"Connection {connid} failed: {exc or 'timed out'}", file=sys.stderr)
        return False
    print(f"Closing connection {connid}")
    return True


async def run(host: str, port: int, num_conns: int) -> int:
    """Run ``num_conns`` connections at once; return the exit status."""
    results: dict[int, bool] = {}

    async def record(connid: int) -> None:
        results[connid] = await run_connection(connid, host, port)

    async with trio.open_nursery() as nursery:
        for connid in range(1, num_conns + 1):
            nursery.start_soon(record, connid)
    return 0 if all(results.values()) else 1


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(f"Usage: {argv[0]} <host> <port> <num_connections>", file=sys.stderr)
        return 2
    try:
        host, port, num_conns = argv[1], parse_port(argv[2]), parse_count(argv[3])
    except ValueError as exc:
        print(f"{argv[0]}: error: {exc}", file=sys.stderr)
        return 2
    status = 1
    try:
        status = trio.run(run, host, port, num_conns)
    except* KeyboardInterrupt:
        print("Caught keyboard interrupt, exiting")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
