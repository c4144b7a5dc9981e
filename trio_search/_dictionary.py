"""What a misspelt word may have meant: the index's words within its typos.

Theory of operation
-------------------

tantivy can find typo matches itself: a fuzzy query runs a Levenshtein
automaton over the term dictionary. But building and running the automaton
costs about 0.1 ms for one typo and 0.5 ms for two on the 12,000 words of
the standard library's docstrings (0.7 and 4.6 ms on the million generated
documents), it scores every match alike, and it cannot count a changed
first letter as two typos, as Meilisearch does (see
:func:`trio_search._query.typo_count`). So the engine asks this module for
the words themselves, and queries them as plain terms, each scored by BM25.

Since a word's first letter is kept, its candidates are the index's words
that start with the same letter: that *slice* of the term dictionary is read
once per snapshot of the index, grouped by length, and kept; rapidfuzz then
counts the typos to every word of a length within reach, in C. A slice of
more than :data:`MAX_SLICE_WORDS` words (the digits of a million numbered
keys: 100,000 of them start with the same digit) is not kept: the slice of
the shortest longer prefix of the word that is small enough is read
instead, so there a typo in those first letters is not found.

For one typo, a list of words of some length is also looked up the other
way round when it is long: each spelling of the word with one typo (a
letter changed, put in, deleted, two swapped: Norvig's ``edits1``) in a set
of the list, when there are fewer spellings than words for rapidfuzz to
measure (see :meth:`_Slice._one_typo`). On the million generated
documents, where a letter's slice holds about 2,000 words, that makes a
misspelt word's lookup about three times cheaper.

A changed first letter counts as two typos, so only a word long enough for
two can have one, and nothing else: the word with its first letter
deleted, its first two letters swapped, or one of :data:`FIRST_LETTERS`
put in front of it or in place of its first letter. The slices of
:data:`TAIL_LETTERS` that are small enough (all of them for the standard
library's docstrings, 12,000 words; the letters but not the digits for the
million generated documents, 50,000 words) are also kept sorted by what
follows each word's first letter (:class:`_Tails`), so that the words any
of those letters puts in front of some text are found by one binary search:
about 0.01 ms a word, against 0.2 ms for a lookup of each spelling in the
term dictionary, which is what the other letters cost. They are read on the
first word long enough for two typos (27 ms on the standard library's
docstrings, 0.2-0.25 s on the million documents, once per snapshot).

Slices belong to one snapshot (a commit seen makes a new one, with an empty
dictionary). The sorted tails are read ahead, not by the first query that
needs them (which would wait for them, 0.2-0.25 s on the million generated
documents, and hold up those queued behind it): by a server as it loads an
index, and by a new snapshot whose predecessor had them, before it is
searched (:meth:`Dictionary.read_common`). Slices are bounded by
:data:`MAX_KEPT_WORDS`, and are safe to read and fill from several threads
at once: one thread at a time reads a slice or the tails, the others wait
for it rather than read the same words again (and count them twice: on the
million documents, two worker threads building the tails together made the
dictionary overflow and be read again, six times in 4,300 queries).
"""

from __future__ import annotations

import bisect
import functools
import string
import threading
from collections.abc import Iterator, KeysView, Sequence

import tantivy
from rapidfuzz import process
from rapidfuzz.distance import OSA

from ._query import Word

