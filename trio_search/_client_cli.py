"""``trio-search-client``: the tutorial's app-client.py, on Trio."""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from collections.abc import Sequence

import trio

from ._cli_common import DefaultsHelpFormatter, OneLineErrorParser, fail, port_number, seconds
from ._client import decode_response_json, open_client
from ._errors import ServerResponseError
from ._json import encode_json
from ._message import Message
from ._net import format_address

PROG = "trio-search-client"
#: Seconds the whole exchange may take before the client gives up.
DEFAULT_CLIENT_TIMEOUT = 10.0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog=PROG,
        description=(
            "Send one request to a trio_search server (or the tutorial's app-server.py) "
            "and print the answer as the tutorial's app-client.py does: 'search' is "
            "sent as text/json, any other ACTION as binary ACTION+VALUE."
        ),
        epilog=(
            "Exit status 0 for an answer, 1 when the server is unreachable, answers "
            "garbage, reports an error or is too slow, 2 for a bad option."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("host", metavar="HOST", help="server address or hostname")
    parser.add_argument("port", metavar="PORT", type=port_number, help="server port")
    parser.add_argument("action", metavar="ACTION", help="'search', or anything else")
    parser.add_argument("value", metavar="VALUE", help="the search key, or text to send")
    parser.add_argument(
        "--json",
        action="store_true",
        help="send ACTION as a text/json request even when it is not 'search' (e.g. stats)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_CLIENT_TIMEOUT,
        metavar="S",
        help="seconds to connect, send and receive the answer",
    )
    parser.add_argument("--tls", action="store_true", help="connect over TLS")
    parser.add_argument(
        "--cafile",
        metavar="FILE",
        help="PEM file of CA certificates to trust for --tls (default: the system's)",
    )
    return parser


def build_request(action: str, value: str, *, as_json: bool = False) -> Message:
    """The tutorial client's request for ``action`` and ``value``."""
    if action == "search" or as_json:
        return Message(encode_json({"action": action, "value": value}, "utf-8"))
    return Message((action + value).encode("utf-8"), "binary/custom-client-binary-type", "binary")


def describe_response(response: Message) -> tuple[str, bool]:
    """The line the tutorial's client prints for ``response``, and whether the
    server reported an error in it."""
    if not response.is_json:
        return f"Got response: {response.content!r}", False
    content = decode_response_json(response)
    result = content.get("result") if isinstance(content, dict) else None
    is_error = isinstance(content, dict) and "error" in content
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
    request = build_request(args.action, args.value, as_json=args.json)
    async with open_client(args.host, args.port, ssl_context=context) as client:
        return await client.request(request)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one request; return the process exit status."""
    args = build_parser().parse_args(argv)
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
        return fail(PROG, f"bad response from {where}: {exc.message}")
    except trio.BrokenResourceError as exc:
        cause = exc.__cause__ or exc
        return fail(PROG, f"connection to {where} failed: {cause}")
    except OSError as exc:
        return fail(PROG, f"cannot connect to {where}: {connect_error_text(exc)}")
    except KeyboardInterrupt:
        return fail(PROG, "interrupted", 130)
    if response is None:
        return fail(PROG, f"no answer from {where} within {args.timeout:g} s")
    try:
        line, is_error = describe_response(response)
    except ServerResponseError as exc:
        return fail(PROG, f"bad response from {where}: {exc.message}")
    print(line, flush=True)
    return 1 if is_error else 0


if __name__ == "__main__":
    sys.exit(main())
