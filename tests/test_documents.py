"""Data files to documents: every format, the field mapping, and an error
message naming the file and the line, record or key of each bad record."""

from __future__ import annotations

import codecs
import json
import pickle
from pathlib import Path

import pytest

from trio_search._documents import (
    MAX_KEY_LENGTH,
    NAMES_SHOWN,
    DataError,
    Document,
    DocumentReader,
    FieldMapping,
    detect_format,
    documents_from_mapping,
    read_documents,
)
from trio_search._errors import ConfigurationError
from trio_search._index import BUILTIN_INDEX, load_index

RABBIT = "Follow the white rabbit. \U0001f430"
RING = "In the caves beneath the Misty Mountains. \U0001f48d"
BALL = "\U0001f43e Playing ball! \U0001f3d0"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


def doc(key: str, answer: str, /, **fields: str) -> Document:
    return Document(key=key, answer=answer, fields=fields)


DEFAULT = FieldMapping()


def error_of(path: Path, mapping: FieldMapping = DEFAULT, **kwargs: str) -> DataError:
    with pytest.raises(DataError) as info:
        read_documents(path, mapping, **kwargs)
    return info.value


# -- every format reads -----------------------------------------------------


def test_jsonl_skips_blank_lines_and_accepts_crlf_and_bom(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "data.jsonl",
        b'\xef\xbb\xbf{"key": "a", "answer": "x", "title": "T"}\r\n'
        b"\r\n"
        b"   \n"
        b'{"key": "b", "answer": "y"}',  # no newline at the end
    )
    assert read_documents(path) == [
        doc("a", "x", key="a", answer="x", title="T"),
        doc("b", "y", key="b", answer="y"),
    ]


def test_ndjson_suffix_is_json_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "data.ndjson", '{"key": "a", "answer": "x"}\n')
    assert read_documents(path) == [doc("a", "x", key="a", answer="x")]


def test_json_array_of_records(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "data.json",
        '[{"key": "a", "answer": "x", "body": "text"}, {"key": "b", "answer": "y"}]',
    )
    assert read_documents(path) == [
        doc("a", "x", key="a", answer="x", body="text"),
        doc("b", "y", key="b", answer="y"),
    ]


def test_json_object_of_key_to_answer(tmp_path: Path) -> None:
    path = write(tmp_path, "data.json", '{"morpheus": "Follow", "ring": "Caves"}')
    assert read_documents(path) == [
        doc("morpheus", "Follow", key="morpheus", answer="Follow"),
        doc("ring", "Caves", key="ring", answer="Caves"),
    ]


def test_builtin_index_gives_the_three_tutorial_documents() -> None:
    assert documents_from_mapping(BUILTIN_INDEX) == [
        doc("morpheus", RABBIT, key="morpheus", answer=RABBIT),
        doc("ring", RING, key="ring", answer=RING),
        doc("\U0001f436", BALL, key="\U0001f436", answer=BALL),
    ]


def test_object_file_and_mapping_give_the_same_documents(tmp_path: Path) -> None:
    path = write(tmp_path, "index.json", '{"morpheus": "Follow the white rabbit. \\ud83d\\udc30"}')
    assert read_documents(path) == documents_from_mapping({"morpheus": RABBIT})


def test_object_form_ignores_key_and_answer_field_names(tmp_path: Path) -> None:
    # --key-field/--answer-field name fields of records; this form has none.
    path = write(tmp_path, "index.json", '{"ring": "Caves"}')
    mapping = FieldMapping(key_field="id", answer_field="title")
    assert read_documents(path, mapping) == [doc("ring", "Caves", key="ring", answer="Caves")]


def test_csv_with_bom_quotes_and_short_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "data.csv",
        b"\xef\xbb\xbfkey,answer,body\r\n"
        b'a,"x, with a comma","two\r\nlines"\r\n'
        b"\r\n"  # a blank row is skipped
        b"b,y\r\n",  # fewer cells: body is absent
    )
    assert read_documents(path) == [
        doc("a", "x, with a comma", key="a", answer="x, with a comma", body="two\r\nlines"),
        doc("b", "y", key="b", answer="y"),
    ]


def test_csv_cell_longer_than_the_csv_module_s_default_limit(tmp_path: Path) -> None:
    # A document body of a few hundred KB, as JSON Lines takes it too
    # (Python's csv module refuses cells over 128 KiB by default).
    body = "word " * 50_000
    path = write(tmp_path, "data.csv", f'key,answer,body\na,x,"{body}"\nb,y,z\n')
    assert read_documents(path) == [
        doc("a", "x", key="a", answer="x", body=body),
        doc("b", "y", key="b", answer="y", body="z"),
    ]


