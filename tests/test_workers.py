"""``trio-search-server --workers 2``, end to end: the installed command as a
subprocess, its workers sharing one port, restarted when killed, stopped by
SIGTERM."""

from __future__ import annotations

import os
import re
import resource
import signal
import sys
from pathlib import Path

import pytest
import trio

from tests.helpers import (
    ServerProcess,
    json_request,
    read_messages,
    result_of,
    server_command,
    server_subprocess,
)
from trio_search import BUILTIN_INDEX, _workers
from trio_search._index_writer import build_index
from trio_search._workers import (
    RESTART_DELAY_INITIAL,
    RESTART_DELAY_MAX,
    Supervisor,
    restart_delay,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT spreading is Linux")

#: Seconds any single wait in these tests may take before it fails.
WAIT_LIMIT = 10.0
#: Connections opened at once to see both workers serve.
CONNECTIONS = 40

WORKER_LISTENING = re.compile(rb"worker (\d+) \(pid (\d+)\) listening")
CONNECTED = re.compile(rb"\[worker (\d+)\]: \S+: connected")
#: The "connected" lines are logged at DEBUG.
DEBUG = ("--log-level", "DEBUG")


def connections_by_worker(server: ServerProcess, since: int = 0) -> dict[int, int]:
    counts: dict[int, int] = {}
    for match in CONNECTED.finditer(server.stderr, since):
        counts[int(match[1])] = counts.get(int(match[1]), 0) + 1
    return counts


async def search_on_many_connections(port: int, count: int = CONNECTIONS) -> None:
    """``count`` connections at once, each asking one search; check each answer."""
    answered = 0

    async def one(index: int) -> None:
        nonlocal answered
        key = list(BUILTIN_INDEX)[index % len(BUILTIN_INDEX)]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(json_request({"action": "search", "value": key}))
            (response,) = await read_messages(stream, 1)
        assert result_of(response) == {"result": BUILTIN_INDEX[key]}
        answered += 1

    with trio.fail_after(WAIT_LIMIT):
        async with trio.open_nursery() as nursery:
            for index in range(count):
                nursery.start_soon(one, index)
    assert answered == count


def assert_gone(pids: set[int]) -> None:
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} still exists"


async def test_two_workers_share_the_port_and_both_serve() -> None:
    async with server_subprocess(*DEBUG, "--workers", "2") as server:
        port = server.port
        await server.wait_for(WORKER_LISTENING, count=2)
        await search_on_many_connections(port)
        await server.wait_for(CONNECTED, count=CONNECTIONS)
        by_worker = connections_by_worker(
            server,
        )
        assert set(by_worker) == {1, 2}, by_worker
        assert sum(by_worker.values()) == CONNECTIONS


async def test_a_killed_worker_is_restarted_and_the_service_goes_on() -> None:
    async with server_subprocess(*DEBUG, "--workers", "2") as server:
        port = server.port
        await server.wait_for(WORKER_LISTENING, count=2)
        killed = server.worker_pids()[1]
        os.kill(killed, signal.SIGKILL)
        await server.wait_for(
            re.compile(rb"worker 1 \(pid %d\) killed by SIGKILL.*restarting in" % killed)
        )
        # Worker 2 alone answers while worker 1 waits out its back-off.
        await search_on_many_connections(port, 10)
        await server.wait_for(WORKER_LISTENING, count=3)
        restarted = server.worker_pids()[1]
        assert restarted != killed
        since = len(server.stderr)
        await search_on_many_connections(port)
        await server.wait_for(CONNECTED, count=CONNECTIONS + 10)
        assert connections_by_worker(server, since).get(1, 0) > 0
        assert server.process.returncode is None


async def test_sigterm_stops_every_worker_and_exits_0() -> None:
    async with server_subprocess(*DEBUG, "--workers", "2") as server:
        port = server.port
        await server.wait_for(WORKER_LISTENING, count=2)
        workers = set(server.worker_pids().values())
        # An idle connection must not hold the shutdown up.
        idle = await trio.open_tcp_stream("127.0.0.1", port)
        async with idle:
            server.process.send_signal(signal.SIGTERM)
            with trio.fail_after(WAIT_LIMIT):
                status = await server.process.wait()
        assert status == 0, server.stderr.decode(errors="replace")
        assert_gone(workers)
        # The log is read by another task: wait for it to catch up.
        await server.wait_for(re.compile(rb"all workers stopped"))


