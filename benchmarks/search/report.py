"""The search benchmark's report: targets, the Markdown section, RESULTS.md.

``python benchmarks/search/report.py`` renders the section again from
benchmarks/search_results.json (after a change to this file, no rerun
needed). The section goes between :data:`START` and :data:`END` in
benchmarks/RESULTS.md; everything else in that file (the keep-alive,
pipelined and oneshot results of benchmarks/run.py) is left as it is, and
run.py keeps this section when it rewrites the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import queries

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "RESULTS.md"
RAW = HERE.parent / "search_results.json"
START = "<!-- search:start -->"
END = "<!-- search:end -->"

#: Issue 7, item 8: server CPU per query at most this times the engine's
#: in-process CPU per query plus the keep-alive ``search`` CPU per request.
CPU_FACTOR = 1.3
#: Open loop on the generated corpus: p99 latency below this, in ms.
OPEN_LOOP_P99_MS = 10.0
#: Index build from JSON Lines: at least this many documents/s.
BUILD_DOCS_PER_SECOND = 50_000
ENGINES = ("trio_search", "sqlite_fts5")


def _runs(corpus: dict[str, Any]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {(run["server"], run["workload"], run["connections"]): run for run in corpus["runs"]}


def _cpu(run: dict[str, Any] | None) -> float | None:
    return None if run is None else run["server_cpu_us_per_query"]


def _qps(run: dict[str, Any] | None) -> float | None:
    return None if run is None else run["queries_per_second"]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target's figure, threshold and verdict."""
    rows: list[dict[str, Any]] = []
    for name, corpus in results["corpora"].items():
        runs = _runs(corpus)
        floors = corpus["floor"].get("trio_search", {})
        for kind in queries.QUERY_TYPES:
            for connections in sorted({key[2] for key in runs}):
                ours = runs.get(("trio_search", kind, connections))
                search = runs.get(("trio_search", "search", connections))
                peer = runs.get(("sqlite_fts5", kind, connections))
                ours_cpu, search_cpu = _cpu(ours), _cpu(search)
                floor = floors.get(kind, {}).get("cpu_us_per_query")
                if ours_cpu is not None and search_cpu is not None and floor is not None:
                    base = floor + search_cpu
                    rows.append(
                        {
                            "target": "cpu",
                            "corpus": name,
                            "workload": kind,
                            "connections": connections,
                            "server_us": ours_cpu,
                            "engine_us": floor,
                            "search_us": search_cpu,
                            "ratio": round(ours_cpu / base, 3),
                            "met": ours_cpu <= CPU_FACTOR * base,
                        }
                    )
                peer_cpu, ours_qps, peer_qps = _cpu(peer), _qps(ours), _qps(peer)
                if ours_cpu and peer_cpu and ours_qps is not None and peer_qps:
                    rows.append(
                        {
                            "target": "ahead_of_fts5",
                            "corpus": name,
                            "workload": kind,
                            "connections": connections,
                            "qps_ratio": round(ours_qps / peer_qps, 3),
                            "cpu_ratio": round(ours_cpu / peer_cpu, 3),
                            "met": ours_qps > peer_qps and ours_cpu < peer_cpu,
                        }
                    )
        build = corpus["build"].get("trio_search")
        if build is not None:
            rows.append(
                {
                    "target": "build",
                    "corpus": name,
                    "documents_per_second": build["documents_per_second"],
                    "after_startup": build.get("documents_per_second_after_startup"),
                    "startup_seconds": build.get("startup_seconds"),
                    # The build's own rate: a command's start-up (the
                    # interpreter, its imports) is paid once whatever the
                    # data's size, so it is shown but does not count.
                    "met": build.get(
                        "documents_per_second_after_startup", build["documents_per_second"]
                    )
                    >= BUILD_DOCS_PER_SECOND,
                }
            )
        for label, open_loop in corpus.get("open_loop", {}).items():
            # As configured by default (one process), and with one process
            # a core (docs/deploy.md's advice); not with the query cache off.
            if label != "trio_search" and not label.endswith(" workers"):
                continue
            p99 = open_loop["latency_ms"]["p99"]
            unanswered = open_loop["unanswered_at_end"]
            rows.append(
                {
                    "target": "open_loop_p99",
                    "corpus": name,
                    "server": label,
                    "documents": corpus["documents"],
                    "p99_ms": p99,
                    "engine_alone": corpus.get("open_loop_floor"),
                    "rate": open_loop.get("rate_offered"),
                    "met": p99 is not None and p99 < OPEN_LOOP_P99_MS and not unanswered,
                }
            )
    return rows


