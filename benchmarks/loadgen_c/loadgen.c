/*
 * trio-search-loadgen-c: a verifying load generator for the tutorial's
 * protocol, in C, so that it spends less CPU per request than the servers it
 * measures (the Python one, trio-search-bench, spends about as much as they
 * do on one-shot connections, and its batch sizes then shape what a server
 * sees).
 *
 * Theory of operation
 * -------------------
 * One thread, one epoll instance, N connections, level-triggered.
 *
 * - keepalive: every connection is opened before the clock starts; each then
 *   writes a batch of DEPTH requests in one write and reads until DEPTH
 *   answers are parsed, then writes the next batch.
 * - oneshot: the tutorial's client: connect, write one request, read its
 *   answer, close; N of these at a time. The latency includes the connect.
 *
 * Every answer is framed (2-byte big-endian header length, JSON header with
 * "content-length", content) and checked: a frame equal, byte for byte, to
 * one already found right is right; any other frame is checked properly
 * (content-type "text/json", content equal to {"result": EXPECTED} once
 * JSON whitespace and \u escapes are normalised) and, if right, remembered.
 * So a server that spaces its JSON differently is still checked, and the
 * usual case costs one memcmp.
 *
 * Failures count under the kinds of trio-search-bench: wrong_answer,
 * bad_framing (this and the rest of the batch), closed, timeout,
 * connect_error. A failed keep-alive connection is closed and opened again.
 * Nothing is ever sent again: trio-search-bench's --no-retry behaviour,
 * which is why --no-retry is accepted (and changes nothing).
 *
 * Connections to an IPv4 loopback server come from 64 loopback addresses in
 * turn (127.0.0.2 on), so that a one-shot run is not capped by ephemeral
 * ports in TIME_WAIT (see SOURCE_ADDRESSES).
 *
 * The run ends after --duration seconds (requests in flight are dropped,
 * neither counted nor failed) or once --requests requests are answered or
 * failed. CPU: our own from getrusage, the server's (with --server-pid, the
 * process and all its descendants) from /proc, read just before the clock
 * starts and just after it stops. --json prints the same keys as
 * trio-search-bench --json.
 *
 * Build: cc -O2 -o trio-search-loadgen-c loadgen.c (Linux only: epoll, /proc).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Bytes asked of the kernel per read. */
#define READ_SIZE (64 * 1024)
/* Largest answer frame accepted, in bytes; past it the framing is "broken". */
#define MAX_FRAME (1024 * 1024 + 64 * 1024)
/* Right answer frames remembered for the byte comparison. */
#define KNOWN_GOOD 16
/* Events taken per epoll_wait. */
#define MAX_EVENTS 256
/* Milliseconds between checks of the per-connection timeouts. */
#define TICK_MS 100
/* Seconds a connection waits after a failed connect before trying again. */
#define CONNECT_RETRY_DELAY 0.01
/* Processes looked at in /proc when summing a server's CPU time. */
#define MAX_PROCS 65536
/* Characters of a wrong answer quoted in its description. */
#define QUOTED 200

enum kind { WRONG_ANSWER, BAD_FRAMING, CLOSED, TIMEOUT, CONNECT_ERROR, KINDS };
static const char *KIND_NAMES[KINDS] = {"wrong_answer", "bad_framing", "closed", "timeout",
                                        "connect_error"};

enum state { IDLE, CONNECTING, READING, RETRY };

struct conn {
    int fd;
    enum state state;
    int in_flight;    /* requests of the batch not yet answered */
    double sent_at;   /* when the batch was written (oneshot: when connect began) */
    double deadline;  /* when the batch (or the retry wait) ends */
    unsigned char *buf;
    size_t len;
    size_t cap;
};

/* The run's options. */
static const char *opt_host = "127.0.0.1";
static const char *opt_port = "65432";
static int opt_keepalive = 1;
static int opt_connections = 16;
static int opt_pipeline = 1;
static double opt_duration = 0;
static long long opt_requests = 0;
static double opt_timeout = 10.0;
static const char *opt_query = "morpheus";
static const char *opt_expect = NULL;
static long opt_server_pid = -1;
static int opt_json = 0;

