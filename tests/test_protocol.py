"""The sans-IO protocol object, without sockets: framing, limits, errors."""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Iterable
from typing import Any, SupportsIndex

import pytest

from tests.helpers import json_request, raw_message
from trio_search import (
    CLOSED,
    DEFAULT_MAX_CONTENT_LENGTH,
    DEFAULT_MAX_HEADER_LENGTH,
    NEED_DATA,
    LocalProtocolError,
    Message,
    MessageProtocol,
    RemoteProtocolError,
    encode_message,
)

SEARCH = json_request({"action": "search", "value": "morpheus"})
SEARCH_MESSAGE = Message(b'{"action": "search", "value": "morpheus"}')
BINARY = raw_message(b"searchring", "binary/custom-client-binary-type", "binary")
BINARY_MESSAGE = Message(b"searchring", "binary/custom-client-binary-type", "binary")


def drain(protocol: MessageProtocol) -> list[Message]:
    """Every complete message the protocol has buffered."""
    messages = []
    while isinstance(event := protocol.next_message(), Message):
        messages.append(event)
    assert event is NEED_DATA
    return messages


def feed(chunks: Iterable[bytes], protocol: MessageProtocol | None = None) -> list[Message]:
    """Feed ``chunks`` one receive at a time, collecting messages as they complete."""
    protocol = protocol if protocol is not None else MessageProtocol()
    messages = []
    for chunk in chunks:
        protocol.receive_data(chunk)
        messages += drain(protocol)
    return messages


def one_byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split_at(data: bytes, point: int) -> list[bytes]:
    """``data`` in two receives (one if a side is empty: ``b""`` would mean EOF)."""
    return [piece for piece in (data[:point], data[point:]) if piece]


def header_bytes(header: dict[str, Any]) -> bytes:
    """Prefix and JSON header, without content."""
    encoded = json.dumps(header).encode("utf-8")
    return struct.pack(">H", len(encoded)) + encoded


def valid_header(**changes: Any) -> dict[str, Any]:
    header = {
        "byteorder": "little",
        "content-type": "text/json",
        "content-encoding": "utf-8",
        "content-length": 0,
    }
    header.update(changes)
    return header


def remote_error(data: bytes, protocol: MessageProtocol | None = None) -> RemoteProtocolError:
    """The error ``data`` causes, with no end of file signalled."""
    protocol = protocol if protocol is not None else MessageProtocol()
    protocol.receive_data(data)
    with pytest.raises(RemoteProtocolError) as info:
        drain(protocol)
    return info.value


# --- Framing: the same messages however the bytes arrive ----------------------


def test_whole_message() -> None:
    protocol = MessageProtocol()
    protocol.receive_data(SEARCH)
    message = protocol.next_message()
    assert message == SEARCH_MESSAGE
    assert isinstance(message, Message)
    assert message.byteorder == sys.byteorder
    assert protocol.next_message() is NEED_DATA


def test_one_byte_at_a_time() -> None:
    protocol = MessageProtocol()
    for byte in one_byte_at_a_time(SEARCH[:-1]):
        protocol.receive_data(byte)
        assert protocol.next_message() is NEED_DATA
    protocol.receive_data(SEARCH[-1:])
    assert protocol.next_message() == SEARCH_MESSAGE


def test_every_split_point() -> None:
    for split in range(len(SEARCH) + 1):
        assert feed(split_at(SEARCH, split)) == [SEARCH_MESSAGE], split


def test_pipelined_messages_in_one_feed_come_out_in_order() -> None:
    assert feed([SEARCH + BINARY + SEARCH]) == [SEARCH_MESSAGE, BINARY_MESSAGE, SEARCH_MESSAGE]


def test_pipelined_messages_one_byte_at_a_time() -> None:
    data = SEARCH + BINARY + SEARCH
    assert feed(one_byte_at_a_time(data)) == [SEARCH_MESSAGE, BINARY_MESSAGE, SEARCH_MESSAGE]


def test_pipelined_messages_at_every_split_point() -> None:
    data = BINARY + SEARCH
    for split in range(len(data) + 1):
        assert feed(split_at(data, split)) == [BINARY_MESSAGE, SEARCH_MESSAGE], split


