"""What a word is: how trio_search cuts text into the words it indexes and
looks for, and how a document's text is handed to the index cut so.

Theory of operation
-------------------

A word is what :data:`WORD_PATTERN` matches, found one after another in
the text (what lies between two separates them), then lower-cased, its
accents folded (tantivy's ASCII folding), and dropped if longer than
:data:`MAX_WORD_BYTES`. What the pattern matches:

- a run of letters and digits (Unicode's ``Alphabetic`` and ``N``: the
  characters tantivy's simple tokenizer kept, so English and other Latin
  text is cut exactly as it was), with the combining marks after its
  letters kept in it: a Devanagari virama or vowel sign, a Thai tone mark,
  an Arabic or Hebrew point. The simple tokenizer ended a word at each of
  those that Unicode does not call alphabetic, so ``हिन्दी`` was two
  words, and a query for one half matched unrelated words. A mark does not
  start a word unless Unicode calls it alphabetic (``Other_Alphabetic``:
  most vowel signs and points; the simple tokenizer kept those too), and
  variation selectors (U+FE0F after an emoji) are not marks of a word but
  separators, as before;
- each character of the scripts written without spaces between words,
  Chinese and Japanese (Han, Hiragana, Katakana: :data:`UNIGRAM_SCRIPTS`),
  on its own (a *unigram*, with any marks after it). Cut at separators
  only, a whole clause of them was one word, dropped if over
  :data:`MAX_WORD_BYTES` (about 21 characters) and never matched by a
  query for a word inside it. A query for ``東京`` is then the words ``東``
  and ``京``, both required, anywhere in the document: the index keeps no
  positions, so there are no phrase queries, and a dictionary segmenter
  would be more precise (``京都``, Kyoto, finds ``東京都``, Tokyo). Korean
  (Hangul) puts spaces between words: it is cut as other scripts are.

The words are the index's terms, so changing what a word is changes the
format of an index (:data:`trio_search._index_meta.INDEX_FORMAT`).

Queries and highlights are cut by :func:`words_analyzer`: tantivy's regex
tokenizer with :data:`WORD_PATTERN` (ASCII text by the simple tokenizer,
:func:`ascii_words_analyzer`, which cuts it alike for a third of the
cost). Documents are not, for speed: the regex tokenizer costs about 0.2
us a word, against 0.07 us for the simple one, whatever the pattern
(``[a-z]+`` costs as much), and it runs in the indexing thread, which a
build waits for: 200,000 generated documents (36 words each) were built at
about 47,000 documents/s with it, against 110,000 to 130,000 with the
simple tokenizer. So the index's fields cut at spaces only
(:func:`indexed_text_analyzer`), and :func:`index_text` hands them their
text already cut into words:

- ASCII text with every character but a letter or a digit made a space,
  in one ``bytes.translate`` (0.2 us a document): in ASCII, the pattern's
  words are the runs of letters and digits. Those documents build as fast
  as before, into an index of the same size and words;
- other text likewise, then cut by Python's ``re`` where the characters
  are of common kinds (:class:`_FastPath`, made once a process has cut
  :data:`FAST_PATH_AFTER_TEXTS` such texts), and by the pattern where they
  are not: 3 us a document of 36 words with a few accented ones and curly
  quotes (those built at about 100,000 documents/s, against 135,000
  before), 7 us a Chinese one of 75 characters.

Both analyzers lower-case, fold and drop long words alike, so a document
holds the very words a query's text is cut into, in some order (the index
keeps no positions).
"""

from __future__ import annotations

import functools
import itertools
import re
import string

import tantivy

#: Longest word indexed, in bytes; longer runs of letters are not words
#: anyone searches for (base64, hashes) and would bloat the dictionary.
MAX_WORD_BYTES = 64
#: The scripts whose characters are each a word (see the theory of
#: operation), as the classes of a Rust regex (the ``regex`` crate: a
#: script's name matches its Script_Extensions, so the long vowel mark
#: ``ー`` is Katakana).
UNIGRAM_SCRIPTS = r"\p{Han}\p{Hiragana}\p{Katakana}"
#: A word's letters and digits: the characters tantivy's simple tokenizer
#: kept (Rust's ``char::is_alphanumeric``).
_LETTERS = r"\p{Alphabetic}\p{N}"
#: The marks kept in a word after its letters.
_MARKS = r"\p{M}--\p{Variation_Selector}"
#: What is cut into words (see the theory of operation): a run of letters
#: and digits, with marks after them, of scripts other than
#: :data:`UNIGRAM_SCRIPTS`; or one letter of those, with its marks.
WORD_PATTERN = (
    rf"[{_LETTERS}--{UNIGRAM_SCRIPTS}](?:[{_LETTERS}--{UNIGRAM_SCRIPTS}]|[{_MARKS}])*"
    rf"|[[{_LETTERS}]&&[{UNIGRAM_SCRIPTS}]][{_MARKS}]*"
)

