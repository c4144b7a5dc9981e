"""The search engine: documents in a tantivy index, queries ranked by BM25.

Theory of operation
-------------------

Each document is stored once, in the tantivy fields that
:mod:`trio_search._schema` lays out: ``all`` holds every searchable field's
words, ``key_norm`` the key lower-cased with accents folded, ``f`` each
field on its own when the index has field queries.

A query runs in up to two passes (see :mod:`trio_search._query` for what
each word may match), as Typesense does:

1. every word matched exactly;
2. only if that does not fill the page (``offset + limit``): every word
   matched exactly or with the typos its length allows, and the last one
   also as a prefix of the most frequent longer words
   (:data:`MAX_PREFIX_EXPANSIONS`, read from the term dictionary). The typo
   matches are the dictionary's words within the word's typos, found by
   :mod:`trio_search._dictionary` (:data:`MAX_TYPO_EXPANSIONS` of them,
   the most frequent). Every alternative is a plain term scored by BM25,
   and a word's alternatives count as one word (:func:`_blend`): each is
   weighed as the most frequent of them, and a document counts its best
   one (a disjunction-max query), so ``rabit`` ranks documents as
   ``rabbit`` does, and a rare completion (``closefd`` for ``clos``) does
   not outrank the word meant by its rarity alone; a word the last word
   matches only by its beginning weighs :data:`PREFIX_ONLY_WEIGHT`. Its
   hits come after those of the first pass, so a document holding the
   words as typed always ranks above one that needs a typo or a
   completion, and ``total`` then counts both.

Most queries for words that exist stop after the first pass, which reads no
typos and no completions: on 1,000,000 generated documents that
made a one-word query about 3x cheaper.

The first pass is a flat boolean query of term queries, since nesting costs
tantivy its fast top-k path; the second, which counts every match anyway,
nests a disjunction-max query of (boosted) terms per word. A document whose
key is the query text (case and accents aside) is looked up on its own and
ranks before all others.

A :class:`SearchIndex` reads through one *snapshot*, a tantivy searcher over
a fixed set of segments, replaced whole by :meth:`SearchIndex.refresh` when
another process (``trio-search-index add``) has committed. Every query reads
the snapshot once, so a query in flight during a refresh finishes on the old
one. Each snapshot keeps the rankings of the costly queries it answered
(``trio_search._ranking_cache``), so they go with it. All methods block
(disk, CPU): the server calls the slow ones in a
worker thread, and they are safe to call from several threads at once.
"""

from __future__ import annotations

import math
import time
import types
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import attrs
import tantivy

from . import _codes as codes
from ._dictionary import Dictionary
from ._errors import ConfigurationError, RequestError
from ._index_meta import IndexMeta, commit_stamp, generation_of, read_meta
from ._query import (
    Hit,
    QueryOptions,
    QueryResult,
    Word,
    WordMatcher,
    highlight_all,
    query_words,
    typo_count,
)
from ._ranking_cache import RANKING_CACHE_HITS, CacheCounts, Ranking, RankingCache
from ._schema import (
    WRITER_HEAP_BYTES,
    DocumentLike,
    add_document,
    analyze,
    create_index,
    encodable,
    normalized_key,
    open_tantivy_index,
    tokens,
)
from ._stored_documents import StoredDocuments

_MUST = tantivy.Occur.Must
_Q = tantivy.Query

#: Longest list of words a query's last word expands to as a prefix (the
#: most frequent ones): each is one more term to read.
MAX_PREFIX_EXPANSIONS = 50
#: Longest list of dictionary words a misspelt word matches (the most
#: frequent ones within its typos): each is one more term to read.
MAX_TYPO_EXPANSIONS = 50
#: Weight of a word the last word matches only by its beginning (a
#: completion, or a longer word starting within its typos), against one it
#: matches whole: a word typed to its end means a word of about its length
#: more often than a longer one (Meilisearch ranks exact words first too).
PREFIX_ONLY_WEIGHT = 0.5
#: Most postings (documents per word, summed; with the words the second pass
#: also matches, if it may run) a query may read and still be run on the
#: event loop: tantivy reads about
#: 15-20 ns of CPU per posting (a one-word query on 1,000,000 generated
#: documents: 92 us for a word in 4,189 of them, 295 us for 17,083), and a
#: hand-off to a worker thread costs 150-300 us of CPU, so below this the
#: thread costs more than the query and stalls the loop for under 0.3 ms.
CHEAP_QUERY_POSTINGS = 15_000
#: Documents whose key matches a query's text looked up, at most: keys are
#: unique, but two keys may differ only in case or accents.
MAX_KEY_MATCHES = 10