def test_csv_header_only_gives_no_documents(tmp_path: Path) -> None:
    assert read_documents(write(tmp_path, "data.csv", "key,answer\n")) == []


@pytest.mark.parametrize("content", ["[]", "{}"])
def test_empty_json_containers_give_no_documents(tmp_path: Path, content: str) -> None:
    assert read_documents(write(tmp_path, "data.json", content)) == []


# -- the field mapping --------------------------------------------------------


def test_key_and_answer_fields_are_configurable(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", '{"id": "q1", "title": "How?", "key": "other"}\n')
    mapping = FieldMapping(key_field="id", answer_field="title")
    assert read_documents(path, mapping) == [doc("q1", "How?", id="q1", title="How?", key="other")]


def test_configured_field_names_appear_in_errors(tmp_path: Path) -> None:
    mapping = FieldMapping(key_field="id", answer_field="title")
    path = write(tmp_path, "data.jsonl", '{"id": "q1", "title": "How?"}\n{"key": "q2"}\n')
    assert error_of(path, mapping).message == f"{path}:2: no 'id' field (its fields: 'key')"
    path = write(tmp_path, "data.jsonl", '{"id": "q1", "title": 5}\n')
    assert error_of(path, mapping).message == f"{path}:1: 'title' must be a string, not int"


def test_csv_columns_are_mapped(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", "id,title,body\nq1,How?,Text\n")
    mapping = FieldMapping(key_field="id", answer_field="title", search_fields=("body",))
    assert read_documents(path, mapping) == [doc("q1", "How?", body="Text")]


def test_every_string_field_is_searchable_by_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "data.jsonl",
        '{"key": 7, "answer": "x", "n": 3, "ok": true, "tags": ["a"], "none": null, "t": "s"}\n',
    )
    # The int key becomes the key "7"; like the other non-string values it is
    # not a searchable field.
    assert read_documents(path) == [doc("7", "x", answer="x", t="s")]


def test_search_fields_select_and_convert_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "data.jsonl",
        '{"key": 7, "answer": "x", "title": "T", "year": 1999, "score": 1.5, "body": "B"}\n'
        '{"key": "k", "answer": "y"}\n',
    )
    mapping = FieldMapping(search_fields=("key", "title", "year", "score"))
    assert read_documents(path, mapping) == [
        doc("7", "x", key="7", title="T", year="1999", score="1.5"),
        doc("k", "y", key="k"),  # absent fields are just absent
    ]


def test_search_fields_select_in_the_object_form() -> None:
    mapping = FieldMapping(search_fields=("answer",))
    assert documents_from_mapping({"ring": RING}, mapping) == [doc("ring", RING, answer=RING)]


def test_a_null_search_field_is_a_missing_one(tmp_path: Path) -> None:
    # As JSON exports of a table write an empty cell.
    path = write(
        tmp_path,
        "data.jsonl",
        '{"key": "a", "answer": "x", "title": "T", "author": null}\n'
        '{"key": "b", "answer": "y", "title": null, "author": "A"}\n',
    )
    mapping = FieldMapping(search_fields=("title", "author"))
    assert read_documents(path, mapping) == [doc("a", "x", title="T"), doc("b", "y", author="A")]


@pytest.mark.parametrize(
    ("value", "type_name"), [("true", "bool"), ("[1]", "list"), ("{}", "object")]
)
def test_search_field_of_another_type_is_an_error(
    tmp_path: Path, value: str, type_name: str
) -> None:
    path = write(tmp_path, "data.jsonl", f'{{"key": "a", "answer": "x", "title": {value}}}\n')
    error = error_of(path, FieldMapping(search_fields=("title",)))
    assert error.message == f"{path}:1: 'title' must be a string or a number, not {type_name}"


def test_search_fields_accept_any_iterable_of_names() -> None:
    assert FieldMapping(search_fields=["title", "body"]).search_fields == ("title", "body")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key_field": ""},
        {"answer_field": "a\x00b"},
        {"key_field": "a.b"},
        {"answer_field": "x" * 65},
        {"key_field": 3},
        {"search_fields": ()},
        {"search_fields": ("title", "title")},
        {"search_fields": ("title", "")},
        {"search_fields": "title"},
    ],
)
def test_bad_field_mapping(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FieldMapping(**kwargs)  # type: ignore[arg-type]


def test_longest_field_name_is_accepted() -> None:
    assert FieldMapping(key_field="k" * 64).key_field == "k" * 64


# -- keys ---------------------------------------------------------------------


def test_int_keys_become_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "data.json", '[{"key": 1, "answer": "x"}, {"key": -20, "answer": "y"}]')
    assert [d.key for d in read_documents(path)] == ["1", "-20"]


