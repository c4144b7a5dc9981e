"""Graceful shutdown under load (issue 8, items 1-2): a SIGTERM must not
lose requests that were fully sent before it, and after it new clients must
be refused, not accepted and then reset.

These attacks end the server, so they run their own servers rather than
:func:`.harness.measured`.
"""

from __future__ import annotations

import signal
from collections import Counter
from typing import Any

import trio

from .harness import Suite, mb
from .server import running_server
from .wire import ConnectRefused, Reader, binary_request, connect, error_code, json_request

#: Milliseconds between the last write and SIGTERM, cycled over the repeats.
TLS_SIGNAL_DELAYS_MS = (1, 3, 5, 10)


async def tls_shutdown(suite: Suite) -> dict[str, Any]:
    """Over TLS, write a ~500 KB request A, then B and C as separate writes,
    and SIGTERM the server a few ms after the last write; N times.

    The server should answer all 3N: each request was sent before the
    signal, and a graceful shutdown finishes what was received, including
    what is still inside TLS's buffers.
    """
    repeats = suite.count(12, 4)
    requests = [
        binary_request(b"A" * 500_000),
        json_request({"action": "search", "value": "morpheus"}),
        json_request({"action": "query", "value": "white rabbit"}),
    ]
    answered = 0
    outcomes: Counter[str] = Counter()
    exit_codes: Counter[str] = Counter()
    exit_s: list[float] = []
    cpu_s = 0.0
    log_bytes = log_lines = 0
    peak_kb = 0
    for repeat in range(repeats):
        delay = TLS_SIGNAL_DELAYS_MS[repeat % len(TLS_SIGNAL_DELAYS_MS)] / 1000
        async with running_server(tls_files=suite.tls_files) as server:
            stream = await connect(server.port, suite.client_tls)
            reader = Reader(stream)
            got = 0
            signalled = trio.current_time()
            try:
                for request in requests:
                    await stream.send_all(request)
                await trio.sleep(delay)
                signalled = trio.current_time()
                server.signal(signal.SIGTERM)
                with trio.move_on_after(15):
                    while got < len(requests):
                        answer = await reader.next()
                        if answer is None:
                            outcomes["closed before all answers"] += 1
                            break
                        if error_code(answer) is not None:
                            outcomes[f"error answer {error_code(answer)}"] += 1
                        else:
                            got += 1
            except (trio.BrokenResourceError, OSError) as exc:
                outcomes[type(exc).__name__] += 1
            except Exception as exc:  # counted as a failure
                outcomes[type(exc).__name__] += 1
            finally:
                await trio.aclose_forcefully(stream)
            answered += got
            status = await server.wait_exit()
            exit_s.append(round(trio.current_time() - signalled, 3))
            exit_codes[str(status)] += 1
            cpu_s += server.cpu_seconds()
            peak_kb = max(peak_kb, server.peak_rss_kb)
            await trio.sleep(0.1)
            log_bytes += server.log_bytes
            log_lines += server.log_lines
    return {
        "figures": {
            "repeats": repeats,
            "requests": 3 * repeats,
            "answered": answered,
            "lost": 3 * repeats - answered,
            "failures": dict(outcomes),
            "signal_delays_ms": list(TLS_SIGNAL_DELAYS_MS),
            "exit_codes": dict(exit_codes),
            "seconds_to_exit_max": max(exit_s),
        },
        "server": {
            "rss_peak_mb": mb(peak_kb),
            "cpu_s": round(cpu_s, 2),
            "log_bytes": log_bytes,
            "log_lines": log_lines,
        },
    }


#: One request of a one-shot client, in the client's clock: when its connect
#: began (its SYN leaves about then), when the connect returned, when its
#: request was sent whole (``None``: not reached), when it ended, and how.
Record = tuple[float, float | None, float | None, float, str]


