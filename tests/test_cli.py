"""The installed commands, run as subprocesses the way a user runs them."""

from __future__ import annotations

import argparse
import ast
import codecs
import gc
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from tests.helpers import (
    TUTORIAL_DATA,
    ServerProcess,
    json_request,
    json_response,
    read_messages,
    read_until_eof,
    result_of,
    serve_one_request_then_close,
    server_command,
    server_subprocess,
    start_fake_server,
    start_server,
)
from trio_search import DEFAULT_MAX_CONTENT_LENGTH, DEFAULT_PORT, Hit, Message, QueryResult
from trio_search._client_cli import describe_query, render_highlight, use_bold
from trio_search._server_cli import GC_YOUNG_THRESHOLD, _tune_garbage_collection, build_parser

RABBIT_LINE = "Got result: Follow the white rabbit. \U0001f430"
BINARY_LINE = "Got response: b'First 10 bytes of request: binaryhell'"
#: Seconds any one subprocess may take before the test fails.
TIMEOUT = 10
#: UTF-8 output whatever the locale; wide help so each option is one entry.
ENV = {**os.environ, "PYTHONIOENCODING": "utf-8", "COLUMNS": "200"}


def command(name: str, module: str, how: str = "script") -> list[str]:
    """How to run ``name``: its console script next to this Python (the
    editable dev venv and nox's installed venv both have one), or ``-m``."""
    if how == "module":
        return [sys.executable, "-m", module]
    script = shutil.which(name, path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip(f"{name} is not installed next to {sys.executable}")
    return [script]


def client_command(how: str = "script") -> list[str]:
    return command("trio-search-client", "trio_search._client_cli", how)


async def run(args: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    """Run a command to its end (bounded in time), capturing its output."""
    with trio.fail_after(TIMEOUT):
        return await trio.run_process(
            list(args), capture_stdout=True, capture_stderr=True, check=False, env=ENV
        )


def one_line_error(result: subprocess.CompletedProcess[bytes], prog: str) -> str:
    """The command's one line of error on stderr (nothing on stdout)."""
    stderr = result.stderr.decode()
    assert stderr.count("\n") == 1 and stderr.startswith(f"{prog}: error: "), stderr
    assert result.stdout == b""
    return stderr


def port_of(server: ServerProcess) -> int:
    """The port of ``server``, which must listen on 127.0.0.1 only."""
    assert server.addresses == [("127.0.0.1", server.port)], server.stdout
    return server.port


async def client(port: int, action: str, value: str, how: str = "script") -> str:
    """Run trio-search-client; return what it printed, asserting success."""
    result = await run([*client_command(how), "127.0.0.1", str(port), action, value])
    assert result.returncode == 0, result
    assert result.stderr == b""
    return result.stdout.decode()


async def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port: int = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    return port


@pytest.mark.parametrize("how", ["script", "module", "package"])
async def test_server_answers_client_then_stops_on_sigint(how: str) -> None:
    async with server_subprocess(how=how) as server:
        port = port_of(server)
        assert await client(port, "search", "morpheus", how) == RABBIT_LINE + "\n"
        assert await client(port, "search", "neo", how) == "Got result: No match for 'neo'.\n"
        assert await client(port, "binary", "hello world", how) == BINARY_LINE + "\n"
        server.signal(signal.SIGINT)
        with trio.fail_after(5):
            assert await server.wait() == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_signal_stops_server_quickly_with_an_idle_client(signum: int) -> None:
    async with (
        server_subprocess() as server,
        await trio.open_tcp_stream("127.0.0.1", port_of(server)) as idle,
    ):
        # One answer first, so the connection is surely accepted, then idle.
        await idle.send_all(json_request({"action": "search", "value": "ring"}))
        await read_messages(idle, 1)
        server.signal(signum)
        # Well within the 10 s shutdown grace: idle connections close at once.
        with trio.fail_after(5):
            assert await read_until_eof(idle) == b""
            assert await server.wait() == 0


async def test_port_in_use() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with listeners[0]:
        result = await run([*server_command(), "--port", str(port)])
    assert result.returncode == 1
    assert "in use" in one_line_error(result, "trio-search-server")


BAD_DATA = {
    "invalid JSON": b'{"morpheus": ',
    "not an object": b'["morpheus"]',
    "answer not a string": b'{"morpheus": 42}',
    "not UTF-8": b'{"\xff": "x"}',
}


@pytest.mark.parametrize(
    "content", [*BAD_DATA.values(), None, "dir"], ids=[*BAD_DATA, "missing", "a directory"]
)
async def test_unusable_data_file(tmp_path: Path, content: bytes | str | None) -> None:
    data = tmp_path / "index.json"
    if content == "dir":
        data.mkdir()
    elif isinstance(content, bytes):
        data.write_bytes(content)
    result = await run([*server_command(), "--port", "0", "--data", str(data)])
    assert result.returncode == 1
    assert str(data) in one_line_error(result, "trio-search-server")


@pytest.mark.parametrize(
    "options",
    [
        ["--port", "abc"],
        ["--port", "70000"],
        ["--max-content-length", "-1"],
        ["--query-cache-hits", "-5"],
        ["--log-level", "LOUD"],
        ["--trusted-proxies", "garbage"],
        ["--no-such-option"],
    ],
    ids=" ".join,
)
async def test_bad_option(options: list[str]) -> None:
    result = await run([*server_command(), *options])
    assert result.returncode == 2
    assert options[0] in one_line_error(result, "trio-search-server")


def help_entries(text: str) -> dict[str, str]:
    """Each option's help entry, keyed by its long option, on one line."""
    entries: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        if match := re.match(r"\s{2}(?:-\w, )?(--[\w-]+)", line):
            current = match[1]
            entries[current] = line
        elif current and line.startswith("    "):
            entries[current] += " " + line.strip()
        else:
            current = ""
    return {option: " ".join(entry.split()) for option, entry in entries.items()}


async def test_server_help_shows_every_option_with_its_default() -> None:
    result = await run([*server_command(), "--help"])
    assert result.returncode == 0
    entries = help_entries(result.stdout.decode())
    # The options the issue asks for, with the defaults a user relies on.
    for option, default in [
        ("--host", "127.0.0.1"),
        ("--port", str(DEFAULT_PORT)),
        ("--max-content-length", str(DEFAULT_MAX_CONTENT_LENGTH)),
        ("--log-level", "INFO"),
    ]:
        assert f"(default: {default})" in entries[option], entries[option]
    assert "--data" in entries
    assert (
        "a tab, written \\t or tab (default: a comma; a tab for a .tsv file)"
        in (entries["--csv-delimiter"])
    )
    # And every option the parser knows, with its default where it has one.
    for action in build_parser()._actions:
        if not action.option_strings or action.help in (None, argparse.SUPPRESS):
            continue
        option = action.option_strings[-1]
        assert option in entries, option
        if action.default not in (None, False, argparse.SUPPRESS):
            assert f"(default: {action.default})" in entries[option], entries[option]


LIMITS_DOC = Path(__file__).parent.parent / "docs" / "limits-and-timeouts.md"
#: The limits each --workers process enforces on its own connections.
PER_WORKER_LIMITS = ["--max-connections", "--max-buffered-bytes", "--max-connections-per-ip"]


async def test_server_help_says_which_limits_apply_per_worker() -> None:
    # With --workers 2 --max-connections-per-ip 1, two connections from one
    # address get through: one per worker. The help and the docs say so.
    result = await run([*server_command(), "--help"])
    entries = help_entries(result.stdout.decode())
    rows = {
        row.split("`")[1].split()[0]: row
        for row in LIMITS_DOC.read_text(encoding="utf-8").splitlines()
        if row.startswith("| `--")
    }
    for option in PER_WORKER_LIMITS:
        assert "per worker process with --workers" in entries[option], entries[option]
        assert "per worker process with `--workers`" in rows[option], rows[option]


def test_server_refuses_more_workers_than_it_may_start(capsys: pytest.CaptureFixture[str]) -> None:
    # Parsed in this process: "--workers 1000" used to start 1000 processes.
    parser = build_parser()
    assert parser.parse_args(["--workers", "64"]).workers == 64
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--workers", "1000"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "trio-search-server: error: argument --workers: must be at most 64, not 1,000 "
        "(see --help)\n"
    )
    assert "at most 64" in " ".join(parser.format_help().split())


async def test_server_serves_data_file(tmp_path: Path) -> None:
    data = tmp_path / "index.json"
    data.write_text(json.dumps({"neo": "The One. \U0001f576"}), encoding="utf-8")
    async with server_subprocess("--data", str(data)) as server:
        port = port_of(server)
        assert await client(port, "search", "neo") == "Got result: The One. \U0001f576\n"
        assert await client(port, "search", "morpheus") == "Got result: No match for 'morpheus'.\n"


async def test_server_reads_other_csv_delimiters(tmp_path: Path) -> None:
    semicolons = tmp_path / "export.csv"
    semicolons.write_text("key;answer\nring;In the caves, beneath\n", encoding="utf-8")
    async with server_subprocess("--data", str(semicolons), "--csv-delimiter", ";") as server:
        assert await client(port_of(server), "search", "ring") == (
            "Got result: In the caves, beneath\n"
        )
    # With --workers, each worker reads the file with the same delimiter.
    tabs = tmp_path / "export.txt"
    tabs.write_text("key\tanswer\nring\tIn the caves\n", encoding="utf-8")
    options = ["--format", "csv", "--csv-delimiter", "\\t", "--workers", "2"]
    async with server_subprocess("--data", str(tabs), *options) as server:
        await server.wait_for(re.compile(rb"worker \d \(pid \d+\) listening"), count=2)
        assert await client(port_of(server), "search", "ring") == "Got result: In the caves\n"


async def test_server_finds_an_id_beyond_64_bits(tmp_path: Path) -> None:
    # 97 bits, which orjson alone reads as the float 1.2345678901234568e+29.
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"id": 123456789012345678901234567890, "answer": "big"}\n', encoding="utf-8")
    async with server_subprocess("--data", str(ledger), "--key-field", "id") as server:
        result = await client(port_of(server), "search", "123456789012345678901234567890")
        assert result == "Got result: big\n"


