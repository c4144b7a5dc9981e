"""The search engine as a user sees it: which documents a query finds, in
which order, and an on-disk index that another writer adds to."""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from tests.test_app import complete, result
from trio_search import (
    ConfigurationError,
    Deferred,
    Document,
    FieldMapping,
    IndexMeta,
    Message,
    QueryOptions,
    Reply,
    RequestError,
    SearchApp,
    SearchIndex,
    documents_from_mapping,
    read_documents,
)
from trio_search._engine import CHEAP_QUERY_POSTINGS
from trio_search._index_meta import write_meta
from trio_search._index_writer import build_index
from trio_search._limits import INLINE_QUERY_MAX_HITS
from trio_search._query import (
    DEFAULT_QUERY_LIMIT,
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    MAX_QUERY_FIELDS,
    MAX_QUERY_LENGTH,
    MAX_QUERY_LIMIT,
    MIN_PREFIX_LENGTH,
    highlight,
    parse_query_request,
)
from trio_search._schema import create_index, open_tantivy_index, tantivy_document, tokens

#: A small corpus in the tutorial's spirit: key -> answer, both searchable.
FILMS = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
    "alice": "Down the rabbit hole she went, after the White Rabbit with his watch.",
    "gollum": "My precious ring, my precious: the ring, the ring, the one ring!",
    "hobbit": "A hobbit hole in the ground, far from any mountains.",
    "neo": "There is no spoon.",
    "trinity": "The Matrix has you, Neo. Knock, knock.",
}

#: Words for generated documents and queries.
VOCABULARY = sorted({word.lower() for answer in FILMS.values() for word in answer.split()})


def index_of(
    data: Mapping[str, str], *, field_queries: bool = False, ranking_cache_hits: int = 100_000
) -> SearchIndex:
    return SearchIndex.from_documents(
        documents_from_mapping(data),
        IndexMeta(field_queries=field_queries),
        ranking_cache_hits=ranking_cache_hits,
    )


@pytest.fixture(scope="module")
def films() -> SearchIndex:
    return index_of(FILMS, field_queries=True)


def keys(index: SearchIndex, text: str, **options: Any) -> list[str]:
    """The keys of the hits for ``text``, best first (all of them, up to the limit)."""
    options.setdefault("limit", MAX_QUERY_LIMIT)
    return [hit.key for hit in index.query(text, QueryOptions(**options)).hits]


# --- Relevance ------------------------------------------------------------------


def test_exact_key_ranks_first_even_when_others_say_it_more(films: SearchIndex) -> None:
    result = films.query("ring")
    assert [hit.key for hit in result.hits][:2] == ["ring", "gollum"]
    # Its answer does not say "ring" at all; "gollum"'s says it four times.
    assert "ring" not in result.hits[0].answer.lower()
    assert keys(films, "ring", fields=("answer",))[0] == "gollum"


@pytest.mark.parametrize("text", ["ring ", " ring", "RING\n", "\tRing  "])
def test_exact_key_ranks_first_whatever_space_surrounds_it(films: SearchIndex, text: str) -> None:
    # Search as you type: the space after a word comes before the next one.
    assert keys(films, text)[:2] == ["ring", "gollum"]


def test_a_key_with_space_around_it_is_matched_as_typed_too() -> None:
    index = index_of({" ring ": "spaced", "ring": "plain", "x": "ring ring ring ring"})
    assert keys(index, " ring ")[:2] in (["ring", " ring "], [" ring ", "ring"])
    assert keys(index, "ring")[0] == "ring"


def test_exact_key_match_ignores_case_and_accents(films: SearchIndex) -> None:
    assert keys(films, "RING")[0] == "ring"
    assert keys(films, "Morphéus")[0] == "morpheus"


def test_a_typo_finds_the_word(films: SearchIndex) -> None:
    assert set(keys(films, "rabit")) == {"morpheus", "alice"}
    assert set(keys(films, "mountians")) == {"ring", "hobbit"}


def test_prefix_finds_the_word(films: SearchIndex) -> None:
    assert keys(films, "morph") == ["morpheus"]
    assert set(keys(films, "moun")) == {"ring", "hobbit"}


@pytest.mark.parametrize("text", ["MORPHEUS", "Morphéus", "morpheus!", " morpheus "])
def test_case_accents_and_punctuation_do_not_matter(films: SearchIndex, text: str) -> None:
    assert keys(films, text) == ["morpheus"]


def test_accented_documents_are_found_without_accents() -> None:
    index = index_of({"café": "Crème brûlée at the Café Müller", "tea": "Green tea"})
    assert keys(index, "creme brulee") == ["café"]
    assert keys(index, "MULLER") == ["café"]
    assert keys(index, "cafe") == ["café"]


#: "Crème brûlée" with each accent its own character after its letter (NFD),
#: as macOS and some files write it, and the same words composed (NFC).
CREME_DECOMPOSED = "Cre\u0300me bru\u0302le\u0301e"
CREME_COMPOSED = "Cr\u00e8me br\u00fbl\u00e9e"


@pytest.mark.parametrize("data", [CREME_DECOMPOSED, CREME_COMPOSED], ids=["NFD", "NFC"])
@pytest.mark.parametrize(
    "typed",
    ["cre\u0300me bru\u0302le\u0301e", "cr\u00e8me br\u00fbl\u00e9e", "creme brulee"],
    ids=["NFD", "NFC", "unaccented"],
)
def test_accents_typed_as_their_own_characters_match_either_way(data: str, typed: str) -> None:
    index = index_of({"dessert": data, "tea": "Green tea"}, field_queries=True)
    (hit,) = index.query(typed).hits
    assert hit.key == "dessert"
    assert hit.answer == data  # as stored, byte for byte
    # Whole words marked, accents and all, in the answer as it is.
    first, second = data.split(" ")
    assert hit.highlight == f"<em>{first}</em> <em>{second}</em>"
    assert hit.marks() == [(0, len(first)), (len(first) + 1, len(data))]
    assert keys(index, typed, fields=("answer",)) == ["dessert"]


def test_a_decomposed_key_is_matched_exactly() -> None:
    index = index_of({"caf\u00e9": "a place", "x": "cafe cafe cafe"})
    assert keys(index, "cafe\u0301")[0] == "caf\u00e9"
    index = index_of({"cafe\u0301": "a place", "x": "cafe cafe cafe"})
    assert keys(index, "caf\u00e9")[0] == "cafe\u0301"