def test_trailing_partial_message_waits_for_its_rest() -> None:
    protocol = MessageProtocol()
    protocol.receive_data(SEARCH + BINARY[:7])
    assert drain(protocol) == [SEARCH_MESSAGE]
    assert protocol.mid_message
    protocol.receive_data(BINARY[7:])
    assert drain(protocol) == [BINARY_MESSAGE]
    assert not protocol.mid_message


def test_mid_message_is_true_from_the_first_byte_to_the_last() -> None:
    protocol = MessageProtocol()
    assert not protocol.mid_message
    for byte in one_byte_at_a_time(SEARCH[:-1]):
        protocol.receive_data(byte)
        protocol.next_message()
        assert protocol.mid_message
    protocol.receive_data(SEARCH[-1:])
    protocol.next_message()
    assert not protocol.mid_message


def test_empty_content() -> None:
    assert feed([raw_message(b"", "binary/x", "binary")]) == [Message(b"", "binary/x", "binary")]


def test_clean_eof_between_messages_is_closed_every_time() -> None:
    protocol = MessageProtocol()
    protocol.receive_data(SEARCH)
    protocol.receive_data(b"")
    assert protocol.next_message() == SEARCH_MESSAGE
    assert protocol.next_message() is CLOSED
    assert protocol.next_message() is CLOSED


def test_eof_before_any_byte_is_closed() -> None:
    protocol = MessageProtocol()
    protocol.receive_data(b"")
    assert protocol.next_message() is CLOSED


@pytest.mark.parametrize(
    "cut", [1, 2, 10, len(SEARCH) - 1], ids=["in-prefix", "after-prefix", "in-header", "in-content"]
)
def test_eof_in_the_middle_of_a_message_is_truncated(cut: int) -> None:
    protocol = MessageProtocol()
    protocol.receive_data(SEARCH + SEARCH[:cut])
    protocol.receive_data(b"")
    assert protocol.next_message() == SEARCH_MESSAGE
    with pytest.raises(RemoteProtocolError) as info:
        protocol.next_message()
    assert info.value.code == "truncated"


def test_receive_data_after_eof_is_a_local_error() -> None:
    protocol = MessageProtocol()
    protocol.receive_data(b"")
    with pytest.raises(LocalProtocolError) as info:
        protocol.receive_data(SEARCH)
    assert info.value.code == "after_eof"


# --- Encoding: what we write is what the tutorial writes ----------------------


def test_encoding_is_byte_identical_to_the_tutorials() -> None:
    assert encode_message(SEARCH_MESSAGE) == SEARCH
    assert encode_message(BINARY_MESSAGE) == BINARY
    assert MessageProtocol().send(BINARY_MESSAGE) == BINARY


def test_header_keys_in_the_tutorials_order_then_extra_keys() -> None:
    data = encode_message(Message(b"x", extra_headers={"zeta": 1, "alpha": 2}))
    (length,) = struct.unpack(">H", data[:2])
    header = json.loads(data[2 : 2 + length])
    assert list(header) == [
        "byteorder",
        "content-type",
        "content-encoding",
        "content-length",
        "zeta",
        "alpha",
    ]
    assert header["content-length"] == 1


@pytest.mark.parametrize("extra_headers", [None, {"note": "\U0001f436"}], ids=["plain", "extra"])
def test_header_is_written_with_ensure_ascii_false(extra_headers: dict[str, str] | None) -> None:
    message = Message(b"x", "text/\u00e9\U0001f436", extra_headers=extra_headers)
    data = encode_message(message)
    assert "text/\u00e9\U0001f436".encode() in data
    assert b"\\u" not in data
    assert feed([data]) == [message]


def test_round_trip_keeps_extra_header_keys() -> None:
    extra = {"request-id": 7, "tags": ["a", None, 1.5], "nested": {"k": True}}
    (message,) = feed([encode_message(Message(b"payload", "binary/x", "binary", "big", extra))])
    assert message == Message(b"payload", "binary/x", "binary", "big")
    assert dict(message.extra_headers) == extra


