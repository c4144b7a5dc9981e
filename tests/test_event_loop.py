"""Nothing that can block runs on the server's event loop: file system calls,
subprocesses and blocking locks go to a worker thread.

Most of these calls take microseconds on a local disk, so a test cannot
time them; it records the thread they ran on instead (the event loop runs
in the main thread here, worker threads do not). One exception: a lock held
elsewhere blocks for as long as it is held, which a heartbeat task sees.
"""

from __future__ import annotations

import fcntl
import functools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tests.helpers import start_server
from tests.test_reload import make_index
from trio_search import (
    SearchIndex,
    SearchServer,
    ServerSettings,
    _engine,
    _metrics_aggregate,
    _server,
)
from trio_search._http_metrics import serve_metrics
from trio_search._limits import INDEX_POLL_INTERVAL, TRIM_AFTER_BYTES, TRIM_CHECK_INTERVAL
from trio_search._metrics import Metrics
from trio_search._metrics_aggregate import AGGREGATE_LOCK_FILE, aggregate, write_snapshots


def on_the_loop() -> bool:
    return threading.current_thread() is threading.main_thread()


def recording(calls: list[bool], function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, noting in ``calls`` for each call whether it ran on the loop."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(on_the_loop())
        return function(*args, **kwargs)

    return wrapper


async def test_the_index_poll_stats_the_directory_in_a_worker_thread(
    tmp_path: Path,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # _follow_commits called index.replaced_on_disk() (three stat calls) on
    # the event loop every INDEX_POLL_INTERVAL: a disk that hangs (NFS)
    # would hang every connection, four times a second.
    directory = tmp_path / "index"
    make_index(directory, [{"key": "neo", "answer": "There is no spoon."}])
    index = SearchIndex.open(directory)
    calls: list[bool] = []
    monkeypatch.setattr(_engine, "commit_stamp", recording(calls, _engine.commit_stamp))
    await start_server(nursery, SearchServer(ServerSettings(port=0), index))
    while len(calls) < 4:  # two polls at least  # noqa: ASYNC110
        await trio.sleep(INDEX_POLL_INTERVAL)
    assert not any(calls), f"{calls.count(True)} of {len(calls)} stat rounds on the event loop"


async def test_freed_memory_is_trimmed_in_a_worker_thread(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # trim() runs ctypes.util.find_library("c"), which spawns and waits for
    # `ldconfig -p` (1.2-1.9 ms here), then malloc_trim (a few ms on a large
    # heap): both on the event loop, after every peak of buffered requests.
    calls: list[bool] = []
    monkeypatch.setattr(_server, "trim", recording(calls, lambda: False))
    server, _ = await start_server(nursery)
    budget = server._budget
    budget.adjust(TRIM_AFTER_BYTES)  # a burst of large requests...
    budget.adjust(-TRIM_AFTER_BYTES)  # ...now over
    while not calls:  # noqa: ASYNC110
        await trio.sleep(TRIM_CHECK_INTERVAL)
    assert calls == [False]


async def test_metrics_snapshots_are_written_in_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A --workers worker wrote its snapshot file (write, os.replace) on the
    # event loop that serves its clients, every SNAPSHOT_INTERVAL. (Real
    # time: an autojump clock would jump while a write is in its thread.)
    calls: list[bool] = []
    monkeypatch.setattr(
        _metrics_aggregate,
        "write_snapshot_file",
        recording(calls, _metrics_aggregate.write_snapshot_file),
    )
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            writer = functools.partial(write_snapshots, interval=0.01)
            path = await nursery.start(writer, tmp_path, Metrics().snapshot)
            while len(calls) < 3:  # noqa: ASYNC110
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
            written = len(calls)
    # The last one, once cancelled; and a write the cancel found in flight
    # may have begun in its thread (noted in ``calls``) only after
    # ``written`` was read.
    assert len(calls) in (written + 1, written + 2)
    assert not any(calls), f"{calls.count(True)} of {len(calls)} writes on the event loop"
    assert path.exists()


async def test_a_supervisor_scrape_waits_for_the_aggregate_lock_off_the_loop(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    # The supervisor's /metrics called aggregate() on its event loop, which
    # waits for an exclusive flock that every worker takes once a second
    # (for its `stats` totals). A worker stopped while holding it (SIGSTOP,
    # a debugger, a hung disk) froze the supervisor: no signal was handled,
    # no worker restarted, until the lock came free.
    held = 1.5
    lock = os.open(tmp_path / AGGREGATE_LOCK_FILE, os.O_WRONLY | os.O_CREAT, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX)
    release = threading.Timer(held, os.close, (lock,))
    release.start()
    try:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        scrape = functools.partial(aggregate, tmp_path)
        ((host, port),) = await nursery.start(
            functools.partial(serve_metrics, blocking=True), listeners, scrape
        )
        longest_gap = 0.0

        async def heartbeat() -> None:
            nonlocal longest_gap
            last = time.monotonic()
            while True:
                await trio.sleep(0.01)
                now = time.monotonic()
                longest_gap = max(longest_gap, now - last)
                last = now

        async def scrape_once() -> bytes:
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while b"\r\n\r\n" not in data:
                    data += await stream.receive_some(65536)
                return data

        with trio.fail_after(10):
            async with trio.open_nursery() as watch:
                watch.start_soon(heartbeat)
                answer = await scrape_once()
                watch.cancel_scope.cancel()
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert longest_gap < held / 3, f"the event loop stood still for {longest_gap:.2f} s"
    finally:
        release.join()
