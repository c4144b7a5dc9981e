"""The tutorial's application, as a pure function of one request (no sockets)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from trio_search import (
    BUILTIN_INDEX,
    Deferred,
    Message,
    Reply,
    SearchApp,
    SearchIndex,
    TrioSearchError,
    encode_message,
)
from trio_search._index_writer import add_documents, build_index
from trio_search._limits import INLINE_QUERY_MAX_ANSWER_CHARACTERS, REPLY_CACHE_MAX_REPLY_LENGTH


def json_message(obj: Any, encoding: str = "utf-8", *, ensure_ascii: bool = False) -> Message:
    """A text/json request as the tutorial's client builds it."""
    content = json.dumps(obj, ensure_ascii=ensure_ascii).encode(encoding)
    return Message(content, "text/json", encoding)


def complete(answer: Reply | Deferred) -> Reply:
    """The reply, running any deferred work here as a worker thread would."""
    while isinstance(answer, Deferred):
        answer = answer.finish(answer.work())
    return answer


def result(answer: Reply | Deferred) -> Any:
    """The decoded content of a text/json reply, which must be UTF-8."""
    message = complete(answer).message
    assert (message.content_type, message.content_encoding) == ("text/json", "utf-8")
    return json.loads(message.content.decode("utf-8"))


def search(value: Any, app: SearchApp | None = None) -> Any:
    app = app if app is not None else SearchApp()
    return result(app.respond(json_message({"action": "search", "value": value})))


@pytest.mark.parametrize(("key", "answer"), list(BUILTIN_INDEX.items()))
def test_search_finds_each_builtin_key(key: str, answer: str) -> None:
    reply = SearchApp().respond(json_message({"action": "search", "value": key}))
    assert result(reply) == {"result": answer}
    assert reply.error is None


def test_builtin_index_is_the_tutorials() -> None:
    assert search("morpheus") == {"result": "Follow the white rabbit. \U0001f430"}
    assert search("ring") == {"result": "In the caves beneath the Misty Mountains. \U0001f48d"}
    assert search("\U0001f436") == {"result": "\U0001f43e Playing ball! \U0001f3d0"}


def test_response_is_utf8_json_written_with_ensure_ascii_false() -> None:
    reply = SearchApp().respond(json_message({"action": "search", "value": "ring"}))
    assert reply.message.content == json.dumps(
        {"result": BUILTIN_INDEX["ring"]}, ensure_ascii=False
    ).encode("utf-8")


def test_search_miss() -> None:
    assert search("neo") == {"result": "No match for 'neo'."}


def test_search_uses_the_apps_own_index() -> None:
    app = SearchApp({"neo": "The One."})
    assert search("neo", app) == {"result": "The One."}
    assert search("morpheus", app) == {"result": "No match for 'morpheus'."}


def test_only_short_search_replies_are_kept() -> None:
    # A kept reply is answered again as the same object. Answers are the
    # user's data: 4,096 kept replies of a megabyte would hold 8 GB.
    app = SearchApp({"neo": "The One.", "matrix": "x" * (REPLY_CACHE_MAX_REPLY_LENGTH + 1)})
    short, long = (
        json_message({"action": "search", "value": "neo"}),
        json_message({"action": "search", "value": "matrix"}),
    )
    assert app.respond(short) is app.respond(short)
    first = app.respond(long)
    assert app.respond(long) is not first
    assert result(first)["result"] == "x" * (REPLY_CACHE_MAX_REPLY_LENGTH + 1)


LONG_ANSWER = "White rabbit. " + "x" * INLINE_QUERY_MAX_ANSWER_CHARACTERS
ALICE = json_message({"action": "query", "value": "alice"})


def test_queries_on_data_with_long_answers_go_to_a_worker_thread() -> None:
    # A small index's queries run on the event loop, each hit costing a few
    # microseconds: unless its answers are long (the user's data).
    short = SearchApp({"alice": "A white rabbit."})
    assert result(short.respond(ALICE))["result"][0]["key"] == "alice"  # reads the dictionary
    assert isinstance(short.respond(ALICE), Reply)
    app = SearchApp({"alice": "A white rabbit.", "long": LONG_ANSWER})
    assert result(app.respond(ALICE))["result"][0]["key"] == "alice"
    assert isinstance(app.respond(ALICE), Deferred)
    # The search action is unaffected.
    assert isinstance(app.respond(json_message({"action": "search", "value": "alice"})), Reply)


