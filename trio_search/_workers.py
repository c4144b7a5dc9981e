"""Several server processes on one port: SO_REUSEPORT listeners and their supervisor.

Theory of operation
-------------------

``trio-search-server --workers N`` runs :func:`supervise` in the parent
process. It first binds, without listening, a SO_REUSEPORT socket on each
configured address. That is the "address in use" check before any worker
starts, and with ``--port 0`` it picks the one port every worker then shares.
The parent keeps those sockets bound until it exits, so the port stays
reserved while workers restart; as they never listen, the kernel never hands
them a connection.

Each worker is ``trio-search-server`` again, run with the chosen port and the
hidden ``--worker K`` option: it listens with SO_REUSEPORT, so the kernel
spreads new connections over the workers that listen, and then writes to a
pipe the parent passed it (``--ready-fd``) as the sign that it serves; the
parent drains its stdout so that it never blocks. Workers run in a session
of their own, so Ctrl-C at a terminal reaches the parent only and each
worker gets exactly one SIGTERM, forwarded by the parent. A worker's stdin
is a pipe from the parent: its end of file tells the worker that the parent
is gone, even after SIGKILL, and the worker shuts down gracefully
(:func:`watch_supervisor`).

One task per worker slot starts the worker, waits for it to exit and starts
it again after a back-off that doubles with each crash, so a crash loop costs
one start per :data:`RESTART_DELAY_MAX` at most. The first SIGINT or SIGTERM
sends SIGTERM to every worker and stops the restarts; :func:`supervise`
returns once every worker has exited and been reaped. A second signal sends
SIGKILL. SIGHUP is passed on to every worker that listens (each reloads its
data); a worker still starting loads the newest data anyway.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import attrs
import trio

from ._errors import TrioSearchError
from ._http_metrics import open_metrics_listeners, serve_metrics
from ._listeners import bind_sockets
from ._log import logger
from ._metrics_aggregate import aggregate

#: Most worker processes ``--workers`` starts. More than one per core only
#: adds context switches (docs/performance.md), and each is a whole process
#: started at once: about 28 MB at rest, plus its own copy of ``--data``'s
#: index. Above the cores of most machines that serve this, so a larger
#: number is a slip (``--workers 1000``), refused before any process starts.
MAX_WORKERS = 64

#: Seconds a worker has, from its start, to print its "listening on" line;
#: past that it is killed and counts as a crash. Python's start-up and our
#: imports take well under a second; the rest is room for a loaded machine.
WORKER_START_TIMEOUT = 30.0

#: Seconds before a crashed worker is started again, after its first crash:
#: short, so a one-off crash is back in service almost at once.
RESTART_DELAY_INITIAL = 0.25

#: Longest restart delay, in seconds: the delay doubles with each crash up
#: to this, so a worker that crashes at once costs one start per period.
RESTART_DELAY_MAX = 30.0

#: Seconds a worker must have run for its crash to count as a one-off: the
#: back-off starts again from :data:`RESTART_DELAY_INITIAL`.
WORKER_STABLE_AFTER = 60.0

#: Bytes read per call from a worker's stdout and its ready pipe.
WORKER_OUTPUT_CHUNK = 4096


class WorkerStartupError(TrioSearchError):
    """A worker exited, or hung, before it was listening."""

    default_code = "worker_startup"


async def watch_supervisor(on_gone: Callable[[], object]) -> None:
    """In a worker: call ``on_gone`` once the supervisor has gone.

    The supervisor holds the other end of the worker's stdin and never
    writes to it; end of file there means the parent exited, however it did.
    Returns after calling ``on_gone``; cancel it to stop watching.
    """
    async with trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as stdin:
        while await stdin.receive_some(WORKER_OUTPUT_CHUNK):
            pass
    logger.warning("supervisor gone: shutting down")
    on_gone()


def describe_exit(returncode: int) -> str:
    """``exit status 1`` or ``killed by SIGKILL``, for logs."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"killed by {name}"


def restart_delay(crashes: int) -> float:
    """Seconds to wait before the next start after ``crashes`` crashes in a
    row (at least 1): doubling from :data:`RESTART_DELAY_INITIAL`, capped."""
    return min(RESTART_DELAY_MAX, RESTART_DELAY_INITIAL * 2.0 ** min(crashes - 1, 32))