def test_a_word_starting_with_a_mark_is_highlighted_in_place_beside_decomposed_text() -> None:
    # U+064B (an Arabic tanwin) is a letter to Unicode, so a word of its own
    # after a space or at an answer's start. A page holding a decomposed
    # answer is placed cluster by cluster: the line break between answers,
    # or the space before the word, was taken into its mark.
    tanwin = "\u064bab"
    index = index_of({"nfd": f"{tanwin} cafe\u0301", "alone": tanwin, "after": f"x {tanwin}"})
    hits = {hit.key: hit for hit in index.query(tanwin).hits}
    assert hits["nfd"].highlight == f"<em>{tanwin}</em> cafe\u0301"
    assert hits["alone"].highlight == f"<em>{tanwin}</em>"
    assert hits["after"].highlight == f"x <em>{tanwin}</em>"
    marks = {key: hit.marks() for key, hit in hits.items()}
    assert marks == {"nfd": [(0, 3)], "alone": [(0, 3)], "after": [(2, 5)]}


def test_a_long_decomposed_word_is_one_word() -> None:
    # Twenty "é" typed as twenty letters, each with its accent after it.
    word = "e\u0301" * 20
    index = index_of({"long": "\u00e9" * 20, "short": "e"})
    assert keys(index, word, prefix=False) == ["long"]


def test_words_with_combining_letters_are_found_as_typed_and_highlighted() -> None:
    hello_world = "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e"
    world = "\u0926\u0941\u0928\u093f\u092f\u093e"
    index = index_of({"hi": hello_world, "en": "Hello, world"})
    # Search as you type, letter by letter (from the shortest prefix matched).
    for typed in range(MIN_PREFIX_LENGTH, len(world) + 1):
        (hit,) = index.query(world[:typed]).hits
        assert hit.key == "hi"
        assert hit.highlight == f"{hello_world[:7]}<em>{world}</em>", typed


#: A Chinese clause longer than a word may be (64 bytes) with no separator
#: in it: "We meet at eight tomorrow morning at the east gate of Beijing
#: railway station, then go to the Palace Museum together".
CHINESE_CLAUSE = "我们明天早上八点在北京火车站东门见面然后一起去故宫博物院参观"


def test_a_chinese_document_is_found_by_two_characters_of_a_long_clause() -> None:
    index = index_of({"zh": f"{CHINESE_CLAUSE}。", "north": "北方的冬天很冷", "en": "Beijing"})
    (hit,) = index.query("北京").hits
    assert hit.key == "zh"
    assert hit.highlight == CHINESE_CLAUSE.replace("北京", "<em>北京</em>") + "。"
    assert keys(index, "故宫") == ["zh"]
    # Every character must be there: "north" holds 北 but not 京.
    assert set(keys(index, "北")) == {"north", "zh"}
    assert keys(index, "北极") == []
    # A query of more than ten characters is an ordinary one.
    assert keys(index, CHINESE_CLAUSE[:14]) == ["zh"]


def test_japanese_kanji_and_kana_are_found_inside_unspaced_text() -> None:
    index = index_of(
        {
            "tokyo": "東京都に住んでいます",  # I live in Tokyo
            "kyoto": "京都に行きました",  # I went to Kyoto
            "navi": "カーナビを買いました",  # I bought a car navigation system
            "tower": "東京タワー (Tokyo Tower)",
        },
        field_queries=True,
    )
    assert set(keys(index, "東京")) == {"tokyo", "tower"}
    assert set(keys(index, "東京", fields=["answer"])) == {"tokyo", "tower"}
    assert keys(index, "住んで") == ["tokyo"]
    assert keys(index, "カーナビ") == ["navi"]
    # The last word is still a prefix after them.
    assert keys(index, "東京 tow") == ["tower"]
    (hit,) = index.query("東京 住").hits
    assert hit.highlight == "<em>東京</em>都に<em>住</em>んでいます"


def test_a_hindi_word_is_found_whole_and_not_by_a_piece_of_it() -> None:
    hindi = "\u0939\u093f\u0928\u094d\u0926\u0940"  # with a virama in the middle
    index = index_of({"hi": f"{hindi} \u092d\u093e\u0937\u093e", "en": "Hindi"})
    (hit,) = index.query(hindi).hits
    assert hit.key == "hi"
    assert hit.highlight == f"<em>{hindi}</em> \u092d\u093e\u0937\u093e"
    # Its second half, after the virama, is no word of it (it was).
    assert keys(index, "\u0926\u0940") == []
    # Typed up to the virama, it is the beginning of the word.
    assert keys(index, hindi[:4]) == ["hi"]


def test_exact_word_beats_a_typo_that_bm25_prefers() -> None:
    data = {f"warren{n}": "the rabbit ran" for n in range(20)}  # "rabbit" is common...
    data["typo"] = "white white white rabbet"  # ... "white" rare: short, said three times
    data["exact"] = (
        "A long tale: somewhere in the middle of it there is a white rabbit, and "
        "then it goes on and on about other things for a while longer still."
    )
    hits = index_of(data).query("white rabbit").hits
    assert [hit.key for hit in hits] == ["exact", "typo"]
    # BM25 alone would have put the typo first.
    assert hits[1].score > hits[0].score


def test_a_misspelt_word_scores_as_the_word_it_is_a_typo_of() -> None:
    # The second pass scores "rabit" by the dictionary's words within its
    # typos, so a misspelt query never scores above the words as typed.
    index = index_of(FILMS)
    right = {hit.key: hit.score for hit in index.query("white rabbit").hits}
    wrong = {hit.key: hit.score for hit in index.query("white rabit").hits}
    assert set(right) == set(wrong) == {"morpheus", "alice"}
    assert wrong == right
    assert keys(index, "rbabit") == keys(index, "rabbit")  # a typo in the second letter


@pytest.mark.parametrize("text", ["clos", "clcose"])
def test_the_words_a_query_word_matches_count_as_one(text: str) -> None:
    # Completions and typo matches are weighed as the most frequent of them
    # (a rare one does not outrank the word meant by rarity alone), and a
    # document holding several of them counts the best one, not their sum.
    data = {f"c{n:02}": "close the door" for n in range(20)}
    data["rare"] = "closefd is a flag"
    data["many"] = "close closed closes closer"
    index = index_of(data)
    ranked = keys(index, text)
    assert set(ranked[:20]) == {f"c{n:02}" for n in range(20)}
    assert set(ranked[20:]) == {"rare", "many"}


