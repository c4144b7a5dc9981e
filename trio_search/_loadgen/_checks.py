"""Requests to send and how to tell a right answer."""

from __future__ import annotations

import attrs

from .._app import BINARY_ANSWER_PREFIX, BINARY_ECHO_LENGTH
from .._errors import RequestError
from .._index import BUILTIN_INDEX
from .._json import decode_json, encode_json
from .._message import (
    BINARY_ENCODING,
    CLIENT_BINARY_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    SERVER_BINARY_CONTENT_TYPE,
    Message,
)
from .._protocol import encode_message
from ._constants import KNOWN_GOOD_ANSWERS


@attrs.define(eq=False)
class AnswerChecker:
    """Decides whether a response is the expected answer.

    Args:
        content_type: The expected response content-type.
        result: For ``text/json``: the expected ``"result"`` string.
        content: For any other type: the expected content, byte for byte.
    """

    content_type: str
    result: str | None = None
    content: bytes | None = None
    # Right answers seen, content -> content-encoding.
    _good: dict[bytes, str] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        if (self.result is None) == (self.content is None):
            raise ValueError("give exactly one of result and content")
        if self.content is not None:
            self._good[self.content] = BINARY_ENCODING

    def is_right(self, message: Message) -> bool:
        """Whether ``message`` is the expected answer."""
        if message.content_type != self.content_type:
            return False
        encoding = self._good.get(message.content)
        if encoding is not None:
            return encoding == message.content_encoding or self.result is None
        if self.result is None:
            return False
        try:
            body = decode_json(message.content, message.content_encoding)
        except RequestError:
            return False
        right = (
            type(body) is dict
            and body.get("result") == self.result
            and "error" not in body
            and type(body["result"]) is str
        )
        if right and len(self._good) < KNOWN_GOOD_ANSWERS:
            self._good[message.content] = message.content_encoding
        return right


def search_request(query: str, expect: str | None = None) -> tuple[bytes, AnswerChecker]:
    """The wire bytes of a ``search`` for ``query``, and its answer checker.

    Without ``expect`` the answer is the built-in index's, or the tutorial's
    ``No match for '...'.`` for a key it does not hold.
    """
    request = encode_message(Message(encode_json({"action": "search", "value": query})))
    if expect is None:
        expect = BUILTIN_INDEX.get(query, f"No match for '{query}'.")
    return request, AnswerChecker(JSON_CONTENT_TYPE, result=expect)


def binary_request(payload: bytes, expect: bytes | None = None) -> tuple[bytes, AnswerChecker]:
    """The wire bytes of a binary request carrying ``payload``, and its checker.

    Without ``expect`` the answer is the tutorial's echo of the first bytes.
    """
    request = encode_message(Message(payload, CLIENT_BINARY_CONTENT_TYPE, BINARY_ENCODING))
    if expect is None:
        expect = BINARY_ANSWER_PREFIX + payload[:BINARY_ECHO_LENGTH]
    return request, AnswerChecker(SERVER_BINARY_CONTENT_TYPE, content=expect)
