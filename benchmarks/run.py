"""Side-by-side benchmark: trio_search against the peer servers, written to RESULTS.md.

Each server (trio_search, trio_search_2w, which is trio_search with
``--workers 2``, and every script in peers/) is started in turn on
127.0.0.1 and driven by the same load generator, run as a subprocess with
``--json``, for each workload:

- oneshot-16: a new connection per request, 16 at a time (the tutorial's
  pattern);
- keepalive-64: 64 kept-alive connections, one request in flight on each;
- pipelined-64x16: 64 kept-alive connections, 16 requests pipelined on each.

The load generator is benchmarks/loadgen_c/loadgen.c, compiled here with the
system's C compiler (``$CC``, else ``cc`` or ``gcc``), which spends less CPU
per request than the servers it measures; ``--loadgen python`` (and a
machine without a C compiler, said so in the log and in RESULTS.md) uses
``trio-search-bench`` instead, which spends about as much as they do. Either
verifies every answer and reads the server's CPU time
(user + system of the process and its descendants, so of all workers) from
/proc just before and after its measured window, so "server CPU per request"
excludes start-up. Every cell is repeated ``--repeats`` times, servers
started afresh each round and in a rotated order, and medians are reported.
Results go to RESULTS.md (and the raw runs to results.json) beside this file;
a full run (all servers and workloads) also rewrites the results section of
docs/performance.md.

Usage: python benchmarks/run.py [--duration 5] [--repeats 3] [--loadgen c|python]
(``nox -s bench -- --duration 5 --repeats 3`` installs what it needs first.)
Linux only (it reads /proc).
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def repository_relative(path: Path) -> str:
    """``path`` as the report shows it: relative to the repository (e.g.
    ``.nox/bench/lib/python3.11/site-packages/trio_search``), so that no
    machine's own folders end up in a committed file."""
    try:
        return str(path.resolve().relative_to(HERE.parent))
    except ValueError:
        return path.name


PEERS = HERE / "peers"
#: Its results section is rewritten after a full run to the default output.
DOCS = HERE.parent / "docs" / "performance.md"
HOST = "127.0.0.1"
#: Seconds a server gets to start listening.
START_TIMEOUT = 20.0
#: Seconds a server gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: Requests sent to a freshly started server before any measurement.
WARMUP_REQUESTS = 2000

REFERENCE = "trio_search"
#: How the benchmark starts trio_search (HOST and PORT filled in).
_TRIO_SEARCH_COMMAND = [
    sys.executable,
    "-m",
    "trio_search._server_cli",
    "--host",
    "{host}",
    "--port",
    "{port}",
    "--log-level",
    "WARNING",
]
#: name -> (command taking HOST and PORT, whether it serves more than one
#: request per connection).
SERVERS: dict[str, tuple[list[str], bool]] = {
    REFERENCE: (_TRIO_SEARCH_COMMAND, True),
    # Issue 4, point 4: the same server with two worker processes (SO_REUSEPORT).
    f"{REFERENCE}_2w": ([*_TRIO_SEARCH_COMMAND, "--workers", "2"], True),
    "asyncio_streams": (
        [sys.executable, str(PEERS / "asyncio_streams.py"), "--host", "{host}", "--port", "{port}"],
        True,
    ),
    "asyncio_uvloop_orjson": (
        [
            sys.executable,
            str(PEERS / "asyncio_uvloop_orjson.py"),
            "--host",
            "{host}",
            "--port",
            "{port}",
        ],
        True,
    ),
    "selectors_oneshot": (
        [
            sys.executable,
            str(PEERS / "selectors_oneshot.py"),
            "--host",
            "{host}",
            "--port",
            "{port}",
        ],
        False,
    ),
    "trio_naive": (
        [sys.executable, str(PEERS / "trio_naive.py"), "--host", "{host}", "--port", "{port}"],
        True,
    ),
}

#: name -> (description, load generator options, needs keep-alive).
WORKLOADS: dict[str, tuple[str, list[str], bool]] = {
    "oneshot-16": (
        "oneshot: a new connection per request, 16 connections at a time",
        ["--mode", "oneshot", "--connections", "16"],
        False,
    ),
    "keepalive-64": (
        "keep-alive: 64 connections, 1 request in flight on each",
        ["--mode", "keepalive", "--connections", "64", "--pipeline", "1"],
        True,
    ),
    "pipelined-64x16": (
        "keep-alive: 64 connections, 16 requests pipelined on each",
        ["--mode", "keepalive", "--connections", "64", "--pipeline", "16"],
        True,
    ),
}

