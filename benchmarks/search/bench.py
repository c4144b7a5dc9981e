"""The search benchmark (issue 7, item 8): trio_search against SQLite FTS5.

For each corpus (corpora.py: the standard library's docstrings, and N
generated documents) it:

1. writes the corpus and its query lists (queries.py), cached;
2. builds both indexes from the JSON Lines file, each timed as a
   subprocess (``trio-search-index build`` and the FTS5 peer's ``--build``):
   documents/s, size on disk, peak RSS;
3. runs every query list in this process on both engines (engines.py): CPU
   time per query, the floor a server adds its own cost to; and the typo
   recall of each engine;
4. starts both servers on their built indexes and drives them in turn,
   cell by cell, with loadgen.py, for exact-key ``search`` requests and each
   query type, at 1 and 64 kept-alive connections (closed loop): queries/s, latency, server CPU per
   query (its process tree, from /proc). A sample of each run's replies is
   checked against the same engine in this process. On the generated corpus,
   also the open-loop run: a fixed rate of mixed queries over 64 connections;
5. writes a "Search" section into benchmarks/RESULTS.md (between marker
   comments, the rest of the file untouched) and the raw figures to
   benchmarks/search_results.json, with each target's ratio.

Servers and the build run with this checkout first on PYTHONPATH, so the
code measured is the code beside this file. After each run the benchmark
waits for the server's CPU to go idle, so work left over from one run (a
slow query still running) is not billed to the next.

Usage: python benchmarks/search/bench.py [--quick] (see --help); ``nox -s
bench`` runs it after benchmarks/run.py. Linux only (it reads /proc).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import corpora
import engines
import queries
import report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PEER = HERE.parent / "peers" / "sqlite_fts5.py"
LOADGEN = HERE / "loadgen.py"
HOST = "127.0.0.1"
#: Seconds a server gets to start listening (indexing a large --data file included).
START_TIMEOUT = 600.0
#: Seconds a server gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: A server is idle when it used less than this much CPU (seconds) in
#: SETTLE_INTERVAL seconds; the benchmark waits at most SETTLE_TIMEOUT.
SETTLE_CPU = 0.01
SETTLE_INTERVAL = 0.25
SETTLE_TIMEOUT = 10.0
#: CPU seconds the typo recall may spend per engine (FTS5 takes seconds for a
#: frequent word on a large corpus).
RECALL_BUDGET = 30.0
#: Replies kept per run and checked against the engine in this process.
CHECKED_REPLIES = 100
#: Connections of the closed-loop runs.
CONNECTIONS = (1, 64)
#: Connections of the open-loop run.
OPEN_LOOP_CONNECTIONS = 64
#: Seconds the open loop waits for replies still due after its schedule.
OPEN_LOOP_DRAIN = 15.0
#: The open loop's query list is this much longer than it sends, so that
#: no request is sent twice.
OPEN_LOOP_LIST_MARGIN = 1.1
#: The closed-loop cells and the in-process floor run with trio_search's
#: query cache off: each cell replays its list from the start on the same
#: server, so a cache would answer the second cell from the first. The open
#: loop, which sends a list once, measures the server both ways.
NO_QUERY_CACHE = ["--query-cache-hits", "0"]
TRIO_NO_CACHE = "trio_search, query cache off"
#: The open loop also runs trio_search with this many worker processes.
OPEN_LOOP_WORKERS = 2
#: The workloads: exact-key lookups, then each query type.
WORKLOADS = ("search", *queries.QUERY_TYPES)

#: How the benchmark starts trio_search on an index directory.
TRIO_SERVER = [sys.executable, "-m", "trio_search._server_cli", "--log-level", "WARNING"]
#: How it builds trio_search's index (``trio-search-index build DATA --index DIR``).
TRIO_BUILD = [sys.executable, "-m", "trio_search._index_cli", "build"]
#: Until that command exists: index the file in memory as ``--data`` does
#: (the same reader and engine, no files written), timed the same way.
TRIO_BUILD_IN_MEMORY = [
    sys.executable,
    "-c",
    "import sys; from trio_search._index import index_of_file; index_of_file(sys.argv[1])",
]


def has_index_command() -> bool:
    """Whether this checkout has ``trio-search-index`` (else the server is
    given the corpus with ``--data`` and indexes it in memory)."""
    return (ROOT / "trio_search" / "_index_cli.py").exists()


#: Settings of a full run and of ``--quick``.
FULL = {
    "docs": 1_000_000,
    "queries": 5_000,
    "keys": 20_000,
    "duration": 4.0,
    "warmup": 1.0,
    "floor_budget": 4.0,
    "recall_sample": 300,
    "open_duration": 30.0,
    "open_warmup": 2.0,
    "rate": 1000.0,
    # CPU seconds for the engine alone over the open-loop list: all of it.
    "open_floor_budget": 60.0,
}
QUICK = {
    **FULL,
    "docs": 100_000,
    "queries": 1_500,
    "keys": 5_000,
    "duration": 2.0,
    "warmup": 0.5,
    "floor_budget": 1.5,
    "recall_sample": 100,
    "open_duration": 8.0,
    "open_warmup": 1.0,
    "open_floor_budget": 3.0,
}


def log(message: str) -> None:
    corpora.log(message)


def child_env() -> dict[str, str]:
    """The environment of every subprocess: this checkout first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --- Index builds ------------------------------------------------------------


