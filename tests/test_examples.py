"""The tutorial's first two programs on Trio (examples/), run as a user runs
them: servers as subprocesses on port 0, clients against them, and the
tutorial's own echo and multiconn scripts against ours, both ways, where a
copy of the tutorial is named by ``TRIO_SEARCH_TUTORIAL_DIR`` (see
tests/test_tutorial.py)."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import pytest
import trio

from tests.helpers import ServerProcess
from tests.test_cli import ENV, TIMEOUT, free_port, run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TUTORIAL = Path(os.environ.get("TRIO_SEARCH_TUTORIAL_DIR", "/nonexistent"))
#: The tutorial's scripts print without flushing: unbuffered, we see each line.
TUTORIAL_ENV = {**ENV, "PYTHONUNBUFFERED": "1"}

needs_tutorial = pytest.mark.skipif(
    not (TUTORIAL / "echo-server.py").is_file(),
    reason="set TRIO_SEARCH_TUTORIAL_DIR to the tutorial's python-sockets-tutorial folder",
)

#: What every server here prints first, the tutorial's multiconn-server.py too.
LISTENING = re.compile(rb"Listening on \('([^']+)', (\d+)\)")
MESSAGES = [b"Message 1 from client.", b"Message 2 from client."]
SERVERS = ["echo_server.py", "multiconn_server.py"]

#: Runs a tutorial script unchanged but for its hard-coded 127.0.0.1:65432.
#: argv: the port to use instead (0: any free one), the script, its args.
#: After listen() it prints the bound address, which echo-server.py does not.
REDIRECT_65432 = """
import runpy, socket, sys
port = int(sys.argv.pop(1))
def redirected(method):
    original = getattr(socket.socket, method)
    def call(self, address, *args):
        if address[1] == 65432:
            address = (address[0], port)
        return original(self, address, *args)
    return call
socket.socket.bind = redirected("bind")
socket.socket.connect = redirected("connect")
listen = socket.socket.listen
def listen_and_announce(self, *args):
    listen(self, *args)
    print(f"Listening on {self.getsockname()}", flush=True)
socket.socket.listen = listen_and_announce
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

