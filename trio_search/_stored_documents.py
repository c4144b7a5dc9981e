"""The documents a snapshot has replied with, remembered (see
``trio_search._engine``).

Reading a hit's key and answer from tantivy's store costs 7-9 us (4 KiB
blocks, see ``DOCSTORE_BLOCK_BYTES``), about a tenth of a query with ten
hits on the standard library's docstrings; popular documents come back in
reply after reply. So each snapshot keeps those it has read, by address
(segment, document), and goes with them: a document changed since is read
again from the next snapshot.

The memory is bounded twice, by the documents kept and by their texts'
characters, since answers are the user's data and may be long; a full one
is emptied before more goes in (as ``trio_search._cache`` does), so what
clients ask for cannot grow it.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

#: Documents kept per snapshot, at most: about 200 bytes each beside their
#: texts (the dict's entry, the tuples, the strings' headers).
MAX_REMEMBERED_DOCUMENTS = 65_536
#: Characters of keys and answers kept per snapshot, at most: 16 MB of
#: ASCII text (up to four times that in other scripts). With answers of 100
#: characters the document bound comes first (about 20 MB in all).
MAX_REMEMBERED_CHARACTERS = 16_000_000

#: Where a document is: its segment's ordinal and its number in the segment.
Address = tuple[int, int]


@attrs.define
class StoredDocuments:
    """The key and answer of the documents read for replies, by address.

    Safe to use from several threads at once: a lost update only costs a
    second read of a document, or a miscount of characters that the next
    emptying forgets.
    """

    _kept: dict[Address, tuple[str, str]] = attrs.field(factory=dict)
    _characters: int = 0
    #: The longest answer read, kept or not, in characters.
    longest_answer: int = 0

    def get(self, where: Address, read: Callable[[], tuple[str, str]]) -> tuple[str, str]:
        """The key and answer at ``where``: remembered, or ``read()`` and kept."""
        found = self._kept.get(where)
        if found is None:
            found = read()
            self.longest_answer = max(self.longest_answer, len(found[1]))
            size = len(found[0]) + len(found[1])
            if (
                len(self._kept) >= MAX_REMEMBERED_DOCUMENTS
                or self._characters + size > MAX_REMEMBERED_CHARACTERS
            ):
                self._kept.clear()
                self._characters = 0
            if size <= MAX_REMEMBERED_CHARACTERS:
                self._kept[where] = found
                self._characters += size
        return found

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def characters(self) -> int:
        """Characters of the keys and answers kept now."""
        return self._characters
