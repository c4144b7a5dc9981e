"""Peer: full-text search on SQLite FTS5 (standard library ``sqlite3``), over asyncio.

The search benchmark's reference point: the protocol's ``query`` and
``search`` actions answered from an FTS5 table, the index most Python
programs reach for first.

- ``{"action": "query", "value": TEXT, "limit": N, "offset": M}``: the words
  of TEXT (``\\w+``, lowercased), each quoted, all required (FTS5's implicit
  AND), the last one as a prefix (``"word"*``); ranked by ``bm25()``, best
  first. Answer ``{"result": [{"key", "answer", "score", "highlight"}, ...],
  "total": T}``: ``score`` is ``-bm25`` (higher is better), ``highlight`` the
  answer with the matched words between ``<em>`` and ``</em>`` (FTS5's
  ``highlight()``), ``total`` a ``count(*)`` of the same match.
- Typos, which FTS5 lacks, are done here as trio_search allows them (one
  in a word of 5 letters or more, two from 9, a swap counting one): when
  the words as typed do not fill the page, each word allowed typos becomes
  ``("word" OR "near1" OR ...)``, the nearest words of the index's
  vocabulary (held in memory, read once at start-up from an ``fts5vocab``
  table) that start with the same letter, at most ``MAX_TYPO_EXPANSIONS``;
  their hits follow those of the words as typed, ranked by ``bm25()``, and
  ``total`` counts both. A typo in a word's first letter is not found
  (trio_search finds it).
- ``{"action": "search", "value": KEY}``: ``{"result": ANSWER}``, or the
  tutorial's ``No match for 'KEY'.``.

Built from a JSON Lines file of records with ``key``, ``answer`` and text
fields (every string field but ``key`` is indexed), either into a database
file once (``--build``, timed by the benchmark like ``trio-search-index
build``) or at start-up.

Framing is an ``asyncio.Protocol`` that parses every complete message in
each read (so pipelined requests work) and answers them in order; one query
runs at a time, on the event loop, as SQLite is called synchronously.

Usage:
    python sqlite_fts5.py --data corpus.jsonl --db corpus.db --build
    python sqlite_fts5.py --db corpus.db --host 127.0.0.1 --port 65432
    python sqlite_fts5.py --data corpus.jsonl --port 65432  # built in memory
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import re
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import OSA

try:
    import orjson

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    loads = orjson.loads
except ImportError:  # pragma: no cover - orjson is a dependency of trio_search

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")

    loads = json.loads

#: Keys a request's JSON header must have.
REQUIRED = ("byteorder", "content-length", "content-type", "content-encoding")
#: Hits answered when a request gives no ``limit``.
DEFAULT_LIMIT = 10
#: Largest ``limit`` answered (more is cut to this).
MAX_LIMIT = 100
#: Records inserted per ``executemany`` while building.
BUILD_BATCH = 10_000
#: Marks around matched words in ``highlight`` (as trio_search marks them).
HIGHLIGHT_OPEN, HIGHLIGHT_CLOSE = "<em>", "</em>"
#: Words a misspelt word expands to, at most (the nearest first).
MAX_TYPO_EXPANSIONS = 50
#: Word lengths from which one and two typos are allowed (as trio_search).
ONE_TYPO_MIN_LENGTH, TWO_TYPOS_MIN_LENGTH = 5, 9
#: Largest header and content accepted, in bytes (as trio_search's defaults).
MAX_HEADER_LENGTH = 16_384
MAX_CONTENT_LENGTH = 1_048_576

_TOKEN = re.compile(r"\w+")


def match_expression(text: str, prefix: bool = True) -> str | None:
    """The FTS5 MATCH expression for ``text`` (the last word as a prefix
    unless ``prefix`` is false), or None if it has no word."""
    words = _TOKEN.findall(text.lower())
    if not words:
        return None
    quoted = [f'"{word}"' for word in words]
    if prefix:
        quoted[-1] += "*"
    return " ".join(quoted)


def typos_allowed(word: str) -> int:
    """Typos a query word may match with (as trio_search allows them)."""
    if len(word) >= TWO_TYPOS_MIN_LENGTH:
        return 2
    return 1 if len(word) >= ONE_TYPO_MIN_LENGTH else 0


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as file:
        for line in file:
            if line.strip():
                yield loads(line)


class Fts5Index:
    """An FTS5 table of documents and a key -> row table for exact lookups."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        #: The index's words, sorted, for typo expansion (see
        #: :meth:`load_vocabulary`).
        self.vocabulary: list[str] = []
        columns = [row[1] for row in connection.execute("PRAGMA table_info(docs)")]
        # Column 0 is the key; 1 the answer, which highlight() marks up.
        self.answer_column = columns.index("answer")
        self._query_sql = (
            "SELECT key, answer, -bm25(docs), "
            f"highlight(docs, {self.answer_column}, '{HIGHLIGHT_OPEN}', '{HIGHLIGHT_CLOSE}') "
            "FROM docs WHERE docs MATCH ? ORDER BY rank LIMIT ? OFFSET ?"
        )

    @classmethod
    def build(cls, data: Path, database: str = ":memory:") -> tuple[Fts5Index, int]:
        """Index the JSON Lines file ``data`` into ``database`` (replaced if
        it exists); return the index and the number of documents."""
        if database != ":memory:":
            Path(database).unlink(missing_ok=True)
        records = _records(data)
        first = next(records, None)
        if first is None:
            raise ValueError(f"{data}: no records")
        fields = ["answer", *(name for name in first if name not in ("key", "answer"))]
        connection = sqlite3.connect(database, check_same_thread=False)
        connection.execute("PRAGMA journal_mode = OFF")
        connection.execute("PRAGMA synchronous = OFF")
        columns = ", ".join(fields)
        connection.execute(f"CREATE VIRTUAL TABLE docs USING fts5(key UNINDEXED, {columns})")
        connection.execute("CREATE TABLE keys (key TEXT PRIMARY KEY, id INTEGER) WITHOUT ROWID")
        insert = (
            f"INSERT INTO docs (rowid, key, {columns}) "
            f"VALUES (?, ?, {', '.join('?' * len(fields))})"
        )
        count = 0

        def rows() -> Iterator[tuple[Any, ...]]:
            nonlocal count
            for record in itertools.chain([first], records):
                count += 1
                yield (count, record["key"], *(str(record.get(name, "")) for name in fields))

        with connection:
            batch: list[tuple[Any, ...]] = []
            for row in rows():
                batch.append(row)
                if len(batch) == BUILD_BATCH:
                    connection.executemany(insert, batch)
                    batch.clear()
            connection.executemany(insert, batch)
            # The first record with a key wins, as in the other engines.
            connection.execute("INSERT OR IGNORE INTO keys SELECT key, rowid FROM docs")
            connection.execute("INSERT INTO docs (docs) VALUES ('optimize')")
        return cls(connection), count

    @classmethod
    def open(cls, database: str) -> Fts5Index:
        """An index built earlier into the file ``database``."""
        if not Path(database).exists():
            raise FileNotFoundError(database)
        uri = f"file:{database}?mode=ro"
        index = cls(sqlite3.connect(uri, uri=True, check_same_thread=False))
        index.load_vocabulary()
        return index

    def load_vocabulary(self) -> None:
        """Read the index's words into memory, for typo expansion: fts5vocab
        reads every term's postings, far too slow to ask per query (about
        2 s for the million generated documents, once, before serving)."""
        execute = self.connection.execute
        execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, docs, 'row')")
        self.vocabulary = sorted(term for (term,) in execute("SELECT term FROM vocab"))

    def query(
        self,
        text: str,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        prefix: bool = True,
        typos: bool = True,
    ) -> dict[str, Any]:
        """The ``query`` answer's content: best hits first, and their total."""
        expression = match_expression(text, prefix)
        if expression is None:
            return {"result": [], "total": 0}
        hits = self._hits(expression, limit + offset)
        total = self._count(expression)
        if total < limit + offset and typos:
            tolerant = self._tolerant_expression(text, prefix)
            if tolerant is not None:
                seen = {hit["key"] for hit in hits}
                more = self._hits(tolerant, limit + offset + total)
                hits += [hit for hit in more if hit["key"] not in seen]
                total = self._count(tolerant)
        return {"result": hits[offset : offset + limit], "total": total}

    def _hits(self, expression: str, limit: int) -> list[dict[str, Any]]:
        return [
            {"key": key, "answer": answer, "score": score, "highlight": highlight}
            for key, answer, score, highlight in self.connection.execute(
                self._query_sql, (expression, limit, 0)
            )
        ]

    def _count(self, expression: str) -> int:
        sql = "SELECT count(*) FROM docs WHERE docs MATCH ?"
        (total,) = self.connection.execute(sql, (expression,)).fetchone()
        return int(total)

    def _tolerant_expression(self, text: str, prefix: bool) -> str | None:
        """The MATCH expression with typos: each word allowed them as
        ``("word" OR "near" ...)``; None if no word has a near word."""
        words = _TOKEN.findall(text.lower())
        parts, expanded = [], False
        for position, word in enumerate(words):
            star = "*" if prefix and position == len(words) - 1 else ""
            near = self._near(word) if typos_allowed(word) else []
            expanded = expanded or bool(near)
            alternatives = [f'"{word}"{star}', *(f'"{term}"{star}' for term in near)]
            parts.append(f"({' OR '.join(alternatives)})" if near else alternatives[0])
        return " AND ".join(parts) if expanded else None

    def _near(self, word: str) -> list[str]:
        """The vocabulary's words within the typos ``word`` allows that
        start with its first letter, nearest first."""
        vocabulary = self.vocabulary
        first = word[0]
        low = bisect.bisect_left(vocabulary, first)
        high = bisect.bisect_left(vocabulary, chr(ord(first) + 1))
        found = process.extract(
            word,
            vocabulary[low:high],
            scorer=OSA.distance,
            score_cutoff=typos_allowed(word),
            limit=MAX_TYPO_EXPANSIONS + 1,
        )
        return [term for term, _distance, _at in found if term != word][:MAX_TYPO_EXPANSIONS]

    def lookup(self, key: str) -> str | None:
        """The answer stored under ``key`` exactly, or None."""
        row = self.connection.execute(
            "SELECT answer FROM docs WHERE rowid = (SELECT id FROM keys WHERE key = ?)", (key,)
        ).fetchone()
        return None if row is None else row[0]


