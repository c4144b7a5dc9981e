"""The search application: what each request is answered with.

No network I/O here: the connection handler feeds requests in and writes the
reply messages out. See docs/protocol.md for the actions.

The seam between the server and an application is :class:`Application`:
``respond`` returns either the :class:`Reply` at once, or a
:class:`Deferred`, blocking work that the connection runs in a worker
thread (``work``) before turning its result into the reply on the event loop
(``finish``). Replies go out in request order either way. A program that
embeds trio_search can serve an application object of its own, answering
actions of its own, through ``SearchServer(app=...)``.
"""

from __future__ import annotations

import datetime
import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
import orjson

from . import _codes as codes
from ._cache import remember
from ._engine import SearchIndex
from ._errors import RequestError, TrioSearchError, excerpt
from ._index import BUILTIN_INDEX, builtin_search_index, index_of_mapping
from ._json import bad_value_reason, decode_json, encode_json, json_type_name
from ._limits import (
    INLINE_QUERY_MAX_ANSWER_CHARACTERS,
    INLINE_QUERY_MAX_DOCUMENTS,
    INLINE_QUERY_MAX_HITS,
    REPLY_CACHE_ENTRIES,
    REPLY_CACHE_MAX_CONTENT_LENGTH,
    REPLY_CACHE_MAX_REPLY_LENGTH,
    THREAD_DECODE_THRESHOLD,
)
from ._message import (
    BINARY_ENCODING,
    EMPTY_HEADERS,
    JSON_CONTENT_TYPE,
    SERVER_BINARY_CONTENT_TYPE,
    Message,
)
from ._protocol import encode_message
from ._query import QueryOptions, Word, parse_query_request

#: Spellings of UTF-8 that take the fast path (orjson reads UTF-8 only).
_UTF8_NAMES = frozenset({"utf-8", "utf8", "UTF-8", "UTF8"})

#: The prefix of the binary answer, followed by the request's first bytes.
BINARY_ANSWER_PREFIX = b"First 10 bytes of request: "
#: How many request bytes the binary answer echoes.
BINARY_ECHO_LENGTH = 10


@attrs.frozen
class Reply:
    """A response; if it reports a failure, that failure's code; and the
    action it answers, for metrics (one of search, query, stats, binary,
    other)."""

    message: Message
    error: str | None = None
    action: str = "other"

    @functools.cached_property
    def wire(self) -> bytes:
        """The response's bytes on the wire, encoded once per reply."""
        return encode_message(self.message)


def json_response(content: Mapping[str, Any]) -> Message:
    """A ``text/json`` response in UTF-8, as the tutorial's server sends."""
    return Message._trusted(
        encode_json(content, "utf-8"), JSON_CONTENT_TYPE, "utf-8", sys.byteorder, EMPTY_HEADERS
    )


def compact_json_response(content: Mapping[str, Any]) -> Message:
    """A ``text/json`` response in UTF-8 for the actions the tutorial does not
    have (``query``): compact JSON from orjson, several times faster than the
    standard library's for ten hits, which matters on every query."""
    try:
        encoded = orjson.dumps(content)
    except orjson.JSONEncodeError:  # a lone surrogate in an answer
        return json_response(content)
    return Message._trusted(encoded, JSON_CONTENT_TYPE, "utf-8", sys.byteorder, EMPTY_HEADERS)


def error_reply(error: TrioSearchError) -> Reply:
    """The response that reports ``error`` to the peer.

    ``"result"`` starts with ``"Error: "`` so the tutorial's client prints a
    readable line; ``"error"`` holds the machine-readable code.
    """
    content = {"result": f"Error: {error.message}.", "error": error.code}
    return Reply(json_response(content), error.code)


@attrs.frozen
class Deferred:
    """An answer that needs blocking work (disk, CPU): the connection runs
    ``work`` in a worker thread, then ``finish(result)`` on the event loop,
    which gives the reply or more work.

    ``work`` must not call Trio; ``finish`` must not block.
    """

    work: Callable[[], Any]
    finish: Callable[[Any], Reply | Deferred] = attrs.field(default=lambda reply: reply)


