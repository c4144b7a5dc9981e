"""Peer: the tutorial's server design, on ``selectors``, without its prints.

One thread, one selector, non-blocking sockets. A connection is read until
one whole request is in, then answered; once the answer is written the
server closes the connection. So one request per connection, as the
tutorial's app-server.py serves: use it with oneshot clients only.

Usage: python selectors_oneshot.py --host 127.0.0.1 --port 65432
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import struct

from _tutorial_app import GARBLED, REQUIRED, answer, parse_args


class Connection:
    """One client: read one request, write its answer, close."""

    def __init__(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        self.selector = selector
        self.sock = sock
        self.received = bytearray()
        self.header: dict[str, object] | None = None
        self.header_end = 0
        self.outgoing = b""

    def on_event(self, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            self.read()
        if mask & selectors.EVENT_WRITE:
            self.write()

    def read(self) -> None:
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return
        if not data:
            raise ConnectionError("peer closed")
        self.received += data
        received = self.received
        if self.header is None:
            if len(received) < 2:
                return
            (length,) = struct.unpack_from(">H", received)
            if len(received) < 2 + length:
                return
            header = json.loads(received[2 : 2 + length].decode("utf-8"))
            if not isinstance(header, dict) or any(key not in header for key in REQUIRED):
                raise ValueError("bad header")
            if type(header["content-length"]) is not int:
                raise ValueError("bad content-length")
            self.header, self.header_end = header, 2 + length
        content_length = self.header["content-length"]
        assert isinstance(content_length, int)
        content_end = self.header_end + content_length
        if len(received) < content_end:
            return
        self.outgoing = answer(self.header, bytes(received[self.header_end : content_end]))
        self.selector.modify(self.sock, selectors.EVENT_WRITE, self)

    def write(self) -> None:
        try:
            sent = self.sock.send(self.outgoing)
        except BlockingIOError:
            return
        self.outgoing = self.outgoing[sent:]
        if not self.outgoing:
            self.close()

    def close(self) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self.sock)
        self.sock.close()


def serve(host: str, port: int) -> None:
    selector = selectors.DefaultSelector()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ, None)
    while True:
        for key, mask in selector.select():
            if key.data is None:
                try:
                    sock, _address = listener.accept()
                except BlockingIOError:
                    continue
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ, Connection(selector, sock))
                continue
            connection: Connection = key.data
            try:
                connection.on_event(mask)
            except (OSError, *GARBLED):
                connection.close()


def main() -> None:
    args = parse_args(__doc__)
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.host, args.port)


if __name__ == "__main__":
    main()