#: What separates the words :func:`index_text` hands the index, and all
#: that :func:`indexed_text_analyzer` cuts at.
_SPACE = " "
#: Every byte of UTF-8 to itself but the ASCII characters that are not
#: letters or digits (in ASCII, :data:`WORD_PATTERN`'s separators), made
#: spaces.
_ASCII_SEPARATORS_TO_SPACES = bytes(
    byte if byte >= 0x80 or chr(byte) in string.ascii_letters + string.digits else ord(_SPACE)
    for byte in range(256)
)


def _normalized(tokenizer: tantivy.Tokenizer) -> tantivy.TextAnalyzer:
    """``tokenizer``'s words lower-cased, folded, and the long ones dropped
    (measured before folding, which may lengthen a word)."""
    return (
        tantivy.TextAnalyzerBuilder(tokenizer)
        .filter(tantivy.Filter.remove_long(MAX_WORD_BYTES))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .build()
    )


def words_analyzer() -> tantivy.TextAnalyzer:
    """The analyzer that cuts any text into its words, as the index holds
    them: what a query's text and a highlighted answer are cut by."""
    return _normalized(tantivy.Tokenizer.regex(WORD_PATTERN))


def ascii_words_analyzer() -> tantivy.TextAnalyzer:
    """:func:`words_analyzer` for ASCII text, at a third of its cost: in
    ASCII, the pattern's words are the runs of letters and digits, which
    tantivy's simple tokenizer finds (a query cut by the pattern, and its
    page of ten hits highlighted, cost about 15 us more)."""
    return _normalized(tantivy.Tokenizer.simple())


def indexed_text_analyzer() -> tantivy.TextAnalyzer:
    """The analyzer of the index's searchable fields: it cuts at spaces
    only, so their text must be what :func:`index_text` makes of it."""
    return _normalized(tantivy.Tokenizer.whitespace())


_SURROGATE = re.compile("[\ud800-\udfff]")
#: The words of a text as :data:`WORD_PATTERN` finds them, as written.
_WORDS_AS_WRITTEN = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(WORD_PATTERN)).build()

#: The characters beyond ASCII that :func:`index_text` cuts into words
#: itself, where :data:`WORD_PATTERN` says what each is (see
#: :class:`_FastPath`): those that Latin, Greek and Cyrillic text, general
#: punctuation, Chinese, Japanese and Korean draw most of theirs from.
FAST_PATH_RANGES = (
    (0x0080, 0x024F),  # Latin-1 Supplement, Latin Extended-A and -B
    (0x0370, 0x04FF),  # Greek and Coptic, Cyrillic
    (0x2000, 0x206F),  # General Punctuation
    (0x3000, 0x30FF),  # CJK Symbols and Punctuation, Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7A3),  # Hangul Syllables
    (0xFF00, 0xFFEF),  # Halfwidth and Fullwidth Forms
)
#: Texts beyond ASCII that :func:`index_text` cuts with the pattern before
#: it makes its fast path (:class:`_FastPath`): making it costs about 40
#: ms, what the fast path saves on 3,000 to 5,000 texts, so a process
#: indexing a few documents (a server's ``--data`` of the tutorial's three)
#: never pays it, and one building a large index soon gets it.
FAST_PATH_AFTER_TEXTS = 4096
#: How many texts beyond ASCII :func:`index_text` has cut.
_texts_beyond_ascii = itertools.count()


def index_text(text: str) -> str:
    """``text`` as the index's fields take it: its words, as written,
    separated by spaces, so that :func:`indexed_text_analyzer` finds in it
    the words :func:`words_analyzer` finds in ``text``, in some order (the
    index keeps no positions).

    ``text`` is read as it is: composing it (NFC) is the caller's part. A
    lone surrogate (valid in JSON, not in UTF-8) separates words.
    """
    # ASCII characters other than letters and digits separate words, and
    # stand for themselves in UTF-8: made spaces there, they leave runs of
    # ASCII letters and digits, words already.
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        encoded = _SURROGATE.sub(_SPACE, text).encode("utf-8")
    spaced = encoded.translate(_ASCII_SEPARATORS_TO_SPACES).decode("utf-8")
    if len(spaced) == len(encoded):  # all ASCII
        return spaced
    if next(_texts_beyond_ascii) < FAST_PATH_AFTER_TEXTS:
        return _SPACE.join(_WORDS_AS_WRITTEN.analyze(spaced))
    return _fast_path().cut(spaced)


