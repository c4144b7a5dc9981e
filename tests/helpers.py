"""Helpers for tests: start a real server on port 0, in this process or as
the ``trio-search-server`` command, and talk raw bytes to it; and measure
what the garbage collector walks."""

from __future__ import annotations

import functools
import gc
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import attrs
import trio

from trio_search import CLOSED, NEED_DATA, Message, MessageProtocol, SearchServer, ServerSettings
from trio_search._transport import TcpStream


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


@attrs.define(eq=False)
class ClosingServer:
    """A ``trio.serve_tcp`` handler that closes keep-alive connections the
    way a restarting server does: its connection number i answers its first
    ``answers[i]`` requests (every request, for connections past the list),
    then waits for the next request to arrive and closes without reading
    it (the kernel resets the connection: the client gets no answer).

    Answers are the tutorial's search answers, as ``json_response`` makes them.
    """

    answers: list[int]
    #: Connections accepted so far.
    connections: int = 0

    async def __call__(self, stream: trio.SocketStream) -> None:
        number = self.connections
        self.connections += 1
        limit = self.answers[number] if number < len(self.answers) else sys.maxsize
        protocol = MessageProtocol()
        async with stream:
            for _ in range(limit):
                while (event := protocol.next_message()) is NEED_DATA:
                    protocol.receive_data(await stream.receive_some(65536))
                if event is CLOSED:
                    return
                assert isinstance(event, Message)
                value = json.loads(event.content)["value"]
                answer = TUTORIAL_DATA.get(value, f"No match for '{value}'.")
                await stream.send_all(json_response({"result": answer}))
            if not protocol.mid_message:
                # The next request is not read yet: close once it is here.
                await trio.lowlevel.wait_readable(stream.socket)


async def start_fake_server(
    nursery: trio.Nursery, handler: Callable[[trio.SocketStream], Awaitable[None]]
) -> tuple[str, int]:
    """Serve ``handler`` on 127.0.0.1, a free port; return the address."""
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    host, port = listeners[0].socket.getsockname()[:2]
    return host, port


# --- trio-search-server as a subprocess ---------------------------------------

