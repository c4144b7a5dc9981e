"""The client API against the real server, and against servers that misbehave
or close after each reply (as the tutorial's app-server.py does)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from tests.helpers import (
    TUTORIAL_DATA,
    ClosingServer,
    json_response,
    raw_message,
    read_messages,
    result_of,
    serve_one_request_then_close,
    start_fake_server,
    start_server,
)
from trio_search import (
    NEED_DATA,
    ErrorResponse,
    Hit,
    Message,
    MessageProtocol,
    QueryResult,
    SearchApp,
    SearchClient,
    SearchServer,
    ServerResponseError,
    ServerSettings,
    encode_message,
    open_client,
)
from trio_search._client import parse_query_answer, query_request
from trio_search._index import index_of_mapping

RABBIT = TUTORIAL_DATA["morpheus"]


def search_request(value: str) -> Message:
    return Message(json.dumps({"action": "search", "value": value}).encode())


async def test_search_hits_and_miss(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            answers = {key: await client.search(key) for key in [*TUTORIAL_DATA, "neo"]}
    assert answers == {**TUTORIAL_DATA, "neo": "No match for 'neo'."}


async def test_many_requests_over_one_connection(nursery: trio.Nursery) -> None:
    server, (host, port) = await start_server(nursery)
    with trio.fail_after(10):
        async with open_client(host, port) as client:
            for i in range(300):
                assert await client.search(f"key{i}") == f"No match for 'key{i}'."
    assert server.stats.connections_total == 1


async def test_request_many_is_answered_in_order(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery)
    keys = [f"key{i}" if i % 3 else "morpheus" for i in range(100)]
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            responses = await client.request_many(search_request(k) for k in keys)
    assert [result_of(r)["result"] for r in responses] == [
        RABBIT if k == "morpheus" else f"No match for '{k}'." for k in keys
    ]


async def test_request_many_sends_before_reading(nursery: trio.Nursery) -> None:
    """A server that answers only once it holds the whole batch would wait
    forever for a client that waits for each answer before the next send."""
    count = 20

    async def answer_whole_batches(stream: trio.SocketStream) -> None:
        async with stream:
            requests = await read_messages(stream, count)
            app = SearchApp()
            await stream.send_all(
                b"".join(encode_message(app.respond(r).message) for r in requests)
            )

    host, port = await start_fake_server(nursery, answer_whole_batches)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            responses = await client.request_many(search_request("ring") for _ in range(count))
    assert len(responses) == count


async def test_request_binary(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            response = await client.request_binary(b"\x00\x01binary payload")
    assert response.content == b"First 10 bytes of request: \x00\x01binary p"
    assert response.content_type == "binary/custom-server-binary-type"
    assert response.content_encoding == "binary"


async def test_request_json_stats(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            for key in TUTORIAL_DATA:
                await client.search(key)
            answer = await client.request_json({"action": "stats"}, encoding="utf-16")
    stats = answer["result"]
    assert stats["requests"] == 3
    assert stats["connections_open"] == 1


async def test_error_answer_raises_error_response(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery, max_content_length=64)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            with pytest.raises(ErrorResponse) as info:
                await client.search("x" * 100)
    assert info.value.code == "content_too_long"
    assert info.value.message.startswith("Error: ")


async def test_client_over_memory_streams() -> None:
    server = SearchServer()
    client_stream, server_stream = trio.testing.memory_stream_pair()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle_stream, server_stream)
            client = SearchClient(client_stream)
            assert await client.search("morpheus") == RABBIT
            await client.aclose()


#: Documents for ranking: a key that is the query, words matched exactly, as
#: a prefix ("rabbits") and with a typo ("rabit").
RANKING_DATA = {
    "rabbit": "A small mammal with long ears.",
    "hole": "Down the rabbit hole we go.",
    "typo": "A rabit, spelled badly.",
    "warren": "Where rabbits live, many rabbits.",
    "morpheus": RABBIT,
    "ring": TUTORIAL_DATA["ring"],
}


async def start_server_with(nursery: trio.Nursery, data: dict[str, str]) -> tuple[str, int]:
    """Start a server on port 0 that searches ``data`` (with field queries);
    return its address."""
    server = SearchServer(ServerSettings(port=0), index=index_of_mapping(data, field_queries=True))
    _, address = await start_server(nursery, server)
    return address


async def test_query_returns_typed_hits(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            result = await client.query("rabit")
    assert isinstance(result, QueryResult)
    assert result.total == 1
    (hit,) = result.hits
    assert isinstance(hit, Hit)
    assert (hit.key, hit.answer) == ("morpheus", RABBIT)
    assert hit.highlight == "Follow the white <em>rabbit</em>. \U0001f430"
    assert isinstance(hit.score, float) and hit.score > 0


async def test_query_ranks_key_then_exact_words_then_typos(nursery: trio.Nursery) -> None:
    host, port = await start_server_with(nursery, RANKING_DATA)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            ranked = await client.query("rabbit")
            typo = await client.query("rabit")
            no_typos = await client.query("rabit", typos=False)
            started = await client.query("rabb")
            whole_word = await client.query("rabb", prefix=False)
            answers_only = await client.query("rabbit", fields=["answer"])
    keys = [hit.key for hit in ranked.hits]
    # The exact key first, though its answer lacks the word; typos last.
    assert keys[0] == "rabbit"
    assert set(keys[1:3]) == {"hole", "morpheus"}
    assert keys[3:] == ["warren", "typo"]
    assert ranked.total == 5
    # The document spelled as the query is the one without typos.
    assert typo.hits[0].key == "typo"
    assert [hit.key for hit in no_typos.hits] == ["typo"]
    assert {"hole", "warren"} <= {hit.key for hit in started.hits}
    assert whole_word == QueryResult([], 0)
    assert "rabbit" not in {hit.key for hit in answers_only.hits}


async def test_query_pages_with_limit_and_offset(nursery: trio.Nursery) -> None:
    # Answers of growing length, so that BM25 scores differ.
    data = {f"doc{i:02}": "rabbit" + " hop" * i for i in range(25)}
    host, port = await start_server_with(nursery, data)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            everything = await client.query("rabbit", limit=25)
            pages = [await client.query("rabbit", limit=10, offset=o) for o in (0, 10, 20, 30)]
            default = await client.query("rabbit")
    keys = [hit.key for hit in everything.hits]
    assert keys == [f"doc{i:02}" for i in range(25)]  # the shortest answer first
    assert [[hit.key for hit in page.hits] for page in pages] == [
        keys[:10],
        keys[10:20],
        keys[20:],
        [],
    ]
    assert {page.total for page in pages} == {25}
    assert default.hits == pages[0].hits


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"fields": ["nope"]}, "bad_query"),
        ({"limit": 0}, "bad_query"),
        ({"limit": 101}, "bad_query"),
        ({"offset": -1}, "bad_query"),
        ({"text": "x" * 513}, "query_too_long"),
        ({"text": " ".join(["rabbit"] * 11)}, "query_too_long"),
    ],
    ids=["unknown field", "limit 0", "limit 101", "offset -1", "513 characters", "11 words"],
)
async def test_query_error_raises_and_keeps_the_connection(
    nursery: trio.Nursery, options: dict[str, object], code: str
) -> None:
    server, (host, port) = await start_server(nursery)
    text = options.pop("text", "rabbit")
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            with pytest.raises(ErrorResponse) as info:
                await client.query(text, **options)  # type: ignore[arg-type]
            assert info.value.code == code
            assert info.value.message.startswith("Error: ")
            # Still usable, for a query and for a search.
            assert [hit.key for hit in (await client.query("rabbit")).hits] == ["morpheus"]
            assert await client.search("ring") == TUTORIAL_DATA["ring"]
    assert server.stats.connections_total == 1


def test_query_request_sends_every_option() -> None:
    assert query_request("white rabbit") == {
        "action": "query",
        "value": "white rabbit",
        "limit": 10,
        "offset": 0,
        "typos": True,
        "prefix": True,
    }
    request = query_request("x", limit=3, offset=6, typos=False, prefix=False, fields=("key",))
    assert request["fields"] == ["key"]
    assert (request["limit"], request["offset"], request["typos"], request["prefix"]) == (
        3,
        6,
        False,
        False,
    )
    with pytest.raises(TypeError):
        query_request("x", fields="answer")


def test_parse_query_answer_ignores_extra_keys() -> None:
    hit = {"key": "k", "answer": "a", "score": 2, "highlight": "<em>a</em>", "new": 1}
    result = parse_query_answer({"result": [hit], "total": 7, "took_ms": 3})
    assert result == QueryResult([Hit("k", "a", 2.0, "<em>a</em>")], 7)
    assert type(result.hits[0].score) is float


GOOD_HIT = {"key": "k", "answer": "a", "score": 1.5, "highlight": "a"}
MALFORMED_ANSWERS = {
    "result a string": {"result": "No match", "total": 0},
    "result an object": {"result": {}, "total": 0},
    "no total": {"result": []},
    "total a string": {"result": [], "total": "1"},
    "total a bool": {"result": [], "total": True},
    "total negative": {"result": [], "total": -1},
    "hit a list": {"result": [["k", "a"]], "total": 1},
    "hit without key": {"result": [{**GOOD_HIT, "key": None}], "total": 1},
    "answer a number": {"result": [{**GOOD_HIT, "answer": 1}], "total": 1},
    "no highlight": {
        "result": [{k: v for k, v in GOOD_HIT.items() if k != "highlight"}],
        "total": 1,
    },
    "score a string": {"result": [{**GOOD_HIT, "score": "1.5"}], "total": 1},
    "score a bool": {"result": [{**GOOD_HIT, "score": True}], "total": 1},
    "score NaN": {"result": [{**GOOD_HIT, "score": float("nan")}], "total": 1},
    "score too big": {"result": [{**GOOD_HIT, "score": 10**400}], "total": 1},
}


@pytest.mark.parametrize("content", MALFORMED_ANSWERS.values(), ids=MALFORMED_ANSWERS.keys())
def test_malformed_query_answer_raises(content: object) -> None:
    with pytest.raises(ServerResponseError) as info:
        parse_query_answer(content)
    assert info.value.code == "bad_result"


def test_query_error_answer_raises_error_response() -> None:
    with pytest.raises(ErrorResponse) as info:
        parse_query_answer({"result": "Error: no.", "error": "bad_query"})
    assert info.value.code == "bad_query"


async def test_malformed_query_answer_over_the_wire(nursery: trio.Nursery) -> None:
    answer = json_response({"result": [{"key": "morpheus"}], "total": 1})
    host, port = await start_fake_server(nursery, answer_with(answer))
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            with pytest.raises(ServerResponseError) as info:
                await client.query("rabbit")
    assert info.value.code == "bad_result"


async def test_open_client_max_header_length(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery)
    with trio.fail_after(5):
        async with open_client(host, port, max_header_length=1000) as client:
            assert await client.search("ring") == TUTORIAL_DATA["ring"]
        # The server's answer header is about a hundred bytes.
        async with open_client(host, port, max_header_length=20) as client:
            with pytest.raises(ServerResponseError) as info:
                await client.search("ring")
    assert info.value.code == "header_too_long"


def answer_with(data: bytes) -> Callable[[trio.SocketStream], Awaitable[None]]:
    """A fake server handler: read one request, send ``data``, close."""

    async def handler(stream: trio.SocketStream) -> None:
        async with stream:
            await read_messages(stream, 1)
            await stream.send_all(data)

    return handler


BAD_SERVERS = {
    "HTTP": (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "header_too_long"),
    "closes without answering": (b"", "no_response"),
    "closes mid-answer": (json_response({"result": RABBIT})[:-5], "truncated"),
    "header not JSON": (b"\x00\x05hello", "bad_header"),
    "content not JSON": (raw_message(b"rabbit"), "invalid_json"),
    "binary answer to a search": (
        raw_message(b"rabbit", "binary/x", "binary"),
        "unexpected_content_type",
    ),
    "JSON without result": (json_response({"answer": RABBIT}), "bad_result"),
    "result not a string": (json_response({"result": 42}), "bad_result"),
}


@pytest.mark.parametrize("case", BAD_SERVERS.values(), ids=BAD_SERVERS.keys())
async def test_bad_server_raises_server_response_error(
    nursery: trio.Nursery, case: tuple[bytes, str | None]
) -> None:
    data, code = case
    host, port = await start_fake_server(nursery, answer_with(data))
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            with pytest.raises(ServerResponseError) as info:
                await client.search("morpheus")
    assert info.value.code == code


#: What a TLS server may send a client that spoke plain bytes to it: a
#: record of type alert (0x15) or handshake (0x16), version 3.x (0x03 ...).
TLS_RECORDS = {
    "alert": b"\x15\x03\x03\x00\x02\x02\x46",  # fatal protocol_version, as OpenSSL sends it
    "handshake": b"\x16\x03\x03\x00\x40" + bytes(0x40),
}


@pytest.mark.parametrize("kind", TLS_RECORDS)
async def test_plain_client_reading_a_tls_record_is_told_the_server_expects_tls(
    nursery: trio.Nursery, kind: str
) -> None:
    record = TLS_RECORDS[kind]
    host, port = await start_fake_server(nursery, answer_with(record))
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            with pytest.raises(ServerResponseError) as info:
                await client.search("morpheus")
    # The code is still what went wrong with the framing.
    assert info.value.code == "truncated"
    assert info.value.message == (
        f"the server answered with a TLS {kind} record (it starts 0x{record[0]:02x} 0x03), "
        "not a message: it expects TLS; connect with --tls (ssl_context= in Python)"
    )


@pytest.mark.parametrize(
    "data",
    [
        json_response({"result": RABBIT})[:-5],  # a message, cut
        b"\x15\x04" + bytes(100),  # 0x15 but not version 3
        b"HTTP/1.1 400 Bad Request\r\n\r\n",
    ],
    ids=["truncated message", "not TLS's version", "HTTP"],
)
async def test_other_bad_answers_say_nothing_of_tls(nursery: trio.Nursery, data: bytes) -> None:
    host, port = await start_fake_server(nursery, answer_with(data))
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            with pytest.raises(ServerResponseError) as info:
                await client.search("morpheus")
    assert "TLS" not in info.value.message


async def test_server_that_closes_after_each_reply(nursery: trio.Nursery) -> None:
    host, port = await start_fake_server(nursery, serve_one_request_then_close)
    answers = {}
    with trio.fail_after(5):
        for key in [*TUTORIAL_DATA, "neo"]:
            async with open_client(host, port) as client:
                answers[key] = await client.search(key)
        async with open_client(host, port) as client:
            binary = await client.request_binary(b"binaryhello world")
        async with open_client(host, port) as client:
            await client.search("ring")
            # The server has closed: the next request goes on a new connection.
            assert await client.search("morpheus") == RABBIT
            assert client.retried == 1
        async with open_client(host, port, retry=False) as client:
            await client.search("ring")
            # Without the retry, the second request fails cleanly, no hang.
            with pytest.raises((ServerResponseError, trio.BrokenResourceError)):
                await client.search("ring")
    assert answers == {**TUTORIAL_DATA, "neo": "No match for 'neo'."}
    assert binary.content == b"First 10 bytes of request: binaryhell"


async def test_unreachable_server_raises_oserror(nursery: trio.Nursery) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    with trio.fail_after(5), pytest.raises(OSError):
        async with open_client("127.0.0.1", port):
            pass


@pytest.mark.parametrize("offset", [65536, -65536], ids=["port + 65536", "port - 65536"])
async def test_open_client_refuses_a_port_out_of_range(nursery: trio.Nursery, offset: int) -> None:
    # The resolver takes a port modulo 65536: 65536 above a listening port
    # would silently connect to it. Refused before any connection is made.
    server, (host, port) = await start_server(nursery)
    with trio.fail_after(5), pytest.raises(ValueError) as raised:
        async with open_client(host, port + offset):
            pass  # pragma: no cover
    assert str(raised.value) == f"port must be an integer from 1 to 65535, not {port + offset}"
    assert server.stats.connections_total == 0


@pytest.mark.parametrize("port", [0, -1, 65536, True, "65432"])
async def test_open_client_names_a_bad_port(port: object) -> None:
    with trio.fail_after(5), pytest.raises(ValueError, match=r"^port must be an integer from 1 to"):
        async with open_client("127.0.0.1", port):  # type: ignore[arg-type]
            pass  # pragma: no cover


async def test_tls_handshake_timeout(nursery: trio.Nursery) -> None:
    # A server that does not speak TLS often just waits for the rest of what
    # it takes for a request: the handshake is bounded on its own.
    async def silent_server(stream: trio.SocketStream) -> None:
        async with stream:
            await trio.sleep_forever()

    host, port = await start_fake_server(nursery, silent_server)
    context = ssl.create_default_context()
    with trio.fail_after(5), pytest.raises(trio.TooSlowError):
        async with open_client(host, port, ssl_context=context, handshake_timeout=0.2):
            pass  # pragma: no cover


async def test_tls_client_against_a_plain_server_is_told_it_may_not_speak_tls(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    # Our server reads a ClientHello as the start of a long request: it
    # waits for the rest, then answers request_timeout, in plain.
    _, (host, port) = await start_server(nursery, request_timeout=30)
    context = ssl.create_default_context()
    start = trio.current_time()
    with pytest.raises(trio.TooSlowError) as slow:
        async with open_client(host, port, ssl_context=context, handshake_timeout=3):
            pass  # pragma: no cover
    assert trio.current_time() - start == pytest.approx(3)
    assert str(slow.value) == (
        "no TLS handshake within 3 s; the server may not speak TLS: "
        "connect without --tls (ssl_context=None in Python)"
    )
    # Without a bound of its own, the handshake fails on the plain answer.
    with pytest.raises(trio.BrokenResourceError) as broken:
        async with open_client(host, port, ssl_context=context):
            pass  # pragma: no cover
    assert isinstance(broken.value.__cause__, ssl.SSLError)
    assert str(broken.value) == (
        f"TLS handshake failed: {broken.value.__cause__}; the server may not speak TLS: "
        "connect without --tls (ssl_context=None in Python)"
    )


# --- the one retry on a reused connection ------------------------------------


async def test_a_reused_connection_closed_before_answering_is_retried(
    nursery: trio.Nursery,
) -> None:
    # The first connection answers once, then closes with the next request
    # unread, as a server shutting down does: the client sends it again on a
    # new connection and gets its answer.
    server = ClosingServer([1])
    host, port = await start_fake_server(nursery, server)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            assert await client.search("ring") == TUTORIAL_DATA["ring"]
            assert await client.search("morpheus") == RABBIT
            assert client.retried == 1
            # The new connection is used from then on, and is reused itself.
            assert await client.search("neo") == "No match for 'neo'."
    assert server.connections == 2


async def test_a_fresh_connection_closed_before_answering_is_not_retried(
    nursery: trio.Nursery,
) -> None:
    server = ClosingServer([0])
    host, port = await start_fake_server(nursery, server)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            with pytest.raises((ServerResponseError, trio.BrokenResourceError)):
                await client.search("morpheus")
            assert client.retried == 0
    assert server.connections == 1


async def test_the_retry_happens_once_at_most(nursery: trio.Nursery) -> None:
    # The retry's connection closes without answering too: that is raised.
    server = ClosingServer([1, 0])
    host, port = await start_fake_server(nursery, server)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            await client.search("ring")
            with pytest.raises((ServerResponseError, trio.BrokenResourceError)) as info:
                await client.search("morpheus")
            assert client.retried == 1
    assert server.connections == 2
    # The server answered in plain before: its silence is no hint of TLS.
    assert "TLS" not in str(info.value)


async def test_no_retry_when_turned_off(nursery: trio.Nursery) -> None:
    server = ClosingServer([1])
    host, port = await start_fake_server(nursery, server)
    with trio.fail_after(5):
        async with open_client(host, port, retry=False) as client:
            await client.search("ring")
            with pytest.raises((ServerResponseError, trio.BrokenResourceError)):
                await client.search("morpheus")
            assert client.retried == 0
    assert server.connections == 1


async def test_no_retry_without_a_way_to_reconnect(nursery: trio.Nursery) -> None:
    # A client made on a stream of one's own cannot open another.
    server = ClosingServer([1])
    host, port = await start_fake_server(nursery, server)
    with trio.fail_after(5):
        async with await trio.open_tcp_stream(host, port) as stream:
            client = SearchClient(stream)
            await client.search("ring")
            with pytest.raises((ServerResponseError, trio.BrokenResourceError)):
                await client.search("morpheus")
    assert server.connections == 1


async def test_a_pipelined_batch_resends_only_its_unanswered_requests(
    nursery: trio.Nursery,
) -> None:
    # One answer, then a batch of three of which one is answered before the
    # close: the other two go again on a new connection, in order.
    server = ClosingServer([2])
    host, port = await start_fake_server(nursery, server)
    keys = ["morpheus", "ring", "neo"]
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            await client.search("ring")
            responses = await client.request_many(search_request(key) for key in keys)
            assert client.retried == 2
    assert [result_of(r)["result"] for r in responses] == [
        RABBIT,
        TUTORIAL_DATA["ring"],
        "No match for 'neo'.",
    ]
    assert server.connections == 2


async def test_an_answer_cut_in_the_middle_is_not_retried(nursery: trio.Nursery) -> None:
    # Part of the answer came: the server read the request, so the end of
    # the connection is an error, not a race with an idle close.
    answer = json_response({"result": RABBIT})
    accepted = 0

    async def answer_once_then_half(stream: trio.SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        async with stream:
            protocol = MessageProtocol()
            for reply in (answer, answer[: len(answer) // 2]):
                while protocol.next_message() is NEED_DATA:
                    protocol.receive_data(await stream.receive_some(65536))
                await stream.send_all(reply)

    host, port = await start_fake_server(nursery, answer_once_then_half)
    with trio.fail_after(5):
        async with open_client(host, port) as client:
            assert await client.search("morpheus") == RABBIT
            with pytest.raises(ServerResponseError) as info:
                await client.search("morpheus")
            assert info.value.code == "truncated"
            assert client.retried == 0
    assert accepted == 1


def test_a_query_to_a_server_without_it_says_what_the_server_answered() -> None:
    # The tutorial's app-server.py answers an unknown action with a string.
    with pytest.raises(ServerResponseError) as info:
        parse_query_answer({"result": "Error: invalid action 'query'."})
    assert info.value.code == "bad_result"
    assert "Error: invalid action 'query'." in str(info.value)


# --- A call left mid-request, and tasks sharing a client ----------------------


#: Seconds the slow fake server takes to answer; a call is cancelled sooner.
SLOW_ANSWER = 0.3


class SlowServer:
    """Answers each search, in order, SLOW_ANSWER seconds after it came."""

    def __init__(self) -> None:
        self.connections = 0

    async def __call__(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        async with stream:
            protocol = MessageProtocol()
            while True:
                event = protocol.next_message()
                if event is NEED_DATA:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    protocol.receive_data(data)
                    continue
                assert isinstance(event, Message)
                key = json.loads(event.content)["value"]
                await trio.sleep(SLOW_ANSWER)
                answer = TUTORIAL_DATA.get(key, f"No match for '{key}'.")
                await stream.send_all(json_response({"result": answer}))


async def test_a_cancelled_call_does_not_hand_its_answer_to_the_next(
    nursery: trio.Nursery,
) -> None:
    # As docs/embedding.md has callers bound their calls: the request went
    # out, the call was cancelled, and its answer would come next.
    server = SlowServer()
    host, port = await start_fake_server(nursery, server)
    with trio.fail_after(10):
        async with open_client(host, port) as client:
            with trio.move_on_after(SLOW_ANSWER / 5):
                await client.search("morpheus")
            assert await client.search("ring") == TUTORIAL_DATA["ring"]
            with trio.move_on_after(SLOW_ANSWER / 5):
                await client.search("ring")
            assert await client.search("morpheus") == RABBIT
            assert client.retried == 0  # nothing was sent twice
    assert server.connections == 3  # a new one after each cancelled call


async def test_a_call_cancelled_before_its_turn_sends_nothing(nursery: trio.Nursery) -> None:
    server = SlowServer()
    host, port = await start_fake_server(nursery, server)
    with trio.fail_after(10):
        async with open_client(host, port) as client:
            with trio.move_on_after(0):
                await client.search("morpheus")
            assert await client.search("ring") == TUTORIAL_DATA["ring"]
    assert server.connections == 1


async def test_an_answer_too_long_leaves_the_client_usable(nursery: trio.Nursery) -> None:
    _, (host, port) = await start_server(nursery)
    with trio.fail_after(10):
        # The morpheus answer is 43 bytes of content; the dog's is shorter.
        async with open_client(host, port, max_content_length=40) as client:
            with pytest.raises(ServerResponseError) as info:
                await client.search("morpheus")
            assert info.value.code == "content_too_long"
            assert await client.search("\U0001f436") == TUTORIAL_DATA["\U0001f436"]


async def test_a_client_that_cannot_reconnect_says_its_connection_was_abandoned(
    nursery: trio.Nursery,
) -> None:
    host, port = await start_fake_server(nursery, SlowServer())
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(host, port) as stream:
            client = SearchClient(stream)
            with trio.move_on_after(SLOW_ANSWER / 5):
                await client.search("morpheus")
            with pytest.raises(ServerResponseError) as info:
                await client.search("ring")
    assert info.value.code == "connection_abandoned"
    assert "make a new client" in info.value.message


async def test_tasks_sharing_a_client_each_get_their_own_answers(
    nursery: trio.Nursery,
) -> None:
    server, (host, port) = await start_server(nursery)
    keys = [*TUTORIAL_DATA, "neo", "trinity"] * 5
    answers: dict[int, str] = {}
    with trio.fail_after(10):
        async with open_client(host, port) as client:

            async def ask(n: int, key: str) -> None:
                answers[n] = await client.search(key)

            async with trio.open_nursery() as tasks:
                for n, key in enumerate(keys):
                    tasks.start_soon(ask, n, key)
    assert answers == {
        n: TUTORIAL_DATA.get(key, f"No match for '{key}'.") for n, key in enumerate(keys)
    }
    assert server.stats.connections_total == 1
