"""docs/embedding.md's own-application example, run against a real socket."""

from __future__ import annotations

import hashlib

import trio

import trio_search
from tests.helpers import start_server
from trio_search import Deferred, Message, Reply, RequestError, SearchApp, json_response


class HashingApp:
    """Answers {"action": "sha256", "value": TEXT}; everything else is search.

    (The example of docs/embedding.md, verbatim.)
    """

    def __init__(self) -> None:
        self.search = SearchApp()

    def respond(self, request: Message) -> Reply | Deferred:
        try:
            body = trio_search.decode_json(request.content, request.content_encoding)
        except RequestError:
            body = None  # not JSON: the search app answers (or reports) it
        if isinstance(body, dict) and body.get("action") == "sha256":
            text = str(body.get("value", ""))
            return Deferred(  # hashing may be slow: a worker thread does it
                lambda: hashlib.sha256(text.encode()).hexdigest(),
                lambda digest: Reply(json_response({"result": digest})),
            )
        return self.search.respond(request)


def request(obj: object) -> Message:
    return Message(trio_search.encode_json(obj), "text/json", "utf-8")


async def test_an_application_of_ones_own_answers_in_order(nursery: trio.Nursery) -> None:
    server = trio_search.SearchServer(trio_search.ServerSettings(port=0), app=HashingApp())
    _, (host, port) = await start_server(nursery, server)
    async with trio_search.open_client(host, port) as client:
        # Pipelined: the deferred answers keep their places among the inline ones.
        replies = await client.request_many(
            [
                request({"action": "sha256", "value": "a"}),
                request({"action": "search", "value": "ring"}),
                request({"action": "sha256", "value": "b"}),
                request({"action": "query", "value": "rabit"}),
            ]
        )
        results = [trio_search.decode_json(r.content, "utf-8")["result"] for r in replies]
    assert results[0] == hashlib.sha256(b"a").hexdigest()
    assert results[1] == "In the caves beneath the Misty Mountains. \U0001f48d"
    assert results[2] == hashlib.sha256(b"b").hexdigest()
    assert [hit["key"] for hit in results[3]] == ["morpheus"]
    assert server.search_index is None  # the server serves our app, not its own
