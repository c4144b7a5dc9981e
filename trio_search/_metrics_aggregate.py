"""One scrape for several worker processes: snapshot files, summed on read.

Theory of operation
-------------------

The supervisor of ``--workers N`` creates an empty directory for the run
and gives it to every worker. Each worker process runs
:func:`write_snapshots`: it creates ``<incarnation>.lock``, holds an
exclusive ``flock`` on it for as long as it lives, and every
:data:`SNAPSHOT_INTERVAL` seconds replaces ``<incarnation>.json`` (written
aside, then renamed, so a reader never sees half a file) with the values of
its registry. The incarnation name includes the pid and a nanosecond clock,
so a restarted worker writes new files and never overwrites its
predecessor's. The process that serves ``/metrics`` calls :func:`aggregate`:

- counters and histograms are summed over every snapshot in the directory,
  live or dead, so a worker's counts neither vanish when it exits nor count
  twice when it is restarted (its successor counts from 0 in new files);
- gauges are combined over live workers only, as each snapshot says
  (``sum`` for open connections, ``max`` for the index's figures), so a
  dead worker's connections stop counting at once;
- live means the lock is still held: the kernel releases a ``flock`` when
  its process ends however it ends (SIGKILL included), so liveness needs no
  bookkeeping by the supervisor and is never fooled by a reused pid.

A worker that stops cleanly writes a last snapshot; one that crashes loses
what it counted since its last snapshot, :data:`SNAPSHOT_INTERVAL` at most.

So that the work per scrape follows the live workers, not the restarts,
:func:`aggregate` folds the counts of exited workers into one
:data:`RETIRED_FILE` and deletes their files. The new sum names the
snapshots it took in and replaces the old one in one rename before any file
is deleted, so a crash in between never counts a worker twice. Calls from
several processes take turns on a ``flock`` of :data:`AGGREGATE_LOCK_FILE`.

Why not prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``
and ``MultiProcessCollector``)? It gives the same sums without the 1 s
delay, but it is process-wide and chosen when prometheus_client is first
imported: every metric in the process then writes to per-pid files keyed by
metric name, so two :class:`~trio_search._metrics.Metrics` in one process
overwrite each other's values, and tests need a subprocess per case. Its
live gauges also need the supervisor to call ``mark_process_dead(pid)``
after every exit, or a killed worker's open connections count forever.
Snapshots keep each server's registry its own and are tested in-process.

Each worker writes only its own files, through :func:`write_snapshots`;
only :func:`aggregate` writes the retired sum and deletes files.

Wiring it up (for the supervisor's integration):

- supervisor: ``directory = tempfile.mkdtemp(prefix="trio-search-metrics-")``
  for each run (it must start empty: a snapshot left from an earlier run
  would be summed in), passed to every worker; ``/metrics`` served with
  ``serve_metrics(listeners, functools.partial(aggregate, directory),
  blocking=True)``;
  ``shutil.rmtree(directory)`` once every worker has exited;
- worker K: ``await nursery.start(functools.partial(write_snapshots,
  directory, metrics.snapshot, worker=f"worker{K}"))`` in its nursery.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ._log import logger

#: Seconds between a worker's snapshots: a scrape (every 15 s or more, as
#: Prometheus is usually set up) sees at most this much delay, and a crash
#: loses at most this much counting; taking and writing one costs about
#: 1 ms of CPU, 0.1 % of a core.
SNAPSHOT_INTERVAL = 1.0

#: Largest snapshot file read, in bytes. A worker's snapshot is about 5 KB
#: (a 15-bucket histogram and some tens of labelled series); anything far
#: larger is not one of ours and is skipped rather than read into memory.
MAX_SNAPSHOT_BYTES = 1024 * 1024

#: Format version written in, and required of, every snapshot.
SNAPSHOT_VERSION = 1

#: How gauges may combine across live workers.
GAUGE_MODES = ("sum", "max")

#: Metric types summed over every snapshot, live or dead.
_SUMMED_TYPES = frozenset({"counter", "histogram", "summary"})

#: A sample's labels, sorted, as a dict key.
_Labels = tuple[tuple[str, str], ...]
#: A sample: its name, labels and value.
_Sample = tuple[str, _Labels, float]

SNAPSHOT_SUFFIX = ".json"
LOCK_SUFFIX = ".lock"

#: The counts of exited workers, summed, and the names of the snapshots
#: they came from (see :func:`aggregate`).
RETIRED_FILE = "retired.json"

#: Taken by :func:`aggregate`, so that one process at a time folds and reads.
AGGREGATE_LOCK_FILE = "aggregate.lock"


def registry_snapshot(
    registry: CollectorRegistry, gauge_aggregation: Mapping[str, str]
) -> dict[str, Any]:
    """The values of ``registry`` as a JSON-ready dict.

    Counters, histograms and summaries are kept, their ``_created`` samples
    dropped (a sum of creation times means nothing); gauges are kept with
    their mode from ``gauge_aggregation`` (``"sum"`` when not named there);
    other metric types are left out.

    Raises:
        ValueError: a mode is not one of :data:`GAUGE_MODES`.
    """
    families = []
    for family in registry.collect():
        if family.type not in _SUMMED_TYPES and family.type != "gauge":
            continue
        entry: dict[str, Any] = {
            "name": family.name,
            "type": family.type,
            "help": family.documentation,
            "samples": [
                [sample.name, sample.labels, sample.value]
                for sample in family.samples
                if not sample.name.endswith("_created")
            ],
        }
        if family.type == "gauge":
            mode = gauge_aggregation.get(family.name, "sum")
            if mode not in GAUGE_MODES:
                raise ValueError(f"gauge {family.name}: unknown aggregation {mode!r}")
            entry["aggregate"] = mode
        families.append(entry)
    return {"version": SNAPSHOT_VERSION, "metrics": families}


def merge_snapshots(snapshots: Iterable[tuple[Mapping[str, Any], bool]]) -> list[Metric]:
    """Combine snapshots, each with whether its worker is live, into metric
    families: counters, histograms and summaries summed over all of them,
    gauges over the live ones by their mode. Families and samples keep the
    order in which they first appear.

    Raises:
        ValueError: a snapshot is malformed (wrong version, types or shape).
    """
    families: dict[str, tuple[str, str, str | None]] = {}
    values: dict[str, dict[tuple[str, _Labels], float]] = {}
    for snapshot, live in snapshots:
        for name, typ, help_text, mode, samples in _families_of(snapshot):
            known = families.setdefault(name, (typ, help_text, mode))
            if known[0] != typ:
                raise ValueError(f"metric {name} is a {known[0]} and a {typ}")
            merged = values.setdefault(name, {})
            if typ == "gauge" and not live:
                continue
            for sample_name, labels, value in samples:
                key = (sample_name, labels)
                if key not in merged:
                    merged[key] = value
                elif typ == "gauge" and known[2] == "max":
                    merged[key] = max(merged[key], value)
                else:
                    merged[key] += value
    result = []
    for name, (typ, help_text, _) in families.items():
        family = Metric(name, help_text, typ)
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
        result.append(family)
    return result


def _families_of(
    snapshot: Mapping[str, Any],
) -> Iterator[tuple[str, str, str, str | None, list[_Sample]]]:
    """The families of one snapshot, checked: name, type, help, gauge mode,
    samples with their labels as a sorted tuple."""
    if not isinstance(snapshot, Mapping) or snapshot.get("version") != SNAPSHOT_VERSION:
        raise ValueError("not a version 1 snapshot")
    metrics = snapshot.get("metrics")
    if not isinstance(metrics, list):
        raise ValueError("snapshot without a list of metrics")
    for entry in metrics:
        if not isinstance(entry, Mapping):
            raise ValueError("a metric is not an object")
        name, typ, help_text = entry.get("name"), entry.get("type"), entry.get("help")
        if not (isinstance(name, str) and isinstance(typ, str) and isinstance(help_text, str)):
            raise ValueError("a metric lacks its name, type or help")
        mode = entry.get("aggregate") if typ == "gauge" else None
        if typ == "gauge" and mode not in GAUGE_MODES:
            raise ValueError(f"gauge {name}: unknown aggregation {mode!r}")
        if typ != "gauge" and typ not in _SUMMED_TYPES:
            raise ValueError(f"metric {name}: unsupported type {typ!r}")
        samples: list[_Sample] = []
        for sample in entry.get("samples", ()):
            if not (isinstance(sample, list) and len(sample) == 3):
                raise ValueError(f"metric {name}: a sample is not [name, labels, value]")
            sample_name, labels, value = sample
            if not (
                isinstance(sample_name, str)
                and isinstance(labels, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
                and isinstance(value, int | float)
                and not isinstance(value, bool)
                and not math.isnan(value)
            ):
                raise ValueError(f"metric {name}: a malformed sample")
            samples.append((sample_name, tuple(sorted(labels.items())), float(value)))
        yield name, typ, help_text, mode, samples


class _Families(Collector):
    """A collector that returns fixed metric families."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def exposition_of(families: list[Metric]) -> bytes:
    """``families`` in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


def is_live(lock_path: Path) -> bool:
    """Whether a process still holds the ``flock`` of ``lock_path``; never
    blocks. A missing lock file counts as dead."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the shared lock, if we got it
    return False


