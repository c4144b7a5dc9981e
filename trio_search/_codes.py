"""Every error code, named once.

A code is the short, stable, machine-readable name of what went wrong: it
travels to the client in the ``"error"`` key of an error answer, is counted
by ``stats`` and the metrics, and is the ``code`` of the exception raised.
Use these names, never the strings: tests/test_protocol_doc.py checks that
docs/protocol.md lists every code in :data:`SENT`, and nothing else.
"""

from __future__ import annotations

# --- Sent to the peer: broken framing (the connection then closes) ----------
EMPTY_HEADER = "empty_header"
HEADER_TOO_LONG = "header_too_long"
BAD_HEADER = "bad_header"
MISSING_HEADER_KEY = "missing_header_key"
BAD_CONTENT_LENGTH = "bad_content_length"
CONTENT_TOO_LONG = "content_too_long"
BAD_HEADER_VALUE = "bad_header_value"
TRUNCATED = "truncated"
REQUEST_TIMEOUT = "request_timeout"

# --- Sent to the peer: one bad request (the connection stays open) ---------
UNKNOWN_ENCODING = "unknown_encoding"
BAD_ENCODING = "bad_encoding"
INVALID_JSON = "invalid_json"
TOO_DEEP = "too_deep"
NOT_AN_OBJECT = "not_an_object"
MISSING_ACTION = "missing_action"
INVALID_ACTION = "invalid_action"
BAD_VALUE = "bad_value"
BAD_QUERY = "bad_query"
QUERY_TOO_LONG = "query_too_long"

# --- Sent to the peer: the server's state ----------------------------------
BUSY = "busy"
OVERLOADED = "overloaded"

# --- Counted only: no answer can be sent ------------------------------------
IDLE_TIMEOUT = "idle_timeout"
SEND_TIMEOUT = "send_timeout"
CONNECTION_LOST = "connection_lost"
EVICTED_IDLE = "evicted_idle"
INTERNAL_ERROR = "internal_error"
TLS_HANDSHAKE = "tls_handshake"
TLS_HANDSHAKE_TIMEOUT = "tls_handshake_timeout"
BAD_PROXY_HEADER = "bad_proxy_header"
UNTRUSTED_PROXY = "untrusted_proxy"
PROXY_HEADER_TIMEOUT = "proxy_header_timeout"

# --- Never leave this process: our misuse, settings, the client's view ------
#: This program tried to send a header the 2-byte prefix cannot describe
#: (ours, where HEADER_TOO_LONG is the peer's).
HEADER_TOO_LONG_TO_SEND = "header_too_long_to_send"
UNENCODABLE = "unencodable"
EXTRA_HEADER_CLASH = "extra_header_clash"
HEADER_INCOMPLETE = "header_incomplete"
AFTER_EOF = "after_eof"
AFTER_HEADER = "after_header"
BAD_OPTION = "bad_option"
BAD_DATA = "bad_data"
BAD_INDEX = "bad_index"
INDEX_IO = "index_io"
BAD_TRUSTED_PROXIES = "bad_trusted_proxies"
BAD_RESULT = "bad_result"
NO_RESPONSE = "no_response"
#: A client's connection was left mid-request (a call cancelled, or a
#: failure), so answers still due on it could be taken for the next
#: request's; a client that cannot open a new one says so.
CONNECTION_ABANDONED = "connection_abandoned"
UNEXPECTED_CONTENT_TYPE = "unexpected_content_type"

#: The codes an error answer can carry.
SENT = frozenset(
    {
        EMPTY_HEADER,
        HEADER_TOO_LONG,
        BAD_HEADER,
        MISSING_HEADER_KEY,
        BAD_CONTENT_LENGTH,
        CONTENT_TOO_LONG,
        BAD_HEADER_VALUE,
        TRUNCATED,
        REQUEST_TIMEOUT,
        UNKNOWN_ENCODING,
        BAD_ENCODING,
        INVALID_JSON,
        TOO_DEEP,
        NOT_AN_OBJECT,
        MISSING_ACTION,
        INVALID_ACTION,
        BAD_VALUE,
        BAD_QUERY,
        QUERY_TOO_LONG,
        BUSY,
        OVERLOADED,
    }
)
