"""The query's options, words, typo distance and highlights, without an index.

The analyzer is the engine's own (``trio_search._schema.analyze``): a pure
function of the text, and the one whose agreement with this module matters.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_search import QueryOptions, RequestError
from trio_search._query import (
    DEFAULT_QUERY_LIMIT,
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    MAX_HIGHLIGHTED_CHARACTERS,
    MAX_QUERY_FIELDS,
    MAX_QUERY_LENGTH,
    MAX_QUERY_LIMIT,
    MAX_QUERY_OFFSET,
    MAX_QUERY_TERMS,
    MAX_QUERY_WORDS,
    MIN_PREFIX_LENGTH,
    Hit,
    Word,
    edit_distance,
    highlight,
    highlight_all,
    marked_spans,
    parse_query_request,
    query_words,
    typo_count,
    typos_allowed,
)
from trio_search._schema import analyze, tokens
from trio_search._words import MAX_WORD_BYTES


def parse(**options: Any) -> tuple[str, QueryOptions]:
    return parse_query_request({"action": "query", "value": "white rabbit", **options})


def refused(body: dict[str, Any]) -> str:
    """The error code ``parse_query_request`` refuses ``body`` with."""
    with pytest.raises(RequestError) as caught:
        parse_query_request(body)
    return caught.value.code


def words(text: str, **options: Any) -> list[Word]:
    return query_words(text, QueryOptions(**options), analyze)


def marked(answer: str, query: str, **options: Any) -> str:
    return highlight(answer, words(query, **options), tokens)


# --- parse_query_request ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"action": "query"}, "request has no 'value'"),
        ({"action": "query", "value": None}, "'value' must be a string, not null"),
        ({"action": "query", "value": ["a"]}, "'value' must be a string, not an array"),
        (
            {"action": "query", "value": "a", "limit": "3"},
            "'limit' must be an integer, not a string",
        ),
        (
            {"action": "query", "value": "a", "typos": 1},
            "'typos' must be true or false, not a number",
        ),
    ],
)
def test_a_bad_request_is_said_in_json_terms(body: dict[str, Any], message: str) -> None:
    # What the client sent, as JSON names it: not Python's NoneType or list.
    with pytest.raises(RequestError) as caught:
        parse_query_request(body)
    assert caught.value.message.startswith(message)


def test_a_request_without_options_gets_the_defaults() -> None:
    assert parse() == ("white rabbit", QueryOptions())
    assert QueryOptions() == QueryOptions(
        limit=DEFAULT_QUERY_LIMIT, offset=0, typos=True, prefix=True, fields=None
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("limit", 1),
        ("limit", MAX_QUERY_LIMIT),
        ("offset", 0),
        ("offset", MAX_QUERY_OFFSET),
        ("typos", False),
        ("typos", True),
        ("prefix", False),
        ("prefix", True),
    ],
)
def test_accepted_option_values(option: str, value: Any) -> None:
    _, options = parse(**{option: value})
    assert getattr(options, option) == value


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("limit", 0),
        ("limit", MAX_QUERY_LIMIT + 1),
        ("limit", -1),
        ("limit", True),  # a bool is an int to Python, not to JSON
        ("limit", 5.0),
        ("limit", "5"),
        ("limit", None),
        ("limit", 2**70),
        ("offset", -1),
        ("offset", MAX_QUERY_OFFSET + 1),
        ("offset", False),
        ("offset", 1.5),
        ("offset", [0]),
        ("typos", 1),
        ("typos", 0),
        ("typos", "false"),
        ("typos", None),
        ("prefix", 0),
        ("prefix", "true"),
        ("prefix", {}),
        ("fields", []),
        ("fields", "title"),
        ("fields", [1]),
        ("fields", ["title", None]),
        ("fields", {"title": True}),
        ("fields", [f"f{n}" for n in range(MAX_QUERY_FIELDS + 1)]),
        ("colour", "blue"),
        ("", 1),
    ],
)
def test_refused_option_values_are_bad_query(option: str, value: Any) -> None:
    assert refused({"action": "query", "value": "rabbit", option: value}) == "bad_query"


def test_fields_are_kept_in_order_without_repeats() -> None:
    _, options = parse(fields=["title", "body", "title"])
    assert options.fields == ("title", "body")
    _, options = parse(fields=[f"f{n}" for n in range(MAX_QUERY_FIELDS)])
    assert options.fields is not None and len(options.fields) == MAX_QUERY_FIELDS
    # The limit counts fields searched: a name given twice counts once.
    _, options = parse(fields=["title"] * (MAX_QUERY_FIELDS + 1))
    assert options.fields == ("title",)


def test_null_fields_search_every_field() -> None:
    assert parse(fields=None)[1].fields is None


@pytest.mark.parametrize("value", [None, 1, ["rabbit"], {"text": "rabbit"}, True])
def test_value_that_is_not_a_string_is_bad_value(value: Any) -> None:
    assert refused({"action": "query", "value": value}) == "bad_value"


def test_missing_value_is_bad_value() -> None:
    assert refused({"action": "query"}) == "bad_value"


def test_query_length_limit_is_in_characters() -> None:
    at_limit = "\U0001f430" * MAX_QUERY_LENGTH  # 4 bytes each in UTF-8: still counted as 1
    assert parse_query_request({"action": "query", "value": at_limit})[0] == at_limit
    too_long = {"action": "query", "value": "a" * (MAX_QUERY_LENGTH + 1)}
    assert refused(too_long) == "query_too_long"


def test_unknown_option_is_reported_before_a_bad_value() -> None:
    assert refused({"action": "query", "value": 1, "colour": "blue"}) == "bad_query"


# --- typos_allowed ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "typos"),
    [("", 0), ("a", 0), ("ring", 0), ("rabit", 1), ("morpheus", 1), ("mountains", 2)],
)
def test_typos_allowed_by_length(word: str, typos: int) -> None:
    assert typos_allowed(word) == typos


@pytest.mark.parametrize(("length", "typos"), [(4, 0), (5, 1), (8, 1), (9, 2), (30, 2)])
def test_typos_allowed_boundaries(length: int, typos: int) -> None:
    assert typos_allowed("x" * length) == typos


# --- query_words ------------------------------------------------------------------


def test_words_are_normalized_like_the_index() -> None:
    assert [w.text for w in words("MORPHÉUS, the Straße!")] == ["morpheus", "the", "strasse"]


def test_only_the_last_word_is_a_prefix() -> None:
    assert words("white rab") == [Word("white", 1, False), Word("rab", 0, True)]


@pytest.mark.parametrize("text", ["white rab ", "white rab.", "white rab\n", "rab\U0001f430"])
def test_a_separator_after_the_last_word_makes_it_whole(text: str) -> None:
    assert not any(word.prefix for word in words(text))


def test_underscore_is_a_separator_as_for_the_index() -> None:
    assert analyze("rab_") == ["rab"]
    assert words("rab_") == [Word("rab", 0, False)]


@pytest.mark.parametrize(
    "text",
    [
        "\u0926\u0941\u0928\u093f",  # Hindi "duni", ending with the vowel sign "i"
        "\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9",  # Hebrew "shalo", ending with a point
        "\u0643\u064e\u062a\u064e",  # Arabic "kata", ending with a fatha
    ],
)
def test_a_word_ending_with_a_combining_letter_is_a_prefix(text: str) -> None:
    # The analyzer counts these marks as letters: the word is still open.
    assert analyze(text) == [text]
    assert words(text) == [Word(text, typos_allowed(text), True)]


def test_a_virama_is_part_of_the_word_for_the_index_and_for_the_query() -> None:
    # tantivy's simple tokenizer ended a word at a virama (a mark Unicode
    # does not call alphabetic): "namaste" was two words.
    namaste = "\u0928\u092e\u0938\u094d\u0924\u0947"
    assert analyze(namaste) == [namaste]
    assert words(namaste) == [Word(namaste, typos_allowed(namaste), True)]


#: A Chinese clause with no separator in it, longer than a word may be
#: (MAX_WORD_BYTES): "We meet at eight tomorrow morning at the east gate of
#: Beijing railway station, then go to the Palace Museum together".
LONG_CLAUSE = "我们明天早上八点在北京火车站东门见面然后一起去故宫博物院参观"


def test_chinese_and_japanese_characters_are_each_a_word() -> None:
    # Cut at separators only, a clause was one word, dropped whole when over
    # 64 bytes (about 21 characters).
    assert len(LONG_CLAUSE.encode("utf-8")) > MAX_WORD_BYTES
    assert analyze(LONG_CLAUSE) == list(LONG_CLAUSE)
    # Kanji and kana alike; punctuation still separates; Latin and digits
    # beside them stay words of their own.
    assert analyze("「東京都」に住んでいます。") == list("東京都に住んでいます")
    assert analyze("カーナビ、東京tower 2024年") == [*"カーナビ東京", "tower", "2024", "年"]
    # Hangul puts spaces between words: its words stay whole.
    assert analyze("서울에 살아요") == ["서울에", "살아요"]


def test_a_chinese_or_japanese_character_is_a_word_without_typos_or_prefix() -> None:
    assert words("東京") == [Word("東", 0, False), Word("京", 0, False)]
    # The last word is still a prefix after them, or a word of its own.
    tokyo = [Word("東", 0, False), Word("京", 0, False)]
    assert words("東京 tow") == [*tokyo, Word("tow", 0, True)]
    assert words("tower東京") == [Word("tower", 1, False), *tokyo]


def test_marks_stay_in_their_word_but_do_not_start_one() -> None:
    hindi = "\u0939\u093f\u0928\u094d\u0926\u0940"  # with a virama and two vowel signs
    thai = "\u0e44\u0e21\u0e48"  # "not", ending with a tone mark
    arabic = "\u0627\u0644\u0639\u064e\u0631\u064e\u0628\u0650\u064a\u064e\u0651\u0629"
    assert analyze(f"{hindi} {thai}, {arabic}.") == [hindi, thai, arabic]
    assert words(thai) == [Word(thai, 0, True)]
    # A mark with no letter before it is no word (as before), nor is a
    # variation selector part of one: an emoji's U+FE0F stays a separator.
    assert analyze("\u0301x \u094d") == ["x"]
    assert analyze("\u2764\ufe0f love 1\ufe0f\u20e3") == ["love", "1"]


def test_a_word_typed_up_to_a_mark_is_still_a_prefix() -> None:
    # The last character, a virama or an accent typed on its own, is no
    # word by itself: the word it ends is still being typed.
    assert words("\u0939\u093f\u0928\u094d") == [Word("\u0939\u093f\u0928\u094d", 0, True)]
    assert words("cafe\u0301") == [Word("cafe", 0, True)]
    assert words("white \u094d") == [Word("white", 1, False)]


def test_short_last_word_is_not_a_prefix() -> None:
    assert words("white r") == [Word("white", 1, False), Word("r", 0, False)]
    assert words("r" * MIN_PREFIX_LENGTH)[-1].prefix


def test_options_turn_typos_and_prefix_off() -> None:
    assert words("mountains rabbit", typos=False) == [
        Word("mountains", 0, False),
        Word("rabbit", 0, True),
    ]
    assert words("mountains rabbit", prefix=False) == [
        Word("mountains", 2, False),
        Word("rabbit", 1, False),
    ]


def test_no_words() -> None:
    assert words("") == []
    assert words(" ,\U0001f436! ") == []
    assert words("\ud800") == []


def test_word_limit() -> None:
    assert len(words(" ".join(["rabbit"] * MAX_QUERY_WORDS))) == MAX_QUERY_WORDS
    with pytest.raises(RequestError) as caught:
        words(" ".join(["rabbit"] * (MAX_QUERY_WORDS + 1)))
    assert caught.value.code == "query_too_long"
    assert str(caught.value) == "query has 11 words of more than one character; at most 10"


def test_words_of_one_character_count_towards_the_larger_limit() -> None:
    # A Chinese or Japanese character is a word: a query of a dozen is an
    # ordinary one, and each such word is one term (no typos, no prefix).
    chinese = "北京大学计算机科学与技术系"
    assert [word.text for word in words(chinese)] == list(chinese)
    assert all(word.typos == 0 and not word.prefix for word in words(chinese))
    mixed = (
        " ".join(["rabbit"] * MAX_QUERY_WORDS) + " " + "兔" * (MAX_QUERY_TERMS - MAX_QUERY_WORDS)
    )
    assert len(words(mixed)) == MAX_QUERY_TERMS
    with pytest.raises(RequestError) as caught:
        words(mixed + "兔")
    assert caught.value.code == "query_too_long"
    assert str(caught.value) == f"query has {MAX_QUERY_TERMS + 1} words; at most {MAX_QUERY_TERMS}"


# --- edit_distance ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "token", "distance"),
    [
        ("rabbit", "rabbit", 0),
        ("rabbet", "rabbit", 1),  # substitution
        ("rabit", "rabbit", 1),  # insertion
        ("rabbbit", "rabbit", 1),  # deletion
        ("rabibt", "rabbit", 1),  # transposition of neighbours
        ("arbbit", "rabbit", 1),  # ... at the start
        ("rabbti", "rabbit", 1),  # ... at the end
        ("rbabti", "rabbit", 2),
        ("", "ab", 2),
        ("ab", "", 2),
        ("", "", 0),
    ],
)
def test_edit_distance(word: str, token: str, distance: int) -> None:
    assert edit_distance(word, token, 2) == distance


def test_edit_distance_is_cut_off_above_the_limit() -> None:
    assert edit_distance("rabbit", "mountains", 1) == 2
    assert edit_distance("rabbit", "rabbits and more", 2) == 3
    assert edit_distance("abcdef", "ghijkl", 0) == 1
    assert edit_distance("rabbet", "rabbit", 0) == 1


def test_edit_distance_to_a_prefix() -> None:
    assert edit_distance("rab", "rabbit", 0, prefix=True) == 0
    assert edit_distance("rbb", "rabbit", 1, prefix=True) == 1
    assert edit_distance("rabbti", "rabbits", 1, prefix=True) == 1
    assert edit_distance("xyz", "rabbit", 1, prefix=True) == 2
    assert edit_distance("rab", "rabbit", 0) == 1  # not a prefix match without prefix


def osa_table(a: str, b: str) -> list[list[int]]:
    """Optimal string alignment distances between every prefix of ``a`` and ``b``."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d


