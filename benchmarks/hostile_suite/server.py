"""``trio-search-server`` as a subprocess, and what it costs while attacked.

The server is started on 127.0.0.1, port 0; its address is read from the
"trio-search-server listening on HOST:PORT" stdout line. A task polls
``/proc/PID/status`` (VmRSS) of the server and every descendant
(``--workers``) so a peak between polls is missed by at most
:data:`RSS_POLL_INTERVAL`; VmHWM, the kernel's own peak, is read too. The
server's stderr (its log) is counted, bytes and lines, not kept whole.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import attrs
import trio

HOST = "127.0.0.1"
#: Seconds between RSS polls.
RSS_POLL_INTERVAL = 0.02
#: Seconds the server gets to print its listening line(s).
START_TIMEOUT = 20.0
#: Seconds the server gets to exit after a signal, before it is killed.
EXIT_TIMEOUT = 15.0
LISTENING = re.compile(rb"trio-search-server listening on \[?([^\s\]]+?)\]?:(\d+)")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_KB = 1024


def server_command() -> list[str]:
    """The ``trio-search-server`` console script next to this Python, or
    ``python -m`` when there is none."""
    script = shutil.which("trio-search-server", path=os.path.dirname(sys.executable))
    if script is None:
        return [sys.executable, "-m", "trio_search._server_cli"]
    return [script]


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (workers), from /proc."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        with suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with suppress(OSError):
                    text = Path(f"/proc/{current}/task/{task}/children").read_text()
                    found += [int(child) for child in text.split()]
    return found


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_percent(start: tuple[int, int], end: tuple[int, int]) -> float:
    """Share of all CPUs busy between two :func:`machine_cpu` readings."""
    busy, total = end[0] - start[0], end[1] - start[1]
    return round(100 * busy / total, 1) if total else 0.0


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # Fields after the command: state is [0], utime [11], stime [12],
    # cutime [13], cstime [14].
    return sum(int(value) for value in fields[11:15]) / _CLOCK_TICKS


@attrs.define(eq=False)
class Server:
    """A running server, its address, and counters of what it has used."""

    process: trio.Process
    options: tuple[str, ...]
    host: str = HOST
    port: int = 0
    tls: bool = False
    log_bytes: int = 0
    log_lines: int = 0
    stdout: bytearray = attrs.field(factory=bytearray)
    #: Highest summed VmRSS seen since the last :meth:`reset_peak`, in KiB.
    peak_rss_kb: int = 0
    #: The last 4 KiB of the log, for a report when something fails.
    log_tail: bytearray = attrs.field(factory=bytearray)
    _exited_cpu: dict[int, float] = attrs.field(factory=dict)
    _last_cpu: dict[int, float] = attrs.field(factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def pids(self) -> list[int]:
        return _descendants(self.pid) if self.alive else []

    def rss_kb(self) -> int:
        """VmRSS of the server and its workers now, summed, in KiB."""
        return sum(_status_kb(pid, "VmRSS") for pid in self.pids())

    def hwm_kb(self) -> int:
        """VmHWM (the kernel's peak RSS) summed over the processes alive now."""
        return sum(_status_kb(pid, "VmHWM") for pid in self.pids())

    def cpu_seconds(self) -> float:
        """CPU seconds of the server and every worker so far (a worker that
        exited keeps its last reading)."""
        for pid in self.pids():
            self._last_cpu[pid] = _cpu_seconds(pid)
        return sum(self._last_cpu.values())

    def reset_peak(self) -> None:
        self.peak_rss_kb = self.rss_kb()

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.alive:
            self.process.send_signal(signum)

    async def poll_rss(self) -> None:
        """Track the peak RSS until cancelled."""
        while self.alive:
            self.cpu_seconds()
            self.peak_rss_kb = max(self.peak_rss_kb, self.rss_kb())
            await trio.sleep(RSS_POLL_INTERVAL)

    async def count_log(self, stream: trio.abc.ReceiveStream) -> None:
        while chunk := await stream.receive_some(65536):
            self.log_bytes += len(chunk)
            self.log_lines += chunk.count(b"\n")
            self.log_tail += chunk
            del self.log_tail[:-4096]

    async def read_stdout(self, stream: trio.abc.ReceiveStream, listening: trio.Event) -> None:
        while chunk := await stream.receive_some(65536):
            self.stdout += chunk
            match = LISTENING.search(self.stdout)
            if match and not listening.is_set():
                self.port = int(match[2])
                listening.set()

    async def wait_exit(self, within: float = EXIT_TIMEOUT) -> int | None:
        """The exit status, or ``None`` if it did not exit within ``within`` s."""
        with trio.move_on_after(within):
            return await self.process.wait()
        return None


@asynccontextmanager
async def running_server(
    *options: str, tls_files: tuple[str, str] | None = None
) -> AsyncIterator[Server]:
    """Run ``trio-search-server --host 127.0.0.1 --port 0 *options`` (with TLS
    when ``tls_files`` is ``(cert, key)``); kill it and its workers on exit."""
    command = [*server_command(), "--host", HOST, "--port", "0", *options]
    if tls_files is not None:
        command += ["--tls-cert", tls_files[0], "--tls-key", tls_files[1]]
    process = await trio.lowlevel.open_process(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    server = Server(process, tuple(options), tls=tls_files is not None)
    listening = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.read_stdout, process.stdout, listening)
            nursery.start_soon(server.count_log, process.stderr)
            with trio.move_on_after(START_TIMEOUT):
                await listening.wait()
            if not listening.is_set():
                raise RuntimeError(
                    f"server did not start: {bytes(server.stdout)!r} {bytes(server.log_tail)!r}"
                )
            nursery.start_soon(server.poll_rss)
            try:
                yield server
            finally:
                with trio.CancelScope(shield=True):
                    workers = server.pids()[1:]
                    if server.alive:
                        process.kill()
                    await server.wait_exit(EXIT_TIMEOUT)
                    for pid in workers:
                        with suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    # Let the log readers take what is left, briefly.
                    await trio.sleep(0.1)
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.stdout.aclose()
            await process.stderr.aclose()
