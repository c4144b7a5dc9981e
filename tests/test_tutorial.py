"""The Real Python tutorial's own app-client.py and app-server.py, unchanged.

Their code is not ours to ship, so these tests run only where a copy of the
tutorial's ``python-sockets-tutorial`` folder is named by the environment
variable ``TRIO_SEARCH_TUTORIAL_DIR`` (it holds app-client.py, libclient.py,
app-server.py, libserver.py). Elsewhere they are skipped, and the same wire
behaviour is covered by tests/test_server.py and tests/test_client.py, whose
fake tutorial peers are written from PROTOCOL.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from tests.helpers import server_subprocess
from tests.test_cli import ENV, TIMEOUT, client_command, free_port, port_of, run

TUTORIAL = Path(os.environ.get("TRIO_SEARCH_TUTORIAL_DIR", "/nonexistent"))

pytestmark = pytest.mark.skipif(
    not (TUTORIAL / "app-client.py").is_file(),
    reason="set TRIO_SEARCH_TUTORIAL_DIR to the tutorial's python-sockets-tutorial folder",
)

#: (ACTION, VALUE, the line the tutorial's client prints for our answer).
EXCHANGES = [
    ("search", "morpheus", "Got result: Follow the white rabbit. \U0001f430"),
    ("search", "ring", "Got result: In the caves beneath the Misty Mountains. \U0001f48d"),
    ("search", "\U0001f436", "Got result: \U0001f43e Playing ball! \U0001f3d0"),
    ("search", "neo", "Got result: No match for 'neo'."),
    ("echo", "hello", "Got response: b'First 10 bytes of request: echohello'"),
]


@pytest.mark.parametrize(("action", "value", "line"), EXCHANGES)
async def test_tutorial_client_against_trio_search_server(
    action: str, value: str, line: str
) -> None:
    async with server_subprocess() as server:
        port = port_of(server)
        result = await run(
            [sys.executable, str(TUTORIAL / "app-client.py"), "127.0.0.1", str(port), action, value]
        )
    assert result.returncode == 0, result
    assert line in result.stdout.decode().splitlines()


@asynccontextmanager
async def tutorial_server() -> AsyncIterator[int]:
    """The tutorial's app-server.py on a free port; killed at the end."""
    port = await free_port()
    process = await trio.lowlevel.open_process(
        [sys.executable, str(TUTORIAL / "app-server.py"), "127.0.0.1", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        assert process.stdout is not None
        output = b""
        with trio.fail_after(TIMEOUT):
            while not re.search(rb"Listening on", output):
                chunk = await process.stdout.receive_some()
                assert chunk, f"app-server.py exited: {output!r}"
                output += chunk
        yield port
    finally:
        process.kill()
        with trio.move_on_after(TIMEOUT):
            await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()


async def test_trio_search_client_against_tutorial_server() -> None:
    async with tutorial_server() as port:
        for action, value, line in EXCHANGES:
            result = await run([*client_command(), "127.0.0.1", str(port), action, value])
            assert result.returncode == 0, result
            assert result.stdout.decode() == line + "\n"