async def test_server_csv_delimiter_errors(tmp_path: Path) -> None:
    data = tmp_path / "index.json"
    data.write_text(json.dumps({"neo": "The One."}), encoding="utf-8")
    result = await run([*server_command(), "--data", str(data), "--csv-delimiter", ";"])
    assert result.returncode == 2
    assert one_line_error(result, "trio-search-server") == (
        f"trio-search-server: error: --csv-delimiter applies to CSV files only, and {data} "
        "is json by its suffix: give --format csv to read it as CSV (see --help)\n"
    )
    result = await run([*server_command(), "--csv-delimiter", '"'])
    assert result.returncode == 2
    assert one_line_error(result, "trio-search-server") == (
        "trio-search-server: error: argument --csv-delimiter: cannot be '\"', "
        "which quotes cells (see --help)\n"
    )


async def test_server_names_a_utf16_data_file(tmp_path: Path) -> None:
    data = tmp_path / "export.csv"
    data.write_bytes(codecs.BOM_UTF16_LE + "key,answer\nring,x\n".encode("utf-16-le"))
    result = await run([*server_command(), "--port", "0", "--data", str(data)])
    assert result.returncode == 1
    assert one_line_error(result, "trio-search-server") == (
        f"trio-search-server: error: {data}: the file looks like UTF-16 "
        "(it starts with a UTF-16 byte order mark); save it as UTF-8\n"
    )


