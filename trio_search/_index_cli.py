"""``trio-search-index``: build, update and describe on-disk search indexes.

The work is done by :mod:`trio_search._index_writer`; this module parses
options, draws the progress bar and prints one line per result or error.
"""

from __future__ import annotations

import argparse
import glob
import json
import signal
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn, TextIO

from ._cli_common import (
    FIELD_QUERIES_HELP,
    DefaultsHelpFormatter,
    OneLineErrorParser,
    add_field_mapping_options,
    csv_delimiter_conflict,
    fail,
    field_mapping,
    stdout_gone,
)
from ._documents import FieldMapping
from ._errors import ConfigurationError
from ._index_meta import commit_stamp, generation_of, read_meta
from ._index_writer import (
    OLD_SUFFIX,
    AddResult,
    BuildResult,
    DeleteResult,
    IndexInfo,
    Progress,
    add_documents,
    build_index,
    check_not_building,
    delete_documents,
    index_info,
)

PROG = "trio-search-index"
#: Bytes in the MiB the messages report sizes in.
MIB = 1024 * 1024
#: Character cells the progress bar's bar takes.
BAR_WIDTH = 24
#: Exit status after Ctrl-C (SIGINT): 128 + the signal number, as shells say.
INTERRUPTED_STATUS = 130
#: Exit status after SIGTERM: 128 + 15.
TERMINATED_STATUS = 143
#: The commands that change an index: SIGTERM stops them the way Ctrl-C does.
CHANGING_COMMANDS = ("build", "add", "delete")
#: Field names listed on one line (info's "fields seen", add's new fields,
#: a warning) before the list is cut: a record may have thousands of
#: fields, and records keyed by ids may each bring fields of their own.
FIELDS_SHOWN = 20


class _Parser(OneLineErrorParser):
    """Errors of every subcommand start ``trio-search-index:`` like all others."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


class _Formatter(DefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Option defaults shown; the description and examples kept as written."""


_DESCRIPTION = """\
Build and change the on-disk search indexes that trio-search-server serves.

  build   index a data file into a new directory, or replace an index whole
  add     insert or replace documents by key in an existing index
  delete  delete documents by key
  info    what an index holds

A running server follows every change: it sees each add and delete when it
is committed, and reopens an index that build replaced.
"""

_EXAMPLES = """\
examples:
  trio-search-index build docs.jsonl --index ./idx
  trio-search-index add more.csv --index ./idx
  trio-search-index delete ring morpheus --index ./idx
  trio-search-index info --index ./idx --json

Exit status: 0 on success, 1 when the operation fails (nothing is changed
then), 2 for a bad option, 130 after Ctrl-C (SIGINT), 143 after SIGTERM
to build, add or delete (nothing is changed after either, unless the signal
lands once the change is in place: the message then says so).
"""

_BUILD_HELP = """\
Index a data file (JSON, JSON Lines, CSV or TSV) into the directory --index.

The directory must not exist, or be empty, or hold a trio_search index: that
index is replaced whole. The new index is built beside it (in
DIR.building-<random>) and swapped in only when complete (two renames), so a
failed build (a bad record, a full disk, Ctrl-C, SIGTERM) leaves DIR exactly
as it was, and a server keeps answering from the old index until the new one
is in place.
A non-empty directory that is not a trio_search index is never touched.

Each record needs a key (unique in the file; looked up exactly by 'search')
and an answer (what a hit returns). By default every string field of a
record is searchable by 'query'; --search-fields limits that.
"""

_BUILD_EXAMPLES = """\
examples:
  # JSON Lines, records like {"key": "ring", "answer": "...", "body": "..."}
  trio-search-index build docs.jsonl --index ./idx

  # a CSV export with other column names; only two columns searchable
  trio-search-index build movies.csv --index ./movies \\
      --key-field id --answer-field title --search-fields title,plot

  # the tutorial's format: one JSON object of key -> answer
  trio-search-index build tutorial.json --index ./tutorial

  # a file without a telling suffix
  trio-search-index build export.txt --format jsonl --index ./idx

  # a spreadsheet's CSV with cells separated by semicolons
  trio-search-index build export.csv --csv-delimiter ';' --index ./idx
"""

