"""TLS: the embedded server and the commands, with certificates from trustme.

Timing (a stalled handshake bounded by the request timeout) runs on the
autojump clock over memory streams; the rest over real loopback sockets.
"""

from __future__ import annotations

import functools
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme

from tests.helpers import (
    json_request,
    read_messages,
    read_until_eof,
    result_of,
    server_subprocess,
    start_server,
)
from trio_search import SearchServer, ServerResponseError, ServerSettings, open_client

MORPHEUS = json_request({"action": "search", "value": "morpheus"})
MORPHEUS_ANSWER = "Follow the white rabbit. \U0001f430"
CLIENT_COMMAND = os.path.join(os.path.dirname(sys.executable), "trio-search-client")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1", "::1")


@pytest.fixture
def server_context(server_cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    return context


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_tls_client_is_served(
    nursery: trio.Nursery, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    server, (host, port) = await start_server(nursery, ssl_context=server_context)
    with trio.fail_after(10):
        async with open_client(host, port, ssl_context=client_context) as client:
            for _ in range(3):
                assert await client.search("morpheus") == MORPHEUS_ANSWER
            assert await client.search("ring") == "In the caves beneath the Misty Mountains. 💍"
        # The client closed without TLS's close_notify, between two messages:
        # a normal end for the server, not an error.
        while server.stats.connections_open:  # noqa: ASYNC110 (no event to wait on)
            await trio.sleep(0.01)
    assert server.stats.requests == 4
    assert server.stats.errors == {}


async def test_untrusted_certificate_is_refused_by_the_client(
    nursery: trio.Nursery, server_context: ssl.SSLContext
) -> None:
    _, (host, port) = await start_server(nursery, ssl_context=server_context)
    with trio.fail_after(10), pytest.raises(trio.BrokenResourceError) as info:
        async with open_client(host, port, ssl_context=ssl.create_default_context()):
            pass
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


async def test_plaintext_client_is_dropped_and_others_served(
    nursery: trio.Nursery,
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, (host, port) = await start_server(
        nursery, ssl_context=server_context, request_timeout=30
    )
    with trio.fail_after(5):
        async with await trio.open_tcp_stream(host, port) as plain:
            await plain.send_all(MORPHEUS)
            # Dropped at once (long before the 30 s request timeout); what it
            # gets is no answer, at most a TLS alert.
            try:
                data = await read_until_eof(plain)
            except trio.BrokenResourceError:
                data = b""
            assert b"rabbit" not in data
        async with open_client(host, port, ssl_context=client_context) as client:
            assert await client.search("morpheus") == MORPHEUS_ANSWER
    assert server.stats.errors["tls_handshake"] == 1
    assert any("TLS handshake failed" in r.getMessage() for r in caplog.records)


#: What a plain client is told by a server that closed without a word: a
#: TLS server drops a plain client so, but so may other servers.
MAY_EXPECT_TLS = (
    "the server closed the connection without answering; "
    "it may expect TLS: connect with --tls (ssl_context= in Python)"
)


async def test_plaintext_client_is_told_the_server_may_expect_tls(
    nursery: trio.Nursery, server_context: ssl.SSLContext
) -> None:
    _, (host, port) = await start_server(nursery, ssl_context=server_context)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            with pytest.raises(ServerResponseError) as raised:
                await client.search("morpheus")
    assert (raised.value.code, raised.value.message) == ("no_response", MAY_EXPECT_TLS)
    # The command says it too, naming its option.
    status, out, err = await run_client(host, str(port), "search", "morpheus")
    assert (status, out) == (1, "")
    assert err == f"trio-search-client: error: bad response from {host}:{port}: {MAY_EXPECT_TLS}\n"


async def test_tls_client_closed_without_an_answer_is_not_told_about_tls(
    nursery: trio.Nursery, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    # Over TLS already, a silent close says nothing of TLS.
    async def close_after_one_request(stream: trio.abc.Stream) -> None:
        async with stream:
            await read_messages(stream, 1)

    listeners = await nursery.start(
        functools.partial(
            trio.serve_ssl_over_tcp, close_after_one_request, 0, server_context, host="127.0.0.1"
        )
    )
    host, port = listeners[0].transport_listener.socket.getsockname()[:2]
    with trio.fail_after(5):
        async with open_client(host, port, ssl_context=client_context) as client:
            with pytest.raises(ServerResponseError) as raised:
                await client.search("morpheus")
    assert raised.value.message == "the server closed the connection without answering"


async def client_hello(client_context: ssl.SSLContext) -> bytes:
    """The first bytes a TLS client sends."""
    raw_client, raw_peer = trio.testing.memory_stream_pair()
    tls = trio.SSLStream(raw_client, client_context, server_hostname="localhost")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tls.do_handshake)
        hello = await raw_peer.receive_some()
        nursery.cancel_scope.cancel()
    return bytes(hello)


def tls_pair(
    server: SearchServer, nursery: trio.Nursery, server_context: ssl.SSLContext
) -> trio.abc.Stream:
    """A raw client end whose server end the server serves over TLS."""
    raw_client, raw_server = trio.testing.memory_stream_pair()
    tls_server = trio.SSLStream(raw_server, server_context, server_side=True)
    nursery.start_soon(server.handle_stream, tls_server, "memory")
    return raw_client


@pytest.mark.parametrize("sent", ["nothing", "half a ClientHello"])
async def test_stalled_handshake_is_bounded_by_the_request_timeout(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    sent: str,
) -> None:
    server = SearchServer(
        ServerSettings(port=0, request_timeout=5, idle_timeout=100, ssl_context=server_context)
    )
    start = trio.current_time()
    stalled = tls_pair(server, nursery, server_context)
    if sent != "nothing":
        hello = await client_hello(client_context)
        await stalled.send_all(hello[: len(hello) // 2])
    # Meanwhile a good TLS client is served, with no time passing.
    good_raw = tls_pair(server, nursery, server_context)
    good = trio.SSLStream(good_raw, client_context, server_hostname="localhost")
    with trio.fail_after(60):
        await good.send_all(MORPHEUS)
        (response,) = await read_messages(good, 1)
        assert result_of(response) == {"result": MORPHEUS_ANSWER}
        assert trio.current_time() == start
        # The stalled one is dropped at the request timeout exactly.
        assert await read_until_eof(stalled) == b""
    assert trio.current_time() - start == pytest.approx(5)
    assert server.stats.errors["tls_handshake_timeout"] == 1


@pytest.fixture
def pem_files(tmp_path: Path, ca: trustme.CA, server_cert: trustme.LeafCert) -> Iterator[Path]:
    server_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    for pem in server_cert.cert_chain_pems[1:]:
        pem.write_to_path(str(tmp_path / "cert.pem"), append=True)
    server_cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    yield tmp_path


async def run_client(*args: str) -> tuple[int, str, str]:
    with trio.fail_after(20):
        result = await trio.run_process(
            [CLIENT_COMMAND, *args], capture_stdout=True, capture_stderr=True, check=False
        )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_commands_over_tls(pem_files: Path) -> None:
    args = ["--tls-cert", str(pem_files / "cert.pem"), "--tls-key", str(pem_files / "key.pem")]
    async with server_subprocess(*args) as server:
        host, port = server.addresses[0]
        status, out, err = await run_client(
            host, str(port), "search", "morpheus", "--tls", "--cafile", str(pem_files / "ca.pem")
        )
        assert (status, out, err) == (0, f"Got result: {MORPHEUS_ANSWER}\n", "")
        # Without the CA the client refuses the certificate, in one line.
        status, out, err = await run_client(host, str(port), "search", "morpheus", "--tls")
        assert status == 1 and out == ""
        assert "certificate verify failed" in err and len(err.splitlines()) == 1
        # A plaintext client gets no answer.
        status, out, err = await run_client(host, str(port), "search", "morpheus")
        assert status == 1 and out == ""


async def run_server_command(*options: str) -> subprocess.CompletedProcess[bytes]:
    """``trio-search-server --port 0 OPTIONS``, run to its end."""
    command = os.path.join(os.path.dirname(sys.executable), "trio-search-server")
    return await trio.run_process(
        [command, "--port", "0", *options], capture_stdout=True, capture_stderr=True, check=False
    )


async def test_server_command_refuses_half_a_tls_configuration(pem_files: Path) -> None:
    result = await run_server_command("--tls-cert", str(pem_files / "cert.pem"))
    assert result.returncode == 2  # a bad option, as for any other
    assert b"--tls-cert and --tls-key must be given together" in result.stderr


async def test_server_command_names_a_missing_key_file(pem_files: Path) -> None:
    missing = pem_files / "no-such-key.pem"
    result = await run_server_command(
        "--tls-cert", str(pem_files / "cert.pem"), "--tls-key", str(missing)
    )
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"trio-search-server: error: --tls-key {missing}: no such file\n"
    )


async def test_requests_buffered_inside_tls_are_answered_at_shutdown(
    nursery: trio.Nursery, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    # A large request, then two small ones as separate writes (separate TLS
    # records), then a graceful shutdown: reading the large one pulls the
    # small ones out of the socket into the TLS object, where a check of the
    # socket alone does not see them. All three must be answered.
    server, (host, port) = await start_server(nursery, ssl_context=server_context)
    large = json_request({"action": "search", "value": "x" * 200_000})
    with trio.fail_after(20):
        for _ in range(5):
            tcp = await trio.open_tcp_stream(host, port)
            client = trio.SSLStream(tcp, client_context, server_hostname="127.0.0.1")
            await client.do_handshake()
            await client.send_all(large)
            await client.send_all(MORPHEUS)
            await client.send_all(MORPHEUS)
            await trio.sleep(0.005)
            server.shutdown()
            first, second, third = await read_messages(client, 3)
            assert result_of(first)["result"] == f"No match for '{'x' * 200_000}'."
            assert result_of(second)["result"] == MORPHEUS_ANSWER
            assert result_of(third)["result"] == MORPHEUS_ANSWER
            await client.aclose()
            server, (host, port) = await start_server(nursery, ssl_context=server_context)
