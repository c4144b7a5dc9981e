"""``trio-search-server``: run the search service from the command line."""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import os
import resource
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import trio

from . import _validators as validators
from ._cli_common import (
    FIELD_QUERIES_HELP,
    DefaultsHelpFormatter,
    OneLineErrorParser,
    add_field_mapping_options,
    csv_delimiter_conflict,
    fail,
    field_mapping,
    has_field_mapping_options,
    header_length,
    host_name,
    int_at_most,
    non_negative_int,
    port_number,
    positive_int,
    seconds,
)
from ._engine import SearchIndex
from ._errors import ConfigurationError
from ._http_metrics import open_metrics_listeners, parse_metrics_address, serve_metrics
from ._index import (
    BUILTIN_INDEX,
    builtin_search_index,
    check_data_file,
    index_of_file,
    index_of_mapping,
)
from ._index_meta import read_meta
from ._limits import (
    DEFAULT_HOST,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONTENT_LENGTH,
    DEFAULT_MAX_HEADER_LENGTH,
    DEFAULT_PORT,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_TRUSTED_PROXIES,
    MAX_ENCODABLE_HEADER_LENGTH,
)
from ._log import logger
from ._memory import return_freed_memory
from ._metrics import Metrics
from ._metrics_aggregate import SNAPSHOT_INTERVAL, totals, write_snapshots
from ._net import format_address
from ._ranking_cache import RANKING_CACHE_HITS
from ._server import SearchServer, load_and_read
from ._settings import ServerSettings
from ._trusted_proxies import TrustedProxies
from ._workers import MAX_WORKERS, WorkerStartupError, supervise, watch_supervisor

