"""Writing on-disk indexes: build, add, delete, describe (``trio-search-index``).

Theory of operation
-------------------

Every operation here blocks (disk, CPU) and neither parses options nor
prints: each returns a result object, and reports progress through an
optional callback. :mod:`trio_search._index_cli` is the command around it.

- **build** never writes into the directory it is asked for. It builds a
  complete index in a fresh sibling, ``DIR.building-<random>``, then swaps:
  the old directory (if any) is renamed aside, the new one renamed into
  place, the old one deleted. A failed build (bad record, full disk,
  Ctrl-C) removes the sibling and leaves ``DIR`` exactly as it was. A server
  watching ``DIR`` sees a new directory (a new inode) and reopens it. Only an
  empty directory or a trio_search index (it has :data:`META_FILE`) holding
  nothing but the index's own files is replaced: anything else might be
  someone's data.
- **add** and **delete** change an index in place through one tantivy
  writer and one commit: a reader (the server) sees all of the change or
  none of it. A bad record anywhere means no commit at all.
- tantivy allows one writer per directory (a lock file); a second one gets
  :class:`IndexBusyError`. A build holds the lock of the index it replaces
  from start to swap, so no ``add`` lands in an index about to be thrown
  away. Every writer is finished with ``wait_merging_threads()``, which
  also releases the lock at once rather than whenever Python frees it.
- tantivy's lock lives inside the index, so it cannot guard a directory
  that does not exist yet. A build therefore also holds, from start to
  finish, an ``flock`` on the sibling file ``DIR.trio-search-build.lock``
  (:func:`build_lock`), removed when it is done: a second build into
  ``DIR`` is refused, and so are ``add`` and ``delete`` (they look at the
  lock before starting, :func:`check_not_building`). The kernel drops an
  ``flock`` when its holder dies, so a lock file left by a killed build
  blocks nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import attrs
import tantivy

from . import _codes as codes
from ._documents import Document, DocumentReader, FieldMapping
from ._errors import ConfigurationError
from ._index_meta import (
    INDEX_FORMAT,
    META_FILE,
    TANTIVY_META,
    IndexMeta,
    generation_of,
    read_meta,
    write_meta,
)
from ._schema import (
    WRITER_HEAP_BYTES,
    add_document,
    create_index,
    open_tantivy_index,
    tantivy_reason,
    writer_threads,
)

#: Least time between two progress reports, in seconds (10 a second).
PROGRESS_INTERVAL = 0.1
#: Documents between two looks at the clock: checking ``time.monotonic()``
#: for each document would cost more than the progress is worth.
PROGRESS_EVERY = 1024
#: Free bytes on a disk below which a failed write is blamed on a full disk.
LOW_DISK_SPACE = 1024 * 1024
#: What a temporary build directory's name adds to the index directory's.
BUILDING_SUFFIX = ".building-"
#: What the replaced index is renamed to while the new one moves in.
OLD_SUFFIX = ".old-"
#: What the file a build locks, beside the index directory, adds to its name.
LOCK_SUFFIX = ".trio-search-build.lock"


class IndexBusyError(ConfigurationError):
    """Another writer (another ``trio-search-index``) holds the index's lock."""

    default_code = "index_busy"


@attrs.frozen
class Progress:
    """How far an operation has read its data file.

    Attributes:
        bytes_read: Bytes of the data file consumed so far.
        size: The data file's size in bytes (0 if unknown, as for a pipe).
        documents: Documents read so far.
        elapsed: Seconds since the operation started.
        committing: Every document is read; tantivy is writing its last
            segments and committing (seconds, for a big build).
    """

    bytes_read: int
    size: int
    documents: int
    elapsed: float
    committing: bool = False


#: Called with a :class:`Progress` at most every :data:`PROGRESS_INTERVAL`
#: seconds while documents are read, and once more when all are read.
ProgressCallback = Callable[[Progress], None]


@attrs.frozen
class BuildResult:
    """What :func:`build_index` did.

    Attributes:
        documents: Documents in the new index.
        data: The data file, as given.
        index: The index directory.
        seconds: Wall time of the whole build, swap included.
        size: The new index's size on disk, in bytes.
        generation: The new index's generation.
        replaced: Whether an index was there before (and was replaced).
    """

    documents: int
    data: str
    index: Path
    seconds: float
    size: int
    generation: int
    replaced: bool

    @property
    def rate(self) -> float:
        """Documents per second."""
        return self.documents / self.seconds if self.seconds > 0 else 0.0


