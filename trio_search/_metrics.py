"""The server's Prometheus metrics: one :class:`Metrics` object per server.

Each :class:`Metrics` owns its own ``CollectorRegistry``, never
prometheus_client's global default one, so several servers in one process
(tests, embedders) count separately. The methods the server calls per
request or per connection use children bound to their label values once,
here: ``metric.labels(...).inc()`` looks the child up under a lock each
time, about 1.8 us of CPU, against 0.6 us for ``inc()`` on a bound child;
an ``observe()`` on the latency histogram costs about 1.2 us (measured with
prometheus_client 0.26, Python 3.11, CPU time on a loaded 2-core machine).

With ``--workers N`` each worker counts in its own :class:`Metrics`, and
:mod:`trio_search._metrics_aggregate` sums the workers' snapshots for one
scrape; :meth:`Metrics.snapshot` is what a worker writes, and
:data:`GAUGE_AGGREGATION` says how each gauge combines across workers.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ._metrics_aggregate import registry_snapshot

#: Prefix of every metric name.
NAMESPACE = "trio_search"

#: The values of the ``action`` label of the requests counter: the
#: protocol's actions, binary (non-JSON) requests, and everything else
#: (unknown or missing actions), so a client cannot grow the label set.
ACTIONS = ("search", "query", "stats", "binary", "other")

#: The values of the ``reason`` label of the refused-connections counter.
REFUSAL_REASONS = ("busy", "per_ip")

#: Distinct error codes labelled separately, at most; later new codes count
#: as ``other``. The server's codes are a fixed set of about 40 from its own
#: source, so this only bounds a bug that would make codes from input.
MAX_ERROR_CODES = 100

#: Upper bounds of the request-latency histogram, in seconds: from 50 us (a
#: cached search answered on the event loop) to 1 s (a query on a large
#: index in a worker thread under load), about three buckets per decade.
LATENCY_BUCKETS = (
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)

#: How each gauge combines across workers (see
#: :mod:`trio_search._metrics_aggregate`): open connections add up; every
#: worker serves the same index, so its figures take the newest (largest)
#: value among live workers rather than N times the truth.
GAUGE_AGGREGATION = {
    f"{NAMESPACE}_connections_open": "sum",
    f"{NAMESPACE}_index_documents": "max",
    f"{NAMESPACE}_index_generation": "max",
    f"{NAMESPACE}_index_last_reload_timestamp_seconds": "max",
    f"{NAMESPACE}_worker_threads_busy": "sum",
    f"{NAMESPACE}_worker_jobs_queued": "sum",
}


@attrs.define(eq=False)
class Metrics:
    """The metric set of one server, in its own registry.

    The metric objects are public attributes for reading and for rare
    updates; the server's hot path calls the methods, which use children
    bound once at construction.

    Args:
        registry: Where the metrics are registered; a new registry by
            default. Never pass prometheus_client's global ``REGISTRY``
            when several servers may share a process.
    """

    registry: CollectorRegistry = attrs.field(factory=CollectorRegistry)
    requests: Counter = attrs.field(init=False)
    errors: Counter = attrs.field(init=False)
    connections_open: Gauge = attrs.field(init=False)
    connections_accepted: Counter = attrs.field(init=False)
    connections_refused: Counter = attrs.field(init=False)
    request_duration: Histogram = attrs.field(init=False)
    received_bytes: Counter = attrs.field(init=False)
    sent_bytes: Counter = attrs.field(init=False)
    index_documents: Gauge = attrs.field(init=False)
    index_generation: Gauge = attrs.field(init=False)
    index_last_reload: Gauge = attrs.field(init=False)
    query_cache_hits: Counter = attrs.field(init=False)
    query_cache_stored: Counter = attrs.field(init=False)
    worker_queue_wait: Histogram = attrs.field(init=False)
    worker_threads_busy: Gauge = attrs.field(init=False)
    worker_jobs_queued: Gauge = attrs.field(init=False)
    #: The query cache's totals when last synced (see :meth:`query_cache_counted`).
    _query_cache_seen: tuple[int, int] = attrs.field(default=(0, 0), init=False)
    _requests_by_action: dict[str, Any] = attrs.field(init=False)
    _other_requests: Any = attrs.field(init=False)
    _errors_by_code: dict[str, Any] = attrs.field(init=False)
    _refused_by_reason: dict[str, Any] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        registry = self.registry
        self.requests = Counter(
            "requests",
            "Requests answered, by action (errors included).",
            ["action"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.errors = Counter(
            "errors",
            "Error answers and dropped connections, by error code.",
            ["code"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.connections_open = Gauge(
            "connections_open",
            "Connections being served now.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.connections_accepted = Counter(
            "connections_accepted",
            "Connections accepted and served.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.connections_refused = Counter(
            "connections_refused",
            "Connections refused, by reason: busy (server-wide limit) or per_ip.",
            ["reason"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.request_duration = Histogram(
            "request_duration_seconds",
            "Time from a request's last byte read to its answer queued, in seconds.",
            buckets=LATENCY_BUCKETS,
            namespace=NAMESPACE,
            registry=registry,
        )
        self.received_bytes = Counter(
            "received_bytes",
            "Bytes received from clients.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.sent_bytes = Counter(
            "sent_bytes",
            "Bytes sent to clients.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.index_documents = Gauge(
            "index_documents",
            "Documents in the index being searched.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.index_generation = Gauge(
            "index_generation",
            "Generation of the index being searched; grows with every commit.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.index_last_reload = Gauge(
            "index_last_reload_timestamp_seconds",
            "When the index being searched was loaded, in Unix seconds.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.query_cache_hits = Counter(
            "query_cache_hits",
            "Queries answered from a kept ranking (the query cache).",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.query_cache_stored = Counter(
            "query_cache_stored",
            "Rankings of costly queries computed and kept by the query cache.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.worker_queue_wait = Histogram(
            "worker_queue_wait_seconds",
            "Time blocking work (a costly query, a large request's decoding, a reload) "
            "waited for a worker thread, in seconds.",
            buckets=LATENCY_BUCKETS,
            namespace=NAMESPACE,
            registry=registry,
        )
        self.worker_threads_busy = Gauge(
            "worker_threads_busy",
            "Worker threads running blocking work now.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.worker_jobs_queued = Gauge(
            "worker_jobs_queued",
            "Blocking work waiting for a worker thread now.",
            namespace=NAMESPACE,
            registry=registry,
        )
        # Children bound once: each labels() call costs a lock and a lookup.
        self._requests_by_action = {action: self.requests.labels(action) for action in ACTIONS}
        self._other_requests = self._requests_by_action["other"]
        self._errors_by_code = {}
        self._refused_by_reason = {
            reason: self.connections_refused.labels(reason) for reason in REFUSAL_REASONS
        }

    def count_request(self, action: str, seconds: float) -> None:
        """Count one answered request of ``action`` (any string: those not
        in ``ACTIONS`` count as ``other``) that took ``seconds``."""
        self._requests_by_action.get(action, self._other_requests).inc()
        self.request_duration.observe(seconds)

    def count_error(self, code: str) -> None:
        """Count one error answer or dropped connection with its code."""
        child = self._errors_by_code.get(code)
        if child is None:
            if len(self._errors_by_code) >= MAX_ERROR_CODES:
                code = "other"
            child = self._errors_by_code[code] = self.errors.labels(code)
        child.inc()

    def connection_opened(self) -> None:
        """Count a connection accepted for serving; it is open until
        :meth:`connection_closed`."""
        self.connections_accepted.inc()
        self.connections_open.inc()

    def connection_closed(self) -> None:
        """Count the end of a connection that :meth:`connection_opened` counted."""
        self.connections_open.dec()

    def connection_refused(self, reason: str) -> None:
        """Count a connection refused for ``reason``, one of ``REFUSAL_REASONS``.

        Raises:
            ValueError: ``reason`` is not one of them (a bug of the caller).
        """
        try:
            child = self._refused_by_reason[reason]
        except KeyError:
            raise ValueError(f"unknown refusal reason {reason!r}") from None
        child.inc()

    def count_bytes(self, received: int = 0, sent: int = 0) -> None:
        """Count bytes received from and sent to clients."""
        if received:
            self.received_bytes.inc(received)
        if sent:
            self.sent_bytes.inc(sent)

    def index_loaded(self, documents: int, generation: int, loaded_at: float | None = None) -> None:
        """Describe the index now searched: its size, its generation, and when
        it was loaded (Unix seconds; now by default)."""
        self.index_documents.set(documents)
        self.index_generation.set(generation)
        self.index_last_reload.set(time.time() if loaded_at is None else loaded_at)

    def query_cache_counted(self, hits: int, stored: int) -> None:
        """Bring the query cache counters up to the index's totals (counted in
        the engine, read before a scrape or snapshot). A total lower than the
        last one is a new count (another index) and is added whole."""
        seen_hits, seen_stored = self._query_cache_seen
        self.query_cache_hits.inc(hits - seen_hits if hits >= seen_hits else hits)
        self.query_cache_stored.inc(stored - seen_stored if stored >= seen_stored else stored)
        self._query_cache_seen = (hits, stored)

    def worker_waited(self, seconds: float) -> None:
        """Count blocking work that waited ``seconds`` for a worker thread
        (called in that thread)."""
        self.worker_queue_wait.observe(seconds)

    def workers_counted(self, busy: int, queued: int) -> None:
        """Describe the worker threads now: how many run work, and how much
        work waits for them (read before a scrape or snapshot)."""
        self.worker_threads_busy.set(busy)
        self.worker_jobs_queued.set(queued)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format (version 0.0.4, served as
        ``prometheus_client.CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, Any]:
        """The current values as a JSON-ready dict, for a worker to write
        where ``trio_search._metrics_aggregate.aggregate()`` reads it."""
        return registry_snapshot(self.registry, GAUGE_AGGREGATION)
