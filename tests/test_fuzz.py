"""Hypothesis properties: hostile bytes never get past the protocol error.

The default profile keeps these quick; ``nox -s fuzz`` (the "fuzz" profile of
tests/conftest.py) runs them with many more examples.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio
from hypothesis import event, given
from hypothesis import strategies as st

from tests.helpers import json_request, read_messages, result_of, start_server
from trio_search import (
    BUILTIN_INDEX,
    CLOSED,
    DEFAULT_MAX_CONTENT_LENGTH,
    DEFAULT_MAX_HEADER_LENGTH,
    Message,
    MessageProtocol,
    RemoteProtocolError,
    Reply,
    SearchApp,
    encode_message,
)

pytestmark = pytest.mark.fuzz

REQUIRED_KEYS = ("byteorder", "content-type", "content-encoding", "content-length")

# --- Strategies -------------------------------------------------------------

#: Any code point, lone surrogates included (a peer can send them as "\ud800");
#: those and a few other troublemakers are drawn far more often than by chance.
any_text = st.text(
    st.characters(exclude_categories=()) | st.sampled_from('\ud800\udfff\x00"\\\u00e9\U0001f436'),
    max_size=12,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False)
    | any_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3)
    ),
    max_leaves=8,
)
#: Codecs a peer may name: text ones, non-text ones, slow, odd and bogus.
encodings = (
    st.sampled_from(
        [
            "utf-8",
            "utf-16",
            "utf-16-be",
            "utf-32",
            "utf-8-sig",
            "utf-7",
            "latin-1",
            "ascii",
            "cp1252",
            "shift_jis",
            "gb18030",
            "iso2022_jp",
            "idna",
            "punycode",
            "unicode_escape",
            "raw_unicode_escape",
            "charmap",
            "undefined",
            "rot13",
            "base64",
            "hex",
            "zlib",
            "uu",
            "quopri",
            "mbcs",
            "binary",
            "no-such-codec",
            "",
            "utf-8\x00",
            "utf-\ud800",
        ]
    )
    | any_text
)
content_types = st.sampled_from(["text/json", "binary/custom-client-binary-type"]) | any_text
messages = st.builds(
    Message,
    content=st.binary(max_size=64),
    content_type=content_types,
    content_encoding=encodings,
    byteorder=st.sampled_from(["little", "big"]) | any_text,
    extra_headers=st.dictionaries(
        any_text.filter(lambda key: key not in REQUIRED_KEYS), json_values, max_size=3
    ),
)


@st.composite
def odd_frames(draw: st.DrawFn) -> bytes:
    """A header that is nearly right: keys may be missing or of any JSON type."""
    plausible = {
        "byteorder": st.just("little"),
        "content-type": content_types,
        "content-encoding": encodings,
        "content-length": st.integers(-2, 80),
    }
    header = {
        key: draw(plausible[key] | json_values)
        for key in REQUIRED_KEYS
        if draw(st.integers(0, 9))  # each key missing one time in ten
    }
    encoded = json.dumps(header, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    return struct.pack(">H", len(encoded)) + encoded + draw(st.binary(max_size=80))


@st.composite
def search_contents(draw: st.DrawFn) -> bytes:
    """JSON text, mostly a search or another action, in some encoding."""
    request = draw(
        st.fixed_dictionaries(
            {"action": st.sampled_from(["search", "stats"]) | json_values},
            optional={"value": st.sampled_from(list(BUILTIN_INDEX)) | json_values},
        )
        | json_values
    )
    text = json.dumps(request, ensure_ascii=draw(st.booleans()))
    try:
        return text.encode(draw(encodings))
    except (LookupError, UnicodeError, ValueError):
        return text.encode("utf-8", "surrogatepass")


@st.composite
def garbled(draw: st.DrawFn, frames: st.SearchStrategy[bytes]) -> bytes:
    """A frame with one byte replaced: a broken prefix, header or content."""
    frame = draw(frames)
    at = draw(st.integers(0, len(frame) - 1))
    return frame[:at] + bytes([draw(st.integers(0, 255))]) + frame[at + 1 :]


valid_frames = messages.map(encode_message) | search_contents().map(
    lambda content: encode_message(Message(content))
)
#: A byte stream mixing valid messages, near misses and plain noise.
wire_bytes = st.lists(
    valid_frames
    | odd_frames()
    | garbled(valid_frames)
    | st.binary(max_size=3),  # noise that shifts the framing
    max_size=6,
).map(b"".join)


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary points into non-empty receives."""
    points = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    pieces = [
        data[start:end] for start, end in zip([0, *points], [*points, len(data)], strict=True)
    ]
    return [piece for piece in pieces if piece]


