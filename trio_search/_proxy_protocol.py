"""The sans-IO parser of the PROXY protocol header (HAProxy's, versions 1 and 2).

Theory of operation
-------------------

A load balancer that speaks the PROXY protocol sends one header before the
first byte of the proxied stream, telling who the real client is
(https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt). Like
:class:`~trio_search._protocol.MessageProtocol`, the
:class:`ProxyHeaderParser` holds no socket: the caller feeds what arrived
with :meth:`~ProxyHeaderParser.receive_data` and asks
:meth:`~ProxyHeaderParser.next_event` for a :class:`ProxyHeader` until it
stops answering :data:`NEED_DATA`; the bytes after the header, the first
bytes of the real protocol, are then in
:attr:`~ProxyHeaderParser.trailing_data`.

The first byte decides the version: ``P`` begins the text line of version 1,
``\\r`` the binary signature of version 2, anything else is refused at once,
so that a client that speaks our protocol to a port that expects the PROXY
header is told after its first byte, not after a timeout.

Errors are raised as early as the bytes allow, and never later than the
header's largest possible length:

- version 1: every byte is checked as it arrives against the line's grammar
  (the keyword, the protocol, single spaces, the alphabet, shape and length
  of each address and port, a CR only right before the LF); a complete
  field is parsed at once, an address with :mod:`ipaddress` in the declared
  family. A line with no CRLF in its first :data:`V1_MAX_LENGTH` bytes is
  refused there. Re-checking the buffered line on each call costs at most
  :data:`V1_MAX_LENGTH` bytes, so the work stays bounded however the bytes
  are split.
- version 2: the signature byte by byte, then the version and command byte,
  the family byte, and the length (against :data:`V2_MAX_PAYLOAD_LENGTH` and
  the family's address block) as soon as each is in; TLVs are walked as
  they arrive, each checked to end inside the header, their contents
  skipped.

Any violation raises :class:`~trio_search._errors.RemoteProtocolError` with
code ``"bad_proxy_header"`` and is sticky: the stream has no trustworthy
start, so the connection must be closed.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable
from typing import Final, Literal, NoReturn

import attrs

from ._errors import LocalProtocolError, RemoteProtocolError, excerpt
from ._protocol import NEED_DATA, Signal

#: The error code of every malformed, truncated or unexpected PROXY header.
BAD_PROXY_HEADER: Final = "bad_proxy_header"

#: Longest version 1 line, in bytes, CRLF included: the spec's worst case,
#: "PROXY UNKNOWN" with two full IPv6 addresses and two 5-digit ports.
V1_MAX_LENGTH: Final = 107

#: The 12 bytes that begin every version 2 header.
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"

#: The fixed part of a version 2 header, in bytes: signature, version and
#: command, family and protocol, 2-byte length.
V2_FIXED_LENGTH: Final = 16

#: Largest address-and-TLV block accepted after the fixed part of a version 2
#: header, in bytes: the spec designs the whole header to fit the smallest
#: TCP segment every host must accept (536 bytes), which leaves room for the
#: largest address block (AF_UNIX, 216 bytes) and the usual TLVs (ALPN,
#: authority, unique ID of up to 128 bytes, TLS version and cipher) but
#: refuses headers that carry a client certificate.
V2_MAX_PAYLOAD_LENGTH: Final = 536 - V2_FIXED_LENGTH

_V1_KEYWORD = b"PROXY "
_V1_PROTOCOLS = (b"TCP4", b"TCP6", b"UNKNOWN")
#: Longest address text accepted, in characters: "255.255.255.255" and
#: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".
_V1_IPV4_MAX_LENGTH = 15
_V1_IPV6_MAX_LENGTH = 45
_IPV4_ALPHABET = frozenset(b"0123456789.")
_IPV6_ALPHABET = frozenset(b"0123456789abcdefABCDEF:.")

_V2_VERSION = 0x2
_V2_COMMANDS = {0x0: "LOCAL", 0x1: "PROXY"}
#: Address families (high nibble of byte 14): UNSPEC, INET, INET6, UNIX.
_V2_FAMILIES = frozenset({0x0, 0x1, 0x2, 0x3})
#: Transport protocols (low nibble of byte 14): UNSPEC, STREAM, DGRAM.
_V2_TRANSPORTS = frozenset({0x0, 0x1, 0x2})
#: The family and protocol bytes whose address block the spec sizes, and
#: that size in bytes (two addresses, then two ports for TCP and UDP); with
#: the others (an UNSPEC half) the receiver must ignore the addresses.
_V2_ADDRESS_BLOCK_LENGTHS = {0x11: 12, 0x12: 12, 0x21: 36, 0x22: 36, 0x31: 216, 0x32: 216}
_V2_TCP_OVER_IPV4 = 0x11
_V2_TCP_OVER_IPV6 = 0x21
#: A TLV's type byte and 2-byte length, in bytes.
_V2_TLV_HEADER_LENGTH = 3


def _address(
    _instance: object,
    attribute: attrs.Attribute[tuple[str, int] | None],
    value: tuple[str, int] | None,
) -> None:
    if value is None:
        return
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or type(value[0]) is not str
        or type(value[1]) is not int
        or not 0 <= value[1] <= 0xFFFF
    ):
        raise ValueError(f"{attribute.name} must be None or (host, port 0-65535), not {value!r}")


@attrs.frozen
class ProxyHeader:
    """What a PROXY header said about the connection, once parsed.

    ``source is None`` means: use the connection's own addresses. That is the
    case for a version 2 LOCAL header (a health check by the proxy itself), a
    version 1 ``UNKNOWN`` line, and a version 2 PROXY header whose family the
    spec lets a receiver treat as unspecified (UNSPEC, UDP, AF_UNIX).

    Attributes:
        version: 1 (the text line) or 2 (binary).
        command: ``"PROXY"`` (relayed for ``source``) or ``"LOCAL"``
            (version 2 LOCAL, and version 1 ``UNKNOWN``, which the spec says
            to treat as if there were no header).
        source: The real client's ``(host, port)``, the host in the canonical
            text of :mod:`ipaddress` (IPv6 compressed, lowercase), or None.
        destination: The address the client connected to, the same way.
    """

    version: int = attrs.field(validator=attrs.validators.in_((1, 2)))
    command: str = attrs.field(validator=attrs.validators.in_(("PROXY", "LOCAL")))
    source: tuple[str, int] | None = attrs.field(default=None, validator=_address)
    destination: tuple[str, int] | None = attrs.field(default=None, validator=_address)

    def __attrs_post_init__(self) -> None:
        if (self.source is None) != (self.destination is None):
            raise ValueError("source and destination must be both None or both set")
        if self.command == "LOCAL" and self.source is not None:
            raise ValueError("a LOCAL header carries no addresses")


class _State(enum.Enum):
    """Where the parser is; an error is kept apart, and sticks in any state."""

    #: Nothing received yet: the first byte decides the version.
    START = "START"
    #: Reading a version 1 line.
    V1 = "V1"
    #: Reading a version 2 header.
    V2 = "V2"
    #: A header was returned; the rest of the buffer is trailing data.
    DONE = "DONE"


def _refuse(reason: str) -> NoReturn:
    raise RemoteProtocolError(f"bad PROXY protocol header: {reason}", code=BAD_PROXY_HEADER)


@attrs.define
class ProxyHeaderParser:
    """Reads one PROXY protocol header (version 1 or 2) from the start of a
    stream, with no I/O.

    Args:
        max_v2_payload_length: Largest version 2 address-and-TLV block
            accepted, in bytes.
    """

    max_v2_payload_length: int = attrs.field(
        default=V2_MAX_PAYLOAD_LENGTH,
        validator=[attrs.validators.instance_of(int), attrs.validators.ge(0)],
    )
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _state: _State = attrs.field(default=_State.START, init=False)
    _eof: bool = attrs.field(default=False, init=False)
    _error: RemoteProtocolError | None = attrs.field(default=None, init=False)
    _header: ProxyHeader | None = attrs.field(default=None, init=False)
    #: Length of the whole header once known, in bytes.
    _header_length: int = attrs.field(default=0, init=False)
    #: Version 2: where the next unchecked TLV begins, from the buffer's start.
    _tlv_offset: int = attrs.field(default=0, init=False)

    def receive_data(self, data: bytes | bytearray) -> None:
        """Add bytes received from the peer; ``b""`` means the peer closed.

        Raises:
            LocalProtocolError: data fed after end of file, or after the
                header was returned (the bytes that follow belong to the next
                protocol: take :attr:`trailing_data` and feed them there).
        """
        if self._eof:
            raise LocalProtocolError("receive_data() called after end of file", code="after_eof")
        if self._state is _State.DONE:
            raise LocalProtocolError(
                "receive_data() called after the PROXY header was parsed", code="after_header"
            )
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_event(self) -> ProxyHeader | Literal[Signal.NEED_DATA]:
        """Return the header once it is complete, else :data:`NEED_DATA`.

        Returns:
            The :class:`ProxyHeader` (the same one on every later call), or
            :data:`NEED_DATA` if the bytes so far are a valid beginning.

        Raises:
            RemoteProtocolError: code ``"bad_proxy_header"``: the bytes cannot
                begin a PROXY header, or the peer closed before the header
                was complete. Raised again on every later call.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._parse()
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    @property
    def trailing_data(self) -> bytes:
        """The bytes received after the header: the start of the real stream.

        Raises:
            LocalProtocolError: no header was returned yet.
        """
        if self._state is not _State.DONE:
            raise LocalProtocolError(
                "trailing_data is only known once next_event() returned the header",
                code="header_incomplete",
            )
        return bytes(self._buffer[self._header_length :])

    def _parse(self) -> ProxyHeader | Literal[Signal.NEED_DATA]:
        if self._header is not None:
            return self._header
        if self._state is _State.START and self._buffer:
            first = self._buffer[0]
            if first == _V1_KEYWORD[0]:
                self._state = _State.V1
            elif first == V2_SIGNATURE[0]:
                self._state = _State.V2
            else:
                _refuse(f"starts with {excerpt(bytes(self._buffer[:8]))}, not PROXY or \\r")
        header: ProxyHeader | None = None
        if self._state is _State.V1:
            header = self._parse_v1()
        elif self._state is _State.V2:
            header = self._parse_v2()
        if header is not None:
            self._header = header
            self._state = _State.DONE
            return header
        if self._eof:
            _refuse(f"connection closed after {len(self._buffer)} bytes of the header")
        return NEED_DATA

    def _parse_v1(self) -> ProxyHeader | None:
        window = bytes(self._buffer[:V1_MAX_LENGTH])
        end = window.find(b"\r\n")
        if end >= 0:
            header = _check_v1_line(window[:end], complete=True)
            assert header is not None
            self._header_length = end + 2
            return header
        if window.endswith(b"\r"):
            # Every field has ended: check them all, and wait for the LF.
            _check_v1_line(window[:-1], complete=True)
        else:
            _check_v1_line(window, complete=False)
        if len(window) >= V1_MAX_LENGTH:
            _refuse(f"no CRLF in the first {V1_MAX_LENGTH} bytes of a version 1 line")
        return None

    def _parse_v2(self) -> ProxyHeader | None:
        buffer = self._buffer
        size = len(buffer)
        signature_seen = min(size, len(V2_SIGNATURE))
        if buffer[:signature_seen] != V2_SIGNATURE[:signature_seen]:
            _refuse(f"bad version 2 signature {excerpt(bytes(buffer[:signature_seen]))}")
        if size <= len(V2_SIGNATURE):
            return None
        version_command = buffer[12]
        version, command_code = version_command >> 4, version_command & 0x0F
        if version != _V2_VERSION:
            _refuse(f"version {version}, not 2, after the version 2 signature")
        command = _V2_COMMANDS.get(command_code)
        if command is None:
            _refuse(f"unknown version 2 command {command_code:#x}")
        if size < 14:
            return None
        family_transport = buffer[13]
        family, transport = family_transport >> 4, family_transport & 0x0F
        if family not in _V2_FAMILIES or transport not in _V2_TRANSPORTS:
            _refuse(f"unknown version 2 family and protocol {family_transport:#04x}")
        if size < V2_FIXED_LENGTH:
            return None
        length = (buffer[14] << 8) | buffer[15]
        if length > self.max_v2_payload_length:
            _refuse(
                f"version 2 length {length} exceeds the limit of {self.max_v2_payload_length} bytes"
            )
        # A LOCAL header's family is ignored, so only PROXY must carry a
        # whole address block, and only where the spec gives its size.
        address_length = (
            _V2_ADDRESS_BLOCK_LENGTHS.get(family_transport) if command == "PROXY" else None
        )
        if address_length is not None and length < address_length:
            _refuse(
                f"version 2 length {length} is shorter than the {address_length}-byte "
                f"addresses of family {family_transport:#04x}"
            )
        end = V2_FIXED_LENGTH + length
        if address_length is not None:
            self._walk_tlvs(V2_FIXED_LENGTH + address_length, end)
        if size < end:
            return None
        self._header_length = end
        if command == "LOCAL":
            return ProxyHeader(version=2, command="LOCAL")
        if family_transport == _V2_TCP_OVER_IPV4:
            addresses = bytes(buffer[V2_FIXED_LENGTH : V2_FIXED_LENGTH + 12])
            source = str(ipaddress.IPv4Address(addresses[0:4]))
            destination = str(ipaddress.IPv4Address(addresses[4:8]))
            ports = addresses[8:12]
        elif family_transport == _V2_TCP_OVER_IPV6:
            addresses = bytes(buffer[V2_FIXED_LENGTH : V2_FIXED_LENGTH + 36])
            source = str(ipaddress.IPv6Address(addresses[0:16]))
            destination = str(ipaddress.IPv6Address(addresses[16:32]))
            ports = addresses[32:36]
        else:
            # The spec lets a receiver fall back to the connection's own
            # addresses for the families it does not serve.
            return ProxyHeader(version=2, command="PROXY")
        return ProxyHeader(
            version=2,
            command="PROXY",
            source=(source, int.from_bytes(ports[0:2], "big")),
            destination=(destination, int.from_bytes(ports[2:4], "big")),
        )

    def _walk_tlvs(self, start: int, end: int) -> None:
        """Check that the TLVs buffered so far each end by ``end``; each TLV
        is checked once, when its 3-byte type and length are in."""
        offset = max(self._tlv_offset, start)
        size = len(self._buffer)
        while offset + _V2_TLV_HEADER_LENGTH <= min(size, end):
            value_length = (self._buffer[offset + 1] << 8) | self._buffer[offset + 2]
            offset += _V2_TLV_HEADER_LENGTH + value_length
            if offset > end:
                _refuse(f"a version 2 TLV of {value_length} bytes overruns the header")
        if end - _V2_TLV_HEADER_LENGTH < offset < end:
            _refuse(f"{end - offset} stray bytes after the version 2 TLVs")
        self._tlv_offset = offset


