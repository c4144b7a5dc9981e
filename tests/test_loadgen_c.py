"""The C load generator of benchmarks/loadgen_c counts right answers, and
only right answers, whatever the server's JSON spacing (skipped without a C
compiler)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.helpers import raw_message, receive_exactly, start_fake_server, start_server

SOURCE = Path(__file__).resolve().parent.parent / "benchmarks" / "loadgen_c" / "loadgen.c"
COMPILER = next((name for name in ("cc", "gcc") if shutil.which(name)), None)

pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C compiler (cc, gcc)")


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert COMPILER is not None
    binary = tmp_path_factory.mktemp("loadgen") / "trio-search-loadgen-c"
    subprocess.run(
        [COMPILER, "-O2", "-Wall", "-Werror", "-o", str(binary), str(SOURCE)], check=True
    )
    return binary


async def run(binary: Path, address: tuple[str, int], *options: str) -> tuple[int, dict[str, Any]]:
    completed = await trio.run_process(
        [str(binary), address[0], str(address[1]), *options, "--json", "--timeout", "5"],
        capture_stdout=True,
        check=False,
    )
    return completed.returncode, json.loads(completed.stdout)


async def test_keepalive_pipelined(loadgen: Path, nursery: trio.Nursery) -> None:
    server, address = await start_server(nursery)
    status, result = await run(loadgen, address, "-c", "3", "-p", "4", "-n", "240")
    assert status == 0
    assert (result["ok"], result["failed"], result["mode"]) == (240, 0, "keepalive")
    assert server.stats.requests == 240
    assert server.stats.connections_total == 3
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert result["client_cpu_us_per_request"] is not None


async def test_oneshot(loadgen: Path, nursery: trio.Nursery) -> None:
    server, address = await start_server(nursery)
    status, result = await run(loadgen, address, "--mode", "oneshot", "-c", "4", "-n", "50")
    assert status == 0
    assert (result["ok"], result["failed"]) == (50, 0)
    assert server.stats.connections_total == 50


async def test_it_takes_the_options_benchmarks_run_py_gives(
    loadgen: Path, nursery: trio.Nursery
) -> None:
    # run.py gives every load generator --no-retry (the C one never retries).
    _, address = await start_server(nursery)
    status, result = await run(
        loadgen, address, "--mode", "oneshot", "-n", "20", "--no-retry", "--quiet"
    )
    assert status == 0
    assert (result["ok"], result["failed"]) == (20, 0)


async def test_a_wrong_answer_is_counted(loadgen: Path, nursery: trio.Nursery) -> None:
    _, address = await start_server(nursery)
    status, result = await run(loadgen, address, "-n", "5", "--expect", "something else")
    assert status == 1
    assert result["errors"] == {"wrong_answer": 5}
    assert "Follow the white rabbit" in result["first_errors"]["wrong_answer"]


async def test_no_match_answer_is_known(loadgen: Path, nursery: trio.Nursery) -> None:
    _, address = await start_server(nursery)
    status, result = await run(loadgen, address, "-n", "5", "-q", "neo")
    assert (status, result["ok"]) == (0, 5)


@pytest.mark.parametrize(
    "content",
    [
        b'{"result":"Follow the white rabbit. \xf0\x9f\x90\xb0"}',
        b'{ "result" : "Follow the white rabbit. \\ud83d\\udc30" }',
    ],
    ids=["compact", "escaped"],
)
async def test_other_json_spacing_is_right(
    loadgen: Path, nursery: trio.Nursery, content: bytes
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        async with stream:
            length = int.from_bytes(await receive_exactly(stream, 2), "big")
            header = json.loads(await receive_exactly(stream, length))
            await receive_exactly(stream, header["content-length"])
            await stream.send_all(raw_message(content))

    address = await start_fake_server(nursery, handler)
    status, result = await run(loadgen, address, "--mode", "oneshot", "-n", "3")
    assert (status, result["ok"]) == (0, 3)


async def test_a_server_that_closes_fails_as_closed(loadgen: Path, nursery: trio.Nursery) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await stream.aclose()

    address = await start_fake_server(nursery, handler)
    status, result = await run(loadgen, address, "--mode", "oneshot", "-n", "3")
    assert status == 1
    assert result["errors"] == {"closed": 3}


async def test_one_shot_connections_come_from_many_loopback_addresses(
    loadgen: Path, nursery: trio.Nursery
) -> None:
    # So that ephemeral ports in TIME_WAIT do not cap a one-shot run.
    sources: set[str] = set()

    async def handler(stream: trio.SocketStream) -> None:
        async with stream:
            sources.add(stream.socket.getpeername()[0])
            length = int.from_bytes(await receive_exactly(stream, 2), "big")
            header = json.loads(await receive_exactly(stream, length))
            await receive_exactly(stream, header["content-length"])
            await stream.send_all(
                raw_message(b'{"result": "Follow the white rabbit. \\ud83d\\udc30"}')
            )

    address = await start_fake_server(nursery, handler)
    status, result = await run(loadgen, address, "--mode", "oneshot", "-c", "2", "-n", "100")
    assert (status, result["ok"]) == (0, 100)
    assert len(sources) == 64
    assert all(source.startswith("127.") for source in sources)