@attrs.frozen
class Incarnation:
    """One worker process's snapshot, as read from the directory.

    Attributes:
        stem: Its file names without suffix.
        snapshot: The snapshot, checked.
        live: Whether its process still holds its lock.
    """

    stem: str
    snapshot: Mapping[str, Any]
    live: bool


def _read_json(path: Path) -> Any:
    """The JSON in ``path``, or ``None`` if it is missing, over
    :data:`MAX_SNAPSHOT_BYTES` or malformed (the last two logged)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SNAPSHOT_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(data) > MAX_SNAPSHOT_BYTES:
        logger.warning("metrics snapshot %s is over %d bytes: skipped", path, MAX_SNAPSHOT_BYTES)
        return None
    try:
        snapshot = json.loads(data)
        for _ in _families_of(snapshot):
            pass
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        logger.warning("metrics snapshot %s is malformed (%s): skipped", path, exc)
        return None
    return snapshot


def read_incarnations(directory: Path) -> list[Incarnation]:
    """Every well-formed worker snapshot in ``directory`` (not the retired
    sum), with whether its worker is live. Files that are too large or not
    valid JSON are skipped with a warning; one that vanishes while being
    read is skipped quietly."""
    found = []
    for path in sorted(directory.glob("*" + SNAPSHOT_SUFFIX)):
        if path.name == RETIRED_FILE:
            continue
        # Liveness before contents: a worker that exits in between wrote its
        # last snapshot before releasing its lock, so this reads that
        # snapshot (its gauges once more as live) or a later one.
        live = is_live(path.with_suffix(LOCK_SUFFIX))
        snapshot = _read_json(path)
        if snapshot is not None:
            found.append(Incarnation(path.stem, snapshot, live))
    return found


def _snapshot_of_sums(families: list[Metric]) -> dict[str, Any]:
    """A snapshot of the summed families (counters, histograms, summaries)
    of ``families``; gauges are left out."""
    return {
        "version": SNAPSHOT_VERSION,
        "metrics": [
            {
                "name": family.name,
                "type": family.type,
                "help": family.documentation,
                "samples": [
                    [sample.name, sample.labels, sample.value] for sample in family.samples
                ],
            }
            for family in families
            if family.type in _SUMMED_TYPES
        ],
    }


def _retire(directory: Path, retired: Mapping[str, Any], dead: list[Incarnation]) -> dict[str, Any]:
    """Fold the counts of ``dead`` incarnations into the retired sum and
    delete their files; return the new retired sum.

    Crash-safe: the new sum, naming what it folded in, replaces the old one
    in one rename before any file is deleted, and files it names are never
    counted again; names whose files are gone are dropped the next time.
    """
    folded = [
        stem
        for stem in retired["folded"]
        if (directory / stem).with_suffix(SNAPSHOT_SUFFIX).exists()
    ]
    merged = merge_snapshots([(i.snapshot, False) for i in dead] + [(retired, False)])
    new = {**_snapshot_of_sums(merged), "folded": folded + [i.stem for i in dead]}
    write_snapshot_file(directory / RETIRED_FILE, new)
    for incarnation in dead:
        _delete_files(directory, incarnation.stem)
    return new


def _delete_files(directory: Path, stem: str) -> None:
    """Delete an exited incarnation's files (a half-written one included)."""
    base = directory / stem
    for path in (
        base.with_suffix(SNAPSHOT_SUFFIX),
        base.with_name(base.name + SNAPSHOT_SUFFIX + ".tmp"),
        base.with_suffix(LOCK_SUFFIX),
    ):
        path.unlink(missing_ok=True)