@attrs.define(eq=False)
class Supervisor:
    """Runs ``count`` worker processes and keeps them running until a signal.

    Args:
        command: The command line of worker number K (from 1) that reports
            it listens on the given file descriptor.
        count: How many workers run at once.
    """

    command: Callable[[int, int], Sequence[str]]
    count: int
    _processes: dict[int, trio.Process] = attrs.field(factory=dict, init=False)
    _ready: set[int] = attrs.field(factory=set, init=False)
    #: Worker processes that have said they listen (and so handle SIGHUP).
    _listening: set[trio.Process] = attrs.field(factory=set, init=False)
    #: Worker processes still starting (loading their data) when a SIGHUP
    #: came: it is passed on once they listen, since the data may have
    #: changed after they read it.
    _reload_when_listening: set[trio.Process] = attrs.field(factory=set, init=False)
    #: Set once every worker listens, or startup failed, or a stop began.
    _settled: trio.Event = attrs.field(factory=trio.Event, init=False)
    _stopping: trio.Event = attrs.field(factory=trio.Event, init=False)
    _killing: bool = attrs.field(default=False, init=False)
    _startup_failure: str | None = attrs.field(default=None, init=False)

    async def run(self, on_ready: Callable[[], object]) -> None:
        """Start the workers, call ``on_ready`` once all of them listen, then
        keep them running until SIGINT/SIGTERM; return once all have exited.

        Raises:
            WorkerStartupError: a worker exited, or did not listen within
                :data:`WORKER_START_TIMEOUT`, before all were listening. The
                other workers have been stopped.
        """
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_signals, signals)
                async with trio.open_nursery() as workers:
                    for number in range(1, self.count + 1):
                        workers.start_soon(self._keep_running, number)
                    await self._settled.wait()
                    if self._startup_failure is None and not self._stopping.is_set():
                        logger.info("all %d workers listening", self.count)
                        on_ready()
                # Every worker has exited: stop watching for signals.
                nursery.cancel_scope.cancel()
        if self._startup_failure is not None:
            raise WorkerStartupError(self._startup_failure)
        logger.info("all workers stopped")

    def stop(self) -> None:
        """Stop gracefully: SIGTERM to every worker, no more restarts."""
        self._stopping.set()
        self._settled.set()
        for process in self._processes.values():
            process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Stop at once: SIGKILL to every worker, no more restarts."""
        self._killing = True
        self.stop()
        for process in self._processes.values():
            process.kill()

    async def _watch_signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if signum == signal.SIGHUP:
                logger.info("SIGHUP received: every worker reloads its data")
                for process in list(self._processes.values()):
                    if process in self._listening:
                        process.send_signal(signal.SIGHUP)
                    else:
                        self._reload_when_listening.add(process)
                continue
            if self._stopping.is_set():
                logger.warning("%s again: killing the workers", name)
                self.kill()
            else:
                logger.info("%s received: stopping the workers gracefully", name)
                self.stop()

    async def _keep_running(self, number: int) -> None:
        crashes = 0
        while not self._stopping.is_set():
            started_at = trio.current_time()
            ending = await self._run_once(number)
            if self._stopping.is_set():
                break
            if not self._settled.is_set():
                self._startup_failure = f"worker {number} {ending} before it was listening"
                logger.error("%s; stopping the other workers", self._startup_failure)
                self.stop()
                break
            if trio.current_time() - started_at >= WORKER_STABLE_AFTER:
                crashes = 0
            crashes += 1
            delay = restart_delay(crashes)
            logger.error(
                "worker %d %s (crash %d in a row); restarting in %g s",
                number,
                ending,
                crashes,
                delay,
            )
            with trio.move_on_after(delay):
                await self._stopping.wait()

    async def _run_once(self, number: int) -> str:
        """Run worker ``number`` until it exits; describe how it ended."""
        # The worker says it listens by writing to this pipe (--ready-fd),
        # not in a line of text meant for people.
        ready_read, ready_write = os.pipe()
        try:
            process = await trio.lowlevel.open_process(
                list(self.command(number, ready_write)),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
                pass_fds=(ready_write,),
            )
        except OSError as exc:
            os.close(ready_read)
            return f"could not be started: {exc}"
        except BaseException:
            # Cancelled while starting it (a signal), or a bug of ours.
            os.close(ready_read)
            raise
        finally:
            os.close(ready_write)
        ready = trio.lowlevel.FdStream(ready_read)
        self._processes[number] = process
        try:
            if self._killing:
                process.kill()
            elif self._stopping.is_set():
                process.send_signal(signal.SIGTERM)
            logger.info("worker %d started (pid %d)", number, process.pid)
            async with trio.open_nursery() as nursery:
                settled = trio.Event()
                nursery.start_soon(self._drain_output, process)
                nursery.start_soon(self._wait_until_ready, number, process, ready, settled)
                with trio.move_on_after(WORKER_START_TIMEOUT) as timer:
                    await settled.wait()
                if timer.cancelled_caught:
                    logger.error(
                        "worker %d (pid %d) not listening after %g s; killing it",
                        number,
                        process.pid,
                        WORKER_START_TIMEOUT,
                    )
                    process.kill()
                await process.wait()
        except BaseException:
            # Cancelled, or a bug of ours: no worker outlives its task.
            process.kill()
            raise
        finally:
            # Reap the process (killed above unless it had exited), then
            # close our ends of its pipes.
            with trio.CancelScope(shield=True):
                returncode = await process.wait()
                for pipe in (process.stdin, process.stdout, ready):
                    if pipe is not None:
                        await pipe.aclose()
            del self._processes[number]
            self._listening.discard(process)
            self._reload_when_listening.discard(process)
        return f"(pid {process.pid}) {describe_exit(returncode)}"

    def _worker_listening(self, number: int, pid: int) -> None:
        logger.info("worker %d (pid %d) listening", number, pid)
        self._ready.add(number)
        if len(self._ready) == self.count:
            self._settled.set()

    async def _drain_output(self, process: trio.Process) -> None:
        """Read the worker's stdout to its end, so the worker never blocks on it."""
        assert process.stdout is not None
        try:
            while await process.stdout.receive_some(WORKER_OUTPUT_CHUNK):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _wait_until_ready(
        self, number: int, process: trio.Process, ready: trio.abc.ReceiveStream, settled: trio.Event
    ) -> None:
        """Set ``settled`` once the worker writes to its ready pipe (it
        listens) or closes it unwritten (it failed, or exited)."""
        try:
            if await ready.receive_some(WORKER_OUTPUT_CHUNK):
                self._listening.add(process)
                self._worker_listening(number, process.pid)
                if process in self._reload_when_listening:
                    self._reload_when_listening.discard(process)
                    logger.info(
                        "worker %d (pid %d): passing on the SIGHUP that came while it started",
                        number,
                        process.pid,
                    )
                    process.send_signal(signal.SIGHUP)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            settled.set()