def test_a_word_typed_to_its_end_prefers_words_of_its_length() -> None:
    # "rabit" is within a typo of "rabbit", and of the start of "rabbits":
    # both match, but the whole word ranks first (and scores as typed).
    data = {"plural": "white rabbits", "singular": "white rabbit", "other": "white horse"}
    index = index_of(data)
    assert keys(index, "rabit") == ["singular", "plural"]
    assert keys(index, "rabbi") == ["singular", "plural"]  # "rabbit" is one typo from it too
    hits = {hit.key: hit.score for hit in index.query("rabit").hits}
    assert (
        hits["singular"] == {hit.key: hit.score for hit in index.query("rabbit").hits}["singular"]
    )


def test_a_changed_first_letter_counts_as_two_typos() -> None:
    index = index_of({**FILMS, "wonder": "Alice in Wonderland"})
    # Six letters allow one typo: not one in the first letter.
    assert keys(index, "tabbit") == keys(index, "arbbit") == keys(index, "abbit") == []
    # Ten allow two: one in the first letter and no other, scored as the
    # word it is a typo of.
    right = {hit.key: hit.score for hit in index.query("wonderland").hits}
    assert list(right) == ["wonder"]
    for typed in ["ponderland", "ownderland", "onderland", "swonderland"]:
        wrong = {hit.key: hit.score for hit in index.query(typed).hits}
        assert wrong == right, typed
    assert keys(index, "ponderlamd") == []  # two typos, one in the first letter
    assert keys(index, "ponderla") == []  # 8 letters: one typo, not in the first letter
    assert keys(index, "ponderlan") == ["wonder"]  # 9 letters, as a prefix


def test_matches_found_by_a_typo_are_ranked_by_relevance() -> None:
    # As "rabbit" ranks them (BM25), not in the order they were indexed.
    data = {f"r{n:02}": "rabbit " * (1 + n % 5) + "grass " * (n % 7) for n in range(40)}
    index = index_of(data)
    assert keys(index, "rabit") == keys(index, "rabbit")
    assert keys(index, "rabit")[:3] != sorted(data)[:3]


@pytest.mark.parametrize("text", ["morpheus", "white rabit", "rabbi"])
def test_a_key_match_scores_the_same_whatever_the_page_size(text: str) -> None:
    data = {**FILMS, "rabbi": "a rabbit in the white garden", "white rabit": "white rabbit"}
    index = index_of(data, ranking_cache_hits=0)
    scores = {
        limit: {hit.key: hit.score for hit in index.query(text, QueryOptions(limit=limit)).hits}
        for limit in (1, 2, 5, 10)
    }
    first = index.query(text, QueryOptions(limit=1)).hits[0]
    assert first.key == text  # the key match ranks first...
    assert {page[text] for page in scores.values()} == {first.score}  # ... scored alike


def test_a_hit_holding_the_words_as_typed_highlights_only_those() -> None:
    # Found by the words as typed: "habbit" (a typo away) and "rabbits" (a
    # completion) are not why it matched, so they are not marked.
    data = {"exact": "the rabbit met a habbit and rabbits", "typo": "a rabbet"}
    hits = index_of(data).query("rabbit").hits
    assert [hit.key for hit in hits] == ["exact", "typo"]
    assert hits[0].highlight == "the <em>rabbit</em> met a habbit and rabbits"
    # Found by a typo: the typo is marked.
    assert hits[1].highlight == "a <em>rabbet</em>"


def test_exact_word_beats_typos_for_a_single_word() -> None:
    data = {"typo": "rabbet " * 30, "exact": "a rabbit, among " + "many other words " * 20}
    assert keys(index_of(data), "rabbit") == ["exact", "typo"]


def test_every_word_must_match(films: SearchIndex) -> None:
    assert set(keys(films, "rabbit")) == {"morpheus", "alice"}
    assert keys(films, "white rabbit watch") == ["alice"]
    assert keys(films, "rabbit spoon") == []
    assert keys(films, "rabbit mountains") == []


def test_typos_false_turns_off_fuzzy_matching(films: SearchIndex) -> None:
    assert keys(films, "rabit", typos=False) == []
    assert keys(films, "rabit ", typos=False) == []
    assert set(keys(films, "rabbit", typos=False)) == {"morpheus", "alice"}


def test_a_prefix_may_have_a_typo(films: SearchIndex) -> None:
    # Typing "morph" with two letters swapped: still found as you type.
    assert "morpheus" in keys(films, "morhpe")
    assert keys(films, "morhpe", typos=False) == []


def test_typos_and_completions_are_looked_for_only_when_the_page_is_not_full() -> None:
    data = {f"exact{i:02}": f"a rabbit number {i}" for i in range(12)}
    data["typo"] = "a rabit"
    data["longer"] = "rabbits"
    index = index_of(data)
    # Twelve documents say "rabbit": they fill a page of 10, and the total
    # counts them only.
    page = index.query("rabbit", QueryOptions(limit=10))
    assert {hit.key for hit in page.hits} <= {f"exact{i:02}" for i in range(12)}
    assert page.total == 12
    # A larger page looks further, after every exact match.
    everything = index.query("rabbit", QueryOptions(limit=20))
    assert everything.total == 14
    assert {hit.key for hit in everything.hits[12:]} == {"typo", "longer"}
    # The second page of 10 is not full with exact matches either.
    second = index.query("rabbit", QueryOptions(limit=10, offset=10))
    assert [hit.key for hit in second.hits[2:]] == [hit.key for hit in everything.hits[12:]]
    assert second.total == 14


def test_prefix_false_turns_off_prefix_matching(films: SearchIndex) -> None:
    assert keys(films, "morph", prefix=False) == []
    assert keys(films, "morpheus", prefix=False) == ["morpheus"]
    # A separator after the word does the same.
    assert keys(films, "morph ") == []


BOOKS = [
    Document("b1", "Alice", {"title": "Alice in Wonderland", "body": "a white rabbit"}),
    Document("b2", "Watership", {"title": "Watership Down", "body": "rabbits, alice"}),
]