class Application(Protocol):
    """What :class:`~trio_search.SearchServer` serves: any object with this method."""

    def respond(self, request: Message) -> Reply | Deferred:
        """The reply to one well-framed request, or the work that makes it.
        Must not raise for anything the peer sent; must not block."""
        ...


def _as_search_index(index: SearchIndex | Mapping[str, str]) -> SearchIndex:
    if isinstance(index, SearchIndex):
        return index
    if index is BUILTIN_INDEX:
        return builtin_search_index()
    return index_of_mapping(index)


@attrs.define(eq=False)
class SearchApp:
    """Answers ``search``, ``query`` and ``stats`` from a search index.

    Args:
        index: The documents: a :class:`SearchIndex`, or a mapping of key ->
            answer string (indexed in memory).
        stats: Returns the server's live counters for the ``stats`` action;
            ``None`` answers ``stats`` as an invalid action.
        inline_documents: Queries on an index of at most this many documents
            are answered on the event loop; larger ones in a worker thread.
    """

    index: SearchIndex = attrs.field(factory=builtin_search_index, converter=_as_search_index)
    stats: Callable[[], Mapping[str, Any]] | None = None
    inline_documents: int = INLINE_QUERY_MAX_DOCUMENTS
    # A search's reply depends only on the request's content and the data,
    # so replies to the most sent UTF-8 search requests are kept, encoded,
    # by their content bytes: a repeated request costs one lookup. Emptied
    # whenever the data changes (another index, or a new generation of this
    # one). Bounded in entries, request length and reply length, whatever
    # clients send and the data holds.
    _search_replies: dict[bytes, Reply] = attrs.field(factory=dict, init=False)
    #: The index, and its version of the data, that ``_search_replies``
    #: answer from (a version, not the generation number, which can repeat).
    _replies_index: SearchIndex | None = attrs.field(default=None, init=False)
    _replies_version: object = attrs.field(default=None, init=False)

    def replace_index(self, index: SearchIndex) -> None:
        """Answer from ``index`` from now on; requests already being answered
        finish on the old one. Its query cache counts on from the old one's."""
        index.continue_counts(self.index)
        self.index = index

    def _reply_cache(self) -> dict[bytes, Reply]:
        """The kept replies, emptied first if the data changed since they were
        made. (Two comparisons per request: no tuple is built.)"""
        index = self.index
        version = index.version
        if self._replies_index is not index or self._replies_version is not version:
            self._search_replies = {}
            self._replies_index = index
            self._replies_version = version
        return self._search_replies

    def respond(self, request: Message) -> Reply | Deferred:
        """Return the reply to one well-framed request, or the work that makes
        it. Never raises for anything the peer sent."""
        if request.content_type != JSON_CONTENT_TYPE:
            content = BINARY_ANSWER_PREFIX + request.content[:BINARY_ECHO_LENGTH]
            return Reply(
                Message(content, SERVER_BINARY_CONTENT_TYPE, BINARY_ENCODING), action="binary"
            )
        if len(request.content) > THREAD_DECODE_THRESHOLD:
            # Decoding a large request could stall the other connections.
            return Deferred(functools.partial(self._decode, request), self._answer_decoded)
        if request.content_encoding in _UTF8_NAMES:
            index = self.index
            if self._replies_index is index and self._replies_version is index.version:
                cache = self._search_replies  # current: the usual case, inline
            else:
                cache = self._reply_cache()
            reply = cache.get(request.content)
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
                    version = self._replies_version  # of ``index``, checked above
                    reply = self._search(value)
                    # Kept only if the data did not change while answering.
                    if (
                        len(request.content) <= REPLY_CACHE_MAX_CONTENT_LENGTH
                        and len(reply.message.content) <= REPLY_CACHE_MAX_REPLY_LENGTH
                        and self._search_replies is cache
                        and self.index is index
                        and index.version is version
                    ):
                        remember(cache, request.content, reply, REPLY_CACHE_ENTRIES)
                    return reply
        try:
            body = decode_json(request.content, request.content_encoding)
        except RequestError as exc:
            return error_reply(exc)
        return self._answer_decoded(body)

    @staticmethod
    def _decode(request: Message) -> Any:
        try:
            return decode_json(request.content, request.content_encoding)
        except RequestError as exc:
            return exc

    def _search(self, value: str) -> Reply:
        answer = self.index.lookup(value)
        if answer is None:
            answer = f"No match for '{value}'."
        return Reply(json_response({"result": answer}), action="search")

    def _answer_decoded(self, body: Any) -> Reply | Deferred:
        """The answer to a decoded request (or to the error decoding it)."""
        if isinstance(body, RequestError):
            return error_reply(body)
        try:
            return self._answer_json(body)
        except RequestError as exc:
            return error_reply(exc)

    def _answer_json(self, body: Any) -> Reply | Deferred:
        if not isinstance(body, dict):
            raise RequestError(
                f"request must be a JSON object, not {json_type_name(body)}",
                code=codes.NOT_AN_OBJECT,
            )
        if "action" not in body:
            raise RequestError("request has no 'action'", code=codes.MISSING_ACTION)
        action = body["action"]
        if action == "search":
            value = body.get("value")
            if not isinstance(value, str):
                raise RequestError(bad_value_reason(body), code=codes.BAD_VALUE)
            return self._search(value)
        if action == "query":
            text, options = parse_query_request(body)
            index = self.index
            words = index.words(text, options)
            # Cheap enough for the event loop: a page of few hits (each costs
            # a read and a highlight), and a small index searched whole (each
            # field named multiplies the terms) whose dictionary slices for
            # the words that allow typos are read (a first read costs up to
            # 15 ms: it is done in the worker thread, so the next query on
            # those letters runs here); or, on a large one, a query reading
            # few postings, those of the words its second pass would also
            # match included. Or a page of a ranking kept by the query cache.
            # Answers are the user's data: once a query has read a long
            # one, this data's queries all go to a worker thread.
            few = (
                min(options.limit, index.documents) <= INLINE_QUERY_MAX_HITS
                and index.longest_answer_read <= INLINE_QUERY_MAX_ANSWER_CHARACTERS
            )
            small = index.documents <= self.inline_documents and options.fields is None
            if few and (
                (small and index.has_dictionary_for(words))
                or index.has_ranking(text, words, options)
                or index.is_cheap(words, options)
            ):
                return self._query(index, text, options)
            return Deferred(functools.partial(self._query, index, text, options, words))
        if action == "health":
            # For load balancers' checks: cheap, and always the same bytes.
            return Reply(json_response({"result": "ok"}))
        if action == "stats" and self.stats is not None:
            stats = {**self.stats(), **self._index_stats()}
            return Reply(json_response({"result": stats}), action="stats")
        raise RequestError(f"invalid action '{excerpt(action)}'", code=codes.INVALID_ACTION)

    @staticmethod
    def _query(
        index: SearchIndex, text: str, options: QueryOptions, read: Sequence[Word] = ()
    ) -> Reply:
        """Run a query and encode its reply (in a worker thread for large
        indexes), first reading what the dictionary needs for the words
        ``read`` (so that the next query for them may run on the event loop)."""
        try:
            index.read_dictionary_for(read)
            result = index.query(text, options)
        except RequestError as exc:
            return error_reply(exc)
        content = {"result": [hit.to_json() for hit in result.hits], "total": result.total}
        reply = Reply(compact_json_response(content), action="query")
        # Encoded for the wire here, where the query ran: a reply of long
        # answers (tens of MB) would otherwise be copied on the event loop.
        _ = reply.wire
        return reply

    def _index_stats(self) -> dict[str, Any]:
        index = self.index
        loaded = datetime.datetime.fromtimestamp(index.loaded_at, datetime.UTC)
        return {
            "index_documents": index.documents,
            "index_generation": index.generation,
            "index_loaded_at": loaded.isoformat(timespec="seconds"),
            "query_cache_hits": index.ranking_cache_counts.hits,
            "query_cache_stored": index.ranking_cache_counts.stored,
        }
