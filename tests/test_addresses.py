"""Addresses: IPv4 and IPv6 literals, hostnames, and ``--host ''`` for every
interface; the client over IPv6. IPv6 parts skip on a machine without an
IPv6 loopback."""

from __future__ import annotations

import logging
import os
import socket
import sys

import pytest
import trio

from tests.helpers import (
    raw_message,
    read_messages,
    result_of,
    server_command,
    server_subprocess,
    start_server,
)
from trio_search import ServerSettings, open_client

RABBIT = "Follow the white rabbit. \U0001f430"
CLIENT_COMMAND = os.path.join(os.path.dirname(sys.executable), "trio-search-client")


def have_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not have_ipv6_loopback(), reason="no IPv6 loopback (::1)")


@needs_ipv6
async def test_ipv6_literal(nursery: trio.Nursery, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    server, (host, port) = await start_server(nursery, host="::1")
    assert host == "::1"
    with trio.fail_after(10):
        async with open_client("::1", port) as client:
            assert await client.search("morpheus") == RABBIT
        # Logs name an IPv6 peer as [address]:port.
        async with await trio.open_tcp_stream("::1", port) as stream:
            await stream.send_all(raw_message(b"{not json"))
            (response,) = await read_messages(stream, 1)
    assert result_of(response)["error"]
    assert any(r.getMessage().startswith("[::1]:") for r in caplog.records), caplog.text
    assert server.addresses == [("::1", port)]


async def test_hostname(nursery: trio.Nursery) -> None:
    server, _ = await start_server(nursery, host="localhost")
    resolved = {info[4][0] for info in socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM)}
    # One listener per address the name resolves to.
    assert {host for host, _ in server.addresses} == resolved
    with trio.fail_after(10):
        for host, port in server.addresses:
            async with open_client(host, port) as client:
                assert await client.search("morpheus") == RABBIT
        async with open_client("localhost", server.addresses[0][1]) as client:
            assert await client.search("morpheus") == RABBIT


async def test_empty_host_listens_on_every_interface(nursery: trio.Nursery) -> None:
    server, _ = await start_server(nursery, host="")
    by_host = dict(server.addresses)
    assert "0.0.0.0" in by_host
    # Port 0 picks one port for every address.
    assert len(set(by_host.values())) == 1
    targets = [("127.0.0.1", by_host["0.0.0.0"])]
    if have_ipv6_loopback():
        assert "::" in by_host
        targets.append(("::1", by_host["::"]))
    with trio.fail_after(10):
        for host, port in targets:
            async with open_client(host, port) as client:
                assert await client.search("morpheus") == RABBIT


@needs_ipv6
async def test_command_empty_host_serves_ipv4_and_ipv6() -> None:
    async with server_subprocess("--host", "", listeners=2) as server:
        by_host = dict(server.addresses)
        assert set(by_host) == {"0.0.0.0", "::"}
        # --port 0 picks one port for both.
        assert by_host["0.0.0.0"] == by_host["::"]
        for host, port in [("127.0.0.1", by_host["0.0.0.0"]), ("::1", by_host["::"])]:
            with trio.fail_after(20):
                result = await trio.run_process(
                    [CLIENT_COMMAND, host, str(port), "search", "morpheus"],
                    capture_stdout=True,
                    capture_stderr=True,
                )
            assert result.stdout.decode() == f"Got result: {RABBIT}\n"


@needs_ipv6
async def test_commands_take_an_ipv6_host_in_brackets() -> None:
    # As --metrics [::1]:9100 and URLs write it: the brackets are dropped.
    async with server_subprocess("--host", "[::1]") as server:
        ((host, port),) = server.addresses
        assert host == "::1"
        with trio.fail_after(20):
            result = await trio.run_process(
                [CLIENT_COMMAND, "[::1]", str(port), "search", "morpheus"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    assert (result.returncode, result.stdout.decode()) == (0, f"Got result: {RABBIT}\n"), result


@needs_ipv6
async def test_settings_take_an_ipv6_host_in_brackets(nursery: trio.Nursery) -> None:
    # As the commands take it: kept without the brackets, as the resolver
    # wants it.
    assert ServerSettings(host="[::1]").host == "::1"
    server, (host, port) = await start_server(nursery, host="[::1]")
    assert host == "::1"
    assert server.addresses == [("::1", port)]
    with trio.fail_after(10):
        async with open_client("::1", port) as client:
            assert await client.search("morpheus") == RABBIT


BAD_BRACKETS = ["[127.0.0.1]", "[localhost]", "[::1", "::1]", "[::1]:65432", "[]"]


def bad_brackets(host: str) -> str:
    """Why ``ServerSettings`` and the commands refuse ``host``: one rule, one wording."""
    return (
        "must be an address or hostname, with brackets only around an IPv6 address "
        f"(as in [::1], without a port), not {host!r}"
    )


@pytest.mark.parametrize("host", BAD_BRACKETS)
def test_settings_refuse_brackets_around_anything_but_an_ipv6_address(host: str) -> None:
    with pytest.raises(ValueError) as raised:
        ServerSettings(host=host)
    assert str(raised.value) == f"host {bad_brackets(host)}"


@pytest.mark.parametrize("host", BAD_BRACKETS)
@pytest.mark.parametrize("command", ["server", "client"])
async def test_commands_refuse_brackets_around_anything_but_an_ipv6_address(
    command: str, host: str
) -> None:
    if command == "server":
        args = [*server_command(), "--port", "0", "--host", host]
        prefix = "trio-search-server: error: argument --host: "
    else:
        args = [CLIENT_COMMAND, host, "65432", "stats"]
        prefix = "trio-search-client: error: argument HOST: "
    with trio.fail_after(20):
        result = await trio.run_process(args, capture_stdout=True, capture_stderr=True, check=False)
    assert (result.returncode, result.stdout) == (2, b"")
    assert result.stderr.decode() == f"{prefix}{bad_brackets(host)} (see --help)\n"


@needs_ipv6
async def test_command_ipv6_literal_prints_bracketed_address() -> None:
    async with server_subprocess("--host", "::1") as server:
        ((_, port),) = server.addresses
        assert server.stdout == f"trio-search-server listening on [::1]:{port}\n".encode()
        with trio.fail_after(10):
            async with open_client("::1", port) as client:
                assert await client.search("ring") == (
                    "In the caves beneath the Misty Mountains. \U0001f48d"
                )
