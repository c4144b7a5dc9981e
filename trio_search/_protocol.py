"""The sans-IO protocol object: bytes in, messages out; messages in, bytes out.

Theory of operation
-------------------

A message on the wire is a 2-byte big-endian length N, N bytes of UTF-8 JSON
header, then ``content-length`` bytes of content (see docs/protocol.md). The
:class:`MessageProtocol` holds no socket, no clock and no task: the caller
feeds it whatever bytes arrived with :meth:`~MessageProtocol.receive_data`
and pulls complete messages with :meth:`~MessageProtocol.next_message` until
it answers :data:`NEED_DATA`. Bytes can be split anywhere; the result is the
same.

Received bytes accumulate in one ``bytearray`` read from an offset; consumed
bytes are dropped once per batch, when the parser runs dry, so the work stays
O(bytes received) however the input is split or however many messages one
read carries.

Limits are checked as early as possible: an over-long header is refused as
soon as its 2-byte prefix is in, an over-long content as soon as the header
that declares it is parsed, so neither is ever buffered.

Any framing violation raises :class:`RemoteProtocolError` and is sticky: the
object refuses further parsing, because the byte stream has lost its
message boundaries.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple, NoReturn

import attrs
import orjson

from . import _codes as codes
from ._cache import remember
from ._errors import LocalProtocolError, RemoteProtocolError, json_excerpt
from ._json import json_type_name
from ._limits import (
    DEFAULT_MAX_CONTENT_LENGTH,
    DEFAULT_MAX_HEADER_LENGTH,
    MAX_ENCODABLE_HEADER_LENGTH,
    PREFIX_LENGTH,
)
from ._message import EMPTY_HEADERS, REQUIRED_HEADER_KEYS, Message


class Signal(enum.Enum):
    """What :meth:`MessageProtocol.next_message` returns instead of a message."""

    #: No complete message is buffered; feed more bytes.
    NEED_DATA = "NEED_DATA"
    #: The peer closed the stream cleanly, between two messages.
    CLOSED = "CLOSED"


NEED_DATA: Final = Signal.NEED_DATA
CLOSED: Final = Signal.CLOSED


def _positive_int(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 0:
        raise ValueError(f"{attribute.name} must be a non-negative int, not {value!r}")


class _Header(NamedTuple):
    """A parsed header (immutable, so parsed headers can be shared)."""

    content_length: int
    content_type: str
    content_encoding: str
    byteorder: str
    extra: Mapping[str, Any]


# Clients send the same few headers over and over (the same query has the
# same content-length), so headers of the usual four keys are remembered by
# their exact bytes, shared by every protocol object. Bounded in entries and
# key length so that clients sending ever new headers cannot grow it (and
# emptied when full: see trio_search._cache).
_known_headers: dict[bytes, _Header] = {}
#: Headers remembered, at most, in entries.
_KNOWN_HEADERS = 1024
#: Longest header remembered, in bytes (the tutorial's are about 100).
_KNOWN_HEADER_MAX_LENGTH = 256


# Limits are validated once, at construction; no per-assignment hooks, since
# the parser's state attributes change on every message (a hot path).
@attrs.define(on_setattr=attrs.setters.NO_OP)
class MessageProtocol:
    """Turns received bytes into messages and messages into bytes, with no I/O.

    The same object serves a server (reading requests) and a client (reading
    responses): the format is the same both ways.

    Args:
        max_header_length: Largest JSON header accepted, in bytes.
        max_content_length: Largest content accepted, in bytes.
    """

    max_header_length: int = attrs.field(default=DEFAULT_MAX_HEADER_LENGTH, validator=_positive_int)
    max_content_length: int = attrs.field(
        default=DEFAULT_MAX_CONTENT_LENGTH, validator=_positive_int
    )
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _offset: int = attrs.field(default=0, init=False)
    _header: _Header | None = attrs.field(default=None, init=False)
    _eof: bool = attrs.field(default=False, init=False)
    _error: RemoteProtocolError | None = attrs.field(default=None, init=False)
    #: The last header parsed, as bytes and parsed: a client's next request
    #: usually has the same header bytes, recognised in place in the buffer
    #: (no slice, no lookup).
    _last_raw: bytes = attrs.field(default=b"", init=False)
    _last_header: _Header | None = attrs.field(default=None, init=False)

    @property
    def mid_message(self) -> bool:
        """Whether part of a message has arrived but not the whole of it.

        False means the stream is between messages (which is when an idle
        timeout applies); True means a request has begun (a request timeout).
        """
        return self._header is not None or len(self._buffer) > self._offset

    @property
    def bytes_needed(self) -> int | None:
        """Bytes still to come before the message begun is whole, once its
        header has been read; ``None`` before that."""
        header = self._header
        if header is None:
            return None
        return self._offset + header.content_length - len(self._buffer)

    @property
    def buffered(self) -> int:
        """Bytes held in the receive buffer now (what a server-wide memory
        budget counts)."""
        return len(self._buffer)

    def receive_data(self, data: bytes | bytearray) -> None:
        """Add bytes received from the peer; ``b""`` means the peer closed.

        Raises:
            LocalProtocolError: data fed after end of file was signalled.
        """
        if self._eof:
            raise LocalProtocolError(
                "receive_data() called after end of file", code=codes.AFTER_EOF
            )
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_message(self) -> Message | Literal[Signal.NEED_DATA, Signal.CLOSED]:
        """Return the next complete message, or a :class:`Signal`.

        Returns:
            A :class:`Message`; :data:`NEED_DATA` if more bytes are needed;
            :data:`CLOSED` once the peer has closed cleanly between messages
            (and on every later call).

        Raises:
            RemoteProtocolError: the bytes break the framing, or the peer
                closed in the middle of a message. Raised again on every
                later call.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._parse()
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    def _parse(self) -> Message | Literal[Signal.NEED_DATA, Signal.CLOSED]:
        buffer = self._buffer
        size = len(buffer)
        offset = self._offset
        header = self._header
        if header is None:
            if size - offset < PREFIX_LENGTH:
                return self._ran_dry()
            header_length = (buffer[offset] << 8) | buffer[offset + 1]
            if header_length == 0 or header_length > self.max_header_length:
                self._refuse_header_length(header_length)
            header_end = offset + PREFIX_LENGTH + header_length
            if size < header_end:
                return self._ran_dry()
            last_raw = self._last_raw
            if len(last_raw) == header_length and buffer.startswith(
                last_raw, offset + PREFIX_LENGTH
            ):
                header = self._last_header
                assert header is not None
            else:
                raw = bytes(buffer[offset + PREFIX_LENGTH : header_end])
                header = _known_headers.get(raw)
                if header is None or header.content_length > self.max_content_length:
                    header = self._parse_header(raw)
                self._last_raw, self._last_header = raw, header
            offset = header_end
        content_length, content_type, content_encoding, byteorder, extra = header
        content_end = offset + content_length
        if size < content_end:
            # The header is consumed; wait for the rest of its content.
            self._offset = offset
            self._header = header
            return self._ran_dry()
        self._offset = content_end
        self._header = None
        content = bytes(buffer[offset:content_end])
        return Message._trusted(content, content_type, content_encoding, byteorder, extra)

    def _refuse_header_length(self, header_length: int) -> NoReturn:
        if header_length == 0:
            raise RemoteProtocolError("header length is 0", code=codes.EMPTY_HEADER)
        raise RemoteProtocolError(
            f"header length {header_length} exceeds the limit of {self.max_header_length} bytes",
            code=codes.HEADER_TOO_LONG,
        )

    def _ran_dry(self) -> Literal[Signal.NEED_DATA, Signal.CLOSED]:
        # Drop consumed bytes once per batch rather than once per message.
        if self._offset:
            del self._buffer[: self._offset]
            self._offset = 0

        if not self._eof:
            return NEED_DATA
        if self._buffer or self._header is not None:
            raise RemoteProtocolError(
                "connection closed in the middle of a message", code=codes.TRUNCATED
            )
        return CLOSED

    def _parse_header(self, raw: bytes) -> _Header:
        # Fast path: orjson, for the usual header of exactly the four keys with
        # values of the right types. Anything else (errors, extra keys, and
        # numbers orjson would read differently: it turns integers beyond 64
        # bits into floats) takes the exact path, whose verdict is the one
        # that counts.
        try:
            fields = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._parse_header_exactly(raw)
        if type(fields) is dict and len(fields) == len(REQUIRED_HEADER_KEYS):
            content_length = fields.get("content-length")
            content_type = fields.get("content-type")
            content_encoding = fields.get("content-encoding")
            byteorder = fields.get("byteorder")
            if (
                type(content_length) is int
                and 0 <= content_length <= self.max_content_length
                and type(content_type) is str
                and type(content_encoding) is str
                and type(byteorder) is str
            ):
                header = _Header(
                    content_length, content_type, content_encoding, byteorder, EMPTY_HEADERS
                )
                if len(raw) <= _KNOWN_HEADER_MAX_LENGTH:
                    remember(_known_headers, raw, header, _KNOWN_HEADERS)
                return header
        return self._parse_header_exactly(raw)

    def _parse_header_exactly(self, raw: bytes) -> _Header:
        """Parse with the standard library's json, raising the precise error."""
        # ValueError covers UnicodeDecodeError, JSONDecodeError, and a number
        # with more digits than int() accepts (sys.get_int_max_str_digits()).
        try:
            fields = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise RemoteProtocolError(
                f"header is not UTF-8 JSON: {exc}", code=codes.BAD_HEADER
            ) from exc
        if type(fields) is not dict:
            raise RemoteProtocolError(
                f"header is {json_type_name(fields)}, not an object", code=codes.BAD_HEADER
            )
        missing = [key for key in REQUIRED_HEADER_KEYS if key not in fields]
        if missing:
            raise RemoteProtocolError(
                f"header lacks required key(s): {', '.join(missing)}",
                code=codes.MISSING_HEADER_KEY,
            )
        content_length = fields.pop("content-length")
        # bool is an int subclass and float may be integral: neither is a length.
        if type(content_length) is not int or content_length < 0:
            raise RemoteProtocolError(
                "content-length must be a non-negative integer, "
                f"not {json_excerpt(content_length)}",
                code=codes.BAD_CONTENT_LENGTH,
            )
        if content_length > self.max_content_length:
            raise RemoteProtocolError(
                f"content-length {content_length} exceeds the limit of "
                f"{self.max_content_length} bytes",
                code=codes.CONTENT_TOO_LONG,
            )
        content_type = fields.pop("content-type")
        content_encoding = fields.pop("content-encoding")
        byteorder = fields.pop("byteorder")
        for key, value in (
            ("content-type", content_type),
            ("content-encoding", content_encoding),
            ("byteorder", byteorder),
        ):
            if type(value) is not str:
                raise RemoteProtocolError(
                    f"{key} must be a string, not {json_excerpt(value)}",
                    code=codes.BAD_HEADER_VALUE,
                )
        extra = MappingProxyType(fields) if fields else EMPTY_HEADERS
        return _Header(content_length, content_type, content_encoding, byteorder, extra)

    def send(self, message: Message) -> bytes:
        """Return the bytes that put ``message`` on the wire.

        Raises:
            LocalProtocolError: the header would not fit the 2-byte prefix.
        """
        return encode_message(message)