def _frame(content: bytes) -> bytes:
    header = dumps(
        {
            "byteorder": sys.byteorder,
            "content-type": "text/json",
            "content-encoding": "utf-8",
            "content-length": len(content),
        }
    )
    return len(header).to_bytes(2, "big") + header + content


def answer(index: Fts5Index, header: dict[str, Any], content: bytes) -> bytes:
    """The framed response to one request (whose header has the required keys)."""
    if header["content-type"] != "text/json":
        return _frame(dumps({"result": "Error: only text/json is served.", "error": "binary"}))
    encoding = header["content-encoding"]
    request = loads(content if encoding in ("utf-8", "utf8") else content.decode(encoding))
    action = request.get("action") if isinstance(request, dict) else None
    value = request.get("value") if isinstance(request, dict) else None
    if action == "query" and isinstance(value, str):
        limit = min(int(request.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
        offset = int(request.get("offset", 0))
        try:
            body: dict[str, Any] = index.query(value, limit, offset)
        except sqlite3.OperationalError as exc:
            body = {"result": f"Error: {exc}.", "error": "bad_query"}
    elif action == "search" and isinstance(value, str):
        found = index.lookup(value)
        body = {"result": found if found is not None else f"No match for '{value}'."}
    else:
        body = {"result": f"Error: invalid action '{action}'.", "error": "invalid_action"}
    return _frame(dumps(body))


class Connection(asyncio.Protocol):
    """One client: parse each complete message, answer in order."""

    def __init__(self, index: Fts5Index) -> None:
        self.index = index
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        replies = []
        try:
            while len(buffer) >= 2:
                header_length = int.from_bytes(buffer[:2], "big")
                if header_length == 0 or header_length > MAX_HEADER_LENGTH:
                    raise ValueError("bad header length")
                if len(buffer) < 2 + header_length:
                    break
                header = loads(bytes(buffer[2 : 2 + header_length]))
                if not isinstance(header, dict) or any(key not in header for key in REQUIRED):
                    raise ValueError("bad header")
                length = int(header["content-length"])
                if not 0 <= length <= MAX_CONTENT_LENGTH:
                    raise ValueError("bad content-length")
                end = 2 + header_length + length
                if len(buffer) < end:
                    break
                content = bytes(buffer[2 + header_length : end])
                del buffer[:end]
                replies.append(answer(self.index, header, content))
        except (ValueError, TypeError, LookupError, AttributeError):
            # Garbled framing or content: close, as the tutorial's server does.
            assert self.transport is not None
            if replies:
                self.transport.write(b"".join(replies))
            self.transport.close()
            return
        if replies:
            assert self.transport is not None
            self.transport.write(b"".join(replies))


async def serve(index: Fts5Index, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(index), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=65432)
    parser.add_argument("--data", type=Path, help="JSON Lines corpus to index")
    parser.add_argument("--db", help="SQLite database file: built with --build, else served")
    parser.add_argument(
        "--build",
        action="store_true",
        help="build --db from --data, print {documents, seconds} as JSON and exit",
    )
    args = parser.parse_args(argv)
    if args.build and (args.data is None or args.db is None):
        parser.error("--build needs --data and --db")
    if args.data is None and args.db is None:
        parser.error("give --data, --db, or both")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.build or (args.data is not None and (args.db is None or not Path(args.db).exists())):
        index, count = Fts5Index.build(args.data, args.db or ":memory:")
        seconds = time.perf_counter() - started
        report = {"documents": count, "seconds": round(seconds, 3)}
        print(f"sqlite_fts5: built {json.dumps(report)}", file=sys.stderr, flush=True)
        if args.build:
            print(json.dumps(report), flush=True)
            return
        index.load_vocabulary()
    else:
        index = Fts5Index.open(args.db)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(index, args.host, args.port))


if __name__ == "__main__":
    main()
