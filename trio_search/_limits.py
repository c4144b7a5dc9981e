"""Named limits and defaults, each with its unit and the reason for its value.

Every one of these is a default: servers, clients and protocol objects take
their own values as settings.
"""

from __future__ import annotations

#: Size of the fixed length prefix before the JSON header, in bytes (">H").
PREFIX_LENGTH = 2

#: Largest JSON header accepted by default, in bytes. The tutorial's headers
#: are about 100 bytes; h11 caps an incomplete HTTP head at the same 16 KiB.
DEFAULT_MAX_HEADER_LENGTH = 16 * 1024

#: Largest content accepted by default, in bytes. A search request is tiny;
#: 1 MiB leaves room for binary payloads while bounding per-connection memory.
DEFAULT_MAX_CONTENT_LENGTH = 1024 * 1024

#: Largest header the 2-byte prefix can describe, in bytes.
MAX_ENCODABLE_HEADER_LENGTH = 0xFFFF

#: Bytes asked of the transport per receive. Big enough to take many
#: pipelined requests in one call, small enough not to matter per connection.
RECEIVE_SIZE = 64 * 1024

#: Content above this many bytes is decoded in a worker thread, so one large
#: request never stalls the event loop for the other connections.
THREAD_DECODE_THRESHOLD = 64 * 1024

#: Seconds one connection may spend answering pipelined requests on the
#: event loop before the other connections get a turn. Each answer made
#: there is cheap, but a 64 KiB read holds hundreds of requests: 450
#: one-typo queries on 10,000 documents held every other connection for
#: 0.48 s. Well above a pipelined batch of searches (16 take about 0.1 ms).
INLINE_TURN_SECONDS = 0.005

#: Worker threads shared by all connections for large-content decoding and
#: queries on large indexes: one per core of the 2-core machines we run on
#: (tantivy releases the GIL while it searches).
DECODE_THREADS = 2

#: Queries on an index of at most this many documents run on the event loop
#: (once the dictionary slices their typos need are read): measured at
#: 0.1-0.4 ms with highlights, about what the hand-off to a worker thread
#: costs (0.2-0.6 ms). Larger indexes, a first read of a dictionary slice
#: (up to 15 ms), queries naming ``fields`` (each field multiplies the
#: terms: 16 fields took 2-11 ms on 10,000 documents) and pages of more than
#: INLINE_QUERY_MAX_HITS go to a worker thread, so that no query stalls the
#: other connections for long.
INLINE_QUERY_MAX_DOCUMENTS = 10_000
#: Most hits a query answered on the event loop may read: reading and
#: highlighting each hit costs about 20 us (on the million generated
#: documents, and on 10,000: a page of 100 took 2.2 ms of CPU against 0.4 ms
#: for 10), so a page of 10 stays near 0.2 ms. Larger pages go to a worker
#: thread like any costly query, whatever the index (a kept ranking too).
INLINE_QUERY_MAX_HITS = 10
#: Longest answer, in characters, that data whose queries run on the event
#: loop has shown: reading, highlighting and encoding a hit costs about
#: 16 ns a character of its answer beyond the highlight's bound (ten
#: answers of 1-10 MB, 40 MB in all: 0.65 s), so a page of ten such hits
#: stays under 1 ms. Once any query has read a longer answer, every query
#: on that data goes to a worker thread; the query that first reads one
#: runs where it was sent.
INLINE_QUERY_MAX_ANSWER_CHARACTERS = 4_096

#: Seconds between checks of an on-disk index for commits made by other
#: processes (``trio-search-index add``): a check is two ``stat`` calls, and
#: a commit is then searched within about this long.
INDEX_POLL_INTERVAL = 0.25

#: Seconds a connection may wait for the first byte of its next request.
DEFAULT_IDLE_TIMEOUT = 60.0

#: Seconds from a request's first byte to its last, and for writing a
#: response to a client that does not read; also bounds a TLS handshake.
DEFAULT_REQUEST_TIMEOUT = 30.0

#: Simultaneous connections served; one more is answered "busy" and closed.
DEFAULT_MAX_CONNECTIONS = 10_000

#: Request bytes all connections together may hold by default: 256 full-size
#: requests, about 1 % of the 24 GiB machines we run on. Past it, requests
#: in progress are read no further until others free room (backpressure).
DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024 * 1024