async def test_port_in_use_is_one_line_and_status_1() -> None:
    holder = trio.socket.socket()
    with holder:
        await holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with trio.fail_after(WAIT_LIMIT):
            result = await trio.run_process(
                [*server_command(), "--workers", "2", "--port", str(port)],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    assert result.returncode == 1
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert lines == [
        f"trio-search-server: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


async def test_a_worker_failing_to_start_beside_metrics_is_one_error_line(
    tmp_path: Path,
) -> None:
    # The supervisor serves /metrics, and its workers cannot open the index
    # (its tantivy files are corrupt; the supervisor reads only trio_search's
    # own): their startup failure must end the command with one error line,
    # not a traceback of an exception group.
    data = tmp_path / "data.jsonl"
    data.write_text('{"key": "k", "answer": "an answer"}\n')
    index_dir = tmp_path / "idx"
    build_index(data, index_dir)
    (index_dir / "meta.json").write_text("garbage\n")
    command = [*server_command(), "--workers", "2", "--port", "0", "--index", str(index_dir)]
    with trio.fail_after(WAIT_LIMIT):
        result = await trio.run_process(
            [*command, "--metrics", "127.0.0.1:0"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "serving metrics of all workers" in stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("trio-search-server: error: worker ")
    assert stderr.splitlines()[-1].endswith(" before it was listening")


async def test_a_second_signal_kills_workers_still_serving() -> None:
    async with server_subprocess(*DEBUG, "--workers", "2", "--shutdown-grace", "60") as server:
        port = server.port
        await server.wait_for(WORKER_LISTENING, count=2)
        workers = set(server.worker_pids().values())
        # Half a request: its worker would give it the whole grace period.
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(json_request({"action": "search", "value": "ring"})[:5])
            await server.wait_for(CONNECTED)
            server.process.send_signal(signal.SIGTERM)
            await server.wait_for(re.compile(rb"SIGTERM received: stopping the workers"))
            await server.wait_for(re.compile(rb"\[worker \d\]: SIGTERM received"), count=2)
            server.process.send_signal(signal.SIGTERM)
            with trio.fail_after(WAIT_LIMIT):
                status = await server.process.wait()
        assert status == 0
        assert b"SIGTERM again: killing the workers" in server.stderr
        assert_gone(workers)


async def test_workers_shut_down_when_the_parent_is_killed() -> None:
    async with server_subprocess(*DEBUG, "--workers", "2") as server:
        await server.wait_for(WORKER_LISTENING, count=2)
        workers = set(server.worker_pids().values())
        server.process.kill()
        await server.process.wait()
        # Their stdin (a pipe from the parent) ends: each shuts down.
        with trio.fail_after(WAIT_LIMIT):
            for pid in workers:
                await wait_exited(pid)
        await server.wait_for(re.compile(rb"supervisor gone: shutting down"), count=2)
        assert server.stderr.count(b"supervisor gone: shutting down") == 2


async def wait_exited(pid: int) -> None:
    """Wait until ``pid``, not necessarily our child, has exited."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)


def test_restart_delay_doubles_up_to_its_cap() -> None:
    delays = [restart_delay(crashes) for crashes in range(1, 12)]
    assert delays[0] == RESTART_DELAY_INITIAL
    assert delays[1] == 2 * RESTART_DELAY_INITIAL
    assert delays == sorted(delays)
    assert delays[-1] == RESTART_DELAY_MAX
    assert restart_delay(10_000) == RESTART_DELAY_MAX


async def test_bad_data_is_one_line_and_status_1_before_any_worker(tmp_path: Path) -> None:
    data = tmp_path / "index.json"
    data.write_text("[1, 2]")
    with trio.fail_after(WAIT_LIMIT):
        result = await trio.run_process(
            [*server_command(), "--workers", "2", "--port", "0", "--data", str(data)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 1
    assert result.stdout == b""
    (line,) = result.stderr.decode().splitlines()
    assert line.startswith("trio-search-server: error: ")
    assert "worker" not in line


async def test_the_server_raises_its_open_files_limit_for_max_connections() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2000 + 64:
        pytest.skip(f"hard open-files limit {hard} is too low to raise to")
    async with server_subprocess(*DEBUG, "--max-connections", "2000", nofile=256) as server:
        (raised,) = await server.wait_for(
            re.compile(rb"raised the open-files limit \(RLIMIT_NOFILE\) from 256 to (\d+)")
        )
        assert int(raised[1]) >= 2000 + 64


def test_workers_get_each_option_once_without_the_supervisors() -> None:
    from trio_search._server_cli import build_parser, worker_options

    parser = build_parser()
    args = parser.parse_args(
        [
            "--workers",
            "2",
            "--port",
            "0",
            "--data",
            "a.jsonl",
            "--data",
            "b.jsonl",
            "--key-f",
            "id",
            "--proxy-protocol",
            "--metrics",
            "127.0.0.1:9100",
            "--log-level",
            "debug",
        ]
    )
    assert worker_options(parser, args) == [
        "--data",
        "b.jsonl",
        "--key-field",
        "id",
        "--proxy-protocol",
        "--log-level",
        "DEBUG",
    ]


async def test_a_worker_start_cut_short_leaves_no_pipe_open(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.abc.Clock
) -> None:
    """A signal while a worker is being started cancels the start: the
    supervisor's end of the worker's ready pipe is closed, not leaked."""

    async def start_that_hangs(*_args: object, **_kwargs: object) -> trio.Process:
        await trio.sleep_forever()
        raise AssertionError("not reached")

    monkeypatch.setattr(_workers.trio.lowlevel, "open_process", start_that_hangs)
    supervisor = Supervisor(command=lambda number, ready_fd: ["true"], count=1)
    before = sorted(os.listdir("/proc/self/fd"))
    with trio.move_on_after(1) as scope:
        await supervisor._run_once(1)
    assert scope.cancelled_caught
    assert sorted(os.listdir("/proc/self/fd")) == before
