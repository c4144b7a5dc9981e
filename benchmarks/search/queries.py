"""Varied query lists, drawn with a fixed seed from a corpus's own words.

Four query types (:data:`QUERY_TYPES`), a few thousand queries each, every
one drawn afresh so that no single request is repeated over and over:

- ``term``: one word of the corpus. Half are drawn from a random document's
  text (so frequent words come often, as in a query log), half uniformly
  from the distinct words (so rare ones come too).
- ``two_word``: two distinct words that occur together in some document.
- ``typo``: a word of at least :data:`TYPO_MIN_LENGTH` letters with one edit
  (substitution, deletion, insertion or transposition) that is not itself a
  word of the corpus; the intended word is kept, to measure recall.
- ``prefix``: the first 3 to 5 letters of a longer word of the corpus.

Words are runs of ASCII letters (:data:`WORD`), lowercased, of at least two
letters: what both engines' default tokenizers make a term of.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import corpora

#: The query types, in the order reports list them.
QUERY_TYPES = ("term", "two_word", "typo", "prefix")
#: Seed of every query list (mixed with the corpus's name).
QUERY_SEED = 7
#: Documents whose words the queries are drawn from.
SAMPLED_DOCUMENTS = 20_000
#: A word: a run of letters; shorter than this is not used in queries.
WORD = re.compile(r"[a-z]+")
MIN_WORD_LENGTH = 2
#: Shortest word given a typo (one edit in a shorter one is another word too often).
TYPO_MIN_LENGTH = 5
#: Letters a prefix query keeps: 3 to 5, always fewer than the word has.
PREFIX_LENGTHS = (3, 5)
#: Hits asked for per query.
QUERY_LIMIT = 10
#: Typo edits, drawn uniformly.
EDITS = ("substitute", "delete", "insert", "transpose")


def words_of(text: str) -> list[str]:
    """The query-able words of ``text``, in order."""
    return [word for word in WORD.findall(text.lower()) if len(word) >= MIN_WORD_LENGTH]


def sample_documents(path: Path, count: int, seed: int) -> list[dict[str, Any]]:
    """About ``count`` records of a JSON Lines corpus, chosen with ``seed``
    (all of them if it holds fewer); read in one pass."""
    total = corpora.count_lines(path)
    rng = random.Random(seed)
    chosen = set(rng.sample(range(total), min(count, total)))
    records = []
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file):
            if number in chosen:
                records.append(json.loads(line))
    return records


def document_words(records: Iterable[dict[str, Any]]) -> list[list[str]]:
    """Per record, the words of its text fields."""
    return [
        words
        for record in records
        if (words := words_of(" ".join(record[name] for name in corpora.text_fields(record))))
    ]


def typo(word: str, rng: random.Random) -> str:
    """``word`` with one random edit."""
    edit = rng.choice(EDITS)
    at = rng.randrange(len(word))
    if edit == "substitute":
        letter = rng.choice([c for c in string.ascii_lowercase if c != word[at]])
        return word[:at] + letter + word[at + 1 :]
    if edit == "delete":
        return word[:at] + word[at + 1 :]
    if edit == "insert":
        return word[:at] + rng.choice(string.ascii_lowercase) + word[at:]
    at = min(at, len(word) - 2)
    return word[:at] + word[at + 1] + word[at] + word[at + 2 :]


def make_queries(docs: list[list[str]], count: int, seed: int) -> dict[str, list[dict[str, str]]]:
    """``count`` queries of each type: ``{"value": ...}`` plus, for typos,
    ``"intended"``, the word before its edit."""
    rng = random.Random(seed)
    vocabulary = sorted({word for words in docs for word in words})
    known = set(vocabulary)
    long_words = [word for word in vocabulary if len(word) >= TYPO_MIN_LENGTH]
    prefixable = [word for word in vocabulary if len(word) > PREFIX_LENGTHS[0]]

    def some_word() -> str:
        if rng.random() < 0.5:
            return rng.choice(rng.choice(docs))
        return rng.choice(vocabulary)

    term = [{"value": some_word()} for _ in range(count)]
    two_word = []
    while len(two_word) < count:
        words = rng.choice(docs)
        first, second = rng.choice(words), rng.choice(words)
        if first != second:
            two_word.append({"value": f"{first} {second}"})
    typos = []
    while len(typos) < count:
        intended = rng.choice(long_words) if rng.random() < 0.5 else rng.choice(rng.choice(docs))
        if len(intended) < TYPO_MIN_LENGTH:
            continue
        value = typo(intended, rng)
        if value != intended and value not in known:
            typos.append({"value": value, "intended": intended})
    prefixes = []
    while len(prefixes) < count:
        word = rng.choice(prefixable) if rng.random() < 0.5 else rng.choice(rng.choice(docs))
        length = rng.randint(*PREFIX_LENGTHS)
        if len(word) > length:
            prefixes.append({"value": word[:length]})
    return {"term": term, "two_word": two_word, "typo": typos, "prefix": prefixes}


def corpus_queries(name: str, path: Path, count: int) -> dict[str, list[dict[str, str]]]:
    """The query lists of a corpus file, deterministic for its content."""
    seed = QUERY_SEED * 1_000_003 + sum(name.encode())
    records = sample_documents(path, SAMPLED_DOCUMENTS, seed)
    return make_queries(document_words(records), count, seed)


def sample_keys(path: Path, count: int, seed: int = QUERY_SEED) -> list[str]:
    """``count`` keys of the corpus (or all), in a seeded random order."""
    records = sample_documents(path, count, seed)
    keys = [record["key"] for record in records]
    random.Random(seed).shuffle(keys)
    return keys


def query_request(value: str, limit: int = QUERY_LIMIT) -> dict[str, Any]:
    """The content of a ``query`` request."""
    return {"action": "query", "value": value, "limit": limit}


def search_request(key: str) -> dict[str, Any]:
    """The content of an exact-key ``search`` request."""
    return {"action": "search", "value": key}
