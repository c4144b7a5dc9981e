"""The documents a snapshot remembers for replies: read once, bounded."""

from __future__ import annotations

from collections.abc import Callable

from trio_search._stored_documents import (
    MAX_REMEMBERED_CHARACTERS,
    MAX_REMEMBERED_DOCUMENTS,
    StoredDocuments,
)


class Store:
    """A document store that counts its reads."""

    def __init__(self, answer: str = "Follow the white rabbit.") -> None:
        self.answer = answer
        self.reads = 0

    def reader(self, where: tuple[int, int]) -> Callable[[], tuple[str, str]]:
        def read() -> tuple[str, str]:
            self.reads += 1
            return f"doc-{where[1]}", self.answer

        return read


def test_a_document_is_read_once() -> None:
    store, stored = Store(), StoredDocuments()
    for _ in range(3):
        assert stored.get((0, 7), store.reader((0, 7))) == ("doc-7", "Follow the white rabbit.")
    assert stored.get((1, 7), store.reader((1, 7))) == ("doc-7", "Follow the white rabbit.")
    assert store.reads == 2  # one per address


def test_long_answers_are_bounded_by_their_characters() -> None:
    # Answers are the user's data: 65,536 answers of a megabyte would be
    # 64 GB. One string shared by all, so the test itself stays small.
    store, stored = Store("x" * 1_000_000), StoredDocuments()
    for number in range(100):
        assert stored.get((0, number), store.reader((0, number)))[0] == f"doc-{number}"
        assert stored.characters <= MAX_REMEMBERED_CHARACTERS
    assert 0 < len(stored) <= MAX_REMEMBERED_CHARACTERS // 1_000_000
    # What is kept is still answered without a read.
    reads = store.reads
    stored.get((0, 99), store.reader((0, 99)))
    assert store.reads == reads


def test_an_answer_longer_than_the_bound_is_answered_not_kept() -> None:
    store, stored = Store("x" * (MAX_REMEMBERED_CHARACTERS + 1)), StoredDocuments()
    assert stored.get((0, 1), store.reader((0, 1)))[1] == store.answer
    assert len(stored) == 0 and stored.characters == 0


def test_the_documents_kept_are_bounded_in_number() -> None:
    store, stored = Store("a"), StoredDocuments()
    for number in range(MAX_REMEMBERED_DOCUMENTS + 10):
        stored.get((0, number), store.reader((0, number)))
        assert len(stored) <= MAX_REMEMBERED_DOCUMENTS
    assert len(stored) == 10  # emptied once, then refilled
