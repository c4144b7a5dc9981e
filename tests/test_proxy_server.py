"""The server behind a balancer: PROXY protocol headers on real sockets."""

from __future__ import annotations

import logging
import socket
import ssl
import struct

import pytest
import trio
import trustme

import trio_search
from tests.helpers import json_request, read_messages, read_until_eof, result_of, start_server
from trio_search import SearchServer, ServerSettings
from trio_search._trusted_proxies import TrustedProxies

MORPHEUS = json_request({"action": "search", "value": "morpheus"})
MORPHEUS_ANSWER = {"result": "Follow the white rabbit. \U0001f430"}
# Documentation addresses (RFC 5737), only ever inside headers.
V1 = b"PROXY TCP4 192.0.2.10 198.51.100.1 5555 65432\r\n"
V2 = (
    b"\r\n\r\n\x00\r\nQUIT\n"
    + bytes([0x21, 0x11])
    + struct.pack(">H", 12)
    + bytes([192, 0, 2, 20, 198, 51, 100, 1])
    + struct.pack(">HH", 6666, 65432)
)


async def test_a_v1_header_gives_the_clients_address_to_the_logs(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    _, (host, port) = await start_server(nursery, proxy_protocol=True)
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(host, port) as stream:
            # The header and the first request in one write, as a balancer may.
            await stream.send_all(V1 + MORPHEUS + json_request([]))
            answer, refused = await read_messages(stream, 2)
    assert result_of(answer) == MORPHEUS_ANSWER
    assert result_of(refused)["error"] == "not_an_object"
    assert "192.0.2.10:5555: request refused (not_an_object)" in caplog.text


async def test_a_v2_header_then_tls(nursery: trio.Nursery) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    _, (host, port) = await start_server(nursery, proxy_protocol=True, ssl_context=server_context)
    with trio.fail_after(10):
        tcp = await trio.open_tcp_stream(host, port)
        await tcp.send_all(V2)  # in clear, before the TLS handshake
        tls = trio.SSLStream(tcp, client_context, server_hostname="127.0.0.1")
        async with tls:
            await tls.send_all(MORPHEUS)
            (answer,) = await read_messages(tls, 1)
    assert result_of(answer) == MORPHEUS_ANSWER


async def test_an_untrusted_peer_is_closed_unanswered(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    server = SearchServer(
        ServerSettings(
            port=0,
            proxy_protocol=True,
            trusted_proxies=TrustedProxies.parse("198.51.100.0/24"),
        )
    )
    _, (host, port) = await start_server(nursery, server)
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(host, port) as stream:
            await stream.send_all(V1 + MORPHEUS)
            assert await read_until_eof(stream) == b""
    assert server.stats.errors["untrusted_proxy"] == 1
    assert "PROXY protocol header expected from a trusted proxy only" in caplog.text


@pytest.mark.parametrize(
    "garbage",
    [MORPHEUS, b"PROXY TCP4 192.0.2.10 198.51.100.1 5555\r\n", b"proxy tcp4 1.2.3.4\r\n"],
    ids=["our-protocol", "missing-port", "lower-case"],
)
async def test_a_malformed_header_is_closed(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, garbage: bytes
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_search")
    server, (host, port) = await start_server(nursery, proxy_protocol=True)
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(host, port) as stream:
            await stream.send_all(garbage)
            assert await read_until_eof(stream) == b""
    assert server.stats.errors["bad_proxy_header"] == 1


async def test_a_missing_header_times_out(nursery: trio.Nursery) -> None:
    server, (host, port) = await start_server(nursery, proxy_protocol=True, request_timeout=0.3)
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(host, port) as stream:
            await stream.send_all(b"PROXY TCP4 ")  # and then nothing
            assert await read_until_eof(stream) == b""
    assert server.stats.errors["proxy_header_timeout"] == 1


async def test_health_answers_ok(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery)
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(host, port) as stream:
            await stream.send_all(json_request({"action": "health"}))
            (answer,) = await read_messages(stream, 1)
    assert result_of(answer) == {"result": "ok"}


@pytest.mark.parametrize(
    "trusted",
    ["127.0.0.1", "127.0.0.0/8, ::1", ["127.0.0.1"], ("10.0.0.0/8", "127.0.0.0/8")],
)
async def test_trusted_proxies_given_as_text_or_a_list(
    nursery: trio.Nursery, trusted: object
) -> None:
    # An embedding program writes the networks as --trusted-proxies takes
    # them. A string used to be kept as is: every connection then failed
    # with AttributeError and closed without an answer.
    settings = ServerSettings(port=0, proxy_protocol=True, trusted_proxies=trusted)  # type: ignore[arg-type]
    assert isinstance(settings.trusted_proxies, trio_search.TrustedProxies)
    _, (host, port) = await start_server(nursery, SearchServer(settings))
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(host, port) as stream:
            await stream.send_all(V1 + MORPHEUS)
            (answer,) = await read_messages(stream, 1)
    assert result_of(answer) == MORPHEUS_ANSWER


async def test_a_balancer_connection_reset_before_its_header_is_a_lost_connection(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    # A balancer's health check may connect and reset at once: by the time
    # the server looks at who the peer is, it is gone (ENOTCONN). That is
    # the peer's doing, not an internal error with a traceback.
    server = SearchServer(ServerSettings(port=0, proxy_protocol=True))
    _, (host, port) = await start_server(nursery, server)
    probe = socket.create_connection((host, port))  # blocks: the server cannot accept yet
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    probe.close()  # RST
    with trio.fail_after(10):
        # Polling the counters is the point here.
        while server.stats.connections_total < 1 or server.stats.connections_open:  # noqa: ASYNC110
            await trio.sleep(0.01)
        async with await trio.open_tcp_stream(host, port) as stream:  # still serving
            await stream.send_all(V1 + MORPHEUS)
            (answer,) = await read_messages(stream, 1)
    assert result_of(answer) == MORPHEUS_ANSWER
    assert server.stats.errors.get("internal_error", 0) == 0
    assert server.stats.errors["connection_lost"] == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
