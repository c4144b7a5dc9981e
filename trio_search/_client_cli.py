"""``trio-search-client``: the tutorial's app-client.py, on Trio.

``search`` and the other actions behave exactly as the tutorial's client:
one request, one ``Got result: ...`` (or ``Got response: b'...'``) line.
``query`` is ours: it prints the ranked hits, one line each (see
:func:`describe_query`), or with ``--json`` the server's JSON answer as is.
"""

from __future__ import annotations

import argparse
import os
import re
import ssl
import sys
import unicodedata
from collections.abc import Sequence

import trio

from . import _codes as codes
from . import _validators as validators
from ._cli_common import (
    DefaultsHelpFormatter,
    OneLineErrorParser,
    fail,
    host_name,
    int_at_most,
    positive_int,
    remote_port_number,
    seconds,
    stdout_gone,
)
from ._client import (
    decode_response_json,
    may_not_speak_tls,
    open_client,
    parse_query_answer,
    query_request,
)
from ._errors import ErrorResponse, ServerResponseError
from ._json import encode_json
from ._message import Message
from ._net import format_address
from ._query import (
    DEFAULT_QUERY_LIMIT,
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    MAX_QUERY_LIMIT,
    MAX_QUERY_OFFSET,
    QueryResult,
    marked_spans,
)

PROG = "trio-search-client"

#: Seconds the whole exchange may take before the client gives up.
DEFAULT_CLIENT_TIMEOUT = 10.0
#: Largest answer accepted, in bytes. Not the library's 1 MiB default: the
#: server sends each answer whole, and an index may hold answers of many
#: megabytes (a query's reply holds each hit's answer twice, with its
#: highlight); the bound is only there so that garbage cannot make the
#: client hold gigabytes.
DEFAULT_MAX_RESPONSE_LENGTH = 256 * 1024 * 1024


# The server's bounds, checked here too: breaking one is a usage error.
_query_limit = int_at_most(MAX_QUERY_LIMIT, validators.positive_int)
_query_offset = int_at_most(MAX_QUERY_OFFSET, validators.non_negative_int)


#: The action answered with ranked hits; every other one as the tutorial's client.
QUERY_ACTION = "query"
#: Actions that take no VALUE: always sent as text/json, VALUE optional.
NO_VALUE_ACTIONS = frozenset({"health", "stats"})
#: Seconds the TLS handshake may take with --tls. A server that does not
#: speak TLS usually neither answers nor closes (the ClientHello reads as
#: the start of a long request), so without a bound of its own the user
#: would wait the whole --timeout for a bare "no answer". Half of a shorter
#: --timeout, so that the handshake's own message is the one shown.
TLS_HANDSHAKE_TIMEOUT = 3.0
#: What the tutorial's server (and ours) starts an error answer with.
ERROR_PREFIX = "Error: "
#: Bold on, and back to normal intensity (ECMA-48 SGR 1 and 22).
BOLD, NORMAL = "\x1b[1m", "\x1b[22m"
#: How a matched word is marked where there is no terminal to make it bold.
PLAIN_MARK = "*"

_HIGHLIGHT = re.compile(f"{re.escape(HIGHLIGHT_START)}(.*?){re.escape(HIGHLIGHT_END)}", re.DOTALL)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultsHelpFormatter):
    """Keeps the description's and epilog's lines (the examples) as written."""


DESCRIPTION = """\
Send one request to a trio_search server (or the tutorial's app-server.py)
and print the answer.

ACTION 'search' and any other ACTION work as the tutorial's app-client.py:
'search' is sent as text/json and prints "Got result: ANSWER"; any other
ACTION is sent as binary ACTION+VALUE (as text/json with --json).
ACTIONs 'stats' and 'health' are always sent as text/json and need no
VALUE; 'health', a load balancer's check, prints "Got result: ok" (exit
status 0) when the server serves.

ACTION 'query' runs a full-text search for VALUE: ranked, typo tolerant,
the last word matching as a prefix. It prints a summary line, then one line
per hit, "RANK. KEY \u2014 ANSWER", with the matched words in bold on a
terminal, or between asterisks (*word*) when the output is not a terminal
or NO_COLOR is set. With --json it prints the server's JSON answer as is."""

