"""The load generator counts right answers and each kind of failure.

Correctness only, on a few hundred requests: speed is never asserted here
(``nox -s bench`` measures it).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from tests.helpers import ClosingServer, start_server
from trio_search import CLOSED, NEED_DATA, Message, MessageProtocol, encode_json, encode_message
from trio_search._loadgen import (
    AnswerChecker,
    BenchConfig,
    process_tree_cpu_seconds,
    run_bench,
    search_request,
)
from trio_search._loadgen._cli import main as bench_main

Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def start_fake_server(nursery: trio.Nursery, handler: Handler) -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port: int = listeners[0].socket.getsockname()[1]
    return port


def answer_each_request(response: bytes) -> Handler:
    """A handler that answers every request it parses with ``response``."""

    async def handler(stream: trio.SocketStream) -> None:
        protocol = MessageProtocol()
        async with stream:
            while True:
                replies = []
                while True:
                    event = protocol.next_message()
                    if event is NEED_DATA or event is CLOSED:
                        break
                    replies.append(response)
                if replies:
                    await stream.send_all(b"".join(replies))
                if event is CLOSED:
                    return
                protocol.receive_data(await stream.receive_some(65536))

    return handler


async def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    """Run ``trio-search-bench --json --quiet argv`` in a thread (it calls
    ``trio.run`` itself); return its exit status and its JSON output."""
    status = await trio.to_thread.run_sync(bench_main, [*argv, "--json", "--quiet"])
    return status, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "options",
    [
        ["--connections", "4"],
        ["--connections", "4", "--pipeline", "8"],
        ["--connections", "4", "--mode", "oneshot"],
        ["--connections", "2", "--binary", "--query", "0123456789abcdef"],
        ["--connections", "2", "--query", "nowhere"],
    ],
)
async def test_right_answers_exit_0(
    nursery: trio.Nursery, capsys: pytest.CaptureFixture[str], options: list[str]
) -> None:
    _, (host, port) = await start_server(nursery)
    status, result = await run_cli([host, str(port), "--requests", "200", *options], capsys)
    assert result["ok"] == 200
    assert result["failed"] == 0
    assert result["errors"] == {}
    assert result["retried"] == 0
    assert result["latency_ms"]["p50"] is not None
    assert status == 0


async def test_wrong_answers_counted_exit_1(
    nursery: trio.Nursery, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = encode_message(Message(encode_json({"result": "Follow the black cat."})))
    port = await start_fake_server(nursery, answer_each_request(wrong))
    status, result = await run_cli(
        ["127.0.0.1", str(port), "--requests", "50", "--pipeline", "5"], capsys
    )
    assert result["ok"] == 0
    assert result["errors"] == {"wrong_answer": 50}
    assert "Follow the black cat." in result["first_errors"]["wrong_answer"]
    assert status == 1


async def close_at_once(stream: trio.SocketStream) -> None:
    await stream.aclose()


async def send_garbage(stream: trio.SocketStream) -> None:
    async with stream:
        await stream.receive_some(65536)
        await stream.send_all(b"\x00\x05nope!")


async def answer_one_then_close(stream: trio.SocketStream) -> None:
    answer = encode_message(Message(encode_json({"result": "Follow the white rabbit. \U0001f430"})))
    async with stream:
        await stream.receive_some(65536)
        await stream.send_all(answer)


@pytest.mark.parametrize(
    ("handler", "errors"),
    [
        (close_at_once, {"closed": 8}),
        (send_garbage, {"bad_framing": 8}),
        # Each batch of 4 gets one answer, then its connection closes.
        (answer_one_then_close, {"closed": 6}),
    ],
)
async def test_failures_counted_by_kind(
    nursery: trio.Nursery, handler: Handler, errors: dict[str, int]
) -> None:
    port = await start_fake_server(nursery, handler)
    request, checker = search_request("morpheus")
    config = BenchConfig("127.0.0.1", port, request, checker, connections=1, requests=8, pipeline=4)
    result = await run_bench(config)
    assert {kind: count for kind, count in result.errors.items() if count} == errors
    assert result.ok == 8 - sum(errors.values())


@pytest.mark.parametrize(
    ("answers", "requests", "pipeline", "retry", "ok", "errors", "retried"),
    [
        # A reused connection closes with the second request unread: it is
        # sent again on a new connection and answered there.
        ([1], 5, 1, True, 5, {}, 1),
        # The same without retries: that request fails.
        ([1], 5, 1, False, 4, {"closed": 1}, 0),
        # Fresh connections that close before answering: never retried.
        ([0, 0, 0], 3, 1, True, 0, {"closed": 3}, 0),
        # The retry's connection closes too: a failure, and no second retry.
        ([1, 0], 3, 1, True, 2, {"closed": 1}, 1),
        # A batch of 4 half answered: its other 2 go again, on a new connection.
        ([6], 8, 4, True, 8, {}, 2),
    ],
)
async def test_a_reused_connection_closed_before_answering_is_retried_once(
    nursery: trio.Nursery,
    answers: list[int],
    requests: int,
    pipeline: int,
    retry: bool,
    ok: int,
    errors: dict[str, int],
    retried: int,
) -> None:
    server = ClosingServer(answers)
    port = await start_fake_server(nursery, server)
    request, checker = search_request("morpheus")
    config = BenchConfig(
        "127.0.0.1", port, request, checker, requests=requests, pipeline=pipeline, retry=retry
    )
    with trio.fail_after(10):
        result = await run_bench(config)
    assert {kind: count for kind, count in result.errors.items() if count} == errors
    assert result.ok == ok
    assert result.retried == retried
    assert len(result.latencies) == ok


async def test_timeout_counted(nursery: trio.Nursery) -> None:
    async def never_answer(stream: trio.SocketStream) -> None:
        async with stream:
            await trio.sleep_forever()

    port = await start_fake_server(nursery, never_answer)
    request, checker = search_request("morpheus")
    config = BenchConfig("127.0.0.1", port, request, checker, requests=3, timeout=0.05)
    result = await run_bench(config)
    assert result.errors["timeout"] == 3


async def test_connect_error_counted() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens there now.
    request, checker = search_request("morpheus")
    config = BenchConfig("127.0.0.1", port, request, checker, requests=3, mode="oneshot")
    result = await run_bench(config)
    assert result.errors["connect_error"] == 3


@pytest.mark.parametrize(
    ("content", "encoding", "right"),
    [
        (b'{"result":"yes"}', "utf-8", True),
        ('{"result": "yes"}'.encode("utf-16"), "utf-16", True),
        (b'{"result": "yes", "error": "x"}', "utf-8", False),
        (b'{"result": "no"}', "utf-8", False),
        (b'{"result": ["yes"]}', "utf-8", False),
        (b"not json", "utf-8", False),
        (b'{"result": "yes"}', "no-such-codec", False),
    ],
)
def test_checker_decodes_any_encoding_of_the_answer(
    content: bytes, encoding: str, right: bool
) -> None:
    checker = AnswerChecker("text/json", result="yes")
    message = Message(content, "text/json", encoding)
    assert checker.is_right(message) is right
    # The second time, the remembered bytes decide; the answer is the same.
    assert checker.is_right(message) is right


def test_checker_rejects_another_content_type() -> None:
    checker = AnswerChecker("text/json", result="yes")
    assert not checker.is_right(Message(b'{"result": "yes"}', "text/plain"))


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc (Linux)")
def test_process_tree_cpu_counts_children() -> None:
    before = process_tree_cpu_seconds(os.getpid())
    assert before is not None
    # A child that burns CPU and is reaped still counts, through cutime.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import time\nend = time.process_time() + 0.2\nwhile time.process_time() < end: pass",
        ],
        check=True,
    )
    after = process_tree_cpu_seconds(os.getpid())
    assert after is not None
    assert after - before >= 0.15
    assert process_tree_cpu_seconds(2**22 + 1) is None


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["127.0.0.1", "0"], "argument PORT: must be an integer from 1 to 65535, not 0"),
        (["127.0.0.1", "99117"], "argument PORT: must be an integer from 1 to 65535, not 99117"),
        (["[127.0.0.1]", "5"], "argument HOST: must be an address or hostname, with brackets"),
    ],
)
def test_a_bad_address_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], arguments: list[str], said: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        bench_main(arguments)
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith(f"trio-search-bench: error: {said}")