short_words = st.text(alphabet="abcé", max_size=7)


@given(word=short_words, token=short_words, limit=st.integers(0, 3))
def test_edit_distance_is_the_osa_distance_cut_off(word: str, token: str, limit: int) -> None:
    expected = osa_table(word, token)[-1][-1]
    assert edit_distance(word, token, limit) == min(expected, limit + 1)


@given(word=short_words, token=short_words, limit=st.integers(0, 3))
def test_prefix_edit_distance_is_to_the_closest_prefix(word: str, token: str, limit: int) -> None:
    expected = min(osa_table(word, token)[-1])
    assert edit_distance(word, token, limit, prefix=True) == min(expected, limit + 1)


# --- typo_count -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "token", "typos"),
    [
        ("rabbit", "rabbit", 0),
        ("rabit", "rabbit", 1),
        ("rbabit", "rabbit", 1),  # the second letter may be wrong
        ("tabbit", "rabbit", 2),  # a changed first letter counts as two
        ("arbbit", "rabbit", 2),  # ... swapped with the second
        ("abbit", "rabbit", 2),  # ... missing
        ("wrabbit", "rabbit", 2),  # ... or one put in front
        ("tabbti", "rabbit", 3),
    ],
)
def test_typo_count_counts_a_changed_first_letter_as_two(word: str, token: str, typos: int) -> None:
    assert typo_count(word, token, 2) == typos


