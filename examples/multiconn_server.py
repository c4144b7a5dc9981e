"""The tutorial's multiconn-server.py on Trio: an echo server that logs.

Usage: python multiconn_server.py HOST PORT

Port 0 picks a free port; the bound address is printed first
(``Listening on (HOST, PORT)``). The tutorial needs a selector, non-blocking
sockets and a buffer per connection to serve clients side by side; on Trio
``trio.serve_tcp`` starts a task per connection in its nursery, and each task
is plain sequential code. Ctrl-C cancels them all and closes every socket.
"""

from __future__ import annotations

import sys
from functools import partial

import trio

#: Seconds a client may leave us waiting (for its data, or for it to take our
#: echo) before we close its connection.
IDLE_TIMEOUT = 60.0


def parse_port(text: str) -> int:
    """A port number from the command line (0: any free port); ValueError if it is not one."""
    if not (text.isdecimal() and 0 <= int(text) <= 65535):
        raise ValueError(f"port must be a number from 0 to 65535, not {text!r}")
    return int(text)


async def echo(stream: trio.SocketStream, idle_timeout: float = IDLE_TIMEOUT) -> None:
    """Echo one client, logging each step, until it closes or goes quiet."""
    addr = stream.socket.getpeername()[:2]
    print(f"Accepted connection from {addr}", flush=True)
    try:
        async with stream:
            while True:
                with trio.fail_after(idle_timeout):
                    data = await stream.receive_some()
                    if not data:  # the client closed its side
                        break
                    print(f"Echoing {data!r} to {addr}", flush=True)
                    await stream.send_all(data)
    except trio.TooSlowError:
        print(f"No data from {addr} for {idle_timeout} s", flush=True)
    except trio.BrokenResourceError as exc:
        print(f"Lost connection to {addr}: {exc}", flush=True)
    print(f"Closing connection to {addr}", flush=True)


async def serve(
    host: str,
    port: int,
    idle_timeout: float = IDLE_TIMEOUT,
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``host``:``port`` and echo every client, until cancelled."""
    handler = partial(echo, idle_timeout=idle_timeout)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, port, host=host))
        for listener in listeners:
            print(f"Listening on {listener.socket.getsockname()[:2]}", flush=True)
        task_status.started(listeners)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"Usage: {argv[0]} <host> <port>", file=sys.stderr)
        return 2
    try:
        host, port = argv[1], parse_port(argv[2])
    except ValueError as exc:
        print(f"{argv[0]}: error: {exc}", file=sys.stderr)
        return 2
    try:
        # Ctrl-C is raised at the next await, never between two lines of
        # plain Python (where it could leave a coroutine made but never
        # awaited, and Python would print a warning on the way out).
        trio.run(serve, host, port, restrict_keyboard_interrupt_to_checkpoints=True)
    except* KeyboardInterrupt:
        print("Caught keyboard interrupt, exiting", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