def fmt(value: float | str | None, digits: int = 0) -> str:
    if isinstance(value, str):
        return value
    return "-" if value is None else f"{value:,.{digits}f}"


def qps(value: float | None) -> str:
    """Queries/s: whole numbers, but two decimals below 10 (FTS5 on frequent words)."""
    if value is None:
        return "-"
    return fmt(value, 2 if value < 10 else 0)


def ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "-"
    return f"{value / reference:.2f}x"


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def render(results: dict[str, Any]) -> str:
    """The Markdown of the Search section, markers included."""
    info, settings = results["machine"], results["settings"]
    lines = [
        START,
        "## Search (issue 7, item 8)",
        "",
        "Written by `benchmarks/search/bench.py` (`nox -s bench`, or `nox -s bench_search` "
        "alone); how to run it and what each figure means: "
        "[search/README.md](search/README.md). Raw figures: "
        "[search_results.json](search_results.json).",
        "",
        f"- {info['date']}, {info['cpu']}, {info['cores']} cores, {info['python']}, "
        f"SQLite {info['sqlite']}, trio_search commit {info['commit']}",
        f"- load average before / after: {info['loadavg_before']} / "
        f"{info.get('loadavg_after', '?')} (the machine is shared; the load generator and "
        "the server share its cores); the whole run took "
        f"{info.get('minutes', '?')} min",
        f"- closed-loop runs: {settings['warmup']:g} s warm-up, then {settings['duration']:g} s "
        f"measured; {settings['queries']:,} distinct queries per type, "
        f"{settings['keys']:,} keys for `search`; in-process floors: up to "
        f"{settings['floor_budget']:g} CPU s per list",
        "",
    ]
    lines += _render_builds(results)
    for name, corpus in results["corpora"].items():
        lines += _render_corpus(name, corpus)
    lines += _render_open_loop(results)
    lines += _render_targets(results)
    lines.append(END)
    return "\n".join(lines)