def test_typo_count_to_a_prefix() -> None:
    assert typo_count("rabbi", "rabbits", 1, prefix=True) == 0
    assert typo_count("rebbi", "rabbits", 1, prefix=True) == 1
    assert typo_count("tabbi", "rabbits", 1, prefix=True) == 2  # over the limit of 1
    assert typo_count("wonderlan", "onderlandish", 2, prefix=True) == 2


@given(word=short_words, token=short_words, limit=st.integers(0, 3), prefix=st.booleans())
def test_typo_count_is_the_edit_distance_plus_one_for_a_first_letter(
    word: str, token: str, limit: int, prefix: bool
) -> None:
    table = osa_table(word, token)
    distance = min(table[-1]) if prefix else table[-1][-1]
    expected = distance + (word[:1] != token[:1])
    assert typo_count(word, token, limit, prefix=prefix) == min(expected, limit + 1)


# --- highlight --------------------------------------------------------------------


def test_highlight_marks_exact_prefix_and_typo_matches() -> None:
    answer = "Follow the white rabbit. \U0001f430"
    assert marked(answer, "rabbit") == "Follow the white <em>rabbit</em>. \U0001f430"
    assert marked(answer, "rab") == "Follow the white <em>rabbit</em>. \U0001f430"
    assert marked(answer, "rabit") == "Follow the white <em>rabbit</em>. \U0001f430"
    assert marked(answer, "white rabbet ") == (
        "Follow the <em>white</em> <em>rabbit</em>. \U0001f430"
    )


