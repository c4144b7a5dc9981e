"""``trio-search-index``: build, add, delete, info, as a user runs them."""

from __future__ import annotations

import codecs
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import tantivy

from trio_search import QueryOptions, RequestError, SearchIndex, _index_cli, _index_writer
from trio_search._errors import ConfigurationError
from trio_search._index_cli import ProgressBar, main
from trio_search._index_meta import TANTIVY_META
from trio_search._index_writer import (
    IndexBusyError,
    Progress,
    add_documents,
    build_index,
    build_lock,
    delete_documents,
    lock_file_of,
)
from trio_search._schema import DOCSTORE_BLOCK_BYTES, ONE_WRITER_THREAD_MAX_BYTES, writer_threads

#: Seconds any one subprocess may take before the test fails.
TIMEOUT = 60

RECORDS = [
    {"key": "morpheus", "answer": "Follow the white rabbit.", "body": "red pill blue pill"},
    {"key": "ring", "answer": "In the caves beneath the Misty Mountains.", "body": "precious"},
    {"key": "dog", "answer": "Playing ball!", "body": "fetch the ball"},
]


def write_jsonl(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def write_data(directory: Path, format: str, records: list[dict[str, str]] = RECORDS) -> Path:
    if format == "jsonl":
        return write_jsonl(directory / "data.jsonl", records)
    if format == "json":
        path = directory / "data.json"
        path.write_text(json.dumps(records), encoding="utf-8")
        return path
    path = directory / "data.csv"
    lines = ["key,answer,body"] + [
        ",".join(f'"{record[name]}"' for name in ("key", "answer", "body")) for record in records
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    status = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, out, err


def one_error_line(err: str) -> str:
    """The error output, checked to be one line with the command's prefix."""
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    assert err.startswith("trio-search-index: "), err
    assert "Traceback" not in err
    return err


def state(index_dir: Path) -> tuple[int, int, dict[str, str | None]]:
    """What a user sees of an index: documents, generation, each answer."""
    index = SearchIndex.open(index_dir)
    keys = ["morpheus", "ring", "dog", "cat", "new"]
    return index.documents, index.generation, {key: index.lookup(key) for key in keys}


def leftovers(directory: Path) -> list[str]:
    """A build's temporary directories and lock files still there."""
    return sorted(
        p.name
        for p in directory.iterdir()
        if ".building-" in p.name or ".old-" in p.name or p.name.endswith(".lock")
    )


@pytest.fixture
def built(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    index_dir = tmp_path / "idx"
    status, _out, _err = run(capsys, "build", write_data(tmp_path, "jsonl"), "--index", index_dir)
    assert status == 0
    return index_dir


# -- build ----------------------------------------------------------------------


@pytest.mark.parametrize("format", ["json", "jsonl", "csv"])
def test_build_each_format_then_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], format: str
) -> None:
    data = write_data(tmp_path, format)
    index_dir = tmp_path / "idx"
    status, out, err = run(capsys, "build", data, "--index", index_dir)
    assert status == 0
    assert err == ""  # not a terminal: no progress bar
    assert re.fullmatch(
        rf"indexed 3 documents from {re.escape(str(data))} in \d+\.\d\d s "
        rf"\([\d,]+ documents/s\); {re.escape(str(index_dir))}: \d+\.\d MiB\n",
        out,
    ), out
    index = SearchIndex.open(index_dir)
    assert index.documents == 3
    assert index.lookup("ring") == "In the caves beneath the Misty Mountains."
    assert [hit.key for hit in index.query("rabbit").hits] == ["morpheus"]
    assert [hit.key for hit in index.query("fetch").hits] == ["dog"]
    assert leftovers(tmp_path) == []


def test_build_into_an_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index_dir = tmp_path / "idx"
    index_dir.mkdir()
    status, _out, _err = run(capsys, "build", write_data(tmp_path, "csv"), "--index", index_dir)
    assert status == 0
    assert SearchIndex.open(index_dir).lookup("dog") == "Playing ball!"


def test_search_fields_and_other_field_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(
        tmp_path / "movies.jsonl",
        [{"id": "m1", "title": "The Matrix", "plot": "a hacker learns", "notes": "secret"}],
    )
    index_dir = tmp_path / "movies"
    status, _out, _err = run(
        capsys,
        "build", data, "--index", index_dir,
        "--key-field", "id", "--answer-field", "title", "--search-fields", "title,plot",
    )  # fmt: skip
    assert status == 0
    index = SearchIndex.open(index_dir)
    assert index.lookup("m1") == "The Matrix"
    assert [hit.key for hit in index.query("hacker").hits] == ["m1"]
    assert index.query("secret").hits == []  # not a searchable field


def test_a_search_field_no_record_has_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in --search-fields builds (the records are fine) but says so,
    and the index does not list the name among the fields it has."""
    data = write_jsonl(tmp_path / "d.jsonl", [{"key": "a", "answer": "x", "text": "alpha"}])
    index_dir = tmp_path / "typo"
    status, _out, err = run(
        capsys, "build", data, "--index", index_dir, "--search-fields", "text,txet,nope"
    )
    assert status == 0
    assert one_error_line(err) == (
        "trio-search-index: warning: --search-fields names 'txet', 'nope', "
        "which no record has (fields seen: text)\n"
    )
    status, out, _err = run(capsys, "info", "--index", index_dir, "--json")
    assert json.loads(out)["fields"] == ["text"]
    assert [hit.key for hit in SearchIndex.open(index_dir).query("alpha").hits] == ["a"]
    # Every field named and seen: no warning.
    status, _out, err = run(capsys, "build", data, "--index", index_dir, "--search-fields", "text")
    assert (status, err) == (0, "")


def test_field_queries_are_an_option_of_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [
        {"key": "b1", "answer": "Alice", "title": "Alice in Wonderland", "body": "a rabbit"},
        {"key": "b2", "answer": "Watership", "title": "Watership Down", "body": "alice"},
    ]
    data = write_jsonl(tmp_path / "books.jsonl", records)
    plain, fielded = tmp_path / "plain", tmp_path / "fielded"
    assert run(capsys, "build", data, "--index", plain)[0] == 0
    assert run(capsys, "build", data, "--index", fielded, "--field-queries")[0] == 0
    title_only = QueryOptions(fields=("title",))
    with pytest.raises(RequestError, match="--field-queries"):
        SearchIndex.open(plain).query("alice", title_only)
    assert [hit.key for hit in SearchIndex.open(fielded).query("alice", title_only).hits] == ["b1"]
    # Both find every field's words by default.
    for index_dir in (plain, fielded):
        assert {hit.key for hit in SearchIndex.open(index_dir).query("alice").hits} == {"b1", "b2"}
    # An add keeps what the build chose.
    more = write_jsonl(tmp_path / "more.jsonl", [{"key": "b3", "answer": "x", "title": "alice"}])
    assert run(capsys, "add", more, "--index", fielded)[0] == 0
    found = SearchIndex.open(fielded).query("alice", title_only).hits
    assert {hit.key for hit in found} == {"b1", "b3"}
    _status, out, _err = run(capsys, "info", "--index", fielded)
    assert "field queries:     yes" in out
    _status, out, _err = run(capsys, "info", "--index", plain, "--json")
    assert json.loads(out)["field_queries"] is False


def test_a_small_file_builds_one_segment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every query pays a fixed cost per segment: two writer threads (two
    # segments) only for files of ONE_WRITER_THREAD_MAX_BYTES and more.
    records = [{"key": f"k{n}", "answer": f"answer number {n} of many"} for n in range(3000)]
    data = write_jsonl(tmp_path / "many.jsonl", records)
    assert run(capsys, "build", data, "--index", tmp_path / "idx")[0] == 0
    _status, out, _err = run(capsys, "info", "--index", tmp_path / "idx", "--json")
    assert json.loads(out)["segments"] == 1
    assert writer_threads(data.stat().st_size) == 1
    assert writer_threads(ONE_WRITER_THREAD_MAX_BYTES) == 2


def test_rebuild_replaces_the_index(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(tmp_path / "v2.jsonl", [{"key": "cat", "answer": "Meow."}])
    status, out, _err = run(capsys, "build", data, "--index", built)
    assert status == 0
    assert "indexed 1 document from" in out
    documents, _generation, answers = state(built)
    assert documents == 1
    assert answers["cat"] == "Meow."
    assert answers["ring"] is None
    assert leftovers(tmp_path) == []


def test_a_running_reader_notices_the_replacement(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = SearchIndex.open(built)
    data = write_jsonl(tmp_path / "v2.jsonl", [{"key": "cat", "answer": "Meow."}])
    assert run(capsys, "build", data, "--index", built)[0] == 0
    assert index.replaced_on_disk()
    assert index.lookup("ring") is not None  # it still reads the old files until reopened


def test_build_refuses_a_directory_that_is_not_an_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "holiday.jpg").write_bytes(b"\xff\xd8 not really")
    status, out, err = run(capsys, "build", write_data(tmp_path, "jsonl"), "--index", precious)
    assert status == 1
    assert out == ""
    line = one_error_line(err)
    assert "is not empty and holds no trio_search index; refusing to replace it" in line
    assert [p.name for p in precious.iterdir()] == ["holiday.jpg"]
    assert (precious / "holiday.jpg").read_bytes() == b"\xff\xd8 not really"
    assert leftovers(tmp_path) == []


def test_rebuild_refuses_to_delete_files_kept_in_the_index_directory(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (built / "NOTES.txt").write_text("why this index exists", encoding="utf-8")
    before = state(built)
    data = write_jsonl(tmp_path / "v2.jsonl", [{"key": "cat", "answer": "Meow."}])
    status, out, err = run(capsys, "build", data, "--index", built)
    assert status == 1
    assert out == ""
    line = one_error_line(err)
    assert "holds files that are not part of the index ('NOTES.txt')" in line
    assert (built / "NOTES.txt").read_text(encoding="utf-8") == "why this index exists"
    assert state(built) == before  # the old index, untouched
    assert leftovers(tmp_path) == []
    # Moved out, the rebuild goes ahead (an index after adds and deletes too).
    (built / "NOTES.txt").unlink()
    assert run(capsys, "add", data, "--index", built)[0] == 0
    assert run(capsys, "delete", "cat", "--index", built)[0] == 0
    assert run(capsys, "build", data, "--index", built)[0] == 0
    assert state(built)[2]["cat"] == "Meow."


def test_build_with_the_current_directory_as_the_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # mkdir idx && cd idx && trio-search-index build ../data.jsonl --index .
    data = write_data(tmp_path, "jsonl")
    index_dir = tmp_path / "idx"
    index_dir.mkdir()
    for _ in range(2):  # a new index, then the same rebuilt in place
        monkeypatch.chdir(index_dir)
        status, out, err = run(capsys, "build", data, "--index", ".")
        assert (status, err) == (0, "")
        assert out.startswith("indexed 3 documents from ")
    assert SearchIndex.open(index_dir).lookup("ring") == RECORDS[1]["answer"]
    assert leftovers(tmp_path) == []


def test_build_refuses_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    status, _out, err = run(capsys, "build", write_data(tmp_path, "jsonl"), "--index", target)
    assert status == 1
    assert "is not a directory" in one_error_line(err)
    assert target.read_text() == "keep me"


def test_a_bad_record_changes_nothing(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = state(built)
    files_before = sorted(p.name for p in built.iterdir())
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"key": "cat", "answer": "Meow."}\n{"key": "new", "answer": "x"}\n{"key": "oops"}\n',
        encoding="utf-8",
    )
    status, out, err = run(capsys, "build", bad, "--index", built)
    assert status == 1
    assert out == ""
    assert (
        one_error_line(err)
        == f"trio-search-index: error: {bad}:3: no 'answer' field (its fields: 'key')\n"
    )
    assert state(built) == before
    assert sorted(p.name for p in built.iterdir()) == files_before
    assert leftovers(tmp_path) == []


def test_a_missing_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _out, err = run(capsys, "build", tmp_path / "nope.jsonl", "--index", tmp_path / "idx")
    assert status == 1
    assert "nope.jsonl: cannot read: No such file or directory" in one_error_line(err)
    assert not (tmp_path / "idx").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "options",
    [["--search-fields", "title,,plot"], ["--key-field", "a.b"], ["--format", "xml"]],
)
def test_bad_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str]
) -> None:
    data = write_data(tmp_path, "jsonl")
    try:
        status = main(["build", str(data), "--index", str(tmp_path / "idx"), *options])
    except SystemExit as exc:
        status = exc.code  # type: ignore[assignment]
    assert status == 2
    one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--search-fields", "title,plot,title"], "--search-fields names 'title' twice"),
        (["--key-field", "x" * 65], "--key-field must be a name of 1 to 64 characters"),
        (["--search-fields", "a.b"], "each of --search-fields must be a name of 1 to 64"),
    ],
)
def test_a_bad_field_name_is_said_by_its_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    status, _out, err = run(
        capsys, "build", write_data(tmp_path, "jsonl"), "--index", tmp_path / "idx", *options
    )
    assert status == 2
    assert one_error_line(err).startswith(f"trio-search-index: error: {message}")


def test_names_starting_with_an_underscore_or_a_dollar_are_fields_like_any_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [
        {"_id": "5f1d7a", "$title": "The Matrix", "_plot": "a hacker meets morpheus"},
        {"_id": "5f1d7b", "$title": "The Hobbit", "_plot": "a ring in a cave"},
    ]
    data = write_jsonl(tmp_path / "export.jsonl", records)
    index_dir = tmp_path / "idx"
    options = ["--key-field", "_id", "--answer-field", "$title", "--search-fields", "_plot"]
    status, _out, err = run(
        capsys, "build", data, "--index", index_dir, "--field-queries", *options
    )
    assert status == 0, err
    index = SearchIndex.open(index_dir)
    assert index.lookup("5f1d7b") == "The Hobbit"
    hits = index.query("morpheus", QueryOptions(fields=("_plot",))).hits
    assert [(hit.key, hit.answer) for hit in hits] == [("5f1d7a", "The Matrix")]
    # add reads the names the index was built with.
    more = write_jsonl(
        tmp_path / "more.jsonl", [{"_id": "5f1d7c", "$title": "Up", "_plot": "balloons"}]
    )
    assert run(capsys, "add", more, "--index", index_dir)[0] == 0
    assert SearchIndex.open(index_dir).lookup("5f1d7c") == "Up"


# -- what data files hold ---------------------------------------------------------

#: An id of 97 bits: more than the 64 that orjson reads an integer into.
BIG = 123456789012345678901234567890


def test_integers_beyond_64_bits_are_found_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records: list[dict[str, Any]] = [
        {"id": BIG, "answer": "the big one", "ref": "first"},
        {"id": 2**64 - 1, "answer": "u64 max", "ref": BIG + 1},
        {"id": -(2**63) - 1, "answer": "below i64", "ref": "third"},
    ]
    data = tmp_path / "ledger.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    index_dir = tmp_path / "idx"
    options = ["--key-field", "id", "--search-fields", "id,ref"]
    status, _out, err = run(capsys, "build", data, "--index", index_dir, *options)
    assert (status, err) == (0, "")
    index = SearchIndex.open(index_dir)
    assert index.lookup("123456789012345678901234567890") == "the big one"
    assert index.lookup("18446744073709551615") == "u64 max"
    assert index.lookup("-9223372036854775809") == "below i64"
    # Searchable as the digits written, not as 1.2345678901234568e+29.
    assert index.query("123456789012345678901234567891").hits[0].answer == "u64 max"
    assert index.query("123456789012345678901234567890").hits[0].answer == "the big one"


def test_csv_delimiter_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A spreadsheet's export in a language whose decimal mark is a comma.
    data = tmp_path / "export.csv"
    data.write_text("key;answer;body\nring;In the caves;precious, mine\n", encoding="utf-8")
    index_dir = tmp_path / "idx"
    status, _out, err = run(capsys, "build", data, "--index", index_dir, "--csv-delimiter", ";")
    assert (status, err) == (0, "")
    index = SearchIndex.open(index_dir)
    assert index.lookup("ring") == "In the caves"
    assert [hit.key for hit in index.query("precious").hits] == ["ring"]
    # A .tsv file is separated by tabs; elsewhere a tab is written \t or tab.
    (tmp_path / "more.tsv").write_text("key\tanswer\ndog\tPlaying ball!\n", encoding="utf-8")
    assert run(capsys, "add", tmp_path / "more.tsv", "--index", index_dir)[0] == 0
    for number, tab in enumerate(["\\t", "TAB", "\t"]):  # the last one a tab itself
        export = tmp_path / f"export{number}.txt"
        export.write_text(f"key\tanswer\ncat\tMeow {number}\n", encoding="utf-8")
        options = ["--format", "csv", "--csv-delimiter", tab]
        assert run(capsys, "add", export, "--index", index_dir, *options)[0] == 0
        assert SearchIndex.open(index_dir).lookup("cat") == f"Meow {number}"
    assert SearchIndex.open(index_dir).lookup("dog") == "Playing ball!"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (";;", "must be one character (a tab is written \\t or tab), not ';;'"),
        ("", "must be one character (a tab is written \\t or tab), not ''"),
        ('"', "cannot be '\"', which quotes cells"),
        ("\n", "cannot be '\\n': a line break or NUL cannot separate cells"),
        ("t", "cannot be a letter or digit, such as 't'"),
    ],
)
def test_a_bad_csv_delimiter_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    data = write_data(tmp_path, "csv")
    with pytest.raises(SystemExit) as exited:
        main(["build", str(data), "--index", str(tmp_path / "idx"), "--csv-delimiter", value])
    assert exited.value.code == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"trio-search-index: error: argument --csv-delimiter: {message} "
        "(see trio-search-index build --help)\n"
    )
    assert not (tmp_path / "idx").exists()


def test_a_csv_delimiter_for_another_format_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_data(tmp_path, "jsonl")
    index_dir = tmp_path / "idx"
    status, out, err = run(capsys, "build", data, "--index", index_dir, "--csv-delimiter", ";")
    assert (status, out) == (2, "")
    assert one_error_line(err) == (
        f"trio-search-index: error: --csv-delimiter applies to CSV files only, and {data} "
        "is jsonl by its suffix: give --format csv to read it as CSV (see --help)\n"
    )
    csv_data = write_data(tmp_path, "csv")
    options = ["--format", "json", "--csv-delimiter", "tab"]
    status, out, err = run(capsys, "build", csv_data, "--index", index_dir, *options)
    assert (status, out) == (2, "")
    assert one_error_line(err) == (
        "trio-search-index: error: --csv-delimiter applies to CSV files only, "
        "not to --format json (see --help)\n"
    )
    assert not index_dir.exists()


@pytest.mark.parametrize("bom", [codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE], ids=["LE", "BE"])
def test_a_utf16_file_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bom: bytes
) -> None:
    # What a spreadsheet's "Unicode text" export writes.
    encoding = "utf-16-le" if bom == codecs.BOM_UTF16_LE else "utf-16-be"
    data = tmp_path / "export.csv"
    data.write_bytes(bom + "key,answer\nring,In the caves\n".encode(encoding))
    status, out, err = run(capsys, "build", data, "--index", tmp_path / "idx")
    assert (status, out) == (1, "")
    assert one_error_line(err) == (
        f"trio-search-index: error: {data}: the file looks like UTF-16 "
        "(it starts with a UTF-16 byte order mark); save it as UTF-8\n"
    )
    assert not (tmp_path / "idx").exists()


# -- add ------------------------------------------------------------------------


def test_add_inserts_and_replaces_by_key(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _documents, generation, _answers = state(built)
    data = write_jsonl(
        tmp_path / "more.jsonl",
        [
            {"key": "ring", "answer": "Lost in the river.", "body": "anduin"},
            {"key": "cat", "answer": "Meow.", "tags": "feline"},
        ],
    )
    status, out, err = run(capsys, "add", data, "--index", built)
    assert status == 0, err
    documents, new_generation, answers = state(built)
    assert out == (
        f"added 2 documents (1 replaced) to {built}; generation {new_generation}; "
        "new searchable fields: tags\n"
    )
    assert new_generation > generation
    assert documents == 4
    assert answers["ring"] == "Lost in the river."
    assert answers["cat"] == "Meow."
    assert answers["morpheus"] == "Follow the white rabbit."
    index = SearchIndex.open(built)
    assert [hit.key for hit in index.query("anduin").hits] == ["ring"]
    assert index.query("precious").hits == []  # the replaced version is gone
    assert "tags" in index.meta.fields


def test_a_failing_add_changes_nothing(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = state(built)
    meta_before = (built / "trio_search.json").read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text("key,answer,extra\ncat,Meow.,x\nring,,y,z\n", encoding="utf-8")
    status, out, err = run(capsys, "add", bad, "--index", built)
    assert status == 1
    assert out == ""
    assert one_error_line(err) == (
        f"trio-search-index: error: {bad}:3: the row has 4 cells, the header has 3\n"
    )
    assert state(built) == before
    assert (built / "trio_search.json").read_text() == meta_before
    # The writer lock was released: the next add works.
    good = write_jsonl(tmp_path / "good.jsonl", [{"key": "cat", "answer": "Meow."}])
    assert run(capsys, "add", good, "--index", built)[0] == 0


def test_a_failing_add_leaves_no_files_behind(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files_before = sorted(path.name for path in built.iterdir())
    size_before = json.loads(run(capsys, "info", "--index", built, "--json")[1])["size_bytes"]
    records = [{"key": f"k{number}", "answer": f"answer {number}"} for number in range(100)]
    bad = write_jsonl(tmp_path / "bad.jsonl", [*records, {"key": "no answer"}])
    status, _out, err = run(capsys, "add", bad, "--index", built)
    assert status == 1
    assert (
        one_error_line(err)
        == f"trio-search-index: error: {bad}:101: no 'answer' field (its fields: 'key')\n"
    )
    assert sorted(path.name for path in built.iterdir()) == files_before
    info = json.loads(run(capsys, "info", "--index", built, "--json")[1])
    assert info["size_bytes"] == size_before


def test_add_to_a_missing_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_data(tmp_path, "jsonl")
    status, _out, err = run(capsys, "add", data, "--index", tmp_path / "nothing")
    assert status == 1
    assert "holds no trio_search index" in one_error_line(err)


# -- delete ---------------------------------------------------------------------


def test_delete_reports_found_and_not_found(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _err = run(capsys, "delete", "ring", "nope", "dog", "--index", built)
    assert status == 0
    documents, generation, answers = state(built)
    assert out == (
        f'deleted 2 documents from {built}; generation {generation}; 1 key not found: "nope"\n'
    )
    assert documents == 1
    assert answers["ring"] is None and answers["dog"] is None
    assert answers["morpheus"] is not None


def test_delete_nothing_found_keeps_the_generation(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = state(built)
    status, out, _err = run(capsys, "delete", "nope", "--index", built)
    assert status == 0
    assert out == f'deleted 0 documents from {built}; 1 key not found: "nope"\n'
    assert state(built) == before


def test_delete_keys_that_cannot_be_in_an_index(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A non-UTF-8 argument reaches Python as a lone surrogate.
    status, out, _err = run(capsys, "delete", "caf\udce9", "tab\there", "--index", built)
    assert status == 0
    assert out == (
        f'deleted 0 documents from {built}; 2 keys not found: "caf\\udce9", "tab\\there"\n'
    )


def test_build_through_a_symlink_keeps_the_link(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "current"
    link.symlink_to(built)
    data = write_jsonl(tmp_path / "v2.jsonl", [{"key": "cat", "answer": "Meow."}])
    assert run(capsys, "build", data, "--index", link)[0] == 0
    assert link.is_symlink()
    assert SearchIndex.open(link).lookup("cat") == "Meow."
    assert SearchIndex.open(built).documents == 1
    assert leftovers(tmp_path) == []


def test_delete_from_a_missing_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "delete", "ring", "--index", tmp_path / "nothing")
    assert status == 1
    assert out == ""
    assert "holds no trio_search index" in one_error_line(err)


# -- info -----------------------------------------------------------------------


def test_info_text(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _err = run(capsys, "info", "--index", built)
    assert status == 0
    _documents, generation, _answers = state(built)
    lines = dict(line.split(":", 1) for line in out.splitlines())
    values = {name: value.strip() for name, value in lines.items()}
    assert values["documents"] == "3"
    assert values["generation"] == str(generation)
    assert values["key field"] == "key"
    assert values["answer field"] == "answer"
    assert values["searchable fields"] == "every string field"
    assert values["fields seen"] == "answer, body, key"
    assert values["field queries"] == "no (built without --field-queries)"
    assert values["index format"] == "2"
    assert re.fullmatch(r"\d+\.\d MiB \(\d+ bytes\)", values["size on disk"])


def test_many_fields_are_listed_in_short(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Found with a record of 5,000 fields (a wide export) and with 100,000
    # records that each had a field of their own (attributes keyed by id):
    # "fields seen" printed every name, a line of 0.3 to 1.2 MB, and "add"
    # listed every new one the same way.
    wide = {"key": "wide", "answer": "A wide record."}
    wide |= {f"field_{number:04}": f"value {number}" for number in range(500)}
    index_dir = tmp_path / "idx"
    status, _out, err = run(
        capsys, "build", write_jsonl(tmp_path / "wide.jsonl", [wide]), "--index", index_dir
    )
    assert status == 0, err
    more = [{"key": f"k{n}", "answer": "x", f"attr_{n:04}": "y"} for n in range(300)]
    status, added, err = run(
        capsys, "add", write_jsonl(tmp_path / "more.jsonl", more), "--index", index_dir
    )
    assert status == 0, err
    status, out, _err = run(capsys, "info", "--index", index_dir)
    assert status == 0
    seen = next(line for line in out.splitlines() if line.startswith("fields seen:"))
    assert len(seen) < 400, seen
    assert seen.endswith("... (802 in all; info --json lists them)"), seen
    assert "answer, attr_0000, attr_0001" in seen
    assert len(added) < 400, added
    assert added.endswith("... (300 in all)\n"), added
    status, out, _err = run(capsys, "info", "--index", index_dir, "--json")
    assert len(json.loads(out)["fields"]) == 802


def test_info_json(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _err = run(capsys, "info", "--index", built, "--json")
    assert status == 0
    info = json.loads(out)
    assert info["documents"] == 3
    assert info["generation"] == SearchIndex.open(built).generation
    assert info["segments"] >= 1
    assert info["size_bytes"] > 0
    assert info["fields"] == ["answer", "body", "key"]
    assert info["search_fields"] is None
    assert info["format"] == 2


@pytest.mark.parametrize(
    ("what", "why"),
    [
        ("missing", "no such directory"),
        (
            "file",
            "it is a file, not a directory: a data file goes to --data or build "
            "(read_documents() in Python)",
        ),
        ("empty", "no trio_search.json"),
    ],
)
def test_an_index_option_that_names_no_index_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, why: str
) -> None:
    # trio-search-index info --index books.jsonl: the data file by mistake.
    index_dir = tmp_path / what
    if what == "file":
        index_dir = write_data(tmp_path, "jsonl")
    elif what == "empty":
        index_dir.mkdir()
    for command in (["info"], ["delete", "ring"]):
        status, _out, err = run(capsys, *command, "--index", index_dir)
        assert status == 1
        assert one_error_line(err) == (
            f"trio-search-index: error: {str(index_dir)!r} holds no trio_search index ({why}); "
            "create one with 'trio-search-index build'\n"
        )


def test_info_on_a_directory_that_is_not_an_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _out, err = run(capsys, "info", "--index", tmp_path)
    assert status == 1
    assert "holds no trio_search index" in one_error_line(err)


# -- one writer at a time -------------------------------------------------------


def test_lock_busy(built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = state(built)
    holder = tantivy.Index.open(str(built)).writer(heap_size=15_000_000, num_threads=1)
    try:
        data = write_jsonl(tmp_path / "more.jsonl", [{"key": "cat", "answer": "Meow."}])
        busy = f"trio-search-index: error: another trio-search-index is writing to {built}; "
        busy += "try again when it is done\n"
        for args in (
            ["add", data, "--index", built],
            ["delete", "ring", "--index", built],
            ["build", data, "--index", built],
        ):
            status, out, err = run(capsys, *args)
            assert (status, out, one_error_line(err)) == (1, "", busy)
    finally:
        holder.wait_merging_threads()
    assert state(built) == before
    assert leftovers(tmp_path) == []


def test_a_build_into_a_new_directory_locks_it_until_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """While a build into a directory that does not exist yet runs (its lock
    held here, as :func:`build_index` holds it), every other writer is
    refused and nothing is created; then the lock is gone and builds work."""
    data = write_data(tmp_path, "jsonl")
    target = tmp_path / "new.idx"
    busy_error = f"another trio-search-index is writing to {target}; try again when it is done"
    busy = f"trio-search-index: error: {busy_error}\n"
    with build_lock(target):
        assert lock_file_of(target).is_file()
        with pytest.raises(IndexBusyError) as caught:
            build_index(data, target)
        assert caught.value.message == busy_error
        with pytest.raises(IndexBusyError):
            add_documents(data, target)
        with pytest.raises(IndexBusyError):
            delete_documents(target, ["ring"])
        for args in (
            ["build", data, "--index", target],
            ["add", data, "--index", target],
            ["add", data, "--index", target, "--key-field", "key"],
            ["delete", "ring", "--index", target],
        ):
            status, out, err = run(capsys, *args)
            assert (status, out, one_error_line(err)) == (1, "", busy)
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "data.jsonl",
            "new.idx.trio-search-build.lock",
        ]
    assert leftovers(tmp_path) == []
    assert build_index(data, target).documents == len(RECORDS)
    assert state(target)[0] == len(RECORDS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl", "new.idx"]


def test_a_rebuild_holds_the_lock_too(built: Path, tmp_path: Path) -> None:
    """An existing index is locked the same way while it is rebuilt."""
    before = state(built)
    more = write_jsonl(tmp_path / "more.jsonl", [{"key": "cat", "answer": "Meow."}])
    with build_lock(built):
        with pytest.raises(IndexBusyError):
            build_index(more, built)
        with pytest.raises(IndexBusyError):
            add_documents(more, built)
        with pytest.raises(IndexBusyError):
            delete_documents(built, ["ring"])
    assert state(built) == before
    assert leftovers(tmp_path) == []


def test_a_lock_left_by_a_dead_build_blocks_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "idx"
    lock = lock_file_of(target)
    # A process that takes the lock and dies without removing the file.
    holder = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", holder, str(lock)], check=True, timeout=TIMEOUT)
    assert lock.is_file()
    data = write_data(tmp_path, "jsonl")
    # Not "busy": there is no index, and no build under way.
    status, _out, err = run(capsys, "add", data, "--index", target)
    assert status == 1
    assert "holds no trio_search index" in one_error_line(err)
    assert run(capsys, "build", data, "--index", target)[0] == 0
    assert state(target)[0] == len(RECORDS)
    assert leftovers(tmp_path) == []
    # And a dead build's lock beside an existing index stops no add.
    subprocess.run([sys.executable, "-c", holder, str(lock)], check=True, timeout=TIMEOUT)
    more = write_jsonl(tmp_path / "more.jsonl", [{"key": "cat", "answer": "Meow."}])
    assert run(capsys, "add", more, "--index", target)[0] == 0
    assert state(target)[2]["cat"] == "Meow."


def test_a_failed_build_releases_its_lock(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "oops"}\n', encoding="utf-8")
    target = tmp_path / "idx"
    with pytest.raises(ConfigurationError):
        build_index(bad, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]
    # The lock was released: holding it now works.
    with build_lock(target):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_the_lock_is_taken_again_if_its_file_was_removed_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build that opens the lock file just before the holder removes it
    and unlocks it would lock a file no one else sees: it must start over."""
    import fcntl

    from trio_search import _index_writer

    target = tmp_path / "idx"
    lock = lock_file_of(target)
    real_flock = fcntl.flock
    calls = []

    def flock(fd: int, operation: int) -> None:
        calls.append(operation)
        if len(calls) == 1:
            lock.unlink()  # the holder before us is done, after our open
        real_flock(fd, operation)

    monkeypatch.setattr(_index_writer.fcntl, "flock", flock)
    with build_lock(target):
        assert len(calls) == 2
        monkeypatch.setattr(_index_writer.fcntl, "flock", real_flock)
        with pytest.raises(IndexBusyError):
            build_index(write_data(tmp_path, "jsonl"), target)
    assert not lock.exists()


# -- help, progress, the installed command ------------------------------------------


@pytest.mark.parametrize("command", [[], ["build"], ["add"], ["delete"], ["info"]])
def test_help(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        main([*command, "--help"])
    assert exc_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "trio-search-index" in out
    if command in (["build"], ["add"]):
        text = " ".join(out.split())
        assert (
            "--csv-delimiter CHAR the character separating a CSV file's cells, such as ';' "
            "(spreadsheets in languages whose decimal mark is a comma) or a tab, written \\t "
            "or tab (default: a comma; a tab for a .tsv file)"
        ) in text


def test_add_help_gives_the_index_s_fields_as_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # add reads records the way the index was built, not with key/answer.
    with pytest.raises(SystemExit):
        main(["add", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: key)" not in out
    assert "(default: answer)" not in out
    assert "(default: every string field)" not in out
    assert "unique key (default: the index's)" in out


def test_progress_bar_draws_and_clears() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream)
    bar(Progress(bytes_read=5 * 1024 * 1024, size=10 * 1024 * 1024, documents=1000, elapsed=0.5))
    drawn = stream.getvalue()
    assert drawn.startswith("\r[")
    assert " 50% 5.0/10.0 MiB  1,000 documents  2,000 documents/s" in drawn
    assert "committing" not in drawn
    bar(Progress(10 * 1024 * 1024, 10 * 1024 * 1024, 2000, 1.0, committing=True))
    assert stream.getvalue().endswith(
        "100% 10.0/10.0 MiB  2,000 documents  2,000 documents/s  committing..."
    )
    bar.clear()
    assert stream.getvalue().endswith("\r")


def test_build_reports_progress_to_a_callback(tmp_path: Path) -> None:
    records = [{"key": f"k{i}", "answer": f"answer {i}"} for i in range(3000)]
    data = write_jsonl(tmp_path / "many.jsonl", records)
    seen: list[Progress] = []
    result = build_index(data, tmp_path / "idx", progress=seen.append)
    assert result.documents == 3000
    assert seen[-1].documents == 3000
    assert seen[-1].committing
    assert not any(progress.committing for progress in seen[:-1])
    assert seen[-1].bytes_read == seen[-1].size == data.stat().st_size


def test_the_command_in_a_subprocess(tmp_path: Path) -> None:
    data = write_data(tmp_path, "jsonl")
    index_dir = tmp_path / "idx"
    command = [sys.executable, "-m", "trio_search._index_cli"]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run(
        [*command, "build", str(data), "--index", str(index_dir)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("indexed 3 documents from ")
    assert done.stderr == ""
    assert SearchIndex.open(index_dir).lookup("morpheus") == "Follow the white rabbit."
    failed = subprocess.run(
        [*command, "add", str(tmp_path / "missing.csv"), "--index", str(index_dir)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
    )
    assert failed.returncode == 1
    assert failed.stdout == ""
    one_error_line(failed.stderr)
    assert "missing.csv: cannot read" in failed.stderr


#: Runs trio-search-index with Ctrl-C raising KeyboardInterrupt, as in a
#: terminal, even where this test process was started with SIGINT ignored (a
#: background job), which a child would inherit.
WITH_CTRL_C = (
    "import signal, sys; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from trio_search._index_cli import main; "
    "sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.skipif(os.name != "posix", reason="sends POSIX signals")
@pytest.mark.parametrize(
    ("signum", "status", "said"),
    [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")],
    ids=["SIGTERM", "SIGINT"],
)
def test_a_signal_during_a_build_leaves_nothing_behind(
    tmp_path: Path, signum: signal.Signals, status: int, said: str
) -> None:
    # Big enough to take seconds: the signal comes while documents are added.
    records = [
        {"key": f"k{i}", "answer": f"answer {i}", "body": f"words about document {i}"}
        for i in range(200_000)
    ]
    data = write_jsonl(tmp_path / "big.jsonl", records)
    index_dir = tmp_path / "idx"
    process = subprocess.Popen(
        [sys.executable, "-c", WITH_CTRL_C, "build", str(data), "--index", str(index_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not leftovers(tmp_path):
            assert process.poll() is None, "the build ended before the signal"
            assert time.monotonic() < deadline, "no .building- directory appeared"
            time.sleep(0.01)
        process.send_signal(signum)
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == status, err
    assert out == ""
    one_error_line(err)
    assert re.fullmatch(
        rf"trio-search-index: error: {said} after \d+\.\d s; nothing was changed\n", err
    ), err
    assert leftovers(tmp_path) == []
    assert not index_dir.exists()


def stop_after(
    monkeypatch: pytest.MonkeyPatch, name: str, stop: type[BaseException] = KeyboardInterrupt
) -> None:
    """Make the writer's ``name`` do its work, then stop as a signal would
    (Ctrl-C, or trio-search-index's SIGTERM) just after it."""
    real = getattr(_index_writer, name)

    def then_stopped(*args: object, **kwargs: object) -> object:
        real(*args, **kwargs)
        raise stop

    monkeypatch.setattr(_index_writer, name, then_stopped)


def test_ctrl_c_just_after_an_add_s_commit_says_it_was_made(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_after(monkeypatch, "_commit")
    data = write_jsonl(tmp_path / "new.jsonl", [{"key": "new", "answer": "Added."}])
    status, out, err = run(capsys, "add", data, "--index", built)
    assert status == 130
    assert out == ""
    _, generation, answers = state(built)
    assert re.fullmatch(
        rf"trio-search-index: error: interrupted after \d+\.\d s; the change was already "
        rf"made: {re.escape(str(built))} is at generation {generation}\n",
        one_error_line(err),
    ), err
    assert answers["new"] == "Added."


def test_sigterm_just_after_a_delete_s_commit_says_it_was_made(
    built: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_after(monkeypatch, "_commit", _index_cli._Terminated)
    status, _out, err = run(capsys, "delete", "ring", "--index", built)
    assert status == 143
    assert "terminated after" in err
    assert "the change was already made" in one_error_line(err)
    assert state(built)[2]["ring"] is None


def test_ctrl_c_just_after_a_rebuild_s_swap_names_the_old_copy_left(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_after(monkeypatch, "_swap_into_place")
    data = write_jsonl(tmp_path / "new.jsonl", [{"key": "new", "answer": "Rebuilt."}])
    status, _out, err = run(capsys, "build", data, "--index", built)
    assert status == 130
    (old,) = [name for name in leftovers(tmp_path) if ".old-" in name]
    assert one_error_line(err).endswith(f"; delete {tmp_path / old}, the index it replaced\n"), err
    assert "the change was already made" in err
    assert state(built)[2] == {
        "morpheus": None,
        "ring": None,
        "dog": None,
        "cat": None,
        "new": "Rebuilt.",
    }


def test_ctrl_c_just_after_the_build_directory_is_made_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The window a loaded machine opens: the signal is handled as soon as
    # the process runs again, just after it made DIR.building-<random>.
    real_mkdir = Path.mkdir

    def mkdir_then_interrupted(self: Path, *args: Any, **kwargs: Any) -> None:
        real_mkdir(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "mkdir", mkdir_then_interrupted)
    index_dir = tmp_path / "idx"
    status, _out, err = run(capsys, "build", write_data(tmp_path, "jsonl"), "--index", index_dir)
    assert status == 130
    assert one_error_line(err).endswith("; nothing was changed\n"), err
    assert leftovers(tmp_path) == []
    assert not index_dir.exists()


def test_ctrl_c_during_info_says_nothing_was_changed(
    built: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_index_cli, "index_info", interrupted)
    status, _out, err = run(capsys, "info", "--index", built)
    assert status == 130
    assert one_error_line(err).endswith("; nothing was changed\n"), err


def test_ctrl_c_before_the_commit_still_changes_nothing(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = state(built)

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_index_writer, "_commit", interrupted)
    data = write_jsonl(tmp_path / "new.jsonl", [{"key": "new", "answer": "Added."}])
    status, _out, err = run(capsys, "add", data, "--index", built)
    assert status == 130
    assert one_error_line(err).endswith("; nothing was changed\n"), err
    assert state(built) == before


def test_the_sigterm_handler_is_put_back(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    assert run(capsys, "delete", "ring", "--index", built)[0] == 0
    assert run(capsys, "build", write_data(tmp_path, "jsonl"), "--index", built)[0] == 0
    assert signal.getsignal(signal.SIGTERM) is before


def test_output_to_a_closed_pipe_is_no_traceback(built: Path) -> None:
    # trio-search-index info --index idx | head -3: the reader may go first.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "trio_search._index_cli", "info", "--index", str(built)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, b"")


def test_a_full_disk_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # tantivy only says its writer thread was killed; the free space tells why.
    from trio_search import _index_writer

    def full_disk(path: object) -> SimpleNamespace:
        return SimpleNamespace(total=10**9, used=10**9, free=4096)

    monkeypatch.setattr(_index_writer.shutil, "disk_usage", full_disk)
    error = _index_writer._tantivy_error(
        "cannot build the index in idx", ValueError("An index writer was\nkilled."), tmp_path
    )
    assert error.message == (
        "cannot build the index in idx: An index writer was killed. (the disk is full: 4 KiB free)"
    )


def test_a_rebuilt_index_numbers_its_data_after_the_old_one(tmp_path: Path) -> None:
    from trio_search import SearchIndex

    data = tmp_path / "data.jsonl"
    data.write_text('{"key": "a", "answer": "one"}\n', encoding="utf-8")
    index = tmp_path / "index"
    assert main(["build", str(data), "--index", str(index)]) == 0
    for _ in range(3):
        assert main(["add", str(data), "--index", str(index)]) == 0
    before = SearchIndex.open(index).generation
    # A rebuild starts tantivy's commit counter again; the generation goes on.
    assert main(["build", str(data), "--index", str(index)]) == 0
    after = SearchIndex.open(index).generation
    assert after > before


def docstore_block(index: Path) -> int:
    block: int = json.loads((index / TANTIVY_META).read_text())["index_settings"][
        "docstore_blocksize"
    ]
    return block


def test_stored_documents_are_kept_in_small_blocks_through_builds_and_adds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Answers spanning many blocks, each read back whole after a build and an add.
    answers = {f"k{number}": f"answer {number} " + "x" * 100 for number in range(400)}
    data = write_jsonl(
        tmp_path / "data.jsonl",
        [{"key": key, "answer": answer} for key, answer in list(answers.items())[:300]],
    )
    more = write_jsonl(
        tmp_path / "more.jsonl",
        [{"key": key, "answer": answer} for key, answer in list(answers.items())[300:]],
    )
    index = tmp_path / "index"
    assert run(capsys, "build", data, "--index", index)[0] == 0
    assert docstore_block(index) == DOCSTORE_BLOCK_BYTES
    assert run(capsys, "add", more, "--index", index)[0] == 0
    assert docstore_block(index) == DOCSTORE_BLOCK_BYTES
    opened = SearchIndex.open(index)
    assert {key: opened.lookup(key) for key in answers} == answers
