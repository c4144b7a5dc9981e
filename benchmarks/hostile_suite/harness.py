"""Run one attack against a fresh server while the ordinary clients measure.

The phases of a measured run: the ordinary clients alone for
``before`` seconds (the baseline), the attack (its function returns once
its connections are closed), then ``settle`` seconds more before the RSS
"after" reading and a last check that a new client still gets a right
answer. The server's CPU seconds and log bytes are counted over the attack
phase only.
"""

from __future__ import annotations

import json
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from .ordinary import OrdinaryProcess
from .server import Server, busy_percent, machine_cpu, running_server
from .wire import Reader, connect, json_request

#: What an attack function gets: the suite and the server; it returns its
#: own figures.
AttackFunction = Callable[["Run"], Awaitable[dict[str, Any]]]


@attrs.define(eq=False)
class Suite:
    """What every attack shares: run length, TLS material."""

    quick: bool
    workdir: Path = attrs.field(factory=lambda: Path(tempfile.mkdtemp(prefix="hostile-")))
    tls_files: tuple[str, str] | None = None
    client_tls: ssl.SSLContext | None = None
    ca_file: str | None = None

    def __attrs_post_init__(self) -> None:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cert_path, key_path = self.workdir / "server.pem", self.workdir / "server.key"
        cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
        cert.private_key_pem.write_to_path(str(key_path))
        self.tls_files = (str(cert_path), str(key_path))
        self.client_tls = ssl.create_default_context()
        ca.configure_trust(self.client_tls)
        self.ca_file = str(self.workdir / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)

    def seconds(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    def count(self, full: int, quick: int) -> int:
        return quick if self.quick else full


@attrs.define(eq=False)
class Run:
    """One attack's server, ordinary load and suite settings."""

    suite: Suite
    server: Server

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def tls(self) -> ssl.SSLContext | None:
        return self.suite.client_tls if self.server.tls else None


def mb(kib: int) -> float:
    return round(kib / 1024, 1)


async def ask(port: int, request: bytes, tls: ssl.SSLContext | None = None) -> Any:
    """One request on a new connection; the JSON answer, or ``None`` if none
    came within 5 s."""
    with trio.move_on_after(5):
        stream = await connect(port, tls)
        async with stream:
            await stream.send_all(request)
            answer = await Reader(stream).next()
            if answer is None:
                return None
            return json.loads(answer.content)
    return None


async def still_answers(port: int, tls: ssl.SSLContext | None = None) -> bool:
    """Whether a new client gets the tutorial's answer for ``morpheus``."""
    try:
        answer = await ask(port, json_request({"action": "search", "value": "morpheus"}), tls)
    except Exception:  # any failure means "no"
        return False
    return isinstance(answer, dict) and str(answer.get("result", "")).startswith("Follow")


async def server_stats(port: int, tls: ssl.SSLContext | None = None) -> dict[str, Any] | None:
    try:
        answer = await ask(port, json_request({"action": "stats"}), tls)
    except Exception:
        return None
    return answer.get("result") if isinstance(answer, dict) else None


async def measured(
    suite: Suite,
    attack: AttackFunction,
    options: tuple[str, ...] = (),
    *,
    tls: bool = False,
    before: float = 1.5,
    settle: float = 2.0,
    late: float | None = None,
) -> dict[str, Any]:
    """Run ``attack`` against a new server started with ``options``, with the
    ordinary clients on; return every figure. RSS "after" is read ``settle``
    seconds after the attack's connections closed, and again ``late`` seconds
    after, if given (with the server's open connections and buffered bytes)."""
    async with running_server(*options, tls_files=suite.tls_files if tls else None) as server:
        load = await OrdinaryProcess.start(server.port, suite.ca_file if tls else None)
        run = Run(suite, server)
        try:
            await trio.sleep(before)
            rss_before = server.rss_kb()
            server.reset_peak()
            cpu_before = server.cpu_seconds()
            machine_before = machine_cpu()
            log_bytes, log_lines = server.log_bytes, server.log_lines
            started = trio.current_time()
            await load.phase("during")
            figures = await attack(run)
            duration = trio.current_time() - started
            cpu = server.cpu_seconds() - cpu_before
            machine_busy = busy_percent(machine_before, machine_cpu())
            logged = server.log_bytes - log_bytes, server.log_lines - log_lines
            await load.phase("after")
            # RSS every half second while it settles, then the "after" figure.
            series = []
            for _ in range(round(settle / 0.5)):
                await trio.sleep(0.5)
                series.append(mb(server.rss_kb()))
            rss_after = server.rss_kb()
            # The peak counts the settling too: closing connections makes
            # the server read what was still queued for them.
            peak, hwm = server.peak_rss_kb, server.hwm_kb()
            late_figures = {}
            if late is not None:
                await trio.sleep_until(started + duration + late)
                late_stats = await server_stats(server.port, run.tls) or {}
                late_figures = {
                    f"rss_{late:g}s_after_mb": mb(server.rss_kb()),
                    f"connections_open_{late:g}s_after": late_stats.get("connections_open"),
                    f"buffered_mb_{late:g}s_after": round(
                        late_stats.get("buffered_bytes", 0) / 2**20, 1
                    ),
                }
        finally:
            ordinary = await load.stop()
        tls_context = run.tls
        alive = server.alive and await still_answers(server.port, tls_context)
        stats = await server_stats(server.port, tls_context) if server.alive else None
        return {
            "options": list(options) + (["--tls-cert", "--tls-key"] if tls else []),
            "figures": figures,
            "server": {
                "rss_before_mb": mb(rss_before),
                "rss_peak_mb": mb(peak),
                "vmhwm_mb": mb(hwm),
                "rss_after_mb": mb(rss_after),
                "rss_settling_mb": series,
                **late_figures,
                "cpu_s": round(cpu, 2),
                "attack_s": round(duration, 2),
                "machine_cpu_busy_pct": machine_busy,
                "log_bytes": logged[0],
                "log_lines": logged[1],
                "alive_after": alive,
            },
            "ordinary": ordinary["phases"],
            "ordinary_failures": ordinary["failures"],
            "stats": stats,
        }
