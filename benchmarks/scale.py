"""Scale: many simultaneous connections on one server, and 1 vs 2 workers.

1. Idle connections: starts ``trio-search-server`` (with a soft open-files
   limit of ``--server-nofile``, to check that it raises its own), opens
   ``--connections`` connections at once, sends a search on every one, checks
   every answer, keeps them all open and idle, and reads the server's RSS
   (VmRSS in /proc/PID/status) before they open and once they are all open
   and idle. The difference over the count is the memory per idle
   connection (issue 4 asks for at most 8 KiB).
2. Throughput: starts the server with ``--workers 1`` then ``--workers 2``
   and drives each with the load generator ``trio-search-bench`` (keep-alive
   and oneshot), ``--repeats`` times each, reporting medians of requests/s
   and of the server's CPU per request (the workers' included). Without
   ``trio-search-bench`` a simple keep-alive loop here measures requests/s.

Usage: python benchmarks/scale.py [--connections 10000] [--duration 5]
[--repeats 3] [--skip-throughput]. Linux only (/proc, SO_REUSEPORT). Prints
a Markdown summary to paste into SCALE.md; ``--json`` prints the raw figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from trio_search import (
    BUILTIN_INDEX,
    NEED_DATA,
    Message,
    MessageProtocol,
    encode_message,
    open_client,
)

#: Connects in flight at once while opening the connections: well under the
#: usual listen backlog cap (net.core.somaxconn, 4096), so no SYN is dropped
#: and retried a second later. They all stay open once connected.
CONNECT_CONCURRENCY = 200
#: Seconds the idle connections are left alone before RSS is read, so the
#: server has finished every reply and freed its per-request garbage.
SETTLE_TIME = 2.0
#: Connections opened, answered and closed before the baseline RSS, so that
#: one-time costs (lazy imports, first-use caches) are not counted per
#: connection. Few: the allocator keeps what they freed, which would hide that
#: many connections' memory from the difference.
WARMUP_CONNECTIONS = 20
#: File descriptors this process needs beyond the connections (server pipes,
#: the stats connection, Trio's own).
FD_MARGIN = 100
#: Seconds any single phase may take before the run is abandoned.
PHASE_TIMEOUT = 120.0
#: Seconds the server gets to start and to stop.
SERVER_TIMEOUT = 30.0
#: The issue's target, KiB of server RSS per idle connection.
TARGET_KIB_PER_CONNECTION = 8.0

KEYS = list(BUILTIN_INDEX)
LISTENING = re.compile(rb"listening on \S+:(\d+)\n")


def raise_nofile(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to ``needed`` (at most the
    hard limit); return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def tree_rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and its direct children, in KiB."""
    total = rss_kib(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += rss_kib(int(child))
    return total


def server_command() -> list[str]:
    script = Path(sys.executable).with_name("trio-search-server")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "trio_search._server_cli"]


def bench_command() -> list[str] | None:
    """``trio-search-bench``, installed or as a module; None if absent."""
    script = Path(sys.executable).with_name("trio-search-bench")
    if script.exists():
        return [str(script)]
    found = shutil.which("trio-search-bench")
    if found:
        return [found]
    try:
        import trio_search._loadgen._cli  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "trio_search._loadgen._cli"]


class Server:
    """A running ``trio-search-server`` subprocess."""

    def __init__(self, process: trio.Process, port: int, stderr: bytearray) -> None:
        self.process = process
        self.port = port
        self.stderr = stderr