def test_fields_restrict_the_search() -> None:
    index = SearchIndex.from_documents(BOOKS, IndexMeta(field_queries=True))
    assert set(keys(index, "alice")) == {"b1", "b2"}
    assert keys(index, "alice", fields=["title"]) == ["b1"]
    assert keys(index, "alice", fields=["body"]) == ["b2"]
    assert set(keys(index, "alice", fields=["body", "title"])) == {"b1", "b2"}
    assert keys(index, "wonderland", fields=["body"]) == []
    # The key matches only when the key field is searched.
    assert keys(index, "b1") == ["b1"]
    assert keys(index, "b1", fields=["title"]) == []


def test_without_field_queries_fields_must_name_every_field() -> None:
    index = SearchIndex.from_documents(BOOKS)
    assert index.meta.field_queries is False
    with pytest.raises(RequestError) as caught:
        index.query("alice", QueryOptions(fields=("title",)))
    assert caught.value.code == "bad_query"
    # Said to a program as well as to a command line.
    assert "--field-queries, IndexMeta(field_queries=True) in Python," in caught.value.message
    # Naming them all is the same as naming none.
    assert set(keys(index, "alice", fields=["body", "title"])) == {"b1", "b2"}
    with pytest.raises(RequestError, match="unknown field 'nope'"):
        index.query("alice", QueryOptions(fields=("body", "title", "nope")))


def test_field_names_with_dots_and_backslashes_can_be_searched(tmp_path: Path) -> None:
    # Every string field of a record is searchable under its own name, and
    # a data file's names may hold what a JSON path treats specially.
    records = [
        {"key": "hobbit", "answer": "There and back", "author.name": "Tolkien", "author": "x"},
        {"key": "alice", "answer": "Down the hole", "author.name": "Carroll", "tag\\s": "rabbit"},
    ]
    data = tmp_path / "books.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    index = SearchIndex.from_documents(
        read_documents(data, FieldMapping(search_fields=None)), IndexMeta(field_queries=True)
    )
    assert {"author.name", "author", "tag\\s"} <= index.meta.fields
    assert keys(index, "tolkien", fields=["author.name"]) == ["hobbit"]
    assert keys(index, "tolkein", fields=["author.name"]) == ["hobbit"]
    assert keys(index, "carr", fields=["author.name"]) == ["alice"]
    assert keys(index, "tolkien", fields=["author"]) == []
    assert keys(index, "x", fields=["author"]) == ["hobbit"]
    assert keys(index, "rabbit", fields=["tag\\s"]) == ["alice"]


#: Records whose key field is not named "key": the document whose key is
#: the query text says it least, so only the exact-key tier ranks it first.
ISBN_RECORDS = [
    {"isbn": "alice", "title": "A book", "summary": "something else"},
    {"isbn": "b2", "title": "Alice alice alice", "summary": "alice in wonderland alice"},
    {"isbn": "b3", "title": "Alice returns", "summary": "alice"},
]


@pytest.mark.parametrize("field_queries", [False, True])
def test_documents_read_with_a_key_field_rank_their_key_first_as_the_index_command_does(
    tmp_path: Path, field_queries: bool
) -> None:
    # docs/embedding.md's example: the meta is not told the key field; the
    # documents say it. It used to stay "key", so a query naming the fields
    # lost the exact-key tier: "alice" ranked last.
    data = tmp_path / "books.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ISBN_RECORDS), encoding="utf-8")
    mapping = FieldMapping(key_field="isbn", answer_field="title")
    documents = read_documents(data, mapping)
    assert (documents[0].key_field, documents[0].answer_field) == ("isbn", "title")
    meta = IndexMeta(field_queries=True) if field_queries else None
    in_memory = SearchIndex.from_documents(documents, meta)
    assert (in_memory.meta.key_field, in_memory.meta.answer_field) == ("isbn", "title")
    build_index(data, tmp_path / "books.idx", mapping, field_queries=field_queries)
    on_disk = SearchIndex.open(tmp_path / "books.idx")
    everything = ["isbn", "summary", "title"]
    for index in (in_memory, on_disk):
        assert keys(index, "alice", fields=everything) == ["alice", "b2", "b3"]
        assert keys(index, "alice") == ["alice", "b2", "b3"]
    if field_queries:
        for index in (in_memory, on_disk):
            assert keys(index, "alice", fields=["summary", "isbn"])[0] == "alice"
            assert keys(index, "alice", fields=["summary"]) == ["b2", "b3"]


def test_the_meta_keeps_its_key_field_for_documents_that_do_not_name_one() -> None:
    # Documents made by hand name no field: the meta says it.
    meta = IndexMeta(key_field="id", answer_field="name")
    index = SearchIndex.from_documents(BOOKS, meta)
    assert (index.meta.key_field, index.meta.answer_field) == ("id", "name")
    index = SearchIndex.from_documents(documents_from_mapping(FILMS))
    assert (index.meta.key_field, index.meta.answer_field) == ("key", "answer")


@pytest.mark.parametrize("name", ["", "a\x00b"])
def test_a_field_name_tantivy_cannot_address_is_bad_query(tmp_path: Path, name: str) -> None:
    # A data file may name a field "" (or hold a NUL in a name): its words
    # are searched with the others, but a query cannot pick it on its own.
    data = tmp_path / "data.jsonl"
    record = {"key": "k", "answer": "x", name: "hidden", "title": "shown"}
    data.write_text(json.dumps(record) + "\n", encoding="utf-8")
    index = SearchIndex.from_documents(read_documents(data), IndexMeta(field_queries=True))
    assert name in index.meta.fields
    with pytest.raises(RequestError) as caught:
        index.query("hidden", QueryOptions(fields=(name, "title")))
    assert caught.value.code == "bad_query"
    assert "cannot be searched on its own" in caught.value.message
    assert keys(index, "hidden") == ["k"]
    assert keys(index, "shown", fields=["title"]) == ["k"]