@attrs.frozen
class _Snapshot:
    searcher: tantivy.Searcher
    generation: int
    documents: int
    #: Costly queries' rankings, for this searcher only.
    rankings: RankingCache
    #: The words typos may have meant, read from this searcher's dictionary.
    words: Dictionary
    #: The words each query word matches beside itself (typos, completions)
    #: with their frequencies, by (word, whether all fields are searched):
    #: found once for the choice of thread and the query (see
    #: :meth:`SearchIndex.is_cheap`). Emptied when full.
    others: dict[tuple[Word, bool], Mapping[str, int]] = attrs.field(factory=dict)
    #: The key and answer of the documents read for replies: a popular
    #: document is read from the store once per snapshot, not once per reply.
    stored: StoredDocuments = attrs.field(factory=StoredDocuments)


@attrs.define(eq=False)
class SearchIndex:
    """A searchable set of documents: in memory, or a directory on disk.

    Build one with :meth:`from_documents` or :meth:`open`. Every method may
    block for disk or CPU; all are safe to call from several threads.
    """

    _index: tantivy.Index
    meta: IndexMeta
    #: The index directory, or ``None`` in memory.
    path: Path | None = None
    #: When this index was loaded or last refreshed, as ``time.time()``.
    loaded_at: float = attrs.field(factory=time.time)
    #: Hits of costly queries' rankings kept per snapshot (see
    #: ``trio_search._ranking_cache``); 0 keeps none.
    ranking_cache_hits: int = attrs.field(default=RANKING_CACHE_HITS, kw_only=True)
    _snapshot: _Snapshot = attrs.field(init=False)
    _cache_counts: CacheCounts = attrs.field(factory=CacheCounts, init=False)
    _stamp: tuple[int, ...] = attrs.field(default=(), init=False)

    def __attrs_post_init__(self) -> None:
        self._index.config_reader("Manual")
        if self.path is not None:
            self._stamp = commit_stamp(self.path)
        self._snapshot = self._take_snapshot(self._generation())

    @classmethod
    def from_documents(
        cls,
        documents: Iterable[DocumentLike],
        meta: IndexMeta | None = None,
        *,
        threads: int = 1,
        ranking_cache_hits: int = RANKING_CACHE_HITS,
    ) -> SearchIndex:
        """An index in memory holding ``documents`` (later keys replace
        earlier ones), written by ``threads`` writer threads (see
        ``writer_threads()``).

        The meta's ``key_field`` and ``answer_field`` are those the
        documents name (``Document.key_field``, ``answer_field``: what
        :func:`read_documents` read them with), so that a query whose
        ``fields`` name the key field ranks the document whose key is its
        text first; ``meta``'s (by default ``key`` and ``answer``) only
        for documents that do not name them, or name several.
        """
        meta = meta or IndexMeta()
        index = create_index(None)
        writer = index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=threads)
        names: set[str] = set()
        key_fields: set[str | None] = set()
        answer_fields: set[str | None] = set()
        field_queries = meta.field_queries
        longest_answer = 0
        for document in documents:
            writer.delete_documents_by_term("key", document.key)
            add_document(writer, document, field_queries)
            longest_answer = max(longest_answer, len(document.answer))
            names.update(document.fields)
            key_fields.add(getattr(document, "key_field", None))
            answer_fields.add(getattr(document, "answer_field", None))
        writer.commit()
        writer.wait_merging_threads()
        meta = attrs.evolve(
            meta.with_fields(names),
            key_field=_one_name(key_fields) or meta.key_field,
            answer_field=_one_name(answer_fields) or meta.answer_field,
        )
        made = cls(index, meta, ranking_cache_hits=ranking_cache_hits)
        # Known before any query reads one (see longest_answer_read).
        made._snapshot.stored.longest_answer = longest_answer
        return made

    @classmethod
    def open(cls, path: str | Path, *, ranking_cache_hits: int = RANKING_CACHE_HITS) -> SearchIndex:
        """The index in directory ``path``, as ``trio-search-index build`` made it.

        Raises:
            ConfigurationError: no readable trio_search index there.
        """
        directory = Path(path)
        meta = read_meta(directory)
        return cls(
            open_tantivy_index(directory), meta, directory, ranking_cache_hits=ranking_cache_hits
        )

    def number_after(self, previous: SearchIndex) -> None:
        """Number an in-memory index's data as the generation after
        ``previous``'s: a reload is a new version of the data."""
        if self.path is None:
            self._snapshot = attrs.evolve(self._snapshot, generation=previous.generation + 1)

    def _generation(self) -> int:
        if self.path is None:
            return 1
        return generation_of(self.path)

    def _take_snapshot(self, generation: int) -> _Snapshot:
        self._index.reload()
        searcher = self._index.searcher()
        rankings = RankingCache(self._cache_counts, self.ranking_cache_hits)
        return _Snapshot(searcher, generation, searcher.num_docs, rankings, Dictionary(searcher))

    @property
    def generation(self) -> int:
        """The version of the data now searched; it changes with every commit seen."""
        return self._snapshot.generation

    @property
    def version(self) -> object:
        """What stands for the data now searched, for caches (compare with
        ``is``): a new object whenever the searched snapshot changes, even
        when the generation number does not (an index deleted and built
        again counts its generation from the start)."""
        return self._snapshot

    @property
    def documents(self) -> int:
        """Documents now searched."""
        return self._snapshot.documents

    def refresh(self) -> bool:
        """See what another process committed since: search it from now on.

        Cheap when nothing changed (two ``stat`` calls). Returns whether the
        snapshot was replaced. The new snapshot first reads ahead the
        dictionary's common slices if the old one's queries had needed them
        (see :meth:`read_dictionary`). An index replaced whole (a new directory
        in its place) needs :meth:`open` instead: this only follows commits.

        Raises:
            ConfigurationError: the directory (or its ``meta.json``) is gone;
                only on the first look that finds it gone.
        """
        if self.path is None:
            return False
        stamp = commit_stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        if not stamp:
            raise ConfigurationError(
                "the index is gone (no directory, or no meta.json in it)",
                code=codes.BAD_INDEX,
            )
        generation = generation_of(self.path)
        try:
            meta = read_meta(self.path)
        except ConfigurationError:
            meta = self.meta
        snapshot = self._take_snapshot(generation)
        # Mostly the same documents: their answers are as long as before.
        snapshot.stored.longest_answer = self._snapshot.stored.longest_answer
        if self._snapshot.words.has_tails():
            # Queries needed them: read before the snapshot is searched.
            snapshot.words.read_common()
        self._snapshot = snapshot
        self.meta = meta
        self.loaded_at = time.time()
        return True

    def replaced_on_disk(self) -> bool:
        """Whether the directory was swapped for another (a rebuilt index)."""
        if self.path is None:
            return False
        stamp = commit_stamp(self.path)
        return bool(stamp) and bool(self._stamp) and stamp[0] != self._stamp[0]

    def lookup(self, key: str) -> str | None:
        """The answer of the document whose key is exactly ``key``."""
        if encodable(key) is not key:
            return None  # lone surrogates: no key holds one
        searcher = self._snapshot.searcher
        result = searcher.search(_Q.term_query(self._index.schema, "key", key), 1, count=False)
        if not result.hits:
            return None
        answer: str = searcher.doc(result.hits[0][1])["answer"][0]
        return answer

    def words(self, text: str, options: QueryOptions) -> list[Word]:
        """The words of a query (as ``query`` splits them).

        Raises:
            RequestError: too many characters or words.
        """
        return query_words(text, options, analyze)

    def has_ranking(self, text: str, words: Sequence[Word], options: QueryOptions) -> bool:
        """Whether the ranking of this query (of ``words``, its words) is
        kept (see ``trio_search._ranking_cache``): then answering costs
        reading and highlighting one page of documents, cheap enough for
        the event loop."""
        snapshot = self._snapshot
        if _ranking_key(text, options) in snapshot.rankings:
            return True
        wanted = options.offset + options.limit
        return _words_key(words, options.fields, wanted) in snapshot.rankings and not (
            self._key_matches(snapshot.searcher, text, options.fields)
        )

    @property
    def longest_answer_read(self) -> int:
        """The longest answer, in characters, that queries on this data have
        read (or, for an index made from documents, that it holds): what
        answering one more may cost beyond its ranking (reading,
        highlighting and encoding its hits' answers). A refresh keeps it."""
        return self._snapshot.stored.longest_answer

    def continue_counts(self, previous: SearchIndex) -> None:
        """Count this index's query cache use on from ``previous``'s totals:
        for data reloaded in its place, so the counters stay monotonic."""
        self._cache_counts = previous._cache_counts
        self._snapshot.rankings.counts = previous._cache_counts

    @property
    def ranking_cache_counts(self) -> CacheCounts:
        """How the cache of costly queries' rankings served, over every snapshot."""
        return self._cache_counts

    def is_cheap(self, words: Sequence[Word], options: QueryOptions) -> bool:
        """Whether a query of ``words`` reads few postings: cheap enough for
        the event loop (see ``CHEAP_QUERY_POSTINGS``). Counted are the
        documents holding each word as typed and, if a second pass (typos,
        completions) may run, those holding the words it also matches,
        which are found here (and remembered for the query) once the
        dictionary slices they need are read."""
        if options.fields is not None:
            return False
        snapshot = self._snapshot
        searcher = snapshot.searcher
        frequencies = [searcher.doc_freq("all", word.text) for word in words]
        postings = sum(frequencies)
        if postings > CHEAP_QUERY_POSTINGS:
            return False
        if not any(word.typos or word.prefix for word in words):
            return True
        # The second pass runs unless the first fills the page: known
        # beforehand only for one word, whose matches are the documents
        # holding it.
        if len(frequencies) == 1 and frequencies[0] >= options.offset + options.limit:
            return True
        if not self.has_dictionary_for(words):
            return False
        for word in words:
            postings += sum(_others(snapshot, word, True).values())
            if postings > CHEAP_QUERY_POSTINGS:
                return False
        return True

    def has_dictionary_for(self, words: Sequence[Word]) -> bool:
        """Whether what the dictionary needs for the words that allow typos
        is already read and made: their slices, the slices sorted by what
        follows the first letter for words long enough for two typos, a
        large slice's beginnings for a prefix word (see
        ``trio_search._dictionary``)."""
        dictionary = self._snapshot.words
        return all(dictionary.is_read_for(word) for word in words if word.typos)

    def read_dictionary(self) -> None:
        """Read ahead what the first query for a word long enough for two
        typos needs from the dictionary (see ``trio_search._dictionary``),
        which it would otherwise read itself, and wait for: 0.2-0.4 s on a
        million documents. A server calls this as it loads an index."""
        self._snapshot.words.read_common()

    def read_dictionary_for(self, words: Sequence[Word]) -> None:
        """Read and make what the dictionary needs for the words that allow
        typos, so that :meth:`has_dictionary_for` them is true."""
        dictionary = self._snapshot.words
        for word in words:
            dictionary.read_for(word)

    def query(self, text: str, options: QueryOptions | None = None) -> QueryResult:
        """The documents matching ``text``, best first, one page of them.

        ``options`` were checked when made (:class:`QueryOptions` raises
        ``ValueError`` for a limit, offset or field list out of bounds).

        Raises:
            RequestError: the text has more than ``MAX_QUERY_LENGTH``
                characters, ``MAX_QUERY_WORDS`` words of more than one
                character or ``MAX_QUERY_TERMS`` words (``query_too_long``,
                with the server's message), or ``fields`` names an unknown
                field or, on an index without field queries, not all of
                them (``bad_query``).
        """
        options = options or QueryOptions()
        words = self.words(text, options)
        snapshot = self._snapshot
        wanted = options.offset + options.limit
        ranking = snapshot.rankings.get(_ranking_key(text, options))
        if ranking is None:
            ranking = self._rank(snapshot, text, words, options, wanted)
        ranked, total, (typed_from, typed_to) = ranking
        page = ranked[options.offset : wanted]
        stored = [_stored(snapshot, address) for _, address in page]
        answers = [answer for _, answer in stored]
        # A hit that holds every word as typed has those marked, not the
        # words a typo or a completion would also have matched.
        typed = [Word(word.text, 0, False) for word in words]
        typed_from = min(max(typed_from - options.offset, 0), len(page))
        typed_to = min(max(typed_to - options.offset, typed_from), len(page))
        loose = WordMatcher(words)
        marked = highlight_all(answers[:typed_from], words, tokens, loose)
        if typed_from < typed_to:
            marked += highlight_all(answers[typed_from:typed_to], typed, tokens)
        marked += highlight_all(answers[typed_to:], words, tokens, loose)
        hits = [
            Hit(key=key, answer=answer, score=round(score, 4), highlight=mark)
            for (score, _), (key, answer), mark in zip(page, stored, marked, strict=True)
        ]
        return QueryResult(hits, max(total, len(hits)))

    def _rank(
        self,
        snapshot: _Snapshot,
        text: str,
        words: Sequence[Word],
        options: QueryOptions,
        wanted: int,
    ) -> Ranking:
        """The best ``wanted`` documents for a query and how many match,
        kept if that was costly to find (see ``trio_search._ranking_cache``)."""
        searcher = snapshot.searcher
        fields = options.fields
        paths = self._paths(fields)
        # The exact-key tier is looked up on its own, not as a clause of the
        # words' query: a clause nested beside them costs tantivy its fast
        # top-k path (measured on 1,000,000 documents: 6.2 ms against 2.7 ms
        # for a one-word query).
        keys = self._key_matches(searcher, text, fields)
        if not keys:
            kept = snapshot.rankings.get(_words_key(words, fields, wanted))
            if kept is not None:
                return kept
        started = time.thread_time()
        ranked, total, counted, typed = self._passes(snapshot, words, paths, keys, wanted)
        # Costly: many postings scored, or a second pass (the dictionary's
        # words within typos measured, completions read).
        costly = total > CHEAP_QUERY_POSTINGS or (counted is not None and counted.tolerant)
        key_ranked = []
        for address in keys:
            score = 0.0
            if counted is not None:
                # Scored as the pass that finds it would score it: by the
                # words as typed if it holds them, whether or not the second
                # pass ran (so its score does not depend on the page size).
                document = _doc_query(self, searcher, address)
                for query in counted.scoring():
                    both = _Q.boolean_query([(_MUST, query), (_MUST, document)])
                    found = searcher.search(both, 1, count=False).hits
                    if found:
                        score = found[0][0]
                        total -= 1  # counted by the passes
                        break
            key_ranked.append((score, address))
            total += 1
        as_typed = (len(key_ranked), len(key_ranked) + typed)
        ranking = Ranking(tuple(key_ranked + ranked), total, as_typed)
        if costly:
            cost = time.thread_time() - started
            if not keys and total >= wanted and counted is not None and not counted.tolerant:
                # The words as typed filled the page: the same for them in
                # any order and case, whatever the options.
                snapshot.rankings.put(_words_key(words, fields, wanted), ranking, cost)
            else:
                snapshot.rankings.put(_ranking_key(text, options), ranking, cost)
        return ranking

    def _passes(
        self,
        snapshot: _Snapshot,
        words: Sequence[Word],
        paths: Sequence[str],
        keys: Sequence[tantivy.DocAddress],
        wanted: int,
    ) -> tuple[list[tuple[float, tantivy.DocAddress]], int, _Counted | None, int]:
        """The best ``wanted`` matches of the words (the key matches aside),
        best first; how many match; the query that counted them; and how
        many of those first hold every word as typed (the first pass's).

        Words as typed first; typos and completions only when those do not
        fill the page, since their matches rank below them (see the theory
        of operation).
        """
        searcher = snapshot.searcher
        exact = self._words_query(words, paths)
        if exact is None:
            return [], 0, None, 0
        seen = {(address.segment_ord, address.doc) for address in keys}
        result = searcher.search(exact, wanted + len(keys), count=True)
        total = _count(result)
        ranked = _unseen(result.hits, seen)
        if total >= wanted or not any(word.typos or word.prefix for word in words):
            return ranked, total, _Counted(exact, exact), len(ranked)
        tolerant = self._words_query(words, paths, snapshot)
        assert tolerant is not None
        result = searcher.search(tolerant, wanted + len(keys) + total, count=True)
        counted = _Counted(tolerant, exact)
        return ranked + _unseen(result.hits, seen), _count(result), counted, len(ranked)

    def _paths(self, fields: tuple[str, ...] | None) -> list[str]:
        """The tantivy fields (or JSON paths) a query over ``fields`` reads.

        Raises:
            RequestError: ``fields`` names an unknown field, or picks some
                fields of an index built without field queries.
        """
        if fields is None:
            return ["all"]
        known = self.meta.fields
        unknown = [name for name in fields if name not in known]
        if unknown:
            listed = ", ".join(sorted(known)[:20])
            raise RequestError(
                f"unknown field {unknown[0][:40]!r}; searchable fields: {listed}",
                code=codes.BAD_QUERY,
            )
        if self.meta.field_queries:
            for name in fields:
                # tantivy cannot address these in a JSON field: its paths
                # end at an empty step and use NUL to separate steps.
                if not name or "\x00" in name:
                    raise RequestError(
                        f"the field {name[:40]!r} cannot be searched on its own (its name "
                        "is empty or holds a NUL); leave 'fields' out to search it with the others",
                        code=codes.BAD_QUERY,
                    )
            return [_json_path(name) for name in fields]
        if known <= set(fields):
            return ["all"]
        raise RequestError(
            "this index searches all its fields together: 'fields' must name them all "
            "(build it with --field-queries, IndexMeta(field_queries=True) in Python, "
            "to search some of them)",
            code=codes.BAD_QUERY,
        )

    def _key_matches(
        self, searcher: tantivy.Searcher, text: str, fields: tuple[str, ...] | None
    ) -> list[tantivy.DocAddress]:
        """The documents whose key is the query text (case and accents
        aside), which rank first: typed as is, or without the space around
        it ("ring " is the key "ring" once the user typed the space after it)."""
        if fields is not None and self.meta.key_field not in fields:
            return []
        schema = self._index.schema
        addresses: list[tantivy.DocAddress] = []
        for typed in dict.fromkeys([text, text.strip()]):
            key = normalized_key(typed)
            if key:
                term = _Q.term_query(schema, "key_norm", key)
                addresses += [
                    a for _, a in searcher.search(term, MAX_KEY_MATCHES, count=False).hits
                ]
        return addresses

    def _words_query(
        self, words: Sequence[Word], paths: Sequence[str], loose: _Snapshot | None = None
    ) -> tantivy.Query | None:
        """Documents holding every word in any of ``paths``: as typed, or
        also with typos and the last word as a prefix (``loose``: the
        snapshot whose dictionary the typos and completions are read from;
        see the theory of operation)."""
        if not words:
            return None
        schema = self._index.schema
        per_word = []
        for word in words:
            alternatives: list[tantivy.Query] = []
            others: Mapping[str, int] = {}  # words matched beside it, and their frequencies
            if loose is not None:
                others = _others(loose, word, paths == ["all"])
                typed = loose.searcher.doc_freq("all", word.text)
                weight = _blend(loose, typed, others)
            for path in paths:
                query = _Q.term_query(schema, path, word.text)
                if loose is None:
                    alternatives.append(query)
                    continue
                factor = weight(typed)
                alternatives.append(query if factor == 1.0 else _Q.boost_query(query, factor))
                if word.prefix and path != "all":
                    # A path in the JSON field ``f`` has no term list to read:
                    # one prefix query, whose matches all score alike.
                    alternatives.append(
                        _Q.fuzzy_term_query(schema, path, word.text, distance=0, prefix=True)
                    )
                for term, frequency in others.items():
                    query = _Q.term_query(schema, path, term)
                    factor = weight(frequency)
                    if word.prefix and not _whole_word_match(word, term):
                        factor *= PREFIX_ONLY_WEIGHT
                    alternatives.append(query if factor == 1.0 else _Q.boost_query(query, factor))
            if len(alternatives) == 1:
                per_word.append(alternatives[0])
            else:
                per_word.append(_Q.disjunction_max_query(alternatives))
        if len(per_word) == 1:
            return per_word[0]
        return _Q.boolean_query([(_MUST, q) for q in per_word])


