"""Server settings: every limit a server enforces, validated on creation."""

from __future__ import annotations

import ssl

import attrs

from . import _validators as validators
from ._limits import (
    DEFAULT_HOST,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONTENT_LENGTH,
    DEFAULT_MAX_HEADER_LENGTH,
    DEFAULT_PORT,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_TRUSTED_PROXIES,
)
from ._trusted_proxies import TrustedProxies
from ._validators import attrs_validator

_non_negative_int = attrs_validator(validators.non_negative_int)
_positive_int = attrs_validator(validators.positive_int)
_optional_positive_int = attrs_validator(validators.positive_int, optional=True)
_seconds = attrs_validator(validators.seconds)
_port = attrs_validator(validators.port)
_header_length = attrs_validator(validators.header_length)


@attrs.frozen
class ServerSettings:
    """How a :class:`SearchServer` listens and which limits it enforces.

    Attributes:
        host: Address or hostname to listen on; ``None`` or ``""`` listens on
            every interface, IPv4 and IPv6.
        port: TCP port; 0 picks a free one (see ``SearchServer.addresses``).
        max_header_length: Largest JSON header accepted, in bytes.
        max_content_length: Largest request content accepted, in bytes.
        idle_timeout: Seconds a connection may wait for the first byte of its
            next request, counted from accept and from each response.
        request_timeout: Seconds from a request's first byte to its last, and
            for writing a response; also bounds the TLS handshake.
        max_connections: Connections served at once. At the limit, the
            connection idle the longest is closed to make room for a new
            one; only when none is idle is the new one answered "busy".
        max_buffered_bytes: Request bytes all connections together may
            hold; past it, connections in the middle of a request stop
            reading until others free room (see ``trio_search._budget``).
        max_connections_per_ip: Connections from one client address at once;
            more are answered "busy". ``None`` (the default): no per-address
            limit, so a load test from one host is not cut short.
        shutdown_grace: Seconds requests in progress get to finish once a
            graceful shutdown begins.
        ssl_context: Serve TLS with this server-side context, or plain TCP.
        proxy_protocol: Every connection starts with a PROXY protocol
            header (v1 or v2, as HAProxy's ``send-proxy``/``send-proxy-v2``
            and nginx send it), read under the request timeout, before any
            TLS handshake; logs, stats and metrics then show the client's
            address it carries.
        trusted_proxies: The peers allowed to send that header (the load
            balancers); a connection from any other address is closed with
            a log line. Loopback only by default.
        reuse_port: Set SO_REUSEPORT before binding, so several processes
            can listen on the same port and the kernel spreads connections
            over them (``--workers``).
    """

    host: str | None = DEFAULT_HOST
    port: int = attrs.field(default=DEFAULT_PORT, validator=_port)
    max_header_length: int = attrs.field(
        default=DEFAULT_MAX_HEADER_LENGTH, validator=_header_length
    )
    max_content_length: int = attrs.field(
        default=DEFAULT_MAX_CONTENT_LENGTH, validator=_non_negative_int
    )
    idle_timeout: float = attrs.field(default=DEFAULT_IDLE_TIMEOUT, validator=_seconds)
    request_timeout: float = attrs.field(default=DEFAULT_REQUEST_TIMEOUT, validator=_seconds)
    max_connections: int = attrs.field(default=DEFAULT_MAX_CONNECTIONS, validator=_positive_int)
    max_connections_per_ip: int | None = attrs.field(default=None, validator=_optional_positive_int)
    max_buffered_bytes: int = attrs.field(
        default=DEFAULT_MAX_BUFFERED_BYTES, validator=_positive_int
    )
    shutdown_grace: float = attrs.field(default=DEFAULT_SHUTDOWN_GRACE, validator=_seconds)
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, eq=False)
    proxy_protocol: bool = False
    trusted_proxies: TrustedProxies = attrs.field(
        factory=lambda: TrustedProxies.parse(DEFAULT_TRUSTED_PROXIES)
    )
    reuse_port: bool = False
