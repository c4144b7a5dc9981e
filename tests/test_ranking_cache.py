"""The rankings of costly queries are kept per snapshot of the index: the
same query again is answered alike, at once, and never from changed data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import tantivy
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import trio_search._engine
from tests.helpers import collector_work, start_server
from tests.test_engine import FILMS, VOCABULARY, big_data, index_of, write_documents
from tests.test_metrics import parse, value
from trio_search import (
    Deferred,
    Reply,
    SearchApp,
    SearchIndex,
    SearchServer,
    ServerSettings,
    documents_from_mapping,
    open_client,
)
from trio_search._engine import CHEAP_QUERY_POSTINGS
from trio_search._limits import INLINE_QUERY_MAX_HITS
from trio_search._metrics import Metrics
from trio_search._protocol import Message
from trio_search._query import QueryOptions
from trio_search._ranking_cache import Ranking, RankingCache


def hits(index: SearchIndex, text: str, **options: object) -> list[tuple[str, float, str]]:
    result = index.query(text, QueryOptions(**options))  # type: ignore[arg-type]
    return [(hit.key, hit.score, hit.highlight) for hit in result.hits] + [
        ("total", result.total, "")
    ]


def test_a_typo_query_is_kept_and_answered_alike() -> None:
    index = index_of(FILMS)
    first = hits(index, "rabit")  # a typo: the second pass runs
    assert index.ranking_cache_counts.stored == 1
    assert index.ranking_cache_counts.hits == 0
    assert hits(index, "rabit") == first
    assert index.ranking_cache_counts.hits == 1
    assert first[0][0] in {"morpheus", "alice"}


def test_cheap_queries_are_not_kept() -> None:
    index = index_of(FILMS)
    hits(index, "rabbit ", typos=False)  # whole words, few postings
    hits(index, "rabbit ", typos=False)
    assert index.ranking_cache_counts.stored == 0
    assert index.ranking_cache_counts.hits == 0


def test_a_query_matching_many_documents_is_kept() -> None:
    data = {f"doc{n}": f"common word{n % 7}" for n in range(CHEAP_QUERY_POSTINGS + 100)}
    index = index_of(data)
    first = hits(index, "common ", typos=False)
    assert first[-1] == ("total", CHEAP_QUERY_POSTINGS + 100, "")
    assert index.ranking_cache_counts.stored == 1
    assert hits(index, "common ", typos=False) == first
    assert index.ranking_cache_counts.hits == 1


def test_every_option_that_changes_the_ranking_is_told_apart() -> None:
    index = index_of(FILMS)
    plain = hits(index, "rabit", limit=1)
    two = hits(index, "rabit", limit=2)
    assert two[:1] == plain[:1]
    assert hits(index, "rabit", typos=False) == [("total", 0, "")]
    assert hits(index, "Rabit", limit=1) == plain
    assert index.ranking_cache_counts.hits == 0
    # The second page of one is the ranking of two, kept.
    assert hits(index, "rabit", limit=1, offset=1) == two[1:]
    assert index.ranking_cache_counts.hits == 1


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(st.sampled_from([*VOCABULARY, "rabit", "morph", "whte", "cav"]), max_size=3),
    typos=st.booleans(),
    prefix=st.booleans(),
    limit=st.integers(1, 5),
    offset=st.integers(0, 3),
)
def test_kept_rankings_answer_as_the_engine_does(
    words: list[str], typos: bool, prefix: bool, limit: int, offset: int
) -> None:
    text = " ".join(words)
    options = dict(typos=typos, prefix=prefix, limit=limit, offset=offset)
    expected = hits(UNCACHED, text, **options)
    assert hits(CACHED, text, **options) == expected
    assert hits(CACHED, text, **options) == expected  # from the cache, if kept


CACHED = index_of(FILMS)
UNCACHED = index_of(FILMS, ranking_cache_hits=0)


#: Documents enough for the words in all of them to be costly: every one
#: holds "common", "every" and "other", and a few rarer words; two keys
#: are also queries.
MANY_POSTINGS = {
    f"doc{n}": f"common every other {('alpha', 'beta', 'gamma')[n % 3]} word{n % 7}"
    for n in range(CHEAP_QUERY_POSTINGS + 100)
} | {"other common": "the key typed as a query", "beta common": "another key"}
MANY_CACHED = index_of(MANY_POSTINGS)
MANY_UNCACHED = index_of(MANY_POSTINGS, ranking_cache_hits=0)


def test_the_same_words_in_another_order_share_a_kept_ranking() -> None:
    index = index_of(MANY_POSTINGS)
    first = hits(index, "common every")
    assert first[-1] == ("total", CHEAP_QUERY_POSTINGS + 100, "")
    assert index.ranking_cache_counts.stored == 1
    # Another order, another case, other options: the words as typed fill
    # the page, so their ranking answers.
    for text, options in [("every common", {}), ("EVERY  Common ", {"typos": False})]:
        answer = hits(index, text, **options)
        assert answer == hits(MANY_UNCACHED, text, **options)
        assert [key for key, _, _ in answer] == [key for key, _, _ in first]
    assert (index.ranking_cache_counts.hits, index.ranking_cache_counts.stored) == (2, 1)
    # Not for another page depth, nor other fields.
    hits(index, "every common", limit=5)
    hits(index, "every common", fields=sorted(index.meta.fields))
    assert index.ranking_cache_counts.hits == 2


def test_a_query_that_is_a_key_is_not_answered_from_another_order() -> None:
    index = index_of(MANY_POSTINGS)
    hits(index, "common other")
    assert index.ranking_cache_counts.stored == 1
    answer = hits(index, "other common")
    assert answer[0][0] == "other common"  # the key match ranks first
    assert answer == hits(MANY_UNCACHED, "other common")
    assert index.ranking_cache_counts.hits == 0


def test_words_that_leave_the_page_short_keep_their_ranking_to_their_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A first pass that does not fill the page answers only the same
    options: with typos allowed, a second pass finds more."""
    monkeypatch.setattr(trio_search._engine, "CHEAP_QUERY_POSTINGS", 0)  # all costly
    data = {"a": "bright idea", "b": "bright ideas", "c": "brigth idea"}
    index = index_of(data)
    exact = hits(index, "bright idea", typos=False, prefix=False)
    assert [key for key, _, _ in exact] == ["a", "total"]
    assert index.ranking_cache_counts.stored == 1
    answer = hits(index, "idea bright")
    assert answer == hits(index_of(data, ranking_cache_hits=0), "idea bright")
    assert sorted(key for key, _, _ in answer) == ["a", "c", "total"]


