"""A lean load generator for the search benchmark: closed or open loop.

Theory of operation
-------------------

It must cost less CPU per query than the servers it measures, so it is an
``asyncio.Protocol`` client (on uvloop when installed) that does as little
as it can per reply:

- every request is framed once, before the run, from a file of one JSON
  request content per line; connections take the next request from one
  shared counter, so the whole list is used, in its (pre-shuffled) order,
  before any request is sent again;
- a reply is parsed only as far as checking it: the header's
  ``content-length`` frames it, and its content must be a JSON object whose
  ``"result"`` is a list (``--expect list``, for ``query``) or a string that
  is not the tutorial's ``No match`` (``--expect str``, for exact ``search``
  lookups of keys that exist). A few replies (``--sample``) are kept whole,
  by request index, so the caller can compare them with the engine's own
  answers.

Two modes:

- closed loop (default): each connection sends its next request as soon as
  the previous answer arrives. Latency runs from the send to the reply.
- open loop (``--rate R``): requests are sent on a fixed schedule, R per
  second spread round-robin over the connections, whether or not earlier
  replies came back (a connection then has several in flight, pipelined).
  Latency runs from the *scheduled* send time, so a stall in the server
  shows as the latency of every request that was due during it instead of
  being hidden by a client that waited (coordinated omission). After the
  schedule ends, replies still due are awaited for ``--timeout`` seconds;
  those still missing then count with the time they had waited (so the
  percentiles become lower bounds, flagged in the result).

Both first warm up for ``--warmup`` seconds, then measure ``--duration``
seconds: the rate counts the replies that arrive in that window; latency is
that of those replies (open loop: of the requests scheduled in the window,
whenever their replies came). Server CPU time (``--server-pid``: the process
and its descendants, from /proc) and the generator's own are read at the
window's edges. The result is one JSON object, on stdout or in ``--output``.

Usage:
    python loadgen.py HOST PORT --requests FILE [--connections 64]
        [--duration 5] [--rate 1000] [--server-pid PID] [--expect list]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any, cast

import orjson

from trio_search._loadgen import process_tree_cpu_seconds

#: Seconds to wait for the connections to open.
CONNECT_TIMEOUT = 10.0
#: Replies kept whole by default, for the caller to check against the engine.
DEFAULT_SAMPLES = 200
#: The tutorial's answer for a key not in the index starts with this.
NO_MATCH = "No match for "


def frame(content: bytes) -> bytes:
    """``content`` as a ``text/json`` UTF-8 request on the wire."""
    header = json.dumps(
        {
            "byteorder": sys.byteorder,
            "content-type": "text/json",
            "content-encoding": "utf-8",
            "content-length": len(content),
        }
    ).encode()
    return len(header).to_bytes(2, "big") + header + content


def load_requests(path: Path) -> list[bytes]:
    """The framed requests of a file of one JSON request content per line."""
    lines = path.read_bytes().splitlines()
    return [frame(orjson.dumps(orjson.loads(line))) for line in lines if line.strip()]


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return None
    rank = max(1, math.ceil(fraction * len(values)))
    return values[min(rank, len(values)) - 1]


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Run:
    """What the connections share: the requests, the window, the counts."""

    def __init__(self, requests: list[bytes], expect: str, samples: int) -> None:
        self.requests = requests
        self.expect_list = expect == "list"
        self.next_index = 0
        # Request indexes whose replies are kept whole (evenly spread).
        step = max(1, len(requests) // samples) if samples else 0
        self.sample_at = set(range(0, len(requests), step)) if step else set()
        self.samples: dict[int, Any] = {}
        self.window_start = math.inf
        self.window_end = math.inf
        self.sending = True
        self.sent = 0
        self.answered_in_window = 0
        self.latencies: list[float] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self.first_error: dict[str, str] = {}
        self.done = asyncio.Event()
        self.outstanding = 0

    def take(self) -> int:
        index = self.next_index
        self.next_index = index + 1 if index + 1 < len(self.requests) else 0
        return index

    def fail(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        self.first_error.setdefault(kind, detail[:300])

    def check(self, index: int, content: bytes) -> bool:
        """Whether a reply is an answer of the expected shape; keep samples."""
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            self.fail("bad_json", repr(content[:200]))
            return False
        result = body.get("result") if type(body) is dict else None
        if self.expect_list:
            right = type(result) is list and "error" not in body
        else:
            right = type(result) is str and not result.startswith(NO_MATCH)
        if not right:
            self.fail("wrong_answer", repr(content[:200]))
            return False
        if index in self.sample_at and index not in self.samples:
            self.samples[index] = body
        return True


class Client(asyncio.Protocol):
    """One connection; ``inflight`` holds (time, request index) per request sent."""

    def __init__(self, run: Run, open_loop: bool) -> None:
        self.run = run
        self.open_loop = open_loop
        self.buffer = bytearray()
        self.inflight: collections.deque[tuple[float, int]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inflight and self.run.sending:
            self.run.fail("closed", f"connection lost with {len(self.inflight)} in flight: {exc}")
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, index: int, at: float) -> None:
        assert self.transport is not None
        self.inflight.append((at, index))
        self.run.sent += 1
        self.run.outstanding += 1
        self.transport.write(self.run.requests[index])

    def send_next(self) -> None:
        self.send(self.run.take(), time.perf_counter())

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        run = self.run
        while len(buffer) >= 2:
            header_length = (buffer[0] << 8) | buffer[1]
            if len(buffer) < 2 + header_length:
                return
            try:
                length = orjson.loads(buffer[2 : 2 + header_length])["content-length"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                run.fail("bad_framing", repr(bytes(buffer[: 2 + header_length])))
                assert self.transport is not None
                self.transport.close()
                return
            end = 2 + header_length + length
            if len(buffer) < end:
                return
            now = time.perf_counter()
            content = bytes(buffer[2 + header_length : end])
            del buffer[:end]
            started, index = self.inflight.popleft()
            run.outstanding -= 1
            right = run.check(index, content)
            if right:
                # Throughput: replies that came in the window. Latency: in
                # closed loop those replies; in open loop the requests
                # scheduled in the window, whenever their reply came.
                if run.window_start <= now < run.window_end:
                    run.answered_in_window += 1
                counted_at = started if self.open_loop else now
                if run.window_start <= counted_at < run.window_end:
                    run.latencies.append(now - started)
            if not self.open_loop and run.sending:
                self.send_next()
            if self.open_loop and not run.sending and not run.outstanding:
                run.done.set()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    run = Run(load_requests(args.requests), args.expect, args.sample)
    open_loop = args.rate is not None
    clients: list[Client] = []
    for _ in range(args.connections):
        _, client = await asyncio.wait_for(
            loop.create_connection(lambda: Client(run, open_loop), args.host, args.port),
            CONNECT_TIMEOUT,
        )
        clients.append(client)

    started = time.perf_counter()
    run.window_start = started + args.warmup
    run.window_end = run.window_start + args.duration
    send_lag: list[float] = []
    cpu_start: tuple[float, float | None] | None = None
    if open_loop:
        interval = 1.0 / args.rate
        number = 0
        while True:
            due = started + number * interval
            if due >= run.window_end:
                break
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
                now = time.perf_counter()
            # Send everything due by now (the sleep may have overslept).
            while due <= now and due < run.window_end:
                clients[number % len(clients)].send(run.take(), due)
                if run.window_start <= due:
                    send_lag.append(now - due)
                number += 1
                due = started + number * interval
            if cpu_start is None and now >= run.window_start:
                cpu_start = (own_cpu_seconds(), _server_cpu(args.server_pid))
        cpu_end = (own_cpu_seconds(), _server_cpu(args.server_pid))
        if cpu_start is None:
            cpu_start = cpu_end
        run.sending = False
        if run.outstanding:
            try:
                await asyncio.wait_for(run.done.wait(), args.timeout)
            except TimeoutError:
                run.fail("timeout", f"{run.outstanding} replies not in within {args.timeout} s")
    else:
        for client in clients:
            client.send_next()
        await asyncio.sleep(max(0.0, run.window_start - time.perf_counter()))
        cpu_start = (own_cpu_seconds(), _server_cpu(args.server_pid))
        await asyncio.sleep(max(0.0, run.window_end - time.perf_counter()))
        cpu_end = (own_cpu_seconds(), _server_cpu(args.server_pid))
        run.sending = False
    unanswered = run.outstanding
    if open_loop and unanswered:
        # A request never answered waited at least until now: count it so, or
        # the percentiles would describe only the lucky ones.
        now = time.perf_counter()
        for client in clients:
            run.latencies.extend(
                now - started
                for started, _ in client.inflight
                if run.window_start <= started < run.window_end
            )
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    await asyncio.gather(*(client.closed for client in clients))

    latencies = sorted(run.latencies)
    answered = run.answered_in_window

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 4)

    def per_query_us(start: float | None, end: float | None) -> float | None:
        if start is None or end is None or not answered:
            return None
        return round((end - start) / answered * 1e6, 2)

    send_lag.sort()
    lag = None
    if open_loop:
        lag = {"p99": ms(percentile(send_lag, 0.99)), "max": ms(send_lag[-1] if send_lag else None)}
    return {
        "mode": "open" if open_loop else "closed",
        "connections": args.connections,
        "rate_offered": args.rate,
        "duration": args.duration,
        "requests_distinct": len(run.requests),
        "sent": run.sent,
        "answered": answered,
        "measured": len(latencies),
        "unanswered_at_end": unanswered,
        # Unanswered requests count with the time they had waited by the end:
        # the percentiles they reach are then lower bounds.
        "latency_is_lower_bound": bool(open_loop and unanswered),
        "queries_per_second": round(answered / args.duration, 2),
        "passes_over_list": round(run.sent / len(run.requests), 2),
        "latency_ms": {
            "p50": ms(percentile(latencies, 0.50)),
            "p90": ms(percentile(latencies, 0.90)),
            "p99": ms(percentile(latencies, 0.99)),
            "max": ms(latencies[-1] if latencies else None),
        },
        "send_lag_ms": lag,
        "errors": dict(run.errors),
        "first_error": run.first_error,
        "server_cpu_us_per_query": per_query_us(cpu_start[1], cpu_end[1]),
        "loadgen_cpu_us_per_query": per_query_us(cpu_start[0], cpu_end[0]),
        "samples": {str(index): body for index, body in sorted(run.samples.items())},
        "event_loop": type(loop).__module__.split(".")[0],
    }


def _server_cpu(pid: int | None) -> float | None:
    return None if pid is None else process_tree_cpu_seconds(pid)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--requests", type=Path, required=True, help="one JSON request a line")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--rate", type=float, help="open loop: requests/s offered")
    parser.add_argument("--timeout", type=float, default=10.0, help="open loop: drain wait")
    parser.add_argument("--server-pid", type=int, help="measure this process tree's CPU")
    parser.add_argument("--expect", choices=("list", "str"), default="list")
    parser.add_argument("--sample", type=int, default=DEFAULT_SAMPLES, help="replies kept whole")
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio event loop")
    parser.add_argument("--output", type=Path, help="write the JSON result here, not on stdout")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runner: Any = asyncio.run
    if not args.no_uvloop:
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            pass
    result = runner(main_async(args))
    text = json.dumps(result, ensure_ascii=False)
    if args.output is not None:
        # A file, not stdout: after an event loop has run, stdout may be a
        # non-blocking pipe on which a long write is cut short.
        args.output.write_text(text + "\n", encoding="utf-8")
    else:
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
