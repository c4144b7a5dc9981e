"""What a ``query`` request asks for, and the words it matches, without the engine.

Theory of operation
-------------------

A query's text is cut into words as the index's text is (letters and
digits with their marks, each Chinese or Japanese character alone;
lower-cased, accents folded: see :mod:`trio_search._words`), so
``MORPHEUS`` and ``Morphéus`` both look for ``morpheus``, and ``東京`` for
``東`` and ``京``. Each word may then match:

- exactly;
- with typos, as Meilisearch allows them: one edit in a word of
  :data:`ONE_TYPO_MIN_LENGTH` letters or more, two from
  :data:`TWO_TYPOS_MIN_LENGTH`; shorter words must match exactly. A changed
  first letter counts as two typos (:func:`typo_count`): people rarely get
  it wrong, and allowing it would match many unrelated words;
- for the last word only, as the prefix of a longer word (search as you
  type), unless the text ends with a separator (``"rab "`` is a whole word)
  or the word is shorter than :data:`MIN_PREFIX_LENGTH`.

This module checks the request's options and computes, for each word, what
it may match; :mod:`trio_search._engine` turns that into engine queries, and
:func:`highlight` marks the matched words in an answer for the reply.
Everything here is pure: no engine, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import attrs
from rapidfuzz.distance import OSA

from . import _codes as codes
from ._errors import RequestError
from ._json import bad_value_reason, json_type_name

#: Hits per answer unless the request says otherwise.
DEFAULT_QUERY_LIMIT = 10
#: Most hits one answer may hold: bounds the reply's size and the work of
#: fetching and highlighting stored documents.
MAX_QUERY_LIMIT = 100
#: Largest ``offset``: deep paging costs the engine offset + limit hits.
MAX_QUERY_OFFSET = 10_000
#: Longest query text, in characters: a search box, not a document.
MAX_QUERY_LENGTH = 512
#: Most words of two characters or more in one query. Each is one more
#: term, fuzzy and prefix expansion to run; Meilisearch considers ten words
#: too.
MAX_QUERY_WORDS = 10
#: Most words in one query, counting those of one character: a Chinese or
#: Japanese character is a word of its own, and a query of a dozen of them
#: is an ordinary one. A word of one character is one term, with no typos
#: and no completions (shorter than ONE_TYPO_MIN_LENGTH and
#: MIN_PREFIX_LENGTH): each adds one list of postings to intersect.
MAX_QUERY_TERMS = 32
#: Most fields one query may name in ``fields``.
MAX_QUERY_FIELDS = 16
#: Shortest word, in characters, that matches with one typo.
ONE_TYPO_MIN_LENGTH = 5
#: Shortest word, in characters, that matches with two typos.
TWO_TYPOS_MIN_LENGTH = 9
#: Shortest last word that also matches as a prefix. Shorter ones expand to a
#: large share of the dictionary: on 1,000,000 generated documents a default
#: one-word query took 9.4 ms of CPU with two-letter prefixes, 4.8 ms from
#: three (as many search-as-you-type boxes start).
MIN_PREFIX_LENGTH = 3

#: Tokens whose match within typos one query remembers while highlighting
#: its hits.
MATCHER_MEMORY = 4096

#: Characters of an answer that its highlight marks, at most; the rest of
#: the answer follows unmarked. Cutting an answer into words costs about
#: 1 us a word (the analyzer's tokens, with their places), so an answer of
#: 10 MB took 1.5 s to mark whole; this bounds a hit to about 2 ms.
MAX_HIGHLIGHTED_CHARACTERS = 10_000

#: Marks put around each matched word in a hit's ``highlight``.
HIGHLIGHT_START = "<em>"
HIGHLIGHT_END = "</em>"

#: Error code of a query the server cannot run (bad option, bad text).
BAD_QUERY = codes.BAD_QUERY
#: Error code of a query over the length, word or field limits.
QUERY_TOO_LONG = codes.QUERY_TOO_LONG

_OPTION_NAMES = frozenset({"action", "value", "limit", "offset", "typos", "prefix", "fields"})


def _option_range(low: int, high: int) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    """An attrs validator: an integer (not a bool) from ``low`` to ``high``."""

    def check(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        name = attribute.name
        if type(value) is not int:
            raise ValueError(f"'{name}' must be an integer, not {json_type_name(value)}")
        if not low <= value <= high:
            raise ValueError(f"'{name}' must be from {low} to {high}, not {value}")

    return check


def _option_bool(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not bool:
        raise ValueError(f"'{attribute.name}' must be true or false, not {json_type_name(value)}")


def _field_names(value: Sequence[str] | None) -> tuple[str, ...] | None:
    """``fields`` as a tuple, each name once, in order; anything but a list
    or tuple of strings is left for :func:`_check_fields` to refuse."""
    if isinstance(value, (list, tuple)) and all(isinstance(name, str) for name in value):
        return tuple(dict.fromkeys(value))
    return value  # type: ignore[return-value]  # refused by the validator


def _check_fields(
    _instance: object, _attribute: attrs.Attribute[Any], value: tuple[str, ...] | None
) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or not all(isinstance(name, str) for name in value):
        raise ValueError("'fields' must be a list of field names")
    if not value:
        raise ValueError("'fields' must name at least one field")
    if len(value) > MAX_QUERY_FIELDS:
        raise ValueError(f"'fields' names {len(value)} fields; at most {MAX_QUERY_FIELDS}")


@attrs.frozen
class QueryOptions:
    """How to run a query; the defaults are those of a request without options.

    Checked on creation with the bounds and messages a ``query`` request's
    options get from the server (where they are a ``bad_query`` answer).

    Attributes:
        limit: Hits to return, 1 to 100 (``MAX_QUERY_LIMIT``).
        offset: Hits to skip first (for paging), 0 to 10,000
            (``MAX_QUERY_OFFSET``).
        typos: Let longer words match with one or two typos.
        prefix: Let the last word match as a prefix.
        fields: Search only these fields (a list or tuple of 1 to 16 names,
            ``MAX_QUERY_FIELDS``, kept as a tuple, each name once); ``None``
            searches every searchable field.

    Raises:
        ValueError: an option of the wrong type or out of range, with the
            message the server answers it with (``'limit' must be from 1 to
            100, not 0``).
    """

    limit: int = attrs.field(
        default=DEFAULT_QUERY_LIMIT, validator=_option_range(1, MAX_QUERY_LIMIT)
    )
    offset: int = attrs.field(default=0, validator=_option_range(0, MAX_QUERY_OFFSET))
    typos: bool = attrs.field(default=True, validator=_option_bool)
    prefix: bool = attrs.field(default=True, validator=_option_bool)
    fields: tuple[str, ...] | None = attrs.field(
        default=None, converter=_field_names, validator=_check_fields
    )


@attrs.frozen
class Word:
    """One word of a query, normalized, and how it may match."""

    text: str
    typos: int
    prefix: bool


def marked_spans(answer: str, highlight: str) -> list[tuple[int, int]] | None:
    """Where ``highlight`` (``answer`` with :data:`HIGHLIGHT_START` and
    :data:`HIGHLIGHT_END` around some words) marks words of ``answer``, as
    ``(start, stop)`` offsets into it; ``None`` if it is not that.

    The answer's own ``<em>`` cannot be mistaken for a mark: a mark always
    opens right before a word's letter or digit, never before a ``<``, and
    closes right after the word, whose letters hold no ``<``.
    """
    start, end = HIGHLIGHT_START, HIGHLIGHT_END
    spans: list[tuple[int, int]] = []
    at = into = 0  # positions in answer and in highlight
    opened: int | None = None
    while into < len(highlight):
        if opened is None:
            if highlight.startswith(start, into) and not answer.startswith(start, at):
                opened = at
                into += len(start)
                continue
        elif highlight.startswith(end, into):
            spans.append((opened, at))
            opened = None
            into += len(end)
            continue
        if at >= len(answer) or answer[at] != highlight[into]:
            return None
        at += 1
        into += 1
    if opened is not None or at != len(answer):
        return None
    return spans


@attrs.frozen
class Hit:
    """One document matching a query.

    Attributes:
        key: The document's key.
        answer: The document's answer.
        score: BM25 relevance of the words (higher is better). Hits are
            ordered by exact key match first, then by documents matching
            every word without typos, then by score.
        highlight: The answer with the matched words between
            ``<em>`` and ``</em>`` (``HIGHLIGHT_START``, ``HIGHLIGHT_END``).
    """

    key: str
    answer: str
    score: float
    highlight: str

    def marks(self) -> list[tuple[int, int]]:
        """Where :attr:`highlight` marks words in :attr:`answer`, as
        ``(start, stop)`` offsets into the answer: what a client needs to
        escape the answer itself (for HTML, say) and mark it its own way,
        even when the answer holds ``<em>`` of its own.

        Raises:
            ValueError: the highlight is not the answer with marks added.
        """
        spans = marked_spans(self.answer, self.highlight)
        if spans is None:
            raise ValueError("the highlight is not the answer with marks added")
        return spans

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "answer": self.answer,
            "score": self.score,
            "highlight": self.highlight,
        }


@attrs.frozen
class QueryResult:
    """The hits of one page of a query and how many documents match in all."""

    hits: list[Hit]
    total: int


def _bad(message: str, code: str = BAD_QUERY) -> RequestError:
    return RequestError(message, code=code)


def check_query_length(text: str) -> None:
    """Refuse a query text of more than :data:`MAX_QUERY_LENGTH` characters.

    The one place of the rule: a request's text meets it in
    :func:`parse_query_request` (before its options), and every text meets
    it in :func:`query_words`, so a program calling ``SearchIndex.query``
    is refused as a client is, before the text is analyzed.

    Raises:
        RequestError: the text is too long (``query_too_long``).
    """
    if len(text) > MAX_QUERY_LENGTH:
        raise _bad(
            f"query is {len(text)} characters long; at most {MAX_QUERY_LENGTH}", QUERY_TOO_LONG
        )


def parse_query_request(body: dict[str, Any]) -> tuple[str, QueryOptions]:
    """The text and options of a ``query`` request's JSON object.

    Raises:
        RequestError: an option is unknown, of the wrong type or out of
            range (``bad_query``: what :class:`QueryOptions` refuses), or
            the text is too long (``query_too_long``).
    """
    unknown = sorted(str(name) for name in body if name not in _OPTION_NAMES)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise _bad(f"unknown option(s) {shown}")
    text = body.get("value")
    if not isinstance(text, str):
        raise RequestError(bad_value_reason(body), code=codes.BAD_VALUE)
    check_query_length(text)
    try:
        options = QueryOptions(
            limit=body.get("limit", DEFAULT_QUERY_LIMIT),
            offset=body.get("offset", 0),
            typos=body.get("typos", True),
            prefix=body.get("prefix", True),
            fields=body.get("fields"),
        )
    except ValueError as exc:
        raise _bad(str(exc)) from None
    return text, options


def typos_allowed(word: str) -> int:
    """Edits a word of this length may match with, as Meilisearch counts them."""
    if len(word) >= TWO_TYPOS_MIN_LENGTH:
        return 2
    if len(word) >= ONE_TYPO_MIN_LENGTH:
        return 1
    return 0


#: A letter put after a query's text to tell whether the text ends inside
#: its last word (:func:`_ends_inside_last_word`): a Latin letter, which
#: continues a word of any script but Chinese and Japanese (whose
#: characters are words of one character) and composes with nothing
#: before it.
_NEXT_LETTER = "a"


def _ends_inside_last_word(
    text: str, normalized: Sequence[str], analyze: Callable[[str], list[str]]
) -> bool:
    """Whether ``text``, whose words are ``normalized``, ends inside its
    last word: whether a letter typed next would lengthen that word rather
    than start another. A separator ends a word (``"rab "``), as does a
    mark after one; a mark after a letter (a virama, a vowel sign) does
    not, whether or not Unicode calls it alphabetic."""
    longer = analyze(text + _NEXT_LETTER)
    return len(longer) == len(normalized) and longer[-1] != normalized[-1]


def query_words(
    text: str, options: QueryOptions, analyze: Callable[[str], list[str]]
) -> list[Word]:
    """The words of ``text`` as the index sees them, each with what it may match.

    Args:
        analyze: The index's analyzer: text -> normalized words.

    Raises:
        RequestError: more than :data:`MAX_QUERY_LENGTH` characters,
            :data:`MAX_QUERY_WORDS` words of more than one character or
            :data:`MAX_QUERY_TERMS` words in all (``query_too_long``).
    """
    check_query_length(text)
    normalized = analyze(text)
    if len(normalized) > MAX_QUERY_TERMS:
        raise _bad(f"query has {len(normalized)} words; at most {MAX_QUERY_TERMS}", QUERY_TOO_LONG)
    longer = sum(1 for word in normalized if len(word) > 1)
    if longer > MAX_QUERY_WORDS:
        raise _bad(
            f"query has {longer} words of more than one character; at most {MAX_QUERY_WORDS}",
            QUERY_TOO_LONG,
        )
    # A separator after the last word says the word is complete.
    open_ended = (
        options.prefix
        and bool(normalized)
        and len(normalized[-1]) >= MIN_PREFIX_LENGTH
        and _ends_inside_last_word(text, normalized, analyze)
    )
    words: list[Word] = []
    for position, word in enumerate(normalized):
        last = position == len(normalized) - 1
        words.append(
            Word(
                text=word,
                typos=typos_allowed(word) if options.typos else 0,
                prefix=last and open_ended,
            )
        )
    return words


def edit_distance(word: str, token: str, limit: int, *, prefix: bool = False) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) from ``word``
    to ``token`` (to the closest prefix of it if ``prefix``), or ``limit + 1``
    when more than ``limit``: the distance tantivy's fuzzy queries allow
    (optimal string alignment, a swap costing one edit)."""
    if not prefix:
        return int(OSA.distance(word, token, score_cutoff=limit))
    best = limit + 1
    for length in range(max(0, len(word) - limit), min(len(token), len(word) + limit) + 1):
        best = min(best, int(OSA.distance(word, token[:length], score_cutoff=limit)))
    return best


