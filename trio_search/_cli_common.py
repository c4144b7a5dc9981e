"""What the command-line tools share: one-line errors, typed option values,
the options that map a data file's fields."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

from . import _codes as codes
from . import _validators as validators
from ._documents import FORMATS, FieldMapping, format_of_suffix
from ._errors import ConfigurationError
from ._validators import option_type

#: Exit status when the reader of stdout has gone (``| head``): what a shell
#: reports for a program that SIGPIPE ended (128 + 13), as for cat or grep.
BROKEN_PIPE_STATUS = 128 + signal.SIGPIPE


def stdout_gone() -> int:
    """Call on a ``BrokenPipeError`` from writing to stdout: the reader chose
    to stop, which is no error to report. Points stdout at /dev/null, so
    that the interpreter's flush at exit does not fail again with a
    traceback, and returns :data:`BROKEN_PIPE_STATUS`."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    return BROKEN_PIPE_STATUS


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (no
    default, or a flag such as ``--no-retry``, which takes no value)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


def fail(prog: str, message: str, status: int = 1) -> int:
    """Print ``prog: error: message`` to stderr and return ``status``."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    return status


#: argparse types for the options, from the same checks as ServerSettings.
port_number = option_type(validators.port, int)
remote_port_number = option_type(validators.remote_port, int)
positive_int = option_type(validators.positive_int, int)
non_negative_int = option_type(validators.non_negative_int, int)
seconds = option_type(validators.seconds, float)
header_length = option_type(validators.header_length, int)
#: A host to listen on or connect to; ``[::1]`` comes back as ``::1``.
host_name = option_type(validators.host, str)


def int_at_most(most: int, check: Callable[[int], int]) -> Callable[[str], int]:
    """An argparse type: an integer that passes ``check`` and is at most ``most``."""

    def bounded(value: int) -> int:
        check(value)
        if value > most:
            raise ValueError(f"must be at most {most:,}, not {value:,}")
        return value

    return option_type(bounded, int)


#: How ``--csv-delimiter`` may spell a tab, which is awkward to type in a
#: shell (lower-cased first).
_SPELLED_DELIMITERS = {"\\t": "\t", "tab": "\t"}


def csv_delimiter(text: str) -> str:
    """An argparse type: ``--csv-delimiter``, one character or a tab spelled
    ``\\t`` or ``tab``."""
    value = _SPELLED_DELIMITERS.get(text.lower(), text)
    if len(value) != 1:
        raise argparse.ArgumentTypeError(
            f"must be one character (a tab is written \\t or tab), not {text!r}"
        )
    try:
        return validators.csv_delimiter(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_field_mapping_options(
    group: argparse._ArgumentGroup, *, defaults: tuple[str, str, str] | None = None
) -> None:
    """``--format``, ``--csv-delimiter``, ``--key-field``, ``--answer-field``,
    ``--search-fields``: how to read a data file's records (see
    :func:`field_mapping`, :func:`csv_delimiter_conflict`).

    ``defaults`` is what the help says each of the last three defaults to;
    ``None`` for :class:`FieldMapping`'s own defaults.
    """
    key, answer, search = defaults or ("key", "answer", "every string field")
    group.add_argument(
        "--format",
        choices=FORMATS,
        help=(
            "the data file's format (default: from its suffix: .json, .jsonl/.ndjson, "
            ".csv, and .tsv: CSV separated by tabs)"
        ),
    )
    group.add_argument(
        "--csv-delimiter",
        type=csv_delimiter,
        metavar="CHAR",
        help=(
            "the character separating a CSV file's cells, such as ';' (spreadsheets in "
            "languages whose decimal mark is a comma) or a tab, written \\t or tab "
            "(default: a comma; a tab for a .tsv file)"
        ),
    )
    group.add_argument(
        "--key-field",
        metavar="NAME",
        help=f"the record field holding each document's unique key (default: {key})",
    )
    group.add_argument(
        "--answer-field",
        metavar="NAME",
        help=f"the record field holding the answer a hit returns (default: {answer})",
    )
    group.add_argument(
        "--search-fields",
        metavar="A,B,...",
        help=f"the fields whose text is searchable (default: {search})",
    )


#: Help of ``--field-queries``, on every command that indexes a data file.
FIELD_QUERIES_HELP = (
    "also index each field's words on their own, so that a query's 'fields' may "
    "search some fields only (without it, 'fields' must name them all); "
    "indexing takes about twice as long"
)


def has_field_mapping_options(args: argparse.Namespace) -> bool:
    """Whether any option of :func:`add_field_mapping_options` was given."""
    return any(
        getattr(args, name) is not None
        for name in ("format", "csv_delimiter", "key_field", "answer_field", "search_fields")
    )


def csv_delimiter_conflict(args: argparse.Namespace, data: str) -> str | None:
    """Why ``--csv-delimiter`` cannot apply to the data file ``data`` (it
    is read in another format, by ``--format`` or its suffix), or ``None``.
    An unknown suffix is left to the reader, which asks for ``--format``."""
    if args.csv_delimiter is None:
        return None
    format = args.format or format_of_suffix(data)
    if format is None or format == "csv":
        return None
    if args.format is not None:
        return f"--csv-delimiter applies to CSV files only, not to --format {format}"
    return (
        f"--csv-delimiter applies to CSV files only, and {data} is {format} by its suffix: "
        "give --format csv to read it as CSV"
    )


def field_mapping(args: argparse.Namespace, default: FieldMapping | None = None) -> FieldMapping:
    """The :class:`FieldMapping` the options ask for; options not given keep
    ``default``'s values.

    Raises:
        ConfigurationError: a field name is not usable.
    """
    default = default or FieldMapping()
    search_fields: tuple[str, ...] | None = default.search_fields
    if args.search_fields is not None:
        search_fields = tuple(name.strip() for name in args.search_fields.split(","))
    try:
        return FieldMapping(
            key_field=args.key_field if args.key_field is not None else default.key_field,
            answer_field=(
                args.answer_field if args.answer_field is not None else default.answer_field
            ),
            search_fields=search_fields,
        )
    except ValueError as exc:
        raise ConfigurationError(_as_options(str(exc)), code=codes.BAD_OPTION) from exc


#: :class:`FieldMapping`'s attribute names in its errors, as the options
#: that set them (the longest first: one is a prefix of another).
_OPTION_NAMES = (
    ("each of search_fields", "each of --search-fields"),
    ("search_fields", "--search-fields"),
    ("key_field", "--key-field"),
    ("answer_field", "--answer-field"),
)


def _as_options(message: str) -> str:
    """A :class:`FieldMapping` error as the command line's user reads it."""
    for attribute, option in _OPTION_NAMES:
        if message.startswith(attribute):
            return option + message[len(attribute) :]
    return message