async def test_client_unreachable_server() -> None:
    port = await free_port()
    result = await run([*client_command(), "127.0.0.1", str(port), "search", "morpheus"])
    assert result.returncode == 1
    error = one_line_error(result, "trio-search-client")
    assert f"cannot connect to 127.0.0.1:{port}: Connection refused" in error


async def test_client_garbage_server(nursery: trio.Nursery) -> None:
    async def http_server(stream: trio.SocketStream) -> None:
        async with stream:
            await read_messages(stream, 1)
            await stream.send_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    _, port = await start_fake_server(nursery, http_server)
    result = await run([*client_command(), "127.0.0.1", str(port), "search", "morpheus"])
    assert result.returncode == 1
    assert "bad response from" in one_line_error(result, "trio-search-client")


async def test_client_against_server_that_closes_after_each_reply(nursery: trio.Nursery) -> None:
    _, port = await start_fake_server(nursery, serve_one_request_then_close)
    with trio.fail_after(3 * TIMEOUT):
        assert await client(port, "search", "morpheus") == RABBIT_LINE + "\n"
        assert await client(port, "search", "ring") == f"Got result: {TUTORIAL_DATA['ring']}\n"
        assert await client(port, "search", "neo") == "Got result: No match for 'neo'.\n"
        assert await client(port, "binary", "hello world") == BINARY_LINE + "\n"