def _json_header_bytes(fields: dict[str, Any]) -> bytes:
    """JSON text of ``fields`` as UTF-8, as the tutorial writes it.

    Lone surrogates cannot be UTF-8; they are written as JSON escapes then.
    """
    try:
        return json.dumps(fields, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(fields, ensure_ascii=True).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(
            f"header is not JSON-serializable: {exc}", code=codes.UNENCODABLE
        ) from exc


# Headers without extra keys differ only in content-length, so their JSON
# text up to that value is computed once per (byteorder, type, encoding).
_header_stem_cache: dict[tuple[str, str, str], bytes] = {}
#: Distinct header stems remembered; peers choose content types, so bounded.
_HEADER_STEM_CACHE_SIZE = 64


def _header_stem(byteorder: str, content_type: str, content_encoding: str) -> bytes:
    key = (byteorder, content_type, content_encoding)
    stem = _header_stem_cache.get(key)
    if stem is None:
        fields = {
            "byteorder": byteorder,
            "content-type": content_type,
            "content-encoding": content_encoding,
        }
        # Drop the closing brace; the length and the brace are appended later.
        stem = _json_header_bytes(fields)[:-1] + b', "content-length": '
        remember(_header_stem_cache, key, stem, _HEADER_STEM_CACHE_SIZE)
    return stem


def encode_message(message: Message) -> bytes:
    """Return the wire bytes of ``message``: prefix, JSON header, content.

    The header is written as the tutorial writes it: ``json.dumps`` with
    ``ensure_ascii=False``, keys byteorder, content-type, content-encoding,
    content-length, then any extra headers.

    Raises:
        LocalProtocolError: the header would not fit the 2-byte prefix, or an
            extra header value is not JSON-serializable.
    """
    content = message.content
    if message.extra_headers:
        header = _json_header_bytes(
            {
                "byteorder": message.byteorder,
                "content-type": message.content_type,
                "content-encoding": message.content_encoding,
                "content-length": len(content),
                **message.extra_headers,
            }
        )
    else:
        stem = _header_stem(message.byteorder, message.content_type, message.content_encoding)
        header = b"%s%d}" % (stem, len(content))
    if len(header) > MAX_ENCODABLE_HEADER_LENGTH:
        raise LocalProtocolError(
            f"header of {len(header)} bytes does not fit the 2-byte length prefix",
            code=codes.HEADER_TOO_LONG_TO_SEND,
        )
    return len(header).to_bytes(PREFIX_LENGTH, "big") + header + content
