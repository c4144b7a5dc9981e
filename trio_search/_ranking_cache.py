"""Rankings of costly queries, kept for one snapshot of an index.

Theory of operation
-------------------

Ranking a query whose words are in most documents is tantivy scoring every
one of them: on 1,000,000 generated documents, 10-30 ms for a word in nine
documents of ten, against well under a millisecond for most queries. Search
traffic repeats its frequent queries (query logs are Zipf-distributed, as
words are), so the ranking of such a query (the documents' addresses and
scores, and the total) is kept, and the same query again costs a dictionary
lookup plus fetching and highlighting its page of documents, as Solr's
``queryResultCache`` does. A ranking that the words as typed make alone
(they fill the page, so no second pass runs) is kept by those words, in
any order (see ``_words_key`` in :mod:`trio_search._engine`).

Only *costly* rankings are kept (the engine says which: many matches, or a
second pass over typos and completions), so the cache holds what is worth
it and cheap queries pass through untouched.

The cache belongs to one snapshot of the index: a commit seen, a reload or
a rebuilt index makes a new snapshot with an empty cache, so no ranking is
ever served from data that has since changed.

It is bounded by the hits it holds (``RANKING_CACHE_HITS``), so it cannot
grow with what clients send. A full cache makes room by cost, as
GreedyDual caches do: each ranking holds a credit, the CPU time it took to
compute, given back whenever it is asked for again; the rankings whose
credit is at or below the median go, and the others' credit is halved. So
a ranking that took 20 ms outlives many that took 1 ms, yet not forever if
nobody asks for it again, and the cache cannot stay filled with what
clients sent first. Emptying it whole instead dropped the costliest
rankings with the rest: on the benchmark's million documents, with its
default size, that computed 326 rankings of more than 100,000 matches in
the open loop's 32,000 queries, against 198 now, as many as an unbounded
cache would. It is safe to use from several threads at once.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import NamedTuple

import attrs
import tantivy

#: Hits (a score and a document address, about 100 bytes each) kept per
#: snapshot, in all rankings together: about 10 MB. A first page of 10 hits
#: makes 10,000 rankings; a query deep in its results takes more room.
RANKING_CACHE_HITS = 100_000


class Ranking(NamedTuple):
    """A query's result before its documents are read: the ``(score,
    address)`` of its best hits, best first, and how many documents match;
    and which of the hits (from, to) were found holding every word as
    typed, so that their highlights mark only those words."""

    #: A tuple, as every part: a kept ranking drops out of the garbage
    #: collector's sight after its first pass (see :class:`RankingCache`).
    hits: tuple[tuple[float, tantivy.DocAddress], ...]
    total: int
    as_typed: tuple[int, int] = (0, 0)


_Kept = tuple[tuple[tuple[float, tantivy.DocAddress], ...], int, tuple[int, int], float]


@attrs.define(eq=False)
class CacheCounts:
    """How a ranking cache served, totalled over every snapshot of an index."""

    #: Queries answered from a kept ranking.
    hits: int = 0
    #: Costly rankings computed and kept.
    stored: int = 0
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)

    def count_hit(self) -> None:
        with self._lock:
            self.hits += 1

    def count_stored(self) -> None:
        with self._lock:
            self.stored += 1


@attrs.define(eq=False)
class RankingCache:
    """Costly queries' rankings for one snapshot, by the query and its options.

    Args:
        counts: Where hits and stored rankings are counted (shared by the
            caches of an index's successive snapshots).
        capacity: Hits held at most, all rankings together; 0 keeps none.
    """

    counts: CacheCounts = attrs.field(factory=CacheCounts)
    capacity: int = RANKING_CACHE_HITS
    #: The rankings kept (as plain tuples: ``Ranking``'s fields, then the
    #: CPU seconds it took to compute). A plain tuple of numbers, strings
    #: and document addresses drops out of the garbage collector's sight
    #: after its first passes; a ``Ranking``, a subclass, never does, nor
    #: does what holds it (on the million generated documents, after
    #: 20,000 of the open loop's queries, a full collection took 35 ms with
    #: 10,000 rankings in the collector's sight, 4-5 ms without).
    _kept: dict[Hashable, _Kept] = attrs.field(factory=dict, init=False)
    #: What each ranking still counts for when room is made: its cost,
    #: halved at each making of room it survives, given back when asked for.
    _credits: dict[Hashable, float] = attrs.field(factory=dict, init=False)
    _held: int = attrs.field(default=0, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def get(self, key: Hashable) -> Ranking | None:
        """The ranking kept for ``key``, counted as a hit, or ``None``."""
        kept = self._kept.get(key)
        if kept is None:
            return None
        hits, total, as_typed, cost = kept
        with self._lock:
            if key in self._credits:  # (not dropped meanwhile)
                self._credits[key] = cost
        self.counts.count_hit()
        return Ranking(hits, total, as_typed)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._kept

    def put(self, key: Hashable, ranking: Ranking, cost: float) -> None:
        """Keep ``ranking``, which took ``cost`` CPU seconds to compute,
        making room first if the cache would hold too many hits."""
        size = _size(ranking.hits)
        if size > self.capacity:
            return
        with self._lock:
            if key in self._kept:
                return
            if self._held + size > self.capacity:
                self._make_room(size)
            self._kept[key] = (ranking.hits, ranking.total, ranking.as_typed, cost)
            self._credits[key] = cost
            self._held += size
        self.counts.count_stored()

    def _make_room(self, size: int) -> None:
        """Drop the rankings whose credit is at or below the median, halve
        the others' credit; empty the cache if that leaves too little room."""
        credits = sorted(self._credits.values())
        median = credits[(len(credits) - 1) // 2]  # the lower one, of two
        kept: dict[Hashable, float] = {}
        for key, credit in self._credits.items():
            if credit > median:
                kept[key] = credit / 2
            else:
                self._held -= _size(self._kept.pop(key)[0])
        self._credits = kept
        if self._held + size > self.capacity:
            self._kept.clear()
            self._credits.clear()
            self._held = 0

    def __len__(self) -> int:
        return len(self._kept)

    def fresh(self) -> RankingCache:
        """An empty cache for the next snapshot, counting into the same totals."""
        return RankingCache(self.counts, self.capacity)


def _size(hits: tuple[tuple[float, tantivy.DocAddress], ...]) -> int:
    """What a ranking of ``hits`` counts for against the capacity: its
    hits, at least 1."""
    return max(1, len(hits))