async def test_client_gives_up_on_a_silent_server(nursery: trio.Nursery) -> None:
    async def silent_server(stream: trio.SocketStream) -> None:
        async with stream:
            await trio.sleep_forever()

    _, port = await start_fake_server(nursery, silent_server)
    args = ["127.0.0.1", str(port), "search", "morpheus", "--timeout", "0.5"]
    result = await run([*client_command(), *args])
    assert result.returncode == 1
    assert "no answer from" in one_line_error(result, "trio-search-client")


@pytest.mark.parametrize(
    ("action", "value", "expected"),
    [
        (
            "search",
            "\U0001f436",
            ("text/json", "utf-8", {"action": "search", "value": "\U0001f436"}),
        ),
        (
            "binary",
            "hello world",
            ("binary/custom-client-binary-type", "binary", b"binaryhello world"),
        ),
    ],
    ids=["search", "other action"],
)
async def test_client_sends_the_tutorial_clients_request(
    nursery: trio.Nursery, action: str, value: str, expected: tuple[str, str, object]
) -> None:
    received: list[Message] = []

    async def recording_server(stream: trio.SocketStream) -> None:
        async with stream:
            received.extend(await read_messages(stream, 1))
            await stream.send_all(json_response({"result": "ok"}))

    _, port = await start_fake_server(nursery, recording_server)
    assert await client(port, action, value) == "Got result: ok\n"
    (request,) = received
    assert request.byteorder == sys.byteorder
    content = result_of(request) if request.is_json else request.content
    assert (request.content_type, request.content_encoding, content) == expected


#: A data file for the query action: two documents hold both words, others one.
QUERY_DATA = {
    "morpheus": TUTORIAL_DATA["morpheus"],
    "alice": "Alice followed the White Rabbit down the hole.",
    "hole": "Down the rabbit hole we go.",
    "typo": "A rabit, spelled badly.",
    "ring": TUTORIAL_DATA["ring"],
}


@asynccontextmanager
async def query_server(tmp_path: Path) -> AsyncIterator[int]:
    """A ``trio-search-server`` over :data:`QUERY_DATA`; yields its port."""
    data = tmp_path / "index.json"
    data.write_text(json.dumps(QUERY_DATA), encoding="utf-8")
    async with server_subprocess("--data", str(data)) as server:
        yield port_of(server)


async def query(port: int, *args: str, status: int = 0) -> str:
    """Run ``trio-search-client ... query ARGS``; return its stdout."""
    result = await run([*client_command(), "127.0.0.1", str(port), "query", *args])
    assert result.returncode == status, result
    if status == 0:
        assert result.stderr == b""
    return result.stdout.decode()