@attrs.frozen
class AddResult:
    """What :func:`add_documents` did.

    Attributes:
        documents: Documents written (new ones and replacements).
        replaced: How many of them replaced a document with the same key.
        index: The index directory.
        generation: The index's generation after the commit.
        new_fields: Searchable field names the index did not have before.
        seconds: Wall time.
    """

    documents: int
    replaced: int
    index: Path
    generation: int
    new_fields: tuple[str, ...]
    seconds: float


@attrs.frozen
class DeleteResult:
    """What :func:`delete_documents` did.

    Attributes:
        deleted: The keys found, and deleted, in the order given.
        not_found: The keys no document had, in the order given.
        index: The index directory.
        generation: The index's generation afterwards (unchanged if nothing
            was deleted).
    """

    deleted: tuple[str, ...]
    not_found: tuple[str, ...]
    index: Path
    generation: int


@attrs.frozen
class IndexInfo:
    """What an index holds (:func:`index_info`).

    Attributes:
        index: The index directory.
        documents: Documents searchable now.
        generation: tantivy's opstamp: it grows with every commit.
        segments: tantivy segments (fewer is faster to search).
        size: Bytes on disk.
        meta: The fields: key, answer, searchable.
        format: The layout version (:data:`trio_search._index_meta.INDEX_FORMAT`).
    """

    index: Path
    documents: int
    generation: int
    segments: int
    size: int
    meta: IndexMeta
    format: int = INDEX_FORMAT

    def to_json(self) -> dict[str, object]:
        return {
            "index": str(self.index),
            "documents": self.documents,
            "generation": self.generation,
            "segments": self.segments,
            "size_bytes": self.size,
            "key_field": self.meta.key_field,
            "answer_field": self.meta.answer_field,
            "search_fields": (
                None if self.meta.search_fields is None else list(self.meta.search_fields)
            ),
            "fields": sorted(self.meta.fields),
            "field_queries": self.meta.field_queries,
            "format": self.format,
        }


# -- building blocks ------------------------------------------------------------


def _show(path: Path) -> str:
    text = str(path)
    return text if text.isprintable() else repr(text)


def _io_error(what: str, exc: OSError) -> ConfigurationError:
    """One line for an OSError: what we were doing, the system's reason."""
    return ConfigurationError(f"{what}: {exc.strerror or exc}", code=codes.INDEX_IO)


def _tantivy_error(what: str, exc: Exception, directory: Path) -> ConfigurationError:
    """One line for an error tantivy raised (its messages may span lines).

    tantivy reports a failed write from its threads as "an index writer was
    killed", without the reason; a full disk is the usual one, so say so.
    """
    reason = tantivy_reason(exc)
    try:
        usage = shutil.disk_usage(directory if directory.exists() else directory.parent)
    except OSError:
        pass
    else:
        if usage.free < LOW_DISK_SPACE:
            reason += f" (the disk is full: {usage.free // 1024} KiB free)"
    return ConfigurationError(f"{what}: {reason}", code=codes.INDEX_IO)


@contextlib.contextmanager
def _translated(what: str, directory: Path) -> Iterator[None]:
    """Turn what tantivy and the OS raise into one-line ConfigurationErrors."""
    try:
        yield
    except OSError as exc:
        raise _io_error(what, exc) from exc
    except ValueError as exc:
        raise _tantivy_error(what, exc, directory) from exc


def _busy(path: Path) -> IndexBusyError:
    return IndexBusyError(
        f"another trio-search-index is writing to {_show(path)}; try again when it is done"
    )


def _target_of(index_dir: str | Path) -> Path:
    """The directory a build into ``index_dir`` replaces or creates."""
    target = Path(index_dir)
    if target.is_symlink():
        # Replace the directory the link points to, and keep the link.
        return target.resolve()
    if target.name in ("", ".."):
        # "." or "..": the new index is built beside the target, by name.
        return Path(os.path.abspath(target))
    return target


def lock_file_of(target: Path) -> Path:
    """The file beside ``target`` that a build into it holds locked."""
    return target.with_name(f"{target.name}{LOCK_SUFFIX}")


