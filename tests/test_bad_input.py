"""Bad input over real sockets: a clear error answer, a WARNING log naming the
peer, and no harm to the next request or to other connections.

Content errors keep the connection open; framing errors close it after the
error response.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys

import pytest
import trio

from tests.helpers import (
    framed,
    json_request,
    local_address,
    parse_all,
    raw_message,
    read_messages,
    read_until_eof,
    result_of,
    start_server,
)

RABBIT = "Follow the white rabbit. \U0001f430"
GOOD_REQUEST = json_request({"action": "search", "value": "morpheus"})

#: Well-framed requests whose content is bad: (request bytes, error code).
CONTENT_ERRORS = {
    "invalid JSON": (raw_message(b'{"action": "search",'), "invalid_json"),
    "bytes invalid for utf-8": (raw_message(b'{"action": "\xff\xfe"}'), "bad_encoding"),
    "bytes invalid for ascii": (
        raw_message('{"action": "é"}'.encode(), "text/json", "ascii"),
        "bad_encoding",
    ),
    "unknown encoding": (raw_message(b"{}", "text/json", "no-such-codec"), "unknown_encoding"),
    "non-text codec": (raw_message(b"{}", "text/json", "rot13"), "unknown_encoding"),
    "empty array": (raw_message(b"[]"), "not_an_object"),
    "string": (raw_message(b'"search"'), "not_an_object"),
    "null": (raw_message(b"null"), "not_an_object"),
    "empty content": (raw_message(b""), "invalid_json"),
    "action missing": (json_request({"value": "morpheus"}), "missing_action"),
    "value missing": (json_request({"action": "search"}), "bad_value"),
    "value a number": (json_request({"action": "search", "value": 1}), "bad_value"),
    "value a list": (json_request({"action": "search", "value": ["morpheus"]}), "bad_value"),
    # Decoded in the event loop, and (over 64 KiB) in a worker thread.
    "nested too deep": (raw_message(b"[" * 20_000 + b"]" * 20_000), "too_deep"),
    "nested too deep, large": (raw_message(b"[" * 200_000 + b"]" * 200_000), "too_deep"),
}


def header(**fields: object) -> bytes:
    """A JSON header with the four required keys, overridden by ``fields``
    (a value of ``None`` drops the key)."""
    base: dict[str, object] = {
        "byteorder": sys.byteorder,
        "content-type": "text/json",
        "content-encoding": "utf-8",
        "content-length": 2,
    }
    for key, value in fields.items():
        key = key.replace("_", "-")
        if value is None:
            del base[key]
        else:
            base[key] = value
    return json.dumps(base).encode()


#: Bytes that break the framing: (bytes sent, error code).
FRAMING_ERRORS = {
    "header length 0": (b"\x00\x00" + GOOD_REQUEST, "empty_header"),
    "header not UTF-8": (framed(b'{"byteorder": "\xff"}', b"{}"), "bad_header"),
    "header not JSON": (framed(b"GET / HTTP/1.1", b"{}"), "bad_header"),
    "header a JSON array": (framed(b"[]", b"{}"), "bad_header"),
    "byteorder missing": (framed(header(byteorder=None), b"{}"), "missing_header_key"),
    "content-type missing": (framed(header(content_type=None), b"{}"), "missing_header_key"),
    "content-encoding missing": (
        framed(header(content_encoding=None), b"{}"),
        "missing_header_key",
    ),
    "content-length missing": (framed(header(content_length=None), b"{}"), "missing_header_key"),
    "content-length negative": (framed(header(content_length=-1), b"{}"), "bad_content_length"),
    "content-length bool": (framed(header(content_length=True), b"{}"), "bad_content_length"),
    "content-length float": (framed(header(content_length=2.0), b"{}"), "bad_content_length"),
    "content-length string": (framed(header(content_length="2"), b"{}"), "bad_content_length"),
    "content-type not a string": (framed(header(content_type=7), b"{}"), "bad_header_value"),
    # Only the 2-byte prefix is sent: the limit is checked before the header.
    "header over the limit": (b"\xff\xff", "header_too_long"),
    # Only the header of a 10 MB content is sent: refused before the content.
    "content over the limit": (
        framed(header(content_length=10_000_000, content_type="binary/x")),
        "content_too_long",
    ),
}


def assert_warned(caplog: pytest.LogCaptureFixture, peer: str, code: str) -> None:
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "trio_search" and r.levelno == logging.WARNING
    ]
    assert any(peer in message and code in message for message in warnings), warnings
    # Bad input is the peer's fault, never an internal error of ours.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("case", CONTENT_ERRORS.values(), ids=CONTENT_ERRORS.keys())
async def test_content_error_is_answered_and_connection_stays_open(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, case: tuple[bytes, str]
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_search")
    request, code = case
    _, address = await start_server(nursery)
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(*address) as stream:
            await stream.send_all(request)
            (error,) = await read_messages(stream, 1)
            await stream.send_all(GOOD_REQUEST)
            (good,) = await read_messages(stream, 1)
            peer = local_address(stream)
    answer = result_of(error)
    assert answer["result"].startswith("Error: ")
    assert answer["error"] == code
    assert result_of(good) == {"result": RABBIT}
    assert_warned(caplog, peer, code)


@pytest.mark.parametrize("case", FRAMING_ERRORS.values(), ids=FRAMING_ERRORS.keys())
async def test_framing_error_is_answered_then_connection_closed(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, case: tuple[bytes, str]
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_search")
    data, code = case
    _, address = await start_server(nursery)
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(*address) as stream:
            # A good request first: answered before the broken one is reported.
            await stream.send_all(GOOD_REQUEST + data)
            # No half-close: the server must close on its own.
            received = await read_until_eof(stream)
            peer = local_address(stream)
    good, error = parse_all(received)
    assert result_of(good) == {"result": RABBIT}
    answer = result_of(error)
    assert answer["result"].startswith("Error: ")
    assert answer["error"] == code
    assert_warned(caplog, peer, code)


async def test_a_header_value_cannot_write_lines_of_its_own_into_the_log(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_search")
    forged = "1\n2026-01-01 00:00:00,000 CRITICAL trio_search: forged\u202e"
    _, address = await start_server(nursery)
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(*address) as stream:
            await stream.send_all(framed(header(content_length=forged), b"{}"))
            (error,) = parse_all(await read_until_eof(stream))
            peer = local_address(stream)
    # The answer quotes the value as JSON, escapes and all.
    assert result_of(error)["result"] == (
        "Error: content-length must be a non-negative integer, not "
        '"1\\n2026-01-01 00:00:00,000 CRITICAL trio_search: forged\\u202e".'
    )
    (line,) = [r.getMessage() for r in caplog.records if peer in r.getMessage()]
    assert "\n" not in line
    assert "\u202e" not in line
    assert line.startswith(f"{peer}: content-length must be a non-negative integer, not ")


async def test_client_closing_mid_request_is_logged(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_search")
    _, address = await start_server(nursery)
    with trio.fail_after(5):
        async with await trio.open_tcp_stream(*address) as stream:
            await stream.send_all(GOOD_REQUEST[:-3])
            await stream.send_eof()
            (error,) = parse_all(await read_until_eof(stream))
            peer = local_address(stream)
    assert result_of(error)["error"] == "truncated"
    assert_warned(caplog, peer, "truncated")


async def test_client_gone_mid_request_is_one_event(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    # Closed outright, not half-closed: telling it "truncated" finds it gone
    # (a reset), which is the same event, logged and counted once.
    caplog.set_level(logging.INFO, logger="trio_search")
    server, address = await start_server(nursery)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(*address)
        await stream.send_all(GOOD_REQUEST[:5])
        peer = local_address(stream)
        await trio.sleep(0.2)  # read by the server, which waits for the rest
        await stream.aclose()
        while server.stats.connections_open:  # noqa: ASYNC110 (a counter, no event)
            await trio.sleep(0.01)
    assert dict(server.stats.errors) == {"truncated": 1}
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{peer}:")]
    assert len(lines) == 1, lines
    assert "truncated" in lines[0]


async def test_garbage_never_affects_another_connection(nursery: trio.Nursery) -> None:
    server, address = await start_server(nursery)
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(*address) as good:
            await good.send_all(GOOD_REQUEST)
            await read_messages(good, 1)
            # Another client stalls mid-request, holding its connection.
            staller = await trio.open_tcp_stream(*address)
            await staller.send_all(GOOD_REQUEST[:10])
            # Others send every kind of garbage, all at once.
            async with trio.open_nursery() as garbage:
                for data, _ in [*FRAMING_ERRORS.values(), *CONTENT_ERRORS.values()]:
                    garbage.start_soon(send_and_drain, address, data)
                # Meanwhile the good connection goes on being answered.
                for _ in range(20):
                    await good.send_all(GOOD_REQUEST)
                    (response,) = await read_messages(good, 1)
                    assert result_of(response) == {"result": RABBIT}
            await good.send_all(GOOD_REQUEST)
            (response,) = await read_messages(good, 1)
            assert result_of(response) == {"result": RABBIT}
            await staller.aclose()
    assert server.stats.connections_total == 2 + len(FRAMING_ERRORS) + len(CONTENT_ERRORS)


async def send_and_drain(address: tuple[str, int], data: bytes) -> None:
    async with await trio.open_tcp_stream(*address) as stream:
        await stream.send_all(data)
        await stream.send_eof()
        await read_until_eof(stream)


async def test_content_errors_inside_a_pipelined_batch(nursery: trio.Nursery) -> None:
    _, address = await start_server(nursery)
    bad = [request for request, _ in CONTENT_ERRORS.values()]
    with trio.fail_after(10):
        async with await trio.open_tcp_stream(*address) as stream:
            # good, bad, good, bad, ... good: all in one write.
            await stream.send_all(GOOD_REQUEST + b"".join(r + GOOD_REQUEST for r in bad))
            responses = await read_messages(stream, 1 + 2 * len(bad))
    results = [result_of(r) for r in responses]
    assert results[0::2] == [{"result": RABBIT}] * (1 + len(bad))
    assert [r["error"] for r in results[1::2]] == [code for _, code in CONTENT_ERRORS.values()]


async def test_client_still_sending_an_over_limit_content_gets_the_error(
    nursery: trio.Nursery,
) -> None:
    _, address = await start_server(nursery)

    async def send_everything(stream: trio.SocketStream) -> None:
        # The server stops reading soon after the error: the rest cannot go.
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(raw_message(b"x" * 10_000_000, "binary/x", "binary"))

    with trio.fail_after(10):
        async with await trio.open_tcp_stream(*address) as stream, trio.open_nursery() as sending:
            sending.start_soon(send_everything, stream)
            # Read while still sending: the error, then a clean end of stream,
            # never a reset that could destroy the error before it is read.
            (error,) = parse_all(await read_until_eof(stream))
    assert result_of(error)["error"] == "content_too_long"