def typo_count(word: str, token: str, limit: int, *, prefix: bool = False) -> int:
    """Typos from ``word`` to ``token`` (to the closest prefix of it if
    ``prefix``), or ``limit + 1`` when more than ``limit``: its
    :func:`edit_distance`, plus one when the first letters differ, since
    Meilisearch counts a changed first letter as two typos."""
    if token[:1] == word[:1]:
        return edit_distance(word, token, limit, prefix=prefix)
    if limit < 1:
        return limit + 1
    return 1 + edit_distance(word, token, limit - 1, prefix=prefix)


class WordMatcher:
    """Which index tokens some query word matches, as the engine matches
    them: a token equal to a word, starting with a prefix word, or within a
    word's typos (:func:`typo_count`).

    It works on a page's distinct tokens at once (:meth:`matched`), with
    set operations for the exact and prefix words, and counts typos only to
    tokens within reach: of a length near the word's, starting with its
    first letter unless it allows two typos. It remembers those answers
    (the hits of one query share most of their words).
    """

    def __init__(self, words: Sequence[Word]) -> None:
        self._exact = frozenset(word.text for word in words)
        self._prefixes = tuple(word.text for word in words if word.prefix)
        self._reach = [
            (
                word,
                len(word.text) - word.typos,
                math.inf if word.prefix else len(word.text) + word.typos,
                word.text[:1] if word.typos < 2 else "",
            )
            for word in words
            if word.typos
        ]
        self._near: dict[tuple[str, str], bool] = {}

    def matched(self, tokens: Iterable[str]) -> set[str]:
        """Those of ``tokens`` that some query word matches."""
        distinct = set(tokens)
        found = distinct & self._exact
        if self._prefixes:
            found.update(token for token in distinct if token.startswith(self._prefixes))
        for word, shortest, longest, first in self._reach:
            for token in distinct:
                if (
                    shortest <= len(token) <= longest
                    and token.startswith(first)
                    and token not in found
                    and self._within_typos(word, token)
                ):
                    found.add(token)
        return found

    def _within_typos(self, word: Word, token: str) -> bool:
        key = (word.text, token)
        known = self._near.get(key)
        if known is None:
            known = typo_count(word.text, token, word.typos, prefix=word.prefix) <= word.typos
            if len(self._near) < MATCHER_MEMORY:
                self._near[key] = known
        return known


