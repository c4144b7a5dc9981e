"""The error hierarchy: what the peer did wrong versus what we got wrong.

Every error carries ``code``, a short machine-readable string that also
travels to the client in the ``"error"`` key of an error response.

- :class:`RemoteProtocolError`: the peer broke the framing (the length
  prefix, the JSON header, its limits). The stream can no longer be trusted:
  the server answers if it can, then closes the connection.
- :class:`RequestError`: the framing was intact but the content of one
  request was bad (invalid JSON, wrong encoding, missing action, ...). The
  server answers with an error and the connection stays open.
- :class:`LocalProtocolError`: this program misused the API (sent a message
  that cannot be encoded, fed data after end of file, ...). A bug on our
  side, never the peer's fault.
- :class:`ServerResponseError`: the client received an answer it cannot use.
"""

from __future__ import annotations

import json
from typing import Any

from ._limits import MAX_ECHO_LENGTH


def excerpt(value: Any, limit: int = MAX_ECHO_LENGTH) -> str:
    """``value`` (a string as it is, anything else as its ``repr``) cut to
    ``limit`` characters, marked when cut: what an error message may quote
    of what a client sent."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def json_excerpt(value: Any, limit: int = MAX_ECHO_LENGTH) -> str:
    """``value``, decoded from a peer's JSON, written back as JSON (``"5"``
    for a string, ``null``), ASCII only, cut as :func:`excerpt` cuts: what a
    message may quote of a JSON value, on one line whatever it holds."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):  # too many digits, or too deep
        return "a value too large to quote"
    return excerpt(text, limit)


def printable(text: str) -> str:
    """``text`` with each character a terminal or a log reader would act on
    (line breaks, escapes, bidirectional overrides, other controls) written
    as its Python escape: a peer's bytes quoted in a log line stay on that
    line and read as what they are."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


class TrioSearchError(Exception):
    """Base of every error trio_search raises on purpose.

    Args:
        message: A human-readable explanation.
        code: A short machine-readable identifier, stable across releases.
    """

    #: Used when a subclass is raised without an explicit code.
    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code


class ProtocolError(TrioSearchError):
    """A wire-format violation, by either side."""

    default_code = "protocol_error"


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the framing; the connection must end."""

    default_code = "bad_framing"


class LocalProtocolError(ProtocolError):
    """This program asked the protocol object for something impossible."""

    default_code = "local_misuse"


class RequestError(TrioSearchError):
    """A well-framed request whose content the application cannot serve."""

    default_code = "bad_request"


class ServerResponseError(TrioSearchError):
    """A client got a response it cannot interpret."""

    default_code = "bad_response"


class ConfigurationError(TrioSearchError):
    """A command's option, a data file or an index cannot be used.

    A bad field of :class:`ServerSettings` raises ``ValueError`` instead.
    """

    default_code = "bad_configuration"


class ServerBusy(TrioSearchError):
    """The server cannot take this connection now (a limit); try again later."""

    default_code = "busy"


class ErrorResponse(TrioSearchError):
    """The server answered a request with an error (its ``"error"`` code)."""

    default_code = "error_response"
