"""Render deploy/haproxy.cfg for given trio-search-server addresses.

The one template of the HAProxy configuration: ``deploy/haproxy.cfg`` is this
template rendered with the placeholder addresses (``--check`` says whether it
still is), and ``nox -s cluster`` and tests/test_cluster.py run it rendered
with their own ports. The health check's bytes are computed here from
trio_search's own encoder, so they follow the wire format.

Usage::

    python deploy/render_haproxy.py 10.0.0.11:65432 10.0.0.12:65432 > haproxy.cfg
    python deploy/render_haproxy.py --check   # deploy/haproxy.cfg is up to date
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Sequence

import trio_search

#: The committed, rendered file.
COMMITTED = pathlib.Path(__file__).with_name("haproxy.cfg")

#: Placeholder replicas of the committed file: three local ports.
PLACEHOLDER_BACKENDS = ("127.0.0.1:65433", "127.0.0.1:65434", "127.0.0.1:65435")
DEFAULT_BIND = "127.0.0.1:65432"
DEFAULT_STATS_SOCKET = "/run/haproxy/trio-search.sock"

#: The health request, framed as any client frames it.
HEALTH_REQUEST = trio_search.encode_message(trio_search.Message(b'{"action": "health"}'))
#: The server's whole answer to it, always these bytes: a JSON header (whose
#: "byteorder" is the server's sys.byteorder, "little" on x86-64 and arm64)
#: and ``{"result": "ok"}``. tests/test_cluster.py checks it against a live
#: server.
HEALTH_ANSWER = trio_search.encode_message(trio_search.Message(b'{"result": "ok"}'))

TEMPLATE = """\
# HAProxy (2.4 or later; tested with 2.8) in front of trio-search-server
# replicas: see docs/deploy.md. Rendered by deploy/render_haproxy.py; edit the
# template there, not this file, and re-render:
#     python deploy/render_haproxy.py HOST:PORT HOST:PORT ... > haproxy.cfg
# Run: haproxy -f haproxy.cfg  (foreground; under systemd use -Ws)

global
    # Alerts and state changes ("Server trio_search/s1 is DOWN") on stderr:
    # the journal under systemd.
    log stderr format short local0 notice
    # Connections at once: by default derived from the open-files limit
    # (about half of it); set "maxconn N" here to fix it.
    # The runtime API: "show stat", and "set server trio_search/s1 state
    # drain|maint|ready" for rolling restarts (docs/deploy.md).
    stats socket {stats_socket} mode 600 level admin
    stats timeout 10s

defaults
    # TCP: HAProxy passes the length-prefixed protocol through untouched.
    mode tcp
    log global
    option tcplog
    option dontlognull
    timeout connect 2s
    # Longer than the server's --idle-timeout (60 s), so an idle connection
    # is closed by the server, which knows it is idle, not cut by HAProxy.
    timeout client 70s
    timeout server 70s
    timeout client-fin 5s
    timeout server-fin 5s
    timeout check 2s
    # A connect that fails (a replica restarting, or killed and not yet
    # marked down) is retried on another replica: the client never sees it.
    retries 2
    option redispatch 1

frontend trio_search
    bind {bind}
    default_backend trio_search

backend trio_search
    # Searches differ in cost (a typo-tolerant query against a key lookup)
    # and keep-alive connections last long: fewest connections, not turns.
    balance leastconn
    # Health check: a real request, {{"action": "health"}}, framed as any
    # client frames it, and the server's exact answer, {{"result": "ok"}}
    # with its JSON header (byteorder "little": x86-64 and arm64 servers).
    # Computed from trio_search.encode_message by deploy/render_haproxy.py.
    option tcp-check
    # linger: close the check's connection with a FIN after the answer, not
    # HAProxy's default RST, which the server would log and count as a
    # "connection lost" every 2 s; default: the server line's options
    # (send-proxy-v2 included).
    tcp-check connect default linger
    tcp-check send-binary {health_request}
    tcp-check expect binary {health_answer}
    # send-proxy-v2: each connection starts with a PROXY v2 header, so the
    # servers (run with --proxy-protocol --trusted-proxies <this host>) log
    # the client's address. Health checks send it too (a LOCAL header).
    # Checks every 2 s; after a failure every 0.5 s: a dead replica is DOWN
    # 3 failed checks later (2-3 s), a returning one UP after 2 good ones.
    # shutdown-sessions: connections to a replica marked DOWN are closed,
    # so their clients reconnect to a live one instead of waiting.
    default-server send-proxy-v2 check inter 2s fastinter 500ms downinter 1s fall 3 rise 2
    default-server on-marked-down shutdown-sessions
    # One line per replica: its real address (host:port of each machine's
    # trio-search-server), e.g. "server s1 10.0.0.11:65432".
{servers}
"""


def render(
    backends: Sequence[str] = PLACEHOLDER_BACKENDS,
    *,
    bind: str = DEFAULT_BIND,
    stats_socket: str = DEFAULT_STATS_SOCKET,
) -> str:
    """The configuration for ``backends`` (``host:port`` each, named s1, s2...).

    Args:
        backends: The replicas' addresses, in HAProxy's form (``[::1]:65432``
            is written ``ipv6@::1:65432`` or ``::1:65432``).
        bind: Where HAProxy listens (``host:port``; ``:65432`` for every
            interface).
        stats_socket: Path of the admin socket (its directory must exist).
    """
    if not backends:
        raise ValueError("at least one backend is needed")
    servers = "\n".join(
        f"    server s{number} {address}" for number, address in enumerate(backends, 1)
    )
    return TEMPLATE.format(
        bind=bind,
        stats_socket=stats_socket,
        health_request=HEALTH_REQUEST.hex(),
        health_answer=HEALTH_ANSWER.hex(),
        servers=servers,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backends", nargs="*", metavar="HOST:PORT", help="the replicas")
    parser.add_argument("--bind", default=DEFAULT_BIND, help="where HAProxy listens")
    parser.add_argument("--stats-socket", default=DEFAULT_STATS_SOCKET, help="admin socket path")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if deploy/haproxy.cfg is not the rendered one"
    )
    args = parser.parse_args(argv)
    text = render(
        args.backends or PLACEHOLDER_BACKENDS, bind=args.bind, stats_socket=args.stats_socket
    )
    if args.check:
        if COMMITTED.read_text(encoding="utf-8") != text:
            print(f"{COMMITTED} is out of date: re-render it", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
