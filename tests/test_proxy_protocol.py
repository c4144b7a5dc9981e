"""The sans-IO PROXY protocol parser, and the trusted-proxy list, without sockets.

Every header is fed whole, one byte at a time and split at every point; a
malformed one must be refused at the byte that makes it malformed, no earlier
(a valid beginning is never refused) and no later.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import struct
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from trio_search._errors import ConfigurationError, LocalProtocolError, RemoteProtocolError
from trio_search._protocol import NEED_DATA
from trio_search._proxy_protocol import (
    V1_MAX_LENGTH,
    V2_MAX_PAYLOAD_LENGTH,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderParser,
)
from trio_search._trusted_proxies import TrustedProxies

# --- A test-only encoder ----------------------------------------------------


def v1(protocol: str, *fields: object) -> bytes:
    return " ".join(["PROXY", protocol, *map(str, fields)]).encode("ascii") + b"\r\n"


def v2(
    command: int = 0x1,
    family: int = 0x11,
    addresses: bytes = b"",
    tlvs: Iterable[tuple[int, bytes]] = (),
    *,
    version: int = 0x2,
    length: int | None = None,
) -> bytes:
    """A version 2 header; ``length`` overrides the true one."""
    payload = addresses + b"".join(struct.pack(">BH", t, len(v)) + v for t, v in tlvs)
    length = len(payload) if length is None else length
    return (
        V2_SIGNATURE + bytes([version << 4 | command, family]) + struct.pack(">H", length) + payload
    )


def v2_addresses(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    return src.packed + dst.packed + struct.pack(">HH", source[1], destination[1])


# --- Feeding helpers --------------------------------------------------------


def feed(chunks: Sequence[bytes]) -> tuple[ProxyHeader, int, bytes]:
    """Feed ``chunks`` one receive at a time, as a server would, until the
    header is out; the chunks after it are not fed (they belong to the next
    protocol).

    Returns:
        The header, how many chunks were fed, and the trailing data together
        with the chunks not fed.
    """
    parser = ProxyHeaderParser()
    for index, chunk in enumerate(chunks):
        parser.receive_data(chunk)
        header = parser.next_event()
        if header is not NEED_DATA:
            assert parser.next_event() == header  # asked again: the same answer
            rest = b"".join(chunks[index + 1 :])
            return header, index + 1, parser.trailing_data + rest
    raise AssertionError("the header never completed")


def one_byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split_at(data: bytes, point: int) -> list[bytes]:
    """``data`` in two receives (one if a side is empty: ``b""`` would mean EOF)."""
    return [piece for piece in (data[:point], data[point:]) if piece]


def chunkings(data: bytes) -> list[list[bytes]]:
    """Whole, one byte at a time, and split at every point."""
    return [
        [data],
        one_byte_at_a_time(data),
        *(split_at(data, point) for point in range(1, len(data))),
    ]


def assert_refused(parser: ProxyHeaderParser) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        parser.next_event()
    assert info.value.code == "bad_proxy_header"
    # Sticky: asked again, the same error.
    with pytest.raises(RemoteProtocolError) as again:
        parser.next_event()
    assert again.value is info.value
    return info.value


# --- Valid headers ----------------------------------------------------------

IPV6_MAX = ":".join(["ffff"] * 8)
SOURCE4, DEST4 = ("192.168.0.1", 56324), ("192.168.0.11", 443)
SOURCE6, DEST6 = ("2001:db8::1", 1), ("2001:db8::2", 65535)

VALID = {
    # Version 1.
    "v1 tcp4": (v1("TCP4", "192.168.0.1", "192.168.0.11", 56324, 443), 1, SOURCE4, DEST4),
    "v1 tcp4 widest": (
        v1("TCP4", "255.255.255.255", "255.255.255.255", 65535, 65535),
        1,
        ("255.255.255.255", 65535),
        ("255.255.255.255", 65535),
    ),
    "v1 tcp4 zeros": (v1("TCP4", "0.0.0.0", "0.0.0.0", 0, 0), 1, ("0.0.0.0", 0), ("0.0.0.0", 0)),
    "v1 tcp6": (v1("TCP6", "2001:db8::1", "2001:DB8:0:0:0:0:0:2", 1, 65535), 1, SOURCE6, DEST6),
    "v1 tcp6 widest": (
        v1("TCP6", IPV6_MAX, IPV6_MAX, 65535, 65535),
        1,
        (str(ipaddress.ip_address(IPV6_MAX)), 65535),
        (str(ipaddress.ip_address(IPV6_MAX)), 65535),
    ),
    "v1 tcp6 ipv4-mapped": (
        v1("TCP6", "::ffff:127.0.0.1", "::", 80, 8080),
        1,
        (str(ipaddress.ip_address("::ffff:127.0.0.1")), 80),
        ("::", 8080),
    ),
    "v1 unknown": (b"PROXY UNKNOWN\r\n", 1, None, None),
    "v1 unknown with fields": (v1("UNKNOWN", "1.2.3.4", "5.6.7.8", 1, 2), 1, None, None),
    "v1 unknown longest": (v1("UNKNOWN", IPV6_MAX, IPV6_MAX, 65535, 65535), 1, None, None),
    # Version 2.
    "v2 proxy ipv4": (v2(1, 0x11, v2_addresses(SOURCE4, DEST4)), 2, SOURCE4, DEST4),
    "v2 proxy ipv4 tlvs": (
        v2(1, 0x11, v2_addresses(SOURCE4, DEST4), [(0x01, b"h2"), (0x04, b""), (0xE0, b"x" * 9)]),
        2,
        SOURCE4,
        DEST4,
    ),
    "v2 proxy ipv6": (v2(1, 0x21, v2_addresses(SOURCE6, DEST6)), 2, SOURCE6, DEST6),
    "v2 proxy ipv6 tlvs": (
        v2(1, 0x21, v2_addresses(SOURCE6, DEST6), [(0x02, b"example.com"), (0x05, b"id" * 64)]),
        2,
        SOURCE6,
        DEST6,
    ),
    "v2 proxy ipv6 longest": (
        v2(
            1,
            0x21,
            v2_addresses(SOURCE6, DEST6),
            [(0x04, b"\0" * (V2_MAX_PAYLOAD_LENGTH - 36 - 3))],
        ),
        2,
        SOURCE6,
        DEST6,
    ),
    "v2 local unspec": (v2(0, 0x00), 2, None, None),
    "v2 local with addresses": (v2(0, 0x11, v2_addresses(SOURCE4, DEST4)), 2, None, None),
    "v2 local tlvs": (v2(0, 0x00, b"", [(0x04, b"pad")]), 2, None, None),
    "v2 local ignores a short address block": (v2(0, 0x21, b"\0" * 5), 2, None, None),
    "v2 proxy unspec": (v2(1, 0x00), 2, None, None),
    "v2 proxy unspec with bytes": (v2(1, 0x00, b"anything at all"), 2, None, None),
    "v2 proxy udp ipv4": (v2(1, 0x12, v2_addresses(SOURCE4, DEST4)), 2, None, None),
    "v2 proxy udp ipv6": (v2(1, 0x22, v2_addresses(SOURCE6, DEST6)), 2, None, None),
    "v2 proxy unix": (v2(1, 0x31, b"/a".ljust(108, b"\0") * 2, [(1, b"h2")]), 2, None, None),
    "v2 proxy inet, transport unspec": (v2(1, 0x10, b"\1\2\3\4\5\6\7\x08"), 2, None, None),
    "v2 proxy unix, transport unspec": (v2(1, 0x30, b"\xff"), 2, None, None),
}

#: What may follow a header: nothing, our protocol, text that looks like a
#: second header, bytes that look like a version 2 signature.
TRAILERS = [
    b"",
    b'\x00\x5e{"byteorder": "little"}',
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    V2_SIGNATURE + b"\x21\x11",
    b"\r\n",
]


@pytest.mark.parametrize("trailer", TRAILERS)
@pytest.mark.parametrize("name", VALID)
def test_valid_header_any_split(name: str, trailer: bytes) -> None:
    data, version, source, destination = VALID[name]
    command = "LOCAL" if "local" in name or "unknown" in name else "PROXY"
    expected = ProxyHeader(version, command, source, destination)
    for chunks in chunkings(data + trailer):
        header, fed, trailing = feed(chunks)
        assert header == expected
        assert trailing == trailer
        # The header comes out with its last byte, not before, not after.
        assert sum(map(len, chunks[:fed])) >= len(data)
        assert sum(map(len, chunks[: fed - 1])) < len(data)


def test_v1_lines_have_the_spec_lengths() -> None:
    assert len(VALID["v1 tcp4 widest"][0]) == 56
    assert len(VALID["v1 tcp6 widest"][0]) == 104
    assert len(VALID["v1 unknown"][0]) == 15
    assert len(VALID["v1 unknown longest"][0]) == V1_MAX_LENGTH


def test_trailing_data_in_the_same_receive() -> None:
    parser = ProxyHeaderParser()
    parser.receive_data(bytearray(v1("TCP4", "1.2.3.4", "5.6.7.8", 1, 2) + b"\x00\x01x" * 1000))
    assert parser.next_event() == ProxyHeader(1, "PROXY", ("1.2.3.4", 1), ("5.6.7.8", 2))
    assert parser.trailing_data == b"\x00\x01x" * 1000


def test_header_then_eof() -> None:
    parser = ProxyHeaderParser()
    parser.receive_data(v2(0, 0x00))
    parser.receive_data(b"")
    assert parser.next_event() == ProxyHeader(2, "LOCAL")
    assert parser.trailing_data == b""


# --- Malformed headers ------------------------------------------------------

GOOD4 = v1("TCP4", "1.2.3.4", "5.6.7.8", 80, 443)
V2_PROXY4 = V2_SIGNATURE + b"\x21\x11"

#: name -> (bytes, the count of bytes after which the error is known).
MALFORMED: dict[str, tuple[bytes, int]] = {
    # The first byte decides: neither 'P' nor '\r'.
    "our protocol spoken directly": (b'\x00\x5e{"byteorder": "little"}', 1),
    "http": (b"GET / HTTP/1.1\r\n\r\n", 1),
    "lowercase proxy": (b"proxy TCP4 1.2.3.4 5.6.7.8 80 443\r\n", 1),
    "tls client hello": (b"\x16\x03\x01\x02\x00\x01", 1),
    # Version 1.
    "keyword misspelt": (b"PROXy TCP4 1.2.3.4 5.6.7.8 80 443\r\n", 5),
    "no space after keyword": (b"PROXYTCP4 1.2.3.4 5.6.7.8 80 443\r\n", 6),
    "keyword alone": (b"PROXY\r\n", 6),
    "keyword and space alone": (b"PROXY \r\n", 7),
    "two spaces after keyword": (b"PROXY  TCP4 1.2.3.4 5.6.7.8 80 443\r\n", 7),
    "lowercase protocol": (b"PROXY tcp4 1.2.3.4 5.6.7.8 80 443\r\n", 7),
    "unknown protocol": (b"PROXY TCP5 1.2.3.4 5.6.7.8 80 443\r\n", 10),
    "udp4": (b"PROXY UDP4 1.2.3.4 5.6.7.8 80 443\r\n", 8),
    "protocol cut short": (b"PROXY TCP\r\n", 10),
    "unknown with suffix": (b"PROXY UNKNOWNX\r\n", 14),
    "two spaces before source": (b"PROXY TCP4  1.2.3.4 5.6.7.8 80 443\r\n", 12),
    "two spaces before destination": (b"PROXY TCP4 1.2.3.4  5.6.7.8 80 443\r\n", 20),
    "two spaces before port": (b"PROXY TCP4 1.2.3.4 5.6.7.8  80 443\r\n", 28),
    "tab for space": (b"PROXY TCP4\t1.2.3.4 5.6.7.8 80 443\r\n", 11),
    "space before crlf": (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 \r\n", 34),
    "fifth field": (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 1\r\n", 34),
    "missing port": (b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n", 30),
    "missing everything": (b"PROXY TCP4\r\n", 11),
    "ipv6 for tcp4": (b"PROXY TCP4 ::1 ::1 80 443\r\n", 12),
    "ipv4 for tcp6": (b"PROXY TCP6 1.2.3.4 5.6.7.8 80 443\r\n", 13),
    "hostname": (b"PROXY TCP4 localhost 5.6.7.8 80 443\r\n", 12),
    "octet over 255": (b"PROXY TCP4 1.2.3.256 5.6.7.8 80 443\r\n", 20),
    "octet with leading zero": (b"PROXY TCP4 1.2.3.04 5.6.7.8 80 443\r\n", 19),
    "three octets": (b"PROXY TCP4 1.2.3 5.6.7.8 80 443\r\n", 17),
    "five octets": (b"PROXY TCP4 1.2.3.4.5 5.6.7.8 80 443\r\n", 19),
    "empty octet": (b"PROXY TCP4 1..3.4 5.6.7.8 80 443\r\n", 14),
    "ipv6 zone": (b"PROXY TCP6 fe80::1%eth0 ::1 80 443\r\n", 19),
    "ipv6 group of 5": (b"PROXY TCP6 12345::1 ::1 80 443\r\n", 16),
    "ipv6 single leading colon": (b"PROXY TCP6 :1::2 ::1 80 443\r\n", 13),
    "ipv6 eight groups and ::": (b"PROXY TCP6 1:2:3:4:5:6:7:8:: ::1 80 443\r\n", 27),
    "ipv6 seven groups, ::, a group": (b"PROXY TCP6 1::2:3:4:5:6:7:8 ::1 80 443\r\n", 26),
    "ipv6 seven groups and ipv4": (b"PROXY TCP6 1:2:3:4:5:6:7:1.2.3.4 ::1 80 443\r\n", 27),
    "ipv6 two double colons": (b"PROXY TCP6 1::2::3 ::1 80 443\r\n", 17),
    "ipv6 triple colon": (b"PROXY TCP6 1:::2 ::1 80 443\r\n", 15),
    "ipv6 too many groups": (b"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 80 443\r\n", 27),
    "ipv6 nine groups with ::": (b"PROXY TCP6 1:2:3:4:5:6:7::8 ::1 80 443\r\n", 27),
    "ipv6 ipv4 part in the middle": (b"PROXY TCP6 ::1.2.3.4:1 ::1 80 443\r\n", 21),
    "port over 65535": (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 443\r\n", 32),
    "port of 6 digits": (b"PROXY TCP4 1.2.3.4 5.6.7.8 100000 443\r\n", 33),
    "port with leading zero": (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n", 29),
    "port 00": (b"PROXY TCP4 1.2.3.4 5.6.7.8 00 443\r\n", 29),
    "port with plus": (b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n", 28),
    "negative port": (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 443\r\n", 28),
    "port in hex": (b"PROXY TCP4 1.2.3.4 5.6.7.8 0x50 443\r\n", 29),
    "lf without cr": (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\n", 34),
    "cr without lf": (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\rX", 35),
    "cr cr lf": (b"PROXY UNKNOWN\r\r\n", 15),
    "non-ascii in unknown": (b"PROXY UNKNOWN \xff\r\n", 15),
    "nul in unknown": (b"PROXY UNKNOWN \x00\r\n", 15),
    "unknown without crlf": (b"PROXY UNKNOWN " + b"x" * 200, V1_MAX_LENGTH),
    "crlf one byte too late": (b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n", V1_MAX_LENGTH),
    "tcp6 valid fields but too long": (
        v1("TCP6", "ffff:" * 6 + "255.255.255.255", "ffff:" * 6 + "255.255.255.255", 1, 1),
        V1_MAX_LENGTH,
    ),
    # Version 2.
    "signature byte 2": (b"\r\r\n\r\n", 2),
    "signature byte 5": (V2_SIGNATURE[:4] + b"\x01" + V2_SIGNATURE[5:], 5),
    "signature byte 12": (V2_SIGNATURE[:11] + b"\r" + b"\x21\x11\x00\x00", 12),
    "http after crlf": (b"\r\nGET / HTTP/1.1\r\n", 3),
    "version 1 byte": (V2_SIGNATURE + b"\x11\x11\x00\x0c" + b"\0" * 12, 13),
    "version 3": (V2_SIGNATURE + b"\x31\x11\x00\x0c" + b"\0" * 12, 13),
    "command 2": (V2_SIGNATURE + b"\x22\x11\x00\x0c" + b"\0" * 12, 13),
    "command 15": (V2_SIGNATURE + b"\x2f\x11\x00\x0c" + b"\0" * 12, 13),
    "family 4": (V2_SIGNATURE + b"\x21\x41\x00\x0c" + b"\0" * 12, 14),
    "transport 3": (V2_SIGNATURE + b"\x21\x13\x00\x0c" + b"\0" * 12, 14),
    "family byte ff": (V2_SIGNATURE + b"\x21\xff\x00\x0c" + b"\0" * 12, 14),
    "bad family in local": (V2_SIGNATURE + b"\x20\x51\x00\x00", 14),
    "oversized": (v2(1, 0x00, b"\0" * (V2_MAX_PAYLOAD_LENGTH + 1)), 16),
    "oversized local": (v2(0, 0x00, length=0xFFFF), 16),
    "ipv4 length short": (v2(1, 0x11, b"\0" * 11), 16),
    "ipv4 length zero": (v2(1, 0x11), 16),
    "ipv6 length of ipv4": (v2(1, 0x21, b"\0" * 12), 16),
    "unix length short": (v2(1, 0x31, b"\0" * 215), 16),
    "udp ipv6 length short": (v2(1, 0x22, b"\0" * 35), 16),
    "stray byte after addresses": (v2(1, 0x11, b"\0" * 13), 16),
    "two stray bytes after a tlv": (
        v2(1, 0x21, b"\0" * 36 + b"\x04\x00\x00\x01\x02"),
        16 + 36 + 3,
    ),
    "tlv overruns": (v2(1, 0x11, b"\0" * 12 + b"\x01\x00\x05abcd"), 16 + 12 + 3),
    "second tlv overruns": (
        v2(1, 0x11, b"\0" * 12 + b"\x01\x00\x02h2" + b"\x02\x01\x00ab"),
        16 + 12 + 5 + 3,
    ),
    "tlv length ffff": (v2(1, 0x11, b"\0" * 12 + b"\x01\xff\xff"), 16 + 12 + 3),
}


def feed_until_refused(data: bytes) -> int:
    """Feed ``data`` one byte at a time; return after how many bytes it was
    refused (every earlier byte must have been a valid beginning)."""
    parser = ProxyHeaderParser()
    for count, byte in enumerate(one_byte_at_a_time(data), start=1):
        parser.receive_data(byte)
        try:
            event = parser.next_event()
        except RemoteProtocolError as exc:
            assert exc.code == "bad_proxy_header"
            assert_refused(parser)
            return count
        assert event is NEED_DATA, f"accepted {data!r} as {event}"
    raise AssertionError(f"{data!r} was never refused")


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_refused_at_the_first_bad_byte(name: str) -> None:
    data, error_at = MALFORMED[name]
    assert feed_until_refused(data) == error_at


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_refused_whole_and_split(name: str) -> None:
    data, error_at = MALFORMED[name]
    for point in range(len(data) + 1):
        parser = ProxyHeaderParser()
        first, second = data[:point], data[point:]
        if first:
            parser.receive_data(first)
            if point >= error_at:
                assert_refused(parser)
                continue
            assert parser.next_event() is NEED_DATA
        parser.receive_data(second)
        assert_refused(parser)


def test_error_message_names_the_problem() -> None:
    parser = ProxyHeaderParser()
    parser.receive_data(b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 1\r\n")
    error = assert_refused(parser)
    assert "65536" in error.message
    assert error.message.startswith("bad PROXY protocol header")


@pytest.mark.parametrize(
    "data",
    [b"", b"P", b"PROXY TCP4 1.2.3.4", GOOD4[:-1], b"\r", V2_PROXY4, v2(1, 0x11, b"\0" * 12)[:-1]],
)
def test_closed_before_the_header_ends(data: bytes) -> None:
    parser = ProxyHeaderParser()
    if data:
        parser.receive_data(data)
        assert parser.next_event() is NEED_DATA
    parser.receive_data(b"")
    assert_refused(parser)


def test_smaller_v2_limit() -> None:
    header = v2(1, 0x11, v2_addresses(SOURCE4, DEST4), [(4, b"1234")])
    parser = ProxyHeaderParser(max_v2_payload_length=12 + 3 + 4)
    parser.receive_data(header)
    assert parser.next_event() == ProxyHeader(2, "PROXY", SOURCE4, DEST4)
    parser = ProxyHeaderParser(max_v2_payload_length=12 + 3 + 4)
    parser.receive_data(header + b"\0")
    assert parser.next_event() == ProxyHeader(2, "PROXY", SOURCE4, DEST4)
    parser = ProxyHeaderParser(max_v2_payload_length=12 + 3 + 4)
    parser.receive_data(v2(1, 0x11, v2_addresses(SOURCE4, DEST4), [(4, b"12345")]))
    assert_refused(parser)
    with pytest.raises(ValueError):
        ProxyHeaderParser(max_v2_payload_length=-1)


# --- Misuse -----------------------------------------------------------------


def test_receive_after_eof() -> None:
    parser = ProxyHeaderParser()
    parser.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        parser.receive_data(b"PROXY")


def test_receive_after_the_header() -> None:
    parser = ProxyHeaderParser()
    parser.receive_data(GOOD4)
    assert parser.next_event() != NEED_DATA
    with pytest.raises(LocalProtocolError) as info:
        parser.receive_data(b"more")
    assert info.value.code == "after_header"


def test_trailing_data_before_the_header() -> None:
    parser = ProxyHeaderParser()
    parser.receive_data(GOOD4[:10])
    assert parser.next_event() is NEED_DATA
    with pytest.raises(LocalProtocolError):
        parser.trailing_data  # noqa: B018


def test_next_event_with_nothing_received() -> None:
    assert ProxyHeaderParser().next_event() is NEED_DATA


@pytest.mark.parametrize(
    "fields",
    [
        (3, "PROXY", None, None),
        (1, "proxy", None, None),
        (2, "LOCAL", ("1.2.3.4", 1), ("1.2.3.4", 2)),
        (2, "PROXY", ("1.2.3.4", 1), None),
        (2, "PROXY", ("1.2.3.4", 65536), ("1.2.3.4", 1)),
        (2, "PROXY", ("1.2.3.4", "1"), ("1.2.3.4", 1)),
        (2, "PROXY", ["1.2.3.4", 1], ("1.2.3.4", 1)),
    ],
)
def test_proxy_header_validates(fields: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        ProxyHeader(*fields)  # type: ignore[arg-type]


# --- Properties -------------------------------------------------------------

ports = st.integers(0, 0xFFFF)
ipv4 = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1))
ipv6 = st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1)) | st.builds(
    lambda v4: ipaddress.IPv6Address("::ffff:" + str(v4)), ipv4
)


@st.composite
def ipv6_texts(draw: st.DrawFn) -> tuple[str, str]:
    """An IPv6 address in one of the forms a sender may write, and its
    canonical text."""
    address = draw(ipv6)
    forms = [str(address), address.exploded, str(address).upper(), address.exploded.upper()]
    if address.ipv4_mapped is not None:
        forms.append(f"::ffff:{address.ipv4_mapped}")
    return draw(st.sampled_from(forms)), str(address)


@st.composite
def v1_headers(draw: st.DrawFn) -> tuple[bytes, ProxyHeader]:
    kind = draw(st.sampled_from(["TCP4", "TCP6", "UNKNOWN"]))
    if kind == "UNKNOWN":
        # Whatever follows UNKNOWN is ignored, up to the line's limit.
        tail = draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=92))
        line = b"PROXY UNKNOWN" + (b" " + tail.encode() if draw(st.booleans()) else b"")
        return line + b"\r\n", ProxyHeader(1, "LOCAL")
    if kind == "TCP4":
        texts = [(str(a), str(a)) for a in (draw(ipv4), draw(ipv4))]
    else:
        texts = [draw(ipv6_texts()), draw(ipv6_texts())]
    sport, dport = draw(ports), draw(ports)
    data = v1(kind, texts[0][0], texts[1][0], sport, dport)
    if len(data) > V1_MAX_LENGTH:  # two 45-character IPv4-mapped forms
        texts = [(canonical, canonical) for _, canonical in texts]
        data = v1(kind, texts[0][0], texts[1][0], sport, dport)
    return data, ProxyHeader(1, "PROXY", (texts[0][1], sport), (texts[1][1], dport))


@st.composite
def tlv_lists(draw: st.DrawFn, room: int) -> list[tuple[int, bytes]]:
    tlvs = []
    for tlv_type, value in draw(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)))):
        room -= 3 + len(value)
        if room < 0:
            break
        tlvs.append((tlv_type, value))
    return tlvs


@st.composite
def v2_headers(draw: st.DrawFn) -> tuple[bytes, ProxyHeader]:
    command = draw(st.sampled_from([0x0, 0x1]))
    family = draw(
        st.sampled_from([0x00, 0x01, 0x02, 0x10, 0x11, 0x12, 0x20, 0x21, 0x22, 0x30, 0x31, 0x32])
    )
    expected = ProxyHeader(2, "LOCAL" if command == 0 else "PROXY")
    if family >> 4 in (1, 2):
        address = ipv4 if family >> 4 == 1 else ipv6
        source = (str(draw(address)), draw(ports))
        destination = (str(draw(address)), draw(ports))
        addresses = v2_addresses(source, destination)
        if command == 1 and family in (0x11, 0x21):
            expected = ProxyHeader(2, "PROXY", source, destination)
    elif family >> 4 == 3:
        addresses = draw(st.binary(min_size=216, max_size=216))
    else:
        addresses = b""
    if family & 0x0F == 0 or family >> 4 == 0 or command == 0:
        # No address block the parser can rely on: any bytes may follow.
        payload = addresses + draw(st.binary(max_size=V2_MAX_PAYLOAD_LENGTH - len(addresses)))
        return v2(command, family, payload), expected
    tlvs = draw(tlv_lists(V2_MAX_PAYLOAD_LENGTH - len(addresses)))
    return v2(command, family, addresses, tlvs), expected


headers = v1_headers() | v2_headers()


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at random points, or one byte at a time."""
    if draw(st.integers(0, 9)) == 0:
        return one_byte_at_a_time(data)
    points = sorted(draw(st.sets(st.integers(1, max(1, len(data) - 1)), max_size=8)))
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if data[a:b]]