def test_unknown_field_is_bad_query(films: SearchIndex) -> None:
    with pytest.raises(RequestError) as caught:
        films.query("rabbit", QueryOptions(fields=("answer", "title")))
    assert caught.value.code == "bad_query"
    assert "title" in caught.value.message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"limit": 0}, "'limit' must be from 1 to 100, not 0"),
        ({"limit": MAX_QUERY_LIMIT + 900}, "'limit' must be from 1 to 100, not 1000"),
        ({"limit": True}, "'limit' must be an integer, not a boolean"),
        ({"offset": -1}, "'offset' must be from 0 to 10000, not -1"),
        ({"offset": 10**6}, "'offset' must be from 0 to 10000, not 1000000"),
        ({"typos": 1}, "'typos' must be true or false, not a number"),
        ({"prefix": None}, "'prefix' must be true or false, not null"),
        ({"fields": ()}, "'fields' must name at least one field"),
        ({"fields": "title"}, "'fields' must be a list of field names"),
        ({"fields": ("title", 1)}, "'fields' must be a list of field names"),
        (
            {"fields": tuple(f"f{n}" for n in range(MAX_QUERY_FIELDS + 1))},
            f"'fields' names {MAX_QUERY_FIELDS + 1} fields; at most {MAX_QUERY_FIELDS}",
        ),
    ],
)
def test_query_options_out_of_bounds_are_refused_as_the_server_refuses_them(
    films: SearchIndex, options: dict[str, Any], message: str
) -> None:
    # The library's options get the server's bounds and words: QueryOptions
    # (limit=0) used to reach tantivy, which panics (a BaseException), and
    # limit=1000 returned every hit.
    with pytest.raises(ValueError) as caught:
        films.query("white", QueryOptions(**options))
    assert str(caught.value) == message
    request = {"action": "query", "value": "white", **options}
    if isinstance(request.get("fields"), tuple):
        request["fields"] = list(request["fields"])
    with pytest.raises(RequestError) as refused:
        parse_query_request(request)
    assert (refused.value.code, refused.value.message) == ("bad_query", message)


def test_query_options_take_a_list_of_fields_each_once() -> None:
    assert QueryOptions(fields=["title", "body", "title"]).fields == ("title", "body")
    index = SearchIndex.from_documents(BOOKS, IndexMeta(field_queries=True))
    assert keys(index, "alice", fields=["title", "title"]) == ["b1"]


def test_too_many_words_is_refused(films: SearchIndex) -> None:
    with pytest.raises(RequestError) as caught:
        films.query("the " * 11)
    assert caught.value.code == "query_too_long"


@pytest.mark.parametrize("text", ["x" * 10_000, "white rabbit" + " " * (MAX_QUERY_LENGTH - 11)])
def test_too_long_text_is_refused_as_the_server_refuses_it(films: SearchIndex, text: str) -> None:
    # Few words, many characters: the server refused such a text before it
    # ran; query() ran it whole.
    with pytest.raises(RequestError) as caught:
        films.query(text)
    assert (caught.value.code, caught.value.message) == (
        "query_too_long",
        f"query is {len(text)} characters long; at most {MAX_QUERY_LENGTH}",
    )
    with pytest.raises(RequestError) as refused:
        parse_query_request({"action": "query", "value": text})
    assert (refused.value.code, refused.value.message) == (
        caught.value.code,
        caught.value.message,
    )
    # At the limit, it runs.
    assert films.query(text[:MAX_QUERY_LENGTH]).total >= 0


def test_hits_carry_the_document_and_a_highlight(films: SearchIndex) -> None:
    (hit,) = films.query("rabit hole", QueryOptions(typos=True)).hits
    assert hit.key == "alice"
    assert hit.answer == FILMS["alice"]
    assert hit.highlight == (
        "Down the <em>rabbit</em> <em>hole</em> she went, after the White "
        "<em>Rabbit</em> with his watch."
    )
    assert 0 < hit.score < 100


#: Short words over a few letters, some of them folded by the analyzer: close
#: enough to each other for typos and prefixes to matter. (Hindi: a letter, a
#: vowel sign that is part of a word, a virama that ends one.)
close_words = st.text(alphabet="abcéñ\u0926\u093f\u094d", min_size=1, max_size=10)