def _check_v1_line(line: bytes, *, complete: bool) -> ProxyHeader | None:
    """Check a version 1 line, CRLF excluded, or the part of it received.

    Args:
        line: The line without its CRLF if ``complete``, else every byte
            received so far (no CR or LF in it).
        complete: Whether ``line`` is all of it, so every field has ended.

    Returns:
        The header if ``complete``, else None (``line`` can still begin a
        valid line).

    Raises:
        RemoteProtocolError: ``line`` is not, or cannot begin, a valid line.
    """
    if not line.startswith(_V1_KEYWORD):
        if not complete and _V1_KEYWORD.startswith(line):
            return None
        _refuse(f"version 1 line {excerpt(line)} does not begin with 'PROXY '")
    for byte in line:
        if not 0x20 <= byte <= 0x7E:
            _refuse(f"byte {byte:#04x} in a version 1 line (a CR or LF alone, or not text)")
    fields = line[len(_V1_KEYWORD) :].split(b" ")
    protocol = fields[0]
    if len(fields) == 1 and not complete:
        if any(known.startswith(protocol) for known in _V1_PROTOCOLS):
            return None
        _refuse(f"unknown version 1 protocol {excerpt(protocol)}")
    if protocol == b"UNKNOWN":
        # The spec: the receiver must ignore whatever follows UNKNOWN.
        return ProxyHeader(version=1, command="LOCAL") if complete else None
    check_address: Callable[..., None]
    parse_address: Callable[[str], ipaddress.IPv4Address | ipaddress.IPv6Address]
    if protocol == b"TCP4":
        check_address, parse_address = _check_ipv4_text, ipaddress.IPv4Address
    elif protocol == b"TCP6":
        check_address, parse_address = _check_ipv6_text, ipaddress.IPv6Address
    else:
        _refuse(f"unknown version 1 protocol {excerpt(protocol)}")
    if len(fields) > 5:
        _refuse("more than 4 fields after the version 1 protocol (or a stray space)")
    if complete and len(fields) < 5:
        _refuse(f"{len(fields) - 1} fields after the version 1 protocol, not 4")
    hosts = []
    ports = []
    for index, field in enumerate(fields[1:], start=1):
        ended = complete or index < len(fields) - 1
        if index <= 2:
            check_address(field, ended=ended)
            if ended:
                try:
                    hosts.append(str(parse_address(field.decode("ascii"))))
                except ValueError:
                    _refuse(f"{excerpt(field)} is not an address of {protocol.decode()}")
        else:
            _check_port_text(field, ended=ended)
            ports.append(int(field) if ended else 0)
    if not complete:
        return None
    return ProxyHeader(
        version=1,
        command="PROXY",
        source=(hosts[0], ports[0]),
        destination=(hosts[1], ports[1]),
    )