#: Seconds any one wait on a server subprocess may take before the test fails.
SUBPROCESS_TIMEOUT = 10
#: Seconds a server subprocess has to print its "listening on" lines.
STARTUP_TIMEOUT = 20
#: A line the server prints on stdout for each address it listens on.
LISTENING_LINE = re.compile(rb"trio-search-server listening on \[?([^\s\]]+?)\]?:(\d+)")
#: The supervisor's log line for each worker it starts (``--workers``).
WORKER_STARTED = re.compile(rb"worker (\d+) started \(pid (\d+)\)")
#: Lower the open-files limit, then become the server (no preexec_fn: it is
#: unsafe in a process with threads). argv: soft limit, hard limit or "keep",
#: then the server's command.
SET_NOFILE_THEN_EXEC = (
    "import os, resource, sys; "
    "soft, hard = sys.argv[1:3]; "
    "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1] if hard == 'keep' else int(hard); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (int(soft), hard)); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


def server_command(how: str = "script") -> list[str]:
    """How to run ``trio-search-server``: its console script next to this
    Python (the editable dev venv and nox's installed venv both have one),
    ``python -m`` on its module, or ``python -m trio_search`` ("package")."""
    if how == "module":
        return [sys.executable, "-m", "trio_search._server_cli"]
    if how == "package":
        return [sys.executable, "-m", "trio_search"]
    script = shutil.which("trio-search-server", path=os.path.dirname(sys.executable))
    assert script is not None, f"trio-search-server is not installed next to {sys.executable}"
    return [script]


@attrs.define(eq=False)
class ServerProcess:
    """A running ``trio-search-server`` and everything it has printed so far
    (all of it once the process has exited and its context is left)."""

    process: trio.Process
    addresses: list[tuple[str, int]] = attrs.field(factory=list)
    stdout: bytearray = attrs.field(factory=bytearray)
    stderr: bytearray = attrs.field(factory=bytearray)
    _ended: set[str] = attrs.field(factory=set)
    _changed: trio.Event = attrs.field(factory=trio.Event)

    @property
    def port(self) -> int:
        """The port of its first address."""
        return self.addresses[0][1]

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def wait(self) -> int:
        """Its exit status, failing if it takes more than SUBPROCESS_TIMEOUT."""
        with trio.fail_after(SUBPROCESS_TIMEOUT):
            return await self.process.wait()

    async def wait_for(
        self,
        pattern: re.Pattern[bytes],
        where: str = "stderr",
        count: int = 1,
        within: float = SUBPROCESS_TIMEOUT,
    ) -> list[re.Match[bytes]]:
        """Wait, ``within`` seconds at most, until ``pattern`` has matched
        ``count`` times in ``where`` ("stdout" or "stderr"); fail at once if
        that stream ends first."""
        with trio.fail_after(within):
            while True:
                matches = list(pattern.finditer(getattr(self, where)))
                if len(matches) >= count:
                    return matches
                assert where not in self._ended, (
                    f"{where} ended with {len(matches)} of {count} matches of {pattern.pattern!r}; "
                    f"stdout: {bytes(self.stdout)!r}, stderr: {bytes(self.stderr)!r}"
                )
                await self._changed.wait()

    def worker_pids(self) -> dict[int, int]:
        """Worker number -> pid of its latest start (``--workers``)."""
        return {int(m[1]): int(m[2]) for m in WORKER_STARTED.finditer(self.stderr)}

    def every_worker_pid(self) -> set[int]:
        return {int(m[2]) for m in WORKER_STARTED.finditer(self.stderr)}

    async def _pump(self, stream: trio.abc.ReceiveStream, where: str) -> None:
        into: bytearray = getattr(self, where)
        while chunk := await stream.receive_some(65536):
            into += chunk
            self._notify()
        self._ended.add(where)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


def _kill_leftover(pid: int) -> None:
    """SIGKILL ``pid`` if it is still one of our servers (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"trio_search" in cmdline:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@asynccontextmanager
async def server_subprocess(
    *options: str,
    listeners: int = 1,
    nofile: int | tuple[int, int] | None = None,
    how: str = "script",
    before_listening: Callable[[ServerProcess], Awaitable[None]] | None = None,
) -> AsyncIterator[ServerProcess]:
    """Run ``trio-search-server --port 0 *options``; yield it once it has
    printed ``listeners`` "listening on" lines (and nothing else before them;
    0: at once, for a server expected to stop before it listens).
    ``before_listening``, if given, is awaited first, as soon as the process
    runs (to act while it starts up).

    ``how`` is "script" (the console script) or "module" (``python -m``).
    ``nofile`` lowers its open-files limit: an int sets the soft limit only,
    a (soft, hard) pair both. Its stdout and stderr are collected all along.
    On the way out it is killed if still running, and so is every worker it
    started (``--workers``)."""
    command = [*server_command(how), "--port", "0", *options]
    if nofile is not None:
        soft, hard = (nofile, "keep") if isinstance(nofile, int) else nofile
        command = [sys.executable, "-c", SET_NOFILE_THEN_EXEC, str(soft), str(hard), *command]
    process = await trio.lowlevel.open_process(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert process.stdout is not None and process.stderr is not None
    server = ServerProcess(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server._pump, process.stdout, "stdout")
            nursery.start_soon(server._pump, process.stderr, "stderr")
            try:
                if before_listening is not None:
                    await before_listening(server)
                newline = re.compile(rb"\n")
                await server.wait_for(newline, "stdout", listeners, STARTUP_TIMEOUT)
                lines = bytes(server.stdout).splitlines()[:listeners]
                for line in lines:
                    match = LISTENING_LINE.fullmatch(line)
                    assert match, f"not a listening line: {line!r} in {bytes(server.stdout)!r}"
                    server.addresses.append((match[1].decode(), int(match[2])))
                yield server
            finally:
                with trio.CancelScope(shield=True):
                    if process.returncode is None:
                        process.kill()
                    with trio.move_on_after(SUBPROCESS_TIMEOUT):
                        await process.wait()
                    for pid in server.every_worker_pid():
                        _kill_leftover(pid)
                    # Read what is left, until the end (bounded: a worker
                    # we did not know of may hold the pipes).
                    with trio.move_on_after(SUBPROCESS_TIMEOUT):
                        while server._ended != {"stdout", "stderr"}:
                            await server._changed.wait()
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await process.stdout.aclose()
            await process.stderr.aclose()


class SocketPairListener(trio.abc.Listener[trio.abc.Stream]):
    """Hands the server the server side of socket pairs, as the
    :class:`TcpStream` its own TCP listeners accept: served through the
    poller, like every plain TCP connection of a running server."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[trio.abc.Stream](100)
        #: The client sides, for :meth:`close_clients`.
        self.clients: list[trio.SocketStream] = []

    def connect(self) -> trio.SocketStream:
        a, b = socket.socketpair()
        b.setblocking(False)
        self._send.send_nowait(TcpStream(b, ("127.0.0.1", 40000 + b.fileno())))
        client = trio.SocketStream(trio.socket.from_stdlib_socket(a))
        self.clients.append(client)
        return client

    def close_clients(self) -> None:
        for client in self.clients:
            client.socket.close()

    async def accept(self) -> trio.abc.Stream:
        return await self._receive.receive()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def collector_work(root: object) -> int:
    """What a full collection of the cyclic garbage collector walks for
    ``root``, after full collections: the objects reachable from it that it
    tracks, and the references each holds (modules, classes and functions
    are not followed)."""
    for _ in range(3):  # a tuple drops out of sight one level at a time
        gc.collect()
    work, seen, stack = 0, set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(obj))
        referents = gc.get_referents(obj)
        if gc.is_tracked(obj):
            work += 1 + len(referents)
        stack.extend(referents)
    return work