def test_highlight_leaves_what_does_not_match() -> None:
    assert marked("rings and a ring, ring!", "ring ") == "rings and a <em>ring</em>, <em>ring</em>!"
    assert marked("Follow the white rabbit.", "rabbit", typos=False, prefix=False) == (
        "Follow the white <em>rabbit</em>."
    )
    assert marked("Follow the white rabbet.", "rabbit", typos=False) == "Follow the white rabbet."
    assert marked("Follow the white rabbits.", "rabbit", prefix=False, typos=False) == (
        "Follow the white rabbits."
    )


def test_highlight_leaves_punctuation_and_emoji_alone() -> None:
    answer = "\U0001f43e ¡Ring—ring?! \U0001f48d (ring) «ring» \U0001f436ring"
    assert marked(answer, "ring ") == (
        "\U0001f43e ¡<em>Ring</em>—<em>ring</em>?! \U0001f48d (<em>ring</em>) "
        "«<em>ring</em>» \U0001f436<em>ring</em>"
    )


def test_highlight_ignores_case_and_accents_but_keeps_the_answer_as_written() -> None:
    assert marked("Wake up, MORPHÉUS.", "morpheus") == "Wake up, <em>MORPHÉUS</em>."
    assert marked("Wake up, morpheus.", "Morphéus") == "Wake up, <em>morpheus</em>."
    assert marked("Zur Straße", "strasse") == "Zur <em>Straße</em>"