def test_int_key_and_its_string_are_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", '{"key": 1, "answer": "x"}\n{"key": "1", "answer": "y"}\n')
    assert error_of(path).message == f"{path}:2: duplicate key '1' (first on line 1)"


def test_key_is_not_stripped(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", '{"key": " a ", "answer": "x"}\n')
    assert read_documents(path)[0].key == " a "


def test_key_length_limit(tmp_path: Path) -> None:
    longest = "k" * MAX_KEY_LENGTH
    path = write(tmp_path, "data.jsonl", f'{{"key": "{longest}", "answer": "x"}}\n')
    assert read_documents(path)[0].key == longest
    path = write(tmp_path, "data.jsonl", f'{{"key": "{longest}k", "answer": "x"}}\n')
    assert error_of(path).message == (
        f"{path}:1: 'key' is 4097 characters long, more than the 4096 a key may have"
    )


# -- integers beyond 64 bits ----------------------------------------------------

#: An id of 97 bits, as databases and ledgers have: orjson reads it as a float.
BIG = 123456789012345678901234567890
#: Records whose integers orjson reads exactly (a small one, 2**64 - 1 and
#: -2**63) and as floats (BIG, -BIG, -2**63 - 1); a float stays one.
BIG_RECORDS = [
    {"id": 1, "answer": "small first", "ref": 7},
    {"id": BIG, "answer": "big", "ref": -BIG},
    {"id": 2**64 - 1, "answer": "u64 max", "ref": 2**63},
    {"id": -(2**63) - 1, "answer": "below i64", "ref": -(2**63)},
    {"id": "f", "answer": "a float", "ref": 1e20},
]
BIG_DOCUMENTS = [
    doc("1", "small first", id="1", ref="7"),
    doc(str(BIG), "big", id=str(BIG), ref=str(-BIG)),
    doc("18446744073709551615", "u64 max", id="18446744073709551615", ref="9223372036854775808"),
    doc("-9223372036854775809", "below i64", id="-9223372036854775809", ref="-9223372036854775808"),
    doc("f", "a float", id="f", ref="1e+20"),
]


@pytest.mark.parametrize("name", ["d.jsonl", "d.json"])
def test_integers_of_any_size_are_kept_exactly(tmp_path: Path, name: str) -> None:
    # Written by the standard library, which writes every digit.
    if name.endswith(".jsonl"):
        content = "".join(json.dumps(record) + "\n" for record in BIG_RECORDS)
    else:
        content = json.dumps(BIG_RECORDS)
    assert str(BIG) in content
    path = write(tmp_path, name, content)
    mapping = FieldMapping(key_field="id", search_fields=("id", "ref"))
    assert read_documents(path, mapping) == BIG_DOCUMENTS


def test_a_big_integer_key_and_its_string_are_duplicates(tmp_path: Path) -> None:
    path = write(
        tmp_path, "d.jsonl", f'{{"key": {BIG}, "answer": "x"}}\n{{"key": "{BIG}", "answer": "y"}}\n'
    )
    assert error_of(path).message == f"{path}:2: duplicate key '{BIG}' (first on line 1)"


def test_a_float_answer_of_python_s_own_is_said_as_a_float() -> None:
    # Values of a mapping are Python's: 1e20 is a float, not an integer to read again.
    with pytest.raises(DataError) as info:
        documents_from_mapping({"a": 1e20})  # type: ignore[dict-item]
    assert info.value.message == "<data>: key \"a\": 'answer' must be a string, not float"


# -- bad records: the message names the file and where -----------------------

GOOD = '{"key": "a", "answer": "x"}\n'

BAD_RECORDS: dict[str, tuple[str, bytes, str, str | None]] = {
    # name: (file name, content, message after the path, location)
    "jsonl not an object": (
        "d.jsonl",
        b"%s[1]\n" % GOOD.encode(),
        ":2: expected a JSON object, got list",
        "line 2",
    ),
    "jsonl blank lines count": (
        "d.jsonl",
        b'\n\n{"answer": "x"}\n',
        ":3: no 'key' field (its fields: 'answer')",
        "line 3",
    ),
    "jsonl float key": (
        "d.jsonl",
        b'{"key": 1.5, "answer": "x"}',
        ":1: 'key' must be a string, not float",
        "line 1",
    ),
    "jsonl bool key": (
        "d.jsonl",
        b'{"key": true, "answer": "x"}',
        ":1: 'key' must be a string, not bool",
        "line 1",
    ),
    "jsonl null key": (
        "d.jsonl",
        b'{"key": null, "answer": "x"}',
        ":1: 'key' must be a string, not null",
        "line 1",
    ),
    "jsonl empty key": ("d.jsonl", b'{"key": "", "answer": "x"}', ":1: 'key' is empty", "line 1"),
    "jsonl no answer": (
        "d.jsonl",
        b'{"key": "a"}',
        ":1: no 'answer' field (its fields: 'key')",
        "line 1",
    ),
    "jsonl null answer": (
        "d.jsonl",
        b'{"key": "a", "answer": null}',
        ":1: 'answer' must be a string, not null",
        "line 1",
    ),
    "jsonl int answer": (
        "d.jsonl",
        b'{"key": "a", "answer": 3}',
        ":1: 'answer' must be a string, not int",
        "line 1",
    ),
    # An integer beyond 64 bits is an int too, not the float orjson reads.
    "jsonl big int answer": (
        "d.jsonl",
        b'{"key": "a", "answer": 123456789012345678901234567890}',
        ":1: 'answer' must be a string, not int",
        "line 1",
    ),
    "array big int answer": (
        "d.json",
        b'[{"key": "a", "answer": "x"}, {"key": "b", "answer": -123456789012345678901234567890}]',
        ": record 2: 'answer' must be a string, not int",
        "record 2",
    ),
    "object big int answer": (
        "d.json",
        b'{"a": "x", "b": 123456789012345678901234567890}',
        ": key \"b\": 'answer' must be a string, not int",
        'key "b"',
    ),
    "jsonl invalid JSON": (
        "d.jsonl",
        b'{"key": "a", "answer": "x",}\n',
        ":1: invalid JSON at column 27: trailing comma is not allowed",
        "line 1",
    ),
    "jsonl record cut short": (
        "d.jsonl",
        b'{"key": "a", "answer": "x"\n',
        ":1: invalid JSON at column 27: unexpected end of data",
        "line 1",
    ),
    "jsonl record cut short, crlf": (
        "d.jsonl",
        b'{"key": "\xc3\xa9", "answer": "x"\r\n',
        ":1: invalid JSON at column 27: unexpected end of data",
        "line 1",
    ),
    "jsonl string left open": (
        "d.jsonl",
        b'{"key": "a", "answer": "x\n{"key": "b", "answer": "y"}\n',
        ":1: invalid JSON at column 26: the line ends inside a string "
        "(a line break in a string is written \\n)",
        "line 1",
    ),
    "jsonl string left open, crlf": (
        "d.jsonl",
        b'{"key": "a", "answer": "x\r\n',
        ":1: invalid JSON at column 26: the line ends inside a string "
        "(a line break in a string is written \\n)",
        "line 1",
    ),
    "jsonl control character in a string": (
        "d.jsonl",
        b'{"key": "a", "answer": "x\ty"}\n',
        ":1: invalid JSON at column 26: unexpected control character in string",
        "line 1",
    ),
    "jsonl two objects on a line": (
        "d.jsonl",
        b'{"key": "a", "answer": "x"} {}\n',
        ":1: invalid JSON at column 29: unexpected content after document",
        "line 1",
    ),
    "jsonl not UTF-8": (
        "d.jsonl",
        b'%s{"key": "a\xff", "answer": "x"}\n' % GOOD.encode(),
        ":2: not UTF-8: byte 0xff at column 11",
        "line 2",
    ),
    "jsonl crlf lines": (
        "d.jsonl",
        b'%s\r\n\r\n{"key": ""}\r\n' % GOOD.strip().encode(),
        ":3: 'key' is empty",
        "line 3",
    ),
    "array not an object": (
        "d.json",
        b'[{"key": "a", "answer": "x"}, "b"]',
        ": record 2: expected a JSON object, got string",
        "record 2",
    ),
    "array no key": (
        "d.json",
        b'[{"answer": "x"}]',
        ": record 1: no 'key' field (its fields: 'answer')",
        "record 1",
    ),
    "object int answer": (
        "d.json",
        b'{"a": "x", "b": 2}',
        ": key \"b\": 'answer' must be a string, not int",
        'key "b"',
    ),
    "object empty key": ("d.json", b'{"": "x"}', ": key \"\": 'key' is empty", 'key ""'),
    "object null answer": (
        "d.json",
        b'{"a": null}',
        ": key \"a\": 'answer' must be a string, not null",
        'key "a"',
    ),
    "csv empty key": ("d.csv", b"key,answer\r\na,x\r\n,y\r\n", ":3: 'key' is empty", "line 3"),
    "csv too many cells": (
        "d.csv",
        b"key,answer\na,x,z\n",
        ":2: the row has 3 cells, the header has 2",
        "line 2",
    ),
    "csv too few cells": (
        "d.csv",
        b"key,answer\nonly\n",
        ":2: no 'answer' field (its fields: 'key')",
        "line 2",
    ),
    # A record with a quoted newline spans lines 2-3; the next starts on line 4.
    "csv after a multi-line record": (
        "d.csv",
        b'key,answer\n"a\nb",x\nc\n',
        ":4: no 'answer' field (its fields: 'key')",
        "line 4",
    ),
    # The reported line is where the bad record starts.
    "csv bad multi-line record": (
        "d.csv",
        b'key,answer\n"a\nb\nc",x,y\n',
        ":2: the row has 3 cells, the header has 2",
        "line 2",
    ),
    "csv unterminated quote": (
        "d.csv",
        b'key,answer\na,x\nb,"open\n',
        ":3: bad CSV: unexpected end of data",
        "line 3",
    ),
    "csv text after quote": (
        "d.csv",
        b'key,answer\na,"b"c\n',
        ":2: bad CSV: ',' expected after '\"'",
        "line 2",
    ),
    "csv not UTF-8": (
        "d.csv",
        b"key,answer\na,\xff\n",
        ":2: not UTF-8: byte 0xff at column 3",
        "line 2",
    ),
    "csv lone CR": (
        "d.csv",
        b"key,answer\ra,b\r",
        ":1: a carriage return in an unquoted cell (lines ending in a lone CR are not supported)",
        "line 1",
    ),
    "csv no key column": (
        "d.csv",
        b"title,answer\na,b\n",
        ":1: the header has no 'key' column (its columns: 'title', 'answer')",
        "line 1",
    ),
    "csv separated by semicolons": (
        "d.csv",
        b"key;answer\na;b\n",
        ":1: the header has no 'key' column (its columns: 'key;answer'); "
        "are its columns separated by ';', not ','? "
        "Give --csv-delimiter ';' (csv_delimiter= in Python)",
        "line 1",
    ),
    "csv separated by tabs": (
        "d.csv",
        b"key\tanswer\na\tb\n",
        ":1: the header has no 'key' column (its columns: 'key\\tanswer'); "
        "are its columns separated by '\\t', not ','? "
        "Give --csv-delimiter tab (csv_delimiter= in Python)",
        "line 1",
    ),
    "tsv separated by commas": (
        "d.tsv",
        b"key,answer\na,b\n",
        ":1: the header has no 'key' column (its columns: 'key,answer'); "
        "are its columns separated by ',', not '\\t'? "
        "Give --csv-delimiter , (csv_delimiter= in Python)",
        "line 1",
    ),
    "csv column twice": (
        "d.csv",
        b"key,answer,key\n",
        ":1: the header names the column 'key' twice",
        "line 1",
    ),
    "csv unnamed column": (
        "d.csv",
        b"key,answer,\n",
        ":1: column 3 of the header has no name",
        "line 1",
    ),
}


@pytest.mark.parametrize(
    ("name", "content", "expected", "location"), BAD_RECORDS.values(), ids=BAD_RECORDS
)
def test_bad_record(
    tmp_path: Path, name: str, content: bytes, expected: str, location: str | None
) -> None:
    path = write(tmp_path, name, content)
    error = error_of(path)
    assert error.message == f"{path}{expected}"
    assert str(error) == error.message
    assert error.location == location
    assert error.path == str(path)
    assert error.code == "bad_data"


def test_a_search_field_missing_from_the_csv_header(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "key,answer,body\n")
    error = error_of(path, FieldMapping(search_fields=("title",)))
    assert error.message == (
        f"{path}:1: the header has no 'title' column (its columns: 'key', 'answer', 'body')"
    )


def test_a_missing_field_error_lists_what_the_record_has_cut_short(tmp_path: Path) -> None:
    fields = ", ".join(f'"f{number}": "x"' for number in range(NAMES_SHOWN + 3))
    path = write(tmp_path, "d.jsonl", "{" + fields + "}\n")
    shown = ", ".join(f"'f{number}'" for number in range(NAMES_SHOWN))
    assert error_of(path).message == f"{path}:1: no 'key' field (its fields: {shown}, ...)"
    path = write(tmp_path, "e.jsonl", "{}\n")
    assert error_of(path).message == f"{path}:1: no 'key' field (its fields: none)"


def test_documents_before_a_bad_record_are_yielded(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", GOOD + '{"key": "b", "answer": "y"}\n[]\n' + GOOD)
    seen = []
    with DocumentReader(path) as reader, pytest.raises(DataError, match=r":3: expected"):
        for document in reader:
            seen.append(document.key)
    assert seen == ["a", "b"]


# -- duplicate keys -----------------------------------------------------------


def test_duplicate_key_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", GOOD + '\n{"key": "b", "answer": "y"}\n' + GOOD)
    error = error_of(path)
    assert error.message == f"{path}:4: duplicate key 'a' (first on line 1)"


def test_duplicate_key_csv_names_the_lines_records_start_on(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", 'key,answer\na,x\nb,"multi\nline"\nb,z\n')
    assert error_of(path).message == f"{path}:5: duplicate key 'b' (first on line 3)"


def test_duplicate_key_array(tmp_path: Path) -> None:
    path = write(tmp_path, "d.json", '[{"key": "a", "answer": "x"}, {"key": "a", "answer": "y"}]')
    error = error_of(path)
    assert error.message == f"{path}: record 2: duplicate key 'a' (first at record 1)"
    assert error.location == "record 2"


def test_duplicate_key_object(tmp_path: Path) -> None:
    # JSON parsers keep the last value silently; losing an entry is an error.
    path = write(tmp_path, "d.json", '{"a": "x", "b": "y", "a": "z"}')
    error = error_of(path)
    assert error.message == f'{path}: key "a": duplicate key (JSON would keep only its last answer)'
    assert error.location == 'key "a"'


def test_long_and_multi_line_values_are_cut_and_escaped(tmp_path: Path) -> None:
    long_key = "x" * 100
    path = write(
        tmp_path,
        "d.jsonl",
        f'{{"key": "{long_key}", "answer": "x"}}\n{{"key": "{long_key}", "answer": "y"}}\n',
    )
    assert error_of(path).message == f"{path}:2: duplicate key '{'x' * 60}'... (first on line 1)"
    path = write(tmp_path, "d.json", '{"a\\nb\\u2028c": 1}')
    error = error_of(path)
    assert error.message == f"{path}: key \"a\\nb\\u2028c\": 'answer' must be a string, not int"
    assert len(error.message.splitlines()) == 1


# -- whole-file problems ------------------------------------------------------

UTF16 = "the file looks like UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8"
UTF16_NO_BOM = (
    "the file looks like UTF-16 (its first characters are ASCII with NUL bytes between them); "
    "save it as UTF-8"
)
UTF32_NO_BOM = (
    "the file looks like UTF-32 (its first character is ASCII with three NUL bytes beside it); "
    "save it as UTF-8"
)

WHOLE_FILE: dict[str, tuple[str, bytes, str]] = {
    "empty jsonl": ("d.jsonl", b"", "the file is empty"),
    "blank jsonl": ("d.jsonl", b"\n  \r\n", "the file has only blank lines"),
    "empty json": ("d.json", b"", "the file is empty"),
    "blank json": ("d.json", b" \n", "the file is empty"),
    "empty csv": ("d.csv", b"", "the file is empty; expected a header row"),
    "bom only csv": ("d.csv", b"\xef\xbb\xbf", "the file is empty; expected a header row"),
    "blank header": ("d.csv", b"\nkey,answer\n", "no header row: line 1 is blank"),
    "invalid json": (
        "d.json",
        b'[{"key": "a",\n "answer": }]',
        "invalid JSON at line 2, column 12: unexpected character, expected a JSON value",
    ),
    "json not UTF-8": ("d.json", b'{"a":\n  "\xff"}', "not UTF-8: byte 0xff at line 2, column 4"),
    "json string": (
        "d.json",
        b'"text"',
        "expected a JSON array of records or an object of key -> answer, got string",
    ),
    # Saved as "Unicode text" by a spreadsheet or an editor: said at once,
    # rather than as byte 0xff or a header of 'k\x00e\x00y\x00'.
    "UTF-16 LE csv": (
        "d.csv",
        codecs.BOM_UTF16_LE + "key,answer\na,x\n".encode("utf-16-le"),
        UTF16,
    ),
    "UTF-16 BE csv": (
        "d.csv",
        codecs.BOM_UTF16_BE + "key,answer\na,x\n".encode("utf-16-be"),
        UTF16,
    ),
    "UTF-16 LE jsonl": ("d.jsonl", codecs.BOM_UTF16_LE + GOOD.encode("utf-16-le"), UTF16),
    "UTF-16 BE json": ("d.json", codecs.BOM_UTF16_BE + "[]".encode("utf-16-be"), UTF16),
    "UTF-32 LE jsonl": (
        "d.jsonl",
        codecs.BOM_UTF32_LE + GOOD.encode("utf-32-le"),
        "the file looks like UTF-32 (it starts with a UTF-32 byte order mark); save it as UTF-8",
    ),
    "UTF-16 LE csv, no BOM": ("d.csv", "key,answer\na,x\n".encode("utf-16-le"), UTF16_NO_BOM),
    "UTF-16 BE json, no BOM": (
        "d.json",
        '[{"key": "a"}]'.encode("utf-16-be"),
        UTF16_NO_BOM,
    ),
    # Not UTF-16, which the little-endian form's first two bytes look like,
    # nor a byte that is not UTF-8 or a header of '\x00\x00\x00k...'.
    "UTF-32 LE csv, no BOM": ("d.csv", "key,answer\na,x\n".encode("utf-32-le"), UTF32_NO_BOM),
    "UTF-32 BE csv, no BOM": ("d.csv", "key,answer\na,x\n".encode("utf-32-be"), UTF32_NO_BOM),
    "UTF-32 BE jsonl, no BOM": ("d.jsonl", GOOD.encode("utf-32-be"), UTF32_NO_BOM),
    "UTF-32 LE json, no BOM": ("d.json", '{"a": "é"}'.encode("utf-32-le"), UTF32_NO_BOM),
}


@pytest.mark.parametrize(("name", "content", "reason"), WHOLE_FILE.values(), ids=WHOLE_FILE)
def test_whole_file_problem(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = write(tmp_path, name, content)
    error = error_of(path)
    assert error.message == f"{path}: {reason}"
    assert error.location is None


def test_load_index_says_a_utf16_file_is_one(tmp_path: Path) -> None:
    path = write(tmp_path, "index.json", codecs.BOM_UTF16_LE + '{"a": "x"}'.encode("utf-16-le"))
    with pytest.raises(ConfigurationError) as info:
        load_index(path)
    assert info.value.message == (
        f"data file {str(path)!r} looks like UTF-16 "
        "(it starts with a UTF-16 byte order mark); save it as UTF-8"
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.jsonl"
    with pytest.raises(DataError) as info:
        DocumentReader(path)
    assert info.value.message == f"{path}: cannot read: No such file or directory"


def test_data_error_is_a_configuration_error_and_pickles(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "d.jsonl", "[]\n"))
    assert isinstance(error, ConfigurationError)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.message, copy.path, copy.location, copy.code) == (
        DataError,
        error.message,
        error.path,
        "line 1",
        "bad_data",
    )


def test_documents_from_mapping_errors_name_the_key() -> None:
    with pytest.raises(DataError) as info:
        documents_from_mapping({"a": "x", "b": 1})  # type: ignore[dict-item]
    assert info.value.message == "<data>: key \"b\": 'answer' must be a string, not int"


# -- formats ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "format"),
    [
        ("a.json", "json"),
        ("a.JSONL", "jsonl"),
        ("dir.v2/a.ndjson", "jsonl"),
        ("a.csv", "csv"),
        ("a.TSV", "csv"),
    ],
)
def test_detect_format(name: str, format: str) -> None:
    assert detect_format(name) == format


@pytest.mark.parametrize(
    ("name", "what"), [("data.txt", "the suffix '.txt'"), ("data", "a name without a suffix")]
)
def test_unknown_suffix(tmp_path: Path, name: str, what: str) -> None:
    path = write(tmp_path, name, GOOD)
    with pytest.raises(DataError) as info:
        DocumentReader(path)
    assert info.value.message == (
        f"{path}: cannot tell the format from {what}; "
        "give it with --format (format= in Python): json, jsonl or csv"
    )
    # Said to a program as well as to a command line: format= works.
    assert [document.key for document in read_documents(path, format="jsonl")] == ["a"]


def test_a_directory_is_not_a_data_file(tmp_path: Path) -> None:
    # Said as such, not as a name without a suffix.
    with pytest.raises(DataError) as info:
        DocumentReader(tmp_path)
    assert info.value.message == f"{tmp_path}: is a directory, not a data file"


def test_format_overrides_the_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "data.txt", "key,answer\na,x\n")
    assert read_documents(path, format="csv") == [doc("a", "x", key="a", answer="x")]
    path = write(tmp_path, "data.json", GOOD)  # JSON Lines, whatever the name says
    assert read_documents(path, format="jsonl") == [doc("a", "x", key="a", answer="x")]


def test_unknown_format(tmp_path: Path) -> None:
    path = write(tmp_path, "data.json", "{}")
    with pytest.raises(DataError) as info:
        DocumentReader(path, format="xml")
    assert info.value.message == f"{path}: unknown format 'xml'; expected json, jsonl or csv"


# -- the CSV delimiter ------------------------------------------------------------


def test_csv_delimiter(tmp_path: Path) -> None:
    # As a spreadsheet in a language whose decimal mark is a comma writes it.
    path = write(tmp_path, "data.csv", 'key;answer;price\na;"x; quoted";3,50\nb;y;1,00\n')
    assert read_documents(path, csv_delimiter=";") == [
        doc("a", "x; quoted", key="a", answer="x; quoted", price="3,50"),
        doc("b", "y", key="b", answer="y", price="1,00"),
    ]
    with DocumentReader(path, csv_delimiter=";") as reader:
        assert reader.csv_delimiter == ";"
    with DocumentReader(path) as reader:
        assert reader.csv_delimiter == ","


def test_a_tsv_file_is_csv_separated_by_tabs(tmp_path: Path) -> None:
    path = write(tmp_path, "data.tsv", "key\tanswer\na\tx, y\n")
    assert read_documents(path) == [doc("a", "x, y", key="a", answer="x, y")]
    # The same text under another name, and a .tsv file that uses commas.
    other = write(tmp_path, "export.txt", "key\tanswer\na\tx, y\n")
    assert read_documents(other, format="csv", csv_delimiter="\t") == read_documents(path)
    commas = write(tmp_path, "commas.tsv", "key,answer\na,x\n")
    assert read_documents(commas, csv_delimiter=",") == [doc("a", "x", key="a", answer="x")]


def test_a_csv_delimiter_the_file_does_not_use_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", "key,answer\na,x\n")
    assert error_of(path, csv_delimiter=";").message == (
        f"{path}:1: the header has no 'key' column (its columns: 'key,answer'); "
        "are its columns separated by ',', not ';'? "
        "Give --csv-delimiter , (csv_delimiter= in Python)"
    )


@pytest.mark.parametrize(
    ("name", "format"), [("data.json", None), ("data.jsonl", None), ("data.csv", "jsonl")]
)
def test_a_csv_delimiter_for_another_format_is_an_error(
    tmp_path: Path, name: str, format: str | None
) -> None:
    path = write(tmp_path, name, GOOD)
    with pytest.raises(DataError) as info:
        DocumentReader(path, format=format, csv_delimiter=";")
    read_as = format or detect_format(path)
    assert (
        info.value.message == f"{path}: csv_delimiter is for CSV files, and this one is {read_as}"
    )


@pytest.mark.parametrize(
    ("delimiter", "reason"),
    [
        ("", "must be one character, not ''"),
        (";;", "must be one character, not ';;'"),
        ("tab", "must be one character, not 'tab'"),
        ('"', "cannot be '\"', which quotes cells"),
        ("\n", "cannot be '\\n': a line break or NUL cannot separate cells"),
        ("\r", "cannot be '\\r': a line break or NUL cannot separate cells"),
        ("\x00", "cannot be '\\x00': a line break or NUL cannot separate cells"),
        ("t", "cannot be a letter or digit, such as 't'"),
        ("0", "cannot be a letter or digit, such as '0'"),
    ],
)
def test_a_bad_csv_delimiter_is_an_error(tmp_path: Path, delimiter: str, reason: str) -> None:
    path = write(tmp_path, "data.csv", "key,answer\na,x\n")
    with pytest.raises(DataError) as info:
        DocumentReader(path, csv_delimiter=delimiter)
    assert info.value.message == f"{path}: csv_delimiter {reason}"


# -- the reader: progress, once, closing ----------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("d.jsonl", b"\xef\xbb\xbf" + (GOOD + '\n{"key": "b", "answer": "y"}').encode()),
        ("d.csv", b"\xef\xbb\xbfkey,answer\r\na,x\r\nb,y"),
    ],
)
def test_bytes_read_grows_to_size(tmp_path: Path, name: str, content: bytes) -> None:
    path = write(tmp_path, name, content)
    with DocumentReader(path) as reader:
        assert (reader.size, reader.bytes_read) == (len(content), 0)
        documents = iter(reader)
        next(documents)
        assert 0 < reader.bytes_read < reader.size
        assert len(list(documents)) == 1
        assert reader.bytes_read == reader.size


def test_bytes_read_jumps_to_size_for_json(tmp_path: Path) -> None:
    content = '[{"key": "a", "answer": "x"}, {"key": "b", "answer": "y"}]'
    path = write(tmp_path, "d.json", content)
    with DocumentReader(path) as reader:
        assert (reader.size, reader.bytes_read) == (len(content), 0)
        documents = iter(reader)
        next(documents)
        assert reader.bytes_read == reader.size
        assert len(list(documents)) == 1


def test_a_reader_is_iterated_once(tmp_path: Path) -> None:
    reader = DocumentReader(write(tmp_path, "d.jsonl", GOOD))
    assert len(list(reader)) == 1
    with pytest.raises(RuntimeError, match="only once"):
        iter(reader)


def test_a_closed_reader_cannot_be_iterated(tmp_path: Path) -> None:
    with DocumentReader(write(tmp_path, "d.jsonl", GOOD)) as reader:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        iter(reader)


def test_documents_are_hashable_and_read_only(tmp_path: Path) -> None:
    (document,) = read_documents(write(tmp_path, "d.jsonl", GOOD))
    assert document in {doc("a", "x", key="a", answer="x")}
    with pytest.raises(TypeError):
        document.fields["title"] = "changed"  # type: ignore[index]