#: Seconds between checks, while a request waits for room in that budget,
#: of whether its client has closed its side (then its bytes are read at
#: once and freed, rather than held until the request timeout).
PARKED_CHECK_INTERVAL = 0.5

#: Bytes by which the buffered peak must have grown, and below which the
#: bytes held must have fallen, before freed memory is handed back to the
#: system (malloc_trim): a burst of large requests, now over.
TRIM_AFTER_BYTES = 32 * 1024 * 1024

#: Seconds between checks for such a burst.
TRIM_CHECK_INTERVAL = 5.0

#: Seconds a connection accepted just before (or during) a graceful shutdown
#: may take to send its first request, rather than being closed at once:
#: under --workers, a worker still listening for a moment after the signal
#: accepted one-shot clients whose requests were on their way, then closed
#: them unanswered (11 of 460 in the hostile-load suite).
FIRST_REQUEST_GRACE = 0.5

#: Seconds in-flight requests get to finish after a shutdown signal.
DEFAULT_SHUTDOWN_GRACE = 10.0

#: Peers trusted to send a PROXY protocol header unless told otherwise: a
#: balancer on the same machine. Anything wider must be said explicitly.
DEFAULT_TRUSTED_PROXIES = "127.0.0.0/8,::1/128"

#: The tutorial's port.
DEFAULT_PORT = 65432

#: The tutorial's host.
DEFAULT_HOST = "127.0.0.1"

#: Seconds a connection with broken framing is kept half-closed after its
#: error response, discarding input, so the peer can read the response before
#: the close (closing with unread input makes TCP send a reset instead).
LINGER_TIMEOUT = 2.0

#: Seconds the "request_timeout" error response may take to send. The
#: client has just proved slow; a full request timeout more for a client
#: that does not read either would double how long it holds its task.
CLOSING_SEND_TIMEOUT = 2.0

#: Seconds a connection refused as "busy" lingers the same way. Shorter: the
#: server is at its connection limit, and a well-behaved client closes as
#: soon as it has read the answer, which ends the linger at once.
BUSY_LINGER_TIMEOUT = 0.5

#: Bytes discarded at most while lingering, after which the close is abrupt.
LINGER_BYTES = 1024 * 1024

#: Connections accepted at most per wake-up of the accept loop, before it
#: lets them (and everyone else) run: enough to take what arrives while 16
#: to 64 clients connect at once, few enough that a flood of connects cannot
#: keep the other tasks waiting long.
ACCEPT_BATCH = 64

#: Connections the idle poller serves at most per wake-up (each one read of
#: at most RECEIVE_SIZE bytes, answered), before it lets the other tasks
#: run: as ACCEPT_BATCH, a burst's worth without keeping anyone waiting long.
POLL_BATCH = 64

#: Seconds between accept attempts while the process is out of file
#: descriptors or socket memory (EMFILE, ENFILE, ENOMEM, ENOBUFS): the same
#: pause as ``trio.serve_listeners``; short enough to recover at once when a
#: connection closes, long enough not to spin.
ACCEPT_RETRY_DELAY = 0.1

#: Characters of a client's value quoted back in an error answer, at most:
#: enough to recognise it, while a 1 MB action cannot make a 4 MB answer.
MAX_ECHO_LENGTH = 64

#: Characters of an error's reason written to the log, at most. Reasons can
#: quote a peer's header values, which may be up to a header's length long.
MAX_LOGGED_REASON = 200

#: Search replies kept encoded by the application, in entries. Bounded so
#: clients asking for ever new keys cannot grow the server's memory.
REPLY_CACHE_ENTRIES = 4096

#: Longest request content, in bytes, whose reply is kept.
REPLY_CACHE_MAX_CONTENT_LENGTH = 512

#: Longest reply content, in bytes, that is kept: an answer is the user's
#: data, of any length, and a kept reply holds it twice (its content and
#: its bytes on the wire). So at most 4096 x (512 + 2 x 4096) bytes, about
#: 36 MB, of cache, whatever clients send or the data holds; a longer
#: answer costs its encoding again, small beside sending it.
REPLY_CACHE_MAX_REPLY_LENGTH = 4096

#: Tries to give every address of ``--host ''`` the same port when the port
#: is 0 (the kernel picks one per address); each fails only if another
#: program takes the port on the other address in between.
SAME_PORT_ATTEMPTS = 10