async def test_client_query_prints_ranked_hits(tmp_path: Path) -> None:
    async with query_server(tmp_path) as port:
        both_words = await query(port, "white rabbit")
        typo = await query(port, "rabit")
        page = await query(port, "rabit", "--limit", "2", "--offset", "2")
        past_the_end = await query(port, "rabit", "--offset", "20")
        nothing = await query(port, "zebra")
    # Not a terminal: the matched words between asterisks.
    assert both_words == (
        "2 hits for 'white rabbit'\n"
        "1. morpheus \u2014 Follow the *white* *rabbit*. \U0001f430\n"
        "2. alice \u2014 Alice followed the *White* *Rabbit* down the hole.\n"
    )
    lines = typo.splitlines()
    assert lines[0] == "4 hits for 'rabit'"
    # The document spelled as typed first; ranks count from 1.
    assert lines[1] == "1. typo \u2014 A *rabit*, spelled badly."
    # Ranked 1 to 4; the others tie (each one typo away), in the engine's order.
    ranks_and_keys = [line.split()[:2] for line in lines[1:]]
    assert [rank for rank, _ in ranks_and_keys] == ["1.", "2.", "3.", "4."]
    assert {key for _, key in ranks_and_keys[1:]} == {"morpheus", "hole", "alice"}
    # A page: ranks continue from the offset.
    assert page.splitlines() == ["showing 3-4 of 4 hits for 'rabit'", *lines[3:5]]
    assert past_the_end == "4 hits for 'rabit'; none after the first 20\n"
    assert nothing == "0 hits for 'zebra'\n"


async def test_client_query_json_prints_the_answer(tmp_path: Path) -> None:
    async with query_server(tmp_path) as port:
        output = await query(port, "white rabbit", "--json", "--limit", "1")
        error = await query(port, "white rabbit", "--json", "--fields", "nope", status=1)
    answer = json.loads(output)
    assert answer["total"] == 2
    (hit,) = answer["result"]
    assert hit["key"] == "morpheus"
    assert hit["highlight"] == "Follow the <em>white</em> <em>rabbit</em>. \U0001f430"
    assert json.loads(error)["error"] == "bad_query"


async def test_client_query_refused(tmp_path: Path) -> None:
    async with query_server(tmp_path) as port:
        result = await run(
            [*client_command(), "127.0.0.1", str(port), "query", "rabbit", "--fields", "nope"]
        )
    assert result.returncode == 1
    error = one_line_error(result, "trio-search-client")
    assert f"127.0.0.1:{port} refused the query (bad_query): unknown field 'nope'" in error


async def test_client_prints_answers_longer_than_a_mebibyte(tmp_path: Path) -> None:
    # Found by indexing documents with answers of 1-10 MB: the server sent
    # them, but the client refused every reply over its 1 MiB default
    # ("content-length 3000040 exceeds the limit of 1048576 bytes").
    answer = "long " * 600_000 + "\U0001f430"  # 3 MB
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"key": "long", "answer": answer}) + "\n", encoding="utf-8")
    async with server_subprocess("--data", str(data)) as server:
        port = str(port_of(server))
        found = await run([*client_command(), "127.0.0.1", port, "search", "long"])
        hits = await run([*client_command(), "127.0.0.1", port, "query", "long", "--json"])
        bounded = await run(
            [
                *client_command(),
                "--max-response-length",
                "1000",
                "127.0.0.1",
                port,
                "search",
                "long",
            ]
        )
    assert found.returncode == 0, found.stderr
    assert found.stdout.decode() == f"Got result: {answer}\n"
    assert hits.returncode == 0, hits.stderr
    assert json.loads(hits.stdout)["result"][0]["answer"] == answer
    # A smaller bound still holds, and the error says which option raises it.
    assert bounded.returncode == 1
    error = one_line_error(bounded, "trio-search-client")
    assert "exceeds the limit of 1000 bytes" in error
    assert "--max-response-length" in error


