"""Data files to documents: JSON, JSON Lines and CSV records for the index.

Theory of operation: a file holds *records*, each a mapping of field name to
value. :class:`FieldMapping` says which field is a record's key (looked up
exactly), which is its answer (what a hit returns) and which fields are
searchable text. One set of rules (``_Rules``) turns a record into a
:class:`Document` or gives the reason it cannot; each format only finds the
records and says *where* a bad one is, so every error reads
``"<file>:<line>: <reason>"`` (JSON Lines, CSV), ``"<file>: record <n>: ..."``
(a JSON array) or ``"<file>: key <json>: ..."`` (a JSON object of key ->
answer, the tutorial's format).

JSON Lines and CSV are streamed a line at a time in binary, so memory stays
O(longest record) plus one dict entry per key (to report duplicates). A JSON
file is one document and is read whole. Parsing uses orjson: building an
index must reach 50,000 documents/s end to end, and the reader should take a
small share of that.

Choices worth knowing:

- Line numbers are physical lines, 1-based, counting blank lines; a UTF-8 BOM
  at the start of a file is skipped in every format. A file that starts like
  UTF-16 or UTF-32 (a byte order mark, or ASCII with NUL bytes between) is
  refused at once with that said, rather than with the first byte that is
  not UTF-8.
- Integers are kept exactly, however many digits they have: a key or a
  searchable field is their decimal text (the index holds only text, never
  a number). orjson reads an integer outside -2**63 .. 2**64 - 1 as a
  float, keeping 17 digits; a record in which such a float is the key, the
  answer or a searchable field is read again by the standard library,
  which is slower but exact. Other floats are searched as Python writes
  them (``1.5``, ``1e+20``).
- CSV cells are separated by ``csv_delimiter`` (``,`` by default, a tab for
  a ``.tsv`` file); quotes are ``"``, as spreadsheets write them.
- A CSV record whose quoted cell spans several lines is reported at the line
  where the record *starts* (duplicates name the first record's starting
  line too). The CSV header is line 1.
- Field names in :class:`FieldMapping` are checked when it is created. Names
  found in records are not checked: with ``search_fields=None`` every
  string-valued field is searchable under whatever name it has, and it is up
  to the index what to do with a name it cannot use as a field name.
- In the JSON object form (``{"key": "answer", ...}``) the two fields are
  named ``"key"`` and ``"answer"`` whatever ``key_field`` and
  ``answer_field`` say: those options name fields of records, and this form
  has none.
- An empty (or whitespace-only) file is an error in every format: it is far
  more often a failed export than an index meant to be empty. ``[]``, ``{}``
  and a CSV header without rows are valid and give no documents.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import os
import shlex
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

import attrs
import orjson

from . import _validators as validators
from ._errors import ConfigurationError

#: The data formats, as the ``--format`` option names them.
FORMATS = ("json", "jsonl", "csv")

#: Longest key, in characters. Keys are looked up exactly and stored whole in
#: the index's term dictionary; a key is an identifier, not a text.
MAX_KEY_LENGTH = 4096

#: Longest configured field name, in characters: a field name is an
#: identifier that users type in options and queries.
MAX_FIELD_NAME_LENGTH = 64

#: Longest CSV cell, in characters. Python's csv module stops at 128 KiB,
#: which a document body exceeds where JSON Lines has no such limit; a bound
#: stays, since an unclosed quote reads the rest of the file into one cell.
MAX_CSV_CELL_LENGTH = 64 * 1024 * 1024

#: Characters of a value quoted in an error message before it is cut with
#: "...", so that every message stays one readable line.
QUOTE_LIMIT = 60
#: Names listed in an error message about a field or column that is not
#: there (those that are, to pick from), before the list is cut with "...".
NAMES_SHOWN = 8

_SUFFIX_FORMATS = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
}

#: What separates CSV cells when ``csv_delimiter`` is not given.
DEFAULT_CSV_DELIMITER = ","
#: Suffixes whose CSV is separated otherwise by default: tab-separated values.
_SUFFIX_DELIMITERS = {".tsv": "\t"}

_UTF8_BOM = b"\xef\xbb\xbf"

#: Byte order marks of the encodings a file saved as "Unicode" may have
#: instead of UTF-8; UTF-32 LE's starts with UTF-16 LE's, so it comes first.
_OTHER_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)

#: orjson reads an integer outside -2**63 .. 2**64 - 1 as a float (17
#: digits kept); a float at least this far from 0 may be one, and its
#: record is read again exactly.
_FLOAT_MAY_BE_INT = float(2**63)

#: What the error messages call the types a record's values can have.
_TYPE_NAMES = {type(None): "null", dict: "object", str: "string"}


class DataError(ConfigurationError):
    """A data file cannot be read into documents.

    The message is one line naming the file and, for one bad record, where
    it is: ``"<file>:<line>: <reason>"``, ``"<file>: record <n>: <reason>"``
    or ``"<file>: key <json>: <reason>"``; for a problem with the whole file
    (unreadable, not UTF-8, not JSON, ...) just ``"<file>: <reason>"``.

    Attributes:
        path: The file, as given.
        location: Where in the file: ``"line 3"``, ``"record 2"``,
            ``'key "ring"'``, or ``None`` for the whole file.
    """

    default_code = "bad_data"

    def __init__(self, message: str, *, path: str, location: str | None = None) -> None:
        super().__init__(" ".join(message.splitlines()))
        self.path = path
        self.location = location

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_data_error, (self.message, self.path, self.location))


def _rebuild_data_error(message: str, path: str, location: str | None) -> DataError:
    return DataError(message, path=path, location=location)


def _field_name(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_field_name(attribute.name, value)


def _check_field_name(what: str, value: object) -> None:
    # "." is kept for field paths (a step into a nested object), which the
    # options may name one day; any other name is a record's field name.
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_FIELD_NAME_LENGTH
        or "." in value
        or "\x00" in value
    ):
        raise ValueError(
            f"{what} must be a name of 1 to {MAX_FIELD_NAME_LENGTH} characters with no '.', "
            f"not {value!r}"
        )


def _to_names(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None or isinstance(value, str):
        return value  # type: ignore[return-value]  # a str is refused by the validator
    return tuple(value)


def _search_fields(
    _instance: object,
    _attribute: attrs.Attribute[tuple[str, ...] | None],
    value: tuple[str, ...] | None,
) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or not value:
        raise ValueError(f"search_fields must be None or a non-empty tuple of names, not {value!r}")
    for name in value:
        _check_field_name("each of search_fields", name)
    if len(set(value)) != len(value):
        twice = next(name for name in value if value.count(name) > 1)
        raise ValueError(f"search_fields names {twice!r} twice")


@attrs.frozen
class FieldMapping:
    """Which fields of a record make up a :class:`Document`.

    Attributes:
        key_field: The field holding the document's key, a non-empty string
            or an integer (its decimal digits, exactly, however many).
        answer_field: The field holding the document's answer, a string.
        search_fields: The fields whose text is searchable. ``None``: every
            string-valued field of each record (other values are ignored).
            Otherwise exactly these (any iterable of names is stored as a
            tuple); each one a record has must be a string or a number
            (converted with ``str()``: an integer's digits exactly, however
            many), and a record may lack any of them
            (or hold ``null``, which is the same).

    Field names are 1 to 64 (``MAX_FIELD_NAME_LENGTH``) characters and
    contain no ``.`` (nor NUL): ``_id`` is one.

    Raises:
        ValueError: a name breaks those rules, or ``search_fields`` is empty
            or names a field twice.
    """

    key_field: str = attrs.field(default="key", validator=_field_name)
    answer_field: str = attrs.field(default="answer", validator=_field_name)
    search_fields: tuple[str, ...] | None = attrs.field(
        default=None, converter=_to_names, validator=_search_fields
    )


_DEFAULT_MAPPING = FieldMapping()


@attrs.frozen
class Document:
    """One searchable record.

    Attributes:
        key: What the document is looked up by exactly; unique in its file.
        answer: What a search that finds the document returns.
        fields: The searchable text, field name -> text. Holds the key and
            answer fields too when they are searchable, under their own names.
        key_field: The name of the field the key came from, when known
            (:func:`read_documents` and :func:`documents_from_mapping` say
            it): ``SearchIndex.from_documents`` records it in the index's
            :class:`IndexMeta`, so a query whose ``fields`` name it finds
            the document whose key is the query text first. Not compared.
        answer_field: The name of the field the answer came from, when
            known. Not compared.
    """

    key: str
    answer: str
    fields: Mapping[str, str] = attrs.field(hash=False)
    key_field: str | None = attrs.field(default=None, eq=False)
    answer_field: str | None = attrs.field(default=None, eq=False)


#: Marks a field a record does not have (``None`` is JSON's null).
_ABSENT: Any = object()


class _BadRecord(Exception):
    """Why one record cannot be a document; the caller adds where it is."""


class _InexactNumber(Exception):
    """A number that matters may have lost digits: orjson read an integer
    too large for 64 bits as a float. The caller reads the record again
    with :func:`_exact_json` and makes the document with exact rules."""


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _quote(text: str) -> str:
    """``text`` as a Python literal, cut after :data:`QUOTE_LIMIT` characters."""
    if len(text) <= QUOTE_LIMIT:
        return repr(text)
    return repr(text[:QUOTE_LIMIT]) + "..."


def _names(names: Iterable[str]) -> str:
    """``names`` quoted, comma-separated, at most :data:`NAMES_SHOWN` of them."""
    listed = list(itertools.islice(names, NAMES_SHOWN + 1))
    if not listed:
        return "none"
    shown = ", ".join(_quote(name) for name in listed[:NAMES_SHOWN])
    return shown + ", ..." if len(listed) > NAMES_SHOWN else shown


#: Characters that separate columns in files other programs call CSV (a
#: spreadsheet set to a language whose decimal mark is a comma uses ";").
_SEPARATORS = (",", ";", "\t", "|")


def _other_separator(header: list[str], delimiter: str) -> str | None:
    """The separator a one-column header seems to use instead of ``delimiter``."""
    if len(header) != 1:
        return None
    return next((other for other in _SEPARATORS if other != delimiter and other in header[0]), None)


def _delimiter_option(delimiter: str) -> str:
    """``--csv-delimiter`` with ``delimiter`` as a shell takes it."""
    return "--csv-delimiter " + ("tab" if delimiter == "\t" else shlex.quote(delimiter))


def _json_quote(text: str) -> str:
    """``text`` as a JSON string, cut after :data:`QUOTE_LIMIT` characters."""
    short = text[:QUOTE_LIMIT]
    # Escape everything but ASCII if anything would break the line.
    quoted = json.dumps(short, ensure_ascii=not short.isprintable())
    return quoted if len(text) <= QUOTE_LIMIT else quoted + "..."


def _show_path(path: str) -> str:
    return path if path.isprintable() else repr(path)


class _Rules:
    """A :class:`FieldMapping` applied to records; the hot path of loading.

    ``exact``: the records' numbers are as written (read by the standard
    library, or Python values). Otherwise (read by orjson) a float that may
    be an integer orjson could not hold raises :class:`_InexactNumber`
    where it matters: as the key, the answer or a searchable field.
    """

    __slots__ = ("_answer_field", "_exact", "_key_field", "_search_fields")

    def __init__(
        self,
        key_field: str,
        answer_field: str,
        search_fields: tuple[str, ...] | None,
        *,
        exact: bool,
    ) -> None:
        self._key_field = key_field
        self._answer_field = answer_field
        self._search_fields = search_fields
        self._exact = exact

    def _check_exact(self, value: object) -> None:
        # Off the hot path: only a value that is not a string gets here.
        if type(value) is float and not self._exact and abs(value) >= _FLOAT_MAY_BE_INT:
            raise _InexactNumber

    def document(self, record: object) -> Document:
        """The document ``record`` makes; a dict record becomes its fields.

        Pass a fresh record the caller does not keep: when all its values
        are searchable, the document's ``fields`` is a read-only view of it.

        Raises:
            _BadRecord: with the reason it makes none.
            _InexactNumber: the record must be read again exactly.
        """
        if type(record) is not dict:
            raise _BadRecord(f"expected a JSON object, got {_type_name(record)}")
        key_field = self._key_field
        key = record.get(key_field, _ABSENT)
        if type(key) is not str:
            if type(key) is int:  # not bool: type() is exact
                key = str(key)
            elif key is _ABSENT:
                raise _BadRecord(f"no {_quote(key_field)} field (its fields: {_names(record)})")
            else:
                self._check_exact(key)
                raise _BadRecord(f"{_quote(key_field)} must be a string, not {_type_name(key)}")
        if not key:
            raise _BadRecord(f"{_quote(key_field)} is empty")
        if len(key) > MAX_KEY_LENGTH:
            raise _BadRecord(
                f"{_quote(key_field)} is {len(key)} characters long, "
                f"more than the {MAX_KEY_LENGTH} a key may have"
            )
        answer = record.get(self._answer_field, _ABSENT)
        if type(answer) is not str:
            if answer is _ABSENT:
                raise _BadRecord(
                    f"no {_quote(self._answer_field)} field (its fields: {_names(record)})"
                )
            self._check_exact(answer)  # said as the int it is, not as a float
            raise _BadRecord(
                f"{_quote(self._answer_field)} must be a string, not {_type_name(answer)}"
            )
        search_fields = self._search_fields
        if search_fields is None:
            fields = record  # a fresh dict, ours to keep, when every value is a string
            for value in record.values():
                if type(value) is not str:
                    fields = {name: value for name, value in record.items() if type(value) is str}
                    break
        else:
            fields = {}
            for name in search_fields:
                value = record.get(name, _ABSENT)
                if type(value) is str:
                    fields[name] = value
                elif type(value) is int:
                    fields[name] = str(value)
                elif type(value) is float:
                    self._check_exact(value)
                    fields[name] = str(value)
                elif value is not _ABSENT and value is not None:
                    # null is how JSON exports (SQL, pandas) write a
                    # missing value: the record just lacks the field.
                    raise _BadRecord(
                        f"{_quote(name)} must be a string or a number, not {_type_name(value)}"
                    )
        return Document(key, answer, MappingProxyType(fields), key_field, self._answer_field)


def _record_rules(mapping: FieldMapping, *, exact: bool) -> _Rules:
    return _Rules(mapping.key_field, mapping.answer_field, mapping.search_fields, exact=exact)


def _object_form_rules(mapping: FieldMapping, *, exact: bool) -> _Rules:
    # The JSON object form and the built-in data: {"key": k, "answer": v}.
    return _Rules("key", "answer", mapping.search_fields, exact=exact)


def _exact_json(text: str | bytes) -> Any:
    """``text``, which orjson read, read again by the standard library,
    which keeps every integer exactly (as an int).

    Raises:
        _BadRecord: it cannot (an integer of more than the 4,300 digits
            Python converts, or nesting deeper than its recursion limit).
    """
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _BadRecord(f"an integer longer than 64 bits cannot be read exactly: {exc}") from None


def format_of_suffix(path: str | Path) -> str | None:
    """The format a data file's suffix names, or ``None`` (see :func:`detect_format`)."""
    return _SUFFIX_FORMATS.get(Path(path).suffix.lower())


