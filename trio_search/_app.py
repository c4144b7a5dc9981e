"""The tutorial's search application, as a pure function of a request.

No I/O here: the connection handler feeds requests in and writes the reply
messages out. See PROTOCOL.md, "Requests and responses of the tutorial's app".
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import orjson

from ._errors import RequestError, TrioSearchError
from ._index import BUILTIN_INDEX
from ._json import decode_json, encode_json
from ._limits import REPLY_CACHE_ENTRIES, REPLY_CACHE_MAX_CONTENT_LENGTH
from ._message import (
    BINARY_ENCODING,
    EMPTY_HEADERS,
    JSON_CONTENT_TYPE,
    SERVER_BINARY_CONTENT_TYPE,
    Message,
)
from ._protocol import encode_message

#: Spellings of UTF-8 that take the fast path (orjson reads UTF-8 only).
_UTF8_NAMES = frozenset({"utf-8", "utf8", "UTF-8", "UTF8"})

#: The prefix of the binary answer, followed by the request's first bytes.
BINARY_ANSWER_PREFIX = b"First 10 bytes of request: "
#: How many request bytes the binary answer echoes.
BINARY_ECHO_LENGTH = 10


@attrs.frozen
class Reply:
    """A response and, if it reports a failure, that failure's code."""

    message: Message
    error: str | None = None

    @functools.cached_property
    def wire(self) -> bytes:
        """The response's bytes on the wire, encoded once per reply."""
        return encode_message(self.message)


def json_response(content: Mapping[str, Any]) -> Message:
    """A ``text/json`` response in UTF-8, as the tutorial's server sends."""
    return Message._trusted(
        encode_json(content, "utf-8"), JSON_CONTENT_TYPE, "utf-8", sys.byteorder, EMPTY_HEADERS
    )


def error_reply(error: TrioSearchError) -> Reply:
    """The response that reports ``error`` to the peer.

    ``"result"`` starts with ``"Error: "`` so the tutorial's client prints a
    readable line; ``"error"`` holds the machine-readable code.
    """
    content = {"result": f"Error: {error.message}.", "error": error.code}
    return Reply(json_response(content), error.code)


@attrs.frozen
class SearchApp:
    """Answers the tutorial's requests from ``index``.

    Args:
        index: key -> answer string for the ``search`` action.
        stats: Returns the server's live counters for the ``stats`` action;
            ``None`` answers ``stats`` as an invalid action.
    """

    index: Mapping[str, str] = BUILTIN_INDEX
    stats: Callable[[], Mapping[str, Any]] | None = None
    # A search's reply depends only on the request's content (the index is
    # read-only), so replies to the most sent UTF-8 search requests are kept,
    # encoded, by their content bytes: a repeated request costs one lookup.
    # Bounded in entries and content length, whatever clients send.
    _search_replies: dict[bytes, Reply] = attrs.field(factory=dict, init=False, eq=False)

    def respond(self, request: Message) -> Reply:
        """Return the reply to one well-framed request. Never raises for
        anything the peer sent."""
        if request.content_type != JSON_CONTENT_TYPE:
            content = BINARY_ANSWER_PREFIX + request.content[:BINARY_ECHO_LENGTH]
            return Reply(Message(content, SERVER_BINARY_CONTENT_TYPE, BINARY_ENCODING))
        if request.content_encoding in _UTF8_NAMES:
            reply = self._search_replies.get(request.content)
            if reply is not None:
                return reply
            # Fast path for the common well-formed search. orjson accepts
            # less than the standard library (lone surrogates, NaN, integers
            # beyond 64 bits), never more; anything unusual falls through to
            # the exact path below, which decides what the request means.
            try:
                body = orjson.loads(request.content)
            except orjson.JSONDecodeError:
                body = None
            if type(body) is dict and body.get("action") == "search":
                value = body.get("value")
                if type(value) is str:
                    reply = self._search(value)
                    if (
                        len(request.content) <= REPLY_CACHE_MAX_CONTENT_LENGTH
                        and len(self._search_replies) < REPLY_CACHE_ENTRIES
                    ):
                        self._search_replies[request.content] = reply
                    return reply
        try:
            return self._respond_json(request)
        except RequestError as exc:
            return error_reply(exc)

    def _search(self, value: str) -> Reply:
        answer = self.index.get(value)
        if answer is None:
            answer = f"No match for '{value}'."
        return Reply(json_response({"result": answer}))

    def _respond_json(self, request: Message) -> Reply:
        body = decode_json(request.content, request.content_encoding)
        if not isinstance(body, dict):
            raise RequestError(
                f"request must be a JSON object, not {type(body).__name__}",
                code="not_an_object",
            )
        if "action" not in body:
            raise RequestError("request has no 'action'", code="missing_action")
        action = body["action"]
        if action == "search":
            value = body.get("value")
            if not isinstance(value, str):
                raise RequestError(
                    f"'value' must be a string, not {type(value).__name__}", code="bad_value"
                )
            return self._search(value)
        if action == "stats" and self.stats is not None:
            return Reply(json_response({"result": dict(self.stats())}))
        return Reply(
            json_response(
                {"result": f"Error: invalid action '{action}'.", "error": "invalid_action"}
            ),
            "invalid_action",
        )
