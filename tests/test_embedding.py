"""docs/embedding.md's own-application example, run against a real socket."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

import trio_search
from tests.helpers import start_server
from trio_search import Message

EMBEDDING_DOC = Path(__file__).parent.parent / "docs" / "embedding.md"


def hashing_app() -> Any:
    """A new ``HashingApp``: the example of docs/embedding.md, run from the
    page itself, so that what it shows is what is tested."""
    blocks = re.findall(r"```python\n(.*?)```", EMBEDDING_DOC.read_text(encoding="utf-8"), re.S)
    (example,) = [block for block in blocks if "class HashingApp" in block]
    namespace: dict[str, Any] = {}
    exec(compile(example, str(EMBEDDING_DOC), "exec"), namespace)
    return namespace["HashingApp"]()


def request(obj: object) -> Message:
    return Message(trio_search.encode_json(obj), "text/json", "utf-8")


async def test_an_application_of_ones_own_answers_in_order(nursery: trio.Nursery) -> None:
    server = trio_search.SearchServer(trio_search.ServerSettings(port=0), app=hashing_app())
    _, (host, port) = await start_server(nursery, server)
    async with trio_search.open_client(host, port) as client:
        # Pipelined: the deferred answers keep their places among the inline ones.
        replies = await client.request_many(
            [
                request({"action": "sha256", "value": "a"}),
                request({"action": "search", "value": "ring"}),
                request({"action": "sha256", "value": "b"}),
                request({"action": "query", "value": "rabit"}),
            ]
        )
        results = [trio_search.decode_json(r.content, "utf-8")["result"] for r in replies]
    assert results[0] == hashlib.sha256(b"a").hexdigest()
    assert results[1] == "In the caves beneath the Misty Mountains. \U0001f48d"
    assert results[2] == hashlib.sha256(b"b").hexdigest()
    assert [hit["key"] for hit in results[3]] == ["morpheus"]
    assert server.search_index is None  # the server serves our app, not its own


async def test_the_example_answers_any_text_a_client_can_send(nursery: trio.Nursery) -> None:
    """A lone surrogate is valid JSON text: the example hashes it rather
    than failing in its worker thread, which closed the connection unanswered."""
    server = trio_search.SearchServer(trio_search.ServerSettings(port=0), app=hashing_app())
    _, (host, port) = await start_server(nursery, server)
    async with trio_search.open_client(host, port, retry=False) as client:
        digest = await client.request_json({"action": "sha256", "value": "\ud800"})
        assert digest == {"result": hashlib.sha256(b"\xed\xa0\x80").hexdigest()}
        assert await client.search("ring") == "In the caves beneath the Misty Mountains. \U0001f48d"


async def test_the_examples_search_app_answers_stats_once_given_the_counters(
    nursery: trio.Nursery,
) -> None:
    """As docs/embedding.md says: invalid until given, then the server's."""
    app = hashing_app()
    server = trio_search.SearchServer(trio_search.ServerSettings(port=0), app=app)
    _, (host, port) = await start_server(nursery, server)
    async with trio_search.open_client(host, port) as client:
        refused = await client.request_json({"action": "stats"})
        assert refused["error"] == "invalid_action"
        app.search.stats = lambda: server.stats.snapshot(trio.current_time())
        counters = (await client.request_json({"action": "stats"}))["result"]
    assert counters["connections_open"] == 1
    assert counters["index_documents"] == 3


async def test_the_page_names_what_the_stats_action_adds_to_the_snapshot(
    nursery: trio.Nursery,
) -> None:
    """The page said the snapshot "gives what the `stats` action answers";
    the answer has more (buffered_bytes*, index_*, query_cache_*)."""
    server, (host, port) = await start_server(nursery)
    async with trio_search.open_client(host, port) as client:
        answered = (await client.request_json({"action": "stats"}))["result"]
    snapshot = server.stats.snapshot(trio.current_time())
    assert set(snapshot) < set(answered)
    text = EMBEDDING_DOC.read_text(encoding="utf-8")
    bullet = text.split("- `server.stats` holds the live counters", 1)[1].split("\n\n", 1)[0]
    for key in answered:
        assert f"`{key}`" in bullet, key


