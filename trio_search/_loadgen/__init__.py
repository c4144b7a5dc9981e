"""The load generator behind ``trio-search-bench``: many connections, every
answer verified, the server's CPU read from /proc.

- :mod:`._engine`: the connections and the run (theory of operation there);
- :mod:`._checks`: the requests and how a right answer is recognised;
- :mod:`._config`, :mod:`._result`: what a run does and what it measured;
- :mod:`._proc`: CPU time of a process tree, from /proc;
- :mod:`._cli`: the command.
"""

from __future__ import annotations

from ._checks import AnswerChecker, binary_request, search_request
from ._config import BenchConfig, BenchError, Progress
from ._constants import ERROR_KINDS, MODES
from ._engine import run_bench
from ._proc import process_tree_cpu_seconds
from ._result import BenchResult

__all__ = [
    "ERROR_KINDS",
    "MODES",
    "AnswerChecker",
    "BenchConfig",
    "BenchError",
    "BenchResult",
    "Progress",
    "binary_request",
    "process_tree_cpu_seconds",
    "run_bench",
    "search_request",
]
