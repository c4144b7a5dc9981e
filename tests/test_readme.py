"""README.md's examples, run as a reader would run them."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import json_request, server_subprocess
from tests.test_cli import client_command, port_of, run

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_block(language: str, containing: str) -> str:
    """The one ``language`` code block of README.md holding ``containing``."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    (block,) = [block for block in blocks if containing in block]
    return block


@pytest.mark.parametrize(
    "some_bytes",
    [json_request({"action": "search", "value": "ring"}) * 2, b"", json_request([])[:5]],
    ids=["two-messages", "peer-closed", "partial"],
)
def test_the_protocol_loop_ends(some_bytes: bytes) -> None:
    # It looped until NEED_DATA, which never comes after receive_data(b""):
    # next_message() answers CLOSED at every call, so it spun forever.
    example = readme_block("python", "MessageProtocol()")
    program = f"import trio_search\nsome_bytes = {some_bytes!r}\n{example}print('ended')\n"
    ran = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=True
    )
    assert ran.stdout == "ended\n"


async def test_the_client_session_prints_what_it_shows() -> None:
    # "Ask it something": each command against a fresh server, in order. The
    # stats line said connections_total 4; the stats command is the fifth.
    session = readme_block("console", "trio-search-client 127.0.0.1 65432 stats")
    steps = re.findall(r"^\$ (.*)\n((?:[^$].*\n)*)", session, re.M)
    assert len(steps) == 5
    async with server_subprocess() as server:
        port = port_of(server)
        for command, shown in steps:
            program, *args = shlex.split(command.replace("65432", str(port)))
            assert program == "trio-search-client"
            result = await run([*client_command(), *args])
            assert result.returncode == 0, result
            printed = result.stdout.decode()
            if shown.endswith(", ...}\n"):  # the line is cut short
                assert printed.startswith(shown.removesuffix(" ...}\n")), (command, printed)
            else:
                assert printed == shown, command