/* The run's state. */
static struct sockaddr_storage server_addr;
/* Connections to an IPv4 loopback server come from SOURCE_ADDRESSES
   loopback addresses from FIRST_SOURCE_ADDRESS (127.0.0.2) on, in turn.
   From one address, a one-shot run is capped by the ephemeral ports still
   in TIME_WAIT (the client closes first; Linux reuses such a port for a
   new connect only a second after its last use, and prefers even ports):
   about 14,000 connections a second on the benchmark machine, with
   connect() searching the port range, which was most of this program's
   CPU per one-shot request. */
#define SOURCE_ADDRESSES 64
#define FIRST_SOURCE_ADDRESS 0x7f000002u
static int spread_sources;
static socklen_t server_addr_len;
static int server_family;
static int epfd;
static unsigned char *request;      /* one request, framed */
static size_t request_len;
static unsigned char *batch;        /* DEPTH requests, one after the other */
static unsigned char *expected;     /* the canonical right content */
static size_t expected_len;
static unsigned char *good[KNOWN_GOOD];
static size_t good_len[KNOWN_GOOD];
static int goods;
static long long remaining;         /* requests not yet claimed */
static long long ok_count;
static long long errors[KINDS];
static char first_error[KINDS][QUOTED + 200];
static float *latencies;
static size_t latency_count, latency_cap;
static volatile sig_atomic_t interrupted;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fputs("trio-search-loadgen-c: ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
    exit(2);
}

static void *checked_malloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p)
        die("out of memory");
    return p;
}

/* ---- what a right answer is ------------------------------------------ */

/* Append the UTF-8 encoding of code point cp to out. */
static size_t put_utf8(unsigned char *out, unsigned cp) {
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hex4(const unsigned char *p, const unsigned char *end, unsigned *value) {
    if (end - p < 4)
        return 0;
    *value = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 0;
        *value = *value * 16 + (unsigned)d;
    }
    return 1;
}

/*
 * JSON text in a canonical form: no whitespace outside strings, and in
 * strings every escape but \" and \\ (and control characters) written out as
 * UTF-8. Two encodings of the same value (with or without spaces, with or
 * without \u escapes) give the same bytes, as long as keys come in the same
 * order. Returns the length written to out (at most 2 * len + 1), or -1 for
 * text that is not well-formed enough to compare.
 */
static long canonical_json(const unsigned char *in, size_t len, unsigned char *out) {
    const unsigned char *p = in, *end = in + len;
    unsigned char *o = out;
    int in_string = 0;
    while (p < end) {
        unsigned char c = *p++;
        if (!in_string) {
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
                continue;
            if (c == '"')
                in_string = 1;
            *o++ = c;
            continue;
        }
        if (c == '"') {
            in_string = 0;
            *o++ = c;
        } else if (c != '\\') {
            *o++ = c;
        } else {
            if (p >= end)
                return -1;
            unsigned char e = *p++;
            unsigned cp;
            switch (e) {
            case '"': case '\\':
                *o++ = '\\';
                *o++ = e;
                break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\\'; *o++ = 'b'; break;
            case 'f': *o++ = '\\'; *o++ = 'f'; break;
            case 'n': *o++ = '\\'; *o++ = 'n'; break;
            case 'r': *o++ = '\\'; *o++ = 'r'; break;
            case 't': *o++ = '\\'; *o++ = 't'; break;
            case 'u':
                if (!hex4(p, end, &cp))
                    return -1;
                p += 4;
                if (cp >= 0xD800 && cp < 0xDC00) {
                    unsigned low;
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, end, &low) ||
                        low < 0xDC00 || low > 0xDFFF)
                        return -1;
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                }
                if (cp < 0x20 || cp == '"' || cp == '\\') {
                    o += sprintf((char *)o, "\\u%04x", cp);
                } else {
                    o += put_utf8(o, cp);
                }
                break;
            default:
                return -1;
            }
        }
    }
    return in_string ? -1 : (long)(o - out);
}

/* s as a JSON string literal (quotes included), into out (6 * len + 3 bytes). */
static size_t json_string(const char *s, unsigned char *out) {
    unsigned char *o = out;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = *p;
        } else if (*p < 0x20) {
            o += sprintf((char *)o, "\\u%04x", *p);
        } else {
            *o++ = *p;
        }
    }
    *o++ = '"';
    return (size_t)(o - out);
}

/* The value of key (a JSON string, quotes included) in a flat JSON object:
 * a pointer just past the colon (whitespace skipped), or NULL. Good enough
 * for the headers servers of this protocol write. */