async def test_server_field_queries_option(tmp_path: Path) -> None:
    data = tmp_path / "index.json"
    data.write_text(json.dumps(QUERY_DATA), encoding="utf-8")
    async with server_subprocess("--data", str(data), "--field-queries") as server:
        key_word = await query(port_of(server), "typo", "--fields", "answer", "--json")
        answer_word = await query(port_of(server), "spelled", "--fields", "answer", "--json")
    # The key "typo" is not searched, the answers are.
    assert [hit["key"] for hit in json.loads(key_word)["result"]] == []
    assert [hit["key"] for hit in json.loads(answer_word)["result"]] == ["typo"]
    async with query_server(tmp_path) as port:
        refused = await run(
            [*client_command(), "127.0.0.1", str(port), "query", "x", "--fields", "answer"]
        )
    assert refused.returncode == 1
    assert "--field-queries" in one_line_error(refused, "trio-search-client")
    # It applies to --data only.
    result = await run([*server_command(), "--index", str(tmp_path), "--field-queries"])
    assert result.returncode == 2
    assert b"--field-queries apply to --data" in result.stderr


async def test_server_query_cache_option(tmp_path: Path) -> None:
    data = tmp_path / "index.json"
    data.write_text(json.dumps(QUERY_DATA), encoding="utf-8")
    for options, kept in [((), 1), (("--query-cache-hits", "0"), 0)]:
        async with server_subprocess("--data", str(data), *options) as server:
            port = port_of(server)
            # A typo: the costly second pass runs, and its ranking is kept.
            first = await query(port, "spelld", "--json")
            again = await query(port, "spelld", "--json")
            result = await run([*client_command(), "127.0.0.1", str(port), "stats"])
            stats = ast.literal_eval(result.stdout.decode().removeprefix("Got result: "))
        assert json.loads(first)["result"] and first == again
        assert (stats["query_cache_stored"], stats["query_cache_hits"]) == (kept, kept)


async def test_client_sends_query_options(nursery: trio.Nursery) -> None:
    received: list[Message] = []

    async def recording_server(stream: trio.SocketStream) -> None:
        async with stream:
            received.extend(await read_messages(stream, 1))
            await stream.send_all(json_response({"result": [], "total": 0}))

    _, port = await start_fake_server(nursery, recording_server)
    options = ["--limit", "5", "--offset", "7", "--no-typos", "--no-prefix", "--fields", "a, b"]
    assert await query(port, "white rab", *options) == "0 hits for 'white rab'\n"
    assert await query(port, "white rab") == "0 hits for 'white rab'\n"
    assert [result_of(request) for request in received] == [
        {
            "action": "query",
            "value": "white rab",
            "limit": 5,
            "offset": 7,
            "typos": False,
            "prefix": False,
            "fields": ["a", "b"],
        },
        {
            "action": "query",
            "value": "white rab",
            "limit": 10,
            "offset": 0,
            "typos": True,
            "prefix": True,
        },
    ]


@pytest.mark.parametrize(
    "answer",
    [{"result": "No match for 'rabbit'."}, {"result": [{"key": "k"}], "total": 1}],
    ids=["tutorial's answer", "hit without answer"],
)
async def test_client_query_bad_answer(nursery: trio.Nursery, answer: object) -> None:
    async def answering_server(stream: trio.SocketStream) -> None:
        async with stream:
            await read_messages(stream, 1)
            await stream.send_all(json_response(answer))

    _, port = await start_fake_server(nursery, answering_server)
    result = await run([*client_command(), "127.0.0.1", str(port), "query", "rabbit"])
    assert result.returncode == 1
    assert "bad response from" in one_line_error(result, "trio-search-client")


@pytest.mark.parametrize(
    "options",
    [
        ["search", "morpheus", "--limit", "3"],
        ["stats", "-", "--no-typos"],
        ["query", "rabbit", "--limit", "0"],
        ["query", "rabbit", "--offset", "-1"],
        ["query", "rabbit", "--fields", "a,,b"],
    ],
    ids=" ".join,
)
async def test_client_bad_query_option(options: list[str]) -> None:
    result = await run([*client_command(), "127.0.0.1", "1", *options])
    assert result.returncode == 2
    assert options[2] in one_line_error(result, "trio-search-client")


@pytest.mark.parametrize("port", ["0", "-1", "65536", "99117"])
async def test_client_refuses_a_port_out_of_range(port: str) -> None:
    # 99117 is 33581 + 65536: the resolver would have connected to 33581.
    result = await run([*client_command(), "127.0.0.1", port, "stats"])
    assert result.returncode == 2
    error = one_line_error(result, "trio-search-client")
    assert f"argument PORT: must be an integer from 1 to 65535, not {port}" in error