class _Counted(NamedTuple):
    """The query that counted a query's matches, and the first pass's (the
    words as typed): the same, unless the second, tolerant pass (typos and
    completions) ran."""

    query: tantivy.Query
    exact: tantivy.Query

    @property
    def tolerant(self) -> bool:
        return self.query is not self.exact

    def scoring(self) -> list[tantivy.Query]:
        """The queries a document is scored by, first match wins: as typed,
        then as the second pass finds it."""
        return [self.exact] if self.query is self.exact else [self.exact, self.query]


def _one_name(names: set[str | None]) -> str | None:
    """The field name every document gave, if they all gave the same one."""
    if len(names) == 1:
        (name,) = names
        return name
    return None


def _ranking_key(text: str, options: QueryOptions) -> Hashable:
    """What a query's ranking depends on, besides the data: its text and
    every option but where the page starts within the ranking."""
    fields = None if options.fields is None else tuple(options.fields)
    return (text, fields, options.typos, options.prefix, options.offset + options.limit)


def _words_key(words: Sequence[Word], fields: Sequence[str] | None, wanted: int) -> Hashable:
    """What the first pass's ranking depends on, besides the data: the words
    as typed, in any order (tantivy ranks and scores them alike: 392 of 392
    two- and three-word queries on 1,000,000 generated documents, in every
    order), the fields searched and how deep the ranking goes. It answers a
    query of those words whose text is no document's key (key matches rank
    first) and whose first pass fills the page (else the second pass, which
    the options and the last word decide, runs)."""
    searched = None if fields is None else tuple(fields)
    return ("words", tuple(sorted(word.text for word in words)), searched, wanted)