PROG = "trio-search-server"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: File descriptors needed beyond --max-connections, for the listeners, the
#: sockets answered "busy", log files and Trio's own wake-up descriptors.
OPEN_FILES_MARGIN = 64


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog=PROG,
        description=(
            "Serve the Real Python socket tutorial's search protocol (2-byte length "
            "prefix, JSON header, content) to many clients at once, on Trio: exact "
            "'search' by key and ranked, typo-tolerant full-text 'query'. Without "
            "--data or --index it answers from the tutorial's three entries."
        ),
        epilog=(
            "SIGINT (Ctrl-C) or SIGTERM shuts down gracefully: no new connections, "
            "idle ones closed, requests in progress given --shutdown-grace seconds; "
            "a second signal stops at once; during start-up (while --data is "
            "indexed) either one stops before serving. SIGHUP reloads --data or --index "
            "(requests in flight finish on the old data; if loading fails the old "
            "data stays; one sent while the server starts reloads once it runs); "
            "what 'trio-search-index add/delete' commits to --index is searched "
            "within a second without it. Exit status 0 after a shutdown, "
            "1 when the server cannot start, 2 for a bad option. "
            "Examples: trio-search-server --data books.jsonl --key-field isbn "
            "--answer-field title; trio-search-server --index ./books.idx --workers 2"
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    net = parser.add_argument_group("address")
    net.add_argument(
        "--host",
        type=host_name,
        default=DEFAULT_HOST,
        help=(
            "IPv4/IPv6 address or hostname to listen on, an IPv6 address with or without "
            "brackets (::1 or [::1]); '' listens on every interface"
        ),
    )
    net.add_argument("--port", type=port_number, default=DEFAULT_PORT, help="TCP port; 0 picks one")
    data = parser.add_argument_group("data")
    source = data.add_mutually_exclusive_group()
    source.add_argument(
        "--data",
        metavar="FILE",
        help=(
            "data file indexed in memory at start-up: a JSON object of key -> answer, "
            "a JSON array of records, JSON Lines, or CSV with a header row "
            "(default: the tutorial's three entries)"
        ),
    )
    source.add_argument(
        "--index",
        metavar="DIR",
        help="serve the on-disk index that 'trio-search-index build' made in DIR",
    )
    add_field_mapping_options(data)
    data.add_argument("--field-queries", action="store_true", help=FIELD_QUERIES_HELP)
    data.add_argument(
        "--query-cache-hits",
        type=non_negative_int,
        default=RANKING_CACHE_HITS,
        metavar="N",
        help=(
            "hits (a document's address and score, about 100 bytes) of costly queries' "
            "rankings kept for the next time they are asked: queries of words in many "
            "documents, or needing typos or completions. When it is full, those that "
            "were cheapest to compute go first. Emptied whenever the data changes; "
            "0 turns the cache off"
        ),
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--max-content-length",
        type=non_negative_int,
        default=DEFAULT_MAX_CONTENT_LENGTH,
        metavar="BYTES",
        help="largest request content accepted, in bytes",
    )
    limits.add_argument(
        "--max-header-length",
        type=header_length,
        default=DEFAULT_MAX_HEADER_LENGTH,
        metavar="BYTES",
        help=f"largest JSON header accepted, in bytes (at most {MAX_ENCODABLE_HEADER_LENGTH})",
    )
    limits.add_argument(
        "--max-connections",
        type=positive_int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help=(
            "connections served at once, per worker process with --workers; at the limit "
            "the connection idle the longest is closed to make room, and only when none "
            "is idle is a new one answered 'server busy'"
        ),
    )
    limits.add_argument(
        "--max-buffered-bytes",
        type=positive_int,
        default=DEFAULT_MAX_BUFFERED_BYTES,
        metavar="BYTES",
        help=(
            "request bytes all connections together may hold, per worker process with "
            "--workers; past it, requests in progress are read no further until others "
            "free room (their clients' sends block), under the request timeout"
        ),
    )
    limits.add_argument(
        "--max-connections-per-ip",
        type=positive_int,
        metavar="N",
        help=(
            "connections from one client address at once, per worker process with "
            "--workers; more are answered 'server busy' (default: no per-address limit, "
            "so that a load test from one host works; set it when clients are many hosts)"
        ),
    )
    limits.add_argument(
        "--idle-timeout",
        type=seconds,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="S",
        help="seconds a connection may wait for its next request before it is closed",
    )
    limits.add_argument(
        "--request-timeout",
        type=seconds,
        default=DEFAULT_REQUEST_TIMEOUT,
        metavar="S",
        help=(
            "seconds from a request's first byte to its last, and for a client to "
            "take its response; also bounds the TLS handshake"
        ),
    )
    limits.add_argument(
        "--shutdown-grace",
        type=seconds,
        default=DEFAULT_SHUTDOWN_GRACE,
        metavar="S",
        help="seconds requests in progress get to finish after SIGINT/SIGTERM",
    )
    procs = parser.add_argument_group("processes")
    procs.add_argument(
        "--workers",
        type=int_at_most(MAX_WORKERS, validators.positive_int),
        default=1,
        metavar="N",
        help=(
            f"server processes sharing the port (SO_REUSEPORT), at most {MAX_WORKERS}, "
            "supervised by this one: a worker that dies is restarted; 1 serves in this process"
        ),
    )
    # Internal: run as worker K of a --workers supervisor, which learns that
    # the worker listens when it writes to this file descriptor.
    procs.add_argument("--worker", type=positive_int, help=argparse.SUPPRESS)
    procs.add_argument("--ready-fd", type=non_negative_int, help=argparse.SUPPRESS)
    proxy = parser.add_argument_group("behind a load balancer")
    proxy.add_argument(
        "--proxy-protocol",
        action="store_true",
        help=(
            "every connection starts with a PROXY protocol header, v1 or v2 (HAProxy "
            "send-proxy / send-proxy-v2, nginx proxy_protocol): logs, stats and metrics "
            "show the client's address it carries. A connection from an address not in "
            "--trusted-proxies, or with a bad header, is closed"
        ),
    )
    proxy.add_argument(
        "--trusted-proxies",
        metavar="CIDR,...",
        default=DEFAULT_TRUSTED_PROXIES,
        type=_trusted_proxies,
        help="the balancers allowed to send the PROXY header",
    )
    proxy.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        type=_metrics_address,
        help=(
            "serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9100, "
            "[::1]:9100); with --workers, one scrape gives the totals of all workers"
        ),
    )
    # Internal: where a --workers supervisor collects its workers' counters.
    proxy.add_argument("--metrics-dir", help=argparse.SUPPRESS)
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain: serve over TLS")
    tls.add_argument("--tls-key", metavar="FILE", help="PEM private key for --tls-cert")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        help="least severe log messages shown (on stderr)",
    )
    return parser