class Token(Protocol):
    """A word of a text as the index's analyzer cuts it (a ``tantivy.Token``):
    how the index stores it, and where it is in the text (in characters)."""

    @property
    def text(self) -> str: ...
    @property
    def char_offset_from(self) -> int: ...
    @property
    def char_offset_to(self) -> int: ...


#: What joins a page's answers into one text for the analyzer: a separator
#: to it, so no word spans two answers, and one character, so each answer's
#: place in the joined text is known from the lengths before it.
_ANSWER_SEPARATOR = "\n"


def highlight(
    answer: str,
    words: Sequence[Word],
    tokenize: Callable[[str], Sequence[Token]],
    matches: WordMatcher | None = None,
) -> str:
    """``answer`` with each word that a query word matches marked.

    Args:
        tokenize: The index's analyzer: the words of a text, in order.
        matches: ``WordMatcher(words)``, shared by the hits of one query.
    """
    return highlight_all([answer], words, tokenize, matches)[0]


def highlight_all(
    answers: Sequence[str],
    words: Sequence[Word],
    tokenize: Callable[[str], Sequence[Token]],
    matches: WordMatcher | None = None,
) -> list[str]:
    """Each of ``answers`` with the words a query word matches marked, as
    :func:`highlight` marks one.

    The answers are cut into words in one call to the analyzer, and only
    the matched words' places are read: for a page of hits that is about
    a quarter less work than one call per answer. Only the first
    :data:`MAX_HIGHLIGHTED_CHARACTERS` of an answer are marked; the rest
    follows as it is.
    """
    if not words or not answers:
        return list(answers)
    if matches is None:
        matches = WordMatcher(words)
    heads = [answer[:MAX_HIGHLIGHTED_CHARACTERS] for answer in answers]
    text = _ANSWER_SEPARATOR.join(heads)
    tokens = tokenize(text)
    texts = [token.text for token in tokens]
    matched = matches.matched(texts)
    if not matched:
        return list(answers)
    marks = [
        (token.char_offset_from, token.char_offset_to)
        for token, token_text in zip(tokens, texts, strict=True)
        if token_text in matched
    ]
    if not marks:
        return list(answers)
    marked: list[str] = []
    start = 0  # where the answer being marked starts in text
    next_mark = 0
    for answer, head in zip(answers, heads, strict=True):
        stop = start + len(head)
        cut = len(head) < len(answer)
        parts: list[str] = []
        end = start
        while next_mark < len(marks) and marks[next_mark][0] < stop:
            word_start, word_stop = marks[next_mark]
            next_mark += 1
            if cut and word_stop == stop:
                continue  # a word the cut may have shortened: left unmarked
            if word_start == end and parts and parts[-1] == HIGHLIGHT_END:
                # Right after the word marked before, as Chinese and
                # Japanese characters (each a word) are: one mark for both.
                parts[-1] = text[word_start:word_stop]
                parts.append(HIGHLIGHT_END)
            else:
                parts += (text[end:word_start], HIGHLIGHT_START)
                parts += (text[word_start:word_stop], HIGHLIGHT_END)
            end = word_stop
        parts.append(text[end:stop])
        if cut:
            parts.append(answer[len(head) :])
        marked.append("".join(parts))
        start = stop + len(_ANSWER_SEPARATOR)
    return marked