def test_highlight_cuts_words_as_the_analyzer_does() -> None:
    hindi = "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e"
    assert marked(hindi, "\u0926\u0941\u0928\u093f\u092f\u093e") == (
        "\u0928\u092e\u0938\u094d\u0924\u0947 <em>\u0926\u0941\u0928\u093f\u092f\u093e</em>"
    )
    assert marked(hindi, "\u0926\u0941\u0928\u093f") == (
        "\u0928\u092e\u0938\u094d\u0924\u0947 <em>\u0926\u0941\u0928\u093f\u092f\u093e</em>"
    )
    # A virama is part of the word for the analyzer: the word is marked whole.
    assert marked(hindi, "\u0928\u092e\u0938\u094d\u0924\u0947") == (
        "<em>\u0928\u092e\u0938\u094d\u0924\u0947</em> \u0926\u0941\u0928\u093f\u092f\u093e"
    )
    shalom = "\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd"
    assert marked(f"{shalom}!", shalom) == f"<em>{shalom}</em>!"
    assert (
        marked("\u24b6\u24b7\u24b8 xyz", "\u24b6\u24b7\u24b8") == "<em>\u24b6\u24b7\u24b8</em> xyz"
    )


def test_highlight_marks_matched_chinese_or_japanese_characters_in_runs() -> None:
    # Each character is a word; the characters matched side by side (the
    # query's word as a reader sees it) are one mark.
    assert marked(LONG_CLAUSE, "北京 故宫") == LONG_CLAUSE.replace("北京", "<em>北京</em>").replace(
        "故宫", "<em>故宫</em>"
    )
    answer = "「東京都」に住んでいます"
    assert marked(answer, "東京") == "「<em>東京</em>都」に住んでいます"
    assert marked(answer, "東 都") == "「<em>東</em>京<em>都</em>」に住んでいます"
    hit = Hit("jp", "東京tower", 1.0, marked("東京tower", "京 tower"))
    assert hit.highlight == "東<em>京tower</em>"
    assert hit.marks() == [(1, 7)]
    # Words apart stay apart, whatever separates them.
    assert marked("white rabbit", "white rabbit") == "<em>white</em> <em>rabbit</em>"


word_texts = st.text(
    st.characters(exclude_categories=())
    | st.sampled_from("\u094d\u093f\u05b8\u064e\u24b6_.-\U0001f436 \u0301\u0130\u00df"),
    max_size=30,
)