# --- The protocol object ------------------------------------------------------


def parse(chunks: list[bytes], **limits: int) -> tuple[list[Message], str]:
    """The messages in ``chunks`` and how the stream ended: ``"CLOSED"`` or a
    RemoteProtocolError code. Any other exception propagates."""
    protocol = MessageProtocol(**limits)
    messages: list[Message] = []
    try:
        for chunk in [*chunks, b""]:
            protocol.receive_data(chunk)
            while isinstance(event := protocol.next_message(), Message):
                messages.append(event)
    except RemoteProtocolError as exc:
        return messages, exc.code
    assert event is CLOSED
    return messages, "CLOSED"


def with_extra_headers(messages: list[Message]) -> list[tuple[Message, str]]:
    # Message equality leaves extra headers out; repr because NaN != NaN.
    return [(message, repr(dict(message.extra_headers))) for message in messages]


@given(
    data=st.data(),
    wire=wire_bytes,
    # Mostly the defaults; sometimes limits that the messages drawn can exceed.
    max_header_length=st.sampled_from([*[DEFAULT_MAX_HEADER_LENGTH] * 4, 16, 120]),
    max_content_length=st.sampled_from([*[DEFAULT_MAX_CONTENT_LENGTH] * 4, 0, 10]),
)
def test_any_bytes_parse_to_the_same_messages_or_protocol_error_however_split(
    data: st.DataObject, wire: bytes, max_header_length: int, max_content_length: int
) -> None:
    limits = {"max_header_length": max_header_length, "max_content_length": max_content_length}
    whole, whole_end = parse([wire] if wire else [], **limits)
    event(f"{len(whole)} message(s), then {whole_end}")
    split, split_end = parse(data.draw(splits(wire)), **limits)
    assert (with_extra_headers(split), split_end) == (with_extra_headers(whole), whole_end)


@given(data=st.data(), sent=st.lists(messages, max_size=5))
def test_valid_messages_round_trip_however_split(data: st.DataObject, sent: list[Message]) -> None:
    wire = b"".join(MessageProtocol().send(message) for message in sent)
    received, end = parse(data.draw(splits(wire)))
    assert end == "CLOSED"
    assert received == sent
    assert [dict(m.extra_headers) for m in received] == [dict(m.extra_headers) for m in sent]


# --- The application ------------------------------------------------------------


@given(
    content=st.binary(max_size=64) | search_contents(),
    content_type=content_types,
    encoding=encodings,
)
def test_app_answers_any_request_with_an_encodable_reply(
    content: bytes, content_type: str, encoding: str
) -> None:
    request = Message(content, content_type, encoding)
    reply = SearchApp(stats=lambda: {"requests": 1}).respond(request)
    event(f"error: {reply.error}")
    assert parse([encode_message(reply.message)]) == ([reply.message], "CLOSED")
    if request.is_json:
        answer = json.loads(reply.message.content.decode("utf-8"))
        assert set(answer) == ({"result", "error"} if reply.error else {"result"})
        if reply.error:
            assert answer["result"].startswith("Error: ")
            assert answer["error"] == reply.error
    else:
        assert reply.message.content == b"First 10 bytes of request: " + content[:10]


# --- A live server ------------------------------------------------------------