@pytest.mark.fuzz
# An index per example: a fifth of the profile's examples keeps this quick.
@settings(max_examples=max(20, settings().max_examples // 5))
@given(
    answers=st.lists(st.lists(close_words, min_size=1, max_size=4).map(" ".join), max_size=6),
    text=st.lists(close_words, min_size=1, max_size=2).map(" ".join),
    typos=st.booleans(),
    prefix=st.booleans(),
)
def test_a_document_is_found_when_highlight_marks_every_word(
    answers: list[str], text: str, typos: bool, prefix: bool
) -> None:
    # What the engine matches (tantivy) and what highlight marks (Python)
    # are computed apart: they must agree, word by word.
    index = SearchIndex.from_documents(
        Document(f"#{n}", answer, {"answer": answer}) for n, answer in enumerate(answers)
    )
    options = QueryOptions(limit=MAX_QUERY_LIMIT, typos=typos, prefix=prefix)
    found = {hit.key for hit in index.query(text, options).hits}
    words = index.words(text, options)
    assume(words)  # a query without words matches through the key only
    for n, answer in enumerate(answers):
        marked = [HIGHLIGHT_START in highlight(answer, [word], tokens) for word in words]
        assert (f"#{n}" in found) == all(marked), (answer, words, marked)


# --- Paging -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def warren() -> SearchIndex:
    """Many documents matching "rabbit", with different scores."""
    data = {f"r{n:03}": "rabbit " * (1 + n % 7) + "grass " * (n % 11) for n in range(137)}
    return index_of(data)


@pytest.mark.parametrize("limit", [1, 7, 10, 100])
def test_pages_concatenate_to_the_full_ordered_list(warren: SearchIndex, limit: int) -> None:
    everything = warren.query("rabbit", QueryOptions(limit=MAX_QUERY_LIMIT))
    assert everything.total == 137
    full: list[str] = []
    offset = 0
    while True:
        page = warren.query("rabbit", QueryOptions(limit=limit, offset=offset))
        assert page.total == 137
        assert len(page.hits) == min(limit, max(0, 137 - offset))
        if not page.hits:
            break
        full += [hit.key for hit in page.hits]
        offset += limit
    assert len(full) == len(set(full)) == 137
    assert full[:MAX_QUERY_LIMIT] == [hit.key for hit in everything.hits]
    scores = [hit.score for hit in everything.hits]
    assert scores == sorted(scores, reverse=True)


def test_total_counts_past_the_last_page(warren: SearchIndex) -> None:
    page = warren.query("rabbit", QueryOptions(limit=1, offset=500))
    assert (page.hits, page.total) == ([], 137)
    assert warren.query("rabbit", QueryOptions(limit=3)).total == 137


def test_no_match(films: SearchIndex) -> None:
    result = films.query("zebra")
    assert (result.hits, result.total) == ([], 0)


# --- Lookup and keys --------------------------------------------------------------


def test_lookup_is_exact(films: SearchIndex) -> None:
    assert films.lookup("morpheus") == FILMS["morpheus"]
    assert films.lookup("Morpheus") is None
    assert films.lookup("morph") is None
    assert films.lookup("morpheus ") is None
    assert films.lookup("") is None


def test_later_documents_replace_earlier_ones_with_the_same_key() -> None:
    index = SearchIndex.from_documents(
        [
            Document("k", "old", {"answer": "old answer"}),
            Document("other", "other", {"answer": "other"}),
            Document("k", "new", {"answer": "new answer"}),
        ]
    )
    assert index.documents == 2
    assert index.lookup("k") == "new"
    assert keys(index, "old") == []
    assert keys(index, "answer") == ["k"]


def test_unicode_keys(films: SearchIndex) -> None:
    assert films.lookup("\U0001f436") == FILMS["\U0001f436"]
    assert keys(films, "\U0001f436") == ["\U0001f436"]
    (hit,) = films.query("\U0001f436").hits
    assert hit.highlight == FILMS["\U0001f436"]  # no word to mark
    assert keys(films, "\U0001f431") == []


@pytest.mark.parametrize(
    "text", ["\ud800", "rabbit\udfff", "\udc00morpheus", "\ud83d\udc36", "\ud800 ring \udfff"]
)
def test_lone_surrogates_do_not_crash(films: SearchIndex, text: str) -> None:
    assert films.lookup(text) is None
    result = films.query(text)  # answers, whatever it finds
    assert result.total >= len(result.hits)


def test_lone_surrogates_separate_words(films: SearchIndex) -> None:
    assert set(keys(films, "white\ud800rabbit")) == {"morpheus", "alice"}
    assert set(keys(films, "rabbit\udfff")) == {"morpheus", "alice"}
    assert keys(films, "\ud800misty") == ["ring"]


# --- An index on disk -------------------------------------------------------------


def write_documents(path: Path, documents: Iterable[Document], *, new: bool) -> None:
    """Commit ``documents`` to the index in ``path``, as ``trio-search-index`` does."""
    documents = list(documents)
    index = create_index(path) if new else open_tantivy_index(path)
    writer = index.writer()
    for document in documents:
        writer.delete_documents_by_term("key", document.key)
        writer.add_document(tantivy_document(document, field_queries=True))
    writer.commit()
    writer.wait_merging_threads()
    meta = IndexMeta(field_queries=True) if new else SearchIndex.open(path).meta
    write_meta(path, meta.with_fields(name for d in documents for name in d.fields))


def test_on_disk_index_sees_another_writers_commit(tmp_path: Path) -> None:
    write_documents(tmp_path, documents_from_mapping({"ring": FILMS["ring"]}), new=True)
    index = SearchIndex.open(tmp_path)
    assert index.path == tmp_path
    assert index.documents == 1
    assert index.lookup("ring") == FILMS["ring"]
    assert keys(index, "misty") == ["ring"]
    assert index.refresh() is False  # nothing changed
    generation = index.generation

    more = {"morpheus": FILMS["morpheus"], "alice": FILMS["alice"]}
    write_documents(tmp_path, documents_from_mapping(more), new=False)
    assert index.lookup("morpheus") is None  # not seen before a refresh
    assert index.refresh() is True
    assert index.generation > generation
    assert index.documents == 3
    assert index.lookup("morpheus") == FILMS["morpheus"]
    assert set(keys(index, "rabbit")) == {"morpheus", "alice"}
    assert index.refresh() is False


def test_a_refresh_reads_ahead_the_dictionary_its_queries_had_needed(tmp_path: Path) -> None:
    write_documents(tmp_path, documents_from_mapping(FILMS), new=True)
    index = SearchIndex.open(tmp_path)
    words = index.words("mountainz", QueryOptions())
    assert words[0].typos == 2
    assert not index.has_dictionary_for(words)
    assert set(keys(index, "mountainz")) == {"ring", "hobbit"}
    assert index.has_dictionary_for(words)
    more = {"everest": "Higher than the Mountainss of the Moon."}
    write_documents(tmp_path, documents_from_mapping(more), new=False)
    assert index.refresh() is True
    # Read before the new snapshot was searched, with its new words.
    assert index.has_dictionary_for(words)
    assert set(keys(index, "mountainz")) == {"ring", "hobbit", "everest"}


def test_read_dictionary_reads_ahead_what_two_typo_words_need() -> None:
    index = index_of(FILMS)
    words = index.words("mountainz", QueryOptions())
    assert not index.has_dictionary_for(words)
    index.read_dictionary()
    assert index.has_dictionary_for(words)


def test_refresh_sees_replaced_documents_and_new_fields(tmp_path: Path) -> None:
    write_documents(tmp_path, [Document("b1", "one", {"title": "Alice"})], new=True)
    index = SearchIndex.open(tmp_path)
    with pytest.raises(RequestError):
        index.query("alice", QueryOptions(fields=("body",)))
    assert [hit.answer for hit in index.query("alice").hits] == ["one"]
    write_documents(tmp_path, [Document("b1", "two", {"title": "Alice", "body": "x"})], new=False)
    assert index.refresh() is True
    assert index.documents == 1
    assert index.lookup("b1") == "two"
    # The answer read for the first query is not the one shown now.
    assert [hit.answer for hit in index.query("alice").hits] == ["two"]
    assert keys(index, "alice", fields=["body"]) == []
    assert keys(index, "x", fields=["body"]) == ["b1"]


def test_refresh_sees_fields_described_after_the_commit(tmp_path: Path) -> None:
    write_documents(tmp_path, [Document("b1", "one", {"title": "Alice"})], new=True)
    index = SearchIndex.open(tmp_path)
    # A writer commits first, then describes the new fields: a refresh may
    # come in between.
    writer = open_tantivy_index(tmp_path).writer()
    writer.add_document(tantivy_document(Document("b2", "two", {"body": "rabbit"}), True))
    writer.commit()
    writer.wait_merging_threads()
    del writer
    assert index.refresh() is True
    assert keys(index, "rabbit") == ["b2"]
    with pytest.raises(RequestError):
        index.query("rabbit", QueryOptions(fields=("body",)))
    write_meta(tmp_path, index.meta.with_fields(["body"]))
    assert index.refresh() is True
    assert keys(index, "rabbit", fields=["body"]) == ["b2"]
    assert index.refresh() is False


def test_opening_a_data_file_as_an_index_says_how_a_program_reads_it(tmp_path: Path) -> None:
    data = tmp_path / "books.jsonl"
    data.write_text('{"key": "k", "answer": "a"}\n', encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        SearchIndex.open(data)
    assert "a data file goes to --data or build (read_documents() in Python)" in str(caught.value)


def test_an_index_of_an_older_format_is_refused_with_a_rebuild_message(tmp_path: Path) -> None:
    # Format 1 cut words at every mark and kept Chinese and Japanese
    # clauses whole: its words are not those queries now look for.
    data = tmp_path / "films.jsonl"
    data.write_text(
        "".join(json.dumps({"key": k, "answer": a}) + "\n" for k, a in FILMS.items()),
        encoding="utf-8",
    )
    index_dir = tmp_path / "idx"
    build_index(data, index_dir)
    generation = build_index(data, index_dir).generation  # a rebuilt one's counts on
    meta_path = index_dir / "trio_search.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["format"] = 1
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        SearchIndex.open(index_dir)
    assert caught.value.code == "bad_index"
    assert str(caught.value) == (
        f"{meta_path}: index format 1; this trio_search reads format 2: build the index again"
    )
    # Which a build in its place does, numbering its data after the old one's.
    assert build_index(data, index_dir).generation > generation
    index = SearchIndex.open(index_dir)
    assert index.generation > generation
    assert keys(index, "misty") == ["ring"]


def test_an_index_tantivy_cannot_lock_says_why_in_words(tmp_path: Path) -> None:
    # tantivy writes a lock file even to read an index; on a read-only
    # mount that fails with "Read-only file system", here with a directory
    # in the lock file's place. Its message named the OS error in Rust's
    # debug form and ended with ". None".
    write_documents(tmp_path, documents_from_mapping(FILMS), new=True)
    lock = tmp_path / ".tantivy-meta.lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()
    with pytest.raises(ConfigurationError) as caught:
        SearchIndex.open(tmp_path)
    message = str(caught.value)
    assert (
        message
        == f"cannot open index {str(tmp_path)!r}: Failed to acquire Lockfile: Is a directory"
    )


def test_in_memory_index_never_refreshes(films: SearchIndex) -> None:
    assert films.path is None
    assert films.refresh() is False


# --- Any query through the application ---------------------------------------------

#: Any code point, lone surrogates and control characters included, with the
#: troublemakers drawn far more often than by chance.
any_char = st.characters(exclude_categories=()) | st.sampled_from(
    "\ud800\udfff\x00\x1f\u0301\u094d\u093f_.\U0001f436 "
)
#: Words that the documents hold, nearly hold, or begin with.
query_words = st.sampled_from([*VOCABULARY, "rabit", "morph", "Morphéus", "\U0001f436"])
query_texts = st.one_of(
    st.text(any_char, max_size=40),
    st.text(any_char, min_size=400, max_size=2000),
    st.lists(query_words, min_size=1, max_size=2).map(" ".join),
    st.lists(query_words, max_size=12).map(" ".join),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats()
    | st.text(any_char, max_size=12),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(any_char, max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def mostly(
    valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """``valid`` seven times in eight: enough queries get through to be run."""
    return st.integers(0, 7).flatmap(lambda n: invalid if n == 3 else valid)


known_options = st.fixed_dictionaries(
    {},
    optional={
        "limit": mostly(st.integers(1, MAX_QUERY_LIMIT), st.integers(-1, 200) | json_values),
        "offset": mostly(st.just(0) | st.integers(0, 30), st.integers(-1, 20_000) | json_values),
        "typos": mostly(st.booleans(), json_values),
        "prefix": mostly(st.booleans(), json_values),
        "fields": mostly(
            st.lists(st.sampled_from(["key", "answer"]), min_size=1, max_size=3),
            st.lists(
                st.sampled_from(["key", "title", "", "f.key", "key\ud800"]),
                max_size=MAX_QUERY_FIELDS + 1,
            )
            | json_values,
        ),
    },
)
query_options = mostly(known_options, st.fixed_dictionaries({"colour": json_values}))
#: What a refused query may be answered with.
QUERY_ERRORS = {"bad_query", "query_too_long", "bad_value", "bad_json", "bad_encoding"}


def check_query_answer(app: SearchApp, text: Any, options: dict[str, Any], ascii: bool) -> Any:
    """Send one query through ``app``; check the answer's shape and return it."""
    body = {"action": "query", "value": text, **options}
    content = json.dumps(body, ensure_ascii=ascii).encode("utf-8", "surrogatepass")
    answer = app.respond(Message(content, "text/json", "utf-8"))
    reply = complete(answer)
    decoded = json.loads(reply.message.content.decode("utf-8"))
    if reply.error is not None:
        assert decoded == {"result": decoded["result"], "error": reply.error}
        assert decoded["result"].startswith("Error: ")
        assert reply.error in QUERY_ERRORS, decoded
        return decoded
    assert set(decoded) == {"result", "total"}
    hits, total = decoded["result"], decoded["total"]
    assert type(hits) is list and type(total) is int
    assert total >= len(hits)
    assert len(hits) <= options.get("limit", DEFAULT_QUERY_LIMIT)
    for hit in hits:
        assert set(hit) == {"key", "answer", "score", "highlight"}
        assert type(hit["key"]) is str and type(hit["answer"]) is str
        assert type(hit["score"]) is float and hit["score"] >= 0
        assert type(hit["highlight"]) is str
        plain = hit["highlight"].replace(HIGHLIGHT_START, "").replace(HIGHLIGHT_END, "")
        assert plain == hit["answer"]
    return decoded


def describe(answer: dict[str, Any]) -> None:
    """Tell the hypothesis statistics what kind of answer it was."""
    if "error" in answer:
        event(f"error: {answer['error']}")
    else:
        event(f"hits: {min(len(answer['result']), 2)}")


@pytest.fixture(scope="module")
def small_app(films: SearchIndex) -> SearchApp:
    return SearchApp(films)


@pytest.mark.fuzz
@given(text=query_texts | json_values, options=query_options, ascii=st.booleans())
def test_any_query_gets_hits_or_an_error_answer(
    small_app: SearchApp, text: Any, options: dict[str, Any], ascii: bool
) -> None:
    describe(check_query_answer(small_app, text, options, ascii))


def big_data() -> dict[str, str]:
    rng = random.Random(20_000)
    data = {
        f"doc{n}": " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(3, 12)))
        for n in range(20_000)
    }
    data.update(FILMS)
    return data


@pytest.fixture(scope="module")
def big_app() -> SearchApp:
    """An app over more documents than it queries inline: queries are
    Deferred. (No ranking cache, which would answer repeated ones inline.)"""
    app = SearchApp(index_of(big_data(), ranking_cache_hits=0))
    assert app.index.documents > app.inline_documents
    return app


def test_big_index_queries_run_as_deferred_work(big_app: SearchApp) -> None:
    request = {"action": "query", "value": "rabit", "limit": 3}
    answer = big_app.respond(Message(json.dumps(request).encode(), "text/json", "utf-8"))
    assert isinstance(answer, Deferred)
    decoded = check_query_answer(big_app, "rabit", {"limit": 3}, True)
    assert len(decoded["result"]) == 3
    assert decoded["total"] > 1000
    assert check_query_answer(big_app, "morpheus", {}, True)["result"][0]["key"] == "morpheus"


def test_big_index_answers_cheap_queries_inline(big_app: SearchApp) -> None:
    """A word few documents hold, whole, reads few postings: a hand-off to a
    worker thread would cost more than the query."""

    def answer(value: str, **options: Any) -> object:
        request = {"action": "query", "value": value, **options}
        return big_app.respond(Message(json.dumps(request).encode(), "text/json", "utf-8"))

    index = big_app.index
    assert index._snapshot.searcher.doc_freq("all", "morpheus") < CHEAP_QUERY_POSTINGS
    # Whole (no prefix) and without typos: one pass, few postings.
    assert isinstance(answer("morpheus ", typos=False), Reply)
    # As many documents as the page: the second pass will not run.
    assert isinstance(answer("morpheus", limit=1), Reply)
    assert isinstance(answer("morpheus ", typos=False, fields=["answer", "key"]), Deferred)
    frequency = functools.partial(index._snapshot.searcher.doc_freq, "all")
    common = sorted(VOCABULARY, key=frequency, reverse=True)[:4]
    assert sum(map(frequency, common)) > CHEAP_QUERY_POSTINGS
    assert isinstance(answer(" ".join(common) + " ", typos=False), Deferred)
    # Too few for the page: the second pass will look for typos and
    # completions. Until the dictionary slices they need are read (in the
    # worker thread), it is not known how many documents hold them.
    long_words = [
        word for word in sorted(VOCABULARY, key=frequency, reverse=True) if len(word) >= 5
    ]
    misspelt = [word[:-1] + ("q" if word[-1] != "q" else "z") for word in long_words[:8]]
    unread = " ".join(misspelt)
    assert not index.has_dictionary_for(index.words(unread, QueryOptions()))
    assert isinstance(answer(unread), Deferred)
    index.read_dictionary_for(index.words(unread, QueryOptions()))
    index.read_dictionary_for(index.words("morphus", QueryOptions()))
    index.read_dictionary_for(index.words("morph", QueryOptions()))
    # Then: a misspelt word that few documents hold, or its completions,
    # runs inline; misspelt words the commonest words match do not.
    assert isinstance(answer("morphus"), Reply)
    assert isinstance(answer("morph"), Reply)
    assert sum(map(frequency, long_words[:8])) > CHEAP_QUERY_POSTINGS
    assert isinstance(answer(unread), Deferred)


def test_a_small_index_reads_a_dictionary_slice_in_a_worker_thread_once() -> None:
    """The first query on a small index that may need typos for a word
    whose dictionary slice is unread goes to a worker thread (reading it
    costs up to 15 ms), which reads it; the next one runs on the event loop."""
    app = SearchApp(index_of(FILMS, ranking_cache_hits=0))
    assert app.index.documents <= app.inline_documents

    def answer(value: str) -> object:
        request = {"action": "query", "value": value}
        return app.respond(Message(json.dumps(request).encode(), "text/json", "utf-8"))

    assert isinstance(answer("neo"), Reply)  # too short for typos
    first = answer("white rabbit")
    assert isinstance(first, Deferred)
    assert [hit["key"] for hit in result(first)["result"]] == ["morpheus", "alice"]
    again = answer("white rabit")  # the same letters: slices read
    assert isinstance(again, Reply)
    assert [hit["key"] for hit in result(again)["result"]] == ["morpheus", "alice"]
    assert isinstance(answer("whyte rabbot"), Reply)
    assert isinstance(answer("white kitten"), Deferred)  # "k": not read yet


@pytest.mark.fuzz
@given(text=query_texts, options=query_options, ascii=st.booleans())
def test_any_query_on_a_big_index_gets_hits_or_an_error_answer(
    big_app: SearchApp, text: str, options: dict[str, Any], ascii: bool
) -> None:
    describe(check_query_answer(big_app, text, options, ascii))


def test_costly_queries_on_a_small_index_run_as_deferred_work() -> None:
    """A small index answers most queries on the event loop, but not a page of
    many hits (each read and highlighted) nor a query naming ``fields`` (each
    field multiplies the terms and automata): those took milliseconds of the
    loop, stalling every other connection."""
    data = dict(list(big_data().items())[:2_000])
    app = SearchApp(index_of(data, field_queries=True, ranking_cache_hits=0))
    assert app.index.documents <= app.inline_documents

    def answer(value: str, **options: Any) -> object:
        request = {"action": "query", "value": value, **options}
        return app.respond(Message(json.dumps(request).encode(), "text/json", "utf-8"))

    word = max(VOCABULARY, key=functools.partial(app.index._snapshot.searcher.doc_freq, "all"))
    assert isinstance(answer(word), Reply)  # a page of 10: cheap
    assert isinstance(answer(word, limit=INLINE_QUERY_MAX_HITS + 1), Deferred)
    assert isinstance(answer(word, limit=MAX_QUERY_LIMIT), Deferred)
    assert isinstance(answer(word, fields=["answer"]), Deferred)
    # An index smaller than the page cannot return more than it holds.
    assert isinstance(
        SearchApp().respond(
            Message(json.dumps({"action": "query", "value": "rab", "limit": 100}).encode())
        ),
        Reply,
    )
