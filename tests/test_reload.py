"""Data that changes while the server runs: SIGHUP reloads, and commits to an
on-disk index followed without a restart.

These use real time (worker threads, file stamps, subprocesses), bounded by
``trio.fail_after``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.helpers import (
    STARTUP_TIMEOUT,
    SUBPROCESS_TIMEOUT,
    ServerProcess,
    server_subprocess,
    start_server,
)
from trio_search import (
    IndexMeta,
    QueryOptions,
    SearchIndex,
    SearchServer,
    ServerSettings,
    open_client,
)
from trio_search._index_meta import write_meta
from trio_search._limits import INDEX_POLL_INTERVAL
from trio_search._schema import create_index, tantivy_document

pytestmark = pytest.mark.slow


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Replace ``path`` atomically, as a careful operator would."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    os.replace(temporary, path)


def version(n: int) -> list[dict[str, Any]]:
    """Data whose every answer says which version it belongs to."""
    return [
        {"key": f"k{i}", "answer": f"answer {i} of version {n}", "body": f"common word{i}"}
        for i in range(50)
    ] + [{"key": f"only-in-{n}", "answer": f"new in version {n}"}]


RELOADED = re.compile(
    rb"INFO trio_search(?:\[worker \d\])?: reloaded: (\d+) documents, generation (\d+)"
)
RELOAD_FAILED = re.compile(rb"ERROR trio_search: reload failed; still serving the previous data")


async def test_sighup_under_load_reloads_with_no_failed_request(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    write_jsonl(data, version(1))
    answered = 0
    versions_seen: set[str] = set()
    async with server_subprocess("--data", str(data)) as server:
        stop = trio.Event()

        async def client(number: int) -> None:
            nonlocal answered
            async with open_client("127.0.0.1", server.port) as c:
                while not stop.is_set():
                    answer = await c.search(f"k{number}")
                    # Every answer is a whole version's: never a mix, never an error.
                    match = re.fullmatch(rf"answer {number} of version (\d+)", answer)
                    assert match, answer
                    versions_seen.add(match[1])
                    hits = await c.request_json({"action": "query", "value": "common"})
                    assert hits["total"] == 50, hits
                    answered += 2

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for number in range(8):
                    nursery.start_soon(client, number)
                for n in (2, 3, 4):
                    await trio.sleep(0.3)
                    write_jsonl(data, version(n))
                    server.signal(signal.SIGHUP)
                    await server.wait_for(RELOADED, count=n - 1)
                await trio.sleep(0.3)
                stop.set()
            async with open_client("127.0.0.1", server.port) as c:
                assert await c.search("only-in-4") == "new in version 4"
                assert await c.search("only-in-1") == "No match for 'only-in-1'."
                stats = (await c.request_json({"action": "stats"}))["result"]
        assert server.process.returncode is None  # SIGHUP never stops it
        server.signal(signal.SIGTERM)
        assert await server.wait() == 0
    assert answered > 100
    assert "4" in versions_seen
    assert stats["index_documents"] == 51
    assert stats["index_generation"] == 4
    assert b"Traceback" not in server.stderr


async def test_failed_reload_keeps_the_old_data_and_logs_one_error(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    write_jsonl(data, version(1))
    async with server_subprocess("--data", str(data)) as server:
        with trio.fail_after(30):
            data.write_text('{"key": "a", "answer": "fine"}\n{"key": "b"}\n', encoding="utf-8")
            server.signal(signal.SIGHUP)
            (failure,) = await server.wait_for(RELOAD_FAILED)
            line = server.stderr[failure.start() :].split(b"\n")[0]
            assert f"{data}:2: no 'answer' field".encode() in line
            async with open_client("127.0.0.1", server.port) as c:
                assert await c.search("k3") == "answer 3 of version 1"
            # Fixed, then reloaded.
            write_jsonl(data, version(2))
            server.signal(signal.SIGHUP)
            await server.wait_for(RELOADED)
            async with open_client("127.0.0.1", server.port) as c:
                assert await c.search("k3") == "answer 3 of version 2"
        server.signal(signal.SIGTERM)
        assert await server.wait() == 0
    assert len(re.findall(rb" ERROR ", server.stderr)) == 1


async def every_worker_answers_from_version_2(server: ServerProcess) -> None:
    for _ in range(10):  # whichever worker the kernel picks
        async with open_client("127.0.0.1", server.port) as c:
            assert await c.search("k1") == "answer 1 of version 2"


async def test_sighup_reaches_every_worker(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    write_jsonl(data, version(1))
    async with server_subprocess("--data", str(data), "--workers", "2") as server:
        with trio.fail_after(60):
            await server.wait_for(re.compile(rb"all 2 workers listening"))
            write_jsonl(data, version(2))
            server.signal(signal.SIGHUP)
            await server.wait_for(RELOADED, count=2)
            await every_worker_answers_from_version_2(server)
        server.signal(signal.SIGTERM)
        assert await server.wait() == 0


#: Documents that take the server a while to index (about 0.5-1 s here),
#: so that a signal sent once indexing has begun lands before it runs.
SLOW_TO_INDEX = 40_000
INDEXING = re.compile(rb"INFO trio_search(?:\[worker \d\])?: indexing ")


def slow_version(n: int) -> list[dict[str, Any]]:
    return version(n) + [
        {"key": f"filler{i}", "answer": f"filler {i}", "body": f"filler text number {i}"}
        for i in range(SLOW_TO_INDEX)
    ]


async def test_a_sighup_during_start_up_reloads_once_the_server_runs(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    write_jsonl(data, slow_version(1))

    async def change_the_data_then_hang_up(server: ServerProcess) -> None:
        # The file changes after the server read it, while it indexes.
        await server.wait_for(INDEXING, within=STARTUP_TIMEOUT)
        write_jsonl(data, version(2))
        server.signal(signal.SIGHUP)

    async with server_subprocess(
        "--data", str(data), before_listening=change_the_data_then_hang_up
    ) as server:
        with trio.fail_after(60):
            await server.wait_for(re.compile(rb"SIGHUP received during start-up: reloading"))
            await server.wait_for(RELOADED)
            async with open_client("127.0.0.1", server.port) as c:
                assert await c.search("k1") == "answer 1 of version 2"
        assert server.process.returncode is None  # not killed by the early SIGHUP


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stop_signal_during_start_up_stops_it_before_serving(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # Several seconds of indexing: the signal lands well before it is done.
    data = tmp_path / "data.jsonl"
    write_jsonl(data, slow_version(1) * 5)

    async def stop_while_indexing(server: ServerProcess) -> None:
        await server.wait_for(INDEXING, within=STARTUP_TIMEOUT)
        server.signal(signum)

    async with server_subprocess(
        "--data", str(data), listeners=0, before_listening=stop_while_indexing
    ) as server:
        with trio.fail_after(SUBPROCESS_TIMEOUT):
            status = await server.wait()
    assert status == 0, bytes(server.stderr)
    assert server.stdout == b""  # it never listened
    said = f"INFO trio_search: {signum.name} received during start-up: stopped before serving\n"
    assert bytes(server.stderr).endswith(said.encode()), bytes(server.stderr)
    assert b"Traceback" not in server.stderr


async def test_a_sighup_while_workers_start_reaches_them_once_they_listen(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    write_jsonl(data, slow_version(1))

    async def change_the_data_then_hang_up(server: ServerProcess) -> None:
        await server.wait_for(INDEXING, count=2, within=STARTUP_TIMEOUT)
        write_jsonl(data, version(2))
        server.signal(signal.SIGHUP)

    async with server_subprocess(
        "--data", str(data), "--workers", "2", before_listening=change_the_data_then_hang_up
    ) as server:
        with trio.fail_after(60):
            await server.wait_for(re.compile(rb"passing on the SIGHUP that came while it started"))
            await server.wait_for(RELOADED, count=2)
            await every_worker_answers_from_version_2(server)
        server.signal(signal.SIGTERM)
        assert await server.wait() == 0


def make_index(path: Path, records: list[dict[str, str]]) -> None:
    """An on-disk index, written with the engine's own pieces."""
    from trio_search import Document

    path.mkdir()
    index = create_index(path)
    writer = index.writer()
    for record in records:
        writer.add_document(tantivy_document(Document(record["key"], record["answer"], record)))
    writer.commit()
    writer.wait_merging_threads()
    write_meta(path, IndexMeta().with_fields(["key", "answer"]))


