"""HOSTILE.md and hostile.json from the suite's results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SERVER_ROWS = [
    ("rss_before_mb", "server RSS before (MB)"),
    ("rss_peak_mb", "server peak RSS, polled, attack and settling (MB)"),
    ("vmhwm_mb", "server VmHWM (MB)"),
    ("rss_after_mb", "server RSS after (MB), when settled"),
    ("rss_settling_mb", "server RSS every 0.5 s after the attack (MB)"),
    ("rss_35s_after_mb", "server RSS 35 s after the attack (MB)"),
    ("connections_open_35s_after", "connections open 35 s after (server's count)"),
    ("buffered_mb_35s_after", "request bytes buffered 35 s after (MB, server's count)"),
    ("cpu_s", "server CPU during the attack (s)"),
    ("attack_s", "attack phase (s)"),
    ("machine_cpu_busy_pct", "whole machine's CPUs busy during it (%)"),
    ("log_bytes", "log written during the attack (bytes)"),
    ("log_lines", "log lines during the attack"),
    ("alive_after", "alive and answering after"),
]


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_value(item)}" for key, item in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(_value(item) for item in value) or "-"
    if value is None:
        return "-"
    return str(value)


def _ordinary_row(phase: str, summary: dict[str, Any]) -> str:
    return (
        f"| ordinary clients, {phase} | {summary['requests']} requests, "
        f"p50 {_value(summary['p50_ms'])} ms, p99 {_value(summary['p99_ms'])} ms, "
        f"max {_value(summary['max_ms'])} ms, busy {summary['busy']}, errors {summary['errors']} |"
    )


def attack_section(result: dict[str, Any]) -> str:
    lines = [
        f"### {result['name']}: {result['title']}",
        "",
        result["doc"],
        "",
        f"Server options: `{' '.join(result.get('options') or []) or '(defaults)'}`",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    server = result.get("server", {})
    for key, label in SERVER_ROWS:
        if key in server:
            lines.append(f"| {label} | {_value(server[key])} |")
    for phase, summary in result.get("ordinary", {}).items():
        if summary["requests"]:
            lines.append(_ordinary_row(phase, summary))
    if result.get("ordinary_failures"):
        lines.append(f"| ordinary failures, by cause | {_value(result['ordinary_failures'])} |")
    for key, value in result.get("figures", {}).items():
        lines.append(f"| {key.replace('_', ' ')} | {_value(value)} |")
    stats = result.get("stats") or {}
    if stats.get("errors_by_code"):
        lines.append(f"| server's errors_by_code after | {_value(stats['errors_by_code'])} |")
    if "buffered_bytes_peak" in stats:
        lines.append(
            f"| server's buffered_bytes_peak (MB) | {stats['buffered_bytes_peak'] / 2**20:.1f} |"
        )
    lines += ["", f"**Verdict:** {result['verdict']}", ""]
    return "\n".join(lines)


def summary_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| attack | peak RSS (MB) | RSS after (MB) | CPU (s) | log (bytes) "
        "| ordinary p50/p99 before (ms) | during (ms) | busy/errors during | alive | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        server = result.get("server", {})
        ordinary = result.get("ordinary", {})
        before, during = ordinary.get("before"), ordinary.get("during")

        def pair(summary: dict[str, Any] | None) -> str:
            if not summary or not summary["requests"]:
                return "-"
            return f"{_value(summary['p50_ms'])} / {_value(summary['p99_ms'])}"

        busy = f"{during['busy']}/{during['errors']}" if during else "-"
        lines.append(
            f"| {result['name']} | {_value(server.get('rss_peak_mb'))} "
            f"| {_value(server.get('rss_after_mb'))} | {_value(server.get('cpu_s'))} "
            f"| {_value(server.get('log_bytes'))} | {pair(before)} | {pair(during)} | {busy} "
            f"| {_value(server.get('alive_after', '-'))} | {result['verdict']} |"
        )
    return "\n".join(lines)


def write(results: list[dict[str, Any]], meta: dict[str, Any], directory: Path) -> None:
    """Write HOSTILE.md and hostile.json into ``directory``."""
    (directory / "hostile.json").write_text(
        json.dumps({"meta": meta, "attacks": results}, indent=2, ensure_ascii=False) + "\n"
    )
    head = [
        "# Hostile-load suite: results",
        "",
        "Written by `benchmarks/hostile.py` (`nox -s hostile`; not part of CI). Each attack",
        "runs against a fresh `trio-search-server` subprocess on 127.0.0.1 while ordinary",
        "clients (8 keep-alive clients sending varied `search`/`query` requests 20 ms apart,",
        "3 clients opening a connection per request) measure what a normal user sees.",
        "Peak RSS is VmRSS polled every 20 ms (server and workers summed); VmHWM is the",
        "kernel's own peak. CPU and log bytes count the attack phase only. Figures are",
        "measured, never asserted; the verdict compares them with what each attack wants.",
        "The machine is shared (2 cores; the load average below is everyone's): the",
        'row "whole machine\'s CPUs busy" says how contended it was, and an ordinary',
        "client's latency includes waiting for a CPU, not only the server's work.",
        "Raw numbers: `hostile.json`.",
        "",
        f"- date (UTC): {meta['date']}",
        f"- machine: {meta['machine']}",
        f"- load average at start: {meta['loadavg_start']}; at end: {meta['loadavg_end']}",
        f"- run: {'--quick' if meta['quick'] else 'full'}, {meta['seconds']} s in all",
        f"- server: `{meta['server_command']}`",
        "",
        "## Summary",
        "",
        summary_table(results),
        "",
        "## Attacks",
        "",
    ]
    body = [attack_section(result) for result in results]
    (directory / "HOSTILE.md").write_text("\n".join(head + body))
