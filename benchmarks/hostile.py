"""The hostile-load suite (issue 8, item 7): attacks on trio-search-server,
measured from the point of view of its ordinary clients.

Each attack starts a fresh ``trio-search-server`` subprocess on 127.0.0.1,
port 0 (default settings unless the attack says otherwise), runs against it
while ordinary clients measure latency, busy answers and errors, and
records the server's peak RSS, RSS after, CPU seconds, log bytes and
whether it still answers. The code is in ``benchmarks/hostile_suite/``.

Usage::

    python benchmarks/hostile.py            # every attack; writes HOSTILE.md, hostile.json
    python benchmarks/hostile.py --quick    # shorter, fewer connections
    python benchmarks/hostile.py --only memory --only slowloris

A full run writes ``HOSTILE.md`` and ``hostile.json`` beside this file; a
``--quick`` or ``--only`` run prints its figures and writes files only to
``--output DIR``. ``nox -s hostile`` installs what it needs first (not part
of CI). Linux only (it reads /proc).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

HERE = Path(__file__).resolve().parent


def _repository_relative(part: str) -> str:
    """A command's part as the report shows it: a path inside the repository
    relative to it, so that no machine's own folders end up in a committed
    file; anything else as is."""
    try:
        return str(Path(part).resolve().relative_to(HERE.parent))
    except ValueError:
        return part


sys.path.insert(0, str(HERE))

from hostile_suite import floods, memory, regressions, shutdown  # noqa: E402
from hostile_suite.harness import Suite, measured  # noqa: E402
from hostile_suite.report import write  # noqa: E402
from hostile_suite.server import server_command  # noqa: E402

Result = dict[str, Any]


@attrs.frozen
class Attack:
    name: str
    title: str
    #: Runs the attack, returns its result (figures, server, ordinary...).
    run: Callable[[Suite], Awaitable[Result]]
    #: The function whose docstring says what it does and what should happen.
    doc_of: Callable[..., Any]
    verdict: Callable[[Result], str]


def _ordinary(result: Result, phase: str) -> dict[str, Any]:
    return result.get("ordinary", {}).get(phase, {})


def _p99(result: Result, phase: str) -> str:
    return f"{_ordinary(result, phase).get('p99_ms')}"


def _unharmed(result: Result) -> str:
    during = _ordinary(result, "during")
    alive = "alive" if result["server"].get("alive_after") else "NOT answering after"
    return (
        f"ordinary p99 {_p99(result, 'before')} -> {_p99(result, 'during')} ms "
        f"(machine CPUs {result['server'].get('machine_cpu_busy_pct')} % busy), "
        f"busy {during.get('busy')}, errors {during.get('errors')}, {alive} "
        "(wanted: unchanged, 0 errors, alive)"
    )


def _v_tls(result: Result) -> str:
    f = result["figures"]
    return f"{f['answered']} of {f['requests']} answered, {f['lost']} lost (wanted all answered)"


def _v_oneshot(result: Result) -> str:
    f = result["figures"]
    return (
        f"{f['lost_before_signal']} lost of {f['requests_sent_before_signal']} sent before "
        f"SIGTERM (wanted 0); {f['accepted_then_dropped_after_signal']} accepted then dropped "
        f"of {f['connects_after_signal']} connects after it (wanted 0: refused only)"
    )


def _v_memory(result: Result) -> str:
    s = result["server"]
    rise = round(s["rss_peak_mb"] - s["rss_before_mb"], 1)
    buffered = (result.get("stats") or {}).get("buffered_bytes_peak", 0) / 2**20
    return (
        f"buffered peak {buffered:.0f} MB (server's count) for a 256 MiB budget; "
        f"peak RSS {s['rss_peak_mb']} MB, {rise} MB over idle "
        f"(wanted about the budget, not 1.8 GB); RSS after {s['rss_after_mb']} MB "
        f"(idle {s['rss_before_mb']} MB), {s.get('rss_35s_after_mb')} MB 35 s after; "
        f"{_unharmed(result)}"
    )


def _v_work(result: Result) -> str:
    f, s = result["figures"], result["server"]
    return (
        f"{f['requests']} abandoned ({f['abandoned_by']}): "
        f"busy {f['busy_after_uploads_s']} s after the uploads "
        f"({f['cpu_s_from_first_upload_to_idle']} CPU s in all), 100 KB probe answered in "
        f"{f['probe_100kb_latency_ms']} ms "
        f"(wanted: abandoned work dropped, the probe not queued behind it); RSS "
        f"{s['rss_before_mb']} MB idle, {s['rss_after_mb']} MB after"
    )


def _v_log(result: Result) -> str:
    s, f = result["server"], result["figures"]
    return (
        f"{s['log_bytes']} bytes / {s['log_lines']} lines of log for {f['requests_sent']} bad "
        f"requests (wanted: bounded, 5 lines per 10 s per address plus a summary); "
        f"{_unharmed(result)}"
    )


def _v_idle(result: Result) -> str:
    during = _ordinary(result, "during")
    return (
        f"{during.get('busy')} busy and {during.get('errors')} errors of "
        f"{during.get('requests')} ordinary requests with "
        f"{result['figures']['opened']} idle connections open (wanted few or none)"
    )


def _v_echo(result: Result) -> str:
    f = result["figures"]
    return (
        f"{f['invalid_action_1mb_reply_bytes']} bytes answer a 1 MB invalid action "
        f"(wanted small: a 64-character excerpt); a 1 MB search miss gets "
        f"{f['search_miss_1mb_reply_bytes']} bytes (the tutorial's 'No match' line)"
    )


def _measured(
    attack: Callable[..., Awaitable[dict[str, Any]]],
    options: tuple[str, ...] = (),
    tls: bool = False,
    settle: float = 2.0,
    late: float | None = None,
) -> Callable[[Suite], Awaitable[Result]]:
    async def run(suite: Suite) -> Result:
        return await measured(suite, attack, options, tls=tls, settle=settle, late=late)

    return run


def _own(
    attack: Callable[..., Awaitable[Result]], **kwargs: Any
) -> Callable[[Suite], Awaitable[Result]]:
    return functools.partial(attack, **kwargs)


ATTACKS = [
    Attack(
        "tls-shutdown",
        "TLS graceful shutdown with requests in flight",
        _own(shutdown.tls_shutdown),
        shutdown.tls_shutdown,
        _v_tls,
    ),
    Attack(
        "oneshot-shutdown",
        "one-request-per-connection clients at SIGTERM",
        _own(shutdown.oneshot_shutdown, workers=1),
        shutdown.oneshot_shutdown,
        _v_oneshot,
    ),
    Attack(
        "oneshot-shutdown-2w",
        "the same with --workers 2",
        _own(shutdown.oneshot_shutdown, workers=2),
        shutdown.oneshot_shutdown,
        _v_oneshot,
    ),
    Attack(
        "memory",
        "2,000 held requests of 900 KB",
        # RSS again past the default --request-timeout (30 s) after the close.
        _measured(memory.buffered_memory, settle=5.0, late=35.0),
        memory.buffered_memory,
        _v_memory,
    ),
    Attack(
        "abandoned-work",
        "300 abandoned 1 MB JSON requests",
        _measured(memory.abandoned_work),
        memory.abandoned_work,
        _v_work,
    ),
    Attack(
        "abandoned-work-closed",
        "100 abandoned 1 MB JSON requests, all closed (FIN)",
        _measured(functools.partial(memory.abandoned_work, how="close", count=100)),
        memory.abandoned_work,
        _v_work,
    ),
    Attack(
        "abandoned-work-reset",
        "100 abandoned 1 MB JSON requests, all reset (RST)",
        _measured(functools.partial(memory.abandoned_work, how="reset", count=100)),
        memory.abandoned_work,
        _v_work,
    ),
    Attack(
        "log-amplification",
        "pipelined invalid requests",
        _measured(floods.log_amplification),
        floods.log_amplification,
        _v_log,
    ),
    Attack(
        "idle-lockout",
        "more idle connections than --max-connections",
        _measured(floods.idle_lockout, ("--max-connections", "2000")),
        floods.idle_lockout,
        _v_idle,
    ),
    Attack(
        "huge-echoes",
        "1 MB values the answer could quote",
        _measured(floods.huge_echoes),
        floods.huge_echoes,
        _v_echo,
    ),
    Attack(
        "slowloris",
        "a header byte per second on many connections",
        _measured(regressions.slowloris),
        regressions.slowloris,
        _unharmed,
    ),
    Attack(
        "unread-pipelines",
        "clients that pipeline and never read",
        _measured(regressions.unread_pipelines),
        regressions.unread_pipelines,
        _unharmed,
    ),
    Attack(
        "connect-flood",
        "connect and close as fast as possible",
        _measured(regressions.connect_flood),
        regressions.connect_flood,
        _unharmed,
    ),
    Attack(
        "tls-handshake-stall",
        "TCP connections to the TLS port that never shake hands",
        _measured(regressions.tls_handshake_stalls, tls=True),
        regressions.tls_handshake_stalls,
        _unharmed,
    ),
]


def _selected(only: list[str] | None) -> list[Attack]:
    if not only:
        return ATTACKS

    def matches(attack: Attack, name: str) -> bool:
        return attack.name == name or attack.name.startswith(name + "-")

    chosen = [a for a in ATTACKS if any(matches(a, n) for n in only)]
    unknown = [n for n in only if not any(matches(a, n) for a in ATTACKS)]
    if unknown:
        names = ", ".join(a.name for a in ATTACKS)
        raise SystemExit(f"unknown attack(s): {', '.join(unknown)}; choose from {names}")
    return chosen


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _machine() -> str:
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs, "
        f"{memory_kb / 2**20:.0f} GiB, Python {platform.python_version()}"
    )


def _print(result: Result) -> None:
    print(f"== {result['name']}: {result['verdict']}", flush=True)
    for key in ("server", "figures", "ordinary", "ordinary_failures"):
        if result.get(key):
            print(f"   {key}: {result[key]}", flush=True)


async def _run(attacks: list[Attack], quick: bool) -> list[Result]:
    suite = Suite(quick=quick)
    results = []
    for attack in attacks:
        print(f"-- {attack.name}: {attack.title}", flush=True)
        started = time.monotonic()
        result = await attack.run(suite)
        doc = (attack.doc_of.__doc__ or "").strip()
        result = {
            "name": attack.name,
            "title": attack.title,
            "doc": " ".join(doc.split()),
            **result,
        }
        result["seconds"] = round(time.monotonic() - started, 1)
        result["verdict"] = attack.verdict(result)
        results.append(result)
        _print(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter attacks, fewer connections")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run this attack (repeatable; a prefix such as oneshot-shutdown takes its variants)",
    )
    parser.add_argument("--output", type=Path, help="write HOSTILE.md and hostile.json here")
    args = parser.parse_args()
    attacks = _selected(args.only)
    loadavg_start = _loadavg()
    started = time.monotonic()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    results = trio.run(_run, attacks, args.quick)
    meta = {
        "date": date,
        "machine": _machine(),
        "loadavg_start": loadavg_start,
        "loadavg_end": _loadavg(),
        "quick": args.quick,
        "only": args.only,
        "seconds": round(time.monotonic() - started),
        "server_command": " ".join(_repository_relative(part) for part in server_command()),
    }
    output = args.output
    if output is None and not args.quick and not args.only:
        output = HERE
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        write(results, meta, output)
        print(f"wrote {output / 'HOSTILE.md'} and {output / 'hostile.json'}")
    print(f"{meta['seconds']} s; load average {loadavg_start} -> {meta['loadavg_end']}")


if __name__ == "__main__":
    main()
