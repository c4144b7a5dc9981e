"""What every peer server shares: the tutorial's app, framing and command line.

Not a server itself (run.py starts only the peers it names). Each peer is
run as ``python benchmarks/peers/NAME.py``, so this folder is first on
``sys.path`` whatever the working directory, and ``import _tutorial_app``
finds this file. Only the I/O differs from peer to peer; what a request is
answered with (see /work/shared/PROTOCOL.md) is decided here once:

- ``text/json`` ``{"action": "search", "value": Q}``: ``{"result": ANSWER}``,
  or ``{"result": "No match for 'Q'."}`` when Q is not in ``INDEX``;
- ``text/json`` with another action A: ``{"result": "Error: invalid action 'A'."}``;
- any other content-type: ``binary/custom-server-binary-type`` content
  ``b"First 10 bytes of request: " + content[:10]``.

Usage: ``answer(header, content)`` returns the whole framed response, JSON
done with the standard library as the tutorial does;
``make_answer(dumps, loads)`` builds the same function on another JSON
library (the uvloop peer's orjson variant). ``REQUIRED`` are the header keys
a peer checks before answering, ``GARBLED`` the exceptions on which it closes
the connection, ``parse_args(__doc__)`` its ``--host`` and ``--port``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

#: The tutorial's search "index", exactly.
INDEX = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}
#: Keys a request's JSON header must have.
REQUIRED = ("byteorder", "content-length", "content-type", "content-encoding")
#: What parsing or answering garbled input raises (bad JSON or codec, missing
#: or ill-typed keys); every peer then closes the connection, as the tutorial does.
GARBLED = (ValueError, TypeError, LookupError, AttributeError)

#: ``dumps(obj) -> bytes`` (UTF-8 JSON).
Dumps = Callable[[Any], bytes]
#: ``loads(content, content_encoding) -> object``.
Loads = Callable[[bytes, str], Any]
#: ``answer(header, content) -> framed response``.
Answer = Callable[[dict[str, Any], bytes], bytes]


def make_answer(dumps: Dumps, loads: Loads) -> Answer:
    """``answer(header, content)`` for one request, whose header a peer has
    checked (``REQUIRED``), JSON done with ``dumps`` and ``loads``."""
    byteorder = sys.byteorder
    index_get = INDEX.get

    def frame(content: bytes, content_type: str, content_encoding: str) -> bytes:
        header = dumps(
            {
                "byteorder": byteorder,
                "content-type": content_type,
                "content-encoding": content_encoding,
                "content-length": len(content),
            }
        )
        return len(header).to_bytes(2, "big") + header + content

    def answer(header: dict[str, Any], content: bytes) -> bytes:
        if header["content-type"] != "text/json":
            return frame(
                b"First 10 bytes of request: " + content[:10],
                "binary/custom-server-binary-type",
                "binary",
            )
        # Not str()'d: a non-str encoding fails in decode (TypeError) as an
        # unknown one does (LookupError), and every peer closes on both.
        request = loads(content, header["content-encoding"])
        action = request.get("action")
        if action == "search":
            query = request.get("value")
            result = {"result": index_get(query) or f"No match for '{query}'."}
        else:
            result = {"result": f"Error: invalid action '{action}'."}
        return frame(dumps(result), "text/json", "utf-8")

    return answer


def _json_dumps(obj: Any) -> bytes:
    # As the tutorial encodes: json.dumps(obj, ensure_ascii=False), UTF-8.
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def _json_loads(content: bytes, encoding: str) -> Any:
    return json.loads(content.decode(encoding))


#: The answer to one request, with the standard library's json.
answer = make_answer(_json_dumps, _json_loads)


def parse_args(description: str | None) -> argparse.Namespace:
    """``--host`` and ``--port``, as every peer (and run.py) expects."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=65432)
    return parser.parse_args()