def _count(result: tantivy.SearchResult) -> int:
    # (tantivy's type stubs miss ``count``, which ``count=True`` fills.)
    return int(getattr(result, "count", 0) or 0)


def _unseen(
    hits: list[tuple[float, tantivy.DocAddress]], seen: set[tuple[int, int]]
) -> list[tuple[float, tantivy.DocAddress]]:
    """``hits`` not in ``seen``, which they are added to."""
    fresh = []
    for score, address in hits:
        ident = (address.segment_ord, address.doc)
        if ident not in seen:
            seen.add(ident)
            fresh.append((score, address))
    return fresh


def _completions(searcher: tantivy.Searcher, path: str, prefix: str) -> list[tuple[str, int]]:
    """The longer words of field ``path`` starting with ``prefix``: the most
    frequent :data:`MAX_PREFIX_EXPANSIONS` of them, with their frequencies."""
    # The most frequent first (tantivy keeps only those), one more in case
    # the prefix itself is a word.
    terms = searcher.terms_with_prefix(path, prefix, limit=MAX_PREFIX_EXPANSIONS + 1)
    completions = [(term, frequency) for term, frequency in terms if term != prefix]
    return completions[:MAX_PREFIX_EXPANSIONS]


#: Query words whose matches beside themselves a snapshot remembers (each
#: at most MAX_TYPO_EXPANSIONS + MAX_PREFIX_EXPANSIONS words: about 8 MB).
MAX_REMEMBERED_WORDS = 1024