def _read_retired(directory: Path) -> dict[str, Any]:
    retired = _read_json(directory / RETIRED_FILE)
    folded = retired.get("folded") if isinstance(retired, dict) else None
    if not (isinstance(folded, list) and all(isinstance(stem, str) for stem in folded)):
        return {"version": SNAPSHOT_VERSION, "metrics": [], "folded": []}
    return retired  # type: ignore[no-any-return]


def aggregate(directory: str | os.PathLike[str]) -> bytes:
    """The metrics of every worker that wrote to ``directory``, combined, in
    Prometheus' text format; also folds the counts of workers that have
    exited into one retired sum, so the work per scrape stays proportional
    to the live workers however many restarts there were.

    Blocks: about 0.6 ms per live worker, plus a file write when a worker
    has exited since the last call, and calls from several processes take
    turns on an exclusive ``flock`` of :data:`AGGREGATE_LOCK_FILE`, held
    for that long (longer by a process stopped while holding it): call it
    in a worker thread (``serve_metrics(..., blocking=True)``).

    Raises:
        OSError: ``directory`` cannot be listed or written.
    """
    directory = Path(directory)
    with _exclusive_lock(directory / AGGREGATE_LOCK_FILE):
        retired = _read_retired(directory)
        already = set(retired["folded"])
        incarnations = []
        for incarnation in read_incarnations(directory):
            if incarnation.stem in already:
                # Counted in the retired sum; left by a call that stopped
                # between writing the sum and deleting.
                _delete_files(directory, incarnation.stem)
            else:
                incarnations.append(incarnation)
        dead = [i for i in incarnations if not i.live]
        if dead:
            retired = _retire(directory, retired, dead)
        live = [(i.snapshot, True) for i in incarnations if i.live]
        return exposition_of(merge_snapshots([*live, (retired, False)]))


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def incarnation_name(worker: str = "worker") -> str:
    """A file name stem no other process, nor a later start of this worker,
    will use: ``worker``, the pid, and the time in nanoseconds."""
    return f"{worker}-{os.getpid()}-{time.time_ns()}"