#: Options of the supervisor itself, or that it sets per worker: not passed on.
_SUPERVISOR_OPTIONS = frozenset({"port", "workers", "worker", "ready_fd", "metrics", "metrics_dir"})


def worker_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The options of ``args`` that a worker needs, each once, rebuilt from
    what was parsed (so abbreviations and repeats in the command line make
    no difference)."""
    options: list[str] = []
    for action in parser._actions:
        if not action.option_strings or action.dest in _SUPERVISOR_OPTIONS:
            continue
        value = getattr(args, action.dest, None)
        if value is None or value == action.default or action.dest == "help":
            continue
        option = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            options.append(option)
        else:
            options += [option, str(value)]
    return options


def _metrics_address(text: str) -> tuple[str, int]:
    """An argparse type: ``--metrics HOST:PORT``."""
    try:
        return parse_metrics_address(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _trusted_proxies(text: str) -> str:
    """An argparse type: ``--trusted-proxies CIDR,...``, checked here (so a
    bad one is a usage error, exit status 2) and kept as given."""
    try:
        TrustedProxies.parse(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(exc.message.removeprefix("--trusted-proxies: ")) from None
    return text


def _tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigurationError("--tls-cert and --tls-key must be given together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except OSError as exc:
        # Which file: open() names it, the ssl module does not.
        for name, path in (("--tls-cert", cert), ("--tls-key", key)):
            if not os.path.isfile(path):
                reason = "no such file" if not os.path.exists(path) else "not a file"
                raise ConfigurationError(f"{name} {path}: {reason}") from exc
        raise ConfigurationError(
            f"cannot load the TLS certificate {cert} with the key {key}: {exc}"
        ) from exc
    return context


async def _watch_signals(
    signals: AsyncIterator[int],
    server: SearchServer,
    everything: trio.CancelScope,
    request_reload: Callable[[], None],
) -> None:
    async for signum in signals:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            logger.info("SIGHUP received: reloading the data")
            request_reload()
            continue
        if server.shutting_down:
            logger.warning("%s again: stopping now", name)
            everything.cancel()
            return
        logger.info("%s received: shutting down gracefully", name)
        server.shutdown()


#: Data files from this many bytes up get a log line as their indexing
#: begins: about 0.1 s of work (some 10,000 documents), under which the
#: line that ends it says enough, and a bad small file stays a one-line error.
ANNOUNCED_DATA_BYTES = 1024 * 1024


def _data_loader(args: argparse.Namespace) -> Callable[[], SearchIndex]:
    """What loads the data the options name, at start-up and on SIGHUP.

    Raises:
        ConfigurationError: a field name is not usable, or --index names no
            index (checked at once, before any worker starts).
    """
    cache_hits = args.query_cache_hits
    if args.index is not None:
        directory = args.index
        read_meta(Path(directory))

        def open_index() -> SearchIndex:
            index = SearchIndex.open(directory, ranking_cache_hits=cache_hits)
            logger.info(
                "serving index %s: %d documents, generation %d",
                directory,
                index.documents,
                index.generation,
            )
            return index

        return open_index
    if args.data is not None:
        mapping = field_mapping(args)
        path, data_format, field_queries = args.data, args.format, args.field_queries
        delimiter = args.csv_delimiter

        def index_data() -> SearchIndex:
            # Indexing a large file takes a while: say it has begun.
            try:
                size = os.stat(path).st_size
            except OSError:
                size = 0  # index_of_file() says what is wrong, in one line
            if size >= ANNOUNCED_DATA_BYTES:
                logger.info("indexing %s (%.1f MiB)", path, size / 2**20)
            return index_of_file(
                path,
                mapping,
                format=data_format,
                csv_delimiter=delimiter,
                field_queries=field_queries,
                ranking_cache_hits=cache_hits,
            )

        return index_data
    if cache_hits != RANKING_CACHE_HITS:
        return lambda: index_of_mapping(BUILTIN_INDEX, ranking_cache_hits=cache_hits)
    return builtin_search_index


#: Allocations (less deallocations) between two collections of the
#: youngest generation, for a server (Python's default: 700). A full
#: collection comes after every ten of the next generation's, and walks
#: every live container: 40-75 ms on a million documents under load, during
#: which no connection is served. At 500 queries/s of the million's mixed
#: list, one process, runs of 10 s interleaved: a full collection in every
#: run with the default, in none with this; p99 15.5-32 ms in 6 runs against
#: 9.6-15.6 ms in 8. (Since then the dictionary's sets and the query cache's
#: rankings are out of the collector's sight, and a full collection after
#: 20,000 of those queries takes 4-5 ms: still a stall worth making rare.)
GC_YOUNG_THRESHOLD = 10_000


def _tune_garbage_collection() -> None:
    """Collect what loading left, then collect less often (see
    :data:`GC_YOUNG_THRESHOLD`): what a long-running server wants, and what
    this process is."""
    gc.collect()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _raise_open_files_limit(max_connections: int) -> None:
    """Raise the soft RLIMIT_NOFILE towards the hard one when it is too low
    for ``max_connections``, as an operator would expect."""
    needed = max_connections + OPEN_FILES_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else hard
    if target <= soft:
        # The hard limit is the soft one already: nothing to raise.
        target = soft
    else:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the open-files limit from %d: %s", soft, exc)
            target = soft
        else:
            logger.info(
                "raised the open-files limit (RLIMIT_NOFILE) from %d to %d for "
                "--max-connections %d",
                soft,
                target,
                max_connections,
            )
    if target < needed:
        logger.warning(
            "open-files limit %d is below --max-connections %d + %d: accepting "
            "slows down (EMFILE) before the connection limit is reached",
            target,
            max_connections,
            OPEN_FILES_MARGIN,
        )


def _log_metrics_addresses(addresses: list[tuple[str, int]]) -> None:
    for address in addresses:
        logger.info("serving metrics at http://%s/metrics", format_address(address))


def _announce(addresses: list[tuple[str, int]]) -> None:
    for address in addresses:
        print(f"{PROG} listening on {format_address(address)}", flush=True)


class _StartupHangups:
    """SIGHUPs that arrive before the server runs (while ``--data`` is
    being indexed, say): not the default action, which would kill the
    process, and not ignored either, since the file may have changed after
    it was read: noted, for one reload once the server runs."""

    def __init__(self) -> None:
        self.seen = False

    def note(self, signum: int, frame: object) -> None:
        self.seen = True


class _StartupSignal(BaseException):
    """SIGINT or SIGTERM before the server runs (while ``--data`` is being
    indexed, say): raised where the program is, as Ctrl-C's
    KeyboardInterrupt is, to stop before serving."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_startup_signal(signum: int, frame: object) -> NoReturn:
    raise _StartupSignal(signum)


