"""trio_search: the Real Python socket tutorial's search service, on Trio.

A sans-IO protocol object (:class:`MessageProtocol`), a server to embed
(:class:`SearchServer`), and a client (:func:`open_client`). Import
everything from here; the submodules are private.
"""

from __future__ import annotations

from ._app import Application, Deferred, Reply, SearchApp, error_reply, json_response
from ._client import SearchClient, open_client
from ._documents import (
    FORMATS,
    DataError,
    Document,
    DocumentReader,
    FieldMapping,
    documents_from_mapping,
    read_documents,
)
from ._engine import SearchIndex
from ._errors import (
    ConfigurationError,
    ErrorResponse,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    RequestError,
    ServerBusy,
    ServerResponseError,
    TrioSearchError,
)
from ._index import BUILTIN_INDEX, load_index, parse_index
from ._index_meta import IndexMeta
from ._json import decode_json, encode_json
from ._limits import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONTENT_LENGTH,
    DEFAULT_MAX_HEADER_LENGTH,
    DEFAULT_PORT,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SHUTDOWN_GRACE,
)
from ._message import Message
from ._protocol import CLOSED, NEED_DATA, MessageProtocol, Signal, encode_message
from ._query import Hit, QueryOptions, QueryResult
from ._server import SearchServer
from ._settings import ServerSettings
from ._stats import ServerStats

__version__ = "0.1.0"

__all__ = [
    "BUILTIN_INDEX",
    "CLOSED",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_CONTENT_LENGTH",
    "DEFAULT_MAX_HEADER_LENGTH",
    "DEFAULT_PORT",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_SHUTDOWN_GRACE",
    "FORMATS",
    "NEED_DATA",
    "Application",
    "ConfigurationError",
    "DataError",
    "Deferred",
    "Document",
    "DocumentReader",
    "ErrorResponse",
    "FieldMapping",
    "Hit",
    "IndexMeta",
    "LocalProtocolError",
    "Message",
    "MessageProtocol",
    "ProtocolError",
    "QueryOptions",
    "QueryResult",
    "RemoteProtocolError",
    "Reply",
    "RequestError",
    "SearchApp",
    "SearchClient",
    "SearchIndex",
    "SearchServer",
    "ServerBusy",
    "ServerResponseError",
    "ServerSettings",
    "ServerStats",
    "Signal",
    "TrioSearchError",
    "decode_json",
    "documents_from_mapping",
    "encode_json",
    "encode_message",
    "error_reply",
    "json_response",
    "load_index",
    "open_client",
    "parse_index",
    "read_documents",
]
