"""The worker threads' pool: jobs run off the event loop, at most so many at
once, and a thread takes its next job without waiting for the loop."""

from __future__ import annotations

import threading
import time

import pytest
import trio
import trio.testing

from trio_search import _thread_pool
from trio_search._thread_pool import JobNotWanted, ThreadPool


async def test_work_runs_in_another_thread_and_its_result_or_error_comes_back() -> None:
    pool = ThreadPool(2)
    assert await pool.run(threading.get_ident) != threading.get_ident()

    def broken() -> None:
        raise KeyError("from the thread")

    with pytest.raises(KeyError, match="from the thread"):
        await pool.run(broken)


async def test_no_more_jobs_run_at_once_than_the_pool_has_threads() -> None:
    pool = ThreadPool(2)
    lock = threading.Lock()
    running = most = 0

    def job() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(pool.run, job)
    assert most == 2


async def test_a_thread_takes_its_next_job_while_the_event_loop_is_busy() -> None:
    # The point of the pool: with trio.to_thread and a limiter, a queued job
    # started only once the event loop had run its task, so a loop busy
    # answering other connections kept the threads idle.
    pool = ThreadPool(1)
    gate = threading.Event()
    started: list[float] = []

    def job() -> None:
        started.append(time.monotonic())
        assert gate.wait(10)

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(pool.run, job)
        await trio.testing.wait_all_tasks_blocked()  # one job runs, three queued
        busy_from = time.monotonic()
        gate.set()
        time.sleep(0.3)  # noqa: ASYNC251 (the event loop busy, as with inline queries)
        busy_until = time.monotonic()
    assert len(started) == 4
    assert all(busy_from <= moment < busy_until for moment in started[1:])


async def test_a_job_cancelled_while_queued_never_runs_and_a_running_one_is_waited_for() -> None:
    pool = ThreadPool(1)
    gate = threading.Event()
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        assert gate.wait(10)

    def second() -> None:
        ran.append("second")

    with trio.move_on_after(0.05) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pool.run, first)
            await trio.sleep(0.01)
            nursery.start_soon(pool.run, second)
            threading.Timer(0.2, gate.set).start()
    assert scope.cancelled_caught
    # The scope ended only once the running job had finished.
    assert gate.is_set()
    await pool.run(lambda: None)  # the thread has passed the dropped job
    assert ran == ["first"]


async def test_work_no_longer_wanted_is_skipped() -> None:
    pool = ThreadPool(1)
    ran: list[bool] = []
    with pytest.raises(JobNotWanted):
        await pool.run(lambda: ran.append(True), wanted=lambda: False)
    assert ran == []


async def test_idle_threads_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_thread_pool, "IDLE_THREAD_SECONDS", 0.05)
    pool = ThreadPool(2)
    used: set[int] = set()

    def job() -> None:
        used.add(threading.get_ident())
        time.sleep(0.02)

    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(pool.run, job)
    assert used

    def alive() -> list[threading.Thread]:
        return [thread for thread in threading.enumerate() if thread.ident in used]

    with trio.fail_after(5):
        while alive():  # noqa: ASYNC110 (threads have no Trio event)
            await trio.sleep(0.01)


async def test_a_thread_that_cannot_start_drops_its_job(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = ThreadPool(1)

    def refuse(_thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    ran: list[str] = []
    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", refuse)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            await pool.run(lambda: ran.append("refused"))
    # The next job starts a thread, which passes the dropped job by.
    with trio.fail_after(5):
        await pool.run(lambda: ran.append("next"))
    assert ran == ["next"]


async def test_queued_counts_the_jobs_still_waiting_and_running_those_running() -> None:
    pool = ThreadPool(1)
    gate, first_started = threading.Event(), threading.Event()

    def first() -> None:
        first_started.set()
        assert gate.wait(10)

    second = trio.CancelScope()

    async def run_second() -> None:
        with second:
            await pool.run(lambda: None)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pool.run, first)
        await trio.to_thread.run_sync(first_started.wait)
        nursery.start_soon(run_second)
        await trio.testing.wait_all_tasks_blocked()
        assert (pool.running, pool.queued) == (1, 1)
        # Cancelled while queued: no longer counted, though no thread has
        # passed its job by yet.
        second.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert (pool.running, pool.queued) == (1, 0)
        gate.set()
    assert (pool.running, pool.queued) == (0, 0)


async def test_a_failing_wait_counter_does_not_lose_the_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_counter(_seconds: float) -> None:
        raise ValueError("metrics bug")

    pool = ThreadPool(1, waited=broken_counter)
    with trio.fail_after(5):
        assert await pool.run(lambda: "answered") == "answered"
    assert "counting a worker thread's wait failed" in caplog.text
