"""The two engines measured in-process, behind one small interface.

- :class:`TrioSearchEngine`: trio_search's ``SearchIndex`` opened on the
  directory ``trio-search-index build`` wrote, queried with the defaults a
  ``query`` request gets (typos and prefix on).
- :class:`Fts5Engine`: the SQLite FTS5 peer's index (benchmarks/peers/
  sqlite_fts5.py), opened on the database file its ``--build`` wrote.

Both answer :meth:`query` with the ranked keys and scores (what the load
generator's sampled replies are checked against) and the total, and
:meth:`exact` with the keys of the documents holding one word exactly,
without typo tolerance or prefix (the reference for typo recall).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "peers"))

from sqlite_fts5 import Fts5Index  # noqa: E402

#: Hits asked for per query.
LIMIT = 10


class Engine(Protocol):
    name: str

    def query(self, value: str, limit: int = LIMIT) -> tuple[list[tuple[str, float]], int]:
        """(key, score) of the best ``limit`` hits, best first; and the total."""
        ...

    def exact(self, word: str, limit: int = LIMIT) -> list[str]:
        """Keys of the best hits for ``word`` matched exactly."""
        ...

    def lookup(self, key: str) -> str | None:
        """The answer stored under ``key`` (an exact ``search``)."""
        ...


class TrioSearchEngine:
    """trio_search's engine, in this process."""

    name = "trio_search"

    def __init__(
        self, index_dir: Path | None, data: Path | None = None, *, query_cache: bool = False
    ) -> None:
        """Open the index in ``index_dir``, or index the file ``data`` in
        memory as the server's ``--data`` does; with ``query_cache``, keep
        costly queries' rankings as the server does by default."""
        from trio_search._engine import SearchIndex
        from trio_search._index import index_of_file
        from trio_search._query import QueryOptions
        from trio_search._ranking_cache import RANKING_CACHE_HITS

        # No query cache unless asked: the closed-loop floors replay their
        # lists (see bench.NO_QUERY_CACHE).
        hits = RANKING_CACHE_HITS if query_cache else 0
        if index_dir is not None:
            self._index = SearchIndex.open(index_dir, ranking_cache_hits=hits)
        else:
            assert data is not None
            self._index = index_of_file(data, ranking_cache_hits=hits)
        self._options = QueryOptions
        self._defaults = QueryOptions(limit=LIMIT)

    def query(self, value: str, limit: int = LIMIT) -> tuple[list[tuple[str, float]], int]:
        options = self._defaults if limit == LIMIT else self._options(limit=limit)
        result = self._index.query(value, options)
        return [(hit.key, hit.score) for hit in result.hits], result.total

    def exact(self, word: str, limit: int = LIMIT) -> list[str]:
        options = self._options(limit=limit, typos=False, prefix=False)
        return [hit.key for hit in self._index.query(word, options).hits]

    def lookup(self, key: str) -> str | None:
        answer: str | None = self._index.lookup(key)
        return answer


class Fts5Engine:
    """The SQLite FTS5 peer's engine, in this process."""

    name = "sqlite_fts5"

    def __init__(self, database: Path) -> None:
        self._index = Fts5Index.open(str(database))

    def query(self, value: str, limit: int = LIMIT) -> tuple[list[tuple[str, float]], int]:
        answer: dict[str, Any] = self._index.query(value, limit)
        return [(hit["key"], hit["score"]) for hit in answer["result"]], answer["total"]

    def exact(self, word: str, limit: int = LIMIT) -> list[str]:
        answer = self._index.query(word, limit, prefix=False, typos=False)
        return [hit["key"] for hit in answer["result"]]

    def lookup(self, key: str) -> str | None:
        return self._index.lookup(key)


def reply_hits(body: dict[str, Any]) -> tuple[list[tuple[str, float]], int | None]:
    """(key, score) of a ``query`` reply's hits, and its total."""
    return [(hit["key"], hit["score"]) for hit in body["result"]], body.get("total")


def same_ranking(
    got: list[tuple[str, float]], expected: list[tuple[str, float]], tolerance: float = 1e-3
) -> bool:
    """Whether a server's hits are the engine's, allowing for ties.

    The scores must match one for one (within ``tolerance``, relative), and
    each hit must be one of the engine's hits of the same score; hits tied
    with the last one may be documents the engine left off the page (which
    of several equal documents makes the page is the engine's choice).
    """

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= tolerance * max(1.0, abs(b))

    if len(got) != len(expected) or len({key for key, _ in got}) != len(got):
        return False
    last = expected[-1][1] if expected else 0.0
    for (key, score), (_, wanted) in zip(got, expected, strict=True):
        if not close(score, wanted):
            return False
        if not close(wanted, last) and key not in {k for k, s in expected if close(s, wanted)}:
            return False
    return True