#: Most words a slice of the dictionary may hold: reading one costs about
#: 1.5 us a word (15 ms for this many), once per snapshot, and measuring
#: typos to the words of the lengths in reach about 0.1 us a word.
MAX_SLICE_WORDS = 10_000
#: Words kept in all slices of one snapshot, with the beginnings of them
#: that prefix words have needed and the lookups made of them (sorted tails,
#: sets): about 60 bytes each, so about 60 MB. A full dictionary is emptied
#: before more goes in, so what clients send cannot grow it. The million
#: generated documents' mixed queries settle at about 450,000.
MAX_KEPT_WORDS = 1_000_000
#: Most words starting with one spelling of a prefix word with its first
#: letter changed that are kept (the most frequent): the engine keeps no
#: more than 50 typo matches a word anyway.
MAX_CHANGED_WORDS = 50
#: Most words of a slice whose beginnings of one length are made without a
#: worker thread: about 0.23 us a word (1.4 ms for the 6,208 words of a
#: slice of the million generated documents), so at most 0.5 ms a length.
QUICK_BEGINNINGS_WORDS = 2_000
#: What looking up one spelling of a word with one typo costs, in words
#: rapidfuzz measures in that time (about 0.12 us against 0.09 us, both
#: measured on the million generated documents' dictionary).
SPELLING_COST = 1.5
#: Letters tried in front of a misspelt word and in place of its first one,
#: for a changed first letter: what the analyzer leaves of Latin text (lower
#: case, accents folded). A word in another script is not found with its
#: first letter changed.
FIRST_LETTERS = string.ascii_lowercase + string.digits
#: The first letters whose slices, when small enough, are kept sorted by
#: what follows the first letter (:class:`_Tails`), in the order read: the
#: digits after the letters, from 1, the commonest first digit of numbers
#: (Benford's law), since reading a slice too large costs a scan of all its
#: words (80 ms for each digit of the million generated documents' keys): if
#: the 1's is too large, the other digits' are not read.
TAIL_LETTERS = string.ascii_lowercase + "1023456789"


#: A list of words kept: a tuple, since a tuple of strings drops out of the
#: cyclic garbage collector's sight after its first pass, where a list of
#: them is walked by every full collection (the million generated
#: documents' mixed queries keep about 450,000 words).
Words = tuple[str, ...]


