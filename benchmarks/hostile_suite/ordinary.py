"""The ordinary clients: what a normal user sees while the server is attacked.

:data:`KEEPALIVE_CLIENTS` clients keep one connection each and send varied
``search``/``query`` requests one at a time, :data:`PAUSE` seconds apart;
:data:`ONESHOT_CLIENTS` more open a connection per request (the tutorial's
way). Every request's latency (send to whole answer) is recorded under the
current *phase* ("before", "during", "after"), with its outcome: ``ok``,
``busy`` (the server's busy answer) or ``error`` (any other error answer,
a reset, a refusal, no answer within :data:`REQUEST_TIMEOUT`).
"""

from __future__ import annotations

import itertools
import json
import os
import ssl
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import attrs
import trio

from .wire import ConnectRefused, Reader, connect, error_code, json_request

KEEPALIVE_CLIENTS = 8
ONESHOT_CLIENTS = 3
#: Seconds each client waits between its requests (so the clients are a
#: steady, light load: about 400 requests/s in all, not a benchmark).
PAUSE = 0.02
#: Seconds an ordinary request may take before it counts as an error.
REQUEST_TIMEOUT = 5.0

REQUESTS = [
    json_request({"action": "search", "value": "morpheus"}),
    json_request({"action": "query", "value": "white rabbit"}),
    json_request({"action": "search", "value": "ring"}),
    json_request({"action": "query", "value": "misty mountians"}),
    json_request({"action": "search", "value": "\U0001f436"}),
    json_request({"action": "query", "value": "caves ben", "limit": 5}),
    json_request({"action": "search", "value": "not a key"}),
]


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@attrs.define(eq=False)
class OrdinaryLoad:
    """Runs the ordinary clients and keeps their figures per phase."""

    port: int
    tls: ssl.SSLContext | None = None
    phase: str = "before"
    latencies: dict[str, list[float]] = attrs.field(factory=lambda: defaultdict(list))
    #: The same, per kind of client ("keepalive", "oneshot").
    by_kind: dict[tuple[str, str], list[float]] = attrs.field(factory=lambda: defaultdict(list))
    outcomes: dict[str, Counter[str]] = attrs.field(factory=lambda: defaultdict(Counter))
    errors_seen: Counter[str] = attrs.field(factory=Counter)

    def _record(
        self, phase: str, outcome: str, latency: float | None, what: str = "", kind: str = ""
    ) -> None:
        self.outcomes[phase][outcome] += 1
        if latency is not None and outcome == "ok":
            self.latencies[phase].append(latency)
            self.by_kind[phase, kind].append(latency)
        if what:
            self.errors_seen[what] += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every client until cancelled."""
        async with trio.open_nursery() as nursery:
            for number in range(KEEPALIVE_CLIENTS):
                nursery.start_soon(self._keepalive, number)
            for number in range(ONESHOT_CLIENTS):
                nursery.start_soon(self._oneshot, number)
            task_status.started()

    async def _keepalive(self, number: int) -> None:
        requests = itertools.cycle(REQUESTS[number % len(REQUESTS) :] + REQUESTS)
        while True:
            stream = None
            phase = self.phase
            try:
                with trio.fail_after(REQUEST_TIMEOUT):
                    stream = await connect(self.port, self.tls)
                reader = Reader(stream)
                while True:
                    phase = self.phase
                    started = trio.current_time()
                    with trio.fail_after(REQUEST_TIMEOUT):
                        await stream.send_all(next(requests))
                        answer = await reader.next()
                    latency = trio.current_time() - started
                    if answer is None:
                        self._record(phase, "error", None, "closed without an answer")
                        break
                    code = error_code(answer)
                    if code == "busy":
                        self._record(phase, "busy", latency)
                        break
                    if code is not None:
                        self._record(phase, "error", None, f"error answer {code}")
                    else:
                        self._record(phase, "ok", latency, kind="keepalive")
                    await trio.sleep(PAUSE)
            except trio.TooSlowError:
                self._record(phase, "error", None, "no answer within the timeout")
            except ConnectRefused:
                self._record(phase, "error", None, "connection refused")
            except Exception as exc:  # every failure is counted
                self._record(phase, "error", None, type(exc).__name__)
            finally:
                if stream is not None:
                    with trio.CancelScope(shield=True):
                        await trio.aclose_forcefully(stream)
            await trio.sleep(PAUSE)

    async def _oneshot(self, number: int) -> None:
        requests = itertools.cycle(REQUESTS[number % len(REQUESTS) :] + REQUESTS)
        while True:
            phase = self.phase
            stream = None
            started = trio.current_time()
            try:
                with trio.fail_after(REQUEST_TIMEOUT):
                    stream = await connect(self.port, self.tls)
                    await stream.send_all(next(requests))
                    answer = await Reader(stream).next()
                latency = trio.current_time() - started
                if answer is None:
                    self._record(phase, "error", None, "closed without an answer")
                else:
                    code = error_code(answer)
                    if code == "busy":
                        self._record(phase, "busy", latency)
                    elif code is not None:
                        self._record(phase, "error", None, f"error answer {code}")
                    else:
                        self._record(phase, "ok", latency, kind="oneshot")
            except trio.TooSlowError:
                self._record(phase, "error", None, "no answer within the timeout")
            except ConnectRefused:
                self._record(phase, "error", None, "connection refused")
            except Exception as exc:  # every failure is counted
                self._record(phase, "error", None, type(exc).__name__)
            finally:
                if stream is not None:
                    with trio.CancelScope(shield=True):
                        await trio.aclose_forcefully(stream)
            await trio.sleep(PAUSE)

    def summary(self, phase: str) -> dict[str, Any]:
        """Requests, p50/p99 latency in ms, busy and error counts of ``phase``."""
        latencies = self.latencies.get(phase, [])
        outcomes = self.outcomes.get(phase, Counter())
        p50 = percentile(latencies, 0.50)
        p99 = percentile(latencies, 0.99)

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 2)

        return {
            "keepalive_p99_ms": ms(percentile(self.by_kind.get((phase, "keepalive"), []), 0.99)),
            "oneshot_p99_ms": ms(percentile(self.by_kind.get((phase, "oneshot"), []), 0.99)),
            "requests": sum(outcomes.values()),
            "ok": outcomes["ok"],
            "busy": outcomes["busy"],
            "errors": outcomes["error"],
            "p50_ms": None if p50 is None else round(p50 * 1000, 2),
            "p99_ms": None if p99 is None else round(p99 * 1000, 2),
            "max_ms": None if not latencies else round(max(latencies) * 1000, 2),
            "mean_ms": None if not latencies else round(statistics.fmean(latencies) * 1000, 2),
        }


# --- as a process of its own --------------------------------------------------
#
# The attackers run in the suite's process and can keep its event loop busy
# (sending 900 MB, parsing 100,000 answers); the ordinary clients run in a
# process of their own so that their latency is the server's, not the
# attacker's. The parent writes phase names on stdin ("during", "after",
# "stop"); on "stop" the child prints its figures as one JSON line.


async def _serve_stdin(load: OrdinaryLoad, nursery: trio.Nursery) -> None:
    while True:
        line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        word = line.strip()
        if not word or word == "stop":
            nursery.cancel_scope.cancel()
            return
        load.phase = word


async def _child_main(port: int, cafile: str | None) -> None:
    tls = ssl.create_default_context(cafile=cafile) if cafile else None
    load = OrdinaryLoad(port, tls)
    async with trio.open_nursery() as nursery:
        await nursery.start(load.run)
        print("ready", flush=True)
        nursery.start_soon(_serve_stdin, load, nursery)
    print(
        json.dumps(
            {
                "phases": {phase: load.summary(phase) for phase in ("before", "during", "after")},
                "failures": dict(load.errors_seen),
            }
        ),
        flush=True,
    )


#: The directory holding this package, for the child's PYTHONPATH.
_BENCHMARKS = str(Path(__file__).resolve().parent.parent)


@attrs.define(eq=False)
class OrdinaryProcess:
    """The ordinary clients in a child process; see the comment above."""

    process: trio.Process
    _lines: bytearray = attrs.field(factory=bytearray)

    @classmethod
    async def start(cls, port: int, cafile: str | None) -> OrdinaryProcess:
        command = [sys.executable, "-m", "hostile_suite.ordinary", str(port)]
        if cafile:
            command.append(cafile)
        path = [_BENCHMARKS, os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
        process = await trio.lowlevel.open_process(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self = cls(process)
        with trio.fail_after(20):
            await self._read_line()
        return self

    async def _read_line(self) -> bytes:
        assert self.process.stdout is not None
        while b"\n" not in self._lines:
            chunk = await self.process.stdout.receive_some(65536)
            if not chunk:
                raise RuntimeError(f"ordinary clients exited: {bytes(self._lines)!r}")
            self._lines += chunk
        line, _, rest = bytes(self._lines).partition(b"\n")
        self._lines = bytearray(rest)
        return line

    async def phase(self, name: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(name.encode() + b"\n")

    async def stop(self) -> dict[str, Any]:
        """Stop the clients; their figures per phase, and failures by cause."""
        try:
            await self.phase("stop")
            with trio.fail_after(20):
                figures = json.loads(await self._read_line())
                await self.process.wait()
            return figures
        finally:
            with trio.CancelScope(shield=True):
                if self.process.returncode is None:
                    self.process.kill()
                    await self.process.wait()


if __name__ == "__main__":
    trio.run(_child_main, int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)