async def test_client_help_explains_query() -> None:
    result = await run([*client_command(), "--help"])
    assert result.returncode == 0
    text = result.stdout.decode()
    assert "ACTION 'query' runs a full-text search" in text
    assert 'trio-search-client 127.0.0.1 65432 query "white rabit"' in text
    entries = help_entries(text)
    for option in ["--limit", "--offset", "--no-typos", "--no-prefix", "--fields", "--json"]:
        assert option in entries, option
    assert "(default: 10)" in entries["--limit"]


def test_render_highlight() -> None:
    highlight = "Follow the <em>white</em> <em>rabbit</em>. \U0001f430"
    assert render_highlight(highlight, bold=False) == "Follow the *white* *rabbit*. \U0001f430"
    assert render_highlight(highlight, bold=True) == (
        "Follow the \x1b[1mwhite\x1b[22m \x1b[1mrabbit\x1b[22m. \U0001f430"
    )
    # A document's control characters cannot reach the terminal or break lines.
    assert render_highlight("<em>red</em>\x1b[31m\nend", bold=True) == (
        "\x1b[1mred\x1b[22m\\x1b[31m\\nend"
    )
    # With the answer, an answer's own <em> stays text (HTML kept as answers).
    answer = "an <em>rabbit</em>\x1b[31m"
    assert render_highlight("an <em><em>rabbit</em></em>\x1b[31m", bold=False, answer=answer) == (
        "an <em>*rabbit*</em>\\x1b[31m"
    )


def test_query_lines_in_bold_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = QueryResult(
        [Hit("morpheus", TUTORIAL_DATA["morpheus"], 1.0, "the <em>rabbit</em>")], 1
    )
    assert describe_query("rabit", result, 0, bold=True) == [
        "1 hit for 'rabit'",
        "1. morpheus \u2014 the \x1b[1mrabbit\x1b[22m",
    ]
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_bold()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_bold()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["stats"], {"action": "stats"}),
        (["stats", "-"], {"action": "stats", "value": "-"}),
        (["stats", "-", "--json"], {"action": "stats", "value": "-"}),
        (["health"], {"action": "health"}),
        # As for stats: the VALUE goes as a JSON "value", not as binary "health"+VALUE.
        (["health", "x"], {"action": "health", "value": "x"}),
    ],
    ids=" ".join,
)
async def test_client_stats_and_health_need_no_value(
    nursery: trio.Nursery, args: list[str], expected: dict[str, str]
) -> None:
    received: list[Message] = []

    async def recording_server(stream: trio.SocketStream) -> None:
        async with stream:
            received.extend(await read_messages(stream, 1))
            await stream.send_all(json_response({"result": {"requests": 0}}))

    _, port = await start_fake_server(nursery, recording_server)
    result = await run([*client_command(), "127.0.0.1", str(port), *args])
    if "--json" in args:  # printed as sent
        assert (result.returncode, json.loads(result.stdout)) == (0, {"result": {"requests": 0}})
    else:
        assert (result.returncode, result.stdout) == (0, b"Got result: {'requests': 0}\n")
    (request,) = received
    assert request.content_type == "text/json"
    assert result_of(request) == expected


async def test_client_stats_from_a_real_server() -> None:
    async with server_subprocess() as server:
        result = await run([*client_command(), "127.0.0.1", str(port_of(server)), "stats"])
    assert result.returncode == 0, result
    assert result.stdout.startswith(b"Got result: {'connections_open': 1,")


async def test_client_health_from_a_real_server(nursery: trio.Nursery) -> None:
    """As a load balancer's check does (docs/deploy.md), from a shell."""
    _server, (host, port) = await start_server(nursery)
    result = await run([*client_command(), host, str(port), "health"])
    assert (result.returncode, result.stdout, result.stderr) == (0, b"Got result: ok\n", b"")
    result = await run([*client_command(), host, str(port), "health", "--json"])
    assert (result.returncode, json.loads(result.stdout)) == (0, {"result": "ok"})