@given(text=word_texts)
def test_highlight_finds_the_words_the_analyzer_finds(text: str) -> None:
    text = text.encode("utf-8", "replace").decode("utf-8")  # answers hold no lone surrogates
    every_word = [Word(word, 0, False) for word in analyze(text)]
    marks = [
        part.split(HIGHLIGHT_END)[0]
        for part in highlight(text, every_word, tokens).split(HIGHLIGHT_START)[1:]
    ]
    # Every word marked, in order; words side by side (Chinese or Japanese
    # characters) share a mark. In ASCII text words are never side by side.
    assert [word for mark in marks for word in analyze(mark)] == analyze(text)
    assert all(len(analyze(mark)) == 1 for mark in marks if mark.isascii())


@given(
    answers=st.lists(word_texts, max_size=6),
    query=st.sampled_from(["rabbit", "white rabit", "wh", "\u0130\u00df", "x e"]),
)
def test_a_page_is_highlighted_as_each_answer_alone(answers: list[str], query: str) -> None:
    # One analyzer call for the whole page: no word may run from one answer
    # into the next, and every mark must land in its own answer.
    answers = [text.encode("utf-8", "replace").decode("utf-8") for text in answers]
    answers += ["white\nrabbit", "", "rabbit"]
    query_words_ = words(query)
    assert highlight_all(answers, query_words_, tokens) == [
        highlight(answer, query_words_, tokens) for answer in answers
    ]


def test_a_long_answer_is_marked_in_its_first_characters_only() -> None:
    # Marking costs about 1 us a word: an answer of 10 MB took 1.5 s.
    filler = "x " * (MAX_HIGHLIGHTED_CHARACTERS // 2)
    answer = "White rabbit. " + filler + "rabbit"
    assert marked(answer, "rabbit") == (
        f"White {HIGHLIGHT_START}rabbit{HIGHLIGHT_END}. " + filler + "rabbit"
    )
    # A word the bound cuts is left unmarked: "rabbi" would match its head.
    cut = "y" * (MAX_HIGHLIGHTED_CHARACTERS - 6) + " rabbit in the garden"  # head: " rabbi"
    assert marked(cut, "rabbi") == cut
    # Alike when the page is marked at once, next to short answers.
    assert highlight_all(["rabbit", answer, cut], words("rabbit"), tokens) == [
        f"{HIGHLIGHT_START}rabbit{HIGHLIGHT_END}",
        marked(answer, "rabbit"),
        marked(cut, "rabbit"),
    ]


def test_highlight_without_words_is_the_answer() -> None:
    assert marked("\U0001f43e Playing ball! \U0001f3d0", "\U0001f436") == (
        "\U0001f43e Playing ball! \U0001f3d0"
    )
    assert highlight("a <b> & c", [], tokens) == "a <b> & c"


# --- where the marks are ---------------------------------------------------------

#: Answers that hold the marks' own text, or parts of it, among words.
answers_with_tags = st.lists(
    st.sampled_from(
        ["rabbit", "white", "<em>", "</em>", "<", "em", ">", " ", "x", "é", "\U0001f430"]
    ),
    max_size=12,
).map("".join)


@given(answer=answers_with_tags, query=st.sampled_from(["rabbit", "white rabit", "em", "x", "rab"]))
def test_marks_are_found_even_beside_an_answers_own_tags(answer: str, query: str) -> None:
    marked_answer = marked(answer, query)
    spans = marked_spans(answer, marked_answer)
    assert spans is not None
    # Marking the answer at those spans gives the highlight back...
    rebuilt, done = "", 0
    for start, stop in spans:
        rebuilt += answer[done:start] + HIGHLIGHT_START + answer[start:stop] + HIGHLIGHT_END
        done = stop
    assert rebuilt + answer[done:] == marked_answer
    # ... and each span is one word the query matched.
    assert all(len(analyze(answer[start:stop])) == 1 for start, stop in spans)


def test_an_answers_own_em_is_not_a_mark() -> None:
    answer = "an <em>rabbit</em> in HTML"
    hit = Hit("k", answer, 1.0, marked(answer, "rabbit"))
    assert hit.highlight == "an <em><em>rabbit</em></em> in HTML"
    assert hit.marks() == [(7, 13)]
    assert answer[7:13] == "rabbit"


def test_a_highlight_that_is_not_the_answer_has_no_marks() -> None:
    assert marked_spans("white rabbit", "white <em>rabbit") is None  # never closed
    assert marked_spans("white rabbit", "black <em>rabbit</em>") is None
    with pytest.raises(ValueError, match="not the answer with marks"):
        Hit("k", "white rabbit", 1.0, "white <em>hare</em>").marks()
