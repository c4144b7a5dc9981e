"""Warnings about one client are rate-limited; its counters are not (issue 8, item 4)."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from tests.helpers import json_request, read_messages, result_of
from tests.test_shutdown import start
from trio_search._log_limit import WARNINGS_PER_INTERVAL, PeerWarnings, address_of


@pytest.mark.parametrize(
    ("peer", "address"),
    [("127.0.0.1:5000", "127.0.0.1"), ("[::1]:5000", "[::1]"), ("?", "?")],
)
def test_the_address_is_the_peer_without_its_port(peer: str, address: str) -> None:
    assert address_of(peer) == address


async def test_a_client_pipelining_bad_requests_writes_a_few_lines_then_a_summary(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_search")
    server, listener, _ = await start(nursery, idle_timeout=600)
    client = listener.connect()
    await client.send_all(json_request([]) * 1000)
    replies = await read_messages(client, 1000)
    assert all(result_of(reply)["error"] == "not_an_object" for reply in replies)
    # Every event is counted...
    assert server.stats.errors["not_an_object"] == 1000
    refused = [r for r in caplog.records if "request refused" in r.getMessage()]
    # ... but the log has only the first few, then one summary per interval.
    assert len(refused) == WARNINGS_PER_INTERVAL
    await trio.sleep(11)
    summaries = [r.getMessage() for r in caplog.records if "not logged" in r.getMessage()]
    assert summaries == [
        f"?: {1000 - WARNINGS_PER_INTERVAL} more line(s) like the above not logged in the last 10 s"
    ]
    # A new interval: the client's next bad request is logged again.
    await client.send_all(json_request([]))
    await read_messages(client, 1)
    refused = [r for r in caplog.records if "request refused" in r.getMessage()]
    assert len(refused) == WARNINGS_PER_INTERVAL + 1


def collecting_logger(name: str, level: int = logging.NOTSET) -> list[logging.LogRecord]:
    """Records logged by logger ``name`` (at ``level`` and above), kept in a list."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(name)
    logger.addHandler(Collect())
    logger.propagate = False
    logger.setLevel(level)
    return records


def test_each_address_has_its_own_share() -> None:
    records = collecting_logger("test_log_limit")
    warnings = PeerWarnings(logging.getLogger("test_log_limit"), lambda: 0.0)
    for _ in range(20):
        warnings.warning("127.0.0.2:1", "bad %s", "thing")
        warnings.warning("127.0.0.3:2", "bad %s", "thing")
    lines = [record.getMessage() for record in records]
    assert lines.count("127.0.0.2:1: bad thing") == WARNINGS_PER_INTERVAL
    assert lines.count("127.0.0.3:2: bad thing") == WARNINGS_PER_INTERVAL
    warnings.flush()
    assert [record.getMessage() for record in records[-2:]] == [
        "127.0.0.2: 15 more line(s) like the above not logged in the last 10 s",
        "127.0.0.3: 15 more line(s) like the above not logged in the last 10 s",
    ]


def test_lines_below_the_log_level_are_neither_counted_nor_summarized() -> None:
    # As --log-level WARNING sets it.
    records = collecting_logger("test_log_limit.level", logging.WARNING)
    warnings = PeerWarnings(logging.getLogger("test_log_limit.level"), lambda: 0.0)
    for _ in range(20):
        warnings.info("127.0.0.2:1", "connection reset")
    warnings.flush()
    assert records == []  # no WARNING summary of INFO lines nobody saw
    # The warnings still have their share, then a summary at WARNING.
    for _ in range(WARNINGS_PER_INTERVAL + 3):
        warnings.warning("127.0.0.2:1", "bad request")
    warnings.flush()
    assert [r.levelno for r in records] == [logging.WARNING] * (WARNINGS_PER_INTERVAL + 1)
    assert records[-1].getMessage() == (
        "127.0.0.2: 3 more line(s) like the above not logged in the last 10 s"
    )


def test_a_summary_of_info_lines_is_at_info() -> None:
    records = collecting_logger("test_log_limit.info", logging.INFO)
    warnings = PeerWarnings(logging.getLogger("test_log_limit.info"), lambda: 0.0)
    for _ in range(WARNINGS_PER_INTERVAL + 2):
        warnings.info("127.0.0.2:1", "connection reset")
    warnings.flush()
    assert records[-1].levelno == logging.INFO
    assert "2 more line(s)" in records[-1].getMessage()