#: Issue 4, point 3: trio_search's server CPU per request must be at most the
#: peer's, in the same run: (workload, peer).
TARGETS = [
    ("keepalive-64", "asyncio_streams"),
    ("pipelined-64x16", "asyncio_uvloop_orjson"),
    ("oneshot-16", "selectors_oneshot"),
]

#: The Python load generator (``trio-search-bench``).
PYTHON_BENCH = [sys.executable, "-m", "trio_search._loadgen._cli"]
#: The C load generator's source; compiled into NEUTRAL_CWD at each run.
C_LOADGEN_SOURCE = HERE / "loadgen_c" / "loadgen.c"
#: Seconds the C compiler gets.
COMPILE_TIMEOUT = 120.0

#: The working directory of every server and load generator: an empty one,
#: so that ``python -m trio_search...`` imports the installed package (in
#: ``nox -s bench``, the copy installed when the session started) and not
#: whatever the current directory holds at that moment.
NEUTRAL_CWD = tempfile.mkdtemp(prefix="trio-search-bench-")
atexit.register(shutil.rmtree, NEUTRAL_CWD, ignore_errors=True)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def c_compiler() -> str | None:
    """The C compiler to build the load generator with: ``$CC``, else ``cc``
    or ``gcc`` on PATH; ``None`` if there is none."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    return None


def build_c_loadgen() -> tuple[list[str] | None, str]:
    """Compile the C load generator into NEUTRAL_CWD.

    Returns its command (``None`` if it cannot be built) and a sentence for
    the report saying which load generator runs and, if not the C one, why.
    """
    compiler = c_compiler()
    if compiler is None:
        return None, "no C compiler found ($CC, cc, gcc)"
    binary = Path(NEUTRAL_CWD) / "trio-search-loadgen-c"
    completed = subprocess.run(
        [compiler, "-O2", "-o", str(binary), str(C_LOADGEN_SOURCE)],
        capture_output=True,
        text=True,
        timeout=COMPILE_TIMEOUT,
        check=False,
    )
    if completed.returncode != 0:
        return None, f"{compiler} failed on {C_LOADGEN_SOURCE.name}: {completed.stderr[-500:]}"
    return [str(binary)], f"compiled with {compiler}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One server process on a fresh port, started and stopped."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        command, _ = SERVERS[name]
        argv = [part.format(host=HOST, port=self.port) for part in command]
        # A file, not a pipe: a pipe nobody reads during the run would block a
        # server that logs a lot.
        self.log_path = Path(NEUTRAL_CWD) / f"{name}.stderr"
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                cwd=NEUTRAL_CWD,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {self.process.returncode}: {self.stderr()[-2000:]}"
                )
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name} did not listen within {START_TIMEOUT} s") from None
                time.sleep(0.05)

    def stderr(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server; report what it wrote on stderr, if anything."""
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        lines = self.stderr().splitlines()
        if lines:
            log(f"run.py: {self.name} wrote {len(lines)} line(s) on stderr; the last: {lines[-1]}")


def run_bench(
    bench: list[str], server: Server, options: list[str], duration: float | None
) -> dict[str, Any]:
    amount = ["--duration", str(duration)] if duration else ["--requests", str(WARMUP_REQUESTS)]
    argv = [
        *bench,
        HOST,
        str(server.port),
        *amount,
        *options,
        # Peers never restart during a run: any connection a server closes
        # early is a failure to report, not a race to retry.
        "--no-retry",
        "--json",
        "--quiet",
        "--server-pid",
        str(server.process.pid),
    ]
    completed = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=(duration or 10) + 60,
        check=False,
        cwd=NEUTRAL_CWD,
    )
    if completed.returncode not in (0, 1) or not completed.stdout.strip():
        raise RuntimeError(f"load generator failed: {completed.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = git("rev-parse", "--short", "HEAD")
    if commit and git("status", "--porcelain", "--", "trio_search"):
        commit += " with uncommitted changes to trio_search/"
    package_file = subprocess.run(
        [sys.executable, "-c", "import trio_search; print(trio_search.__file__)"],
        capture_output=True,
        text=True,
        cwd=NEUTRAL_CWD,
        check=False,
    ).stdout.strip()
    package = repository_relative(Path(package_file).parent) if package_file else ""
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_implementation() + " " + platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or "?",
        "package": str(Path(package).parent) if package else "?",
        "loadavg": load_average(),
    }


