"""How trio_search lays documents out in a tantivy index: the fields, the
analyzers that cut text into words, writing a document, and making or
opening the index. :mod:`trio_search._engine` searches what this writes.

Each document is stored once, with these tantivy fields:

- ``key``: the key, untouched (``raw``), stored: what ``search`` looks up;
- ``key_norm``: the key lower-cased with accents folded, one term: an exact
  key match (whatever its case) ranks first in ``query``;
- ``answer``: the answer, stored, for replies (not searched: its analyzer
  makes no terms, which saves building a term per document);
- ``all``: every searchable field's text, cut into words (as
  :mod:`trio_search._words` says: letters, digits and their marks, a
  Chinese or Japanese character alone; lower case, ASCII folding): what a
  query searches by default;
- ``f``: a JSON field holding each searchable field under its own name, for
  queries restricted to ``fields``; only in an index built with field
  queries (:attr:`IndexMeta.field_queries`), since it indexes every word a
  second time: without it, building goes about twice as fast.

The analyzers are registered under the same names in every index, so that
one written by ``trio-search-index`` is read alike by every server.

All text is read in Unicode's composed form (NFC) before the analyzers see
it, queries as documents: a letter with its accent as a second character
(``e`` + U+0300, as macOS types it) would otherwise end the word there.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple, Protocol

import orjson
import tantivy

from . import _codes as codes
from ._errors import ConfigurationError
from ._index_meta import TANTIVY_META, read_meta
from ._words import ascii_words_analyzer, index_text, indexed_text_analyzer, words_analyzer

#: Names the analyzers are registered under in every index.
TEXT_ANALYZER = "trio_search_text"
KEY_ANALYZER = "trio_search_key"
STORED_ONLY_ANALYZER = "trio_search_stored_only"
#: Memory tantivy may use to buffer documents before writing a segment, in
#: bytes per writer thread (used as documents come, not reserved): more means
#: fewer, larger segments, and every query pays a fixed cost per segment
#: (each of its terms is looked up in each one's dictionary). With 512 MiB a
#: million generated documents make 2 segments; with 128 MiB they made 7, and
#: queries cost up to 2x more (measured when typos were fuzzy queries).
WRITER_HEAP_BYTES = 512 * 1024 * 1024
#: Bytes of stored documents (keys, answers) compressed together, against
#: tantivy's default of 16 KiB: a reply reads the whole block of each of its
#: hits. On 1,000,000 generated documents a document at random took 14 us to
#: read with 16 KiB blocks, 7 us with 4 KiB and 6 us with 2 KiB, for an index
#: 1.5 % (4 KiB) or 3 % (2 KiB) larger: 4 KiB saves about 70 us of a query
#: with ten hits.
DOCSTORE_BLOCK_BYTES = 4 * 1024
#: Writer threads when building: one per core of the 2-core machines we run on.
WRITER_THREADS = 2
#: Data files smaller than this, in bytes, are indexed by one writer thread.
#: Each thread writes its own segment, and every query pays a fixed cost per
#: segment (each term is looked up in each one's dictionary); two threads
#: pay off only for large files (a million generated documents,
#: 227 MB: 64,785 documents/s against about 44,000 with one).
ONE_WRITER_THREAD_MAX_BYTES = 64 * 1024 * 1024


def writer_threads(data_bytes: int) -> int:
    """Writer threads for indexing a data file of ``data_bytes`` bytes."""
    return 1 if data_bytes < ONE_WRITER_THREAD_MAX_BYTES else WRITER_THREADS


_dumps = orjson.dumps
_SURROGATE = re.compile("[\ud800-\udfff]")


class DocumentLike(Protocol):
    """What the engine needs of a document (see ``trio_search._documents``)."""

    @property
    def key(self) -> str: ...
    @property
    def answer(self) -> str: ...
    @property
    def fields(self) -> Mapping[str, str]: ...


def _key_analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.raw())
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .build()
    )


def _stored_only_analyzer() -> tantivy.TextAnalyzer:
    # tantivy indexes every text field; this one keeps no token at all.
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.raw())
        .filter(tantivy.Filter.remove_long(0))
        .build()
    )


#: Cut a query's text, or an answer to highlight, into words: any text, and
#: ASCII text at a third of the cost (see _analyzer_for()).
_TEXT = words_analyzer()
_ASCII_TEXT = ascii_words_analyzer()
#: Cuts a searchable field's text, made by index_text(), into words.
_INDEXED_TEXT = indexed_text_analyzer()
_KEY = _key_analyzer()
_STORED_ONLY = _stored_only_analyzer()


def _analyzer_for(text: str) -> tantivy.TextAnalyzer:
    """The analyzer that cuts ``text`` into words at the least cost."""
    return _ASCII_TEXT if text.isascii() else _TEXT


def encodable(text: str) -> str:
    """``text`` with lone surrogates (valid in JSON, not in UTF-8, so never
    in the index) replaced by U+FFFD, a separator to the analyzer."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def composed(text: str) -> str:
    """``text`` in Unicode's composed form (NFC): an accent typed as its own
    character (``e`` + U+0301) joined to its letter (``é``), which the
    analyzers keep in the word. ASCII text, and text already composed (the
    usual case), is returned as it is, at the cost of a check."""
    return text if _is_composed(text) else unicodedata.normalize("NFC", text)