EPILOG = """\
examples:
  trio-search-client 127.0.0.1 65432 search morpheus
  trio-search-client 127.0.0.1 65432 query "white rabit"
  trio-search-client 127.0.0.1 65432 query rabbit --limit 5 --offset 5 --fields answer
  trio-search-client 127.0.0.1 65432 stats
  trio-search-client 127.0.0.1 65432 health

Exit status 0 for an answer, 1 when the server is unreachable, answers
garbage, reports an error ("Error: ..." answers included) or is too slow,
2 for a bad option."""


def field_names(text: str) -> list[str]:
    """An argparse type: comma-separated field names, none empty."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"not a comma-separated list of field names: {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "host",
        metavar="HOST",
        type=host_name,
        help="server address or hostname; an IPv6 address with or without brackets",
    )
    parser.add_argument(
        "port", metavar="PORT", type=remote_port_number, help="server port, 1 to 65535"
    )
    parser.add_argument(
        "action", metavar="ACTION", help="'search', 'query', or anything else (see above)"
    )
    parser.add_argument(
        "value",
        metavar="VALUE",
        nargs="?",
        help=(
            "the search key, the query's text, or text to send; "
            f"not needed for {', '.join(sorted(NO_VALUE_ACTIONS))}"
        ),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help=(
            "send ACTION as a text/json request even when it is not 'search', and print "
            "the server's JSON answer as sent (for 'query', instead of the hits)"
        ),
    )
    query = parser.add_argument_group("query options (ACTION 'query' only)")
    query.add_argument(
        "--limit",
        type=_query_limit,
        metavar="N",
        help=f"hits to show, 1 to {MAX_QUERY_LIMIT} (default: {DEFAULT_QUERY_LIMIT})",
    )
    query.add_argument(
        "--offset",
        type=_query_offset,
        metavar="N",
        help=f"hits to skip first, at most {MAX_QUERY_OFFSET:,} (default: 0)",
    )
    query.add_argument(
        "--no-typos",
        dest="typos",
        action="store_false",
        default=None,
        help="match words exactly, without typos",
    )
    query.add_argument(
        "--no-prefix",
        dest="prefix",
        action="store_false",
        default=None,
        help="match the last word whole, not as the start of a longer word",
    )
    query.add_argument(
        "--fields",
        type=field_names,
        metavar="A,B",
        help="search only these fields (default: all)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_CLIENT_TIMEOUT,
        metavar="S",
        help="seconds to connect, send and receive the answer",
    )
    parser.add_argument(
        "--max-response-length",
        type=positive_int,
        default=DEFAULT_MAX_RESPONSE_LENGTH,
        metavar="BYTES",
        help="largest answer accepted, in bytes (an answer holds whole documents)",
    )
    parser.add_argument("--tls", action="store_true", help="connect over TLS")
    parser.add_argument(
        "--cafile",
        metavar="FILE",
        help="PEM file of CA certificates to trust for --tls (default: the system's)",
    )
    return parser


def build_request(action: str, value: str | None, *, as_json: bool = False) -> Message:
    """The tutorial client's request for ``action`` and ``value``; ``value``
    is ``None`` only for the :data:`NO_VALUE_ACTIONS`, sent without one."""
    if value is None:
        return Message(encode_json({"action": action}, "utf-8"))
    if action == "search" or action in NO_VALUE_ACTIONS or as_json:
        return Message(encode_json({"action": action, "value": value}, "utf-8"))
    return Message((action + value).encode("utf-8"), "binary/custom-client-binary-type", "binary")


def query_options_given(args: argparse.Namespace) -> list[str]:
    """The query options on the command line (for a check that ACTION is 'query')."""
    given = {
        "--limit": args.limit is not None,
        "--offset": args.offset is not None,
        "--no-typos": args.typos is not None,
        "--no-prefix": args.prefix is not None,
        "--fields": args.fields is not None,
    }
    return [option for option, present in given.items() if present]


def build_query_request(args: argparse.Namespace) -> Message:
    """The text/json ``query`` request for the command line's VALUE and options."""
    content = query_request(
        args.value,
        limit=DEFAULT_QUERY_LIMIT if args.limit is None else args.limit,
        offset=args.offset or 0,
        typos=args.typos is not False,
        prefix=args.prefix is not False,
        fields=args.fields,
    )
    return Message(encode_json(content, "utf-8"))


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``), so that
    each hit stays on its line and a document cannot drive the terminal."""
    if not any(unicodedata.category(char) == "Cc" for char in text):
        return text
    return "".join(
        repr(char)[1:-1] if unicodedata.category(char) == "Cc" else char for char in text
    )


def render_highlight(highlight: str, *, bold: bool, answer: str | None = None) -> str:
    """A hit's highlight for reading: each ``<em>word</em>`` as the word in
    bold (ANSI escapes, for a terminal) or as ``*word*`` (for anything else).

    Given the hit's ``answer`` too, the marks are found by comparing the
    two (``marked_spans``), so an answer's own ``<em>`` stays text. Control
    characters in the text are escaped (see :func:`printable`).
    """
    start, end = (BOLD, NORMAL) if bold else (PLAIN_MARK, PLAIN_MARK)
    spans = None if answer is None else marked_spans(answer, highlight)
    if answer is None or spans is None:
        return _HIGHLIGHT.sub(lambda match: start + match[1] + end, printable(highlight))
    parts: list[str] = []
    done = 0
    for first, stop in spans:
        parts += [printable(answer[done:first]), start, printable(answer[first:stop]), end]
        done = stop
    parts.append(printable(answer[done:]))
    return "".join(parts)


def summary_line(text: str, result: QueryResult, offset: int) -> str:
    """``N hits for 'text'``, or which of them this page shows."""
    total = result.total
    noun = "hit" if total == 1 else "hits"
    shown = len(result.hits)
    what = f"{total} {noun} for {text!r}"
    if total == 0 or (offset == 0 and shown == total):
        return what
    if shown == 0:
        return f"{what}; none after the first {offset}"
    return f"showing {offset + 1}-{offset + shown} of {what}"


def describe_query(text: str, result: QueryResult, offset: int, *, bold: bool) -> list[str]:
    """The lines printed for a query's answer: the summary, then each hit as
    ``RANK. KEY \u2014 HIGHLIGHTED ANSWER``, ranks counted from 1 across pages."""
    lines = [summary_line(text, result, offset)]
    for rank, hit in enumerate(result.hits, offset + 1):
        answer = render_highlight(hit.highlight, bold=bold, answer=hit.answer)
        lines.append(f"{rank}. {printable(hit.key)} \u2014 {answer}")
    return lines


def use_bold() -> bool:
    """Whether to print highlights in bold: stdout is a terminal and the
    user has not asked for no colour (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def print_query_answer(args: argparse.Namespace, response: Message, where: str) -> int:
    """Print a query's answer (hits, or the raw JSON with --json); return the
    exit status."""
    content = decode_response_json(response)
    if args.json:
        print(response.content.decode(response.content_encoding), flush=True)
        return 1 if isinstance(content, dict) and "error" in content else 0
    try:
        result = parse_query_answer(content)
    except ErrorResponse as exc:
        reason = exc.message.removeprefix("Error: ")
        return fail(PROG, f"{where} refused the query ({exc.code}): {reason}")
    lines = describe_query(args.value, result, args.offset or 0, bold=use_bold())
    print("\n".join(lines), flush=True)
    return 0


def describe_response(response: Message) -> tuple[str, bool]:
    """The line the tutorial's client prints for ``response``, and whether the
    server reported an error in it: an ``"error"`` code, or a result that
    starts with ``Error: `` as the tutorial's server words its errors
    (``{"result": "Error: invalid action 'x'."}``, with no code)."""
    if not response.is_json:
        return f"Got response: {response.content!r}", False
    content = decode_response_json(response)
    result = content.get("result") if isinstance(content, dict) else None
    is_error = isinstance(content, dict) and (
        "error" in content or (isinstance(result, str) and result.startswith(ERROR_PREFIX))
    )
    return f"Got result: {result}", is_error


def connect_error_text(exc: OSError) -> str:
    """Why a connection attempt failed, as the system words it.

    ``trio.open_tcp_stream`` reports "all attempts to connect to ... failed"
    and keeps each address's own error (``Connection refused``, ``Network is
    unreachable``, ...) in a nested exception group: those are what a user
    needs to read.
    """
    reasons: list[str] = []
    nested = getattr(exc.__cause__, "exceptions", None) or [exc]
    for error in nested:
        if isinstance(error, OSError) and error.errno and error.errno > 0:
            reason = os.strerror(error.errno)
        elif isinstance(error, OSError) and error.strerror:
            # socket.gaierror: negative resolver codes, e.g. "Name or service not known".
            reason = error.strerror
        else:
            reason = str(error)
        if reason and reason not in reasons:
            reasons.append(reason)
    return "; ".join(reasons) or type(exc).__name__


async def _exchange(args: argparse.Namespace, context: ssl.SSLContext | None) -> Message:
    if args.action == QUERY_ACTION:
        request = build_query_request(args)
    else:
        request = build_request(args.action, args.value, as_json=args.json)
    async with open_client(
        args.host,
        args.port,
        ssl_context=context,
        handshake_timeout=handshake_timeout(args.timeout),
        max_content_length=args.max_response_length,
    ) as client:
        return await client.request(request)


def handshake_timeout(timeout: float) -> float:
    """Seconds the TLS handshake may take within a ``--timeout`` of ``timeout``."""
    return min(TLS_HANDSHAKE_TIMEOUT, timeout / 2)


def tls_failure_text(exc: trio.BrokenResourceError) -> str:
    """Why a TLS connection failed, with a hint when the server probably
    does not speak TLS at all (anything but a certificate it did send)."""
    cause = exc.__cause__ or exc
    if may_not_speak_tls(cause):
        return f"{cause}; the server may not speak TLS (try without --tls)"
    return str(cause)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one request; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.action != QUERY_ACTION and (misplaced := query_options_given(args)):
        parser.error(f"{misplaced[0]} applies to ACTION 'query' only")
    if args.value is None and args.action not in NO_VALUE_ACTIONS:
        parser.error(f"ACTION {args.action!r} needs a VALUE")
    where = format_address((args.host, args.port))
    context: ssl.SSLContext | None = None
    if args.tls or args.cafile:
        try:
            context = ssl.create_default_context(cafile=args.cafile)
        except (OSError, ssl.SSLError) as exc:
            return fail(PROG, f"cannot load --cafile {args.cafile!r}: {exc}")

    async def run() -> Message | None:
        with trio.move_on_after(args.timeout):
            return await _exchange(args, context)
        return None

    try:
        response = trio.run(run)
    except ServerResponseError as exc:
        reason = exc.message
        if exc.code == codes.CONTENT_TOO_LONG:
            reason += " (raise it with --max-response-length)"
        return fail(PROG, f"bad response from {where}: {reason}")
    except trio.TooSlowError:
        return fail(
            PROG,
            f"no TLS handshake from {where} within {handshake_timeout(args.timeout):g} s; "
            "the server may not speak TLS (try without --tls)",
        )
    except trio.BrokenResourceError as exc:
        reason = tls_failure_text(exc) if context is not None else str(exc.__cause__ or exc)
        return fail(PROG, f"connection to {where} failed: {reason}")
    except OSError as exc:
        return fail(PROG, f"cannot connect to {where}: {connect_error_text(exc)}")
    except KeyboardInterrupt:
        return fail(PROG, "interrupted", 130)
    if response is None:
        return fail(PROG, f"no answer from {where} within {args.timeout:g} s")
    try:
        if args.action == QUERY_ACTION:
            return print_query_answer(args, response, where)
        line, is_error = describe_response(response)
        if args.json and response.is_json:
            # As the server sent it, for jq and scripts: not the tutorial's line.
            line = response.content.decode(response.content_encoding)
        print(line, flush=True)
    except ServerResponseError as exc:
        return fail(PROG, f"bad response from {where}: {exc.message}")
    except BrokenPipeError:  # e.g. | head: the reader has all it wanted
        return stdout_gone()
    return 1 if is_error else 0


if __name__ == "__main__":
    sys.exit(main())