def git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=HERE.parent, check=False
        ).stdout.strip()
    except OSError:
        return ""


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def cell_median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(values: list[float | None]) -> float | None:
        present = [value for value in values if value is not None]
        return statistics.median(present) if present else None

    return {
        "rps": median([run["requests_per_second"] for run in runs]),
        "p50": median([run["latency_ms"]["p50"] for run in runs]),
        "p99": median([run["latency_ms"]["p99"] for run in runs]),
        "cpu": median([run["server_cpu_us_per_request"] for run in runs]),
        "bench_cpu": median([run["client_cpu_us_per_request"] for run in runs]),
        "failed": sum(run["failed"] for run in runs),
        "ok": sum(run["ok"] for run in runs),
        "errors": _sum_errors(runs),
        "repeats": len(runs),
    }


def _sum_errors(runs: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for run in runs:
        for kind, count in run["errors"].items():
            total[kind] = total.get(kind, 0) + count
    return total


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "-"
    return f"{value / reference:.2f}x"


def render(
    medians: dict[tuple[str, str], dict[str, Any]],
    servers: list[str],
    workloads: list[str],
    info: dict[str, Any],
    args: argparse.Namespace,
) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `benchmarks/run.py` (`nox -s bench`); see docs/performance.md for what "
        "the figures mean and how to reproduce them.",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']}, {info['cores']} cores",
        f"- {info['python']} on {info['os']}",
        f"- date: {info['date']}, trio_search commit {info['commit']}",
        f"- trio_search measured from {info['package']}",
        f"- load average before / after: {info['loadavg']} / {info['loadavg_after']}",
        f"- load generator: {info['loadgen']}",
        f"- each cell: {args.duration:g} s, median of {args.repeats} run(s); load generator "
        "and server share the machine's cores",
        "",
        "Ratios are the server's figure divided by trio_search's in the same run: "
        "for requests/s above 1.00x means the peer is faster, for server CPU per request "
        "above 1.00x means the peer spends more CPU per request than trio_search. "
        "Errors are summed over all runs of the cell (they must be 0).",
        "",
    ]
    for workload in workloads:
        description, _, _ = WORKLOADS[workload]
        lines += [
            f"## {workload}: {description}",
            "",
            "| server | requests/s | ratio | p50 ms | ratio | p99 ms | ratio | errors | "
            "server CPU µs/req | ratio | bench CPU µs/req |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        reference = medians.get((REFERENCE, workload))
        for server in servers:
            cell = medians.get((server, workload))
            if cell is None:
                supported = SERVERS[server][1] or not WORKLOADS[workload][2]
                why = (
                    "did not run (see the log)" if supported else "n/a (one request per connection)"
                )
                lines.append(f"| {server} | {why} | | | | | | | | | |")
                continue
            ref = reference or {}
            errors = ", ".join(f"{kind} {count}" for kind, count in cell["errors"].items())
            lines.append(
                f"| {server} | {fmt(cell['rps'])} | {ratio(cell['rps'], ref.get('rps'))} "
                f"| {fmt(cell['p50'], 2)} | {ratio(cell['p50'], ref.get('p50'))} "
                f"| {fmt(cell['p99'], 2)} | {ratio(cell['p99'], ref.get('p99'))} "
                f"| {errors or 0} "
                f"| {fmt(cell['cpu'], 1)} | {ratio(cell['cpu'], ref.get('cpu'))} "
                f"| {fmt(cell['bench_cpu'], 1)} |"
            )
        lines.append("")
    lines += [
        "## Targets",
        "",
        "trio_search's server CPU per request must be at most the peer's in the same run, "
        "so the ratio trio_search / peer must be at most 1.00.",
        "",
        *render_targets(medians),
        "",
        "Runs on shared or virtual machines vary by ±20-30 % from one run to the next; "
        "compare ratios within one run, not figures across runs.",
        "",
        'Where a target is missed, docs/performance.md ("Where trio_search stands, and '
        'what costs the time") shows the profile and what costs the time.',
        "",
    ]
    return "\n".join(lines)


def render_targets(medians: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """The targets table. A verdict holds only if the load generator spent
    less CPU per request than the server in both cells: a load generator
    that needs more CPU than the server changes what the server sees (the
    batches it reads, how often it sleeps)."""
    lines = [
        "| workload | peer | trio_search µs/req | peer µs/req | trio_search / peer "
        "| load generator µs/req (trio_search, peer) | target |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    for workload, peer in TARGETS:
        ours_cell = medians.get((REFERENCE, workload), {})
        theirs_cell = medians.get((peer, workload), {})
        ours, theirs = ours_cell.get("cpu"), theirs_cell.get("cpu")
        bench = f"{fmt(ours_cell.get('bench_cpu'), 1)}, {fmt(theirs_cell.get('bench_cpu'), 1)}"
        if ours is None or theirs is None:
            lines.append(
                f"| {workload} | {peer} | {fmt(ours, 1)} | {fmt(theirs, 1)} | - | {bench} "
                "| not run |"
            )
            continue
        share = ours / theirs
        verdict = "met" if share <= 1.0 else f"missed by {(share - 1) * 100:.0f} %"
        if not all(
            cell.get("bench_cpu") is not None and cell["bench_cpu"] < cell["cpu"]
            for cell in (ours_cell, theirs_cell)
        ):
            verdict += " (not verified: the load generator spent more CPU than a server)"
        lines.append(
            f"| {workload} | {peer} | {fmt(ours, 1)} | {fmt(theirs, 1)} | {share:.2f} "
            f"| {bench} | {verdict} |"
        )
    return lines


def render_summary(
    medians: dict[tuple[str, str], dict[str, Any]],
    servers: list[str],
    workloads: list[str],
    info: dict[str, Any],
    args: argparse.Namespace,
) -> str:
    """The short form for docs/performance.md: requests/s and server CPU per
    request, each with its ratio to trio_search, then the targets."""
    header = "| server |" + "".join(
        f" {workload} req/s | {workload} server µs/req |" for workload in workloads
    )
    lines = [
        f"{info['date']}, {info['cpu']} ({info['cores']} cores), {info['python']}, "
        f"trio_search {info['commit']}; {args.duration:g} s per run, median of "
        f"{args.repeats}; load average {info['loadavg']} before, {info['loadavg_after']} "
        f"after; load generator: {info['loadgen']}. Ratios to trio_search in parentheses. "
        "Full tables, latencies and errors: "
        "[benchmarks/RESULTS.md](../benchmarks/RESULTS.md).",
        "",
        header,
        "|---|" + "--:|--:|" * len(workloads),
    ]
    for server in servers:
        row = f"| {server} |"
        for workload in workloads:
            cell = medians.get((server, workload))
            ref = medians.get((REFERENCE, workload), {})
            if cell is None:
                row += " n/a | n/a |"
                continue
            row += (
                f" {fmt(cell['rps'])} ({ratio(cell['rps'], ref.get('rps'))}) |"
                f" {fmt(cell['cpu'], 1)} ({ratio(cell['cpu'], ref.get('cpu'))}) |"
            )
        lines.append(row)
    lines += ["", "Targets: trio_search / peer at most 1.00.", ""]
    lines += render_targets(medians)
    return "\n".join(lines)


#: The search benchmark's section of RESULTS.md (benchmarks/search/report.py),
#: kept when this script rewrites the file.
SEARCH_START, SEARCH_END = "<!-- search:start -->", "<!-- search:end -->"


def keep_search_section(path: Path, table: str) -> str:
    """``table``, followed by the search section ``path`` already holds, if any."""
    try:
        old = path.read_text(encoding="utf-8")
    except OSError:
        return table
    if SEARCH_START not in old or SEARCH_END not in old:
        return table
    section = SEARCH_START + old.split(SEARCH_START, 1)[1].split(SEARCH_END, 1)[0] + SEARCH_END
    return f"{table.rstrip()}\n\n{section}\n"


def update_docs(summary: str) -> bool:
    """Put ``summary`` between the results markers of docs/performance.md."""
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    try:
        text = DOCS.read_text(encoding="utf-8")
    except OSError:
        return False
    if start not in text or end not in text:
        return False
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    DOCS.write_text(f"{before}{start}\n{summary}\n{end}{after}", encoding="utf-8")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds per measurement (default 5)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per cell; medians are reported (default 3)"
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated servers to run (default all: {','.join(SERVERS)})",
    )
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated workloads (default all: {','.join(WORKLOADS)})",
    )
    parser.add_argument(
        "--loadgen",
        choices=("c", "python"),
        default="c",
        help="c: benchmarks/loadgen_c, compiled here (the Python one if no C compiler "
        "is found); python: trio-search-bench (default c)",
    )
    parser.add_argument(
        "--no-search",
        action="store_true",
        help="ignored here: tells nox -s bench not to run the search benchmark after this",
    )
    parser.add_argument(
        "--output", type=Path, default=HERE / "RESULTS.md", help="where to write the table"
    )
    args = parser.parse_args()
    if not Path("/proc/self/stat").exists():
        parser.error("this benchmark reads server CPU time from /proc: Linux only")
    servers = [name for name in args.servers.split(",") if name]
    workloads = [name for name in args.workloads.split(",") if name]
    for name in servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}")
    for name in workloads:
        if name not in WORKLOADS:
            parser.error(f"unknown workload {name!r}")
    if args.repeats < 1 or args.duration <= 0:
        parser.error("--repeats must be at least 1 and --duration more than 0")

    info = machine()
    bench = PYTHON_BENCH
    info["loadgen"] = "Python, trio-search-bench (--loadgen python)"
    if args.loadgen == "c":
        command, how = build_c_loadgen()
        if command is None:
            info["loadgen"] = f"Python, trio-search-bench, because {how}"
            log(
                f"run.py: {how}: the C load generator is skipped; trio-search-bench "
                "runs instead and spends about as much CPU per request as the servers, "
                "so the targets cannot be verified"
            )
        else:
            bench = command
            info["loadgen"] = f"C, benchmarks/loadgen_c/loadgen.c ({how})"
    log(f"run.py: load generator: {info['loadgen']}")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    cells = [
        (server, workload)
        for server in servers
        for workload in workloads
        if SERVERS[server][1] or not WORKLOADS[workload][2]
    ]
    total = len(cells) * args.repeats
    log(
        f"run.py: {len(cells)} cells x {args.repeats} repeats x {args.duration:g} s "
        f"(about {total * (args.duration + 1) / 60:.0f} min)"
    )
    done = 0
    for repeat in range(args.repeats):
        # Rotate the order so that no server always runs first (or last).
        order = servers[repeat % len(servers) :] + servers[: repeat % len(servers)]
        for name in order:
            mine = [workload for server, workload in cells if server == name]
            if not mine:
                continue
            try:
                server = Server(name)
            except RuntimeError as exc:
                log(f"run.py: {name} did not start, its cells are left out: {exc}")
                done += len(mine)
                continue
            try:
                run_bench(bench, server, WORKLOADS[mine[0]][1], None)  # warm-up, not measured
                for workload in mine:
                    result = run_bench(bench, server, WORKLOADS[workload][1], args.duration)
                    runs.setdefault((name, workload), []).append(result)
                    done += 1
                    log(
                        f"[{done}/{total}] {name:<22} {workload:<16} "
                        f"{result['requests_per_second']:>10,.0f} req/s  "
                        f"p99 {fmt(result['latency_ms']['p99'], 2):>7} ms  "
                        f"server {fmt(result['server_cpu_us_per_request'], 1):>6} µs/req  "
                        f"bench {fmt(result['client_cpu_us_per_request'], 1):>6} µs/req  "
                        f"{result['failed']} failed"
                    )
            finally:
                server.stop()
    info["loadavg_after"] = load_average()
    medians = {cell: cell_median(results) for cell, results in runs.items()}
    table = render(medians, servers, workloads, info, args)
    args.output.write_text(keep_search_section(args.output, table), encoding="utf-8")
    full_run = servers == list(SERVERS) and workloads == list(WORKLOADS)
    if full_run and args.output == parser.get_default("output"):
        summary = render_summary(medians, servers, workloads, info, args)
        if update_docs(summary):
            log(f"run.py: updated the results section of {DOCS}")
    raw = {
        "machine": info,
        "duration": args.duration,
        "repeats": args.repeats,
        "runs": [
            {"server": server, "workload": workload, **result}
            for (server, workload), results in runs.items()
            for result in results
        ],
    }
    args.output.with_name("results.json").write_text(
        json.dumps(raw, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    log(f"run.py: wrote {args.output} and {args.output.with_name('results.json')}")
    failed = sum(cell["failed"] for cell in medians.values())
    if failed:
        log(f"run.py: {failed} request(s) failed; see the errors column")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
