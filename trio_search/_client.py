"""The Trio client: one connection, many requests, answered in order.

A request sent on a connection that has answered before (a *reused*
keep-alive connection) may cross the server's closing of it: an idle
timeout, a graceful shutdown, a server that closes after each answer. The
server never read such a request, and every action is a read, so the
client sends it again, once, on a new connection, as HTTP clients do for
idempotent requests (urllib3, httpx); see :class:`SearchClient`.

A plain client that reached a TLS server, or a TLS client a plain one, is
told so only as far as what it received shows it: the first bytes of a
plain connection that begin a TLS record (an alert, say) mean TLS; a plain
connection closed before any answer, by a server that never answered this
client, may mean it (a TLS server drops a plain client so, without a word,
but so do others); a failed handshake with a TLS error other than a refused
certificate means the server may not speak TLS.
"""

from __future__ import annotations

import functools
import math
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from . import _codes as codes
from . import _validators as validators
from ._errors import ErrorResponse, RemoteProtocolError, RequestError, ServerResponseError
from ._json import decode_json, encode_json
from ._limits import DEFAULT_MAX_CONTENT_LENGTH, DEFAULT_MAX_HEADER_LENGTH, RECEIVE_SIZE
from ._message import BINARY_ENCODING, CLIENT_BINARY_CONTENT_TYPE, Message
from ._protocol import CLOSED, NEED_DATA, MessageProtocol, encode_message
from ._query import DEFAULT_QUERY_LIMIT, Hit, QueryResult
from ._transport import Transport, send, transport_for

#: The first byte of a TLS record, by type, that a TLS server may send a
#: client that spoke plain bytes to it: an alert (then it closes), or a
#: handshake (its answer to what it took for a hello).
TLS_RECORD_TYPES = {0x15: "alert", 0x16: "handshake"}
#: The second byte of every TLS record: major version 3 (SSL 3.0 and TLS
#: 1.0 to 1.3 are 3.0 to 3.4 on the wire). Read as a message's length
#: prefix, 0x15 0x03 and 0x16 0x03 announce a header of 5,379 and 5,635
#: bytes, where an answer's is about a hundred: in an answer that cannot be
#: read anyway, they are a TLS record.
TLS_MAJOR_VERSION = 0x03
#: Bytes of a connection kept to tell a TLS record (type and version).
_TLS_RECORD_START = 2
#: The end of a hint to use TLS, or not, for the command and in Python.
_CONNECT_WITH_TLS = "connect with --tls (ssl_context= in Python)"
_CONNECT_WITHOUT_TLS = "connect without --tls (ssl_context=None in Python)"


def tls_record_type(opening: bytes) -> str | None:
    """The type of TLS record (``"alert"``, ``"handshake"``) that
    ``opening``, the first bytes a connection received, begins, or ``None``."""
    if len(opening) < _TLS_RECORD_START or opening[1] != TLS_MAJOR_VERSION:
        return None
    return TLS_RECORD_TYPES.get(opening[0])


def may_not_speak_tls(error: BaseException | None) -> bool:
    """Whether ``error``, why a TLS handshake failed, suggests the server
    does not speak TLS at all: any TLS error but refusing the certificate
    it sent (which only a TLS server sends)."""
    return isinstance(error, ssl.SSLError) and not isinstance(error, ssl.SSLCertVerificationError)