def disk_usage(path: Path) -> int:
    """Bytes allocated on disk for a file or a directory tree (as ``du``)."""
    paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_blocks * 512 for p in paths)


#: Runs of a build command's ``--help`` timed for its start-up (the least kept).
STARTUP_RUNS = 3


def startup_seconds(argv: list[str]) -> float:
    """Wall time of ``argv`` run with ``--help``: the interpreter's start-up
    and the command's imports, which a build of any size pays once."""
    times = []
    for _ in range(STARTUP_RUNS):
        started = time.perf_counter()
        subprocess.run(
            [*argv, "--help"], capture_output=True, env=child_env(), cwd=ROOT, check=True
        )
        times.append(time.perf_counter() - started)
    return min(times)


def timed_build(
    argv: list[str], output: Path, documents: int, startup_argv: list[str]
) -> dict[str, Any]:
    """Run a build command; its wall time, rate, output size and peak RSS,
    and its rate without the command's start-up (``startup_argv --help``)."""
    time_v = Path("/usr/bin/time")
    measured = [str(time_v), "-v", *argv] if time_v.exists() else argv
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    completed = subprocess.run(
        measured, capture_output=True, text=True, env=child_env(), cwd=ROOT, check=False
    )
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {completed.stderr[-3000:]}")
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", completed.stderr)
    if match:
        peak_kib, how = int(match.group(1)), "/usr/bin/time -v"
    else:
        # The largest of all children so far: exact only if this one is the largest.
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        how = "getrusage(RUSAGE_CHILDREN)" + ("" if peak_kib > before else ", an upper bound")
    startup = startup_seconds(startup_argv)
    return {
        "command": " ".join(argv),
        "documents": documents,
        "seconds": round(seconds, 3),
        "documents_per_second": round(documents / seconds, 1),
        "startup_seconds": round(startup, 3),
        "documents_per_second_after_startup": round(documents / max(seconds - startup, 1e-3), 1),
        "size_bytes": disk_usage(output),
        "peak_rss_bytes": peak_kib * 1024,
        "peak_rss_from": how,
    }


def build_trio(corpus: Path, index_dir: Path, documents: int) -> dict[str, Any]:
    shutil.rmtree(index_dir, ignore_errors=True)
    if not has_index_command():
        index_dir.mkdir(parents=True)
        argv = [*TRIO_BUILD_IN_MEMORY, str(corpus)]
        # The imports alone ("--help" is only the script's argument there).
        startup = [sys.executable, "-c", "import trio_search._index"]
        result = timed_build(argv, index_dir, documents, startup)
        result["in_memory"] = True
        return result
    argv = [*TRIO_BUILD, str(corpus), "--index", str(index_dir)]
    return timed_build(argv, index_dir, documents, TRIO_BUILD)


def build_fts5(corpus: Path, database: Path, documents: int) -> dict[str, Any]:
    database.unlink(missing_ok=True)
    argv = [sys.executable, str(PEER), "--data", str(corpus), "--db", str(database), "--build"]
    return timed_build(argv, database, documents, [sys.executable, str(PEER)])


# --- In-process floors -------------------------------------------------------


