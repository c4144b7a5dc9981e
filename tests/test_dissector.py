"""contrib/wireshark/trio_search.lua, run by tshark on captures of real
trio_search traffic.

The captures are written here, not sniffed (that would need capture rights):
the messages are what a trio_search server really answers over loopback,
laid into Ethernet/IPv4/TCP frames with correct sequence numbers and
checksums, cut where a test wants them cut. Skipped where tshark is not
installed (CI need not have it): ``apt-get install tshark`` to run them.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from tests.helpers import framed, json_request, raw_message, start_server
from trio_search import CLOSED, NEED_DATA, MessageProtocol

TSHARK = shutil.which("tshark")
DISSECTOR = Path(__file__).resolve().parent.parent / "contrib" / "wireshark" / "trio_search.lua"
#: Seconds one tshark run may take.
TSHARK_TIMEOUT = 60
#: The dissector's default port, and one it only dissects when told to.
DEFAULT_PORT = 65432
OTHER_PORT = 40123
CLIENT_PORT = 51515
#: A TCP segment's payload at most, as on an Ethernet link.
MSS = 1460

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


# --- writing a capture ------------------------------------------------------------


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10
LOOPBACK = bytes([127, 0, 0, 1])


def frame(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    """An Ethernet frame holding an IPv4/TCP segment from 127.0.0.1 to itself."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    pseudo = LOOPBACK + LOOPBACK + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp + payload)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0,
                     LOOPBACK, LOOPBACK)  # fmt: skip
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    ethernet = bytes(12) + struct.pack("!H", 0x0800)  # as on Linux's "lo"
    return ethernet + ip + tcp + payload


@attrs.define
class Connection:
    """One TCP connection's frames, in order: handshake, data, close."""

    server_port: int
    client_port: int = CLIENT_PORT
    frames: list[bytes] = attrs.field(factory=list)
    #: Next sequence number of the client, and of the server.
    seq: dict[bool, int] = attrs.field(factory=lambda: {True: 1_000, False: 5_000})

    def _send(self, from_client: bool, flags: int, payload: bytes = b"") -> None:
        ports = (self.client_port, self.server_port)
        sport, dport = ports if from_client else ports[::-1]
        ack = self.seq[not from_client] if flags & ACK else 0
        self.frames.append(frame(sport, dport, self.seq[from_client], ack, flags, payload))
        self.seq[from_client] += len(payload) + (1 if flags & (SYN | FIN) else 0)

    def open(self) -> Connection:
        self._send(True, SYN)
        self._send(False, SYN | ACK)
        self._send(True, ACK)
        return self

    def send(self, from_client: bool, data: bytes, cuts: Sequence[int] = ()) -> None:
        """``data`` in segments cut at the offsets ``cuts``, and at MSS."""
        bounds = [0, *cuts, len(data)]
        for start, end in itertools.pairwise(bounds):
            for offset in range(start, end, MSS):
                self._send(from_client, PSH | ACK, data[offset : min(offset + MSS, end)])

    def close(self) -> None:
        self._send(True, FIN | ACK)
        self._send(False, FIN | ACK)
        self._send(True, ACK)


def write_pcap(path: Path, frames: Sequence[bytes]) -> None:
    """A classic pcap file of Ethernet frames, one millisecond apart."""
    with path.open("wb") as file:
        file.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for number, data in enumerate(frames):
            file.write(struct.pack("<IIII", 1_700_000_000, number * 1000, len(data), len(data)))
            file.write(data)


# --- real traffic -------------------------------------------------------------


async def exchange(requests: Sequence[bytes]) -> list[bytes]:
    """Send ``requests`` at once to a real trio_search server; return the
    raw bytes of each response, as they came off the wire."""
    async with trio.open_nursery() as nursery:
        _, (host, port) = await start_server(nursery)
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                await stream.send_all(b"".join(requests))
                received = bytearray()
                protocol = MessageProtocol()
                responses = 0
                while responses < len(requests):
                    event = protocol.next_message()
                    if event is NEED_DATA:
                        chunk = await stream.receive_some()
                        protocol.receive_data(chunk)
                        received += chunk
                    else:
                        assert event is not CLOSED, "the server closed early"
                        responses += 1
        nursery.cancel_scope.cancel()
    return split_messages(bytes(received))


def split_messages(data: bytes) -> list[bytes]:
    """Cut well-formed wire bytes into their messages (independently of the
    package's parser: this is what the dissector must find too)."""
    messages = []
    while data:
        (header_length,) = struct.unpack(">H", data[:2])
        header = json.loads(data[2 : 2 + header_length])
        end = 2 + header_length + header["content-length"]
        messages.append(data[:end])
        data = data[end:]
    return messages