#: Runs a script with Ctrl-C raising KeyboardInterrupt, as in a terminal,
#: even where this test process was started with SIGINT ignored (a
#: background job), which a child would inherit.
WITH_CTRL_C = (
    "import runpy, signal, sys; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def example(name: str, *args: object) -> list[str]:
    return [sys.executable, str(EXAMPLES / name), *map(str, args)]


def tutorial(name: str, *args: object) -> list[str]:
    return [sys.executable, str(TUTORIAL / name), *map(str, args)]


def lines(output: bytes) -> list[str]:
    return output.decode().splitlines()


@asynccontextmanager
async def running(
    command: Sequence[str], env: dict[str, str] = ENV
) -> AsyncIterator[ServerProcess]:
    """Run a server command; yield it once it has printed its listening line
    (its address in ``.addresses``). Killed on the way out if still running;
    all its output is collected by then."""
    process = await trio.lowlevel.open_process(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    server = ServerProcess(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server._pump, process.stdout, "stdout")
            nursery.start_soon(server._pump, process.stderr, "stderr")
            try:
                (match,) = await server.wait_for(LISTENING, "stdout")
                server.addresses.append((match[1].decode(), int(match[2])))
                yield server
            finally:
                with trio.CancelScope(shield=True):
                    if process.returncode is None:
                        process.kill()
                    with trio.move_on_after(TIMEOUT):
                        await process.wait()
                        while server._ended != {"stdout", "stderr"}:
                            await server._changed.wait()
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await process.stdout.aclose()
            await process.stderr.aclose()


def assert_multiconn_client_output(output: bytes, num_conns: int, port: int) -> None:
    """Every connection started, sent both messages, got both back, closed."""
    out = lines(output)
    for connid in range(1, num_conns + 1):
        mine = [line for line in out if re.search(rf"\bconnection {connid}\b", line)]
        assert mine == [
            f"Starting connection {connid} to ('127.0.0.1', {port})",
            f"Sending {MESSAGES[0]!r} to connection {connid}",
            f"Received {MESSAGES[0]!r} from connection {connid}",
            f"Sending {MESSAGES[1]!r} to connection {connid}",
            f"Received {MESSAGES[1]!r} from connection {connid}",
            f"Closing connection {connid}",
        ], out
    assert len(out) == 6 * num_conns, out


def echoed_per_peer(output: bytes) -> dict[str, bytes]:
    """What the server says it echoed to each peer (``Echoing b'...' to (...)``),
    joined, from the output of multiconn_server.py or multiconn-server.py."""
    echoed: dict[str, bytes] = {}
    for line in lines(output):
        if match := re.fullmatch(r"Echoing (b'.*') to (\(.*\))", line):
            data = ast.literal_eval(match[1])
            echoed[match[2]] = echoed.get(match[2], b"") + data
    return echoed


# --- the examples against each other ------------------------------------------


async def test_echo_client_gets_its_hello_back() -> None:
    async with running(example("echo_server.py", "127.0.0.1", 0)) as server:
        result = await run(example("echo_client.py", "127.0.0.1", server.port))
        await server.wait_for(re.compile(rb"Connected by \('127\.0\.0\.1', \d+\)"), "stdout")
    assert result.returncode == 0, result
    assert result.stdout == b"Received b'Hello, world'\n"
    assert result.stderr == b""


@pytest.mark.parametrize("num_conns", [1, 10])
async def test_multiconn_client_gets_both_messages_back_on_each_connection(
    num_conns: int,
) -> None:
    async with running(example("multiconn_server.py", "127.0.0.1", 0)) as server:
        result = await run(example("multiconn_client.py", "127.0.0.1", server.port, num_conns))
        await server.wait_for(re.compile(rb"Closing connection to "), "stdout", num_conns)
    assert result.returncode == 0, result
    assert result.stderr == b""
    assert_multiconn_client_output(result.stdout, num_conns, server.port)
    out = lines(server.stdout)
    assert out[0] == f"Listening on ('127.0.0.1', {server.port})"
    assert sum(line.startswith("Accepted connection from ('127.0.0.1', ") for line in out) == (
        num_conns
    )
    echoed = echoed_per_peer(server.stdout)
    assert list(echoed.values()) == [b"".join(MESSAGES)] * num_conns, out


@pytest.mark.parametrize("name", SERVERS)
async def test_the_echo_clients_work_against_either_server(name: str) -> None:
    async with running(example(name, "127.0.0.1", 0)) as server:
        echo = await run(example("echo_client.py", "127.0.0.1", server.port))
        multi = await run(example("multiconn_client.py", "127.0.0.1", server.port, 3))
    assert echo.stdout == b"Received b'Hello, world'\n"
    assert multi.returncode == 0, multi
    assert_multiconn_client_output(multi.stdout, 3, server.port)


async def send_in_pieces(stream: trio.SocketStream, pieces: Sequence[bytes]) -> None:
    """Send each piece on its own (a pause between, so that they travel as
    separate segments), then close our side."""
    for piece in pieces:
        await stream.send_all(piece)
        await trio.sleep(0.01)
    await stream.send_eof()


async def echo_of(port: int, pieces: Sequence[bytes]) -> bytes:
    """Everything the server sends back for ``pieces``, sent while reading
    (a server echoing faster than we read would otherwise fill the pipes)."""
    received = bytearray()
    with trio.fail_after(TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream, trio.open_nursery() as nursery:
            nursery.start_soon(send_in_pieces, stream, pieces)
            while chunk := await stream.receive_some():
                received += chunk
    return bytes(received)


@pytest.mark.parametrize("name", SERVERS)
async def test_servers_echo_split_and_pipelined_data_byte_for_byte(name: str) -> None:
    hello = b"Hello, world"
    big = bytes(range(256)) * 4096  # 1 MiB: many reads, and back-pressure
    async with running(example(name, "127.0.0.1", 0)) as server:
        # One byte at a time; both messages at once; a megabyte in one go.
        assert await echo_of(server.port, [bytes([b]) for b in hello]) == hello
        assert await echo_of(server.port, [b"".join(MESSAGES)]) == b"".join(MESSAGES)
        assert await echo_of(server.port, [big]) == big
        # Several clients interleaved: each gets only its own bytes back.
        results: dict[int, bytes] = {}

        async def client(i: int) -> None:
            pieces = [f"{i}:{n};".encode() for n in range(50)]
            results[i] = await echo_of(server.port, pieces)

        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(client, i)
    assert results == {i: "".join(f"{i}:{n};" for n in range(50)).encode() for i in range(5)}
    assert server.stderr == b""


@pytest.mark.parametrize("name", SERVERS)
async def test_ctrl_c_stops_a_server_and_closes_its_connections(name: str) -> None:
    command = [sys.executable, "-c", WITH_CTRL_C, *example(name, "127.0.0.1", 0)[1:]]
    async with running(command) as server:
        with trio.fail_after(TIMEOUT):
            async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
                await stream.send_all(b"ping")
                assert await stream.receive_some() == b"ping"
                server.signal(signal.SIGINT)
                assert await stream.receive_some() == b""  # closed, not reset
        assert await server.wait() == 0
    assert lines(server.stdout)[-1] == "Caught keyboard interrupt, exiting"
    assert server.stderr == b""


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", SERVERS)
async def test_servers_close_an_idle_connection(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_example(name)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(module.serve, "127.0.0.1", 0, 0.2)
        port = listeners[0].socket.getsockname()[1]
        with trio.fail_after(TIMEOUT):
            async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
                await stream.send_all(b"hi")
                assert await stream.receive_some() == b"hi"
                # Then silence: the server gives up on us after 0.2 s.
                assert await stream.receive_some() == b""
        nursery.cancel_scope.cancel()
    assert re.search(r"(idle for|No data from .* for) 0\.2 s", capsys.readouterr().out)


async def test_clients_report_a_refused_connection() -> None:
    port = await free_port()
    echo = await run(example("echo_client.py", "127.0.0.1", port))
    multi = await run(example("multiconn_client.py", "127.0.0.1", port, 2))
    assert echo.returncode == 1 and echo.stdout == b""
    assert echo.stderr.decode().startswith(f"Echo from ('127.0.0.1', {port}) failed: ")
    assert multi.returncode == 1
    assert sorted(line.split(" failed")[0] for line in lines(multi.stderr)) == [
        "Connection 1",
        "Connection 2",
    ]


@pytest.mark.parametrize(
    ("name", "usage"),
    [
        ("echo_server.py", "[<host> <port>]"),
        ("echo_client.py", "[<host> <port>]"),
        ("multiconn_server.py", "<host> <port>"),
        ("multiconn_client.py", "<host> <port> <num_connections>"),
    ],
)
async def test_wrong_arguments_print_usage(name: str, usage: str) -> None:
    result = await run(example(name, "127.0.0.1"))
    assert result.returncode == 2
    assert result.stderr.decode() == f"Usage: {EXAMPLES / name} {usage}\n"


@pytest.mark.parametrize(
    ("name", "args", "error"),
    [
        # Not wrapped around to port 34463, and no ValueError traceback.
        ("echo_server.py", ["99999"], "port must be a number from 0 to 65535, not '99999'"),
        ("echo_server.py", ["abc"], "port must be a number from 0 to 65535, not 'abc'"),
        ("multiconn_server.py", ["-1"], "port must be a number from 0 to 65535, not '-1'"),
        ("echo_client.py", ["0"], "port must be a number from 1 to 65535, not '0'"),
        ("multiconn_client.py", ["65536", "2"], "port must be a number from 1 to 65535"),
        # Not a silent exit status 0 after no connection at all.
        ("multiconn_client.py", ["1", "0"], "num_connections must be a number from 1 up, not '0'"),
        ("multiconn_client.py", ["1", "-1"], "num_connections must be a number from 1 up"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else value[:20],
)
async def test_bad_arguments_are_a_one_line_error(name: str, args: list[str], error: str) -> None:
    result = await run(example(name, "127.0.0.1", *args))
    assert (result.returncode, result.stdout) == (2, b""), result
    stderr = result.stderr.decode()
    assert stderr.startswith(f"{EXAMPLES / name}: error: {error}") and stderr.count("\n") == 1


# --- against the tutorial's own echo and multiconn scripts --------------------


@needs_tutorial
async def test_tutorial_echo_client_against_echo_server() -> None:
    async with running(example("echo_server.py", "127.0.0.1", 0)) as server:
        command = [sys.executable, "-c", REDIRECT_65432, str(server.port)]
        result = await run([*command, str(TUTORIAL / "echo-client.py")])
    assert result.returncode == 0, result
    assert result.stdout == b"Received b'Hello, world'\n"


@needs_tutorial
async def test_echo_client_against_tutorial_echo_server() -> None:
    command = [sys.executable, "-c", REDIRECT_65432, "0", str(TUTORIAL / "echo-server.py")]
    async with running(command, TUTORIAL_ENV) as server:
        result = await run(example("echo_client.py", "127.0.0.1", server.port))
        assert await server.wait() == 0  # it serves one client, then exits
    assert result.returncode == 0, result
    assert result.stdout == b"Received b'Hello, world'\n"
    assert re.search(rb"Connected by \('127\.0\.0\.1', \d+\)", server.stdout)


@needs_tutorial
@pytest.mark.parametrize("num_conns", [1, 5])
async def test_tutorial_multiconn_client_against_multiconn_server(num_conns: int) -> None:
    async with running(example("multiconn_server.py", "127.0.0.1", 0)) as server:
        result = await run(tutorial("multiconn-client.py", "127.0.0.1", server.port, num_conns))
        await server.wait_for(re.compile(rb"Closing connection to "), "stdout", num_conns)
    assert result.returncode == 0, result
    out = lines(result.stdout)
    for connid in range(1, num_conns + 1):
        # However the echoes were cut up, both messages came back, then it closed.
        received = b"".join(
            ast.literal_eval(match[1])
            for line in out
            if (match := re.fullmatch(rf"Received (b'.*') from connection {connid}", line))
        )
        assert received == b"".join(MESSAGES), out
        assert f"Closing connection {connid}" in out
    assert list(echoed_per_peer(server.stdout).values()) == [b"".join(MESSAGES)] * num_conns


@needs_tutorial
@pytest.mark.parametrize("num_conns", [1, 5])
async def test_multiconn_client_against_tutorial_multiconn_server(num_conns: int) -> None:
    port = await free_port()
    command = tutorial("multiconn-server.py", "127.0.0.1", port)
    async with running(command, TUTORIAL_ENV) as server:
        result = await run(example("multiconn_client.py", "127.0.0.1", port, num_conns))
        await server.wait_for(re.compile(rb"Closing connection to "), "stdout", num_conns)
    assert result.returncode == 0, result
    assert_multiconn_client_output(result.stdout, num_conns, port)
    assert list(echoed_per_peer(server.stdout).values()) == [b"".join(MESSAGES)] * num_conns
