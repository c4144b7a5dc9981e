"""Attacks on the server's memory and worker threads (issue 8, items 3-4)."""

from __future__ import annotations

import resource
from typing import Any

import trio

from .harness import Run
from .wire import Reader, binary_header, connect, json_request, reset_on_close


def raise_open_files(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``needed`` (up to the
    hard limit); return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def buffered_memory(run: Run) -> dict[str, Any]:
    """2,000 connections each declare a binary content of 1,000,000 bytes,
    send 900 KB of it, and hold, never finishing; then all close.

    The server should hold at most about ``--max-buffered-bytes`` (256 MiB)
    of their requests (reading no further: the clients' sends block), keep
    answering small requests, and give the memory back once they close.
    """
    connections = run.suite.count(2000, 1000)
    hold = run.suite.seconds(8.0, 4.0)
    limit = raise_open_files(connections + 2000)
    payload = binary_header(1_000_000) + bytes(900_000)
    opened = fully_sent = failed = 0
    deadline = trio.current_time() + hold

    async def hold_one() -> None:
        nonlocal opened, fully_sent, failed
        try:
            stream = await connect(run.port)
        except Exception:  # counted
            failed += 1
            return
        opened += 1
        async with stream:
            with trio.move_on_at(deadline):
                try:
                    await stream.send_all(payload)
                except (trio.BrokenResourceError, OSError):
                    failed += 1
                    return
                fully_sent += 1
                await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(hold_one)
    return {
        "connections": connections,
        "opened": opened,
        "all_900kb_sent": fully_sent,
        "failed": failed,
        "held_s": hold,
        "client_nofile": limit,
        "attack_bytes_mb": round(connections * len(payload) / 2**20),
    }


async def abandoned_work(run: Run, how: str = "mixed", count: int | None = None) -> dict[str, Any]:
    """300 valid ~1 MB ``search`` requests, each uploaded fast on its own
    connection and then abandoned (half closed, half reset) before the
    answer; meanwhile an ordinary client sends a 100 KB request.

    The server should drop the work of clients that went away rather than
    decode 300 MB of JSON for nobody, so it stops being busy soon, and the
    100 KB request is answered without waiting behind the abandoned ones.

    ``how``: "mixed" (every other one reset), "close" or "reset" for all;
    the variants tell which way of leaving the server notices.
    """
    if count is None:
        count = run.suite.count(300, 100)
    request = json_request({"action": "search", "value": "x" * 1_000_000})
    probe = json_request({"action": "search", "value": "p" * 100_000})
    server = run.server
    # The ordinary load's own CPU, to tell "busy" from it.
    cpu0, t0 = server.cpu_seconds(), trio.current_time()
    await trio.sleep(1.0)
    base_rate = (server.cpu_seconds() - cpu0) / (trio.current_time() - t0)
    uploaded = failed = 0

    async def abandon(number: int, limiter: trio.CapacityLimiter) -> None:
        nonlocal uploaded, failed
        async with limiter:
            try:
                stream = await connect(run.port)
                if how == "reset" or (how == "mixed" and number % 2):
                    reset_on_close(stream)
                async with stream:
                    await stream.send_all(request)
                    uploaded += 1
            except (OSError, trio.BrokenResourceError):
                failed += 1

    cpu_start, started = server.cpu_seconds(), trio.current_time()
    async with trio.open_nursery() as nursery:
        limiter = trio.CapacityLimiter(50)
        for number in range(count):
            nursery.start_soon(abandon, number, limiter)
    uploads_done = trio.current_time()

    probe_latencies: list[float | None] = []

    async def send_probe() -> None:
        sent_at = trio.current_time()
        answered = None
        with trio.move_on_after(60):
            stream = await connect(run.port)
            async with stream:
                await stream.send_all(probe)
                if await Reader(stream).next() is not None:
                    answered = trio.current_time() - sent_at
        probe_latencies.append(None if answered is None else round(answered * 1000, 1))

    # Poll the server's CPU until it is back to the ordinary load's rate
    # (plus a fifth of a core), 60 s at most; probe at 0, 1 and 2 s.
    window = 0.25
    probes_due = [1.0, 2.0]
    busy_until = uploads_done
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_probe)
        last_cpu, last_t = server.cpu_seconds(), trio.current_time()
        quiet = 0
        while quiet < 4 and trio.current_time() - uploads_done < 60:
            await trio.sleep(window)
            now, cpu = trio.current_time(), server.cpu_seconds()
            elapsed = now - uploads_done
            if probes_due and elapsed >= probes_due[0]:
                probes_due.pop(0)
                nursery.start_soon(send_probe)
            rate = (cpu - last_cpu) / (now - last_t)
            if rate > base_rate + 0.2:
                busy_until, quiet = now, 0
            else:
                quiet += 1
            last_cpu, last_t = cpu, now
    return {
        "requests": count,
        "abandoned_by": {"mixed": "half close, half reset"}.get(how, how),
        "uploaded": uploaded,
        "failed": failed,
        "upload_s": round(uploads_done - started, 2),
        "busy_after_uploads_s": round(busy_until - uploads_done, 2),
        "cpu_s_from_first_upload_to_idle": round(server.cpu_seconds() - cpu_start, 2),
        "ordinary_cpu_rate": round(base_rate, 3),
        "probe_100kb_latency_ms": probe_latencies,
    }
