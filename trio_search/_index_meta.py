"""What trio_search keeps beside tantivy's files in an index directory.

An index directory holds tantivy's segments and ``meta.json``, and our
:data:`META_FILE`: which data fields made the documents, which fields are
searchable, whether they are indexed one by one (field queries), and a base
for the generation. This module reads and writes that file, and tells from
the directory alone which version of the data it holds
(:func:`generation_of`) and whether a commit has landed since a look
(:func:`commit_stamp`). Nothing here opens tantivy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from . import _codes as codes
from ._errors import ConfigurationError

#: Our own description of an index, beside tantivy's files.
META_FILE = "trio_search.json"
#: tantivy's own description of an index (its segments, its settings, its
#: commit counter), which it replaces whole on every commit.
TANTIVY_META = "meta.json"
#: Version of the layout above, and of the words the text analyzer cuts
#: (``trio_search._schema.WORD_PATTERN``): an index of another version is
#: refused, since its words would not be those queries look for. 2: words
#: keep their combining marks, and Chinese and Japanese characters are
#: each a word.
INDEX_FORMAT = 2


@attrs.frozen
class IndexMeta:
    """What an index holds, kept in ``trio_search.json`` (``META_FILE``) beside tantivy's files.

    Attributes:
        key_field: The data field the keys came from (a query whose
            ``fields`` leave it out has no exact-key tier).
            ``SearchIndex.from_documents`` takes it from the documents when
            they name it.
        answer_field: The data field the answers came from (likewise).
        search_fields: The fields chosen as searchable, or ``None`` for every
            string field.
        fields: Every searchable field seen in the documents: what a query's
            ``fields`` may name.
        generation_base: Added to tantivy's commit counter to make the
            index's generation, so that an index rebuilt in place (whose
            counter starts again) still numbers its data after the old one's.
        field_queries: Each field's words are also indexed on their own
            (the ``f`` field), so that a query's ``fields`` may pick some
            of them. Off by default: it indexes every word twice, which
            halves the speed of building.
    """

    key_field: str = "key"
    answer_field: str = "answer"
    search_fields: tuple[str, ...] | None = None
    fields: frozenset[str] = frozenset()
    generation_base: int = 0
    field_queries: bool = False

    def with_fields(self, names: Iterable[str]) -> IndexMeta:
        return attrs.evolve(self, fields=self.fields | frozenset(names))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "key_field": self.key_field,
            "answer_field": self.answer_field,
            "search_fields": None if self.search_fields is None else list(self.search_fields),
            "fields": sorted(self.fields),
            "generation_base": self.generation_base,
            "field_queries": self.field_queries,
        }

    @classmethod
    def from_json(cls, data: Any, source: str) -> IndexMeta:
        try:
            if data["format"] != INDEX_FORMAT:
                raise ConfigurationError(
                    f"{source}: index format {data['format']!r}; this trio_search reads "
                    f"format {INDEX_FORMAT}: build the index again",
                    code=codes.BAD_INDEX,
                )
            search_fields = data["search_fields"]
            return cls(
                key_field=str(data["key_field"]),
                answer_field=str(data["answer_field"]),
                search_fields=None if search_fields is None else tuple(search_fields),
                fields=frozenset(data["fields"]),
                generation_base=int(data.get("generation_base", 0)),
                # Indexes written before the option existed all have them.
                field_queries=bool(data.get("field_queries", True)),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"{source}: not a trio_search index", code=codes.BAD_INDEX
            ) from exc


def read_meta(path: Path) -> IndexMeta:
    """The :class:`IndexMeta` of the index in directory ``path``.

    Raises:
        ConfigurationError: ``path`` holds no trio_search index.
    """
    meta_path = path / META_FILE
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError) as exc:
        if path.is_dir():
            why = f"no {META_FILE}"
        elif path.exists():
            why = (
                "it is a file, not a directory: a data file goes to --data or build "
                "(read_documents() in Python)"
            )
        else:
            why = "no such directory"
        raise ConfigurationError(
            f"{str(path)!r} holds no trio_search index ({why}); "
            "create one with 'trio-search-index build'",
            code=codes.BAD_INDEX,
        ) from exc
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot read {str(meta_path)!r}: {exc}", code=codes.BAD_INDEX
        ) from exc
    return IndexMeta.from_json(data, str(meta_path))


def write_meta(path: Path, meta: IndexMeta) -> None:
    """Write ``meta`` into index directory ``path`` atomically."""
    temporary = path / (META_FILE + ".tmp")
    temporary.write_text(json.dumps(meta.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path / META_FILE)


def generation_of(path: Path) -> int:
    """The index's generation: tantivy's commit counter (its opstamp, which
    grows with every commit) plus our ``generation_base`` (which grows with
    every rebuild), so it names a version of the data and never goes back."""
    try:
        opstamp = int(json.loads((path / TANTIVY_META).read_text(encoding="utf-8"))["opstamp"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return opstamp + _generation_base(path)


def _generation_base(path: Path) -> int:
    """The ``generation_base`` of the index in ``path``, whatever its format
    (so that rebuilding an index of another format, which cannot be
    searched, goes on from its generation); 0 if none can be read."""
    try:
        data = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        return int(data.get("generation_base", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


def commit_stamp(path: Path) -> tuple[int, ...]:
    """What changes when a commit lands: tantivy replaces meta.json whole,
    and :func:`write_meta` replaces :data:`META_FILE` (new fields), which a
    writer may do after its commit."""
    try:
        directory = path.stat()
        meta = (path / TANTIVY_META).stat()
    except OSError:
        return ()
    try:
        ours = (path / META_FILE).stat()
    except OSError:
        described: tuple[int, ...] = (0, 0, 0)
    else:
        described = (ours.st_ino, ours.st_mtime_ns, ours.st_size)
    return (directory.st_ino, meta.st_ino, meta.st_mtime_ns, meta.st_size, *described)
