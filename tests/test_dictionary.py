"""The dictionary's words within a misspelt word's typos (trio_search._dictionary)."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trio_search._dictionary as dictionary_module
from tests.helpers import collector_work
from trio_search import IndexMeta, SearchIndex
from trio_search._dictionary import Dictionary
from trio_search._documents import documents_from_mapping
from trio_search._query import Word, typo_count, typos_allowed


def dictionary_of(*words: str) -> Dictionary:
    """The dictionary of an index holding ``words`` (one document each)."""
    data = {f"k{at}": word for at, word in enumerate(words)}
    index = SearchIndex.from_documents(
        documents_from_mapping(data), IndexMeta(), ranking_cache_hits=0
    )
    return Dictionary(index._snapshot.searcher)


WORDS = ("rabbit", "rabbits", "rabbet", "habit", "wonderland", "onderland", "ponderland")


def test_near_finds_the_words_within_the_typos_but_not_the_word_itself() -> None:
    words = dictionary_of(*WORDS)
    assert set(words.near(Word("rabbit", 1, False))) == {"rabbits", "rabbet"}
    assert set(words.near(Word("rabit", 1, False))) == {"rabbit"}  # "rabbet" is two away
    assert set(words.near(Word("rabbi", 1, True))) == {"rabbit", "rabbits", "rabbet"}
    assert words.near(Word("rabbit", 0, False)) == {}


def test_near_gives_how_many_documents_hold_each_word() -> None:
    words = dictionary_of("rabbit", "rabbit", "rabbit rabbet")
    assert words.near(Word("rabbot", 1, False)) == {"rabbit": 3, "rabbet": 1}


def test_a_changed_first_letter_needs_two_typos() -> None:
    words = dictionary_of(*WORDS)
    assert "rabbit" not in words.near(Word("tabbit", 1, False))
    # Deleted, swapped, replaced, put in front: each only if nothing else changed.
    assert set(words.near(Word("wonderland", 2, False))) == {"onderland", "ponderland"}
    assert set(words.near(Word("ownderland", 2, False))) == {"wonderland", "onderland"}
    assert set(words.near(Word("xwonderland", 2, False))) == {"wonderland"}
    assert set(words.near(Word("onderland", 2, False))) == {"wonderland", "ponderland"}
    assert set(words.near(Word("xonderlanx", 2, False))) == set()
    assert set(words.near(Word("ponderlan", 2, True))) == {"wonderland", "onderland", "ponderland"}


vocabulary = st.lists(st.text("abc", min_size=1, max_size=10), min_size=1, max_size=30)


@settings(max_examples=100, deadline=None)
@given(
    words=vocabulary,
    typed=st.text("abc", min_size=5, max_size=11),
    prefix=st.booleans(),
    sorted_tails=st.booleans(),
    changed=st.lists(st.sampled_from("abc"), max_size=2),
    spelled=st.booleans(),
)
def test_near_is_every_word_within_the_typos(
    words: list[str],
    typed: str,
    prefix: bool,
    sorted_tails: bool,
    changed: list[str],
    spelled: bool,
) -> None:
    # Whatever the slices, the same words as typo_count finds one by one,
    # whether a changed first letter is looked up in the slices sorted by
    # what follows it or spelling by spelling in the index, and whether one
    # typo is measured by rapidfuzz or looked up spelling by spelling.
    # Random words rarely differ from typed by their first letter alone, or
    # by one edit further on.
    words = [*words, *(letter + typed for letter in changed)]
    words += [letter + typed[1:] + "ab"[: len(changed)] for letter in changed]
    one_edit_further_on = [
        typed[:2] + typed[3] + typed[2] + typed[4:],  # two letters swapped
        typed[:2] + typed[3:],  # one deleted
        typed[:3] + "c" + typed[3:],  # one put in
        typed[:3] + ("b" if typed[3] == "a" else "a") + typed[4:],  # one changed
    ]
    words += one_edit_further_on[: len(changed) * 2]
    word = Word(typed, typos_allowed(typed), prefix)
    expected = {
        token
        for token in words
        if token != typed and typo_count(typed, token, word.typos, prefix=prefix) <= word.typos
    }
    dictionary = dictionary_of(*words)
    if not sorted_tails:
        dictionary._tails = False
    with pytest.MonkeyPatch.context() as patch:
        if spelled:  # one typo looked up spelling by spelling, however few the words
            patch.setattr(dictionary_module, "SPELLING_COST", 0)
        assert set(dictionary.near(word)) == expected


def test_small_dictionaries_keep_their_words_sorted_by_what_follows_the_first_letter() -> None:
    words = dictionary_of(*WORDS)
    wonderland = Word("xonderlanx", 2, False)
    words.read_slice(wonderland.text)
    assert words.has_slice(wonderland.text)
    # Its slice alone is not enough for a word long enough for two typos.
    assert not words.is_read_for(wonderland)
    assert words.is_read_for(Word("xonderla", 1, False))
    words.read_for(wonderland)
    assert words.is_read_for(wonderland)
    assert isinstance(words._tails, dictionary_module._Tails)
    assert set(words.near(Word("ponderlan", 2, True))) == {"wonderland", "onderland", "ponderland"}


def test_a_prefix_word_is_read_for_once_its_beginnings_are_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Making a slice's beginnings of one length costs 1-2 ms for thousands
    # of words: the server makes them in a worker thread (read_for), and
    # runs a query on the event loop only once is_read_for says so.
    words = dictionary_of(*WORDS)
    typed = Word("rabbi", 1, True)
    # (Only for slices of many words: these few would be made at once.)
    monkeypatch.setattr(dictionary_module, "QUICK_BEGINNINGS_WORDS", 0)
    words.read_slice(typed.text)
    assert words.has_slice(typed.text)
    assert not words.is_read_for(typed)
    assert words.is_read_for(Word("rabbi", 1, False))  # whole words need none
    words.read_for(typed)
    assert words.is_read_for(typed)
    assert set(words.near(typed)) == {"rabbit", "rabbits", "rabbet"}


def test_a_slice_too_large_for_the_tails_is_looked_up_spelling_by_spelling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dictionary_module, "MAX_SLICE_WORDS", 2)
    words = dictionary_of("rabbit", "rabbet", "robotsaaa", *WORDS[3:])
    robots = Word("tobotsaaa", 2, False)
    words.read_for(robots)
    assert words.is_read_for(robots)
    tails = words._tails
    assert isinstance(tails, dictionary_module._Tails)
    assert "r" not in tails.pieces  # three words start with "r": too many
    assert "w" in tails.pieces
    assert set(words.near(robots)) == {"robotsaaa"}
    assert set(words.near(Word("ponderlan", 2, True))) == {"wonderland", "onderland", "ponderland"}


def test_the_garbage_collector_does_not_walk_what_lookups_keep() -> None:
    """Looking one typo up spelling by spelling keeps each long list of
    words as a set; a full collection costs the same whatever its size."""

    def looked_up(letters: str) -> Dictionary:
        # Every six-letter word "r" + five of ``letters``: a long list.
        words = dictionary_of(*("r" + "".join(p) for p in itertools.product(letters, repeat=5)))
        assert set(words.near(Word("raabbx", 1, False))) == {"raabb" + c for c in letters}
        return words

    small, large = looked_up("abc"), looked_up("abcd")  # 243 and 1,024 words
    assert collector_work(small) == collector_work(large)


def test_a_slice_too_large_is_not_read_a_longer_prefix_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dictionary_module, "MAX_SLICE_WORDS", 3)
    words = dictionary_of("rabbit", "rabbet", "robot", "rubble", "rabbits")
    # "r" starts five words: the slice "ra" is read, so a typo in the
    # second letter ("rubbit") is no longer found, but one after it is.
    assert set(words.near(Word("rabbot", 1, False))) == {"rabbit", "rabbet"}
    assert words.near(Word("rubbit", 1, False)) == {}
    assert words.has_slice("rabbot")
    assert not words.has_slice("robots")


def test_what_it_keeps_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dictionary_module, "MAX_KEPT_WORDS", 3)
    words = dictionary_of("rabbit", "rabbet", "habit", "habits")
    assert set(words.near(Word("rabbot", 1, False))) == {"rabbit", "rabbet"}
    assert words.has_slice("rabbot")
    # Two more words for "h" would make four: the "r" slice goes first.
    assert set(words.near(Word("habitt", 1, False))) == {"habit", "habits"}
    assert words.has_slice("habitt")
    assert not words.has_slice("rabbot")
    assert set(words.near(Word("rabbot", 1, False))) == {"rabbit", "rabbet"}


def test_two_threads_read_a_slice_once_and_count_it_once() -> None:
    words = dictionary_of(*WORDS)
    index = words._searcher
    read: list[str] = []

    class SlowSearcher:
        def terms_with_prefix(self, field: str, prefix: str, limit: int) -> object:
            read.append(prefix)
            time.sleep(0.05)  # both threads are in before the first is done
            return index.terms_with_prefix(field, prefix, limit=limit)

    words._searcher = SlowSearcher()  # type: ignore[assignment]
    threads = [threading.Thread(target=words.read_slice, args=("rabbot",)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert read == ["r"]
    assert words._kept == 3  # rabbit, rabbits, rabbet


def test_read_common_reads_what_words_long_enough_for_two_typos_need() -> None:
    words = dictionary_of(*WORDS)
    wonderland = Word("xonderlanx", 2, False)
    assert not words.is_read_for(wonderland)
    assert not words.has_tails()
    words.read_common()
    assert words.has_tails()
    assert words.is_read_for(wonderland)
    assert words.is_read_for(Word("rabbi", 1, True))  # every letter's small slice