def _is_composed(text: str) -> bool:
    return text.isascii() or unicodedata.is_normalized("NFC", text)


def analyze(text: str) -> list[str]:
    """``text``'s words as the index stores them (lower case, accents folded)."""
    text = composed(encodable(text))
    return _analyzer_for(text).analyze(text)


def normalized_key(key: str) -> str:
    """``key`` as the field ``key_norm`` holds it: lower case, accents
    folded (empty for an empty key)."""
    terms = _KEY.analyze(composed(encodable(key)))
    return terms[0] if terms else ""


class PlacedWord(NamedTuple):
    """A word of a text and where it is in that text, in characters (what a
    ``tantivy.Token`` of the text's composed form says, moved to the text)."""

    text: str
    char_offset_from: int
    char_offset_to: int


def tokens(text: str) -> list[tantivy.Token] | list[PlacedWord]:
    """``text``'s words as the index stores them, each with where it is in
    ``text`` (``char_offset_from`` and ``char_offset_to``, in characters):
    what highlighting needs, in one call to the analyzer."""
    # A lone surrogate becomes one U+FFFD: the offsets stay those of text.
    text = encodable(text)
    if _is_composed(text):
        tokenized: list[tantivy.Token] = _analyzer_for(text).pre_tokenize(text).tokens
        return tokenized
    return _tokens_of_decomposed(text)


#: The general categories (first letters) of the characters a word may
#: hold: letters, digits and marks.
_WORD_CATEGORIES = "LNM"