def floor(engine: engines.Engine, values: list[str], budget: float, lookup: bool) -> dict[str, Any]:
    """CPU time per query of ``engine`` over ``values`` in this process,
    until the list ends or ``budget`` CPU seconds are spent."""
    run = engine.lookup if lookup else engine.query
    for value in values[-20:]:  # warm caches with queries timed last, if at all
        run(value)
    walls: list[float] = []
    process_time, perf_counter = time.process_time, time.perf_counter
    cpu_start = process_time()
    for value in values:
        started = perf_counter()
        run(value)
        walls.append(perf_counter() - started)
        if process_time() - cpu_start > budget:
            break
    cpu = process_time() - cpu_start
    walls.sort()
    return {
        "queries": len(walls),
        "cpu_us_per_query": round(cpu / len(walls) * 1e6, 2),
        "wall_p50_ms": round(walls[len(walls) // 2] * 1000, 4),
        "wall_p99_ms": round(walls[min(len(walls) - 1, int(len(walls) * 0.99))] * 1000, 4),
    }


def typo_recall(
    engine: engines.Engine, typos: list[dict[str, str]], budget: float = RECALL_BUDGET
) -> dict[str, Any]:
    """How much of the intended word's top hits a misspelt query still finds.

    Per query, the share of the keys an exact query for the intended word
    ranks in its top 10 that the misspelt query also returns in its top 10;
    averaged over the queries whose intended word has hits, until ``typos``
    ends or ``budget`` CPU seconds are spent.
    """
    shares, any_hit, empty = [], 0, 0
    cpu_start = time.process_time()
    for query in typos:
        if time.process_time() - cpu_start > budget:
            break
        wanted = set(engine.exact(query["intended"]))
        if not wanted:
            continue
        hits, _ = engine.query(query["value"])
        got = {key for key, _ in hits}
        shares.append(len(wanted & got) / len(wanted))
        any_hit += bool(wanted & got)
        empty += not hits
    return {
        "queries": len(shares),
        "recall_at_10": round(statistics.fmean(shares), 4) if shares else None,
        "share_finding_any": round(any_hit / len(shares), 4) if shares else None,
        "share_with_no_hit": round(empty / len(shares), 4) if shares else None,
    }


# --- Servers -----------------------------------------------------------------


class ServerProcess:
    """A server on a fresh port, started on a built index, and stopped."""

    def __init__(self, name: str, argv: list[str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_dir = log_dir
        # This run's lines only (a restart within the run appends to them):
        # the work folder is kept from run to run.
        self.log_path = log_dir / f"{name}.stderr"
        self.log_path.write_bytes(b"")
        self.start()

    def start(self) -> None:
        name = self.name
        self.port = free_port()
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [*self.argv, "--host", HOST, "--port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                env=child_env(),
                cwd=self.log_dir,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited: {self.stderr()[-3000:]}")
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name} did not listen within {START_TIMEOUT} s") from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def cpu(self) -> float:
        from trio_search._loadgen import process_tree_cpu_seconds

        return process_tree_cpu_seconds(self.pid) or 0.0

    def settle(self) -> tuple[float, bool]:
        """Wait until the server is idle; return the seconds waited and
        whether it went idle within SETTLE_TIMEOUT."""
        started = time.monotonic()
        last = self.cpu()
        while time.monotonic() - started < SETTLE_TIMEOUT:
            time.sleep(SETTLE_INTERVAL)
            now = self.cpu()
            if now - last < SETTLE_CPU:
                return round(time.monotonic() - started, 2), True
            last = now
        return round(time.monotonic() - started, 2), False

    def stop(self) -> None:
        """Stop the server (once; later calls do nothing)."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        lines = self.stderr().splitlines()
        if lines:
            log(f"{self.name} wrote {len(lines)} line(s) on stderr; the last: {lines[-1][:300]}")


def settle(server: ServerProcess, result: dict[str, Any]) -> None:
    """Wait for ``server`` to be idle after a run, or restart it: work left
    over from one run (slow queries still queued) must not be billed to the
    next."""
    result["settle_seconds"], idle = server.settle()
    if not idle:
        log(f"{server.name} still busy after {SETTLE_TIMEOUT:g} s: restarting it")
        server.stop()
        server.start()
        result["server_restarted_after"] = True


def loadgen(
    server: ServerProcess, requests: Path, connections: int, expect: str, **options: float
) -> dict[str, Any]:
    """Run loadgen.py against ``server``; its JSON result."""
    argv = [
        sys.executable,
        str(LOADGEN),
        HOST,
        str(server.port),
        "--requests",
        str(requests),
        "--connections",
        str(connections),
        "--server-pid",
        str(server.pid),
        "--expect",
        expect,
        "--sample",
        str(CHECKED_REPLIES),
    ]
    for name, value in options.items():
        argv += [f"--{name}", str(value)]
    output = server.log_dir / "loadgen.json"
    output.unlink(missing_ok=True)
    argv += ["--output", str(output)]
    limit = options["duration"] + options["warmup"] + OPEN_LOOP_DRAIN + 120
    completed = subprocess.run(
        argv, capture_output=True, text=True, env=child_env(), timeout=limit, check=False
    )
    if completed.returncode != 0 or not output.exists():
        raise RuntimeError(f"loadgen failed: {completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    return result


def check_samples(
    result: dict[str, Any], engine: engines.Engine, values: list[str], lookup: bool
) -> dict[str, Any]:
    """Compare a run's kept replies with ``engine``'s answers in this process;
    replace the replies by the verdict."""
    samples = result.pop("samples")
    checked = wrong = 0
    first: str | None = None
    for index_text, body in samples.items():
        value = values[int(index_text)]
        checked += 1
        if lookup:
            right = body.get("result") == engine.lookup(value)
            detail = f"search {value!r}: got {body.get('result')!r}"
        else:
            got, total = engines.reply_hits(body)
            expected, expected_total = engine.query(value)
            right = engines.same_ranking(got, expected) and total == expected_total
            detail = (
                f"query {value!r}: got {got[:3]} (total {total}), "
                f"engine {expected[:3]} (total {expected_total})"
            )
        if not right:
            wrong += 1
            first = first or detail
    result["checked"] = {"replies": checked, "wrong": wrong, "first_wrong": first}
    return result


# --- One corpus --------------------------------------------------------------


def write_requests(path: Path, contents: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as file:
        for content in contents:
            file.write(json.dumps(content, ensure_ascii=False) + "\n")
    return path


def mixed(lists: dict[str, list[dict[str, str]]]) -> list[str]:
    """The query types interleaved: one of each in turn."""
    return [query["value"] for group in zip(*lists.values(), strict=False) for query in group]


def run_corpus(name: str, path: Path, settings: dict[str, Any], args: argparse.Namespace) -> Any:
    """Everything measured on one corpus."""
    work = corpora.CACHE_DIR / f"work-{path.stem}"
    work.mkdir(parents=True, exist_ok=True)
    documents = corpora.count_lines(path)
    log(f"{name}: {documents:,} documents in {path.name}")
    lists = queries.corpus_queries(name, path, settings["queries"])
    keys = queries.sample_keys(path, settings["keys"])
    values = {kind: [query["value"] for query in lists[kind]] for kind in queries.QUERY_TYPES}
    values["search"] = keys
    files = {
        kind: write_requests(
            work / f"{kind}.jsonl",
            [queries.query_request(value) for value in values[kind]]
            if kind != "search"
            else [queries.search_request(key) for key in keys],
        )
        for kind in WORKLOADS
    }
    values["mixed"] = mixed(lists)
    files["mixed"] = write_requests(
        work / "mixed.jsonl", [queries.query_request(value) for value in values["mixed"]]
    )
    out: dict[str, Any] = {
        "corpus": name,
        "file": path.name,
        "documents": documents,
        "queries_per_type": settings["queries"],
        "query_examples": {kind: values[kind][:5] for kind in WORKLOADS},
    }

    index_dir, database = work / "trio_search.index", work / "sqlite_fts5.db"

    def trio_engine(query_cache: bool = False) -> engines.TrioSearchEngine:
        return engines.TrioSearchEngine(
            index_dir if has_index_command() else None, data=path, query_cache=query_cache
        )

    builders = {
        "trio_search": lambda: build_trio(path, index_dir, documents),
        "sqlite_fts5": lambda: build_fts5(path, database, documents),
    }
    openers = {
        "trio_search": trio_engine,
        "sqlite_fts5": lambda: engines.Fts5Engine(database),
    }
    out["build"], out["floor"], out["typo_recall"] = {}, {}, {}
    in_process: dict[str, engines.Engine] = {}
    for engine_name in args.servers:
        log(f"{name}: building {engine_name}'s index")
        build = out["build"][engine_name] = builders[engine_name]()
        log(f"{name}: {engine_name} built at {build['documents_per_second']:,.0f} docs/s")
        engine = in_process[engine_name] = openers[engine_name]()
        out["floor"][engine_name] = {
            kind: floor(engine, values[kind], settings["floor_budget"], kind == "search")
            for kind in WORKLOADS
        }
        out["typo_recall"][engine_name] = typo_recall(
            engine, lists["typo"][: settings["recall_sample"]]
        )
        log(f"{name}: {engine_name} in-process: {out['floor'][engine_name]}")

    out["runs"] = []
    out["open_loop"] = {}
    commands = {
        "trio_search": [
            *TRIO_SERVER,
            *(["--index", str(index_dir)] if has_index_command() else ["--data", str(path)]),
            *NO_QUERY_CACHE,
        ],
        "sqlite_fts5": [sys.executable, str(PEER), "--db", str(database)],
    }
    # Both servers stay up and take turns, cell by cell (in alternating
    # order), so that a change in the machine's load over the minutes of the
    # run weighs on both alike; the idle one costs nothing meanwhile.
    servers = {name: ServerProcess(name, commands[name], work) for name in args.servers}
    try:
        cells = [(kind, connections) for kind in WORKLOADS for connections in CONNECTIONS]
        for number, (kind, connections) in enumerate(cells):
            order = list(servers.items())
            for server_name, server in order if number % 2 == 0 else reversed(order):
                loadavg = load_average()
                result = loadgen(
                    server,
                    files[kind],
                    connections,
                    "str" if kind == "search" else "list",
                    duration=settings["duration"],
                    warmup=settings["warmup"],
                )
                check_samples(result, in_process[server_name], values[kind], kind == "search")
                result.update(server=server_name, workload=kind, loadavg=loadavg)
                out["runs"].append(result)
                log(
                    f"{name}: {server_name:<12} {kind:<8} x{connections:<3} "
                    f"{result['queries_per_second']:>9,.0f} q/s  "
                    f"p99 {result['latency_ms']['p99']} ms  "
                    f"server {result['server_cpu_us_per_query']} us/q  "
                    f"errors {result['errors'] or 0}  wrong {result['checked']['wrong']}  "
                    f"load {loadavg}"
                )
                settle(server, result)
        if name == "generated":
            # A list long enough never to be sent twice: a repeated stretch
            # would measure the query cache, not the server.
            sent = settings["rate"] * (settings["open_duration"] + settings["open_warmup"])
            per_type = int(sent * OPEN_LOOP_LIST_MARGIN / len(queries.QUERY_TYPES)) + 1
            open_values = mixed(queries.corpus_queries(f"{name}-open", path, per_type))
            open_file = write_requests(
                work / "open.jsonl", [queries.query_request(value) for value in open_values]
            )
            if "trio_search" in in_process:
                # What the engine alone costs on this list, in order, with the
                # query cache the default server has: a floor under any
                # server's latency and CPU over it.
                cached_engine = trio_engine(query_cache=True)
                out["open_loop_floor"] = floor(
                    cached_engine, open_values, settings["open_floor_budget"], False
                )
                log(f"{name}: trio_search in-process, open-loop list: {out['open_loop_floor']}")
            # trio_search's closed-loop server has the query cache off; the
            # open loop measures that, then the default configuration.
            for server_name, server in list(servers.items()):
                label = TRIO_NO_CACHE if server_name == "trio_search" else server_name
                out["open_loop"][label] = open_loop(
                    server, open_file, open_values, in_process[server_name], settings
                )
                log(f"{name}: {label} open loop: {out['open_loop'][label]['latency_ms']}")
                # The backlog it leaves must not weigh on the next server's run.
                server.stop()
                if server_name == "trio_search":
                    assert server.argv[-len(NO_QUERY_CACHE) :] == NO_QUERY_CACHE
                    argv = server.argv[: -len(NO_QUERY_CACHE)]
                    cached = servers["trio_search_cached"] = ServerProcess("cached", argv, work)
                    result = open_loop(
                        cached, open_file, open_values, in_process[server_name], settings
                    )
                    result["query_cache"] = query_cache_stats(cached)
                    out["open_loop"]["trio_search"] = result
                    log(f"{name}: trio_search open loop: {result['latency_ms']}")
                    cached.stop()
                    # One process per core, as docs/deploy.md advises.
                    argv = [*argv, "--workers", str(OPEN_LOOP_WORKERS)]
                    workers = servers["trio_search_workers"] = ServerProcess("workers", argv, work)
                    label = f"trio_search, {OPEN_LOOP_WORKERS} workers"
                    out["open_loop"][label] = open_loop(
                        workers, open_file, open_values, in_process[server_name], settings
                    )
                    log(f"{name}: {label} open loop: {out['open_loop'][label]['latency_ms']}")
                    workers.stop()
    finally:
        for server in servers.values():
            server.stop()
    return out


def open_loop(
    server: ServerProcess,
    requests: Path,
    values: list[str],
    engine: engines.Engine,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The open-loop run: ``requests`` (the queries ``values``) sent at the
    offered rate over ``OPEN_LOOP_CONNECTIONS``, whether or not replies
    come; replies checked against ``engine``."""
    loadavg = load_average()
    result = loadgen(
        server,
        requests,
        OPEN_LOOP_CONNECTIONS,
        "list",
        duration=settings["open_duration"],
        warmup=settings["open_warmup"],
        rate=settings["rate"],
        timeout=OPEN_LOOP_DRAIN,
    )
    check_samples(result, engine, values, False)
    result["loadavg"] = loadavg
    return result


def query_cache_stats(server: ServerProcess) -> dict[str, int]:
    """How trio_search's query cache served: its ``stats`` counters."""
    import trio

    from trio_search import open_client

    async def ask() -> dict[str, Any]:
        async with open_client(HOST, server.port) as client:
            reply = await client.request_json({"action": "stats"})
        stats: dict[str, Any] = reply["result"]
        return stats

    stats = trio.run(ask)
    return {"hits": stats["query_cache_hits"], "stored": stats["query_cache_stored"]}


# --- Main --------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "trio_search", "benchmarks/search"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "sqlite": __import__("sqlite3").sqlite_version,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": (commit or "?") + (" with uncommitted changes" if dirty else ""),
        "loadavg_before": load_average(),
    }


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK['docs']:,} generated documents, shorter runs (for development)",
    )
    parser.add_argument("--docs", type=int, help="generated documents (default 1,000,000)")
    parser.add_argument("--queries", type=int, help="queries per type")
    parser.add_argument("--duration", type=float, help="measured seconds per closed-loop run")
    parser.add_argument("--open-duration", type=float, help="measured seconds of the open loop")
    parser.add_argument("--rate", type=float, help="open loop: queries/s offered")
    parser.add_argument("--corpora", default="stdlib,generated", help="comma-separated")
    parser.add_argument("--servers", default="trio_search,sqlite_fts5", help="comma-separated")
    parser.add_argument("--output", type=Path, default=report.RESULTS, help="RESULTS.md to update")
    parser.add_argument("--json", type=Path, default=report.RAW, help="raw results file")
    args = parser.parse_args()
    args.corpora = [name for name in args.corpora.split(",") if name]
    args.servers = [name for name in args.servers.split(",") if name]
    for corpus in args.corpora:
        if corpus not in ("stdlib", "generated"):
            parser.error(f"unknown corpus {corpus!r}")
    for server in args.servers:
        if server not in ("trio_search", "sqlite_fts5"):
            parser.error(f"unknown server {server!r}")
    if not Path("/proc/self/stat").exists():
        parser.error("this benchmark reads CPU times from /proc: Linux only")
    return args


def main() -> int:
    args = parse_args()
    settings = dict(QUICK if args.quick else FULL)
    for name, value in (
        ("docs", args.docs),
        ("queries", args.queries),
        ("duration", args.duration),
        ("open_duration", args.open_duration),
        ("rate", args.rate),
    ):
        if value is not None:
            settings[name] = value
    sys.path.insert(0, str(ROOT))
    started = time.monotonic()
    info = machine()
    results: dict[str, Any] = {"machine": info, "settings": settings, "corpora": {}}
    paths = {
        "stdlib": corpora.write_stdlib,
        "generated": lambda: corpora.write_generated(int(settings["docs"])),
    }
    for name in args.corpora:
        results["corpora"][name] = run_corpus(name, paths[name](), settings, args)
    info["loadavg_after"] = load_average()
    info["minutes"] = round((time.monotonic() - started) / 60, 1)
    results["targets"] = report.targets(results)
    args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    report.update_results(args.output, report.render(results))
    log(f"wrote {args.output} and {args.json} in {info['minutes']} min")
    wrong = sum(
        run["checked"]["wrong"] + sum(run["errors"].values())
        for corpus in results["corpora"].values()
        for run in corpus["runs"]
    )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