def test_parsed_extra_headers_are_read_only() -> None:
    (message,) = feed([raw_message(b"", request_id=7)])
    with pytest.raises(TypeError):
        message.extra_headers["request_id"] = 8  # type: ignore[index]


def test_lone_surrogates_still_encode_and_round_trip() -> None:
    message = Message(b"", "text/\ud800", "\udfff", extra_headers={"x\udc00": "\ud83d"})
    (parsed,) = feed([encode_message(message)])
    assert parsed == message
    assert dict(parsed.extra_headers) == {"x\udc00": "\ud83d"}


def test_header_too_long_to_encode_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError) as info:
        encode_message(Message(b"", extra_headers={"padding": "x" * 70_000}))
    assert info.value.code == "header_too_long_to_send"


def test_extra_headers_may_not_override_required_keys() -> None:
    with pytest.raises(LocalProtocolError) as info:
        Message(b"", extra_headers={"content-length": 5})
    assert info.value.code == "extra_header_clash"


# --- Every framing error, each with its code ----------------------------------


def test_empty_header() -> None:
    assert remote_error(b"\x00\x00").code == "empty_header"


def test_header_too_long_is_refused_from_the_prefix_alone() -> None:
    prefix = struct.pack(">H", DEFAULT_MAX_HEADER_LENGTH + 1)
    assert remote_error(prefix).code == "header_too_long"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"content-length": "5"}, 'content-length must be a non-negative integer, not "5"'),
        ({"content-length": None}, "content-length must be a non-negative integer, not null"),
        ({"content-length": -1}, "content-length must be a non-negative integer, not -1"),
        ({"content-encoding": None}, "content-encoding must be a string, not null"),
        ({"content-type": ["x\n"]}, 'content-type must be a string, not ["x\\n"]'),
        ({"byteorder": True}, "byteorder must be a string, not true"),
    ],
)
def test_a_bad_header_value_is_quoted_as_json(changes: dict[str, Any], message: str) -> None:
    assert remote_error(header_bytes(valid_header() | changes)).message == message


def test_a_header_that_is_not_an_object_is_named_by_its_json_type() -> None:
    data = struct.pack(">H", 2) + b"[]"
    assert remote_error(data).message == "header is an array, not an object"


def test_header_at_the_limit_is_accepted() -> None:
    header = valid_header(padding="")
    header["padding"] = "x" * (200 - len(header_bytes(header)) + 2)
    data = header_bytes(header)
    assert len(data) == 2 + 200
    assert len(feed([data], MessageProtocol(max_header_length=200))) == 1
    assert remote_error(data, MessageProtocol(max_header_length=199)).code == "header_too_long"


@pytest.mark.parametrize(
    "header",
    [b"\xff\xfe{}", b"{not json", b"[]", b"42", b'"text"', b"null", b"[" * 10_000],
    ids=["not-utf8", "not-json", "array", "number", "string", "null", "too-deep"],
)
def test_bad_header(header: bytes) -> None:
    assert remote_error(struct.pack(">H", len(header)) + header).code == "bad_header"


def test_header_with_an_integer_too_long_for_python_is_bad_header() -> None:
    # Python refuses int() of more than 4300 digits with a plain ValueError.
    header = json.dumps(valid_header()).encode()[:-1] + b', "x": ' + b"1" * 5000 + b"}"
    assert remote_error(struct.pack(">H", len(header)) + header).code == "bad_header"


@pytest.mark.parametrize("key", ["byteorder", "content-type", "content-encoding", "content-length"])
def test_missing_header_key(key: str) -> None:
    header = valid_header()
    del header[key]
    error = remote_error(header_bytes(header))
    assert error.code == "missing_header_key"
    assert key in str(error)


@pytest.mark.parametrize("length", [-1, True, False, 3.0, "3", None])
def test_bad_content_length(length: object) -> None:
    error = remote_error(header_bytes(valid_header(**{"content-length": length})))
    assert error.code == "bad_content_length"


def test_content_too_long_is_refused_before_any_content_arrives() -> None:
    header = header_bytes(valid_header(**{"content-length": DEFAULT_MAX_CONTENT_LENGTH + 1}))
    assert remote_error(header).code == "content_too_long"