class _Slice:
    """The index's words starting with some letters, and how many documents
    hold each."""

    def __init__(self, terms: Sequence[tuple[str, int]]) -> None:
        self.frequency = dict(terms)
        self.sorted = tuple(sorted(self.frequency))
        by_length: dict[int, list[str]] = {}
        for term in self.sorted:
            by_length.setdefault(len(term), []).append(term)
        self.by_length = {length: tuple(words) for length, words in by_length.items()}
        #: By length: the words' distinct beginnings of that length (sorted),
        #: made when a prefix word first needs them.
        self.beginnings: dict[int, Words] = {}
        #: The lists above as sets, made when one typo is looked for in them
        #: by its spellings (see :meth:`_one_typo`), by the list's identity.
        self.sets: dict[int, tuple[Words, KeysView[str]]] = {}
        #: Every character of its words: what a typo may put in a word.
        self.alphabet = "".join(sorted(set("".join(self.sorted))))
        #: Words and beginnings held, for the dictionary's bound.
        self.held = len(terms)

    def has_beginnings_for(self, word: Word) -> bool:
        """Whether :meth:`near` a prefix ``word`` finds the beginnings of
        the lengths in its reach made, or would make them quickly."""
        if not word.prefix or len(self.sorted) <= QUICK_BEGINNINGS_WORDS:
            return True
        return all(length in self.beginnings for length in _lengths(word))

    def make_beginnings_for(self, word: Word) -> None:
        """Make the beginnings :meth:`near` a prefix ``word`` needs."""
        if word.prefix:
            for length in _lengths(word):
                self._beginnings(length)

    def near(self, word: Word) -> list[str]:
        """Its words within ``word``'s typos (a prefix of them for a prefix
        word); since they start with the same letter, typos are the OSA
        distance."""
        text, typos = word.text, word.typos
        lengths = _lengths(word)
        found: list[str] = []
        within = self._one_typo if typos == 1 else functools.partial(_within, typos=typos)
        if not word.prefix:
            for length in lengths:
                words = self.by_length.get(length, ())
                found += [words[at] for at in within(text, words)]
            return found
        words = self.sorted
        for length in lengths:
            starts = self._beginnings(length)
            for at in within(text, starts):
                found += [words[match] for match in _prefixed(words, starts[at], True)]
        return found

    def _one_typo(self, text: str, words: Words) -> list[int]:
        """Where in ``words`` (sorted, all of one length) those at most one
        typo from ``text`` are, as :func:`_within` finds them.

        rapidfuzz measures the typos to every word, about 0.09 us each. A
        long list is looked up instead, spelling by spelling, in a set of
        it: ``text`` with one letter of :attr:`alphabet` changed or put in,
        two swapped, or one deleted (Norvig's ``edits1``), as many as the
        list's length allows: 1,800 words on average for a one-typo word of
        the million generated documents, against about 350 spellings.
        """
        if not words:
            return []
        size, length, letters = len(text), len(words[0]), len(self.alphabet)
        if length == size:
            spellings = size * (letters + 1)
        elif length == size + 1:
            spellings = (size + 1) * letters
        else:
            spellings = size
        if spellings * SPELLING_COST >= len(words):
            return _within(text, words, 1)
        alphabet = self.alphabet
        if length == size:
            # Changing a letter to itself keeps text, which has no typo.
            edits = {text[:at] + c + text[at + 1 :] for at in range(size) for c in alphabet}
            edits.update(
                text[:at] + text[at + 1] + text[at] + text[at + 2 :] for at in range(size - 1)
            )
        elif length == size + 1:
            edits = {text[:at] + c + text[at:] for at in range(size + 1) for c in alphabet}
        else:
            edits = {text[:at] + text[at + 1 :] for at in range(size)}
        found = [bisect.bisect_left(words, match) for match in self._set_of(words) & edits]
        # As rapidfuzz orders them: the word itself (no typo) first.
        return sorted(found, key=lambda at: (words[at] != text, at))

    def _set_of(self, words: Words) -> KeysView[str]:
        """``words`` (one of this slice's lists) as a set, made once: the
        keys of a dict of strings, which the garbage collector does not
        track, where it walks a frozenset item by item at every full
        collection (on the million generated documents, after 20,000 of
        the open loop's queries, a full collection took 49 ms with
        frozensets, 35 with dicts). A lookup costs 4.5 us against 2.2."""
        kept = self.sets.get(id(words))
        if kept is None or kept[0] is not words:
            kept = (words, dict.fromkeys(words).keys())
            self.sets[id(words)] = kept
            self.held += len(words)
        return kept[1]

    def starting(self, start: str, prefix: bool) -> dict[str, int]:
        """Its word ``start`` (or, if ``prefix``, its words starting so: at
        most :data:`MAX_CHANGED_WORDS`, the most frequent), with their
        frequencies."""
        words = [self.sorted[at] for at in _prefixed(self.sorted, start, prefix)]
        return {word: self.frequency[word] for word in _most_frequent(words, self.frequency)}

    def _beginnings(self, length: int) -> Words:
        try:
            return self.beginnings[length]
        except KeyError:
            pass
        # Sorted words: those sharing a beginning are neighbours.
        starts = tuple(dict.fromkeys(term[:length] for term in self.sorted if len(term) >= length))
        self.beginnings[length] = starts
        self.held += len(starts)
        return starts


def _lengths(word: Word) -> range:
    """The lengths of the words (or beginnings) within ``word``'s typos."""
    return range(len(word.text) - word.typos, len(word.text) + word.typos + 1)


def _prefixed(words: Sequence[str], start: str, prefix: bool) -> Iterator[int]:
    """Where in sorted ``words`` those that are ``start`` (or, if
    ``prefix``, start with it) are (several may be: the tails of words
    that differ by their first letter)."""
    at = bisect.bisect_left(words, start)
    while at < len(words) and (words[at].startswith(start) if prefix else words[at] == start):
        yield at
        at += 1


def _most_frequent(words: list[str], frequency: dict[str, int]) -> list[str]:
    """``words``, or the :data:`MAX_CHANGED_WORDS` most frequent of them."""
    if len(words) <= MAX_CHANGED_WORDS:
        return words
    return sorted(words, key=frequency.__getitem__, reverse=True)[:MAX_CHANGED_WORDS]