@settings(max_examples=80, deadline=None)
@given(
    words=st.lists(
        st.sampled_from(["common", "every", "other", "beta", "word3", "comon", "othe", "gam"]),
        min_size=1,
        max_size=3,
    ),
    order=st.randoms(use_true_random=False),
    typos=st.booleans(),
    prefix=st.booleans(),
    limit=st.integers(1, 5),
    offset=st.integers(0, 3),
)
def test_kept_rankings_answer_any_order_as_the_engine_does(
    words: list[str], order: random.Random, typos: bool, prefix: bool, limit: int, offset: int
) -> None:
    options = dict(typos=typos, prefix=prefix, limit=limit, offset=offset)
    shuffled = words[:]
    order.shuffle(shuffled)
    for text in (" ".join(words), " ".join(shuffled)):
        assert hits(MANY_CACHED, text, **options) == hits(MANY_UNCACHED, text, **options)


def test_a_commit_seen_empties_the_cache(tmp_path: Path) -> None:
    write_documents(tmp_path, documents_from_mapping({"ring": FILMS["ring"]}), new=True)
    index = SearchIndex.open(tmp_path)
    assert hits(index, "rabit") == [("total", 0, "")]
    assert hits(index, "rabit") == [("total", 0, "")]
    assert index.ranking_cache_counts.hits == 1
    more = {"morpheus": FILMS["morpheus"]}
    write_documents(tmp_path, documents_from_mapping(more), new=False)
    assert index.refresh() is True
    # The kept "no match" is not served: the data changed.
    assert [key for key, _, _ in hits(index, "rabit")] == ["morpheus", "total"]
    assert index.ranking_cache_counts.hits == 1


def test_an_index_without_a_cache_keeps_nothing() -> None:
    index = index_of(FILMS, ranking_cache_hits=0)
    assert hits(index, "rabit") == hits(index, "rabit")
    assert index.ranking_cache_counts.stored == 0
    options = QueryOptions()
    assert not index.has_ranking("rabit", index.words("rabit", options), options)


def test_the_app_answers_a_kept_ranking_on_the_event_loop() -> None:
    app = SearchApp(index_of(big_data()))
    request = Message(
        json.dumps({"action": "query", "value": "rabit", "limit": 3}).encode(),
        "text/json",
        "utf-8",
    )
    first = app.respond(request)
    assert isinstance(first, Deferred)  # a big index, a typo: a worker thread
    answer = first.finish(first.work())
    assert isinstance(answer, Reply)
    again = app.respond(request)
    assert isinstance(again, Reply)  # kept: no thread
    assert again.wire == answer.wire
    # A large page of a kept ranking is still read in a worker thread.
    big_page = {"action": "query", "value": "rabit", "limit": INLINE_QUERY_MAX_HITS + 1}
    big = Message(json.dumps(big_page).encode(), "text/json", "utf-8")
    first_big = app.respond(big)
    assert isinstance(first_big, Deferred)
    first_big.finish(first_big.work())
    assert isinstance(app.respond(big), Deferred)
    stats = app._index_stats()
    assert (stats["query_cache_hits"], stats["query_cache_stored"]) == (
        1,
        2,
    )  # and the big page's ranking


# --- The cache itself --------------------------------------------------------


def ranking(size: int) -> Ranking:
    return Ranking(((1.0, None),) * size, size)  # type: ignore[arg-type]


