"""Nothing that can block runs on the server's event loop: file system calls,
subprocesses and blocking locks go to a worker thread.

Most of these calls take microseconds on a local disk, so a test cannot
time them; it records the thread they ran on instead (the event loop runs
in the main thread here, worker threads do not). One exception: a lock held
elsewhere blocks for as long as it is held, which a heartbeat task sees.
"""

from __future__ import annotations

import functools
import threading
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
from trio_search._limits import INDEX_POLL_INTERVAL, TRIM_AFTER_BYTES, TRIM_CHECK_INTERVAL
from trio_search._metrics import Metrics
from trio_search._metrics_aggregate import write_snapshots


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
    assert len(calls) == written + 1  # the last one, once cancelled
    assert not any(calls), f"{calls.count(True)} of {len(calls)} writes on the event loop"
    assert path.exists()
