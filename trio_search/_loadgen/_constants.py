"""The load generator's fixed values."""

from __future__ import annotations

from typing import Final

#: ``keepalive``: many requests per connection; ``oneshot``: one each.
MODES: Final = ("oneshot", "keepalive")

#: Every way a request can fail, in the order reports list them.
ERROR_KINDS: Final = (
    "wrong_answer",  # a well-framed response that is not the expected answer
    "bad_framing",  # bytes that break the framing (this and the rest of the batch)
    "closed",  # the server closed or reset the connection before answering
    "timeout",  # no answer within the timeout (the connection is dropped)
    "connect_error",  # the TCP connect failed
    "tls_error",  # the TLS handshake failed
)

#: Seconds a task waits after a failed connect before the next attempt, so a
#: server that is down is not hammered in a tight loop.
CONNECT_RETRY_DELAY = 0.01

#: Right answers remembered as bytes, per checker; a server encodes one answer
#: in one or two ways, so a handful is plenty.
KNOWN_GOOD_ANSWERS = 16

#: Seconds between two progress reports.
PROGRESS_INTERVAL = 1.0
