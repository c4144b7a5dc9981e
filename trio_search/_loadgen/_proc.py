"""CPU time of a process and its descendants, from /proc (Linux)."""

from __future__ import annotations

import os
import resource

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            raw = file.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name, field 2, is in parentheses and may hold spaces.
    return raw[raw.rfind(")") + 2 :].split()


def _ticks(fields: list[str]) -> int:
    return int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])


def process_tree_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of ``pid`` and all its descendants, from
    ``/proc`` (Linux); None if ``pid`` is not there.

    Descendants count so that a server with worker processes is measured
    whole: the live ones from their own entries, those already reaped from
    their parent's "children" times, so a worker restarted between two
    readings still counts. (Counting from 1 after the command name, field 2
    is the parent pid, 12 to 15 are utime, stime, cutime and cstime, in
    clock ticks.)
    """
    own = _stat_fields(pid)
    if own is None:
        return None
    children: dict[int, list[int]] = {}
    cpu: dict[int, int] = {pid: _ticks(own)}
    try:
        entries = os.listdir("/proc")
    except OSError:
        entries = []
    for entry in entries:
        if not entry.isdigit() or int(entry) == pid:
            continue
        fields = _stat_fields(entry)
        if fields is None:
            continue
        child = int(entry)
        children.setdefault(int(fields[1]), []).append(child)
        cpu[child] = _ticks(fields)
    total = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        total += cpu.get(current, 0)
        todo.extend(children.get(current, ()))
    return total / _CLOCK_TICKS


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
