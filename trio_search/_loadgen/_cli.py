"""``trio-search-bench``: a verifying load generator for the tutorial's protocol."""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import sys
import threading
from collections.abc import Sequence

import trio

from .._cli_common import (
    DefaultsHelpFormatter,
    OneLineErrorParser,
    fail,
    host_name,
    positive_int,
    remote_port_number,
    seconds,
    stdout_gone,
)
from .._limits import DEFAULT_HOST, DEFAULT_PORT
from .._net import format_address
from . import (
    BenchConfig,
    BenchError,
    BenchResult,
    Progress,
    binary_request,
    run_bench,
    search_request,
)

PROG = "trio-search-bench"
#: Seconds a run lasts when neither --duration nor --requests is given.
DEFAULT_DURATION = 10.0
#: Seconds a batch of requests may wait for its answers.
DEFAULT_TIMEOUT = 10.0
#: The search key asked by default: the tutorial's first entry.
DEFAULT_QUERY = "morpheus"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog=PROG,
        description=(
            "Load a trio_search server (or any server of the tutorial's protocol) from "
            "many connections at once and verify every answer. Prints progress on "
            "stderr once a second and ends with requests/s, latency percentiles and "
            "errors by kind."
        ),
        epilog=(
            "Exit status 0 when every request got the right answer, 1 when any failed "
            "(or none was answered), 2 for a bad option. Ctrl-C stops early and "
            "reports what was measured."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument(
        "host",
        nargs="?",
        type=host_name,
        default=DEFAULT_HOST,
        metavar="HOST",
        help="server address or hostname; an IPv6 address with or without brackets",
    )
    parser.add_argument(
        "port",
        nargs="?",
        type=remote_port_number,
        default=DEFAULT_PORT,
        metavar="PORT",
        help="server port, 1 to 65535",
    )
    load = parser.add_argument_group("load")
    load.add_argument(
        "-c",
        "--connections",
        type=positive_int,
        default=16,
        metavar="N",
        help="connections at once (in oneshot mode: requests in flight at once)",
    )
    amount = load.add_mutually_exclusive_group()
    amount.add_argument(
        "-d",
        "--duration",
        type=seconds,
        metavar="S",
        help=f"seconds to run (default {DEFAULT_DURATION:g} unless --requests is given)",
    )
    amount.add_argument(
        "-n", "--requests", type=positive_int, metavar="N", help="send N requests, then stop"
    )
    load.add_argument(
        "--mode",
        choices=("keepalive", "oneshot"),
        default="keepalive",
        help="keepalive: many requests per connection; oneshot: a new connection per "
        "request, as the tutorial's client does",
    )
    load.add_argument(
        "-p",
        "--pipeline",
        type=positive_int,
        default=1,
        metavar="DEPTH",
        help="requests in flight per connection, written in one batch (keepalive only)",
    )
    load.add_argument(
        "--no-retry",
        dest="retry",
        action="store_false",
        help="fail, rather than send again once on a new connection, the requests a "
        "reused keep-alive connection ends before answering (a server closing it as they "
        "arrive: a restart, an idle timeout); retries are reported as 'retried'",
    )
    load.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help="seconds a batch may wait for its answers (oneshot: the whole exchange, "
        "connect included); then they fail as 'timeout'",
    )
    what = parser.add_argument_group("request")
    what.add_argument(
        "-q", "--query", default=DEFAULT_QUERY, metavar="KEY", help="the search key to ask for"
    )
    what.add_argument(
        "--expect",
        metavar="TEXT",
        help="the right answer (default: the built-in index's answer for KEY, or its "
        "'No match' text); with --binary, the whole expected response content",
    )
    what.add_argument(
        "--binary",
        action="store_true",
        help="send KEY as a binary request instead and check the echo of its first bytes",
    )
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls", action="store_true", help="connect over TLS")
    tls.add_argument(
        "--cafile",
        metavar="FILE",
        help="PEM file of CA certificates to trust for --tls (default: the system's)",
    )
    tls.add_argument(
        "--server-hostname",
        metavar="NAME",
        help="name to check the certificate against (default: HOST)",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the result as one JSON object")
    out.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    out.add_argument(
        "--server-pid",
        type=positive_int,
        metavar="PID",
        help="also measure the CPU time of this server process and its descendants "
        "(workers), from /proc (Linux)",
    )
    return parser


def _config(args: argparse.Namespace) -> BenchConfig:
    if args.binary:
        expect = None if args.expect is None else args.expect.encode("utf-8")
        request, checker = binary_request(args.query.encode("utf-8"), expect)
    else:
        request, checker = search_request(args.query, args.expect)
    ssl_context = None
    if args.tls:
        ssl_context = ssl.create_default_context(cafile=args.cafile)
    duration = args.duration
    if duration is None and args.requests is None:
        duration = DEFAULT_DURATION
    return BenchConfig(
        host=args.host,
        port=args.port,
        request=request,
        checker=checker,
        connections=args.connections,
        duration=duration,
        requests=args.requests,
        mode=args.mode,
        pipeline=args.pipeline,
        timeout=args.timeout,
        ssl_context=ssl_context,
        server_hostname=args.server_hostname,
        server_pid=args.server_pid,
        retry=args.retry,
    )


def _print_progress(progress: Progress) -> None:
    print(
        f"{PROG}: {progress.elapsed:6.1f} s  {progress.ok:>10,} ok  "
        f"{progress.rate:>10,.0f} req/s  {progress.errors:,} failed",
        file=sys.stderr,
        flush=True,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.3f} ms"


def format_report(result: BenchResult) -> str:
    """The human-readable summary of a run."""
    config = result.config
    what = f"{config.mode}, {config.connections} connection(s)"
    if config.mode == "keepalive":
        what += f", pipeline {config.pipeline}"
    if config.ssl_context is not None:
        what += ", TLS"
    lines = [
        f"{PROG}: {format_address((config.host, config.port))}, {what}",
        f"  elapsed     {result.elapsed:.2f} s",
        f"  requests    {result.ok:,} right, {result.failed:,} failed, {result.retried:,} retried",
        f"  throughput  {result.requests_per_second:,.0f} requests/s",
        "  latency     "
        + "  ".join(
            f"{name} {_ms(result.percentile(fraction))}"
            for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        )
        + f"  max {_ms(result.latencies[-1] if result.latencies else None)}",
    ]
    errors = ", ".join(f"{kind} {count:,}" for kind, count in result.errors.items() if count)
    lines.append(f"  errors      {errors or 'none'}")
    for kind, detail in result.first_errors.items():
        lines.append(f"    first {kind}: {detail}")
    if result.ok:
        lines.append(f"  bench CPU   {result.client_cpu / result.ok * 1e6:.1f} µs/request")
        if result.server_cpu is not None:
            lines.append(
                f"  server CPU  {result.server_cpu / result.ok * 1e6:.1f} µs/request "
                f"(pid {config.server_pid})"
            )
    return "\n".join(lines)


async def _run(config: BenchConfig, quiet: bool) -> BenchResult:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        if threading.current_thread() is threading.main_thread():

            async def stop_on_signal() -> None:
                with trio.open_signal_receiver(signal.SIGINT) as signals:
                    async for _ in signals:
                        stop.set()
                        return

            nursery.start_soon(stop_on_signal)
        result = await run_bench(config, on_progress=None if quiet else _print_progress, stop=stop)
        nursery.cancel_scope.cancel()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.mode == "oneshot" and args.pipeline != 1:
        parser.error("--pipeline needs --mode keepalive (oneshot sends one request per connection)")
    if args.cafile is not None and not args.tls:
        parser.error("--cafile needs --tls")
    try:
        config = _config(args)
    except (OSError, ssl.SSLError) as exc:
        return fail(PROG, f"cannot load --cafile: {exc}")
    try:
        result = trio.run(_run, config, args.quiet)
    except BenchError as exc:
        return fail(PROG, str(exc))
    try:
        if args.json:
            print(json.dumps(result.to_json(), ensure_ascii=False), flush=True)
        else:
            print(format_report(result), flush=True)
    except BrokenPipeError:
        # `trio-search-bench ... | head`: the reader stopped; no traceback.
        return stdout_gone()
    return 0 if result.ok and not result.failed else 1


if __name__ == "__main__":
    sys.exit(main())