@attrs.define(eq=False)
class SearchClient:
    """A connection to a trio_search (or the tutorial's) server.

    Requests on one client are answered in order; :meth:`request_many`
    pipelines them in one write. Several tasks may share a client: their
    requests take turns, each sent once the answers to the one before it
    have arrived.

    A call that ends before all its answers arrived (cancelled by a
    ``trio.fail_after``, or failed) leaves the connection out of step:
    answers may still be on their way, and would be read as the next
    request's. The client closes that connection at once, and the next
    request opens a new one with ``reconnect`` (without one, it raises
    :class:`ServerResponseError`, code ``connection_abandoned``).

    Retry once on a reused connection: when a connection that has already
    answered requests ends (end of file, or reset) before any byte of the
    answer to a request sent on it, the server closed it as the request was
    on its way (an idle timeout, a graceful shutdown or rolling restart, a
    server that closes after each answer, as the tutorial's does) and never
    read it. Every action only reads, so the client opens a new connection
    with ``reconnect`` and sends the unanswered requests again, once; that
    is what HTTP clients do for idempotent requests. A failure on a new
    connection, on the retry's connection, or after part of an answer
    arrived is raised, never retried: a server that ends a fresh connection
    without answering is refusing, not closing an idle one. :attr:`retried`
    counts the requests sent again.

    Args:
        stream: A connected Trio stream (TCP, TLS, or memory in tests).
        max_header_length: Largest response header accepted, in bytes.
        max_content_length: Largest response content accepted, in bytes.
        reconnect: Opens a new connection to the same server, for the
            retry (:func:`open_client` passes its own); ``None``: no retry.
        retry: ``False`` raises at once instead of retrying.
    """

    stream: trio.abc.Stream
    max_header_length: int = DEFAULT_MAX_HEADER_LENGTH
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    reconnect: Callable[[], Awaitable[trio.abc.Stream]] | None = None
    retry: bool = True
    #: Requests sent again on a new connection (see above), in all.
    retried: int = attrs.field(default=0, init=False)
    _protocol: MessageProtocol = attrs.field(init=False)
    #: How bytes move (trio_search._transport), chosen once per connection.
    _transport: Transport = attrs.field(init=False)
    #: Answers received on the current connection: above 0, it is reused.
    _answered: int = attrs.field(default=0, init=False)
    #: One request (or batch) at a time, in the order the tasks asked.
    _turn: trio.StrictFIFOLock = attrs.field(factory=trio.StrictFIFOLock, init=False)
    #: The current connection was left mid-request and closed (see the class).
    _abandoned: bool = attrs.field(default=False, init=False)
    #: The first bytes the current connection received (at most
    #: _TLS_RECORD_START): do they begin a TLS record?
    _opening: bytes = attrs.field(default=b"", init=False)
    #: Some connection of this client was answered: its server speaks this
    #: protocol as the client connects, whatever a later connection does.
    _heard: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        self._protocol = MessageProtocol(self.max_header_length, self.max_content_length)
        self._transport = transport_for(self.stream)

    async def request(self, message: Message) -> Message:
        """Send one request and return its response.

        A reused connection that ends before the answer begins is replaced,
        and the request sent again, once (see the class).

        Raises:
            ServerResponseError: the server closed without answering (and
                the retry, if one was made, failed too) or sent bytes that
                are not a valid message.
            trio.BrokenResourceError: the connection broke (as above).
            OSError: the new connection for a retry could not be opened.
        """
        (response,) = await self.request_many([message])
        return response

    async def request_many(self, messages: Iterable[Message]) -> list[Message]:
        """Send several requests in one write and return their responses, in
        order.

        If the connection was reused and ends before the answer to one of
        them begins, that one and those after it are sent again, once, on a
        new connection (see the class).

        Raises:
            ServerResponseError: as for :meth:`request`.
        """
        batch = [encode_message(message) for message in messages]
        responses: list[Message] = []
        if not batch:
            return responses
        async with self._turn:
            if self._abandoned:
                await self._replace_abandoned()
            try:
                await self._exchange_or_retry(batch, responses)
            except BaseException:
                # Whatever was sent and not answered may still be answered:
                # nothing read from this connection could be trusted.
                self._abandoned = True
                await trio.aclose_forcefully(self.stream)
                raise
        return responses

    async def _exchange_or_retry(self, batch: list[bytes], responses: list[Message]) -> None:
        """:meth:`_exchange`, sending the unanswered part of ``batch`` again
        on a new connection if a reused one ended first (see the class)."""
        reused = self._answered > 0
        try:
            await self._exchange(batch, responses)
        except (ServerResponseError, trio.BrokenResourceError) as exc:
            if not (reused and self._may_retry(exc)):
                raise
            await self._reopen()
            unanswered = batch[len(responses) :]
            self.retried += len(unanswered)
            await self._exchange(unanswered, responses)

    async def _replace_abandoned(self) -> None:
        """A new connection for one left mid-request (see the class)."""
        if self.reconnect is None:
            raise ServerResponseError(
                "this client's connection was left mid-request (a call cancelled or "
                "failed) and it cannot open a new one: make a new client",
                code=codes.CONNECTION_ABANDONED,
            )
        await self._reopen()
        self._abandoned = False

    async def _exchange(self, batch: list[bytes], responses: list[Message]) -> None:
        """Send ``batch`` in one write; add each answer to ``responses`` as it
        arrives, so a failure leaves the ones answered before it."""
        await send(self._transport, b"".join(batch))
        for _ in batch:
            responses.append(await self._receive_message())
            self._answered += 1
            self._heard = True

    def _may_retry(self, error: ServerResponseError | trio.BrokenResourceError) -> bool:
        """Whether ``error`` is a connection that ended before any byte of the
        next answer (and retrying is allowed and possible)."""
        if not self.retry or self.reconnect is None:
            return False
        if isinstance(error, ServerResponseError):
            # Raised for an end of file between answers only; a truncated
            # answer or bad bytes have codes of their own.
            return error.code == codes.NO_RESPONSE
        return not self._protocol.mid_message

    async def _reopen(self) -> None:
        """Replace the connection with a new one from ``reconnect``. If that
        raises, the old one stays, ended: the next request retries again."""
        assert self.reconnect is not None
        stream = await self.reconnect()
        await trio.aclose_forcefully(self.stream)
        self.stream = stream
        self._transport = transport_for(stream)
        self._protocol = MessageProtocol(self.max_header_length, self.max_content_length)
        self._answered = 0
        self._opening = b""

    async def request_json(self, content: Mapping[str, Any], encoding: str = "utf-8") -> Any:
        """Send a ``text/json`` request and return its decoded JSON answer."""
        request = Message(encode_json(content, encoding), "text/json", encoding)
        response = await self.request(request)
        return decode_response_json(response)

    async def search(self, value: str) -> str:
        """Ask for ``value``'s answer, as the tutorial's ``search`` action.

        Returns:
            The answer; for a key not in the index, the server's
            ``No match for '...'.`` text.

        Raises:
            ErrorResponse: the server refused the request.
            ServerResponseError: the answer is not a valid search response.
        """
        content = await self.request_json({"action": "search", "value": value})
        result = json_result(content)
        if not isinstance(result, str):
            raise ServerResponseError(
                f"'result' is {type(result).__name__}, not a string", code=codes.BAD_RESULT
            )
        return result

    async def query(
        self,
        text: str,
        *,
        limit: int = DEFAULT_QUERY_LIMIT,
        offset: int = 0,
        typos: bool = True,
        prefix: bool = True,
        fields: Sequence[str] | None = None,
    ) -> QueryResult:
        """Run a full-text ``query``: the best hits for ``text``, one page of them.

        The options are sent as given and checked by the server (see
        docs/protocol.md for their ranges), so an out-of-range ``limit`` comes
        back as an :class:`ErrorResponse`, like any refused request; the
        connection stays usable.

        Args:
            text: What to look for, as typed in a search box.
            limit: Hits per page, 1 to 100.
            offset: Hits to skip, for the pages after the first.
            typos: Let longer words match with one or two typos.
            prefix: Let the last word match as the start of a longer word.
            fields: Search only these fields; ``None`` searches them all.

        Returns:
            The page's hits, best first, and how many documents match in all.

        Raises:
            ErrorResponse: the server refused the query (``bad_query``,
                ``query_too_long``, ...).
            ServerResponseError: the answer is not a valid query answer.
        """
        request = query_request(
            text, limit=limit, offset=offset, typos=typos, prefix=prefix, fields=fields
        )
        return parse_query_answer(await self.request_json(request))

    async def request_binary(self, content: bytes) -> Message:
        """Send ``content`` as the tutorial's binary request; return the reply."""
        return await self.request(Message(content, CLIENT_BINARY_CONTENT_TYPE, BINARY_ENCODING))

    async def aclose(self) -> None:
        """Close the connection."""
        await self.stream.aclose()

    async def _receive_message(self) -> Message:
        protocol = self._protocol
        while True:
            try:
                event = protocol.next_message()
            except RemoteProtocolError as exc:
                raise ServerResponseError(self._unreadable(exc), code=exc.code) from exc
            if event is CLOSED:
                raise ServerResponseError(self._unanswered(), code=codes.NO_RESPONSE)
            if event is not NEED_DATA:
                return event
            data = await self._transport.receive(RECEIVE_SIZE)
            if len(self._opening) < _TLS_RECORD_START:
                self._opening += data[: _TLS_RECORD_START - len(self._opening)]
            protocol.receive_data(data)

    def _is_plain(self) -> bool:
        return not isinstance(self.stream, trio.SSLStream)

    def _unreadable(self, error: RemoteProtocolError) -> str:
        """Why an answer cannot be read; if a plain connection began with a
        TLS record, that the server expects TLS (see the module)."""
        kind = tls_record_type(self._opening) if self._is_plain() else None
        if kind is None or self._answered:
            return f"invalid response: {error.message}"
        return (
            f"the server answered with a TLS {kind} record (it starts "
            f"0x{self._opening[0]:02x} 0x{TLS_MAJOR_VERSION:02x}), not a message: "
            f"it expects TLS; {_CONNECT_WITH_TLS}"
        )

    def _unanswered(self) -> str:
        """Why a connection ended between answers; on a plain connection to
        a server that has never answered this client, adding that it may
        expect TLS (see the module)."""
        message = "the server closed the connection without answering"
        if self._heard or not self._is_plain():
            return message
        return f"{message}; it may expect TLS: {_CONNECT_WITH_TLS}"