def test_a_full_cache_drops_its_cheaper_rankings_first() -> None:
    cache = RankingCache(capacity=30)
    cache.put("costly", ranking(10), cost=0.020)
    cache.put("cheap", ranking(10), cost=0.001)
    cache.put("middling", ranking(10), cost=0.002)
    assert len(cache) == 3
    cache.put("new", ranking(10), cost=0.001)  # 40 > 30: room made first
    assert sorted(cache._kept) == ["costly", "new"]
    assert cache.get("cheap") is None
    assert cache.get("costly") == ranking(10)
    assert (cache.counts.hits, cache.counts.stored) == (1, 4)


def test_a_costly_ranking_nobody_asks_for_again_goes_in_time() -> None:
    cache = RankingCache(capacity=20)
    cache.put("costly", ranking(10), cost=0.016)
    cheap = 0
    while "costly" in cache:
        # Each cheap ranking past the second makes room: the costly one's
        # credit halves each time it stays (16, 8, 4, 2 ms, then 1, the
        # median: gone).
        cache.put(f"cheap{cheap}", ranking(10), cost=0.001)
        cheap += 1
    assert cheap == 6


def test_a_ranking_asked_for_again_gets_its_credit_back() -> None:
    cache = RankingCache(capacity=20)
    cache.put("costly", ranking(10), cost=0.004)
    for number in range(50):
        cache.put(f"cheap{number}", ranking(10), cost=0.001)
        assert cache.get("costly") is not None


def test_rankings_alike_in_cost_are_all_dropped_to_make_room() -> None:
    cache = RankingCache(capacity=25)
    cache.put("a", ranking(10), cost=0.001)
    cache.put("b", ranking(10), cost=0.001)
    cache.put("c", ranking(10), cost=0.001)  # 30 > 25: a and b at the median
    assert sorted(cache._kept) == ["c"]


def test_the_garbage_collector_does_not_walk_the_rankings_kept() -> None:
    """A full collection costs the same with 10 rankings kept as with 200:
    the cache holds them in tuples the collector stops walking."""

    def filled(count: int) -> RankingCache:
        cache = RankingCache(capacity=10_000)
        for number in range(count):
            hits = tuple((float(at), tantivy.DocAddress(0, at)) for at in range(10))
            cache.put(("words", str(number)), Ranking(hits, 10, (0, 10)), cost=0.001)
        return cache

    few, many = filled(10), filled(200)
    assert collector_work(many) == collector_work(few)
    assert many.get(("words", "7")) == Ranking(
        tuple((float(at), tantivy.DocAddress(0, at)) for at in range(10)), 10, (0, 10)
    )


def test_a_ranking_bigger_than_the_cache_is_not_kept() -> None:
    cache = RankingCache(capacity=5)
    cache.put("a", ranking(3), cost=0.001)
    cache.put("big", ranking(6), cost=0.001)
    assert "a" in cache and "big" not in cache
    nothing = RankingCache(capacity=0)
    nothing.put("empty", ranking(0), cost=0.001)
    assert len(nothing) == 0


@pytest.mark.parametrize("size", [0, 1])
def test_fresh_caches_share_the_counts(size: int) -> None:
    cache = RankingCache(capacity=10)
    cache.put("a", ranking(size), cost=0.001)
    cache.get("a")
    fresh = cache.fresh()
    assert "a" not in fresh
    fresh.put("a", ranking(size), cost=0.001)
    assert fresh.counts is cache.counts
    assert (fresh.counts.hits, fresh.counts.stored) == (1, 2)


# --- Served: stats and metrics -----------------------------------------------


async def test_served_counts_survive_a_reload(nursery: trio.Nursery) -> None:
    """``stats`` and the Prometheus counters count the query cache over the
    server's life: a reload starts an empty cache, not new counters."""
    metrics = Metrics()
    server = SearchServer(
        ServerSettings(port=0),
        index=index_of(FILMS),
        loader=lambda: index_of(FILMS),
        metrics=metrics,
    )
    _, (host, port) = await start_server(nursery, server)
    async with open_client(host, port) as client:
        first = await client.query("rabit")
        assert await client.query("rabit") == first
        assert await server.reload_index()
        assert await client.query("rabit") == first  # computed anew, then kept
        assert await client.query("rabit") == first
        stats = (await client.request_json({"action": "stats"}))["result"]
    assert (stats["query_cache_hits"], stats["query_cache_stored"]) == (2, 2)
    samples = parse(server.metrics_exposition())
    assert value(samples, "trio_search_query_cache_hits_total") == 2
    assert value(samples, "trio_search_query_cache_stored_total") == 2


def test_metrics_add_a_new_count_whole() -> None:
    metrics = Metrics()
    metrics.query_cache_counted(5, 3)
    metrics.query_cache_counted(7, 3)
    metrics.query_cache_counted(2, 1)  # another index, counting from zero
    samples = parse(metrics.exposition())
    assert value(samples, "trio_search_query_cache_hits_total") == 9
    assert value(samples, "trio_search_query_cache_stored_total") == 4