@attrs.frozen
class Dissected:
    """What the dissector shows of one message."""

    header_length: int
    header: str
    content_type: str | None
    content_encoding: str | None
    content_length: int | None
    content: bytes | None
    #: Each "key:value" the json dissector found in the header, then in the
    #: content.
    json: tuple[str, ...]
    #: Text content other than JSON, decoded.
    text: str | None
    experts: tuple[str, ...]


def expected(message: bytes) -> Dissected:
    (header_length,) = struct.unpack(">H", message[:2])
    header_text = message[2 : 2 + header_length].decode()
    header = json.loads(header_text)
    content = message[2 + header_length :]
    members = [f"{key}:{value}" for key, value in header.items()]
    text = None
    if header["content-encoding"] == "utf-8" and content:
        if header["content-type"] == "text/json":
            members += [f"{key}:{value}" for key, value in json.loads(content).items()]
        elif header["content-type"].startswith("text/"):
            text = content.decode()
    return Dissected(
        header_length=header_length,
        header=header_text,
        content_type=header["content-type"],
        content_encoding=header["content-encoding"],
        content_length=len(content),
        content=content,
        json=tuple(members),
        text=text,
        experts=(),
    )


def tshark(capture: Path, *options: str) -> str:
    """tshark's output for ``capture``, dissected with our Lua script."""
    assert TSHARK is not None
    # A home of its own: no personal preferences, and no copy of the
    # dissector installed in the personal plugins folder (loaded twice, it
    # fails).
    home = capture.parent / "home"
    home.mkdir(exist_ok=True)
    result = subprocess.run(
        [TSHARK, "-r", str(capture), "-X", f"lua_script:{DISSECTOR}", *options],
        capture_output=True,
        timeout=TSHARK_TIMEOUT,
        check=False,
        env={**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")},
    )
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "Lua" not in stderr and "rror" not in stderr, stderr
    return result.stdout.decode()


def pdml(capture: Path, *options: str) -> ET.Element:
    """The capture's dissection as PDML (tshark's XML)."""
    return ET.fromstring(tshark(capture, *options, "-T", "pdml"))


def infos(capture: Path, *options: str) -> list[str]:
    """The Info column of each frame that holds a trio_search message."""
    output = tshark(capture, *options, "-Y", "trio_search", "-T", "fields", "-e", "_ws.col.Info")
    return output.splitlines()


def fields(element: ET.Element, name: str) -> Iterator[ET.Element]:
    return (field for field in element.iter("field") if field.get("name") == name)


def field(element: ET.Element, name: str) -> ET.Element | None:
    return next(fields(element, name), None)


def dissected(pdml: ET.Element) -> list[Dissected]:
    """Every trio_search message in the capture, in order."""
    found = []
    for proto in pdml.iter("proto"):
        if proto.get("name") != "trio_search":
            continue
        values: dict[str, Any] = {}
        for name in ("header_length", "content_length"):
            if (item := field(proto, f"trio_search.{name}")) is not None:
                values[name] = int(item.get("show", ""))
        for name in ("header", "content_type", "content_encoding"):
            if (item := field(proto, f"trio_search.{name}")) is not None:
                values[name] = item.get("show")
        content = field(proto, "trio_search.content")
        text = field(proto, "trio_search.text")
        found.append(
            Dissected(
                header_length=values["header_length"],
                header=values["header"],
                content_type=values.get("content_type"),
                content_encoding=values.get("content_encoding"),
                content_length=values.get("content_length"),
                content=None if content is None else bytes.fromhex(content.get("value", "")),
                json=tuple(
                    item.get("show", "") for item in fields(proto, "json.member_with_value")
                ),
                text=None if text is None else text.get("show"),
                experts=tuple(item.get("show", "") for item in fields(proto, "_ws.expert.message")),
            )
        )
    return found


def summary(message: bytes, to_server: bool) -> str:
    """The dissector's summary of ``message`` in the Info column."""
    shown = expected(message)
    direction = "Request" if to_server else "Response"
    return f"{direction}: {shown.content_type}, {shown.content_length} bytes"


def capture(tmp_path: Path, connection: Connection) -> Path:
    connection.close()
    path = tmp_path / "capture.pcap"
    write_pcap(path, connection.frames)
    return path


# --- the tests ----------------------------------------------------------------

SEARCHES = [
    json_request({"action": "search", "value": "morpheus"}),
    json_request({"action": "search", "value": "\U0001f436"}),
    json_request({"action": "search", "value": "ring"}, encoding="utf-16"),
    raw_message(b"binaryhello", "binary/custom-client-binary-type", "binary"),
]


async def test_pipelined_messages_in_one_segment_on_the_default_port(tmp_path: Path) -> None:
    responses = await exchange(SEARCHES)
    connection = Connection(DEFAULT_PORT).open()
    connection.send(True, b"".join(SEARCHES))
    connection.send(False, b"".join(responses))
    path = capture(tmp_path, connection)
    assert dissected(pdml(path)) == [expected(message) for message in [*SEARCHES, *responses]]
    assert infos(path) == [
        "; ".join(summary(message, True) for message in SEARCHES),
        "; ".join(summary(message, False) for message in responses),
    ]


async def test_messages_split_inside_the_prefix_the_header_and_the_content(
    tmp_path: Path,
) -> None:
    first, second = SEARCHES[1], SEARCHES[3]
    responses = await exchange([first, second])
    requests = first + second
    (header_length,) = struct.unpack(">H", first[:2])
    # Inside the first prefix, the first header (twice), the first content;
    # then the second message's prefix split, its first byte sent along with
    # the end of the first message.
    request_cuts = [1, 7, 2 + header_length - 3, 2 + header_length + 4, len(first) + 1]
    response_cuts = [1, 10, len(responses[0]) + 1, len(responses[0]) + 2 + 5]
    connection = Connection(OTHER_PORT).open()
    connection.send(True, requests, request_cuts)
    connection.send(False, b"".join(responses), response_cuts)
    path = capture(tmp_path, connection)
    decode_as = ("-d", f"tcp.port=={OTHER_PORT},trio_search")
    assert dissected(pdml(path, *decode_as)) == [
        expected(message) for message in [first, second, *responses]
    ]
    # Each message shows once, in the frame that completes it.
    assert infos(path, *decode_as) == [
        summary(first, True),
        summary(second, True),
        summary(responses[0], False),
        summary(responses[1], False),
    ]


async def test_a_100_kb_message_over_many_segments_on_a_port_set_by_preference(
    tmp_path: Path,
) -> None:
    content = bytes(range(256)) * 400  # 102,400 bytes
    request = raw_message(content, "binary/custom-client-binary-type", "binary")
    (response,) = await exchange([request])
    connection = Connection(OTHER_PORT).open()
    connection.send(True, request)
    connection.send(False, response)
    assert len(connection.frames) > 3 + len(request) // MSS
    path = capture(tmp_path, connection)
    preference = ("-o", f"trio_search.port:{OTHER_PORT}")
    assert dissected(pdml(path, *preference)) == [expected(request), expected(response)]
    assert infos(path, *preference) == [
        "Request: binary/custom-client-binary-type, 102400 bytes",
        "Response: binary/custom-server-binary-type, 37 bytes",
    ]


async def test_a_header_without_content_length_is_marked_malformed_and_dissection_goes_on(
    tmp_path: Path,
) -> None:
    bad_headers = [
        b'{"content-type": "text/json", "content-encoding": "utf-8", "byteorder": "big"}',
        b'{"content-length": "12", "content-type": "text/json"}',
        b'{"content-length": 1.5}',
        b'{"content-length": 99999999999999999999}',  # more than Wireshark can reassemble
        b"",
    ]
    good = SEARCHES[0]
    connection = Connection(DEFAULT_PORT).open()
    connection.send(True, b"".join(framed(header) for header in bad_headers) + good)
    # Then a message whose header never ends: the capture stops first.
    connection.send(True, framed(b'{"content-length": 3, "cont')[:20])
    path = capture(tmp_path, connection)
    messages = dissected(pdml(path))
    assert len(messages) == len(bad_headers) + 1
    for message, header in zip(messages, bad_headers, strict=False):
        assert message.header == header.decode()
        assert message.content_length is None and message.content is None
        assert "JSON header has no parsable content-length" in message.experts
    assert messages[0].experts == ("JSON header has no parsable content-length",)
    assert messages[0].content_type == "text/json"
    assert messages[1].experts == (
        "JSON header has no parsable content-length",
        'JSON header has no "byteorder"',
        'JSON header has no "content-encoding"',
    )
    assert messages[-1] == expected(good)
    assert infos(path) == [
        "; ".join(["Request: malformed header"] * len(bad_headers) + [summary(good, True)])
    ]


async def test_empty_and_plain_text_content(tmp_path: Path) -> None:
    empty = [
        raw_message(b""),
        raw_message(b"", "binary/custom-client-binary-type", "binary"),
        raw_message(b"", "text/plain"),
        raw_message("caf\u00e9".encode(), "text/plain", note="\u00e9t\u00e9 \U0001f436"),
    ]
    connection = Connection(DEFAULT_PORT).open()
    connection.send(True, b"".join(empty))
    shown = dissected(pdml(capture(tmp_path, connection)))
    assert shown == [expected(message) for message in empty]
    assert shown[-1].text == "caf\u00e9"