def test_an_index_on_disk_learns_its_answers_are_long_from_a_query(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    records = [
        {"key": "alice", "answer": "A white rabbit."},
        {"key": "long", "answer": LONG_ANSWER},
    ]
    data.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    build_index(data, tmp_path / "index")
    app = SearchApp(SearchIndex.open(tmp_path / "index"))
    assert result(app.respond(ALICE))["result"][0]["key"] == "alice"
    assert isinstance(app.respond(ALICE), Reply)  # short answers only so far
    rabbit = result(app.respond(json_message({"action": "query", "value": "rabbit"})))
    assert {hit["answer"] for hit in rabbit["result"]} == {LONG_ANSWER, "A white rabbit."}
    assert isinstance(app.respond(ALICE), Deferred)
    # A commit seen makes a new snapshot: it still knows.
    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps({"key": "bob", "answer": "B."}) + "\n", encoding="utf-8")
    add_documents(more, tmp_path / "index")
    assert app.index.refresh() is True
    assert isinstance(app.respond(ALICE), Deferred)


def test_invalid_action() -> None:
    reply = SearchApp().respond(json_message({"action": "delete", "value": "ring"}))
    assert result(reply) == {"result": "Error: invalid action 'delete'.", "error": "invalid_action"}
    assert reply.error == "invalid_action"


def test_binary_request_echoes_its_first_10_bytes() -> None:
    request = Message(b"searchmorpheus", "binary/custom-client-binary-type", "binary")
    reply = SearchApp().respond(request)
    assert reply.message == Message(
        b"First 10 bytes of request: searchmorp", "binary/custom-server-binary-type", "binary"
    )
    assert reply.error is None


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", ""])
def test_any_other_content_type_is_answered_as_binary(content_type: str) -> None:
    reply = SearchApp().respond(Message(b"abc", content_type, "utf-8"))
    assert reply.message == Message(
        b"First 10 bytes of request: abc", "binary/custom-server-binary-type", "binary"
    )


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "latin-1", "utf-8-sig"])
def test_request_in_another_text_encoding(encoding: str) -> None:
    request = json_message({"action": "search", "value": "morpheus"}, encoding)
    assert result(SearchApp().respond(request)) == {"result": BUILTIN_INDEX["morpheus"]}


def test_utf16_request_for_a_non_ascii_key() -> None:
    request = json_message({"action": "search", "value": "\U0001f436"}, "utf-16")
    assert result(SearchApp().respond(request)) == {"result": BUILTIN_INDEX["\U0001f436"]}


def test_stats_action_reports_the_counters() -> None:
    app = SearchApp(stats=lambda: {"requests": 3, "connections_open": 1})
    reply = app.respond(json_message({"action": "stats"}))
    counters = result(reply)["result"]
    assert counters["requests"] == 3
    assert counters["connections_open"] == 1
    # The index's figures come with the server's.
    assert counters["index_documents"] == 3
    assert counters["index_generation"] == 1
    assert reply.error is None


def test_stats_action_without_counters_is_an_invalid_action() -> None:
    reply = SearchApp().respond(json_message({"action": "stats"}))
    assert reply.error == "invalid_action"


def test_search_value_with_a_lone_surrogate_gets_a_valid_utf8_answer() -> None:
    # Only escaped JSON can carry a lone surrogate: "\ud800" is not UTF-8.
    request = json_message({"action": "search", "value": "\ud800"}, ensure_ascii=True)
    reply = SearchApp().respond(request)
    text = reply.message.content.decode("utf-8")  # strict: raises if not UTF-8
    assert json.loads(text) == {"result": "No match for '\ud800'."}
    encode_message(reply.message)


def test_invalid_action_with_a_lone_surrogate_gets_a_valid_utf8_answer() -> None:
    request = json_message({"action": "\udfff"}, ensure_ascii=True)
    assert result(SearchApp().respond(request))["result"] == "Error: invalid action '\udfff'."