def write_snapshot_file(path: Path, snapshot: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``snapshot`` as JSON, atomically: readers see
    the old file or the new one, never part of one."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(json.dumps(snapshot, separators=(",", ":")).encode())
    os.replace(temporary, path)


async def write_snapshots(
    directory: str | os.PathLike[str],
    snapshot: Callable[[], Mapping[str, Any]],
    *,
    worker: str = "worker",
    interval: float = SNAPSHOT_INTERVAL,
    task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    """In a worker: take ``snapshot()`` (``Metrics.snapshot``) and write it
    into ``directory`` now, every ``interval`` seconds, and once more when
    cancelled; hold this incarnation's lock throughout. Runs until
    cancelled. Run it in the worker's nursery with ``nursery.start``.

    A failed periodic write is logged and tried again at the next interval;
    the server keeps serving.

    Args:
        directory: The run's directory, which the supervisor created.
        snapshot: Returns the values to write.
        worker: Start of the file names, to tell workers apart when reading.
        interval: Seconds between snapshots.
        task_status: Started with the snapshot file's path once the first
            snapshot is written.

    Raises:
        OSError: the lock file or the first snapshot cannot be written
            (raised before ``task_status.started``).
    """
    stem = Path(directory) / incarnation_name(worker)
    path, lock_path = stem.with_suffix(SNAPSHOT_SUFFIX), stem.with_suffix(LOCK_SUFFIX)

    # The values are taken on the event loop, where they change; the file is
    # written in a worker thread, so that a slow disk stalls this task only,
    # not the connections of the server it runs beside.
    async def write(values: Mapping[str, Any]) -> None:
        await trio.to_thread.run_sync(write_snapshot_file, path, values)

    lock_fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        await write(snapshot())
        task_status.started(path)
        try:
            while True:
                await trio.sleep(interval)
                try:
                    await write(snapshot())
                except OSError as exc:
                    logger.warning("cannot write metrics snapshot %s: %s", path, exc)
        finally:
            # The last counts, before the lock says this worker is gone:
            # shielded, or the cancellation that ends the task would skip it.
            with trio.CancelScope(shield=True), contextlib.suppress(OSError):
                await write(snapshot())
    finally:
        os.close(lock_fd)


#: The sums a worker's ``stats`` answer reports under ``all_workers``:
#: stats key -> sample name in the exposition.
_TOTALS = {
    "requests": "trio_search_requests_total",
    "errors": "trio_search_errors_total",
    "connections_open": "trio_search_connections_open",
    "connections_total": "trio_search_connections_accepted_total",
    "connections_refused": "trio_search_connections_refused_total",
}


def totals(directory: str | os.PathLike[str]) -> dict[str, int]:
    """The headline counters summed over every worker (see :func:`aggregate`),
    for the ``stats`` action of ``--workers``; blocks on a few small files."""
    from prometheus_client.parser import text_string_to_metric_families

    sums = dict.fromkeys(_TOTALS, 0)
    names = {sample: key for key, sample in _TOTALS.items()}
    for family in text_string_to_metric_families(aggregate(directory).decode()):
        for sample in family.samples:
            key = names.get(sample.name)
            if key is not None:
                sums[key] += int(sample.value)
    return sums