static const unsigned char *header_value(const unsigned char *h, size_t len, const char *key) {
    size_t key_len = strlen(key);
    const unsigned char *end = h + len;
    const unsigned char *p = memmem(h, len, key, key_len);
    if (!p)
        return NULL;
    p += key_len;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    if (p >= end || *p != ':')
        return NULL;
    p++;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p < end ? p : NULL;
}

static int starts_with(const unsigned char *p, const unsigned char *end, const char *prefix) {
    size_t n = strlen(prefix);
    return (size_t)(end - p) >= n && memcmp(p, prefix, n) == 0;
}

/* Whether a frame not seen before is the right answer (header, content). */
static int is_right_slow(const unsigned char *header, size_t header_len,
                         const unsigned char *content, size_t content_len) {
    const unsigned char *end = header + header_len;
    const unsigned char *type = header_value(header, header_len, "\"content-type\"");
    if (!type || !starts_with(type, end, "\"text/json\""))
        return 0;
    const unsigned char *encoding = header_value(header, header_len, "\"content-encoding\"");
    if (!encoding || !(starts_with(encoding, end, "\"utf-8\"") ||
                       starts_with(encoding, end, "\"utf8\"")))
        return 0;
    unsigned char *canonical = checked_malloc(2 * content_len + 1);
    long n = canonical_json(content, content_len, canonical);
    int right = n == (long)expected_len && memcmp(canonical, expected, expected_len) == 0;
    free(canonical);
    return right;
}

static int is_right(const unsigned char *frame, size_t frame_len, size_t header_len) {
    for (int i = 0; i < goods; i++)
        if (good_len[i] == frame_len && memcmp(good[i], frame, frame_len) == 0)
            return 1;
    if (!is_right_slow(frame + 2, header_len, frame + 2 + header_len,
                       frame_len - 2 - header_len))
        return 0;
    if (goods < KNOWN_GOOD) {
        good[goods] = checked_malloc(frame_len);
        memcpy(good[goods], frame, frame_len);
        good_len[goods++] = frame_len;
    }
    return 1;
}

/* The request and the canonical right content, from --query and --expect. */
static void build_request(void) {
    size_t qlen = strlen(opt_query);
    unsigned char *value = checked_malloc(6 * qlen + 3);
    size_t value_len = json_string(opt_query, value);
    unsigned char *content = checked_malloc(value_len + 64);
    int content_len = sprintf((char *)content, "{\"action\": \"search\", \"value\": %.*s}",
                              (int)value_len, value);
    char header[256];
    int header_len = snprintf(header, sizeof header,
                              "{\"byteorder\": \"little\", \"content-type\": \"text/json\", "
                              "\"content-encoding\": \"utf-8\", \"content-length\": %d}",
                              content_len);
    request_len = 2 + (size_t)header_len + (size_t)content_len;
    request = checked_malloc(request_len);
    request[0] = (unsigned char)(header_len >> 8);
    request[1] = (unsigned char)(header_len & 0xFF);
    memcpy(request + 2, header, (size_t)header_len);
    memcpy(request + 2 + header_len, content, (size_t)content_len);
    batch = checked_malloc(request_len * (size_t)opt_pipeline);
    for (int i = 0; i < opt_pipeline; i++)
        memcpy(batch + (size_t)i * request_len, request, request_len);

    const char *answer = opt_expect;
    char *no_match = NULL;
    if (!answer) {
        /* The built-in index's answers (the tutorial's three entries). */
        if (strcmp(opt_query, "morpheus") == 0)
            answer = "Follow the white rabbit. \xF0\x9F\x90\xB0";
        else if (strcmp(opt_query, "ring") == 0)
            answer = "In the caves beneath the Misty Mountains. \xF0\x9F\x92\x8D";
        else if (strcmp(opt_query, "\xF0\x9F\x90\xB6") == 0)
            answer = "\xF0\x9F\x90\xBE Playing ball! \xF0\x9F\x8F\x90";
        else {
            no_match = checked_malloc(qlen + 32);
            sprintf(no_match, "No match for '%s'.", opt_query);
            answer = no_match;
        }
    }
    size_t alen = strlen(answer);
    unsigned char *literal = checked_malloc(6 * alen + 3);
    size_t literal_len = json_string(answer, literal);
    unsigned char *object = checked_malloc(literal_len + 16);
    size_t object_len = (size_t)sprintf((char *)object, "{\"result\":%.*s}", (int)literal_len,
                                        literal);
    expected = checked_malloc(2 * object_len + 1);
    long n = canonical_json(object, object_len, expected);
    if (n < 0)
        die("cannot encode the expected answer");
    expected_len = (size_t)n;
    free(value);
    free(content);
    free(literal);
    free(object);
    free(no_match);
}

