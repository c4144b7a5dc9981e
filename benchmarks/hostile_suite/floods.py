"""Attacks by volume of requests or connections: log amplification, idle
lockout, huge echoes (issue 8, items 5-7)."""

from __future__ import annotations

from typing import Any

import trio

from .harness import Run
from .wire import Reader, connect, json_request

#: Requests written per send by the pipelining attacker.
PIPELINE_BATCH = 256


async def log_amplification(run: Run) -> dict[str, Any]:
    """One connection pipelines ``[]`` (JSON, but not an object) as fast as
    it can for ~5 s, reading the answers in another task.

    The server should answer each with ``not_an_object``, keep the
    connection, and write a bounded log (5 warning lines per client address
    per 10 s, then one summary line) while ordinary clients see the same
    latency as before.
    """
    duration = run.suite.seconds(5.0, 2.0)
    batch = json_request([]) * PIPELINE_BATCH
    sent = answered = 0
    done_sending = False
    caught_up = trio.Event()
    stream = await connect(run.port)
    reader = Reader(stream)

    async def read_answers() -> None:
        nonlocal answered
        while await reader.next() is not None:
            answered += 1
            if done_sending and answered >= sent:
                caught_up.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_answers)
            with trio.move_on_after(duration):
                while True:
                    await stream.send_all(batch)
                    sent += PIPELINE_BATCH
            # Let the answers to the last batches arrive, briefly.
            done_sending = True
            with trio.move_on_after(1.0):
                await caught_up.wait()
            nursery.cancel_scope.cancel()
    except (trio.BrokenResourceError, OSError) as exc:
        return {"requests_sent": sent, "answers_read": answered, "broken": repr(exc)}
    finally:
        await trio.aclose_forcefully(stream)
    return {"requests_sent": sent, "answers_read": answered, "seconds": duration}


async def idle_lockout(run: Run) -> dict[str, Any]:
    """Open more idle connections (2,050) than ``--max-connections`` (2,000)
    allows and hold them, sending nothing, for a few seconds.

    The server should close the longest-idle connection to make room for
    each new one, so ordinary clients get few or no ``busy`` answers.
    """
    target = 2050
    hold = run.suite.seconds(4.0, 2.0)
    opened = refused = failed = 0
    closed_by_server = busy_answers = 0
    all_open = trio.Event()
    release = trio.Event()

    async def idle(limiter: trio.CapacityLimiter) -> None:
        nonlocal opened, refused, failed, closed_by_server, busy_answers
        try:
            async with limiter:
                stream = await connect(run.port)
        except OSError:
            failed += 1
            return
        except Exception:
            refused += 1
            return
        opened += 1
        if opened + refused + failed == target:
            all_open.set()
        async with stream:
            with trio.move_on_after(30):
                async with trio.open_nursery() as nursery:

                    async def watch() -> None:
                        nonlocal closed_by_server, busy_answers
                        try:
                            data = await stream.receive_some(65536)
                        except trio.BrokenResourceError:
                            data = b""
                        closed_by_server += 1
                        if b"busy" in data:
                            busy_answers += 1
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(watch)
                    await release.wait()
                    nursery.cancel_scope.cancel()

    limiter = trio.CapacityLimiter(100)
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(target):
            nursery.start_soon(idle, limiter)
        with trio.move_on_after(15):
            await all_open.wait()
        opened_in = trio.current_time() - started
        await trio.sleep(hold)
        release.set()
    return {
        "idle_connections_tried": target,
        "opened": opened,
        "connect_failed": failed + refused,
        "seconds_to_open": round(opened_in, 2),
        "held_s": hold,
        "attackers_closed_by_server": closed_by_server,
        "attackers_answered_busy": busy_answers,
    }


async def huge_echoes(run: Run) -> dict[str, Any]:
    """Send requests whose answer could quote 1 MB back: an invalid action
    of 1,000,000 characters, and a ``search`` for a 1,000,000-character key
    that is not in the index.

    The server should quote the action as a short excerpt (64 characters),
    so the error answer stays small.
    """
    figures: dict[str, Any] = {}
    cases = {
        "invalid_action_1mb": json_request({"action": "a" * 1_000_000, "value": "x"}),
        "search_miss_1mb": json_request({"action": "search", "value": "v" * 1_000_000}),
    }
    for name, request in cases.items():
        stream = await connect(run.port)
        async with stream:
            started = trio.current_time()
            await stream.send_all(request)
            reader = Reader(stream)
            with trio.move_on_after(20):
                answer = await reader.next()
            figures[f"{name}_request_bytes"] = len(request)
            figures[f"{name}_reply_bytes"] = reader.bytes_read
            figures[f"{name}_reply_content_bytes"] = None if answer is None else len(answer.content)
            figures[f"{name}_s"] = round(trio.current_time() - started, 3)
    return figures