async def supervise(
    worker_argv: Sequence[str],
    count: int,
    host: str | None,
    port: int,
    on_ready: Callable[[list[tuple[str, int]]], object],
    metrics_address: tuple[str, int] | None = None,
) -> None:
    """Serve with ``count`` worker processes sharing ``host``:``port``.

    Every worker writes its counters into a directory made for the run
    (``--metrics-dir``, see trio_search._metrics_aggregate), so that its
    ``stats`` answer and, at ``metrics_address``, one scrape of this
    process give totals across all workers.

    Args:
        worker_argv: The ``trio-search-server`` options every worker gets,
            without the port and the options of the supervisor (--workers,
            --metrics): the chosen port, ``--worker K``, ``--ready-fd`` and
            ``--metrics-dir`` are appended.
        count: How many workers.
        host: Address to listen on; ``None`` is every interface.
        port: TCP port; 0 picks one, shared by every worker.
        on_ready: Called with the ``(host, port)`` of each address once every
            worker listens.
        metrics_address: Serve ``GET /metrics`` here, summed over workers.

    Raises:
        OSError: the address cannot be bound; no worker was started.
        WorkerStartupError: a worker failed before all were listening.
    """
    # Bound here, outside any nursery, so "address in use" arrives as a
    # plain OSError rather than inside an exception group.
    sockets = await bind_sockets(host, port, reuse_port=True)
    try:
        metrics_listeners = (
            await open_metrics_listeners(*metrics_address, port) if metrics_address else []
        )
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    metrics_dir = tempfile.mkdtemp(prefix="trio-search-metrics-")
    try:
        addresses: list[tuple[str, int]] = [_host_port(sock.getsockname()) for sock in sockets]
        chosen_port = addresses[0][1]

        def command(number: int, ready_fd: int) -> list[str]:
            return [
                sys.executable,
                "-m",
                "trio_search._server_cli",
                *worker_argv,
                "--port",
                str(chosen_port),
                "--worker",
                str(number),
                "--ready-fd",
                str(ready_fd),
                "--metrics-dir",
                metrics_dir,
            ]

        supervisor = Supervisor(command, count)
        failed: WorkerStartupError | None = None
        async with trio.open_nursery() as nursery:
            if metrics_listeners:
                # aggregate() waits for a lock the workers take too: in a
                # worker thread, so that this loop goes on handling signals
                # and restarts even while a stopped worker holds it.
                scrape = functools.partial(aggregate, metrics_dir)
                where = await nursery.start(
                    functools.partial(serve_metrics, blocking=True), metrics_listeners, scrape
                )
                for address in where:
                    logger.info("serving metrics of all workers at http://%s:%d/metrics", *address)
            try:
                await supervisor.run(lambda: on_ready(addresses))
            except WorkerStartupError as exc:
                # Raised past the nursery, it would come out in an exception
                # group, which the command does not take for a startup error.
                failed = exc
            nursery.cancel_scope.cancel()
        if failed is not None:
            raise failed
    finally:
        for sock in sockets:
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _host_port(sockname: Any) -> tuple[str, int]:
    return str(sockname[0]), int(sockname[1])