async def _oneshot_round(
    suite: Suite, workers: int, clients: int
) -> tuple[list[Record], float, dict[str, Any]]:
    """One server, ``clients`` one-shot clients, one SIGTERM: the records,
    the signal's time, and the server's figures."""
    run_s = suite.seconds(1.5, 0.8)
    after_s = suite.seconds(2.0, 1.0)
    options = ("--workers", str(workers)) if workers > 1 else ()
    request = json_request({"action": "search", "value": "ring"})
    records: list[Record] = []

    async def client(stop_at: float, port: int) -> None:
        refusals = 0
        while trio.current_time() < stop_at and refusals < 3:
            began = trio.current_time()
            connected: float | None = None
            sent: float | None = None
            stream = None
            try:
                with trio.fail_after(15):
                    stream = await connect(port)
                    connected = trio.current_time()
                    refusals = 0
                    await stream.send_all(request)
                    sent = trio.current_time()
                    answer = await Reader(stream).next()
                outcome = "closed without an answer" if answer is None else "answered"
                if answer is not None and error_code(answer) is not None:
                    outcome = f"error answer {error_code(answer)}"
            except ConnectRefused:
                refusals += 1
                outcome = "refused"
            except trio.TooSlowError:
                outcome = "no answer in 15 s"
            except (trio.BrokenResourceError, OSError) as exc:
                outcome = "reset" if "reset" in repr(exc).lower() else type(exc).__name__
            except Exception as exc:  # the protocol's "truncated" and such
                outcome = type(exc).__name__
            finally:
                if stream is not None:
                    await trio.aclose_forcefully(stream)
            records.append((began, connected, sent, trio.current_time(), outcome))
            if outcome == "refused":
                await trio.sleep(0.01)

    async with running_server(*options) as server:
        # Workers announce the address before every one of them accepts.
        await trio.sleep(0.5 if workers > 1 else 0)
        cpu0, log0 = server.cpu_seconds(), server.log_bytes
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(client, start + run_s + after_s, server.port)
            await trio.sleep(run_s)
            signalled = trio.current_time()
            server.signal(signal.SIGTERM)
        status = await server.wait_exit()
        exited = trio.current_time() - signalled
        await trio.sleep(0.1)
        figures = {
            "exit_status": status,
            "seconds_to_exit": round(exited, 2),
            "cpu_s": server.cpu_seconds() - cpu0,
            "peak_kb": server.peak_rss_kb,
            "log_bytes": server.log_bytes - log0,
        }
    return records, signalled, figures


async def oneshot_shutdown(suite: Suite, workers: int = 1) -> dict[str, Any]:
    """50 clients each open a connection per request in a loop; SIGTERM the
    server mid-run; the clients go on connecting for a while after it.
    Repeated with a new server each round.

    The server should answer every request fully sent before the signal,
    and once it stops accepting, new connections should be refused
    (ECONNREFUSED), never accepted and then reset or closed unanswered.
    """
    clients, rounds = 50, suite.count(3, 1)
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    straddling: Counter[str] = Counter()
    dropped_at: list[float] = []
    first_refusals: list[float] = []
    statuses: Counter[str] = Counter()
    exit_s: list[float] = []
    cpu = 0.0
    peak = log_bytes = 0
    for _ in range(rounds):
        records, signalled, server = await _oneshot_round(suite, workers, clients)
        for began, connected, sent, ended, outcome in records:
            if outcome == "refused":
                first_refusals.append(round((ended - signalled) * 1000, 1))
            if sent is not None and sent < signalled:
                # Sent whole before the signal: must be answered.
                before[outcome] += 1
            elif began >= signalled:
                # A connect begun after the signal: refused, or accepted and
                # answered; never accepted and then dropped.
                after[outcome] += 1
                if connected is not None and outcome not in ("answered", "refused"):
                    dropped_at.append(round((began - signalled) * 1000, 1))
            else:
                # Begun before it, not sent whole before it: no promise.
                straddling[outcome] += 1
        statuses[str(server["exit_status"])] += 1
        exit_s.append(server["seconds_to_exit"])
        cpu += server["cpu_s"]
        peak = max(peak, server["peak_kb"])
        log_bytes += server["log_bytes"]
    sent_before = sum(before.values())
    dropped = sum(n for outcome, n in after.items() if outcome not in ("refused", "answered"))
    return {
        "options": ["--workers", str(workers)] if workers > 1 else [],
        "figures": {
            "workers": workers,
            "clients": clients,
            "rounds": rounds,
            "requests_sent_before_signal": sent_before,
            "lost_before_signal": sent_before - before["answered"],
            "outcomes_sent_before_signal": dict(before),
            "outcomes_in_flight_at_signal": dict(straddling),
            "connects_after_signal": sum(after.values()),
            "outcomes_after_signal": dict(after),
            "accepted_then_dropped_after_signal": dropped,
            "dropped_connect_began_ms_after_signal": (
                [min(dropped_at), max(dropped_at)] if dropped_at else []
            ),
            "first_refusal_ms_after_signal": min(first_refusals, default=None),
            "exit_status": dict(statuses),
            "seconds_to_exit_max": max(exit_s),
        },
        "server": {"rss_peak_mb": mb(peak), "cpu_s": round(cpu, 2), "log_bytes": log_bytes},
    }