class _FastPath:
    """Cutting text beyond ASCII into words without tantivy's regex
    tokenizer, where that is simple.

    Each character of :data:`FAST_PATH_RANGES` is asked of the pattern
    itself, once (in two calls of its tokenizer): whether it separates
    words, is a letter that starts or goes on with one (``é``, ``я``,
    ``한``), or is a word alone (``東``). Separators made spaces, a run of
    letters and digits between spaces is a word, and each character that is
    a word alone is cut off its neighbours; a run holding any other
    character (a combining mark, a character outside the ranges) is cut by
    the pattern, in one call for all such runs of a text. Each step is one
    pass of Python's ``re`` over the text, skipped when a search finds
    nothing for it to do.

    Made in about 40 ms. The pattern cut 200,000 generated documents of 36
    words, three of them accented, with curly quotes (a few runs beyond
    ASCII each), at 12.8 us a document, and the build at half its speed on
    ASCII text; this at 3.2 us. Chinese ones (75 characters): 21 us
    against 7.
    """

    def __init__(self) -> None:
        candidates = "".join(
            chr(code) for low, high in FAST_PATH_RANGES for code in range(low, high + 1)
        )
        letters, alone, others = _starting(candidates)
        separators = _separators(others)
        fast = _char_class("".join(sorted(letters + alone)))
        self._separator = re.compile(f"[{_char_class(separators)}]")
        #: A character beyond ASCII that only the pattern can tell about.
        self._slow_char = re.compile(f"[^ \\x00-\\x7f{fast}]")
        #: A run between spaces holding one (from its start: no run is
        #: scanned more than once).
        self._slow_run = re.compile(f"(?<![^ ])([^ ]*?{self._slow_char.pattern}[^ ]*)")
        self._alone = re.compile(f"[{_char_class(alone)}]")
        #: A character that is a word alone, or a run of letters and digits.
        self._word = re.compile(f"{self._alone.pattern}|[^ {_char_class(alone)}]+")

    def cut(self, text: str) -> str:
        """:func:`index_text` of ``text``, whose ASCII separators are
        already spaces."""
        text = self._separator.sub(_SPACE, text)
        slow = ""
        if self._slow_char.search(text):
            parts = self._slow_run.split(text)
            text = _SPACE.join(parts[::2])
            words = _WORDS_AS_WRITTEN.analyze(_SPACE.join(parts[1::2]))
            slow = _SPACE + _SPACE.join(words)
        if self._alone.search(text):
            text = _SPACE.join(self._word.findall(text))
        return text + slow


@functools.cache
def _fast_path() -> _FastPath:
    return _FastPath()


def _starting(chars: str) -> tuple[str, str, str]:
    """``chars`` split by what the pattern makes of each before a letter:
    letters that go on into it (``é`` + ``a``: one word), words alone
    (``東``, then ``a``), and the others (separators and marks: only
    ``a``)."""
    words = iter(_WORDS_AS_WRITTEN.analyze(_SPACE.join(char + "a" for char in chars)))
    letters, alone, others = [], [], []
    word = next(words, None)
    for char in chars:
        if word == char + "a":
            letters.append(char)
            word = next(words, None)
        elif word == char:
            alone.append(char)
            next(words, None)  # its "a"
            word = next(words, None)
        else:
            others.append(char)
            word = next(words, None)  # the "a" alone
    return "".join(letters), "".join(alone), "".join(others)


def _separators(chars: str) -> str:
    """Those of ``chars`` (none of which starts a word) that the pattern
    does not keep in a word after a letter: separators, not marks."""
    words = _WORDS_AS_WRITTEN.analyze(_SPACE.join("a" + char for char in chars))
    return "".join(char for char, word in zip(chars, words, strict=True) if word == "a")


def _char_class(chars: str) -> str:
    """``chars`` (in code point order) as the inside of a character class
    of Python's ``re``, consecutive code points as ranges."""
    ranges: list[list[int]] = []
    for code in map(ord, chars):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(
        re.escape(chr(low)) if low == high else f"{re.escape(chr(low))}-{re.escape(chr(high))}"
        for low, high in ranges
    )