/* ---- counting ------------------------------------------------------------ */

static void fail(enum kind kind, long long count, const char *fmt, ...) {
    if (count <= 0)
        return;
    errors[kind] += count;
    if (!first_error[kind][0]) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(first_error[kind], sizeof first_error[kind], fmt, args);
        va_end(args);
    }
}

static void record_latency(double seconds) {
    if (latency_count == latency_cap) {
        latency_cap = latency_cap ? latency_cap * 2 : 1 << 16;
        latencies = realloc(latencies, latency_cap * sizeof *latencies);
        if (!latencies)
            die("out of memory");
    }
    latencies[latency_count++] = (float)seconds;
}

/* Up to most requests to send; 0 once all are taken. */
static int claim(int most) {
    long long count = remaining < most ? remaining : most;
    remaining -= count;
    return (int)count;
}

/* ---- connections -------------------------------------------------------- */

static void close_conn(struct conn *c) {
    if (c->fd >= 0)
        close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    c->len = 0;
    c->in_flight = 0;
    c->state = IDLE;
}

/* Open a non-blocking connection; 0 on success (connecting or connected). */
static int open_conn(struct conn *c) {
    int fd = socket(server_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (spread_sources) {
        /* From the next of SOURCE_ADDRESSES loopback addresses; the port
           is still chosen by connect (IP_BIND_ADDRESS_NO_PORT). */
        static unsigned next_source;
        struct sockaddr_in source = {.sin_family = AF_INET};
        source.sin_addr.s_addr = htonl(FIRST_SOURCE_ADDRESS + next_source++ % SOURCE_ADDRESSES);
        int one = 1;
        if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) < 0 ||
            bind(fd, (struct sockaddr *)&source, sizeof source) < 0) {
            /* This system does not have them: connect as usual from now on. */
            spread_sources = 0;
            close(fd);
            return open_conn(c);
        }
    }
    if (connect(fd, (struct sockaddr *)&server_addr, server_addr_len) < 0 &&
        errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    c->fd = fd;
    c->len = 0;
    return 0;
}

static void watch(struct conn *c, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
}

/* Fail the batch in flight, close, and retry later (keepalive) or go on. */
static void broken(struct conn *c, enum kind kind, const char *detail) {
    fail(kind, c->in_flight, "%s", detail);
    close_conn(c);
    c->state = RETRY;
    c->deadline = now() + (kind == CONNECT_ERROR ? CONNECT_RETRY_DELAY : 0);
}

/* Write the next batch (or the one request); the connection then reads. */
static void start_exchange(struct conn *c, int count, int fresh) {
    c->in_flight = count;
    c->deadline = now() + opt_timeout;
    if (!fresh)
        c->sent_at = now();
    const unsigned char *data = count == 1 ? request : batch;
    size_t size = request_len * (size_t)count;
    ssize_t n = write(c->fd, data, size);
    if (n == (ssize_t)size) {
        c->state = READING;
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == ENOTCONN) && fresh) {
        /* The connect is not done: write once it is. */
        c->state = CONNECTING;
        watch(c, EPOLLOUT, EPOLL_CTL_MOD);
        return;
    }
    /* Requests are a few hundred bytes: a short write means a broken peer. */
    if (n < 0 && fresh)
        broken(c, CONNECT_ERROR, strerror(errno));
    else
        broken(c, CLOSED, n < 0 ? strerror(errno) : "short write");
}

/* Start a new connection and its first exchange (oneshot), or a batch on a
 * fresh keep-alive connection. */
static void begin(struct conn *c) {
    int count = claim(opt_keepalive ? opt_pipeline : 1);
    if (!count) {
        c->state = IDLE;
        return;
    }
    c->sent_at = now();
    if (c->fd < 0) {
        if (open_conn(c) < 0) {
            c->in_flight = count;
            broken(c, CONNECT_ERROR, strerror(errno));
            return;
        }
        watch(c, EPOLLIN, EPOLL_CTL_ADD);
        start_exchange(c, count, 1);
        return;
    }
    start_exchange(c, count, 0);
}

