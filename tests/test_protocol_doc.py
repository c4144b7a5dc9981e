"""docs/protocol.md lists every error code the package can send, and only those.

The codes are collected from the package's source: each ``code="..."``
keyword of an error raised toward the peer, each ``"error": "..."`` literal
of an answer, and the query module's code constants. Errors that never reach
the wire (the client's ``ServerResponseError``, ``LocalProtocolError`` for
our own misuse, ``ConfigurationError`` for bad settings) are left out.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import trio_search
from trio_search import _query

PACKAGE = Path(trio_search.__file__).parent
PROTOCOL_DOC = Path(__file__).parent.parent / "docs" / "protocol.md"

#: Error classes (and helpers that make them) whose code goes to the peer
#: in an error answer.
SENT = frozenset({"RequestError", "RemoteProtocolError", "TrioSearchError", "_bad"})
#: Error classes whose code never leaves this process.
NOT_SENT = frozenset({"ServerResponseError", "LocalProtocolError", "ConfigurationError"})


def _callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ast.dump(func)


def codes_in_source(source: str, where: str) -> set[str]:
    """The error codes ``source`` can send (see the module docstring)."""
    codes: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                value = keyword.value
                if keyword.arg != "code" or not isinstance(value, ast.Constant):
                    continue
                callee = _callee(node)
                assert callee in SENT | NOT_SENT, (
                    f"{where}:{node.lineno}: {callee}(code=...): add it to SENT or NOT_SENT"
                )
                if callee in SENT and isinstance(value.value, str):
                    codes.add(value.value)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "error"
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                ):
                    codes.add(value.value)
    return codes


def sendable_codes() -> set[str]:
    codes = {_query.BAD_QUERY, _query.QUERY_TOO_LONG}
    for path in sorted(PACKAGE.glob("*.py")):
        codes |= codes_in_source(path.read_text(encoding="utf-8"), path.name)
    return codes


def documented_codes() -> set[str]:
    """The codes in the first column of the tables under "## Error codes"."""
    text = PROTOCOL_DOC.read_text(encoding="utf-8")
    section = text.split("\n## Error codes\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))


def test_collection_finds_the_codes() -> None:
    codes = sendable_codes()
    # One of each kind of source: a RequestError, a RemoteProtocolError, the
    # base class, an "error" literal and a constant of _query.
    assert {"invalid_json", "truncated", "busy", "invalid_action", "query_too_long"} <= codes
    # The client's own codes are not sent.
    assert "bad_result" not in codes and "no_response" not in codes


def test_collection_of_a_source() -> None:
    source = """
raise RequestError("x", code="sent_one")
raise errors.RemoteProtocolError("x", code="sent_two")
raise ServerResponseError("x", code="client_only")
reply = {"result": "Error: x.", "error": "sent_three"}
"""
    assert codes_in_source(source, "example") == {"sent_one", "sent_two", "sent_three"}


def test_every_sendable_code_is_documented() -> None:
    missing = sendable_codes() - documented_codes()
    assert not missing, f"error codes missing from docs/protocol.md: {sorted(missing)}"


def test_every_documented_code_can_be_sent() -> None:
    stale = documented_codes() - sendable_codes()
    assert not stale, f"docs/protocol.md lists codes nothing sends: {sorted(stale)}"