@asynccontextmanager
async def running_server(options: list[str], nofile: int | None = None) -> AsyncIterator[Server]:
    """Start the server on 127.0.0.1, port 0; stop it with SIGTERM on exit."""
    command = [*server_command(), "--host", "127.0.0.1", "--port", "0", *options]
    if nofile is not None:
        # Lower the soft limit, then become the server (not preexec_fn, which
        # is unsafe with threads, and Trio starts processes from a thread).
        command = [
            sys.executable,
            "-c",
            "import os, resource, sys; "
            "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, hard)); "
            "os.execv(sys.argv[1], sys.argv[1:])",
            *command,
        ]
    process = await trio.lowlevel.open_process(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout = bytearray()
    stderr = bytearray()

    async def pump(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
        while chunk := await stream.receive_some(65536):
            into += chunk

    try:
        async with trio.open_nursery() as nursery:
            assert process.stdout is not None and process.stderr is not None
            nursery.start_soon(pump, process.stdout, stdout)
            nursery.start_soon(pump, process.stderr, stderr)
            with trio.fail_after(SERVER_TIMEOUT):
                while not (match := LISTENING.search(stdout)):
                    if process.returncode is not None:
                        raise RuntimeError(f"server exited: {stderr.decode(errors='replace')}")
                    await trio.sleep(0.05)
            yield Server(process, int(match[1]), stderr)
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(SERVER_TIMEOUT):
                status = await process.wait()
            if status != 0:
                raise RuntimeError(
                    f"server exit status {status}: {stderr.decode(errors='replace')}"
                )
    finally:
        with trio.CancelScope(shield=True):
            process.kill()
            await process.wait()
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    await pipe.aclose()


def search_bytes(key: str) -> bytes:
    return encode_message(Message(json.dumps({"action": "search", "value": key}).encode()))


def expected_answer(key: str) -> bytes:
    return json.dumps({"result": BUILTIN_INDEX[key]}, ensure_ascii=False).encode()


async def one_answer(stream: trio.SocketStream) -> Message:
    protocol = MessageProtocol()
    while True:
        event = protocol.next_message()
        if event is NEED_DATA:
            data = await stream.receive_some(65536)
            if not data:
                raise RuntimeError("server closed the connection")
            protocol.receive_data(data)
        elif isinstance(event, Message):
            return event
        else:
            raise RuntimeError("server closed the connection")


async def stats(port: int) -> dict[str, Any]:
    async with open_client("127.0.0.1", port) as client:
        result: dict[str, Any] = (await client.request_json({"action": "stats"}))["result"]
        return result


async def measure_idle_connections(count: int, server_nofile: int, rounds: int) -> dict[str, Any]:
    """Open ``count`` connections, a search on each, then RSS while idle;
    ``rounds`` times on the same server, to tell reuse from a leak."""
    options = [
        "--max-connections",
        str(count + FD_MARGIN),
        "--idle-timeout",
        "3600",
        "--log-level",
        "INFO",
    ]
    async with running_server(options, nofile=server_nofile) as server:
        pid = server.process.pid
        rss_start = rss_kib(pid)
        # Warm up: connections opened, answered and closed.
        await open_search_close(server.port, WARMUP_CONNECTIONS)
        await trio.sleep(SETTLE_TIME)
        rss_before = rss_kib(pid)
        results = [await hold_idle_connections(server.port, pid, count) for _ in range(rounds)]
        log = server.stderr.decode(errors="replace")
    first = results[0]
    nofile_line = next((line for line in log.splitlines() if "open-files limit" in line), None)
    failures = [example for result in results for example in result["failures"]]
    return {
        "connections": count,
        "rounds": rounds,
        "answered_ok": count * rounds - len(failures),
        "failures": len(failures),
        "failure_examples": failures[:5],
        "server_connections_open": first["connections_open"],
        "server_open_fds": first["open_fds"],
        "connect_and_answer_seconds": first["connect_seconds"],
        "rss_kib_at_start": rss_start,
        "rss_kib_before": rss_before,
        "rss_kib_idle": first["rss_idle"],
        "rss_kib_after_close": first["rss_after_close"],
        "rss_kib_idle_by_round": [result["rss_idle"] for result in results],
        "rss_kib_after_close_by_round": [result["rss_after_close"] for result in results],
        "kib_per_idle_connection": round((first["rss_idle"] - rss_before) / count, 2),
        "target_kib": TARGET_KIB_PER_CONNECTION,
        "server_nofile_at_start": server_nofile,
        "server_nofile_log": nofile_line.split(": ", 1)[-1] if nofile_line else None,
    }


async def hold_idle_connections(port: int, pid: int, count: int) -> dict[str, Any]:
    """Open ``count`` connections, a search on each, all kept open; read the
    server's RSS once they are idle, close them, read it again."""
    opened = 0
    failures: list[str] = []
    all_open = trio.Event()
    release = trio.Event()
    limiter = trio.CapacityLimiter(CONNECT_CONCURRENCY)
    connect_started = time.perf_counter()

    def arrived() -> None:
        nonlocal opened
        opened += 1
        if opened == count:
            all_open.set()

    async def connect_and_search(key: str) -> trio.SocketStream | None:
        """A connection that answered ``key`` rightly, or None (counted)."""
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError as exc:
            failures.append(repr(exc))
            return None
        try:
            await stream.send_all(search_bytes(key))
            answer = await one_answer(stream)
            if answer.content != expected_answer(key):
                raise RuntimeError(f"wrong answer {answer.content!r}")
        except (RuntimeError, trio.BrokenResourceError) as exc:
            failures.append(repr(exc))
            await stream.aclose()
            return None
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return stream

    async def hold(index: int) -> None:
        async with limiter:
            stream = await connect_and_search(KEYS[index % len(KEYS)])
        arrived()
        if stream is not None:
            async with stream:
                await release.wait()

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(hold, index)
        with trio.fail_after(PHASE_TIMEOUT):
            await all_open.wait()
        connect_seconds = time.perf_counter() - connect_started
        await trio.sleep(SETTLE_TIME)
        rss_idle = rss_kib(pid)
        counters = await stats(port)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        release.set()
    await trio.sleep(SETTLE_TIME)
    return {
        "failures": failures,
        "connect_seconds": round(connect_seconds, 2),
        "rss_idle": rss_idle,
        "rss_after_close": rss_kib(pid),
        "connections_open": counters.get("connections_open"),
        "open_fds": fds,
    }


async def open_search_close(port: int, count: int) -> None:
    limiter = trio.CapacityLimiter(CONNECT_CONCURRENCY)

    async def one(index: int) -> None:
        key = KEYS[index % len(KEYS)]
        async with limiter:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(search_bytes(key))
                answer = await one_answer(stream)
        if answer.content != expected_answer(key):
            raise RuntimeError(f"wrong answer {answer.content!r}")

    with trio.fail_after(PHASE_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for index in range(count):
                nursery.start_soon(one, index)


WORKLOADS = {
    "keepalive-64": ["--mode", "keepalive", "-c", "64"],
    "pipelined-64x16": ["--mode", "keepalive", "-c", "64", "-p", "16"],
    "oneshot-16": ["--mode", "oneshot", "-c", "16"],
}


async def run_bench(
    bench: list[str], port: int, pid: int, load: list[str], duration: float
) -> dict[str, Any]:
    command = [
        *bench,
        "127.0.0.1",
        str(port),
        *load,
        "-d",
        str(duration),
        "--json",
        "--quiet",
        "--server-pid",
        str(pid),
    ]
    with trio.fail_after(duration + PHASE_TIMEOUT):
        result = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False
        )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.decode(errors='replace')}")
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


async def simple_keepalive_load(port: int, connections: int, duration: float) -> dict[str, Any]:
    """Fallback load: ``connections`` kept-alive clients, one request in
    flight each, every answer checked; requests/s over ``duration``."""
    done = 0
    request = search_bytes("morpheus")
    expected = expected_answer("morpheus")

    async def client() -> None:
        nonlocal done
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            while True:
                await stream.send_all(request)
                answer = await one_answer(stream)
                if answer.content != expected:
                    raise RuntimeError(f"wrong answer {answer.content!r}")
                done += 1

    started = time.perf_counter()
    with trio.move_on_after(duration):
        async with trio.open_nursery() as nursery:
            for _ in range(connections):
                nursery.start_soon(client)
    elapsed = time.perf_counter() - started
    return {"requests_per_second": done / elapsed, "ok": done, "failed": 0}


async def measure_throughput(duration: float, repeats: int) -> dict[str, Any]:
    bench = bench_command()
    workloads = WORKLOADS if bench is not None else {"keepalive-64 (simple loop)": []}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for _round in range(repeats):
        for workers in (1, 2):
            options = ["--workers", str(workers), "--log-level", "WARNING"]
            async with running_server(options) as server:
                await open_search_close(server.port, 50)
                for name, load in workloads.items():
                    if bench is not None:
                        figures = await run_bench(
                            bench, server.port, server.process.pid, load, duration
                        )
                    else:
                        figures = await simple_keepalive_load(server.port, 64, duration)
                    runs.setdefault(name, {}).setdefault(str(workers), []).append(figures)
    summary: dict[str, Any] = {}
    for name, by_workers in runs.items():
        summary[name] = {}
        for workers, figures in by_workers.items():
            cpu = [
                f["server_cpu_us_per_request"]
                for f in figures
                if f.get("server_cpu_us_per_request")
            ]
            summary[name][workers] = {
                "requests_per_second_median": round(
                    statistics.median(f["requests_per_second"] for f in figures)
                ),
                "requests_per_second_runs": [round(f["requests_per_second"]) for f in figures],
                "server_cpu_us_per_request_median": round(statistics.median(cpu), 1)
                if cpu
                else None,
                "client_cpu_us_per_request_median": _median_or_none(
                    [
                        f["client_cpu_us_per_request"]
                        for f in figures
                        if f.get("client_cpu_us_per_request")
                    ]
                ),
                "p99_ms_median": _median_or_none(
                    [f["latency_ms"]["p99"] for f in figures if f.get("latency_ms")]
                ),
                "failed": sum(f.get("failed", 0) for f in figures),
            }
    return {
        "loadavg_at_end": load_average(),
        "load_generator": " ".join(bench) if bench else "simple loop",
        "duration_s": duration,
        "repeats": repeats,
        "workloads": summary,
    }


def _median_or_none(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def load_average() -> str:
    """The 1-minute load average: other work on the machine skews throughput."""
    return Path("/proc/loadavg").read_text().split()[0]


def machine() -> dict[str, Any]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "trio": trio.__version__,
        "somaxconn": Path("/proc/sys/net/core/somaxconn").read_text().strip(),
        "loadavg_at_start": load_average(),
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, "
        f"Python {m['python']}, Trio {m['trio']}; {m['date']}.",
        "",
    ]
    idle = report.get("idle")
    if idle:
        lines += [
            "| connections | searches answered ok (all rounds) | failures "
            "| server connections_open | RSS before (KiB) | RSS idle (KiB) "
            "| RSS after close (KiB) | KiB per idle connection |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {idle['connections']:,} | {idle['answered_ok']:,} | {idle['failures']} "
            f"| {idle['server_connections_open']} | {idle['rss_kib_before']:,} "
            f"| {idle['rss_kib_idle']:,} | {idle['rss_kib_after_close']:,} "
            f"| {idle['kib_per_idle_connection']} |",
            "",
            f"RSS idle by round (KiB): {idle['rss_kib_idle_by_round']}; after close: "
            f"{idle['rss_kib_after_close_by_round']}.",
            "",
            f"Server log: {idle['server_nofile_log']}",
            "",
        ]
    throughput = report.get("throughput")
    if throughput:
        lines += [
            f"Load generator: `{throughput['load_generator']}`, {throughput['duration_s']} s "
            f"per run, median of {throughput['repeats']} runs; load average "
            f"{m['loadavg_at_start']} at the start, {throughput['loadavg_at_end']} at the end.",
            "",
            "| workload | workers | requests/s (median) | runs | server CPU µs/request "
            "| load generator CPU µs/request | p99 ms | failed |",
            "|---|---:|---:|---|---:|---:|---:|---:|",
        ]
        for name, by_workers in throughput["workloads"].items():
            for workers, f in sorted(by_workers.items()):
                lines.append(
                    f"| {name} | {workers} | {f['requests_per_second_median']:,} "
                    f"| {', '.join(f'{r:,}' for r in f['requests_per_second_runs'])} "
                    f"| {f['server_cpu_us_per_request_median']} "
                    f"| {f['client_cpu_us_per_request_median']} | {f['p99_ms_median']} "
                    f"| {f['failed']} |"
                )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine()}
    if not args.skip_idle:
        report["idle"] = await measure_idle_connections(
            args.connections, args.server_nofile, args.rounds
        )
        print(json.dumps(report["idle"]), file=sys.stderr, flush=True)
    if not args.skip_throughput:
        report["throughput"] = await measure_throughput(args.duration, args.repeats)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument(
        "--server-nofile",
        type=int,
        default=1024,
        help="soft open-files limit the server starts with (it must raise its own)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="times the connections are opened, held idle and closed on one server",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per throughput run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    have = raise_nofile(args.connections + FD_MARGIN)
    if have < args.connections + FD_MARGIN:
        print(
            f"open-files limit {have} is too low for {args.connections} connections",
            file=sys.stderr,
        )
        return 1
    report = trio.run(main_async, args)
    print(json.dumps(report, indent=2) if args.json else markdown(report))
    idle = report.get("idle")
    return 1 if idle and idle["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
