"""The server's Prometheus metrics, embedded and from the command."""

from __future__ import annotations

import re

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import json_request, read_messages, server_subprocess, start_server
from trio_search import SearchServer, ServerSettings, open_client
from trio_search._metrics import Metrics

SCRAPE = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
METRICS_AT = re.compile(
    rb"serving metrics (?:of all workers )?at http://127\.0\.0\.1:(\d+)/metrics"
)


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


async def test_an_embedded_server_counts_what_happens(nursery: trio.Nursery) -> None:
    server = SearchServer(ServerSettings(port=0), metrics=Metrics())
    _, (host, port) = await start_server(nursery, server)
    with trio.fail_after(10):
        async with open_client(host, port) as client:
            await client.search("morpheus")
            await client.query("rabit")
            await client.request_json({"action": "nope"})
        async with await trio.open_tcp_stream(host, port) as stream:
            await stream.send_all(json_request([]))
            await read_messages(stream, 1)
    values = samples(server.metrics_exposition())
    assert values[("trio_search_requests_total", (("action", "search"),))] == 1
    assert values[("trio_search_requests_total", (("action", "query"),))] == 1
    assert values[("trio_search_requests_total", (("action", "other"),))] == 2
    assert values[("trio_search_errors_total", (("code", "invalid_action"),))] == 1
    assert values[("trio_search_errors_total", (("code", "not_an_object"),))] == 1
    assert values[("trio_search_connections_accepted_total", ())] == 2
    assert values[("trio_search_request_duration_seconds_count", ())] == 4
    assert values[("trio_search_received_bytes_total", ())] > 0
    assert values[("trio_search_sent_bytes_total", ())] > 0
    assert values[("trio_search_index_documents", ())] == 3


def test_a_server_without_metrics_says_so() -> None:
    with pytest.raises(RuntimeError, match="no metrics"):
        SearchServer().metrics_exposition()


@pytest.mark.slow
async def test_one_scrape_and_stats_give_the_totals_of_all_workers() -> None:
    async with server_subprocess("--workers", "2", "--metrics", "127.0.0.1:0") as server:
        with trio.fail_after(60):
            (match,) = await server.wait_for(METRICS_AT)
            metrics_port = int(match[1])
            for _ in range(10):  # spread by the kernel over both workers
                async with open_client("127.0.0.1", server.port) as client:
                    await client.search("ring")
            await trio.sleep(2.5)  # workers write their counters every second
            async with await trio.open_tcp_stream("127.0.0.1", metrics_port) as http:
                await http.send_all(
                    b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                response = b""
                while chunk := await http.receive_some(65536):
                    response += chunk
            async with open_client("127.0.0.1", server.port) as client:
                stats = (await client.request_json({"action": "stats"}))["result"]
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    values = samples(body)
    assert values[("trio_search_requests_total", (("action", "search"),))] == 10
    assert values[("trio_search_connections_accepted_total", ())] >= 10
    assert stats["all_workers"]["requests"] >= 10