def _others(snapshot: _Snapshot, word: Word, all_fields: bool) -> Mapping[str, int]:
    """The words ``word`` also matches in ``snapshot`` (not itself), with
    their frequencies: within its typos, from the dictionary of ``all``
    (every searchable field's words), and, searching ``all``, its
    completions. Remembered for the snapshot."""
    key = (word, all_fields)
    remembered = snapshot.others.get(key)
    if remembered is None:
        found: dict[str, int] = {}
        if word.typos:
            found.update(_near_words(snapshot.words, word))
        if word.prefix and all_fields:
            found.update(_completions(snapshot.searcher, "all", word.text))
        found.pop(word.text, None)
        if len(snapshot.others) >= MAX_REMEMBERED_WORDS:
            snapshot.others.clear()
        # Shared by the queries of the snapshot: read-only.
        remembered = snapshot.others[key] = types.MappingProxyType(found)
    return remembered


def _near_words(dictionary: Dictionary, word: Word) -> dict[str, int]:
    """The dictionary's words within ``word``'s typos (see
    :mod:`trio_search._dictionary`), with their frequencies: the most
    frequent :data:`MAX_TYPO_EXPANSIONS`."""
    near = dictionary.near(word)
    if len(near) <= MAX_TYPO_EXPANSIONS:
        return near
    ranked = sorted(near.items(), key=lambda item: (-item[1], item[0]))
    return dict(ranked[:MAX_TYPO_EXPANSIONS])


