"""trio_search: the Real Python socket tutorial's search service, on Trio.

A sans-IO protocol object (:class:`MessageProtocol`), a server to embed
(:class:`SearchServer`), and a client (:func:`open_client`). Import
everything from here; the submodules are private.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from ._metrics import Metrics
    from ._protocol import CLOSED, NEED_DATA, MessageProtocol, Signal, encode_message
    from ._query import Hit, QueryOptions, QueryResult
    from ._server import SearchServer
    from ._settings import ServerSettings
    from ._stats import ServerStats
    from ._trusted_proxies import TrustedProxies

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
    "Metrics",
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
    "TrustedProxies",
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

#: Where each public name lives. A name is imported when first used, so
#: that a command (``trio-search-index``, ``trio-search-client``) loads only
#: the modules it needs: importing the server and Trio with them took the
#: index command about 0.4 s before it read a document.
_SUBMODULE_OF = {
    "Application": "._app",
    "BUILTIN_INDEX": "._index",
    "CLOSED": "._protocol",
    "ConfigurationError": "._errors",
    "DEFAULT_IDLE_TIMEOUT": "._limits",
    "DEFAULT_MAX_CONNECTIONS": "._limits",
    "DEFAULT_MAX_CONTENT_LENGTH": "._limits",
    "DEFAULT_MAX_HEADER_LENGTH": "._limits",
    "DEFAULT_PORT": "._limits",
    "DEFAULT_REQUEST_TIMEOUT": "._limits",
    "DEFAULT_SHUTDOWN_GRACE": "._limits",
    "DataError": "._documents",
    "Deferred": "._app",
    "Document": "._documents",
    "DocumentReader": "._documents",
    "ErrorResponse": "._errors",
    "FORMATS": "._documents",
    "FieldMapping": "._documents",
    "Hit": "._query",
    "IndexMeta": "._index_meta",
    "LocalProtocolError": "._errors",
    "Message": "._message",
    "MessageProtocol": "._protocol",
    "Metrics": "._metrics",
    "NEED_DATA": "._protocol",
    "ProtocolError": "._errors",
    "QueryOptions": "._query",
    "QueryResult": "._query",
    "RemoteProtocolError": "._errors",
    "Reply": "._app",
    "RequestError": "._errors",
    "SearchApp": "._app",
    "SearchClient": "._client",
    "SearchIndex": "._engine",
    "SearchServer": "._server",
    "ServerBusy": "._errors",
    "ServerResponseError": "._errors",
    "ServerSettings": "._settings",
    "ServerStats": "._stats",
    "Signal": "._protocol",
    "TrioSearchError": "._errors",
    "TrustedProxies": "._trusted_proxies",
    "decode_json": "._json",
    "documents_from_mapping": "._documents",
    "encode_json": "._json",
    "encode_message": "._protocol",
    "error_reply": "._app",
    "json_response": "._app",
    "load_index": "._index",
    "open_client": "._client",
    "parse_index": "._index",
    "read_documents": "._documents",
}


def __getattr__(name: str) -> Any:
    module = _SUBMODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'trio_search' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once per name
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULE_OF])
