"""Server settings: every limit a server enforces, validated on creation."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network
from typing import Any

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
from ._trusted_proxies import TrustedProxies, parse_networks
from ._validators import attrs_validator

_non_negative_int = attrs_validator(validators.non_negative_int)
_positive_int = attrs_validator(validators.positive_int)
_optional_positive_int = attrs_validator(validators.positive_int, optional=True)
_seconds = attrs_validator(validators.seconds)
_port = attrs_validator(validators.port)
_header_length = attrs_validator(validators.header_length)
_boolean = attrs_validator(validators.boolean)
_host = attrs_validator(validators.host, optional=True)


def _to_host(value: str | None) -> str | None:
    """``host`` as the commands take it: an IPv6 address in brackets
    (``[::1]``, as URLs write it) without them, so the resolver finds it
    (:func:`validators.host`); anything but a string is left for the
    validator to refuse."""
    if not isinstance(value, str):
        return value
    try:
        return validators.host(value)
    except ValueError as exc:
        raise ValueError(f"host {exc}") from None


def _ssl_context(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, ssl.SSLContext):
        raise ValueError(f"ssl_context must be an ssl.SSLContext or None, not {value!r}")
    if value.protocol == ssl.PROTOCOL_TLS_CLIENT:
        # Every handshake would fail: "Cannot create a server socket with
        # a PROTOCOL_TLS_CLIENT context".
        raise ValueError(
            "ssl_context must be a server-side context, such as "
            "ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), not one made for "
            "clients (PROTOCOL_TLS_CLIENT, create_default_context()'s default)"
        )


def _to_trusted_proxies(
    value: TrustedProxies | str | Iterable[str | IPv4Network | IPv6Network],
) -> TrustedProxies:
    """``trusted_proxies`` as given: a :class:`TrustedProxies`, CIDRs
    separated by commas (as ``--trusted-proxies`` takes them), or a list of
    networks (:class:`TrustedProxies`' ``networks``)."""
    if isinstance(value, TrustedProxies):
        return value
    if isinstance(value, (bytes, bytearray)) or not isinstance(value, (str, Iterable)):
        raise ValueError(
            "trusted_proxies must be a TrustedProxies, CIDRs separated by commas, or a list "
            f"of networks, not {value!r}"
        )
    try:
        return TrustedProxies(parse_networks(value) if isinstance(value, str) else value)
    except ValueError as exc:
        raise ValueError(f"trusted_proxies: {exc}") from None


@attrs.frozen
class ServerSettings:
    """How a :class:`SearchServer` listens and which limits it enforces.

    Attributes:
        host: Address or hostname to listen on; ``None`` or ``""`` listens on
            every interface, IPv4 and IPv6. An IPv6 address may come in
            brackets, as ``--host`` takes it (``"[::1]"``): it is kept
            without them (``"::1"``).
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
            a log line. Loopback only by default. A :class:`TrustedProxies`,
            or CIDRs separated by commas (``"10.0.0.0/8,fd00::/8"``), or a
            list of networks, made into one.
        reuse_port: Set SO_REUSEPORT before binding, so several processes
            can listen on the same port and the kernel spreads connections
            over them (``--workers``).
    """

    host: str | None = attrs.field(default=DEFAULT_HOST, converter=_to_host, validator=_host)
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
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, eq=False, validator=_ssl_context)
    proxy_protocol: bool = attrs.field(default=False, validator=_boolean)
    trusted_proxies: TrustedProxies = attrs.field(
        factory=lambda: TrustedProxies.parse(DEFAULT_TRUSTED_PROXIES),
        converter=_to_trusted_proxies,
    )
    reuse_port: bool = attrs.field(default=False, validator=_boolean)