/* Parse and check the frames in c's buffer. Returns -1 if the connection
 * was closed (broken framing), else 0. */
static int take_answers(struct conn *c, double at) {
    size_t off = 0;
    while (c->in_flight > 0 && c->len - off >= 2) {
        const unsigned char *frame = c->buf + off;
        size_t header_len = ((size_t)frame[0] << 8) | frame[1];
        if (c->len - off < 2 + header_len) {
            if (2 + header_len > MAX_FRAME)
                goto bad;
            break;
        }
        const unsigned char *length = header_value(frame + 2, header_len, "\"content-length\"");
        if (!length || *length < '0' || *length > '9')
            goto bad;
        size_t content_len = 0;
        const unsigned char *header_end = frame + 2 + header_len;
        while (length < header_end && *length >= '0' && *length <= '9' && content_len < MAX_FRAME)
            content_len = content_len * 10 + (size_t)(*length++ - '0');
        size_t frame_len = 2 + header_len + content_len;
        if (frame_len > MAX_FRAME)
            goto bad;
        if (c->len - off < frame_len)
            break;
        if (is_right(frame, frame_len, header_len)) {
            ok_count++;
            record_latency(at - c->sent_at);
        } else {
            size_t shown = content_len < QUOTED ? content_len : QUOTED;
            fail(WRONG_ANSWER, 1, "%.*s: %.*s", (int)header_len, frame + 2, (int)shown,
                 header_end);
        }
        c->in_flight--;
        off += frame_len;
    }
    if (off) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
    return 0;
bad:
    broken(c, BAD_FRAMING, "a frame that is not a valid message");
    return -1;
}

/* The answer (or the rest of the batch) is in: what next. */
static void exchange_done(struct conn *c) {
    if (!opt_keepalive) {
        close_conn(c);
        begin(c);
        return;
    }
    if (c->len) {
        /* More answers than requests: the framing is off. */
        broken(c, BAD_FRAMING, "bytes after the last answer");
        return;
    }
    begin(c);
}

static void on_readable(struct conn *c) {
    for (;;) {
        if (c->cap - c->len < READ_SIZE) {
            c->cap = c->len + READ_SIZE;
            c->buf = realloc(c->buf, c->cap);
            if (!c->buf)
                die("out of memory");
        }
        ssize_t n = read(c->fd, c->buf + c->len, READ_SIZE);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            broken(c, CLOSED, strerror(errno));
            return;
        }
        if (n == 0) {
            broken(c, CLOSED, "the server closed the connection before answering");
            return;
        }
        c->len += (size_t)n;
        if (take_answers(c, now()) < 0)
            return;
        if (c->in_flight == 0) {
            exchange_done(c);
            return;
        }
        if ((size_t)n < READ_SIZE)
            return; /* the kernel had no more; epoll says when it does */
    }
}

static void on_writable(struct conn *c) {
    watch(c, EPOLLIN, EPOLL_CTL_MOD);
    start_exchange(c, c->in_flight, 1);
}

/* Time out batches past their deadline; restart connections due to retry. */
static void tick(struct conn *conns, double t) {
    for (int i = 0; i < opt_connections; i++) {
        struct conn *c = &conns[i];
        if (c->state == RETRY && t >= c->deadline)
            begin(c);
        else if ((c->state == READING || c->state == CONNECTING) && t >= c->deadline)
            broken(c, c->state == CONNECTING ? CONNECT_ERROR : TIMEOUT,
                   "no answer within the timeout");
    }
}

/* ---- CPU time ----------------------------------------------------------- */

static double own_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

/* Parent pid, and user (utime + cutime) and system (stime + cstime) clock
 * ticks, of a /proc entry; 0 if read. */
static int proc_stat(const char *pid, long *ppid, long long *user, long long *system) {
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = 0;
    char *p = strrchr(text, ')');
    if (!p)
        return -1;
    /* After the command name: state ppid ... utime(14) stime cutime cstime. */
    char state;
    long long fields[13];
    if (sscanf(p + 2, "%c %ld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld",
               &state, ppid, &fields[0], &fields[1], &fields[2], &fields[3], &fields[4],
               &fields[5], &fields[6], &fields[7], &fields[8], &fields[9], &fields[10],
               &fields[11], &fields[12]) != 15)
        return -1;
    *user = fields[9] + fields[11];
    *system = fields[10] + fields[12];
    return 0;
}