@contextmanager
def no_internal_errors() -> Iterator[None]:
    """Fail if the server logs at ERROR (it does so for a bug of its own)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("trio_search")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    assert not [record.getMessage() for record in records]


async def search(stream: trio.SocketStream, value: str) -> Any:
    await stream.send_all(json_request({"action": "search", "value": value}))
    (response,) = await read_messages(stream, 1)
    return result_of(response)["result"]


async def discard_until_closed(stream: trio.SocketStream) -> None:
    try:
        while await stream.receive_some(65536):
            pass
    except trio.BrokenResourceError:
        pass  # the server closed with our bytes unread: a reset


async def send_hostile(
    stream: trio.SocketStream, chunks: list[bytes], close: bool, done: trio.Event
) -> None:
    try:
        for chunk in chunks:
            await stream.send_all(chunk)
            await trio.lowlevel.checkpoint()  # let the good request interleave
        if close:
            await stream.send_eof()
    except trio.BrokenResourceError:
        pass  # the server gave up on this connection first
    done.set()


async def hostile_and_good_client(chunks: list[bytes], close: bool) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            _, (host, port) = await start_server(nursery)
            good = await trio.open_tcp_stream(host, port)
            hostile = await trio.open_tcp_stream(host, port)
            async with good, hostile, trio.open_nursery() as attack:
                sent = trio.Event()
                attack.start_soon(discard_until_closed, hostile)
                attack.start_soon(send_hostile, hostile, chunks, close, sent)
                assert await search(good, "morpheus") == BUILTIN_INDEX["morpheus"]
                await sent.wait()
                # The good connection is still served, and so are new ones.
                assert await search(good, "ring") == BUILTIN_INDEX["ring"]
                async with await trio.open_tcp_stream(host, port) as late:
                    assert await search(late, "\U0001f436") == BUILTIN_INDEX["\U0001f436"]
                attack.cancel_scope.cancel()
            nursery.cancel_scope.cancel()


@given(data=st.data(), wire=wire_bytes, close=st.booleans())
def test_hostile_bytes_on_one_connection_never_disturb_another(
    data: st.DataObject, wire: bytes, close: bool
) -> None:
    chunks = data.draw(splits(wire))
    with no_internal_errors():
        trio.run(hostile_and_good_client, chunks, close)


# --- The fast paths agree with the exact ones ---------------------------------


@st.composite
def header_texts(draw: st.DrawFn) -> bytes:
    """Header JSON text, mostly of the usual four keys, with values that
    orjson and the standard library might read differently: big and float
    lengths, odd strings, duplicate keys, extra keys, odd spacing."""
    length = draw(
        st.integers(-2, 2**70)
        | st.sampled_from(["1e2", "10.0", "-0", "1E400", "NaN", "Infinity", "0x10", "01"])
        | json_values
    )
    text = draw(st.sampled_from(["little", "big", "", "\udfff", "caf\u00e9"]) | any_text)
    parts = [
        f'"byteorder": {json.dumps(text)}',
        f'"content-type": {json.dumps(draw(content_types))}',
        f'"content-encoding": {json.dumps(draw(encodings))}',
        f'"content-length": {length if isinstance(length, str) else json.dumps(length)}',
    ]
    parts = draw(st.permutations(parts))
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(parts)))  # a duplicate key
    if draw(st.booleans()):
        parts.append(f"{json.dumps(draw(any_text))}: {json.dumps(draw(json_values))}")
    spacing = draw(st.sampled_from([", ", ",", " ,\n "]))
    return ("{" + spacing.join(parts) + "}").encode("utf-8", "surrogatepass")


def _header_or_code(parse: Any, raw: bytes) -> Any:
    try:
        return parse(raw)
    except RemoteProtocolError as exc:
        return exc.code


@given(raw=header_texts() | st.binary(max_size=80))
def test_fast_and_exact_header_parsers_agree(raw: bytes) -> None:
    protocol = MessageProtocol(max_content_length=2**80)
    fast = _header_or_code(protocol._parse_header, raw)
    exact = _header_or_code(protocol._parse_header_exactly, raw)
    assert fast == exact


@given(content=search_contents() | st.binary(max_size=64))
def test_fast_and_exact_request_paths_agree(content: bytes) -> None:
    # "utf_8" is UTF-8 under a name the fast path does not take, so the same
    # bytes go down the exact path.
    fast = SearchApp().respond(Message(content, "text/json", "utf-8"))
    exact = SearchApp().respond(Message(content, "text/json", "utf_8"))
    assert isinstance(fast, Reply) and isinstance(exact, Reply)
    assert fast.error == exact.error
    if fast.error is None:
        # (Error texts may quote the encoding's name, which differs here.)
        assert fast.message.content == exact.message.content