CONTENT_ERRORS = {
    "invalid-json": (b'{"action": "search", ', "utf-8", "invalid_json"),
    "empty-content": (b"", "utf-8", "invalid_json"),
    "number-too-long-for-int": (b'{"action": ' + b"9" * 5000 + b"}", "utf-8", "invalid_json"),
    "not-utf8": (b'{"action": "search", "value": "\xff"}', "utf-8", "bad_encoding"),
    "odd-length-utf16": (b'{"a', "utf-16-le", "bad_encoding"),
    "not-a-codec": (b"{}", "no-such-codec", "unknown_encoding"),
    "rot13": (b'{"action": "search"}', "rot13", "unknown_encoding"),
    "base64": (b"e30=", "base64", "unknown_encoding"),
    "punycode-too-slow-to-decode": (b"-" + b"a" * 1000, "punycode", "unknown_encoding"),
    "binary-on-text-json": (b"{}", "binary", "unknown_encoding"),
    "nul-in-codec-name": (b"{}", "utf-8\x00", "unknown_encoding"),
    "surrogate-in-codec-name": (b"{}", "utf-\ud800", "unknown_encoding"),
    "array": (b"[]", "utf-8", "not_an_object"),
    "string": (b'"search"', "utf-8", "not_an_object"),
    "null": (b"null", "utf-8", "not_an_object"),
    "no-action": (b'{"value": "ring"}', "utf-8", "missing_action"),
    "no-value": (b'{"action": "search"}', "utf-8", "bad_value"),
    "number-value": (b'{"action": "search", "value": 1}', "utf-8", "bad_value"),
    "null-value": (b'{"action": "search", "value": null}', "utf-8", "bad_value"),
    "list-value": (b'{"action": "search", "value": ["ring"]}', "utf-8", "bad_value"),
    "deep-array": (b"[" * 100_000 + b"]" * 100_000, "utf-8", "too_deep"),
    "deep-value": (
        b'{"action": "search", "value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "utf-8",
        "too_deep",
    ),
    "unclosed-brackets": (b"[" * 100_000, "utf-8", "too_deep"),
}


@pytest.mark.parametrize(
    ("content", "encoding", "code"), list(CONTENT_ERRORS.values()), ids=list(CONTENT_ERRORS)
)
def test_bad_content_gets_an_error_result_and_code(
    content: bytes, encoding: str, code: str
) -> None:
    reply = complete(SearchApp().respond(Message(content, "text/json", encoding)))
    answer = result(reply)
    assert answer["error"] == code
    assert answer["result"].startswith("Error: ")
    assert reply.error == code


def test_a_huge_invalid_action_is_quoted_as_a_short_marked_excerpt() -> None:
    # A 1 MB action used to be echoed whole (a 4 MB answer once JSON-escaped).
    reply = complete(SearchApp().respond(json_message({"action": "\u00e9" * 1_000_000})))
    answer = result(reply)
    assert answer["error"] == "invalid_action"
    assert answer["result"] == (
        "Error: invalid action '" + "\u00e9" * 64 + "... (1000000 characters)'."
    )
    assert len(reply.wire) < 1024


def test_a_short_invalid_action_is_quoted_whole_as_the_tutorial_does() -> None:
    answer = result(SearchApp().respond(json_message({"action": "delete"})))
    assert answer == {"result": "Error: invalid action 'delete'.", "error": "invalid_action"}


def test_an_index_deleted_and_built_again_is_not_answered_from_kept_replies(
    tmp_path: Path,
) -> None:
    # What the server's poll does when an operator runs `rm -rf idx` and then
    # `trio-search-index build ... --index idx`: it sees the directory gone
    # (refresh fails), then a new index in its place, whose generation counts
    # from the start again and so can equal the old one's.
    data = tmp_path / "data.jsonl"
    data.write_text('{"key": "k", "answer": "old"}\n', encoding="utf-8")
    index_dir = tmp_path / "idx"
    build_index(data, index_dir)
    app = SearchApp(SearchIndex.open(index_dir))
    assert search("k", app) == {"result": "old"}  # the reply is now kept
    generation = app.index.generation
    shutil.rmtree(index_dir)
    with pytest.raises(TrioSearchError) as gone:
        app.index.refresh()
    # One readable line for the server's log, not the engine's lock error.
    assert str(gone.value) == "the index is gone (no directory, or no meta.json in it)"
    assert not app.index.refresh()  # said once: nothing new since
    data.write_text('{"key": "k", "answer": "new"}\n', encoding="utf-8")
    build_index(data, index_dir)
    assert app.index.refresh()
    assert app.index.generation == generation
    assert search("k", app) == {"result": "new"}
