"""What a run measured."""

from __future__ import annotations

import math
from typing import Any

import attrs

from ._config import BenchConfig


@attrs.frozen
class BenchResult:
    """What a run measured. Times in seconds unless the name says otherwise."""

    config: BenchConfig
    elapsed: float
    ok: int
    #: Requests a reused keep-alive connection ended before answering, sent
    #: again on a new connection (counted in ``errors`` only if that failed).
    retried: int
    errors: dict[str, int]
    #: The first failure of each kind, described.
    first_errors: dict[str, str]
    latencies: list[float]  # sorted, one per right answer
    client_cpu: float
    server_cpu: float | None

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def requests_per_second(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, fraction: float) -> float | None:
        """The latency below which ``fraction`` of right answers came (nearest
        rank), or None without any."""
        if not self.latencies:
            return None
        rank = max(1, math.ceil(fraction * len(self.latencies)))
        return self.latencies[min(rank, len(self.latencies)) - 1]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``--json`` prints)."""
        config = self.config

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 4)

        def per_request_us(cpu: float | None) -> float | None:
            if cpu is None or not self.ok:
                return None
            return round(cpu / self.ok * 1e6, 3)

        latencies = self.latencies
        return {
            "host": config.host,
            "port": config.port,
            "tls": config.ssl_context is not None,
            "mode": config.mode,
            "connections": config.connections,
            "pipeline": config.pipeline,
            "duration_requested": config.duration,
            "requests_requested": config.requests,
            "elapsed": round(self.elapsed, 6),
            "ok": self.ok,
            "failed": self.failed,
            "retried": self.retried,
            "errors": {kind: count for kind, count in self.errors.items() if count},
            "first_errors": self.first_errors,
            "requests_per_second": round(self.requests_per_second, 2),
            "latency_ms": {
                "p50": ms(self.percentile(0.50)),
                "p90": ms(self.percentile(0.90)),
                "p99": ms(self.percentile(0.99)),
                "max": ms(latencies[-1] if latencies else None),
                "mean": ms(sum(latencies) / len(latencies) if latencies else None),
            },
            "client_cpu_seconds": round(self.client_cpu, 4),
            "client_cpu_us_per_request": per_request_us(self.client_cpu),
            "server_pid": config.server_pid,
            "server_cpu_seconds": None if self.server_cpu is None else round(self.server_cpu, 4),
            "server_cpu_us_per_request": per_request_us(self.server_cpu),
        }