#: The signals that stop the server, before it runs as once it does.
_STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: Signal number -> the handler it had before start-up.
_Handlers = dict[int, Any]


def _stop_on_signals_during_startup() -> _Handlers:
    """Until :func:`_signals_to_trio`, SIGINT and SIGTERM stop the start-up
    with a log line (SIGTERM's default action would kill the process
    silently). Returns the handlers they had (none off the main thread,
    where signals are not ours to handle)."""
    try:
        return {
            signum: signal.signal(signum, _raise_startup_signal) for signum in _STOPPING_SIGNALS
        }
    except ValueError:
        return {}


def _signals_to_trio(previous: _Handlers) -> None:
    """Put SIGINT's and SIGTERM's handlers back, for trio.run (whose signal
    receivers take them from there). Idempotent."""
    for signum, handler in previous.items():
        if handler is not None:  # None: set outside Python, cannot be put back
            signal.signal(signum, handler)


class _Reloads:
    """Reload requests (SIGHUP), coalesced: any made during a reload lead to
    one more reload after it, however many they are."""

    def __init__(self) -> None:
        self._pending = trio.Event()

    def request(self) -> None:
        self._pending.set()

    async def serve(self, server: SearchServer) -> None:
        """Reload ``server``'s data on each request, until cancelled."""
        while True:
            await self._pending.wait()
            self._pending = trio.Event()
            await server.reload_index()


