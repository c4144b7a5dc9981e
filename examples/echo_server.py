"""The tutorial's echo-server.py on Trio: send back every byte a client sends.

Usage: python echo_server.py [HOST PORT]

HOST and PORT default to the tutorial's 127.0.0.1 and 65432; port 0 picks a
free port. The bound address is printed first (``Listening on (HOST, PORT)``).
Unlike the tutorial's server, which serves one client and exits, this one
serves any number of clients at once, each in its own task, until Ctrl-C.
"""

from __future__ import annotations

import sys
from functools import partial

import trio

HOST = "127.0.0.1"  # Standard loopback interface address (localhost)
PORT = 65432  # Port to listen on (non-privileged ports are > 1023)
#: Seconds a client may leave us waiting (for its data, or for it to take our
#: echo) before we close its connection: the tutorial leaves this guard open.
IDLE_TIMEOUT = 60.0


def parse_port(text: str) -> int:
    """A port number from the command line (0: any free port); ValueError if it is not one."""
    if not (text.isdecimal() and 0 <= int(text) <= 65535):
        raise ValueError(f"port must be a number from 0 to 65535, not {text!r}")
    return int(text)


async def echo(stream: trio.SocketStream, idle_timeout: float = IDLE_TIMEOUT) -> None:
    """Echo one client until it closes its side, or goes quiet for too long."""
    addr = stream.socket.getpeername()
    print(f"Connected by {addr}", flush=True)
    try:
        async with stream:
            while True:
                with trio.fail_after(idle_timeout):
                    data = await stream.receive_some()
                    if not data:  # the client closed its side: we are done
                        break
                    await stream.send_all(data)
    except trio.TooSlowError:
        print(f"Closed {addr}: idle for {idle_timeout} s", flush=True)
    except trio.BrokenResourceError as exc:
        print(f"Lost {addr}: {exc}", flush=True)


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
    if len(argv) not in (1, 3):
        print(f"Usage: {argv[0]} [<host> <port>]", file=sys.stderr)
        return 2
    try:
        host, port = (argv[1], parse_port(argv[2])) if len(argv) == 3 else (HOST, PORT)
    except ValueError as exc:
        print(f"{argv[0]}: error: {exc}", file=sys.stderr)
        return 2
    try:
        # Ctrl-C is raised at the next await, never between two lines of
        # plain Python (where it could leave a coroutine made but never
        # awaited, and Python would print a warning on the way out).
        trio.run(serve, host, port, restrict_keyboard_interrupt_to_checkpoints=True)
    except* KeyboardInterrupt:  # Ctrl-C: Trio has already closed every connection
        print("Caught keyboard interrupt, exiting", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