/* CPU seconds of pid and its descendants (as trio-search-bench counts
 * them), user and system apart; 0, or -1 if pid is gone. */
static int tree_cpu(long pid, double *user_seconds, double *system_seconds) {
    static long members[MAX_PROCS], pids[MAX_PROCS], parents[MAX_PROCS];
    static long long users[MAX_PROCS], systems[MAX_PROCS];
    char name[32];
    long ppid;
    long long user, system;
    snprintf(name, sizeof name, "%ld", pid);
    if (proc_stat(name, &ppid, &user, &system) < 0)
        return -1;
    int entries = 0;
    DIR *dir = opendir("/proc");
    struct dirent *entry;
    while (dir && (entry = readdir(dir)) && entries < MAX_PROCS) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
            continue;
        long child = atol(entry->d_name);
        if (child == pid || proc_stat(entry->d_name, &parents[entries], &users[entries],
                                      &systems[entries]) < 0)
            continue;
        pids[entries++] = child;
    }
    if (dir)
        closedir(dir);
    /* Descendants: children of known members, breadth first. */
    int count = 1;
    members[0] = pid;
    for (int i = 0; i < count; i++)
        for (int j = 0; j < entries && count < MAX_PROCS; j++)
            if (parents[j] == members[i]) {
                members[count++] = pids[j];
                user += users[j];
                system += systems[j];
            }
    double tick = (double)sysconf(_SC_CLK_TCK);
    *user_seconds = (double)user / tick;
    *system_seconds = (double)system / tick;
    return 0;
}

/* ---- report ------------------------------------------------------------- */

static int compare_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile in milliseconds, or -1 without latencies. */
static double percentile_ms(double fraction) {
    if (!latency_count)
        return -1;
    size_t rank = (size_t)(fraction * (double)latency_count + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > latency_count)
        rank = latency_count;
    return latencies[rank - 1] * 1000.0;
}

static void print_number(const char *key, double value, const char *after) {
    if (value < 0)
        printf("\"%s\": null%s", key, after);
    else
        printf("\"%s\": %.4f%s", key, value, after);
}

static void print_json_string(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void report(double elapsed, double client_cpu, double server_cpu, double server_user) {
    qsort(latencies, latency_count, sizeof *latencies, compare_float);
    long long failed = 0;
    for (int k = 0; k < KINDS; k++)
        failed += errors[k];
    double mean = 0;
    for (size_t i = 0; i < latency_count; i++)
        mean += latencies[i];
    mean = latency_count ? mean / (double)latency_count * 1000.0 : -1;
    double rps = elapsed > 0 ? (double)ok_count / elapsed : 0;
    double client_us = ok_count ? client_cpu / (double)ok_count * 1e6 : -1;
    double server_us = ok_count && server_cpu >= 0 ? server_cpu / (double)ok_count * 1e6 : -1;
    double user_us = ok_count && server_cpu >= 0 ? server_user / (double)ok_count * 1e6 : -1;
    if (!opt_json) {
        printf("%lld right answers in %.2f s: %.0f requests/s, %lld failed\n", ok_count,
               elapsed, rps, failed);
        printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", percentile_ms(0.5),
               percentile_ms(0.9), percentile_ms(0.99), percentile_ms(1.0));
        for (int k = 0; k < KINDS; k++)
            if (errors[k])
                printf("  %s: %lld (first: %s)\n", KIND_NAMES[k], errors[k], first_error[k]);
        printf("load generator CPU: %.2f µs/request\n", client_us);
        if (server_us >= 0)
            printf("server CPU: %.2f µs/request (%.2f user, %.2f system)\n", server_us, user_us,
                   server_us - user_us);
        return;
    }
    printf("{\"load_generator\": \"c\", \"host\": ");
    print_json_string(opt_host);
    printf(", \"port\": %s, \"tls\": false, \"mode\": \"%s\", \"connections\": %d, "
           "\"pipeline\": %d, ",
           opt_port, opt_keepalive ? "keepalive" : "oneshot", opt_connections, opt_pipeline);
    if (opt_duration > 0)
        printf("\"duration_requested\": %g, \"requests_requested\": null, ", opt_duration);
    else
        printf("\"duration_requested\": null, \"requests_requested\": %lld, ", opt_requests);
    printf("\"elapsed\": %.6f, \"ok\": %lld, \"failed\": %lld, \"errors\": {", elapsed, ok_count,
           failed);
    const char *sep = "";
    for (int k = 0; k < KINDS; k++)
        if (errors[k]) {
            printf("%s\"%s\": %lld", sep, KIND_NAMES[k], errors[k]);
            sep = ", ";
        }
    printf("}, \"first_errors\": {");
    sep = "";
    for (int k = 0; k < KINDS; k++)
        if (errors[k]) {
            printf("%s\"%s\": ", sep, KIND_NAMES[k]);
            print_json_string(first_error[k]);
            sep = ", ";
        }
    printf("}, \"requests_per_second\": %.2f, \"latency_ms\": {", rps);
    print_number("p50", percentile_ms(0.5), ", ");
    print_number("p90", percentile_ms(0.9), ", ");
    print_number("p99", percentile_ms(0.99), ", ");
    print_number("max", percentile_ms(1.0), ", ");
    print_number("mean", mean, "}, ");
    printf("\"client_cpu_seconds\": %.4f, ", client_cpu);
    print_number("client_cpu_us_per_request", client_us, ", ");
    if (opt_server_pid >= 0)
        printf("\"server_pid\": %ld, ", opt_server_pid);
    else
        printf("\"server_pid\": null, ");
    print_number("server_cpu_seconds", server_cpu, ", ");
    print_number("server_cpu_us_per_request", server_us, ", ");
    print_number("server_user_us_per_request", user_us, ", ");
    print_number("server_system_us_per_request", server_us >= 0 ? server_us - user_us : -1,
                 "}\n");
}