async def _follow_all_workers(server: SearchServer, directory: str) -> None:
    """In a worker: keep the totals of every worker, for ``stats``."""
    while True:
        server.all_workers = await trio.to_thread.run_sync(totals, directory)
        await trio.sleep(SNAPSHOT_INTERVAL)


async def _run(
    server: SearchServer,
    supervised: bool = False,
    metrics_address: tuple[str, int] | None = None,
    metrics_dir: str | None = None,
    ready_fd: int | None = None,
    startup_hangups: _StartupHangups | None = None,
) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        # Bound here, outside any nursery, so "address in use" arrives as a
        # plain OSError rather than inside an exception group.
        listeners = await server.open_listeners()
        metrics_listeners = (
            await open_metrics_listeners(*metrics_address, server.settings.port)
            if metrics_address
            else []
        )
        async with trio.open_nursery() as nursery:
            if metrics_listeners:
                where = await nursery.start(
                    serve_metrics, metrics_listeners, server.metrics_exposition
                )
                _log_metrics_addresses(where)
            if metrics_dir is not None and server.metrics is not None:
                metrics = server.metrics

                def snapshot() -> dict[str, Any]:
                    server.update_index_metrics()
                    return metrics.snapshot()

                await nursery.start(
                    functools.partial(write_snapshots, metrics_dir, snapshot, worker="worker")
                )
                nursery.start_soon(_follow_all_workers, server, metrics_dir)

            async def serve_then_stop(task_status: trio.TaskStatus[list[tuple[str, int]]]) -> None:
                await server.serve(listeners, task_status=task_status)
                nursery.cancel_scope.cancel()

            await nursery.start(serve_then_stop)
            _announce(server.addresses)
            if ready_fd is not None:
                os.write(ready_fd, b"listening\n")
                os.close(ready_fd)
            reloads = _Reloads()
            nursery.start_soon(reloads.serve, server)
            # Read once the signal receiver took over: no SIGHUP falls between.
            if startup_hangups is not None and startup_hangups.seen:
                logger.info("SIGHUP received during start-up: reloading the data")
                reloads.request()
            nursery.start_soon(
                _watch_signals, signals, server, nursery.cancel_scope, reloads.request
            )
            if supervised:
                nursery.start_soon(watch_supervisor, server.shutdown)


#: Hosts that mean every interface, and so take a port on all of them.
_EVERY_INTERFACE = ("", "0.0.0.0", "::")


