"""Attacks the server already withstood, run again for regressions (issue 8,
item 8): slowloris, unread pipelines, connect floods, TLS handshake stalls."""

from __future__ import annotations

from typing import Any

import trio

from .harness import Run
from .memory import raise_open_files
from .wire import connect, json_request


async def _hold_connections(
    run: Run, count: int, hold: float, trickle: bytes | None
) -> dict[str, Any]:
    """Open ``count`` plain TCP connections and hold them ``hold`` seconds,
    sending ``trickle`` one byte a second if given; count the ones the server
    closes meanwhile."""
    raise_open_files(count + 2000)
    opened = failed = closed_by_server = bytes_sent = 0
    deadline = trio.current_time() + hold

    async def one(limiter: trio.CapacityLimiter) -> None:
        nonlocal opened, failed, closed_by_server, bytes_sent
        try:
            async with limiter:
                # Plain TCP even to a TLS port: the stall is the point.
                stream = await trio.open_tcp_stream("127.0.0.1", run.port)
        except OSError:
            failed += 1
            return
        opened += 1
        async with stream:
            with trio.move_on_at(deadline):
                async with trio.open_nursery() as nursery:

                    async def watch() -> None:
                        nonlocal closed_by_server
                        try:
                            while await stream.receive_some(65536):
                                pass
                        except trio.BrokenResourceError:
                            pass
                        closed_by_server += 1
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(watch)
                    if trickle is None:
                        await trio.sleep_forever()
                    for byte in trickle:
                        try:
                            await stream.send_all(bytes([byte]))
                        except (trio.BrokenResourceError, OSError):
                            break
                        bytes_sent += 1
                        await trio.sleep(1.0)
                    await trio.sleep_forever()

    limiter = trio.CapacityLimiter(100)
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one, limiter)
    return {
        "connections": count,
        "opened": opened,
        "connect_failed": failed,
        "held_s": hold,
        "bytes_trickled": bytes_sent,
        "closed_by_server": closed_by_server,
    }


async def slowloris(run: Run) -> dict[str, Any]:
    """Many connections each send a request's header one byte per second.

    The server should keep answering ordinary clients at their usual
    latency; each slow connection costs a task and a small buffer, and is
    closed at ``--request-timeout`` (30 s, longer than this attack).
    """
    request = json_request({"action": "search", "value": "morpheus"})
    return await _hold_connections(
        run, run.suite.count(1000, 300), run.suite.seconds(6.0, 3.0), request
    )


async def tls_handshake_stalls(run: Run) -> dict[str, Any]:
    """Many TCP connections to the TLS port that never start the handshake.

    The server should go on serving TLS clients; each stalled handshake is
    bounded by ``--request-timeout`` (30 s, longer than this attack).
    """
    return await _hold_connections(
        run, run.suite.count(1000, 300), run.suite.seconds(6.0, 3.0), None
    )


async def unread_pipelines(run: Run) -> dict[str, Any]:
    """A few clients pipeline search requests as fast as they can and never
    read an answer, until the server stops reading (their sends block for
    1 s); then they hold for the rest of the attack.

    The server should stop reading from them once its answers are not taken
    (memory bounded by the socket buffers), and keep serving others.
    """
    clients = run.suite.count(20, 8)
    hold = run.suite.seconds(6.0, 3.0)
    batch = json_request({"action": "search", "value": "morpheus"}) * 512
    deadline = trio.current_time() + hold
    sent_per_client: list[int] = []
    blocked = 0

    async def one() -> None:
        nonlocal blocked
        sent = 0
        stream = await connect(run.port)
        async with stream:
            with trio.move_on_at(deadline):
                while True:
                    with trio.move_on_after(1.0) as stuck:
                        await stream.send_all(batch)
                        sent += len(batch)
                    if stuck.cancelled_caught:
                        blocked += 1
                        break
                await trio.sleep_forever()
        sent_per_client.append(sent)

    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(one)
    return {
        "clients": clients,
        "blocked_clients": blocked,
        "mb_sent_per_client_max": round(max(sent_per_client, default=0) / 2**20, 1),
        "mb_sent_total": round(sum(sent_per_client) / 2**20, 1),
        "held_s": hold,
    }


async def connect_flood(run: Run) -> dict[str, Any]:
    """Connect and close as fast as possible from 8 tasks for a few seconds.

    The server should stay up, keep answering ordinary clients, and write
    no per-connection log lines at its default level.
    """
    duration = run.suite.seconds(4.0, 2.0)
    connects = failures = 0

    async def flood() -> None:
        nonlocal connects, failures
        while True:
            sock = trio.socket.socket()
            try:
                await sock.connect(("127.0.0.1", run.port))
            except OSError:
                failures += 1
                await trio.sleep(0.01)
                continue
            else:
                connects += 1
            finally:
                sock.close()

    with trio.move_on_after(duration):
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(flood)
    return {"seconds": duration, "connects": connects, "connect_failures": failures}