/* ---- main ------------------------------------------------------------- */

static void usage(void) {
    fputs("usage: trio-search-loadgen-c [HOST [PORT]] [--mode keepalive|oneshot] [-c N]\n"
          "       [-p DEPTH] [-d SECONDS | -n REQUESTS] [--timeout S] [-q KEY]\n"
          "       [--expect TEXT] [--server-pid PID] [--json] [--quiet] [--no-retry]\n",
          stderr);
    exit(2);
}

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static void parse_args(int argc, char **argv) {
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define VALUE() (next ? (i++, next) : (usage(), ""))
        if (!strcmp(a, "--mode")) {
            const char *mode = VALUE();
            if (!strcmp(mode, "oneshot"))
                opt_keepalive = 0;
            else if (!strcmp(mode, "keepalive"))
                opt_keepalive = 1;
            else
                usage();
        } else if (!strcmp(a, "-c") || !strcmp(a, "--connections"))
            opt_connections = atoi(VALUE());
        else if (!strcmp(a, "-p") || !strcmp(a, "--pipeline"))
            opt_pipeline = atoi(VALUE());
        else if (!strcmp(a, "-d") || !strcmp(a, "--duration"))
            opt_duration = atof(VALUE());
        else if (!strcmp(a, "-n") || !strcmp(a, "--requests"))
            opt_requests = atoll(VALUE());
        else if (!strcmp(a, "--timeout"))
            opt_timeout = atof(VALUE());
        else if (!strcmp(a, "-q") || !strcmp(a, "--query"))
            opt_query = VALUE();
        else if (!strcmp(a, "--expect"))
            opt_expect = VALUE();
        else if (!strcmp(a, "--server-pid"))
            opt_server_pid = atol(VALUE());
        else if (!strcmp(a, "--json"))
            opt_json = 1;
        else if (!strcmp(a, "--quiet"))
            ; /* no progress lines are printed anyway */
        else if (!strcmp(a, "--no-retry"))
            ; /* nothing is ever sent again anyway */
        else if (a[0] == '-')
            usage();
        else if (positional == 0)
            opt_host = a, positional++;
        else if (positional == 1)
            opt_port = a, positional++;
        else
            usage();
#undef VALUE
    }
    if (opt_connections < 1 || opt_pipeline < 1 || opt_timeout <= 0 || opt_duration < 0 ||
        opt_requests < 0 || (opt_duration > 0 && opt_requests > 0))
        usage();
    if (!opt_keepalive)
        opt_pipeline = 1;
    if (opt_duration == 0 && opt_requests == 0)
        opt_duration = 10;
}