def _tokens_of_decomposed(text: str) -> list[PlacedWord]:
    """:func:`tokens` for a text not in composed form: each letter with the
    marks that follow it is composed on its own, so that every character of
    the composed text comes from one such cluster of ``text``, and a word's
    place in ``text`` runs from its first cluster's start to its last one's
    end.

    Marks after a character that is no part of a word (a space, the line
    break between a page's answers) are a cluster of their own: nothing
    composes with those, and a mark that is a word by itself (an Arabic
    tanwin, a Hebrew point after a space) must not begin at them.
    """
    pieces: list[str] = []
    starts: list[int] = []  # per composed character: its cluster's start in text
    ends: list[int] = []  # and its cluster's end
    start = 0
    for position in range(1, len(text) + 1):
        if (
            position < len(text)
            and unicodedata.combining(text[position])
            and unicodedata.category(text[start])[0] in _WORD_CATEGORIES
        ):
            continue
        piece = unicodedata.normalize("NFC", text[start:position])
        pieces.append(piece)
        starts += [start] * len(piece)
        ends += [position] * len(piece)
        start = position
    return [
        PlacedWord(token.text, starts[token.char_offset_from], ends[token.char_offset_to - 1])
        for token in _TEXT.pre_tokenize("".join(pieces)).tokens
    ]


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    # One term per key: positions would never be used.
    builder.add_text_field("key", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("key_norm", tokenizer_name=KEY_ANALYZER, index_option="basic")
    builder.add_text_field(
        "answer", stored=True, tokenizer_name=STORED_ONLY_ANALYZER, index_option="basic"
    )
    builder.add_text_field("all", tokenizer_name=TEXT_ANALYZER, index_option="freq")
    builder.add_json_field("f", tokenizer_name=TEXT_ANALYZER, index_option="freq")
    return builder.build()


def _register_analyzers(index: tantivy.Index) -> tantivy.Index:
    index.register_tokenizer(TEXT_ANALYZER, _INDEXED_TEXT)
    index.register_tokenizer(KEY_ANALYZER, _KEY)
    index.register_tokenizer(STORED_ONLY_ANALYZER, _STORED_ONLY)
    return index


def tantivy_document(document: DocumentLike, field_queries: bool = False) -> tantivy.Document:
    """The tantivy document that indexes ``document`` (see the theory of
    operation); with ``field_queries``, each field's words also on their own."""
    # The hot path of building an index. add_text() skips the type guessing
    # of Document(**kwargs), and tantivy parses a JSON string faster than it
    # converts a dict (about 7 instead of 11 us per document in all).
    key = document.key
    text, by_field = _searchable(document.fields, field_queries)
    doc = tantivy.Document()
    doc.add_text("key", key)
    doc.add_text("key_norm", composed(key))
    doc.add_text("answer", document.answer)
    doc.add_text("all", text)
    if by_field is None:
        return doc
    try:
        doc.add_json("f", _dumps(by_field).decode())
    except orjson.JSONEncodeError:
        doc.add_json("f", by_field)  # a lone surrogate in a name: tantivy refuses it too
    return doc


def _searchable(
    fields: Mapping[str, str], field_queries: bool
) -> tuple[str, dict[str, str] | None]:
    """The text of the fields ``all`` and, with ``field_queries``, ``f`` of
    a document of these searchable ``fields``: composed (see
    :func:`composed`), then cut into words by :func:`index_text`."""
    if not field_queries:
        return index_text(composed("\n".join(fields.values()))), None
    by_field = {name: index_text(composed(text)) for name, text in fields.items()}
    return " ".join(by_field.values()), by_field


def add_document(
    writer: tantivy.IndexWriter, document: DocumentLike, field_queries: bool = False
) -> None:
    """Add ``document`` to ``writer``, as :func:`tantivy_document` makes it.

    The hot path of building an index: tantivy reads a JSON string into its
    own document faster than it converts a :class:`tantivy.Document` (23.9
    against 31.3 us of CPU per generated document, indexing included).
    """
    key = document.key
    text, by_field = _searchable(document.fields, field_queries)
    record: dict[str, object] = {
        "key": key,
        "key_norm": composed(key),
        "answer": document.answer,
        "all": text,
    }
    if by_field is not None:
        record["f"] = by_field
    try:
        encoded = _dumps(record).decode()
    except orjson.JSONEncodeError:  # a lone surrogate: let the slow path fix it
        writer.add_document(tantivy_document(document, field_queries))
    else:
        writer.add_json(encoded)


def create_index(path: Path | None) -> tantivy.Index:
    """A new, empty tantivy index in directory ``path`` (which must exist and
    be empty), its stored documents in blocks of :data:`DOCSTORE_BLOCK_BYTES`;
    or in memory, with tantivy's own blocks."""
    schema = _schema()
    if path is None:
        return _register_analyzers(tantivy.Index(schema))
    tantivy.Index(schema, path=str(path))
    _set_docstore_block(path)
    return _register_analyzers(tantivy.Index.open(str(path)))


def _set_docstore_block(path: Path) -> None:
    """Set the new, still empty index's docstore block size in its
    ``meta.json``: tantivy-py takes no index settings, but tantivy reads
    them from there when the index is opened, and writes them back on every
    commit. A ``meta.json`` of a shape this code does not know is left as
    it is (tantivy's default blocks)."""
    meta_path = path / TANTIVY_META
    meta = json.loads(meta_path.read_bytes())
    settings = meta.get("index_settings") if isinstance(meta, dict) else None
    if not isinstance(settings, dict) or "docstore_blocksize" not in settings:
        return
    settings["docstore_blocksize"] = DOCSTORE_BLOCK_BYTES
    meta_path.write_text(json.dumps(meta))


def open_tantivy_index(path: Path) -> tantivy.Index:
    """The tantivy index in directory ``path``, analyzers registered.

    Raises:
        ConfigurationError: no readable trio_search index there.
    """
    read_meta(path)
    try:
        index = tantivy.Index.open(str(path))
    except (OSError, ValueError) as exc:
        reason = tantivy_reason(exc)
        if "Lockfile" in reason and "Read-only" in reason:
            reason += (
                " (tantivy writes a lock file in the index directory even to read it: "
                "serve the index from a directory that can be written to)"
            )
        raise ConfigurationError(
            f"cannot open index {str(path)!r}: {reason}", code=codes.BAD_INDEX
        ) from exc
    return _register_analyzers(index)


#: How tantivy's messages show an OS error: Rust's debug form of it.
_RUST_OS_ERROR = re.compile(r'IoError\(Os \{ code: \d+, kind: \w+, message: "([^"]*)" \}\)')


def tantivy_reason(exc: Exception) -> str:
    """The message of an error tantivy raised, for a person: on one line,
    an OS error as its message (``Read-only file system``, not Rust's
    ``IoError(Os { code: 30, ... })``), without the ``. None`` tantivy
    adds when it has no detail."""
    reason = " ".join(str(exc).split())
    reason = _RUST_OS_ERROR.sub(r"\1", reason)
    return reason.removesuffix(". None")