@pytest.mark.fuzz
@given(headers, st.binary(max_size=20), st.data())
def test_encoded_headers_parse_back(
    header: tuple[bytes, ProxyHeader], trailer: bytes, data: st.DataObject
) -> None:
    encoded, expected = header
    event(f"version {expected.version} {expected.command} {expected.source is not None}")
    parsed, _, trailing = feed(data.draw(chunked(encoded + trailer)))
    assert parsed == expected
    assert trailing == trailer


@st.composite
def mangled_headers(draw: st.DrawFn) -> bytes:
    """A valid header with a few bytes replaced, inserted or deleted, or
    random bytes, or the start of a header followed by random bytes."""
    encoded = draw(headers)[0]
    how = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "random"]))
    if how == "random":
        return draw(st.binary(max_size=200))
    at = draw(st.integers(0, len(encoded)))
    if how == "truncate":
        return encoded[:at] + draw(st.binary(max_size=40))
    size = draw(st.integers(1, 3))
    if how == "delete":
        return encoded[:at] + encoded[at + size :]
    piece = draw(st.binary(min_size=1, max_size=size) | st.sampled_from([b" ", b"\r", b"\n", b"0"]))
    return encoded[:at] + piece + encoded[at + (size if how == "replace" else 0) :]


_REFERENCE_V1 = re.compile(rb"PROXY (TCP[46]) (\S+) (\S+) (0|[1-9][0-9]{0,4}) (0|[1-9][0-9]{0,4})")