def commit(path: Path, records: list[dict[str, str]], deletes: list[str] = ()) -> None:  # type: ignore[assignment]
    """What ``trio-search-index add/delete`` does: another writer commits."""
    from trio_search import Document
    from trio_search._schema import open_tantivy_index

    writer = open_tantivy_index(path).writer()
    for key in deletes:
        writer.delete_documents_by_term("key", key)
    for record in records:
        writer.delete_documents_by_term("key", record["key"])
        writer.add_document(tantivy_document(Document(record["key"], record["answer"], record)))
    writer.commit()
    writer.wait_merging_threads()


async def test_commits_to_an_index_are_searched_within_a_second(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    directory = tmp_path / "index"
    make_index(directory, [{"key": "neo", "answer": "There is no spoon."}])
    server = SearchServer(ServerSettings(port=0), SearchIndex.open(directory))
    _, (host, port) = await start_server(nursery, server)
    async with open_client(host, port) as client:
        assert await client.search("trinity") == "No match for 'trinity'."
        # Cache the miss: a cached reply must not outlive the data.
        assert await client.search("trinity") == "No match for 'trinity'."
        with trio.fail_after(10):
            await trio.to_thread.run_sync(
                commit, directory, [{"key": "trinity", "answer": "Dodge this."}]
            )
            committed = time.monotonic()
            # Polling the server is the point here, not a missed event.
            while await client.search("trinity") != "Dodge this.":  # noqa: ASYNC110
                await trio.sleep(0.02)
            seen_after = time.monotonic() - committed
            hits = await client.request_json({"action": "query", "value": "dodge"})
            assert [hit["key"] for hit in hits["result"]] == ["trinity"]
            # A delete too.
            await trio.to_thread.run_sync(commit, directory, [], ["neo"])
            while await client.search("neo") != "No match for 'neo'.":  # noqa: ASYNC110
                await trio.sleep(0.02)
    assert seen_after < 1.0
    index = server.search_index
    assert index is not None and index.documents == 1


async def test_an_index_rebuilt_in_place_is_reopened(tmp_path: Path, nursery: trio.Nursery) -> None:
    directory = tmp_path / "index"
    make_index(directory, [{"key": "neo", "answer": "There is no spoon."}])
    server = SearchServer(ServerSettings(port=0), SearchIndex.open(directory))
    _, (host, port) = await start_server(nursery, server)
    # What 'trio-search-index build' does to an existing index: build aside, swap.
    make_index(tmp_path / "new", [{"key": "neo", "answer": "Whoa."}])
    directory.rename(tmp_path / "old")
    (tmp_path / "new").rename(directory)
    async with open_client(host, port) as client:
        with trio.fail_after(10):
            while await client.search("neo") != "Whoa.":  # noqa: ASYNC110
                await trio.sleep(0.05)


async def test_a_reload_reads_the_dictionary_ahead(tmp_path: Path, nursery: trio.Nursery) -> None:
    # So the first query for a long misspelt word does not read it, and
    # wait (0.2 s on a million documents), while others queue behind it.
    directory = tmp_path / "index"
    make_index(directory, [{"key": "ring", "answer": "Beneath the Misty Mountains."}])
    first = SearchIndex.open(directory)
    words = first.words("mountainz", QueryOptions())
    server = SearchServer(ServerSettings(port=0), first, loader=lambda: SearchIndex.open(directory))
    await start_server(nursery, server)
    assert await server.reload_index()
    reloaded = server.search_index
    assert reloaded is not None and reloaded is not first
    assert reloaded.has_dictionary_for(words)
    # The index a server is given is read by whoever opened it, as
    # trio-search-server does (docs/embedding.md): not by the server.
    assert not first.has_dictionary_for(words)


async def test_a_loader_that_raises_anything_keeps_the_old_data(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    # An embedding program's loader may fail in ways of its own: reload_index()
    # used to let anything but TrioSearchError and OSError out, which would
    # take the server down if called from a task in its nursery.
    def broken_loader() -> SearchIndex:
        return json.loads("{not json")  # type: ignore[no-any-return]

    server = SearchServer(ServerSettings(port=0), loader=broken_loader)
    _, (host, port) = await start_server(nursery, server)
    before = server.search_index
    with caplog.at_level(logging.ERROR, logger="trio_search"):
        assert await server.reload_index() is False
    assert server.search_index is before
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.getMessage().startswith(
        "reload failed; still serving the previous data: the loader raised JSONDecodeError: "
    )
    assert record.exc_info is not None  # the traceback, for the bug it is
    async with open_client(host, port) as client:
        with trio.fail_after(10):
            assert await client.search("morpheus") == "Follow the white rabbit. \U0001f430"


async def test_an_unexpected_error_reading_commits_keeps_the_server_serving(
    tmp_path: Path,
    nursery: trio.Nursery,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory = tmp_path / "index"
    make_index(directory, [{"key": "neo", "answer": "There is no spoon."}])
    index = SearchIndex.open(directory)
    server = SearchServer(ServerSettings(port=0), index)
    looked = trio.Event()

    def broken_refresh(self: SearchIndex) -> bool:
        trio.from_thread.run_sync(looked.set)
        raise RuntimeError("tantivy said something new")

    monkeypatch.setattr(SearchIndex, "refresh", broken_refresh)
    _, (host, port) = await start_server(nursery, server)
    with trio.fail_after(10):
        await looked.wait()
        await trio.sleep(INDEX_POLL_INTERVAL * 2)  # and the poll after it
        async with open_client(host, port) as client:
            assert await client.search("neo") == "There is no spoon."
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors and errors[0] == (
        f"cannot read index {directory}: RuntimeError: tantivy said something new; "
        f"still serving generation {index.generation}"
    ), errors