def test_the_page_says_which_error_a_bad_setting_raises() -> None:
    with pytest.raises(ValueError) as raised:
        trio_search.ServerSettings(port=-1)
    assert not isinstance(raised.value, trio_search.ConfigurationError)
    text = " ".join(EMBEDDING_DOC.read_text(encoding="utf-8").split())
    assert f"`ServerSettings(port=-1)`: `{raised.value}`" in text
    errors = text.split("## Errors", 1)[1]
    assert "`ValueError` for a field of `ServerSettings`" in errors


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("host", 5, "host must be an address or hostname (a string), not 5"),
        ("proxy_protocol", "no", "proxy_protocol must be True or False, not 'no'"),
        ("proxy_protocol", 1, "proxy_protocol must be True or False, not 1"),
        ("reuse_port", "yes", "reuse_port must be True or False, not 'yes'"),
        ("ssl_context", "ctx", "ssl_context must be an ssl.SSLContext or None, not 'ctx'"),
        (
            "trusted_proxies",
            "127.0.0.1,localhost",
            "trusted_proxies: 'localhost' is not an IPv4 or IPv6 network in CIDR notation, "
            "like 10.0.0.0/8 or fd00::/8",
        ),
        (
            "trusted_proxies",
            ["10.0.0.0/8", 10],
            "trusted_proxies: 10 is not an IPv4 or IPv6 network in CIDR notation, "
            "like 10.0.0.0/8 or fd00::/8",
        ),
        (
            "trusted_proxies",
            5,
            "trusted_proxies must be a TrustedProxies, CIDRs separated by commas, "
            "or a list of networks, not 5",
        ),
    ],
)
def test_every_setting_is_checked_on_creation(setting: str, value: object, message: str) -> None:
    # The page says ServerSettings "validates every field on creation".
    with pytest.raises(ValueError) as raised:
        trio_search.ServerSettings(**{setting: value})  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_a_client_side_ssl_context_is_refused() -> None:
    # Every handshake with it would fail ("Cannot create a server socket
    # with a PROTOCOL_TLS_CLIENT context"): said once, at creation.
    with pytest.raises(ValueError, match=r"^ssl_context must be a server-side context"):
        trio_search.ServerSettings(ssl_context=ssl.create_default_context())
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    assert trio_search.ServerSettings(ssl_context=server_side).ssl_context is server_side


def test_trusted_proxies_are_public_and_take_networks() -> None:
    proxies = trio_search.TrustedProxies(["10.0.0.0/8", ipaddress.ip_network("fd00::/8")])
    assert proxies == trio_search.TrustedProxies.parse("10.0.0.0/8,fd00::/8")
    assert proxies.is_trusted("10.1.2.3")
    assert trio_search.ServerSettings(trusted_proxies=proxies).trusted_proxies is proxies
    with pytest.raises(ValueError, match="not the string"):
        trio_search.TrustedProxies("10.0.0.0/8")  # type: ignore[arg-type]


#: A program that embeds the server and sends it a request it refuses
#: (one WARNING line); "configured" sets up logging as a program would.
REFUSED_REQUEST_PROGRAM = """
import logging, sys
import trio, trio_search

async def main():
    server = trio_search.SearchServer(trio_search.ServerSettings(port=0))
    async with trio.open_nursery() as nursery:
        (host, port), *_ = await nursery.start(server.serve)
        async with await trio.open_tcp_stream(host, port) as stream:
            await stream.send_all(trio_search.encode_message(trio_search.Message(b"[]")))
            protocol = trio_search.MessageProtocol()
            while protocol.next_message() is trio_search.NEED_DATA:
                protocol.receive_data(await stream.receive_some())
        server.shutdown()

if sys.argv[1:] == ["configured"]:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
trio.run(main)
"""


@pytest.mark.parametrize("configured", [False, True])
def test_the_library_prints_nothing_unless_logging_is_configured(configured: bool) -> None:
    # docs/logging.md: embedded, the server "configures nothing". Without a
    # NullHandler, Python's last-resort handler printed its WARNING lines
    # ("127.0.0.1:35136: request refused (not_an_object)") to stderr.
    ran = subprocess.run(
        [sys.executable, "-c", REFUSED_REQUEST_PROGRAM, *(["configured"] if configured else [])],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    if configured:
        assert re.fullmatch(
            r"WARNING trio_search: 127\.0\.0\.1:\d+: request refused \(not_an_object\)\n",
            ran.stderr,
        ), ran.stderr
    else:
        assert ran.stderr == ""