def _whole_word_match(word: Word, term: str) -> bool:
    """Whether ``term`` matches ``word`` as a whole word, within its typos,
    and not only by its beginning (as a prefix word may match)."""
    if abs(len(term) - len(word.text)) > word.typos:
        return False
    return typo_count(word.text, term, word.typos) <= word.typos


def _blend(snapshot: _Snapshot, typed: int, others: Mapping[str, int]) -> Callable[[int], float]:
    """The weight of each word a query word matches (as typed, in ``typed``
    documents, and the ``others`` beside it), by its frequency: its BM25
    rarity (IDF) brought down to that of the most frequent of them all, so
    that they count as one word, as Lucene's
    ``BlendedTermQuery`` does. Otherwise a rare completion or typo match
    (``closefd`` for ``clos``) would outrank the word meant (``close``) by
    rarity alone."""
    if not others:
        return lambda frequency: 1.0
    documents = snapshot.documents
    common = max(typed, *others.values())

    def rarity(frequency: int) -> float:
        # tantivy's BM25 IDF.
        return math.log(1 + (documents - frequency + 0.5) / (frequency + 0.5))

    floor = rarity(common)
    return lambda frequency: min(1.0, floor / rarity(frequency)) if frequency else 1.0


def _stored(snapshot: _Snapshot, address: tantivy.DocAddress) -> tuple[str, str]:
    """The key and answer of the document at ``address``, read from the
    snapshot's store once and then remembered (see ``_Snapshot.stored``)."""

    def read() -> tuple[str, str]:
        document = snapshot.searcher.doc(address)
        return document["key"][0], document["answer"][0]

    return snapshot.stored.get((address.segment_ord, address.doc), read)


def _doc_query(
    index: SearchIndex, searcher: tantivy.Searcher, address: tantivy.DocAddress
) -> tantivy.Query:
    """A query matching exactly the document at ``address`` (by its key)."""
    key = searcher.doc(address)["key"][0]
    return _Q.term_query(index._index.schema, "key", key)


def _json_path(name: str) -> str:
    """The path of field ``name`` in the JSON field ``f``. Tantivy reads ``.``
    in a path as a step into an object and ``\\`` as an escape, but stored
    the documents' field names whole: both are escaped to mean themselves."""
    return "f." + name.replace("\\", "\\\\").replace(".", "\\.")