static void resolve(void) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *info;
    int rc = getaddrinfo(opt_host, opt_port, &hints, &info);
    if (rc != 0)
        die("cannot resolve %s: %s", opt_host, gai_strerror(rc));
    memcpy(&server_addr, info->ai_addr, info->ai_addrlen);
    server_addr_len = info->ai_addrlen;
    server_family = info->ai_family;
    freeaddrinfo(info);
    if (server_family == AF_INET &&
        ntohl(((struct sockaddr_in *)&server_addr)->sin_addr.s_addr) >> 24 == 127)
        spread_sources = 1;
}

/* Keep-alive: connect every connection before the clock starts. */
static void connect_all(struct conn *conns) {
    double deadline = now() + opt_timeout;
    int pending = 0;
    for (int i = 0; i < opt_connections; i++) {
        if (open_conn(&conns[i]) < 0) {
            conns[i].fd = -1;
            continue;
        }
        conns[i].state = CONNECTING;
        watch(&conns[i], EPOLLOUT, EPOLL_CTL_ADD);
        pending++;
    }
    struct epoll_event events[MAX_EVENTS];
    while (pending > 0 && now() < deadline) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, TICK_MS);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->state != CONNECTING)
                continue;
            int error = 0;
            socklen_t len = sizeof error;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len);
            pending--;
            if (error) {
                close_conn(c);
                continue;
            }
            c->state = IDLE;
            watch(c, EPOLLIN, EPOLL_CTL_MOD);
        }
    }
    for (int i = 0; i < opt_connections; i++)
        if (conns[i].state == CONNECTING)
            close_conn(&conns[i]); /* the task connects again, counting failures */
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    resolve();
    build_request();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    remaining = opt_requests > 0 ? opt_requests : (long long)1 << 62;
    struct conn *conns = calloc((size_t)opt_connections, sizeof *conns);
    if (!conns)
        die("out of memory");
    for (int i = 0; i < opt_connections; i++)
        conns[i].fd = -1;
    if (opt_keepalive)
        connect_all(conns);

    double user_start = 0, system_start = 0;
    int server_known = opt_server_pid >= 0 && tree_cpu(opt_server_pid, &user_start,
                                                        &system_start) == 0;
    double client_start = own_cpu();
    double started = now();
    double end = opt_duration > 0 ? started + opt_duration : 0;
    for (int i = 0; i < opt_connections; i++)
        begin(&conns[i]);

    struct epoll_event events[MAX_EVENTS];
    double next_tick = started + TICK_MS / 1000.0;
    for (;;) {
        if (interrupted)
            break;
        double t = now();
        if (end && t >= end)
            break;
        if (opt_requests > 0 && ok_count + errors[0] + errors[1] + errors[2] + errors[3] +
                                        errors[4] >= opt_requests)
            break;
        if (t >= next_tick) {
            tick(conns, t);
            next_tick = t + TICK_MS / 1000.0;
        }
        int wait_ms = TICK_MS;
        if (end && (end - t) * 1000 < wait_ms)
            wait_ms = (int)((end - t) * 1000) + 1;
        int n = epoll_wait(epfd, events, MAX_EVENTS, wait_ms);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->state == CONNECTING)
                on_writable(c);
            else if (c->state == READING)
                on_readable(c);
            else if (c->fd >= 0 && c->state == IDLE) {
                /* Bytes (or a close) on a connection with nothing asked. */
                broken(c, CLOSED, "the server sent or closed while nothing was asked");
            }
        }
    }
    double elapsed = now() - started;
    if (end && !interrupted && elapsed > opt_duration)
        elapsed = opt_duration;
    double client_cpu = own_cpu() - client_start;
    double server_cpu = -1, server_user = -1, user_end, system_end;
    if (server_known && tree_cpu(opt_server_pid, &user_end, &system_end) == 0) {
        server_user = user_end - user_start;
        server_cpu = server_user + system_end - system_start;
    }
    report(elapsed, client_cpu, server_cpu, server_user);
    for (int i = 0; i < opt_connections; i++)
        close_conn(&conns[i]);
    long long failed = 0;
    for (int k = 0; k < KINDS; k++)
        failed += errors[k];
    return failed || !ok_count ? 1 : 0;
}
