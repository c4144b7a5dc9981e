"""Worker threads that take their next job themselves, not from the event loop.

Theory of operation
-------------------

Answers that would stall the event loop (costly queries, large requests'
decoding) run in worker threads, two at most (``DECODE_THREADS``, one per
core). With ``trio.to_thread.run_sync`` under a ``CapacityLimiter``, a
thread's next job can only start once the event loop has run the task
that waits for it: the limiter's token is taken, the thread is handed its
job, and the token is given back, each at a schedule point of the event
loop. Under load the loop takes one turn of every ready task between two
schedule points (each connection answering its cheap queries inline), so
each of those steps waited a few milliseconds. Measured at 64 connections
of misspelt queries on 1,000,000 documents: a query handed to a thread
spent 2 ms there and held its token about 10 ms, so the two threads were
busy a fifth of the time while the queries queued for them 0.4 s.

Here a thread that finishes a job takes the next one from a queue at once;
only the result waits for the event loop (``run_sync_soon``, which
reschedules the waiting task). A job still queued when its task is
cancelled (the request timeout, a shutdown) is dropped; one already
running is waited for, as ``trio.to_thread.run_sync`` waits, so no work
outlives the task that asked for it. Before a job runs, the thread asks
whether it is still wanted (the client may have gone while it queued).

Threads start when jobs come and none is idle, up to ``threads``, and end
after ``IDLE_THREAD_SECONDS`` without work, so an idle server (or a library
user's process) holds none.
"""

from __future__ import annotations

import collections
import enum
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import outcome
import trio

from ._log import logger

T = TypeVar("T")

#: Seconds a worker thread waits for a job before it ends: as long as
#: Trio's own thread cache keeps an idle thread.
IDLE_THREAD_SECONDS = 10.0


class JobNotWanted(Exception):
    """The job's ``wanted()`` said no when a thread was about to run it."""


class _State(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DROPPED = "dropped"


@attrs.define(eq=False)
class _Job:
    work: Callable[[], Any]
    wanted: Callable[[], bool]
    started: Callable[[], object] | None
    task: trio.lowlevel.Task
    token: trio.lowlevel.TrioToken
    queued_at: float = attrs.field(factory=time.monotonic)
    state: _State = _State.QUEUED


@attrs.define(eq=False)
class ThreadPool:
    """At most ``threads`` worker threads, fed by one queue.

    Args:
        threads: How many jobs run at once.
        waited: Called in the worker thread, as each job starts, with the
            seconds it waited in the queue (for metrics); must not block.
    """

    threads: int
    waited: Callable[[float], object] | None = None
    #: The queued jobs, and the counts below: all under ``_ready``'s lock,
    #: so that a job never waits while a thread could take it.
    _jobs: collections.deque[_Job] = attrs.field(factory=collections.deque, init=False)
    _ready: threading.Condition = attrs.field(factory=threading.Condition, init=False)
    #: Threads running, and those of them waiting for a job.
    _live: int = attrs.field(default=0, init=False)
    _idle: int = attrs.field(default=0, init=False)
    #: Jobs running now, and jobs queued that no cancel has dropped.
    _running: int = attrs.field(default=0, init=False)
    _waiting: int = attrs.field(default=0, init=False)

    @property
    def running(self) -> int:
        """How many jobs run now."""
        return self._running

    @property
    def queued(self) -> int:
        """How many jobs wait for a thread (not those cancelled meanwhile)."""
        return self._waiting

    async def run(
        self,
        work: Callable[[], T],
        wanted: Callable[[], bool] = lambda: True,
        started: Callable[[], object] | None = None,
    ) -> T:
        """Run ``work()`` in a worker thread and return what it returns (or
        raise what it raises).

        ``wanted()`` is called in the thread just before ``work``; if it
        returns false, ``work`` is skipped and :class:`JobNotWanted` raised.
        Neither may call Trio. ``started()``, if given, is called on the
        event loop once a thread is the job's: here, if one is free (the
        job then leaves the queue at once), else soon after a thread took
        it. Cancelled while queued, the job is dropped; while running, it
        is waited for (the cancellation then comes at the caller's next
        checkpoint).

        Raises:
            RuntimeError: a thread was needed and could not be started
                (the job is dropped).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        job = _Job(
            work,
            wanted,
            started,
            trio.lowlevel.current_task(),
            trio.lowlevel.current_trio_token(),
        )
        with self._ready:
            self._jobs.append(job)
            self._waiting += 1
            # A thread is free for it, or one more is started for it.
            at_once = len(self._jobs) <= self._idle
            if not at_once and self._live < self.threads:
                thread = threading.Thread(
                    target=self._serve, name="trio_search worker", daemon=True
                )
                try:
                    thread.start()
                except BaseException:
                    # (RuntimeError: the process may start no more threads.)
                    # Nobody will wait for the job: no thread may take it.
                    job.state = _State.DROPPED
                    self._waiting -= 1
                    raise
                self._live += 1
                at_once = True
            if at_once:
                job.started = None  # said here, not from the thread
            self._ready.notify()
        if at_once and started is not None:
            started()

        def abort(_raise_cancel: Any) -> trio.lowlevel.Abort:
            with self._ready:
                if job.state is _State.QUEUED:
                    job.state = _State.DROPPED
                    self._waiting -= 1
                    return trio.lowlevel.Abort.SUCCEEDED
            return trio.lowlevel.Abort.FAILED

        # The thread reschedules this task with the job's outcome, unwrapped here.
        result: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return result

    def _serve(self) -> None:
        """A worker thread: run jobs until none comes for a while."""
        while True:
            with self._ready:
                self._idle += 1
                ends = time.monotonic() + IDLE_THREAD_SECONDS
                while not self._jobs:
                    left = ends - time.monotonic()
                    if left <= 0:
                        self._idle -= 1
                        self._live -= 1
                        return
                    self._ready.wait(left)
                job = self._jobs.popleft()
                self._idle -= 1
                if job.state is _State.DROPPED:
                    continue
                job.state = _State.RUNNING
                self._waiting -= 1
                self._running += 1
            if job.started is not None:
                job.token.run_sync_soon(job.started)
            if self.waited is not None:
                try:
                    self.waited(time.monotonic() - job.queued_at)
                except Exception:
                    # A bug in the metrics must not leave the job unanswered.
                    logger.exception("counting a worker thread's wait failed")
            result = outcome.capture(self._run, job)
            with self._ready:
                self._running -= 1
            job.token.run_sync_soon(trio.lowlevel.reschedule, job.task, result)
            del job, result  # nothing of the job kept alive while waiting

    @staticmethod
    def _run(job: _Job) -> Any:
        if not job.wanted():
            raise JobNotWanted
        return job.work()