def test_content_at_the_limit_is_accepted() -> None:
    protocol = MessageProtocol(max_content_length=10)
    assert feed([raw_message(b"0123456789")], protocol) == [Message(b"0123456789")]
    assert remote_error(header_bytes(valid_header(**{"content-length": 11})), protocol).code == (
        "content_too_long"
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("content-type", 1), ("content-encoding", None), ("byteorder", ["little"])],
)
def test_bad_header_value(key: str, value: object) -> None:
    assert remote_error(header_bytes(valid_header(**{key: value}))).code == "bad_header_value"


def test_errors_are_sticky() -> None:
    protocol = MessageProtocol()
    protocol.receive_data(b"\x00\x00")
    with pytest.raises(RemoteProtocolError) as first:
        protocol.next_message()
    protocol.receive_data(SEARCH)
    with pytest.raises(RemoteProtocolError) as again:
        protocol.next_message()
    assert again.value is first.value


def test_messages_before_an_error_are_delivered_first() -> None:
    protocol = MessageProtocol()
    protocol.receive_data(SEARCH + BINARY + b"\x00\x00" + SEARCH)
    assert protocol.next_message() == SEARCH_MESSAGE
    assert protocol.next_message() == BINARY_MESSAGE
    with pytest.raises(RemoteProtocolError):
        protocol.next_message()


def test_limits_are_per_object() -> None:
    big = raw_message(b"x" * 1000, "binary/x", "binary", padding="p" * 500)
    assert len(feed([big])) == 1
    strict_content = MessageProtocol(max_content_length=999)
    assert remote_error(big, strict_content).code == "content_too_long"
    strict_header = MessageProtocol(max_header_length=500)
    assert remote_error(big, strict_header).code == "header_too_long"
    # The stricter objects did not change the default of a new one.
    assert len(feed([big])) == 1


@pytest.mark.parametrize("limit", [-1, 1.5, True, "10"])
def test_invalid_limits_are_refused(limit: object) -> None:
    with pytest.raises(ValueError, match="max_content_length"):
        MessageProtocol(max_content_length=limit)  # type: ignore[arg-type]


# --- Buffer work stays O(bytes received) --------------------------------------


class CountingBuffer(bytearray):
    """A receive buffer that counts the bytes it copies or moves."""

    copied = 0

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        if isinstance(index, slice):
            self.copied += len(item)
        return item

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        super().__delitem__(index)
        # Deleting from the front may move everything that remains.
        self.copied += len(self)


def counted_protocol() -> tuple[MessageProtocol, CountingBuffer]:
    protocol = MessageProtocol(max_content_length=2**20)
    buffer = CountingBuffer()
    protocol._buffer = buffer  # the one buffer every received byte goes through
    return protocol, buffer


def test_large_content_one_byte_at_a_time_copies_each_byte_a_bounded_number_of_times() -> None:
    content = bytes(range(256)) * 256  # 64 KiB
    protocol, buffer = counted_protocol()
    (message,) = feed(one_byte_at_a_time(raw_message(content, "binary/x", "binary")), protocol)
    assert message.content == content
    assert protocol._buffer is buffer  # still counting: not replaced behind our back
    # A quadratic buffer would copy about len(content) ** 2 / 2 = 2 GiB here.
    assert buffer.copied <= 2 * len(content)


def test_many_pipelined_messages_copy_each_byte_a_bounded_number_of_times() -> None:
    data = SEARCH * 10_000
    protocol, buffer = counted_protocol()
    assert len(feed([data], protocol)) == 10_000
    assert protocol._buffer is buffer
    assert buffer.copied <= 2 * len(data)


def test_many_pipelined_messages_in_odd_chunks_copy_each_byte_a_bounded_number_of_times() -> None:
    data = SEARCH * 2_000
    protocol, buffer = counted_protocol()
    chunks = [data[i : i + 997] for i in range(0, len(data), 997)]
    assert len(feed(chunks, protocol)) == 2_000
    assert protocol._buffer is buffer
    assert buffer.copied <= 3 * len(data)