def _check_ipv4_text(text: bytes, *, ended: bool) -> None:
    """Refuse ``text`` if it cannot be, or begin, a dotted IPv4 address with
    no leading zeros."""
    if not ended and not text:
        return
    if len(text) > _V1_IPV4_MAX_LENGTH or not _IPV4_ALPHABET.issuperset(text):
        _refuse(f"{excerpt(text)} is not an IPv4 address")
    parts = text.split(b".")
    if len(parts) > 4 or (ended and len(parts) != 4):
        _refuse(f"{excerpt(text)} is not an IPv4 address")
    for index, part in enumerate(parts):
        if not part and (ended or index < len(parts) - 1):
            _refuse(f"{excerpt(text)} is not an IPv4 address (an empty number)")
        if len(part) > 3 or (len(part) > 1 and part[0] == ord("0")) or (part and int(part) > 255):
            _refuse(f"{excerpt(text)} is not an IPv4 address (a number over 255 or with 0s)")


def _check_ipv6_text(text: bytes, *, ended: bool) -> None:
    """Refuse ``text`` if it cannot be, or begin, an IPv6 address: hex groups
    of at most 4 digits, at most one "::", an IPv4 address only at the end,
    no more than 8 groups in all, and no zone ("%eth0")."""
    if not ended and not text:
        return
    if len(text) > _V1_IPV6_MAX_LENGTH or not _IPV6_ALPHABET.issuperset(text):
        _refuse(f"{excerpt(text)} is not an IPv6 address")
    double_colon = b"::" in text
    # A colon may begin the address only as the first of "::".
    lone_leading_colon = text.startswith(b":") and not text.startswith(b"::") and len(text) > 1
    if b":::" in text or text.count(b"::") > 1 or lone_leading_colon:
        _refuse(f"{excerpt(text)} is not an IPv6 address (misplaced colons)")
    groups = text.split(b":")
    # 16-bit groups written, an IPv4 part counting as two.
    written = 0
    for index, group in enumerate(groups):
        if b"." in group:
            if index == 0 or index < len(groups) - 1:
                _refuse(f"{excerpt(text)} is not an IPv6 address (IPv4 part not at the end)")
            _check_ipv4_text(group, ended=ended)
            written += 2
        elif len(group) > 4:
            _refuse(f"{excerpt(text)} is not an IPv6 address (a group over 4 digits)")
        elif group:
            written += 1
    # "::" stands for at least one group, and a colon at the end of what has
    # arrived announces one more group or a "::".
    announced = text.endswith(b":") and not text.endswith(b"::")
    if written + double_colon + announced > 8:
        _refuse(f"{excerpt(text)} is not an IPv6 address (more than 8 groups)")


def _check_port_text(text: bytes, *, ended: bool) -> None:
    """Refuse ``text`` if it cannot be, or begin, a decimal port 0-65535 with
    no sign and no leading zeros."""
    if not ended and not text:
        return
    if not text.isdigit():
        _refuse(f"{excerpt(text)} is not a port number")
    if (len(text) > 1 and text[0] == ord("0")) or len(text) > 5 or int(text) > 0xFFFF:
        _refuse(f"{excerpt(text)} is not a port number 0-65535 without leading zeros")