_ADD_HELP = """\
Insert the documents of a data file into an existing index. A document whose
key is already in the index replaces that one. All of the file is added in
one commit, or nothing is: a bad record anywhere changes nothing.

The field options default to the ones the index was built with.
"""

_ADD_EXAMPLES = """\
examples:
  trio-search-index add updates.jsonl --index ./idx
  trio-search-index add extra.csv --index ./idx --key-field id
"""

_DELETE_HELP = """\
Delete the documents with these exact keys, in one commit. Keys that no
document has are reported; that is not an error.
"""

_DELETE_EXAMPLES = """\
examples:
  trio-search-index delete ring --index ./idx
  trio-search-index delete doc-1 doc-2 doc-3 --index ./idx
  trio-search-index delete --index ./idx -- -key-starting-with-a-dash
"""

_INFO_HELP = """\
Show what an index holds: documents, generation (it grows with every
commit), segments, size on disk, and its fields.
"""

_INFO_EXAMPLES = """\
examples:
  trio-search-index info --index ./idx
  trio-search-index info --index ./idx --json | jq .documents
"""


def _add_index_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", "-i", metavar="DIR", required=True, help="the index directory")


def _add_data_options(
    parser: argparse.ArgumentParser, title: str, defaults: tuple[str, str, str] | None = None
) -> None:
    parser.add_argument("data", metavar="DATA", help="the data file: JSON, JSON Lines, CSV or TSV")
    _add_index_option(parser)
    add_field_mapping_options(
        parser.add_argument_group(f"data fields ({title})"), defaults=defaults
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description=_DESCRIPTION, epilog=_EXAMPLES, formatter_class=_Formatter
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    build = commands.add_parser(
        "build",
        help="index a data file into a new directory, or replace an index",
        description=_BUILD_HELP,
        epilog=_BUILD_EXAMPLES,
        formatter_class=_Formatter,
    )
    _add_data_options(build, "defaults: key, answer, every string field")
    build.add_argument("--field-queries", action="store_true", help=FIELD_QUERIES_HELP)
    add = commands.add_parser(
        "add",
        help="insert or replace documents by key",
        description=_ADD_HELP,
        epilog=_ADD_EXAMPLES,
        formatter_class=_Formatter,
    )
    _add_data_options(add, "defaults: the ones the index was built with", ("the index's",) * 3)
    delete = commands.add_parser(
        "delete",
        help="delete documents by key",
        description=_DELETE_HELP,
        epilog=_DELETE_EXAMPLES,
        formatter_class=_Formatter,
    )
    delete.add_argument("keys", metavar="KEY", nargs="+", help="a key, exactly")
    _add_index_option(delete)
    info = commands.add_parser(
        "info",
        help="what an index holds",
        description=_INFO_HELP,
        epilog=_INFO_EXAMPLES,
        formatter_class=_Formatter,
    )
    _add_index_option(info)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


# -- progress -------------------------------------------------------------------


class ProgressBar:
    """A one-line progress report redrawn in place on a terminal.

    The writer calls it at most ten times a second (see
    :data:`trio_search._index_writer.PROGRESS_INTERVAL`).
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._drawn = 0

    def __call__(self, progress: Progress) -> None:
        rate = progress.documents / progress.elapsed if progress.elapsed > 0 else 0.0
        if progress.size > 0:
            fraction = min(progress.bytes_read / progress.size, 1.0)
            filled = round(fraction * BAR_WIDTH)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            where = (
                f"[{bar}] {fraction:4.0%} {progress.bytes_read / MIB:.1f}/"
                f"{progress.size / MIB:.1f} MiB"
            )
        else:
            where = f"{progress.bytes_read / MIB:.1f} MiB"
        line = f"{where}  {progress.documents:,} documents  {rate:,.0f} documents/s"
        if progress.committing:
            line += "  committing..."
        self._stream.write("\r" + line.ljust(self._drawn))
        self._stream.flush()
        self._drawn = len(line)

    def clear(self) -> None:
        """Erase the line, so that what is printed next starts clean."""
        if self._drawn:
            self._stream.write("\r" + " " * self._drawn + "\r")
            self._stream.flush()
            self._drawn = 0


# -- the commands ---------------------------------------------------------------


class _UsageError(Exception):
    """A bad option value found after parsing (exit status 2)."""


def _mapping(args: argparse.Namespace, base: FieldMapping) -> FieldMapping:
    """The field options over ``base``.

    Raises:
        _UsageError: a name is not a usable field name.
    """
    try:
        return field_mapping(args, base)
    except ConfigurationError as exc:
        raise _UsageError(exc.message) from None


def _count(number: int, noun: str) -> str:
    """``"1 document"``, ``"2 documents"``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB"


def _build_line(result: BuildResult) -> str:
    return (
        f"indexed {_count(result.documents, 'document')} from {result.data} "
        f"in {result.seconds:.2f} s ({result.rate:,.0f} documents/s); "
        f"{result.index}: {_mib(result.size)}"
    )


def _add_line(result: AddResult) -> str:
    line = (
        f"added {_count(result.documents, 'document')} ({result.replaced} replaced) "
        f"to {result.index}; generation {result.generation}"
    )
    if result.new_fields:
        line += f"; new searchable fields: {_field_list(result.new_fields)}"
    return line


def _field_list(names: Collection[str], more: str = "") -> str:
    """``names`` sorted and comma-separated, cut after :data:`FIELDS_SHOWN`
    of them with how many there are (and ``more``, said after the count)."""
    listed = sorted(names)
    if len(listed) <= FIELDS_SHOWN:
        return ", ".join(listed)
    return f"{', '.join(listed[:FIELDS_SHOWN])}, ... ({len(listed):,} in all{more})"


def _delete_line(result: DeleteResult) -> str:
    line = f"deleted {_count(len(result.deleted), 'document')} from {result.index}"
    if result.deleted:
        line += f"; generation {result.generation}"
    if result.not_found:
        missing = ", ".join(
            json.dumps(key, ensure_ascii=not key.isprintable()) for key in result.not_found
        )
        line += f"; {_count(len(result.not_found), 'key')} not found: {missing}"
    return line


def _info_text(info: IndexInfo) -> str:
    meta = info.meta
    chosen = "every string field" if meta.search_fields is None else ", ".join(meta.search_fields)
    rows = [
        ("index", str(info.index)),
        ("documents", str(info.documents)),
        ("generation", str(info.generation)),
        ("segments", str(info.segments)),
        ("size on disk", f"{_mib(info.size)} ({info.size} bytes)"),
        ("key field", meta.key_field),
        ("answer field", meta.answer_field),
        ("searchable fields", chosen),
        ("fields seen", _field_list(meta.fields, "; info --json lists them") or "(none)"),
        ("field queries", "yes" if meta.field_queries else "no (built without --field-queries)"),
        ("index format", str(info.format)),
    ]
    width = max(len(name) for name, _value in rows) + 1
    return "\n".join(f"{name + ':':<{width}} {value}" for name, value in rows)


def _warn_unseen(chosen: Sequence[str], seen: Collection[str]) -> None:
    """Say which fields named by ``--search-fields`` no record had: a typo
    there would otherwise build an index in which nothing is found."""
    unseen = [name for name in chosen if name not in seen]
    if unseen:
        names = ", ".join(repr(name) for name in unseen)
        print(
            f"{PROG}: warning: --search-fields names {names}, which no record has "
            f"(fields seen: {_field_list(seen) or 'none'})",
            file=sys.stderr,
        )


def _run(args: argparse.Namespace, bar: ProgressBar | None) -> str:
    """Run the command; return what to print."""
    command = args.command
    if command == "info":
        info = index_info(args.index)
        if args.json:
            return json.dumps(info.to_json(), ensure_ascii=False)
        return _info_text(info)
    if command == "delete":
        return _delete_line(delete_documents(args.index, args.keys))
    conflict = csv_delimiter_conflict(args, args.data)
    if conflict is not None:
        raise _UsageError(conflict)
    if command == "build":
        mapping = _mapping(args, FieldMapping())
        result = build_index(
            args.data,
            args.index,
            mapping,
            format=args.format,
            csv_delimiter=args.csv_delimiter,
            progress=bar,
            field_queries=args.field_queries,
        )
        if mapping.search_fields is not None:
            if bar is not None:
                bar.clear()  # the warning starts its own line
            _warn_unseen(mapping.search_fields, read_meta(result.index).fields)
        return _build_line(result)
    options = (args.key_field, args.answer_field, args.search_fields)
    add_mapping = None
    if any(option is not None for option in options):
        # The options given, over the ones the index was built with (a build
        # under way into the directory is named, rather than its absence).
        check_not_building(args.index)
        meta = read_meta(Path(args.index))
        add_mapping = _mapping(
            args, FieldMapping(meta.key_field, meta.answer_field, meta.search_fields)
        )
    return _add_line(
        add_documents(
            args.data,
            args.index,
            add_mapping,
            format=args.format,
            csv_delimiter=args.csv_delimiter,
            progress=bar,
        )
    )


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived. Raised where the program is, like Ctrl-C's
    KeyboardInterrupt, so that the writer's cleanup runs the same way: a
    build removes its ``DIR.building-<random>``, an add or delete rolls back.
    """


def _raise_terminated(signum: int, frame: FrameType | None) -> NoReturn:
    # Once: a second SIGTERM must not cut the cleanup of the first short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Terminated


#: What :func:`_catch_sigterm` returns when it installed no handler.
_NOT_INSTALLED = object()


def _catch_sigterm() -> object:
    """Make SIGTERM raise :class:`_Terminated`; return the handler it
    replaced (for :func:`_restore_sigterm`), or ``_NOT_INSTALLED``."""
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: signals are not ours to handle
        return _NOT_INSTALLED


def _restore_sigterm(previous: object) -> None:
    # None: a handler not set from Python, which cannot be put back from it.
    if previous is not _NOT_INSTALLED and previous is not None:
        signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``trio-search-index``; return the process exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    bar = ProgressBar(sys.stderr) if args.command in ("build", "add") and _is_tty() else None
    started = time.monotonic()
    previous_sigterm: object = _NOT_INSTALLED
    before: tuple[int, ...] = ()
    try:
        if args.command in CHANGING_COMMANDS:
            # What the index looked like: a signal that lands once the change
            # is in place must not be reported as having stopped it.
            before = commit_stamp(Path(args.index))
            previous_sigterm = _catch_sigterm()
        output = _run(args, bar)
    except _UsageError as exc:
        return fail(PROG, f"{exc} (see --help)", 2)
    except ConfigurationError as exc:
        return fail(PROG, exc.message)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(PROG, f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt as exc:
        said, status = (
            ("terminated", TERMINATED_STATUS)
            if isinstance(exc, _Terminated)
            else ("interrupted", INTERRUPTED_STATUS)
        )
        elapsed = time.monotonic() - started
        outcome = (
            _outcome_when_stopped(Path(args.index), before)
            if args.command in CHANGING_COMMANDS
            else "nothing was changed"  # info reads only
        )
        return fail(PROG, f"{said} after {elapsed:.1f} s; {outcome}", status)
    finally:
        if bar is not None:
            bar.clear()
        _restore_sigterm(previous_sigterm)
    try:
        print(output, flush=True)
    except BrokenPipeError:  # e.g. | head: the reader has all it wanted
        return stdout_gone()
    return 0


def _outcome_when_stopped(index: Path, before: tuple[int, ...]) -> str:
    """What a build, add or delete stopped by a signal left: nothing changed
    (the usual case, as the writer rolls back), or, when the signal landed
    just after the commit or the swap, the change in place (and the old
    copy a build had not yet deleted)."""
    if commit_stamp(index) == before:
        return "nothing was changed"
    outcome = f"the change was already made: {index} is at generation {generation_of(index)}"
    old = sorted(index.parent.glob(f"{glob.escape(index.name)}{OLD_SUFFIX}*"))
    if old:
        outcome += f"; delete {old[0]}, the index it replaced"
    return outcome


def _is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(main())