@contextlib.contextmanager
def build_lock(target: Path) -> Iterator[None]:
    """Hold the exclusive ``flock`` of :func:`lock_file_of` ``target``
    (creating the file); on leaving, remove the file and release the lock.

    Raises:
        IndexBusyError: another build holds it.
        ConfigurationError: the lock file cannot be created.
    """
    lock = lock_file_of(target)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _io_error(f"cannot create {_show(lock)}", exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The holder before us removes the file before it unlocks it:
            # if we locked a file no longer at that name, nothing is held.
            held = os.path.samestat(os.fstat(fd), os.stat(lock))
        except BlockingIOError:
            os.close(fd)
            raise _busy(target) from None
        except FileNotFoundError:
            held = False
        except OSError as exc:
            os.close(fd)
            raise _io_error(f"cannot lock {_show(lock)}", exc) from exc
        if held:
            break
        os.close(fd)
    try:
        yield
    finally:
        # Remove, then unlock: whoever opened the file meanwhile sees that
        # it is gone and takes a new one.
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def check_not_building(index_dir: str | Path) -> None:
    """Refuse to write to ``index_dir`` while a build into it runs.

    Raises:
        IndexBusyError: a build holds the directory's :func:`build_lock`.
    """
    target = _target_of(index_dir)
    try:
        fd = os.open(lock_file_of(target), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # no lock file: no build (or none we can see)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(Path(index_dir)) from None
    except OSError:
        pass
    finally:
        os.close(fd)  # also releases the shared lock, if we got it


def _open_writer(index: tantivy.Index, path: Path, threads: int = 1) -> tantivy.IndexWriter:
    """The index's one writer, with ``threads`` indexing threads.

    Raises:
        IndexBusyError: another process (or object) holds the lock.
        ConfigurationError: anything else tantivy refused.
    """
    try:
        return index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=threads)
    except ValueError as exc:
        if "LockBusy" in str(exc):
            raise _busy(path) from None
        raise _tantivy_error(f"cannot write to {_show(path)}", exc, path) from exc
    except OSError as exc:
        raise _io_error(f"cannot write to {_show(path)}", exc) from exc


def _finish(writer: tantivy.IndexWriter) -> None:
    """Let background merges end and release the writer's lock now."""
    writer.wait_merging_threads()


def _abandon(writer: tantivy.IndexWriter) -> None:
    """Drop whatever was written since the last commit; release the lock.

    A rollback leaves the segment files written so far on disk (tantivy
    deletes unused files only at its next commit), so they are collected
    here: a failed ``add`` must leave the directory as it was.
    """
    try:
        writer.rollback()
        writer.garbage_collect_files()
    finally:
        writer.wait_merging_threads()


def _commit(writer: tantivy.IndexWriter, path: Path) -> None:
    try:
        writer.commit()
    except ValueError as exc:
        raise _tantivy_error(f"cannot commit to {_show(path)}", exc, path) from exc


def directory_size(path: Path) -> int:
    """Bytes in the files directly inside ``path`` (an index has no subdirectories)."""
    total = 0
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


class _Reading:
    """Iterates over a reader's documents, counting them and reporting progress."""

    def __init__(
        self, reader: DocumentReader, progress: ProgressCallback | None, started: float
    ) -> None:
        self.reader = reader
        self.progress = progress
        self.started = started
        #: Documents yielded so far.
        self.documents = 0

    def __iter__(self) -> Iterator[Document]:
        reader = self.reader
        progress = self.progress
        if progress is None:
            for self.documents, document in enumerate(reader, 1):
                yield document
            return
        started = last = self.started
        for self.documents, document in enumerate(reader, 1):
            yield document
            if self.documents % PROGRESS_EVERY == 0:
                now = time.monotonic()
                if now - last >= PROGRESS_INTERVAL:
                    last = now
                    progress(
                        Progress(reader.bytes_read, reader.size, self.documents, now - started)
                    )
        elapsed = time.monotonic() - started
        progress(Progress(reader.bytes_read, reader.size, self.documents, elapsed, committing=True))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_index(path: Path) -> bool:
    return (path / META_FILE).is_file()


#: The files an index directory holds besides its segments' (tantivy's
#: bookkeeping and locks, and ours).
_INDEX_FILES = frozenset(
    {META_FILE, TANTIVY_META, ".managed.json", ".tantivy-meta.lock", ".tantivy-writer.lock"}
)
#: A segment's file: its 32-hex-digit id, for deletes an operation number,
#: then what it holds (``.term``, ``.store``, ``.del``, ...).
_SEGMENT_FILE = re.compile(r"[0-9a-f]{32}(\.[0-9]+)?\.[a-z]+")


def _foreign_entries(path: Path) -> list[str]:
    """What directory ``path`` holds besides an index's own files, sorted."""
    return sorted(
        entry.name
        for entry in path.iterdir()
        if entry.name not in _INDEX_FILES and not _SEGMENT_FILE.fullmatch(entry.name)
    )


def _lock_old_index(path: Path) -> tantivy.IndexWriter | None:
    """Hold the writer lock of the index about to be replaced, so that no
    ``add`` commits to it while the new one is built; ``None`` if tantivy
    cannot open it at all (it is replaced all the same)."""
    try:
        index = tantivy.Index.open(str(path))
    except (OSError, ValueError):
        return None
    # Only the lock matters: the smallest heap tantivy accepts, one thread.
    try:
        return index.writer(heap_size=15_000_000, num_threads=1)
    except ValueError as exc:
        if "LockBusy" in str(exc):
            raise _busy(path) from None
        return None


def _check_target(path: Path) -> bool:
    """Whether ``path`` may become (or be replaced by) a new index; returns
    whether something is there to replace.

    Raises:
        ConfigurationError: it is a file, or a non-empty directory that is
            not a trio_search index, or its parent is not a directory.
    """
    shown = _show(path)
    try:
        if not path.exists():
            if not path.parent.is_dir():
                raise ConfigurationError(
                    f"cannot create {shown}: {_show(path.parent)} is not a directory",
                    code=codes.INDEX_IO,
                )
            return False
        if not path.is_dir():
            raise ConfigurationError(
                f"{shown} is not a directory; give --index a directory to build the index in",
                code=codes.BAD_INDEX,
            )
        if _is_index(path):
            foreign = _foreign_entries(path)
            if foreign:
                listed = ", ".join(repr(name) for name in foreign[:5])
                more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
                raise ConfigurationError(
                    f"{shown} holds files that are not part of the index ({listed}{more}); "
                    "refusing to replace them: move them out first",
                    code=codes.BAD_INDEX,
                )
            return True
        if any(path.iterdir()):
            raise ConfigurationError(
                f"{shown} is not empty and holds no trio_search index; refusing to replace "
                "it (choose another --index, or empty it yourself)",
                code=codes.BAD_INDEX,
            )
    except OSError as exc:
        raise _io_error(f"cannot use {shown}", exc) from exc
    return True


def _swap_into_place(new: Path, target: Path) -> Path | None:
    """Move the complete index ``new`` to ``target``, replacing what is there.

    The old directory is renamed aside and its new name returned, for the
    caller to delete; then the new one is renamed into place. If that
    fails, the old one is put back.
    """
    if not target.exists():
        os.rename(new, target)
        return None
    aside = target.with_name(f"{target.name}{OLD_SUFFIX}{secrets.token_hex(4)}")
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(aside, target)
        raise
    return aside


# -- the operations -------------------------------------------------------------


def build_index(
    data: str | Path,
    index_dir: str | Path,
    mapping: FieldMapping | None = None,
    *,
    format: str | None = None,
    csv_delimiter: str | None = None,
    progress: ProgressCallback | None = None,
    field_queries: bool = False,
) -> BuildResult:
    """Index the data file ``data`` into the directory ``index_dir``.

    ``index_dir`` must not exist, or be empty, or hold a trio_search index,
    which is replaced whole (see the theory of operation). Nothing changes
    if the build fails.

    Args:
        data: A JSON, JSON Lines or CSV file (see :class:`DocumentReader`).
        index_dir: Where the index goes.
        mapping: Which fields make up a document; the defaults if ``None``.
        format: The data format, or ``None`` to go by the suffix.
        csv_delimiter: What separates a CSV file's cells (see
            :class:`DocumentReader`); ``None`` for the suffix's default.
        progress: Called as documents are read.
        field_queries: Also index each field's words on their own, so that
            a query's ``fields`` may pick some fields (about twice the work).

    Raises:
        DataError: the data file cannot be read, or a record is bad.
        IndexBusyError: another writer is writing to the index there.
        ConfigurationError: ``index_dir`` cannot be used or written.
    """
    started = time.monotonic()
    mapping = mapping or FieldMapping()
    target = _target_of(index_dir)
    # Checked before the lock file is made beside it (a parent that is not
    # a directory is named as such), and again once it is held.
    _check_target(target)
    with build_lock(target):
        return _build_locked(
            data, target, mapping, format, csv_delimiter, progress, field_queries, started
        )


def _build_locked(
    data: str | Path,
    target: Path,
    mapping: FieldMapping,
    format: str | None,
    csv_delimiter: str | None,
    progress: ProgressCallback | None,
    field_queries: bool,
    started: float,
) -> BuildResult:
    """:func:`build_index`, under the target's :func:`build_lock`."""
    replacing = _check_target(target)
    old_lock = _lock_old_index(target) if replacing and _is_index(target) else None
    building = target.with_name(f"{target.name}{BUILDING_SUFFIX}{secrets.token_hex(4)}")
    aside: Path | None = None
    try:
        with DocumentReader(data, mapping, format=format, csv_delimiter=csv_delimiter) as reader:
            # Created inside the try that removes it: a signal landing just
            # after the directory is made must not leave it behind.
            try:
                try:
                    building.mkdir()
                except OSError as exc:
                    raise _io_error(f"cannot create {_show(building)}", exc) from exc
                with _translated(f"cannot build the index in {_show(target)}", building):
                    meta = _meta_of(mapping, field_queries)
                    count, names = _write_new_index(reader, meta, building, progress, started)
                    # Number the new data after the old index's, if any.
                    base = generation_of(target) + 1 if replacing and _is_index(target) else 0
                    meta = attrs.evolve(meta, generation_base=base)
                    write_meta(building, meta.with_fields(names))
                    generation = generation_of(building)
                    size = directory_size(building)
                    aside = _swap_into_place(building, target)
            finally:
                shutil.rmtree(building, ignore_errors=True)
    finally:
        if old_lock is not None:
            # Nothing was written through it: only the lock is released.
            old_lock.wait_merging_threads()
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    return BuildResult(
        documents=count,
        data=str(data),
        index=target,
        seconds=time.monotonic() - started,
        size=size,
        generation=generation,
        replaced=replacing,
    )


def _meta_of(mapping: FieldMapping, field_queries: bool) -> IndexMeta:
    return IndexMeta(
        key_field=mapping.key_field,
        answer_field=mapping.answer_field,
        search_fields=mapping.search_fields,
        field_queries=field_queries,
    )


def _write_new_index(
    reader: DocumentReader,
    meta: IndexMeta,
    path: Path,
    progress: ProgressCallback | None,
    started: float,
) -> tuple[int, set[str]]:
    """Index every document of ``reader`` into a new index in ``path``;
    returns how many and the searchable field names seen."""
    try:
        index = create_index(path)
    except ValueError as exc:
        raise _tantivy_error(f"cannot create an index in {_show(path)}", exc, path) from exc
    writer = _open_writer(index, path, writer_threads(reader.size))
    try:
        names: set[str] = set()
        reading = _Reading(reader, progress, started)
        field_queries = meta.field_queries
        # The fields seen: those of the chosen search fields that some
        # record has (a name no record has is not one, so a query naming it
        # is told the fields there are), or every string field's name.
        update = names.update
        for document in reading:
            # A new index holds no earlier version of any key, and the
            # reader refuses duplicates: no delete before the add.
            add_document(writer, document, field_queries)
            update(document.fields)
        _commit(writer, path)
    except BaseException:
        _abandon(writer)
        raise
    _finish(writer)
    return reading.documents, names


def add_documents(
    data: str | Path,
    index_dir: str | Path,
    mapping: FieldMapping | None = None,
    *,
    format: str | None = None,
    csv_delimiter: str | None = None,
    progress: ProgressCallback | None = None,
) -> AddResult:
    """Insert the documents of ``data`` into an existing index, replacing
    any document with the same key; one commit, or none if anything fails.

    Args:
        data: A JSON, JSON Lines or CSV file.
        index_dir: The index directory.
        mapping: Which fields make up a document; ``None`` for the ones the
            index was built with.
        format: The data format, or ``None`` to go by the suffix.
        csv_delimiter: What separates a CSV file's cells (see
            :class:`DocumentReader`); ``None`` for the suffix's default.
        progress: Called as documents are read.

    Raises:
        DataError: the data file cannot be read, or a record is bad.
        IndexBusyError: another writer is writing to the index.
        ConfigurationError: no index there, or it cannot be written.
    """
    started = time.monotonic()
    path = Path(index_dir)
    check_not_building(path)
    meta = read_meta(path)
    if mapping is None:
        mapping = FieldMapping(meta.key_field, meta.answer_field, meta.search_fields)
    index = open_tantivy_index(path)
    reader = DocumentReader(data, mapping, format=format, csv_delimiter=csv_delimiter)
    with reader, _translated(f"cannot add to {_show(path)}", path):
        writer = _open_writer(index, path)
        try:
            # What the index held before this add: replaced keys are found here.
            index.reload()
            searcher = index.searcher()
            schema = index.schema
            term_query = tantivy.Query.term_query
            search = searcher.search
            names: set[str] = set()
            replaced = 0
            reading = _Reading(reader, progress, started)
            for document in reading:
                key = document.key
                if search(term_query(schema, "key", key), 1, count=False).hits:
                    replaced += 1
                writer.delete_documents_by_term("key", key)
                add_document(writer, document, meta.field_queries)
                names.update(document.fields)
            new_meta = meta.with_fields(names)
            # The field list goes first: if the commit fails it is put back;
            # if it succeeds, a reader that sees the commit sees the fields.
            if new_meta != meta:
                _write_meta(path, new_meta)
            try:
                _commit(writer, path)
            except BaseException:
                if new_meta != meta:
                    _write_meta(path, meta)
                raise
        except BaseException:
            _abandon(writer)
            raise
        _finish(writer)
    return AddResult(
        documents=reading.documents,
        replaced=replaced,
        index=path,
        generation=generation_of(path),
        new_fields=tuple(sorted(names - meta.fields)),
        seconds=time.monotonic() - started,
    )


def _write_meta(path: Path, meta: IndexMeta) -> None:
    try:
        write_meta(path, meta)
    except OSError as exc:
        raise _io_error(f"cannot write {_show(path / META_FILE)}", exc) from exc


def delete_documents(index_dir: str | Path, keys: Iterable[str]) -> DeleteResult:
    """Delete the documents whose key is exactly one of ``keys``; one
    commit, none if no key was found.

    Raises:
        IndexBusyError: another writer is writing to the index.
        ConfigurationError: no index there, or it cannot be written.
    """
    path = Path(index_dir)
    check_not_building(path)
    index = open_tantivy_index(path)
    with _translated(f"cannot delete from {_show(path)}", path):
        return _delete(index, path, keys)


def _delete(index: tantivy.Index, path: Path, keys: Iterable[str]) -> DeleteResult:
    writer = _open_writer(index, path)
    try:
        index.reload()
        searcher = index.searcher()
        schema = index.schema
        deleted: list[str] = []
        not_found: list[str] = []
        for key in dict.fromkeys(keys):  # each key once, in order
            if not _utf8(key):
                not_found.append(key)  # a lone surrogate (from a non-UTF-8 argument)
                continue
            hits = searcher.search(tantivy.Query.term_query(schema, "key", key), 1, count=False)
            if hits.hits:
                writer.delete_documents_by_term("key", key)
                deleted.append(key)
            else:
                not_found.append(key)
        if deleted:
            _commit(writer, path)
    except BaseException:
        _abandon(writer)
        raise
    if deleted:
        _finish(writer)
    else:
        _abandon(writer)
    return DeleteResult(tuple(deleted), tuple(not_found), path, generation_of(path))


def index_info(index_dir: str | Path) -> IndexInfo:
    """Describe the index in ``index_dir``.

    Raises:
        ConfigurationError: no readable trio_search index there.
    """
    path = Path(index_dir)
    meta = read_meta(path)
    index = open_tantivy_index(path)
    with _translated(f"cannot read {_show(path)}", path):
        searcher = index.searcher()
        size = directory_size(path)
    return IndexInfo(
        index=path,
        documents=searcher.num_docs,
        generation=generation_of(path),
        segments=searcher.num_segments,
        size=size,
        meta=meta,
    )