def reference_v1(line: bytes) -> ProxyHeader | None:
    """The spec's version 1 line (CRLF excluded), parsed whole and plainly:
    what the incremental parser must agree with."""
    if re.fullmatch(rb"PROXY UNKNOWN( [\x20-\x7e]*)?", line):
        return ProxyHeader(1, "LOCAL")
    match = _REFERENCE_V1.fullmatch(line)
    if match is None:
        return None
    protocol, source, destination, sport, dport = match.groups()
    parse = ipaddress.IPv4Address if protocol == b"TCP4" else ipaddress.IPv6Address
    try:
        hosts = [str(parse(text.decode("ascii"))) for text in (source, destination)]
    except ValueError:
        return None
    if b"%" in source + destination or max(int(sport), int(dport)) > 0xFFFF:
        return None
    return ProxyHeader(1, "PROXY", (hosts[0], int(sport)), (hosts[1], int(dport)))


@pytest.mark.fuzz
@given(mangled_headers(), st.booleans(), st.data())
def test_any_bytes_parse_or_are_refused(raw: bytes, eof: bool, data: st.DataObject) -> None:
    parser = ProxyHeaderParser()
    chunks = data.draw(chunked(raw)) if raw else []
    if eof:
        chunks.append(b"")
    outcome = "need data"
    fed = 0
    for chunk in chunks:
        parser.receive_data(chunk)
        fed += len(chunk)
        try:
            parsed = parser.next_event()
        except RemoteProtocolError as exc:
            assert exc.code == "bad_proxy_header"
            outcome = "refused"
            break
        if parsed is not NEED_DATA:
            assert isinstance(parsed, ProxyHeader)
            outcome = "parsed"
            # The header and trailing data add up to what was fed.
            assert raw[:fed].endswith(parser.trailing_data)
            break
    event(outcome)
    end = raw.find(b"\r\n", 0, V1_MAX_LENGTH)
    if raw.startswith(b"P") and end >= 0:
        # A whole version 1 line: the verdict is the reference parser's.
        expected = reference_v1(raw[:end])
        if expected is None:
            assert outcome == "refused"
        else:
            assert outcome == "parsed"
            assert parsed == expected
            assert parser.trailing_data + raw[fed:] == raw[end + 2 :]
    if outcome == "need data":
        # Undecided only while the bytes are shorter than the longest header.
        assert fed < max(V1_MAX_LENGTH, 16 + V2_MAX_PAYLOAD_LENGTH)
        assert not eof