def detect_format(path: str | Path) -> str:
    """The format of a data file, from its suffix.

    ``.json`` is ``"json"``, ``.jsonl`` and ``.ndjson`` are ``"jsonl"``,
    ``.csv`` and ``.tsv`` (tab-separated) are ``"csv"``, in any case.

    Raises:
        DataError: any other suffix.
    """
    suffix = Path(path).suffix
    format = format_of_suffix(path)
    if format is None and os.path.isdir(path):
        raise DataError(f"{_show_path(str(path))}: is a directory, not a data file", path=str(path))
    if format is None:
        what = f"the suffix {_quote(suffix)}" if suffix else "a name without a suffix"
        raise DataError(
            f"{_show_path(str(path))}: cannot tell the format from {what}; "
            "give it with --format (format= in Python): json, jsonl or csv",
            path=str(path),
        )
    return format


class DocumentReader:
    """The documents in a data file, one at a time, checked as they are read.

    JSON Lines and CSV files are streamed; a JSON file is read whole on the
    first step. The file is opened here (so :attr:`size` is known before
    reading) and closed when iteration ends, stops on an error, or by
    :meth:`close` or the ``with`` block. A reader can be iterated once.

    This blocks on file I/O: run it in a thread from async code.

    Args:
        path: The data file.
        mapping: Which fields make up a document.
        format: One of :data:`FORMATS`, or ``None`` to go by the suffix
            (``detect_format``).
        csv_delimiter: The one character that separates a CSV file's
            cells, such as ``";"`` or ``"\\t"``; ``None`` for a tab in a
            ``.tsv`` file and a comma in any other. Not the quote ``"``, a
            line break, NUL, a letter or a digit. Given for a format other
            than ``"csv"``, it is an error.

    Attributes:
        path: The file, as a string.
        format: The format it is read in.
        csv_delimiter: What separates its cells if it is CSV; ``None`` if not.
        size: The file's size in bytes when opened (0 for a pipe).

    Raises:
        DataError: here, if the format is unknown, ``csv_delimiter`` is not
            a usable one or given for another format, or the file cannot be
            opened; while iterating, if the file is not UTF-8, at the first
            bad record (the documents before it have been yielded) or if the
            file cannot be read.
    """

    def __init__(
        self,
        path: str | Path,
        mapping: FieldMapping = _DEFAULT_MAPPING,
        *,
        format: str | None = None,
        csv_delimiter: str | None = None,
    ) -> None:
        self.path = str(path)
        self._shown = _show_path(self.path)
        if format is None:
            format = detect_format(path)
        elif format not in FORMATS:
            raise self._error(f"unknown format {_quote(format)}; expected json, jsonl or csv")
        self.format = format
        self.csv_delimiter = self._delimiter(format, csv_delimiter)
        self._mapping = mapping
        self._bytes_read = 0
        self._started = False
        try:
            self._file: io.BufferedReader | None = open(path, "rb")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise self._error(f"cannot read: {exc.strerror or exc}") from exc
        try:
            self.size = os.fstat(self._file.fileno()).st_size
        except OSError as exc:  # pragma: no cover - fstat on an open file
            self.close()
            raise self._error(f"cannot read: {exc.strerror or exc}") from exc

    def _delimiter(self, format: str, given: str | None) -> str | None:
        if given is not None:
            try:
                validators.csv_delimiter(given)
            except ValueError as exc:
                raise self._error(f"csv_delimiter {exc}") from None
            if format != "csv":
                raise self._error(f"csv_delimiter is for CSV files, and this one is {format}")
            return given
        if format != "csv":
            return None
        suffix = Path(self.path).suffix.lower()
        return _SUFFIX_DELIMITERS.get(suffix, DEFAULT_CSV_DELIMITER)

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far, for a progress bar; :attr:`size` at the end.

        For the JSON format this jumps from 0 to the size on the first step.
        """
        return self._bytes_read

    def close(self) -> None:
        """Close the file; iterating afterwards is an error. Idempotent."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> DocumentReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Document]:
        if self._started:
            raise RuntimeError("a DocumentReader can be iterated only once")
        if self._file is None:
            raise RuntimeError("this DocumentReader is closed")
        self._started = True
        return self._documents(self._file)

    def _documents(self, file: io.BufferedReader) -> Iterator[Document]:
        try:
            encoding = foreign_encoding(file.peek(4)[:4])
            if encoding is not None:
                raise self._error(f"the file looks like {encoding}; save it as UTF-8")
            if file.peek(len(_UTF8_BOM))[: len(_UTF8_BOM)] == _UTF8_BOM:
                self._bytes_read += len(file.read(len(_UTF8_BOM)))
            if self.format == "jsonl":
                yield from self._read_jsonl(file)
            elif self.format == "csv":
                yield from self._read_csv(file)
            else:
                yield from self._read_json(file)
        except OSError as exc:
            raise self._error(f"cannot read: {exc.strerror or exc}") from exc
        finally:
            self.close()

    # -- errors ---------------------------------------------------------------

    def _error(self, reason: str) -> DataError:
        return DataError(f"{self._shown}: {reason}", path=self.path)

    def _line_error(self, line: int, reason: str) -> DataError:
        return DataError(f"{self._shown}:{line}: {reason}", path=self.path, location=f"line {line}")

    def _record_error(self, number: int, reason: str) -> DataError:
        return DataError(
            f"{self._shown}: record {number}: {reason}", path=self.path, location=f"record {number}"
        )

    # -- JSON Lines -----------------------------------------------------------

    def _read_jsonl(self, file: io.BufferedReader) -> Iterator[Document]:
        to_document = _record_rules(self._mapping, exact=False).document
        exact_document = _record_rules(self._mapping, exact=True).document
        loads = orjson.loads
        first_line: dict[str, int] = {}
        number = 0
        for number, line in enumerate(file, 1):
            self._bytes_read += len(line)
            if line.isspace():
                continue
            try:
                try:
                    document = to_document(loads(line))
                except _InexactNumber:
                    document = exact_document(_exact_json(line))
            except orjson.JSONDecodeError as exc:
                raise self._line_error(number, _json_line_reason(line, exc)) from exc
            except _BadRecord as exc:
                raise self._line_error(number, str(exc)) from None
            first = first_line.setdefault(document.key, number)
            if first != number:
                raise self._line_error(
                    number, f"duplicate key {_quote(document.key)} (first on line {first})"
                )
            yield document
        if not first_line:
            raise self._error(
                "the file is empty" if number == 0 else "the file has only blank lines"
            )

    # -- CSV ------------------------------------------------------------------

    def _text_lines(self, file: io.BufferedReader) -> Iterator[str]:
        for number, line in enumerate(file, 1):
            self._bytes_read += len(line)
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self._line_error(number, _utf8_reason(exc)) from None
            yield text

    def _read_csv(self, file: io.BufferedReader) -> Iterator[Document]:
        mapping = self._mapping
        to_document = _record_rules(mapping, exact=True).document  # cells are strings
        # The limit is the csv module's, for the whole process: only raised.
        if csv.field_size_limit() < MAX_CSV_CELL_LENGTH:
            csv.field_size_limit(MAX_CSV_CELL_LENGTH)
        reader = csv.reader(
            self._text_lines(file),
            delimiter=self.csv_delimiter or DEFAULT_CSV_DELIMITER,
            quotechar=validators.CSV_QUOTE,
            strict=True,
        )
        start = 1  # the line the record being read starts on
        try:
            header = next(reader, None)
            if header is None:
                raise self._error("the file is empty; expected a header row")
            if not header:
                raise self._error("no header row: line 1 is blank")
            self._check_header(header, mapping)
            width = len(header)
            first_line: dict[str, int] = {}
            start = reader.line_num + 1
            for row in reader:
                if len(row) > width:
                    raise self._line_error(
                        start, f"the row has {len(row)} cells, the header has {width}"
                    )
                if row:
                    try:
                        document = to_document(dict(zip(header, row, strict=False)))
                    except _BadRecord as exc:
                        raise self._line_error(start, str(exc)) from None
                    first = first_line.setdefault(document.key, start)
                    if first != start:
                        raise self._line_error(
                            start, f"duplicate key {_quote(document.key)} (first on line {first})"
                        )
                    yield document
                start = reader.line_num + 1
        except csv.Error as exc:
            raise self._line_error(start, _csv_reason(exc)) from exc

    def _check_header(self, header: list[str], mapping: FieldMapping) -> None:
        seen: set[str] = set()
        for column, name in enumerate(header, 1):
            if not name:
                raise self._line_error(1, f"column {column} of the header has no name")
            if name in seen:
                raise self._line_error(1, f"the header names the column {_quote(name)} twice")
            seen.add(name)
        needed = [mapping.key_field, mapping.answer_field, *(mapping.search_fields or ())]
        for name in needed:
            if name not in seen:
                reason = f"the header has no {_quote(name)} column (its columns: {_names(header)})"
                delimiter = self.csv_delimiter or DEFAULT_CSV_DELIMITER
                other = _other_separator(header, delimiter)
                if other is not None:
                    reason += (
                        f"; are its columns separated by {other!r}, not {delimiter!r}? "
                        f"Give {_delimiter_option(other)} (csv_delimiter= in Python)"
                    )
                raise self._line_error(1, reason)

    # -- JSON -----------------------------------------------------------------

    def _read_json(self, file: io.BufferedReader) -> Iterator[Document]:
        raw = file.read()
        self._bytes_read += len(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
            raise self._error(
                f"not UTF-8: byte 0x{raw[exc.start]:02x} at line {line}, column {column}"
            ) from None
        del raw
        if not text or text.isspace():
            raise self._error("the file is empty")
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise self._error(
                f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
        if type(data) is list:
            yield from self._array_documents(data, text)
        elif type(data) is dict:
            duplicate = _duplicate_object_key(text)
            if duplicate is not None:
                raise DataError(
                    f"{self._shown}: key {_json_quote(duplicate)}: duplicate key "
                    "(JSON would keep only its last answer)",
                    path=self.path,
                    location=f"key {_json_quote(duplicate)}",
                )
            yield from _object_documents(data, self._mapping, self.path, text)
        else:
            raise self._error(
                "expected a JSON array of records or an object of key -> answer, "
                f"got {_type_name(data)}"
            )

    def _array_documents(self, records: list[Any], text: str) -> Iterator[Document]:
        to_document = _record_rules(self._mapping, exact=False).document
        # Once a record needs it, the file read again exactly (rare; memory
        # for a second copy of the records), and the rest taken from there.
        exact: list[Any] | None = None
        first_record: dict[str, int] = {}
        for number, record in enumerate(records, 1):
            try:
                if exact is not None:
                    document = to_document(exact[number - 1])
                else:
                    try:
                        document = to_document(record)
                    except _InexactNumber:
                        exact = _exact_json(text)
                        to_document = _record_rules(self._mapping, exact=True).document
                        document = to_document(exact[number - 1])
            except _BadRecord as exc:
                raise self._record_error(number, str(exc)) from None
            first = first_record.setdefault(document.key, number)
            if first != number:
                raise self._record_error(
                    number, f"duplicate key {_quote(document.key)} (first at record {first})"
                )
            yield document


def _object_documents(
    data: Mapping[Any, Any], mapping: FieldMapping, path: str, text: str | None = None
) -> Iterator[Document]:
    """The documents of the object form; ``text`` is the JSON that orjson
    read ``data`` from, ``None`` if ``data`` holds Python's own values."""
    to_document = _object_form_rules(mapping, exact=text is None).document
    for key, answer in data.items():
        try:
            try:
                document = to_document({"key": key, "answer": answer})
            except _InexactNumber:
                assert text is not None  # only orjson's values raise it
                exact_answer = _exact_json(text)[key]
                document = _object_form_rules(mapping, exact=True).document(
                    {"key": key, "answer": exact_answer}
                )
        except _BadRecord as exc:
            where = f"key {_json_quote(key) if isinstance(key, str) else repr(key)}"
            raise DataError(
                f"{_show_path(path)}: {where}: {exc}", path=path, location=where
            ) from None
        yield document


def _duplicate_object_key(text: str) -> str | None:
    """The first key that the top-level JSON object in ``text`` has twice.

    orjson keeps the last value of a repeated key silently; the standard
    library can show every pair. Slower, but only the tutorial's object form
    needs it.
    """
    try:
        pairs = json.loads(text, object_pairs_hook=list)
    except (ValueError, RecursionError):
        # orjson accepted the text; only its deeper nesting limit differs,
        # and such values are refused as answers anyway.
        return None
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            return str(key)
        seen.add(key)
    return None


def foreign_encoding(head: bytes) -> str | None:
    """What encoding other than UTF-8 a file starting with ``head`` (its
    first 4 bytes) seems to be in, and why, or ``None``: a byte order mark of
    UTF-16 or UTF-32 (as a spreadsheet's "Unicode text" has), or an ASCII
    character with one NUL byte beside it (UTF-16) or three (UTF-32), which
    no text in UTF-8 starts with."""
    for bom, name in _OTHER_BOMS:
        if head.startswith(bom):
            return f"{name} (it starts with a {name} byte order mark)"
    first = head[:4]
    if len(first) == 4 and 0 < max(first) < 0x80 and first.count(0) == 3 and first[1:3] == b"\0\0":
        # An ASCII character in UTF-32, little- or big-endian (tested before
        # UTF-16, whose test the little-endian form passes).
        return "UTF-32 (its first character is ASCII with three NUL bytes beside it)"
    if len(head) >= 2 and (head[0] == 0) != (head[1] == 0) and max(head[:2]) < 0x80:
        return "UTF-16 (its first characters are ASCII with NUL bytes between them)"
    return None


def _utf8_reason(exc: UnicodeDecodeError) -> str:
    return f"not UTF-8: byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1}"


def _json_line_reason(line: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as decode_error:
        return _utf8_reason(decode_error)
    column = exc.colno
    end = len(line.rstrip(b"\r\n").decode("utf-8")) + 1
    if exc.lineno > 1:
        # Past the record's end: orjson counts the newline that ends it.
        column = end
    elif column == end and "control character" in exc.msg:
        # The line break is the control character: a string left open.
        return (
            f"invalid JSON at column {column}: the line ends inside a string "
            "(a line break in a string is written \\n)"
        )
    return f"invalid JSON at column {column}: {exc.msg}"


def _csv_reason(exc: csv.Error) -> str:
    message = str(exc)
    if "new-line character seen in unquoted field" in message:
        return "a carriage return in an unquoted cell (lines ending in a lone CR are not supported)"
    return f"bad CSV: {message}"


def read_documents(
    path: str | Path,
    mapping: FieldMapping = _DEFAULT_MAPPING,
    *,
    format: str | None = None,
    csv_delimiter: str | None = None,
) -> list[Document]:
    """Every document in a data file (see :class:`DocumentReader`, which
    says what ``format`` and ``csv_delimiter`` take).

    Raises:
        DataError: the file cannot be read, or a record is bad.
    """
    with DocumentReader(path, mapping, format=format, csv_delimiter=csv_delimiter) as reader:
        return list(reader)


def documents_from_mapping(
    data: Mapping[str, str], mapping: FieldMapping = _DEFAULT_MAPPING
) -> list[Document]:
    """Documents from a key -> answer mapping, such as the built-in data.

    Each entry is the record ``{"key": key, "answer": answer}``, under the
    same rules as the JSON object form of a data file: ``search_fields``
    selects among ``"key"`` and ``"answer"``.

    Raises:
        DataError: a key or answer is not a usable string (the "file" is
            ``<data>``).
    """
    return list(_object_documents(data, mapping, "<data>"))