class _Tails:
    """The words of some slices sorted by what follows their first letter,
    so that the words any letter puts in front of some text are neighbours."""

    def __init__(self, pieces: dict[str, _Slice]) -> None:
        pairs = sorted((term[1:], term) for piece in pieces.values() for term in piece.sorted)
        self.tails = tuple(tail for tail, _term in pairs)
        self.words = tuple(term for _tail, term in pairs)
        self.pieces = pieces
        self.held = len(pairs)

    def after_any_letter(self, text: str, prefix: bool) -> list[str]:
        """The words that are one letter and ``text`` (or, if ``prefix``,
        that start so): at most :data:`MAX_CHANGED_WORDS` of each first
        letter, the most frequent, as tantivy's ``limit`` would keep."""
        by_letter: dict[str, list[str]] = {}
        for at in _prefixed(self.tails, text, prefix):
            term = self.words[at]
            by_letter.setdefault(term[0], []).append(term)
        found: list[str] = []
        for letter, terms in by_letter.items():
            found += _most_frequent(terms, self.pieces[letter].frequency)
        return found


def _within(text: str, choices: Sequence[str], typos: int) -> list[int]:
    """Where in ``choices`` those at most ``typos`` edits from ``text`` are."""
    if not choices:
        return []
    found = process.extract(text, choices, scorer=OSA.distance, score_cutoff=typos, limit=None)
    return [at for _choice, _distance, at in found]