# --- Trusted proxies --------------------------------------------------------


def test_trusted_proxies_parse() -> None:
    trusted = TrustedProxies.parse("127.0.0.1, 10.1.2.3/8,fd00::/8 ,::ffff:192.168.0.0/112")
    assert trusted.networks == (
        ipaddress.IPv4Network("127.0.0.1/32"),
        ipaddress.IPv4Network("10.0.0.0/8"),
        ipaddress.IPv6Network("fd00::/8"),
        ipaddress.IPv4Network("192.168.0.0/16"),
    )


@pytest.mark.parametrize(
    ("address", "trusted"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", False),
        ("10.255.0.1", True),
        ("11.0.0.1", False),
        ("::ffff:127.0.0.1", True),
        ("::ffff:7f00:1", True),
        ("::ffff:10.1.1.1", True),
        ("192.168.44.1", True),
        ("::ffff:192.168.44.1", True),
        ("fd12::1", True),
        ("fe80::1%eth0", False),
        ("::1", False),
        ("::127.0.0.1", False),  # IPv4-compatible, not IPv4-mapped
        ("", False),
        ("localhost", False),
        ("/run/trio-search.sock", False),
    ],
)
def test_is_trusted(address: str, trusted: bool) -> None:
    proxies = TrustedProxies.parse("127.0.0.1,10.0.0.0/8,fd00::/8,::ffff:192.168.0.0/112")
    assert proxies.is_trusted(address) is trusted


def test_is_trusted_ipv6_with_zone() -> None:
    assert TrustedProxies.parse("fe80::/10").is_trusted("fe80::1%eth0")
    assert TrustedProxies.parse("::/0").is_trusted("::ffff:1.2.3.4") is False
    assert TrustedProxies.parse("0.0.0.0/0").is_trusted("::ffff:1.2.3.4")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "no network given"),
        ("  ", "no network given"),
        ("10.0.0.0/8,", "empty item"),
        ("10.0.0.0/8,,fd00::/8", "empty item"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not an IPv4 or IPv6 network"),
        ("10.0.0.256", "'10.0.0.256' is not"),
        ("localhost", "'localhost' is not"),
        ("10.0.0.0/8;fd00::/8", "'10.0.0.0/8;fd00::/8' is not"),
        ("fd00::/129", "'fd00::/129' is not"),
    ],
)
def test_bad_trusted_proxies(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        TrustedProxies.parse(value)
    assert info.value.code == "bad_trusted_proxies"
    assert info.value.message.startswith("--trusted-proxies: ")
    assert message in info.value.message