def _same_port(metrics: tuple[str, int], search: tuple[str, int]) -> bool:
    """Whether the metrics' address would take the search port: the same
    port (not 0, which picks a free one), on the same host or on every
    interface."""
    (metrics_host, metrics_port), (search_host, search_port) = metrics, search
    if metrics_port == 0 or metrics_port != search_port:
        return False
    return (
        metrics_host == search_host
        or metrics_host in _EVERY_INTERFACE
        or search_host in _EVERY_INTERFACE
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server; return the process exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key must be given together")
    if args.metrics is not None and _same_port(args.metrics, (args.host, args.port)):
        parser.error(
            f"--metrics and --port both name port {args.port}: the metrics need a port of their own"
        )
    if (has_field_mapping_options(args) or args.field_queries) and args.data is None:
        parser.error(
            "--format, --csv-delimiter, --key-field, --answer-field, --search-fields and "
            "--field-queries apply to --data (an --index keeps the ones it was built with)"
        )
    if args.data is not None and (conflict := csv_delimiter_conflict(args, args.data)):
        parser.error(conflict)
    worker_tag = "" if args.worker is None else f"[worker {args.worker}]"
    logging.basicConfig(
        level=args.log_level,
        format=f"%(asctime)s %(levelname)s %(name)s{worker_tag}: %(message)s",
        stream=sys.stderr,
    )
    return_freed_memory()
    # A SIGHUP before the server runs must not kill it (the default
    # action); it is answered with a reload once the server runs.
    startup_hangups = _StartupHangups()
    signal.signal(signal.SIGHUP, startup_hangups.note)
    previous = _stop_on_signals_during_startup()
    try:
        return _start(parser, args, startup_hangups, previous)
    except _StartupSignal as exc:
        name = signal.Signals(exc.signum).name
        logger.info("%s received during start-up: stopped before serving", name)
        return 0
    finally:
        _signals_to_trio(previous)


def _start(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    startup_hangups: _StartupHangups,
    handlers: _Handlers,
) -> int:
    """Load the data and run the server (or its workers) until it stops;
    return the exit status."""
    try:
        loader = _data_loader(args)
        settings = ServerSettings(
            host=args.host,
            port=args.port,
            max_header_length=args.max_header_length,
            max_content_length=args.max_content_length,
            idle_timeout=args.idle_timeout,
            request_timeout=args.request_timeout,
            max_connections=args.max_connections,
            max_connections_per_ip=args.max_connections_per_ip,
            max_buffered_bytes=args.max_buffered_bytes,
            shutdown_grace=args.shutdown_grace,
            ssl_context=_tls_context(args.tls_cert, args.tls_key),
            proxy_protocol=args.proxy_protocol,
            trusted_proxies=TrustedProxies.parse(args.trusted_proxies),
            reuse_port=args.worker is not None,
        )
    except ConfigurationError as exc:
        return fail(PROG, exc.message)
    try:
        if args.workers > 1:
            if args.data is not None:
                # Each worker indexes the file; a bad one is better said once, here.
                check_data_file(
                    args.data,
                    field_mapping(args),
                    format=args.format,
                    csv_delimiter=args.csv_delimiter,
                )
            _signals_to_trio(handlers)
            trio.run(
                functools.partial(
                    supervise,
                    worker_options(parser, args),
                    args.workers,
                    settings.host or None,
                    settings.port,
                    _announce,
                    args.metrics,
                )
            )
        else:
            _raise_open_files_limit(settings.max_connections)
            try:
                index = load_and_read(loader)
            except ConfigurationError as exc:
                return fail(PROG, exc.message)
            _tune_garbage_collection()
            # A worker counts for its supervisor; the supervisor serves /metrics.
            wants_metrics = args.metrics is not None or args.metrics_dir is not None
            server = SearchServer(
                settings, index, loader=loader, metrics=Metrics() if wants_metrics else None
            )
            _signals_to_trio(handlers)
            trio.run(
                _run,
                server,
                args.worker is not None,
                args.metrics if args.worker is None else None,
                args.metrics_dir,
                args.ready_fd,
                startup_hangups,
            )
    except OSError as exc:
        where = format_address((args.host or "*", args.port))
        return fail(PROG, f"cannot listen on {where}: {exc.strerror or exc}")
    except (WorkerStartupError, ConfigurationError) as exc:
        return fail(PROG, exc.message)
    except KeyboardInterrupt:
        # Ctrl-C before the signal handlers were installed.
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