class Dictionary:
    """The words of one snapshot's field ``field``, read a slice at a time."""

    def __init__(self, searcher: tantivy.Searcher, field: str = "all") -> None:
        self._searcher = searcher
        self._field = field
        #: Slices by the letters they start with; ``None`` for one too large.
        self._slices: dict[str, _Slice | None] = {}
        #: The small slices of TAIL_LETTERS by what follows the first
        #: letter: ``None`` until read, ``False`` when too many words.
        self._tails: _Tails | bool | None = None
        self._kept = 0
        self._lock = threading.Lock()
        #: Held while reading a slice or the tails: by one thread at a time,
        #: so that two threads do not read (and count) the same words twice.
        self._reading = threading.RLock()

    def has_slice(self, word: str) -> bool:
        """Whether :meth:`near` ``word`` finds its slice already read (it
        may still look up a few words with a changed first letter)."""
        return self._read_slice_of(word) is not False

    def _read_slice_of(self, word: str) -> _Slice | bool | None:
        """The slice ``word``'s typos are looked for in, if read: ``None``
        if even the whole word's slice is too large, ``False`` if unread."""
        for prefix in range(1, len(word) + 1):
            piece = self._slices.get(word[:prefix], False)
            if piece is not None:
                return piece
        return None

    def is_read_for(self, word: Word) -> bool:
        """Whether :meth:`near` ``word`` reads nothing more from the index
        than a few words (those with its first letter changed, if the
        dictionary is too large to keep them sorted by what follows it),
        and makes no beginnings of its slice's words."""
        piece = self._read_slice_of(word.text)
        if piece is False:
            return False
        if word.typos >= 2 and self._tails is None:
            return False
        return not isinstance(piece, _Slice) or piece.has_beginnings_for(word)

    def read_for(self, word: Word) -> None:
        """Read and make what :meth:`near` ``word`` needs, so that
        :meth:`is_read_for` it is true."""
        if not word.typos:
            return
        piece = self.read_slice(word.text)
        if piece is not None:
            held = piece.held
            piece.make_beginnings_for(word)
            self._keep(piece.held - held)
        if word.typos >= 2:
            self._sorted_tails()

    def read_common(self) -> None:
        """Read what the first queries for words long enough for two typos
        need, whatever their letters: the slices of :data:`TAIL_LETTERS`,
        sorted by what follows the first letter (about 0.2 s on the million
        generated documents, 27 ms on the standard library's docstrings)."""
        self._sorted_tails()

    def has_tails(self) -> bool:
        """Whether the sorted tails are read (see :meth:`read_common`)."""
        return isinstance(self._tails, _Tails)

    def near(self, word: Word) -> dict[str, int]:
        """The index's words within ``word``'s typos (a prefix of them for a
        prefix word), not ``word`` itself, with the documents holding each."""
        text, typos = word.text, word.typos
        if not typos or not text:
            return {}
        found: dict[str, int] = {}
        piece = self.read_slice(text)
        if piece is None:
            return {}
        held = piece.held
        for term in piece.near(word):
            found[term] = piece.frequency[term]
        if piece.held != held:
            self._keep(piece.held - held)
        if typos >= 2 and len(text) >= 2:
            found.update(self._first_letter_changed(word))
        found.pop(text, None)
        return found

    def read_slice(self, word: str) -> _Slice | None:
        """The slice ``word``'s typos are looked for in, read if need be:
        the words sharing its first letter, or more of its letters if those
        are too many (``None`` if even the whole word's slice is)."""
        for prefix in range(1, len(word) + 1):
            piece = self._slice(word[:prefix])
            if piece is not None:
                return piece
        return None

    def _first_letter_changed(self, word: Word) -> dict[str, int]:
        """The index's words that ``word`` is with its first letter changed
        (one edit at the start), or, for a prefix word, that start so."""
        text, prefix = word.text, word.prefix
        rest = text[1:]
        tails = self._sorted_tails()
        covered = {} if tails is None else tails.pieces
        # Deleted or swapped with the second letter: words of some other
        # slice. Put in front, or in place of the first letter: words of any
        # slice, found in the tails where the slice is kept there.
        changed = {rest, text[1] + text[0] + text[2:]}
        changed.update(letter + rest for letter in FIRST_LETTERS if letter not in covered)
        changed.update(letter + text for letter in FIRST_LETTERS if letter not in covered)
        found: dict[str, int] = {}
        searcher, field = self._searcher, self._field
        for candidate in changed:
            if candidate[:1] == text[:1]:
                continue
            piece = covered.get(candidate[0])
            if piece is not None:
                found.update(piece.starting(candidate, prefix))
            elif prefix:
                found.update(searcher.terms_with_prefix(field, candidate, limit=MAX_CHANGED_WORDS))
            else:
                frequency = searcher.doc_freq(field, candidate)
                if frequency:
                    found[candidate] = frequency
        if tails is not None:
            for tail in (rest, text):
                for term in tails.after_any_letter(tail, prefix):
                    if term[0] != text[0]:
                        found[term] = covered[term[0]].frequency[term]
        return found

    def _sorted_tails(self) -> _Tails | None:
        """The slices of the :data:`TAIL_LETTERS` that are small enough,
        sorted by what follows the first letter (read if need be), or
        ``None`` if they are too many words to keep so."""
        tails = self._tails
        if tails is not None:
            return tails if isinstance(tails, _Tails) else None
        with self._reading:
            return self._read_tails()

    def _read_tails(self) -> _Tails | None:
        """:meth:`_sorted_tails`, by one thread at a time."""
        tails = self._tails
        if tails is None:
            pieces: dict[str, _Slice] = {}
            for letter in TAIL_LETTERS:
                piece = self._slice(letter)
                if piece is not None:
                    pieces[letter] = piece
                elif letter == "1":
                    # Numbers are many: so, likely, those of other digits.
                    break
            if 2 * sum(piece.held for piece in pieces.values()) > MAX_KEPT_WORDS:
                # The tails and their slices would not stay kept together.
                self._tails = False
                return None
            tails = _Tails(pieces)
            self._keep(tails.held)
            self._tails = tails
        return tails if isinstance(tails, _Tails) else None

    def _slice(self, letters: str) -> _Slice | None:
        """The slice of words starting with ``letters``, read if need be;
        ``None`` if it holds more than :data:`MAX_SLICE_WORDS`."""
        try:
            return self._slices[letters]
        except KeyError:
            pass
        with self._reading:
            if letters in self._slices:  # read by another thread meanwhile
                return self._slices[letters]
            # One more than a slice may hold tells that it is too large,
            # without making every word of it a Python string.
            limit = MAX_SLICE_WORDS + 1
            terms = self._searcher.terms_with_prefix(self._field, letters, limit=limit)
            piece = _Slice(terms) if len(terms) <= MAX_SLICE_WORDS else None
            self._keep(piece.held if piece is not None else 0)
            self._slices[letters] = piece
            return piece

    def _keep(self, words: int) -> None:
        """Count ``words`` more kept; first empty the dictionary if that
        makes too many."""
        with self._lock:
            if self._kept + words > MAX_KEPT_WORDS:
                self._slices.clear()
                self._tails = None
                self._kept = 0
            self._kept += words