def _render_builds(results: dict[str, Any]) -> list[str]:
    lines = [
        "### Index build, from JSON Lines",
        "",
        "The command's wall time, its start-up alone (the same command with `--help`: "
        "the interpreter and its imports, paid once whatever the data's size), and the "
        "rate without it.",
        "",
        "| corpus | engine | documents | seconds | documents/s | start-up s "
        "| documents/s without start-up | size on disk MiB | peak RSS MiB |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, corpus in results["corpora"].items():
        for engine, build in corpus["build"].items():
            how = " (in memory: no trio-search-index yet)" if build.get("in_memory") else ""
            lines.append(
                f"| {name} | {engine}{how} | {build['documents']:,} | {build['seconds']:.1f} "
                f"| {fmt(build['documents_per_second'])} "
                f"| {fmt(build.get('startup_seconds'), 2)} "
                f"| {fmt(build.get('documents_per_second_after_startup'))} "
                f"| {build['size_bytes'] / 2**20:,.1f} | {build['peak_rss_bytes'] / 2**20:,.0f} |"
            )
    return [*lines, ""]


def _render_corpus(name: str, corpus: dict[str, Any]) -> list[str]:
    runs = _runs(corpus)
    floors = corpus["floor"]
    lines = [
        f"### {name}: {corpus['documents']:,} documents",
        "",
        "Closed loop, kept-alive connections, one request in flight on each. "
        "`engine µs` is the engine's CPU per query in one process (no server); "
        "`server µs` the server's CPU per query (process tree, /proc); ratios are "
        "trio_search / FTS5 (q/s above 1 and CPU below 1 mean trio_search is ahead). "
        "`checked` counts sampled replies compared with the same engine in-process.",
        "",
        "| workload | conns | trio q/s | FTS5 q/s | q/s ratio | trio p50 / p99 ms "
        "| FTS5 p50 / p99 ms | trio server µs | FTS5 server µs | CPU ratio "
        "| trio engine µs | FTS5 engine µs | errors, wrong / checked |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    connections = sorted({key[2] for key in runs})
    workloads = ["search", *queries.QUERY_TYPES]
    for kind in workloads:
        for conns in connections:
            ours = runs.get(("trio_search", kind, conns))
            peer = runs.get(("sqlite_fts5", kind, conns))
            if ours is None and peer is None:
                continue

            def latency(run: dict[str, Any] | None) -> str:
                if run is None:
                    return "-"
                ms = run["latency_ms"]
                return f"{fmt(ms['p50'], 2)} / {fmt(ms['p99'], 2)}"

            def problems(run: dict[str, Any] | None) -> str:
                if run is None:
                    return "-"
                errors = sum(run["errors"].values())
                checked = run["checked"]
                return f"{errors}, {checked['wrong']} / {checked['replies']}"

            engine = {
                engine: floors.get(engine, {}).get(kind, {}).get("cpu_us_per_query")
                for engine in ENGINES
            }
            lines.append(
                f"| {kind} | {conns} | {qps(_qps(ours))} | {qps(_qps(peer))} "
                f"| {ratio(_qps(ours), _qps(peer))} | {latency(ours)} | {latency(peer)} "
                f"| {fmt(_cpu(ours), 1)} | {fmt(_cpu(peer), 1)} | {ratio(_cpu(ours), _cpu(peer))} "
                f"| {fmt(engine['trio_search'], 1)} | {fmt(engine['sqlite_fts5'], 1)} "
                f"| trio {problems(ours)}; FTS5 {problems(peer)} |"
            )
    lines += [
        "",
        "Typo recall: per misspelt query, the share of the intended word's top 10 "
        "(an exact query for it on the same engine) that the misspelt query's top 10 "
        "still holds. FTS5 has no typo tolerance: the peer expands a misspelt word "
        "itself, to the vocabulary's nearest words with the same first letter.",
        "",
        "| engine | typo queries | recall@10 | finding any | with no hit at all |",
        "|---|--:|--:|--:|--:|",
    ]
    for engine, recall in corpus["typo_recall"].items():
        lines.append(
            f"| {engine} | {recall['queries']} | {fmt(recall['recall_at_10'], 3)} "
            f"| {fmt(recall['share_finding_any'], 3)} | {fmt(recall['share_with_no_hit'], 3)} |"
        )
    examples = "; ".join(
        f"{kind}: " + ", ".join(f"`{value}`" for value in values[:3])
        for kind, values in corpus["query_examples"].items()
    )
    return [*lines, "", f"Query examples — {examples}.", ""]


def _render_open_loop(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, corpus in results["corpora"].items():
        for engine, run in corpus.get("open_loop", {}).items():
            if not lines:
                lines = [
                    "### Open loop",
                    "",
                    "Mixed query types (term, two-word, typo, prefix in turn) sent on a "
                    "fixed schedule over 64 connections whether or not replies came back; "
                    "latency from each request's scheduled send time. `achieved` is "
                    "replies received during the measured window per second; `send lag` is how "
                    "late the load generator itself sent (its own share of the latency). "
                    "The list is never sent twice: a query recurs only as its words recur "
                    "in the corpus (they are drawn by frequency, as a query log's are). "
                    "`trio_search` runs as configured by default, with its query cache "
                    "(costly queries' rankings kept until the data changes); the row "
                    "without it is the same server with `--query-cache-hits 0`; the row "
                    "with workers runs one server process per core (`--workers`).",
                    "",
                    "| corpus | server | offered q/s | achieved q/s | p50 ms | p99 ms | max ms "
                    "| unanswered at end | send lag p99 ms | server µs/q | errors |",
                    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
                ]
            ms = run["latency_ms"]
            if run.get("latency_is_lower_bound"):
                # Unanswered requests counted with the time waited so far.
                ms = {key: None if v is None else f"≥ {v:,.2f}" for key, v in ms.items()}
            lag = run.get("send_lag_ms") or {}
            lines.append(
                f"| {name} ({corpus['documents']:,}) | {engine} | {fmt(run['rate_offered'])} "
                f"| {qps(run['queries_per_second'])} | {fmt(ms['p50'], 2)} | {fmt(ms['p99'], 2)} "
                f"| {fmt(ms['max'], 2)} | {run['unanswered_at_end']:,} | {fmt(lag.get('p99'), 2)} "
                f"| {fmt(run['server_cpu_us_per_query'], 1)} | {sum(run['errors'].values())} |"
            )
    for name, corpus in results["corpora"].items():
        floor = corpus.get("open_loop_floor")
        if floor and lines:
            lines += [
                "",
                f"trio_search's engine alone on {name}'s open-loop list, in the benchmark's "
                f"process, one query at a time with the query cache, no server: "
                f"{floor['queries']:,} queries, {fmt(floor['cpu_us_per_query'], 1)} µs of CPU "
                f"a query, p50 {fmt(floor['wall_p50_ms'], 2)} ms, "
                f"p99 {fmt(floor['wall_p99_ms'], 2)} ms.",
            ]
        cache = corpus.get("open_loop", {}).get("trio_search", {}).get("query_cache")
        if cache:
            sent = corpus["open_loop"]["trio_search"].get("sent") or 0
            lines += [
                "",
                f"trio_search's query cache on {name}: {cache['hits']:,} queries answered "
                f"from a kept ranking, {cache['stored']:,} rankings kept"
                + (f", of {sent:,} queries sent." if sent else "."),
            ]
    return [*lines, ""] if lines else []


def _render_targets(results: dict[str, Any]) -> list[str]:
    rows = results["targets"]
    lines = ["### Targets", ""]
    cpu = [row for row in rows if row["target"] == "cpu"]
    if cpu:
        lines += [
            f"Server CPU per query at most {CPU_FACTOR} x (engine in-process + keep-alive "
            "`search` server CPU per request, same connections, same run):",
            "",
            "| corpus | workload | conns | server µs | engine µs | search µs | ratio "
            f"| target ≤ {CPU_FACTOR} |",
            "|---|---|--:|--:|--:|--:|--:|---|",
        ]
        for row in cpu:
            lines.append(
                f"| {row['corpus']} | {row['workload']} | {row['connections']} "
                f"| {fmt(row['server_us'], 1)} | {fmt(row['engine_us'], 1)} "
                f"| {fmt(row['search_us'], 1)} | {row['ratio']:.2f} | {verdict(row['met'])} |"
            )
        lines.append("")
    ahead = [row for row in rows if row["target"] == "ahead_of_fts5"]
    if ahead:
        lines += [
            "Ahead of the FTS5 peer on every query type: more queries/s and less server "
            "CPU per query (trio_search / FTS5):",
            "",
            "| corpus | workload | conns | q/s ratio | CPU ratio | verdict |",
            "|---|---|--:|--:|--:|---|",
        ]
        for row in ahead:
            lines.append(
                f"| {row['corpus']} | {row['workload']} | {row['connections']} "
                f"| {row['qps_ratio']:.2f} | {row['cpu_ratio']:.2f} | {verdict(row['met'])} |"
            )
        lines.append("")
    floors_said: set[str] = set()
    for row in rows:
        if row["target"] == "open_loop_p99":
            lines.append(
                f"- Open loop, {row['documents']:,} documents, {row.get('server', 'trio_search')}: "
                f"p99 {fmt(row['p99_ms'], 2)} ms "
                f"(target < {OPEN_LOOP_P99_MS:g} ms at 1,000 q/s on 1,000,000 documents): "
                f"{verdict(row['met'])}"
            )
            if row["corpus"] not in floors_said:
                floors_said.add(row["corpus"])
                lines += _engine_alone(row, results["machine"].get("cores"))
        elif row["target"] == "build":
            if row.get("after_startup") is None:
                rate = f"{fmt(row['documents_per_second'])} documents/s"
            else:
                rate = (
                    f"{fmt(row['after_startup'])} documents/s without the command's start-up "
                    f"({fmt(row['documents_per_second'])} with its "
                    f"{row['startup_seconds']:.2f} s)"
                )
            lines.append(
                f"- Build, {row['corpus']}: {rate} "
                f"(target ≥ {BUILD_DOCS_PER_SECOND:,}): {verdict(row['met'])}"
            )
    return [*lines, ""]


def _engine_alone(row: dict[str, Any], cores: int | None) -> list[str]:
    """What the engine alone, answering the open loop's list in the
    benchmark's process, says of the open-loop target: a floor under any
    server's latency, and the cores its CPU alone takes at the offered rate."""
    floor, rate = row.get("engine_alone"), row.get("rate")
    if not floor or not rate:
        return []
    busy = floor["cpu_us_per_query"] * rate / 1e6
    text = (
        f"  - The engine alone (this list, in the benchmark's process, one query at a time, "
        f"query cache on): p99 {fmt(floor['wall_p99_ms'], 2)} ms, "
        f"{fmt(floor['cpu_us_per_query'])} µs of CPU a query: {busy:.2f} cores at "
        f"{fmt(rate)} q/s, of the machine's {cores or '?'} (shared with the load generator), "
        "before any server work."
    )
    if floor["wall_p99_ms"] >= OPEN_LOOP_P99_MS:
        text += " Its p99 alone misses the target: no server over it can meet it."
    return [text]


def update_results(path: Path, section: str) -> None:
    """Put ``section`` between the markers in ``path`` (appended the first time)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(replace_section(text, section), encoding="utf-8")


def replace_section(text: str, section: str) -> str:
    """``text`` with its search section replaced by ``section`` (or appended)."""
    if START in text and END in text:
        before, rest = text.split(START, 1)
        _, after = rest.split(END, 1)
        return f"{before}{section}{after}"
    return f"{text.rstrip()}\n\n{section}\n"


def main() -> None:
    """Render RESULTS.md's search section again from the raw results."""
    results = json.loads(RAW.read_text(encoding="utf-8"))
    results["targets"] = targets(results)
    update_results(RESULTS, render(results))


if __name__ == "__main__":
    main()
