"""The tutorial's built-in data, and key -> answer mappings as search indexes."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from . import _codes as codes
from ._documents import DocumentReader, FieldMapping, documents_from_mapping, foreign_encoding
from ._engine import SearchIndex
from ._errors import ConfigurationError
from ._index_meta import IndexMeta
from ._log import logger
from ._ranking_cache import RANKING_CACHE_HITS
from ._schema import writer_threads

#: The tutorial's data, exactly (``request_search`` in its libserver.py).
BUILTIN_INDEX: Mapping[str, str] = MappingProxyType(
    {
        "morpheus": "Follow the white rabbit. \U0001f430",
        "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
        "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
    }
)


def parse_index(text: str, *, source: str = "<data>") -> Mapping[str, str]:
    """Parse index JSON text: one object mapping each key to its answer string.

    Raises:
        ConfigurationError: the text is not such an object.
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ConfigurationError(f"{source}: not valid JSON: {exc}", code=codes.BAD_DATA) from exc
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{source}: expected a JSON object of key -> answer, got {type(data).__name__}",
            code=codes.BAD_DATA,
        )
    for key, answer in data.items():
        if not isinstance(answer, str):
            raise ConfigurationError(
                f"{source}: the answer for {key!r} is {type(answer).__name__}, not a string",
                code=codes.BAD_DATA,
            )
    return MappingProxyType(data)


def load_index(path: str | Path) -> Mapping[str, str]:
    """Read an index file (UTF-8 JSON object of key -> answer string).

    This blocks on file I/O: call it before the event loop starts, or through
    ``trio.to_thread.run_sync``.

    Raises:
        ConfigurationError: the file cannot be read or is not a valid index.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read data file {str(path)!r}: {exc.strerror or exc}", code=codes.BAD_DATA
        ) from exc
    encoding = foreign_encoding(raw[:4])
    if encoding is not None:
        raise ConfigurationError(
            f"data file {str(path)!r} looks like {encoding}; save it as UTF-8",
            code=codes.BAD_DATA,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"data file {str(path)!r} is not UTF-8: {exc}", code=codes.BAD_DATA
        ) from exc
    return parse_index(text, source=str(path))


def index_of_mapping(
    data: Mapping[str, str],
    *,
    field_queries: bool = False,
    ranking_cache_hits: int = RANKING_CACHE_HITS,
) -> SearchIndex:
    """An in-memory search index of key -> answer pairs: each pair is a
    document whose ``key`` and ``answer`` fields are searchable (each on its
    own too with ``field_queries``). ``ranking_cache_hits``: see
    :class:`SearchIndex`."""
    return SearchIndex.from_documents(
        documents_from_mapping(data),
        IndexMeta(field_queries=field_queries),
        ranking_cache_hits=ranking_cache_hits,
    )


@functools.cache
def builtin_search_index() -> SearchIndex:
    """The tutorial's three entries as a search index, built once per process
    (it never changes, and every default server and app shares it)."""
    return index_of_mapping(BUILTIN_INDEX)


def index_of_file(
    path: str | Path,
    mapping: FieldMapping | None = None,
    *,
    format: str | None = None,
    csv_delimiter: str | None = None,
    field_queries: bool = False,
    ranking_cache_hits: int = RANKING_CACHE_HITS,
) -> SearchIndex:
    """Read a data file (JSON, JSON Lines or CSV) into an in-memory index,
    logging the file, the number of documents and the time it took.
    ``format`` and ``csv_delimiter``: see :class:`DocumentReader`.
    ``field_queries`` indexes each field on its own too (see
    :attr:`~trio_search._index_meta.IndexMeta.field_queries`);
    ``ranking_cache_hits``: see :class:`SearchIndex`.

    Blocks: call it before the event loop starts or in a worker thread.

    Raises:
        DataError: the file cannot be read, or a record is bad (the message
            names the file and the line or record).
    """
    mapping = mapping or FieldMapping()
    started = time.perf_counter()
    with DocumentReader(path, mapping, format=format, csv_delimiter=csv_delimiter) as reader:
        meta = IndexMeta(
            mapping.key_field,
            mapping.answer_field,
            mapping.search_fields,
            field_queries=field_queries,
        )
        index = SearchIndex.from_documents(
            reader,
            meta,
            threads=writer_threads(reader.size),
            ranking_cache_hits=ranking_cache_hits,
        )
    logger.info(
        "indexed %d documents from %s in %.2f s",
        index.documents,
        path,
        time.perf_counter() - started,
    )
    return index


def check_data_file(
    path: str | Path,
    mapping: FieldMapping | None = None,
    *,
    format: str | None = None,
    csv_delimiter: str | None = None,
) -> int:
    """Read a data file through without indexing it; return how many
    documents it holds (a supervisor's check before its workers index it).

    Raises:
        DataError: as :func:`index_of_file`.
    """
    mapping = mapping or FieldMapping()
    with DocumentReader(path, mapping, format=format, csv_delimiter=csv_delimiter) as reader:
        return sum(1 for _ in reader)