async def test_client_help_says_health_needs_no_value() -> None:
    result = await run([*client_command(), "--help"])
    text = " ".join(result.stdout.decode().split())
    assert "ACTIONs 'stats' and 'health' are always sent as text/json and need no VALUE" in text
    assert "not needed for health, stats" in text
    assert "trio-search-client 127.0.0.1 65432 health" in text


@pytest.mark.parametrize("action", ["search", "query", "binary"])
async def test_client_needs_a_value_for_other_actions(action: str) -> None:
    result = await run([*client_command(), "127.0.0.1", "1", action])
    assert result.returncode == 2
    assert f"ACTION '{action}' needs a VALUE" in one_line_error(result, "trio-search-client")


async def test_client_fails_on_an_error_answer_without_a_code(nursery: trio.Nursery) -> None:
    # The tutorial's app-server.py answers an unknown action with
    # {"result": "Error: invalid action 'A'."} and no "error" code.
    _, port = await start_fake_server(nursery, serve_one_request_then_close)
    args = ["127.0.0.1", str(port), "bogus", "x", "--json"]
    result = await run([*client_command(), *args])
    assert result.returncode == 1
    assert result.stdout == b'{"result": "Error: invalid action \'bogus\'."}\n'


async def test_client_json_prints_any_json_answer_as_sent(nursery: trio.Nursery) -> None:
    """--json gives stats (and every other action) as JSON a script can
    read, not the tutorial's ``Got result: {...}`` line (a Python repr)."""
    _server, (host, port) = await start_server(nursery)
    result = await run([*client_command(), host, str(port), "stats", "--json"])
    assert result.returncode == 0
    assert json.loads(result.stdout)["result"]["connections_open"] == 1


async def test_client_tls_to_a_silent_plaintext_server_hints_quickly(
    nursery: trio.Nursery,
) -> None:
    async def silent_server(stream: trio.SocketStream) -> None:
        async with stream:
            await trio.sleep_forever()

    _, port = await start_fake_server(nursery, silent_server)
    start = trio.current_time()
    result = await run([*client_command(), "--tls", "127.0.0.1", str(port), "search", "x"])
    assert trio.current_time() - start < 8  # the 3 s handshake bound, not --timeout's 10 s
    assert result.returncode == 1
    error = one_line_error(result, "trio-search-client")
    assert f"no TLS handshake from 127.0.0.1:{port} within 3 s" in error
    assert "the server may not speak TLS (try without --tls)" in error


async def test_client_tls_to_a_plaintext_server_that_answers_hints(
    nursery: trio.Nursery,
) -> None:
    async def plaintext_server(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some()
            await stream.send_all(json_response({"result": "Error: not TLS.", "error": "x"}))

    _, port = await start_fake_server(nursery, plaintext_server)
    result = await run([*client_command(), "--tls", "127.0.0.1", str(port), "search", "x"])
    assert result.returncode == 1
    error = one_line_error(result, "trio-search-client")
    assert f"connection to 127.0.0.1:{port} failed: [SSL" in error
    assert "the server may not speak TLS (try without --tls)" in error


async def test_client_output_to_a_closed_pipe_is_no_traceback(nursery: trio.Nursery) -> None:
    # trio-search-client ... | head: the reader may go before the answer is printed.
    _, port = await start_fake_server(nursery, serve_one_request_then_close)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        with trio.fail_after(TIMEOUT):
            result = await trio.run_process(
                [*client_command(), "127.0.0.1", str(port), "search", "morpheus"],
                stdout=write_end,
                capture_stderr=True,
                check=False,
                env=ENV,
            )
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (141, b"")


def test_the_server_collects_garbage_less_often_than_python_by_default() -> None:
    # Fewer full collections, each of which holds up every connection.
    before = gc.get_threshold()
    try:
        _tune_garbage_collection()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        assert before[0] < GC_YOUNG_THRESHOLD
    finally:
        gc.set_threshold(*before)
