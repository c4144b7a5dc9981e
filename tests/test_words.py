"""What a word is, and the text the index's fields are given already cut
into words (trio_search._words): the index must hold the very words a
query's text is cut into."""

from __future__ import annotations

import collections
import sys

import pytest
import tantivy
from hypothesis import example, given
from hypothesis import strategies as st

from trio_search import _words
from trio_search._words import (
    FAST_PATH_RANGES,
    ascii_words_analyzer,
    index_text,
    indexed_text_analyzer,
    words_analyzer,
)

WORDS = words_analyzer()
ASCII_WORDS = ascii_words_analyzer()
INDEXED = indexed_text_analyzer()


def indexed_words(text: str, fast: bool = True) -> list[str]:
    """The words the index holds for ``text``, cut by index_text()'s fast
    path or, the first texts of a process, by the pattern alone."""
    saved = _words.FAST_PATH_AFTER_TEXTS
    _words.FAST_PATH_AFTER_TEXTS = 0 if fast else sys.maxsize
    try:
        return INDEXED.analyze(index_text(text))
    finally:
        _words.FAST_PATH_AFTER_TEXTS = saved


#: Characters of every kind, the troublemakers far more often than by chance:
#: ASCII separators, accented letters and typographic punctuation, Greek and
#: Cyrillic, Chinese, Japanese and Korean letters and punctuation, fullwidth
#: and halfwidth forms, combining marks (after a letter, a Han character, a
#: space), a variation selector, an emoji, a lone surrogate, characters
#: outside the fast path's ranges.
some_chars = st.characters(exclude_categories=()) | st.sampled_from(
    "a Z9_-.,\n\t\u00e9\u00df\u00bd\u00b2\u00d7\u2019\u201c\u2014\u2028\u200d"
    "\u03a9\u044f\u6771\u4eac\u3001\u3002\u300c\u3042\u30ab\u30fc\u3005\u3007"
    "\uac00\uff21\uff11\uff0c\uff76\uff9e\u0301\u094d\u0939\u0e48\u0e44\u3099"
    "\ufe0f\u20e3\U0001f436\ud800\u2248\u2122\U00020000"
)


@given(text=st.text(some_chars, max_size=60))
@example(text="Cre\u0300me br\u00fbl\u00e9e\u2019s \u201cmenu\u201d \u2014 ok")
@example(text="\u6771\u4eac\u90fd\u306b\u4f4f\u3093\u3067\u3044\u307e\u3059\u3002\u6771\u4eactower")
@example(text="\u6771\u0301\u4eac \u0939\u093f\u0928\u094d\u0926\u0940 \u2764\ufe0f 1\ufe0f\u20e3")
@pytest.mark.parametrize("fast", [False, True], ids=["pattern", "fast path"])
def test_the_index_holds_the_words_a_query_is_cut_into(fast: bool, text: str) -> None:
    # In any order: the index keeps no positions.
    expected = WORDS.analyze(text.encode("utf-8", "replace").decode("utf-8"))
    assert collections.Counter(indexed_words(text, fast)) == collections.Counter(expected)


@pytest.mark.parametrize(("low", "high"), FAST_PATH_RANGES)
def test_every_character_of_the_fast_path_is_cut_as_the_pattern_cuts_it(
    low: int, high: int
) -> None:
    for code in range(low, high + 1):
        char = chr(code)
        for text in (char, f"a{char}a", f"{char}\u0301", f" {char}b", f"\u6771{char}"):
            assert collections.Counter(indexed_words(text)) == collections.Counter(
                WORDS.analyze(text)
            ), (hex(code), text)


def test_ascii_text_is_its_words_between_spaces() -> None:
    # One translation of its bytes: every character but a letter or digit
    # made a space.
    assert index_text("Follow the white_rabbit. (42)") == "Follow the white rabbit   42 "


@given(text=st.text(st.characters(max_codepoint=0x7F), max_size=60))
def test_ascii_text_is_cut_alike_by_the_cheaper_analyzer(text: str) -> None:
    # The same words, in the same places: queries and highlights use it.
    def placed(analyzer: tantivy.TextAnalyzer) -> list[tuple[str, int, int]]:
        tokens = analyzer.pre_tokenize(text).tokens
        return [(token.text, token.char_offset_from, token.char_offset_to) for token in tokens]

    assert placed(ASCII_WORDS) == placed(WORDS)