def decode_response_json(response: Message) -> Any:
    """The JSON content of a ``text/json`` response.

    Raises:
        ServerResponseError: the response is not text/json, or not decodable.
    """
    if not response.is_json:
        raise ServerResponseError(
            f"expected a text/json response, got {response.content_type!r}",
            code=codes.UNEXPECTED_CONTENT_TYPE,
        )
    try:
        return decode_json(response.content, response.content_encoding)
    except RequestError as exc:
        raise ServerResponseError(f"invalid response: {exc.message}", code=exc.code) from exc


def json_result(content: Any) -> Any:
    """The ``"result"`` of a JSON response, raising if it reports an error.

    Raises:
        ErrorResponse: the response carries an ``"error"`` code.
        ServerResponseError: the response is not an object with ``"result"``.
    """
    if not isinstance(content, dict) or "result" not in content:
        raise ServerResponseError(
            "response is not a JSON object with a 'result'", code=codes.BAD_RESULT
        )
    if "error" in content:
        raise ErrorResponse(str(content["result"]), code=str(content["error"]))
    return content["result"]


def query_request(
    text: str,
    *,
    limit: int = DEFAULT_QUERY_LIMIT,
    offset: int = 0,
    typos: bool = True,
    prefix: bool = True,
    fields: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The JSON object of a ``query`` request (see :meth:`SearchClient.query`).

    Raises:
        TypeError: ``fields`` is a single string rather than a sequence of names.
    """
    request: dict[str, Any] = {
        "action": "query",
        "value": text,
        "limit": limit,
        "offset": offset,
        "typos": typos,
        "prefix": prefix,
    }
    if fields is not None:
        if isinstance(fields, str):
            # list("answer") would silently search the fields "a", "n", ...
            raise TypeError("fields must be a sequence of field names, not a string")
        request["fields"] = list(fields)
    return request


def _bad_answer(message: str) -> ServerResponseError:
    return ServerResponseError(f"invalid query answer: {message}", code=codes.BAD_RESULT)


def _hit_of(item: Any, rank: int) -> Hit:
    if not isinstance(item, dict):
        raise _bad_answer(f"hit {rank} is {type(item).__name__}, not an object")
    strings = {}
    for name in ("key", "answer", "highlight"):
        value = item.get(name)
        if not isinstance(value, str):
            raise _bad_answer(f"hit {rank}'s {name!r} is {type(value).__name__}, not a string")
        strings[name] = value
    score: Any = item.get("score")
    # bool is an int subclass, but true is no score; NaN, infinities and
    # integers beyond a float's range decode from JSON but are no score either.
    try:
        number = float(score) if type(score) in (int, float) else math.nan
    except OverflowError:
        number = math.nan
    if not math.isfinite(number):
        raise _bad_answer(f"hit {rank}'s 'score' is {score!r:.40}, not a number")
    return Hit(strings["key"], strings["answer"], number, strings["highlight"])


def parse_query_answer(content: Any) -> QueryResult:
    """The hits of a decoded ``query`` answer, checked for shape.

    Keys a hit or the answer has beyond those documented are ignored, so a
    newer server may add some.

    Raises:
        ErrorResponse: the answer reports an error.
        ServerResponseError: the answer is not ``{"result": [hit, ...],
            "total": N}`` with each hit's ``key``, ``answer`` and
            ``highlight`` strings and ``score`` a number (code ``bad_result``).
    """
    result = json_result(content)
    if isinstance(result, str):
        # A server without the action (the tutorial's app-server.py answers
        # "Error: invalid action 'query'."): say what it said.
        raise _bad_answer(
            f"the server answered {result[:200]!r} (a server without full-text search?)"
        )
    if not isinstance(result, list):
        raise _bad_answer(f"'result' is {type(result).__name__}, not a list of hits")
    total = content.get("total")
    if type(total) is not int or total < 0:
        raise _bad_answer(f"'total' is {total!r:.40}, not a count")
    hits = [_hit_of(item, rank) for rank, item in enumerate(result, 1)]
    return QueryResult(hits, total)


@asynccontextmanager
async def open_client(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    handshake_timeout: float = math.inf,
    max_header_length: int = DEFAULT_MAX_HEADER_LENGTH,
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
    retry: bool = True,
) -> AsyncIterator[SearchClient]:
    """Connect to a server and yield a :class:`SearchClient`; close on exit.

    ``host`` may be an IPv4 or IPv6 literal or a hostname (Happy Eyeballs
    picks the address). With ``ssl_context`` the connection is TLS, checked
    against ``server_hostname`` (default: ``host``), and the handshake may
    take at most ``handshake_timeout`` seconds (a server that does not speak
    TLS often just waits for more bytes). ``max_header_length``
    and ``max_content_length`` bound each response, in bytes, as
    :class:`SearchClient`'s do; a larger one raises
    :class:`ServerResponseError` (``header_too_long``, ``content_too_long``).
    A request sent on the connection once it has answered, which the server
    closes before answering, is sent again once on a new connection, made
    the same way (:class:`SearchClient`); ``retry=False`` turns that off.

    Without ``ssl_context``, a request that a TLS server drops fails with
    :class:`ServerResponseError`, whose message says the server expects TLS
    when its first bytes are a TLS record, and that it may when it closed
    without a word.

    Raises:
        ValueError: ``port`` is not an integer from 1 to 65535 (checked
            before connecting: the resolver would wrap a larger one around).
        OSError: the server cannot be reached.
        trio.BrokenResourceError: the TLS handshake failed (its cause says
            why; the message adds, but for a refused certificate, that the
            server may not speak TLS).
        trio.TooSlowError: the TLS handshake took longer than
            ``handshake_timeout`` (the message says the server may not speak
            TLS).
    """
    try:
        validators.remote_port(port)
    except ValueError as exc:
        raise ValueError(f"port {exc}") from None
    connect = functools.partial(
        _connect, host, port, ssl_context, server_hostname or host, handshake_timeout
    )
    client = SearchClient(
        await connect(),
        max_header_length=max_header_length,
        max_content_length=max_content_length,
        reconnect=connect,
        retry=retry,
    )
    try:
        yield client
    finally:
        await trio.aclose_forcefully(client.stream)


async def _connect(
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str,
    handshake_timeout: float,
) -> trio.abc.Stream:
    """A new connection for :func:`open_client` (TLS handshake done)."""
    stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
    if ssl_context is not None:
        stream = trio.SSLStream(
            stream, ssl_context, server_hostname=server_hostname, https_compatible=False
        )
        try:
            with trio.fail_after(handshake_timeout):
                await stream.do_handshake()
        except trio.TooSlowError:
            await trio.aclose_forcefully(stream)
            raise trio.TooSlowError(
                f"no TLS handshake within {handshake_timeout:g} s; "
                f"the server may not speak TLS: {_CONNECT_WITHOUT_TLS}"
            ) from None
        except trio.BrokenResourceError as exc:
            await trio.aclose_forcefully(stream)
            cause = exc.__cause__
            message = f"TLS handshake failed: {cause or 'the connection broke'}"
            if may_not_speak_tls(cause):
                message += f"; the server may not speak TLS: {_CONNECT_WITHOUT_TLS}"
            raise trio.BrokenResourceError(message) from cause
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
    return stream
