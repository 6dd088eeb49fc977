/* claude-auditlog: a tamper-evident piped logger for mod_claude's audit log,
 * and its verifier.
 *
 *   CustomLog "|/usr/local/bin/claude-auditlog -k key.pem /var/log/a2/audit.json" claude_json
 *   claude-auditlog verify -p pub.pem audit.json.20260101000000.1000 audit.json
 *
 * The writer chains every line it reads on stdin (see ca_chain.h) and signs
 * the chain head in checkpoint lines. httpd may run two loggers on one file
 * at once: on a graceful restart the old logger drains the pipe of the old
 * children while the new one serves the new children. So the chain head is
 * not trusted from memory: every batch of lines is written under an flock on
 * <file>.lock, after checking that the file is still the one we have open and
 * has the size we left it at; otherwise the head is re-read from the file's
 * tail, or from <file>.state when the file was moved away. */
#define _GNU_SOURCE /* memmem, ppoll */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "ca_chain.h"

/* Enough of a file's end to hold its last two chained lines. */
#define AL_TAIL_MAX (2 * CA_LINE_BUF)

#define AL_EXIT_OK 0
#define AL_EXIT_TAMPERED 1
#define AL_EXIT_USAGE 2

static const char al_usage[] =
    "usage: claude-auditlog [-k key.pem] [-n lines] [-t seconds] [-s bytes[K|M|G]] [-f] FILE\n"
    "       claude-auditlog verify [-p pubkey.pem] FILE...\n"
    "  -k  Ed25519 private key (PEM) that signs checkpoints; without it, chain only\n"
    "  -n  a checkpoint every N lines (default 1000, 0: never)\n"
    "  -t  a checkpoint every N seconds when lines were written (default 60, 0: never)\n"
    "  -s  rotate before the file would exceed this size\n"
    "  -f  fsync the file at every checkpoint\n"
    "  -p  the public (or private) key whose checkpoints verify\n";

static volatile sig_atomic_t al_term;

/* --- stderr, which httpd sends to its error log --------------------------- */

/* At most 10 messages per 10 seconds: a full disk must not flood the error
 * log with one message per request. Never called with log content. */
__attribute__((format(printf, 1, 2))) static void al_err(const char *fmt, ...)
{
    static time_t window;
    static unsigned printed, suppressed;
    time_t now = time(NULL);
    va_list ap;

    if (now - window >= 10) {
        if (suppressed > 0) {
            fprintf(stderr, "claude-auditlog: %u more messages suppressed\n", suppressed);
        }
        window = now;
        printed = suppressed = 0;
    }
    if (printed >= 10) {
        suppressed++;
        return;
    }
    printed++;
    fputs("claude-auditlog: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static const char *al_basename(const char *path)
{
    const char *s = strrchr(path, '/');

    return s ? s + 1 : path;
}

static EVP_PKEY *al_load_key(const char *path, int want_private)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *key = NULL;

    if (f == NULL) {
        fprintf(stderr, "claude-auditlog: cannot open key %s: %s\n", path, strerror(errno));
        return NULL;
    }
    if (!want_private) {
        key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
        if (key == NULL) {
            rewind(f);
        }
    }
    if (key == NULL) {
        key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    }
    fclose(f);
    if (key == NULL || !EVP_PKEY_is_a(key, "ED25519")) {
        fprintf(stderr, "claude-auditlog: %s is not an Ed25519 %s key in PEM\n", path,
                want_private ? "private" : "public or private");
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

/* Strict decimal with an optional K/M/G suffix (powers of 1024). */
static int al_number(const char *s, int suffix, long long *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || v < 0) {
        return -1;
    }
    if (suffix && *end != '\0' && end[1] == '\0') {
        int shift = *end == 'K' || *end == 'k'   ? 10
                    : *end == 'M' || *end == 'm' ? 20
                    : *end == 'G' || *end == 'g' ? 30
                                                 : -1;
        if (shift < 0 || v > (LLONG_MAX >> shift)) {
            return -1;
        }
        v <<= shift;
        end++;
    }
    if (*end != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}

/* ========================================================================= */
/* The writer                                                                */
/* ========================================================================= */

typedef struct al_writer_t {
    const char *path;
    char lock_path[PATH_MAX], state_path[PATH_MAX];
    int fd, lock_fd;
    dev_t dev;
    ino_t ino;
    off_t size;   /* what the file holds after our last write; -1: unknown */
    uint64_t seq; /* the chain head */
    char hash[CA_HEX_LEN + 1];
    uint64_t state_seq; /* what the state file holds */
    int head_only;      /* the file holds nothing but its _rotated_from line */
    int head_signed;    /* the chain head is a checkpoint: nothing to sign */
    EVP_PKEY *key;
    long long every_n, every_t, max_size;
    int fsync_ckpt;
    uint64_t since_ckpt; /* lines this process wrote since its last checkpoint */
    struct timespec last_ckpt;
    uint64_t dropped; /* lines lost to write errors, recorded at the next write */
    char out[CA_LINE_BUF];
    char tail[AL_TAIL_MAX + 1], tail_content[AL_TAIL_MAX + 1];
} al_writer_t;

static double al_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static int al_open(al_writer_t *w)
{
    struct stat st;

    /* O_RDWR: the tail is read back through the same descriptor */
    w->fd = open(w->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (w->fd < 0) {
        al_err("cannot open %s: %s", w->path, strerror(errno));
        return -1;
    }
    if (fstat(w->fd, &st) != 0) {
        al_err("cannot stat %s: %s", w->path, strerror(errno));
        close(w->fd);
        w->fd = -1;
        return -1;
    }
    w->dev = st.st_dev;
    w->ino = st.st_ino;
    w->size = -1;
    return 0;
}

static int al_read_state(al_writer_t *w, uint64_t *seq, char *hash)
{
    char buf[256];
    ssize_t n;
    int fd = open(w->state_path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return -1;
    }
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n <= 0 || ca_state_parse(buf, (size_t)n, seq, hash) != 0) {
        al_err("%s is unreadable, ignored", w->state_path);
        return -1;
    }
    return 0;
}

/* Atomically, so that a crash leaves the old state or the new, never half. */
static void al_write_state(al_writer_t *w)
{
    char tmp[PATH_MAX + 32], buf[256];
    size_t n;
    int fd;

    if (w->seq == w->state_seq) {
        return;
    }
    n = ca_state_format(w->seq, w->hash, buf, sizeof(buf));
    snprintf(tmp, sizeof(tmp), "%s.%ld", w->state_path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0 || write(fd, buf, n) != (ssize_t)n || close(fd) != 0 ||
        rename(tmp, w->state_path) != 0) {
        al_err("cannot write %s: %s", w->state_path, strerror(errno));
        if (fd >= 0) {
            unlink(tmp);
        }
        return;
    }
    w->state_seq = w->seq;
}

/* One write(2) per line: O_APPEND keeps concurrent lines whole, and a failed
 * write is cut back off so that no half line stays in the file. */
static int al_write_raw(al_writer_t *w, const char *buf, size_t n)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = write(w->fd, buf + done, n - done);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            al_err("cannot write to %s: %s", w->path, r < 0 ? strerror(errno) : "short write");
            if (done > 0 && ftruncate(w->fd, w->size) != 0) {
                al_err("cannot cut a partial line off %s: %s", w->path, strerror(errno));
                w->size = -1;
            }
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

/* Chains and writes one line; no rotation, no counting. */
static int al_append(al_writer_t *w, const char *content, size_t len)
{
    char hash[CA_HEX_LEN + 1];
    size_t n;

    if (w->fd < 0 || w->size < 0) {
        return -1;
    }
    n = ca_chain_line(content, len, w->seq + 1, w->hash, w->out, sizeof(w->out), hash);
    if (n == 0) {
        al_err("cannot chain line %" PRIu64, w->seq + 1);
        return -1;
    }
    if (al_write_raw(w, w->out, n) != 0) {
        return -1;
    }
    w->size += (off_t)n;
    w->seq++;
    memcpy(w->hash, hash, sizeof(hash));
    w->head_only = ca_content_kind(content, len) == CA_KIND_ROTATED;
    w->head_signed = ca_content_kind(content, len) == CA_KIND_CHECKPOINT;
    return 0;
}

/* The first line of a file that continues a chain. */
static int al_write_header(al_writer_t *w, const char *from, int external)
{
    char buf[2048];
    size_t n = ca_rotated_format(from, w->seq, w->hash, external, buf, sizeof(buf));

    return n > 0 ? al_append(w, buf, n) : -1;
}

/* The chain head from the last chained line of the file's tail. */
static int al_head_from_tail(al_writer_t *w, off_t size)
{
    off_t off = size > AL_TAIL_MAX ? size - AL_TAIL_MAX : 0;
    ssize_t n = pread(w->fd, w->tail, (size_t)(size - off), off);
    size_t end, start, clen;
    int skipped = 0;
    ca_link_t link;

    if (n < 0) {
        al_err("cannot read %s: %s", w->path, strerror(errno));
        return -1;
    }
    end = (size_t)n;
    while (end > 0) {
        /* the line is tail[start..end), its newline at tail[end] (or EOF) */
        if (w->tail[end - 1] == '\n') {
            end--;
        }
        start = end;
        while (start > 0 && w->tail[start - 1] != '\n') {
            start--;
        }
        if (start == 0 && off > 0) {
            break; /* the window cut this line */
        }
        if (ca_parse_line(w->tail + start, end - start, &link, w->tail_content, &clen) == 0) {
            w->seq = link.seq;
            memcpy(w->hash, link.hash, sizeof(w->hash));
            w->head_only = ca_content_kind(w->tail_content, clen) == CA_KIND_ROTATED;
            w->head_signed = ca_content_kind(w->tail_content, clen) == CA_KIND_CHECKPOINT;
            if (skipped) {
                al_err("%s ends in %d line(s) without chain fields; chaining after seq %" PRIu64,
                       w->path, skipped, link.seq);
            }
            return 0;
        }
        skipped++;
        end = start;
    }
    return -1;
}

/* The file is not as we left it (first batch, another logger wrote, it was
 * moved or truncated): find the chain head again. */
static void al_resync(al_writer_t *w, off_t size)
{
    uint64_t seq;
    char hash[CA_HEX_LEN + 1], last;

    w->head_only = w->head_signed = 0;
    if (size > 0) {
        if (pread(w->fd, &last, 1, size - 1) == 1 && last != '\n') {
            /* a crash mid-line: end it, the verifier will name it */
            al_err("%s ended in a partial line", w->path);
            if (write(w->fd, "\n", 1) == 1) {
                size++;
            }
        }
        w->size = size;
        if (al_head_from_tail(w, size) == 0) {
            return;
        }
        if (al_read_state(w, &seq, hash) == 0) {
            w->seq = seq;
            memcpy(w->hash, hash, sizeof(hash));
        }
        al_err("%s holds no chained line; chaining after seq %" PRIu64, w->path, w->seq);
        return;
    }
    /* empty: new, or an external logrotate moved the old one away; then the
     * state file knows where the chain stands */
    w->size = 0;
    if (al_read_state(w, &seq, hash) == 0) {
        w->seq = seq;
        memcpy(w->hash, hash, sizeof(hash));
    }
    if (w->seq > 0) {
        al_write_header(w, al_basename(w->path), 1);
    }
}

/* Makes w->fd the file at w->path, with the chain head current. */
static int al_sync(al_writer_t *w)
{
    struct stat st;

    if (w->fd >= 0 && (stat(w->path, &st) != 0 || st.st_dev != w->dev || st.st_ino != w->ino)) {
        close(w->fd); /* moved away or deleted: carry on in a new file */
        w->fd = -1;
    }
    if (w->fd < 0 && al_open(w) != 0) {
        return -1;
    }
    if (fstat(w->fd, &st) != 0) {
        al_err("cannot stat %s: %s", w->path, strerror(errno));
        return -1;
    }
    if (st.st_size != w->size) {
        al_resync(w, st.st_size);
    }
    return 0;
}

static void al_begin(al_writer_t *w)
{
    if (w->lock_fd >= 0) {
        while (flock(w->lock_fd, LOCK_EX) != 0 && errno == EINTR) {
        }
    }
    al_sync(w);
}

static void al_end(al_writer_t *w)
{
    if (w->fd >= 0) {
        al_write_state(w);
    }
    if (w->lock_fd >= 0) {
        flock(w->lock_fd, LOCK_UN);
    }
}

static void al_checkpoint(al_writer_t *w)
{
    ca_checkpoint_t cp;
    char buf[CA_CHECKPOINT_MAX];
    size_t n;

    if (w->key == NULL || w->seq == 0) {
        return;
    }
    if (w->head_signed) {
        /* another logger on this file signed the head already */
        w->since_ckpt = 0;
        clock_gettime(CLOCK_MONOTONIC, &w->last_ckpt);
        return;
    }
    memset(&cp, 0, sizeof(cp));
    cp.seq = w->seq;
    memcpy(cp.hash, w->hash, sizeof(cp.hash));
    cp.time = (int64_t)time(NULL);
    if (ca_checkpoint_sign(w->key, &cp) != 0 ||
        (n = ca_checkpoint_format(&cp, buf, sizeof(buf))) == 0) {
        al_err("cannot sign a checkpoint");
        return;
    }
    if (al_append(w, buf, n) != 0) {
        return;
    }
    w->since_ckpt = 0;
    clock_gettime(CLOCK_MONOTONIC, &w->last_ckpt);
    if (w->fsync_ckpt && fsync(w->fd) != 0) {
        al_err("cannot fsync %s: %s", w->path, strerror(errno));
    }
}

/* -s: the old file ends signed, the new one starts by naming it. */
static void al_rotate(al_writer_t *w)
{
    char name[PATH_MAX + 64], ts[32];
    time_t now = time(NULL);
    struct tm tm;
    struct stat st;

    al_checkpoint(w); /* also lines another logger wrote */
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y%m%d%H%M%S", &tm);
    snprintf(name, sizeof(name), "%s.%s.%" PRIu64, w->path, ts, w->seq);
    if (rename(w->path, name) != 0) {
        al_err("cannot rotate %s: %s", w->path, strerror(errno));
        return;
    }
    close(w->fd);
    if (al_open(w) != 0 || fstat(w->fd, &st) != 0) {
        return;
    }
    if (st.st_size != 0) {
        al_resync(w, st.st_size);
        return;
    }
    w->size = 0;
    al_write_header(w, al_basename(name), 0);
}

/* One line from httpd. */
static void al_emit(al_writer_t *w, const char *content, size_t len)
{
    char buf[64];
    size_t n;

    if (w->fd < 0 || w->size < 0) {
        w->dropped++;
        return;
    }
    if (w->dropped > 0 && (n = ca_dropped_format(w->dropped, buf, sizeof(buf))) > 0 &&
        al_append(w, buf, n) == 0) {
        al_err("recorded %" PRIu64 " lost line(s) in %s", w->dropped, w->path);
        w->dropped = 0;
    }
    if (w->max_size > 0 && !w->head_only && w->size > 0 &&
        (long long)w->size + (long long)(len + CA_CHAIN_OVERHEAD) +
                (w->key ? CA_CHECKPOINT_MAX : 0) >
            w->max_size) {
        al_rotate(w);
    }
    if (al_append(w, content, len) != 0) {
        w->dropped++;
        return;
    }
    w->since_ckpt++;
    if (w->key && w->every_n > 0 && w->since_ckpt >= (uint64_t)w->every_n) {
        al_checkpoint(w);
    }
}

static void al_emit_truncated(al_writer_t *w, const char *head, size_t head_len, uint64_t orig)
{
    static char buf[CA_MAX_CONTENT + 1];
    size_t n = ca_truncated(head, head_len, orig, buf, sizeof(buf));

    al_err("a line of %" PRIu64 " bytes was truncated (seq %" PRIu64 ")", orig, w->seq + 1);
    al_emit(w, buf, n);
}

/* A line from httpd: it may not pose as one of our checkpoints. */
static void al_emit_input(al_writer_t *w, const char *line, size_t len)
{
    static char buf[CA_MAX_CONTENT];
    size_t n = ca_wrap_reserved(line, len, buf, sizeof(buf));

    if (n > 0) {
        al_emit(w, buf, n);
    }
    else if (ca_content_kind(line, len) != CA_KIND_RECORD) {
        al_emit_truncated(w, line, len, len); /* no room to wrap it */
    }
    else {
        al_emit(w, line, len);
    }
}

static void al_on_term(int sig)
{
    (void)sig;
    al_term = 1;
}

static int al_writer_run(al_writer_t *w)
{
    static char in[CA_MAX_CONTENT + 1], head[CA_MAX_CONTENT];
    size_t have = 0, scanned = 0, head_len = 0;
    uint64_t orig = 0;
    int discarding = 0, term_done = 0;
    struct sigaction sa;
    sigset_t term, waiting;

    /* SIGTERM is only let in while ppoll() waits, so it cannot slip in
     * between the check of al_term and the wait */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = al_on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGINT);
    sigprocmask(SIG_BLOCK, &term, &waiting);
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGINT);

    /* open (and create) the file now, so that a wrong path shows at start */
    al_begin(w);
    al_end(w);
    clock_gettime(CLOCK_MONOTONIC, &w->last_ckpt);

    for (;;) {
        struct pollfd pfd = {0, POLLIN, 0};
        struct timespec ts, *tsp = NULL;
        int r, in_batch = 0;
        size_t start = 0;
        ssize_t n;

        /* httpd sends SIGTERM on restart and stop, but the old children may
         * still log into our pipe: sign now, and keep reading until EOF */
        if (al_term && !term_done) {
            term_done = 1;
            if (w->since_ckpt > 0) {
                al_begin(w);
                al_checkpoint(w);
                al_end(w);
            }
        }
        if (w->key && w->every_t > 0 && w->since_ckpt > 0) {
            double left = (double)w->every_t - al_since(&w->last_ckpt);
            if (left < 0) {
                left = 0;
            }
            ts.tv_sec = (time_t)left;
            ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
            tsp = &ts;
        }
        r = ppoll(&pfd, 1, tsp, &waiting);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            al_err("ppoll: %s", strerror(errno));
            break;
        }
        if (r == 0) {
            /* also when signing fails: no busy loop on a full disk */
            clock_gettime(CLOCK_MONOTONIC, &w->last_ckpt);
            al_begin(w);
            al_checkpoint(w);
            al_end(w);
            continue;
        }
        n = read(0, in + have, sizeof(in) - have);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            al_err("read: %s", strerror(errno));
            break;
        }
        if (n == 0) {
            break;
        }
        have += (size_t)n;
        if (discarding) {
            char *nl = memchr(in, '\n', have);
            if (nl == NULL) {
                orig += have;
                have = 0;
                continue;
            }
            orig += (uint64_t)(nl - in);
            al_begin(w);
            in_batch = 1;
            al_emit_truncated(w, head, head_len, orig);
            discarding = 0;
            start = scanned = (size_t)(nl - in) + 1;
        }
        for (;;) {
            char *nl = memchr(in + scanned, '\n', have - scanned);
            size_t len;

            if (nl == NULL) {
                scanned = have;
                break;
            }
            len = (size_t)(nl - (in + start));
            if (len > 0 && in[start + len - 1] == '\r') {
                len--;
            }
            if (!in_batch) {
                al_begin(w);
                in_batch = 1;
            }
            al_emit_input(w, in + start, len);
            start = scanned = (size_t)(nl - in) + 1;
        }
        if (in_batch) {
            al_end(w);
        }
        memmove(in, in + start, have - start);
        have -= start;
        scanned -= start;
        if (have == sizeof(in)) {
            /* longer than CA_MAX_CONTENT: keep the head, skip to the newline */
            memcpy(head, in, sizeof(head));
            head_len = sizeof(head);
            orig = have;
            have = scanned = 0;
            discarding = 1;
        }
    }
    /* EOF: what is left is the last line, even without its newline */
    al_begin(w);
    if (discarding) {
        al_emit_truncated(w, head, head_len, orig + have);
    }
    else if (have > 0) {
        al_emit_input(w, in, have);
    }
    if (w->since_ckpt > 0) {
        al_checkpoint(w);
    }
    al_end(w);
    if (w->dropped > 0) {
        al_err("%" PRIu64 " line(s) could not be written to %s", w->dropped, w->path);
    }
    return AL_EXIT_OK;
}

static int al_writer_main(int argc, char **argv)
{
    static al_writer_t w;
    const char *key_path = NULL;
    long long v;
    int c;

    memset(&w, 0, sizeof(w));
    w.fd = w.lock_fd = -1;
    w.size = -1;
    w.every_n = 1000;
    w.every_t = 60;
    memcpy(w.hash, CA_ZERO_HASH, sizeof(w.hash));
    while ((c = getopt(argc, argv, "k:n:t:s:f")) != -1) {
        switch (c) {
        case 'k':
            key_path = optarg;
            break;
        case 'n':
        case 't':
        case 's':
            if (al_number(optarg, c == 's', &v) != 0) {
                fprintf(stderr, "claude-auditlog: bad -%c %s\n%s", c, optarg, al_usage);
                return AL_EXIT_USAGE;
            }
            *(c == 'n' ? &w.every_n : c == 't' ? &w.every_t : &w.max_size) = v;
            break;
        case 'f':
            w.fsync_ckpt = 1;
            break;
        default:
            fputs(al_usage, stderr);
            return AL_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fputs(al_usage, stderr);
        return AL_EXIT_USAGE;
    }
    w.path = argv[optind];
    if (strlen(w.path) + 16 > sizeof(w.lock_path)) {
        fprintf(stderr, "claude-auditlog: path too long\n");
        return AL_EXIT_USAGE;
    }
    snprintf(w.lock_path, sizeof(w.lock_path), "%s.lock", w.path);
    snprintf(w.state_path, sizeof(w.state_path), "%s.state", w.path);
    if (key_path != NULL) {
        /* a logger that silently stopped signing would defeat the audit */
        if ((w.key = al_load_key(key_path, 1)) == NULL) {
            return AL_EXIT_USAGE;
        }
    }
    else {
        fprintf(stderr, "claude-auditlog: no -k key: %s is chained but not signed\n", w.path);
    }
    w.lock_fd = open(w.lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (w.lock_fd < 0) {
        al_err("cannot open %s (%s): running unlocked", w.lock_path, strerror(errno));
    }
    c = al_writer_run(&w);
    EVP_PKEY_free(w.key);
    return c;
}

/* ========================================================================= */
/* The verifier                                                              */
/* ========================================================================= */

/* A line that broke the chain, judged once the next line shows whether the
 * chain goes on without it. */
typedef struct al_break_t {
    int active, forks; /* forks: it links where the line before it links */
    const char *file;
    uint64_t lineno;
    ca_link_t link;
    const char *kind;
    char detail[256];
} al_break_t;

typedef struct al_verify_t {
    EVP_PKEY *pub;
    char key_id[CA_KEY_ID_LEN + 1];
    uint64_t lines, checkpoints, verified, unsigned_lines;
    int started;
    ca_link_t last; /* the last line that chained */
    const char *last_file;
    uint64_t last_lineno;
    const char *tail_file; /* first line after the last checkpoint */
    uint64_t tail_lineno;
    al_break_t brk;
    char *content;
    size_t content_cap;
} al_verify_t;

static void al_problem(const char *file, uint64_t lineno, const char *kind, const char *detail)
{
    printf("%s:%" PRIu64 ": %s: %s\n", file, lineno, kind, detail);
}

/* Decides what the pending break was, given the line after it (or NULL). */
static void al_judge_break(al_verify_t *v, const ca_link_t *next)
{
    al_break_t *b = &v->brk;

    if (next != NULL && strcmp(next->prev, v->last.hash) == 0 && next->seq == v->last.seq + 1) {
        al_problem(b->file, b->lineno, "inserted",
                   "the chain goes on without this line: it was added");
    }
    else if (next != NULL && b->forks && strcmp(next->prev, b->link.hash) == 0 &&
             next->seq == b->link.seq + 1) {
        al_problem(v->last_file, v->last_lineno, "inserted",
                   "the next line links past this one: it was added");
    }
    else {
        al_problem(b->file, b->lineno, b->kind, b->detail);
    }
}

/* 0: the line chains; 1: the first problem was reported; 2: a break pends. */
static int al_verify_line(al_verify_t *v, const char *file, uint64_t lineno, const char *line,
                          size_t len)
{
    ca_link_t link;
    ca_checkpoint_t cp;
    char hash[CA_HEX_LEN + 1], detail[256];
    size_t clen;
    ca_kind_e kind;

    memset(&cp, 0, sizeof(cp));
    if (len + 2 > v->content_cap) {
        free(v->content);
        v->content_cap = len + 2;
        v->content = malloc(v->content_cap);
        if (v->content == NULL) {
            fprintf(stderr, "claude-auditlog: out of memory\n");
            exit(AL_EXIT_USAGE);
        }
    }
    v->lines++;
    if (ca_parse_line(line, len, &link, v->content, &clen) != 0) {
        int fields = memmem(line, len, "\"_seq\":", 7) || memmem(line, len, " #chain seq=", 12);
        if (v->brk.active) {
            al_problem(v->brk.file, v->brk.lineno, v->brk.kind, v->brk.detail);
            return 1;
        }
        al_problem(file, lineno, fields ? "altered" : "inserted",
                   fields ? "the chain fields are malformed" : "the line carries no chain fields");
        return 1;
    }
    kind = ca_content_kind(v->content, clen);
    if (kind == CA_KIND_CHECKPOINT && !v->brk.active) {
        if (ca_checkpoint_parse(v->content, clen, &cp) != 0) {
            al_problem(file, lineno, "bad signature", "the checkpoint is malformed");
            return 1;
        }
        if (v->pub != NULL && strcmp(cp.key_id, v->key_id) != 0) {
            snprintf(detail, sizeof(detail), "signed by key %s, not by %s", cp.key_id, v->key_id);
            al_problem(file, lineno, "bad signature", detail);
            return 1;
        }
        if (v->pub != NULL && !ca_checkpoint_verify(v->pub, &cp)) {
            al_problem(file, lineno, "bad signature", "the checkpoint's signature does not verify");
            return 1;
        }
    }
    if (ca_hash(link.prev, v->content, clen, hash) != 0 || strcmp(hash, link.hash) != 0) {
        if (v->brk.active) {
            al_problem(v->brk.file, v->brk.lineno, v->brk.kind, v->brk.detail);
            return 1;
        }
        al_problem(file, lineno, "altered", "the line's hash does not match its content");
        return 1;
    }
    if (v->brk.active) {
        al_judge_break(v, &link);
        return 1;
    }
    if (!v->started) {
        uint64_t rseq;
        char rhash[CA_HEX_LEN + 1];

        if (strcmp(link.prev, CA_ZERO_HASH) == 0) {
            if (link.seq != 1) {
                al_problem(file, lineno, "altered", "the chain's first line is not seq 1");
                return 1;
            }
        }
        else if (kind == CA_KIND_ROTATED) {
            if (ca_rotated_parse(v->content, clen, &rseq, rhash) != 0 || rseq + 1 != link.seq ||
                strcmp(rhash, link.prev) != 0) {
                al_problem(file, lineno, "altered", "the _rotated_from line contradicts its link");
                return 1;
            }
            printf("%s:%" PRIu64 ": note: the chain continues after seq %" PRIu64
                   " of an earlier file\n",
                   file, lineno, rseq);
        }
        else {
            snprintf(detail, sizeof(detail),
                     "the chain does not start here: the line(s) before seq %" PRIu64
                     " are missing",
                     link.seq);
            al_problem(file, lineno, "deleted", detail);
            return 1;
        }
        v->started = 1;
    }
    else if (strcmp(link.prev, v->last.hash) == 0) {
        if (link.seq != v->last.seq + 1) {
            snprintf(detail, sizeof(detail), "seq %" PRIu64 " where %" PRIu64 " was due", link.seq,
                     v->last.seq + 1);
            al_problem(file, lineno, "altered", detail);
            return 1;
        }
    }
    else {
        al_break_t *b = &v->brk;

        b->active = 1;
        b->forks = strcmp(link.prev, v->last.prev) == 0 && link.seq == v->last.seq;
        b->file = file;
        b->lineno = lineno;
        b->link = link;
        if (link.seq <= v->last.seq) {
            b->kind = "inserted";
            snprintf(b->detail, sizeof(b->detail),
                     "seq %" PRIu64 " repeats (the line before is seq %" PRIu64 ")", link.seq,
                     v->last.seq);
        }
        else if (link.seq > v->last.seq + 1) {
            b->kind = "deleted";
            snprintf(b->detail, sizeof(b->detail),
                     "%" PRIu64 " line(s) missing before this one (seq %" PRIu64 "..%" PRIu64 ")",
                     link.seq - v->last.seq - 1, v->last.seq + 1, link.seq - 1);
        }
        else {
            b->kind = "inserted";
            snprintf(b->detail, sizeof(b->detail), "the line does not link to the line before");
        }
        return 2;
    }
    if (kind == CA_KIND_CHECKPOINT) {
        if (cp.seq + 1 != link.seq || strcmp(cp.hash, link.prev) != 0) {
            snprintf(detail, sizeof(detail),
                     "the checkpoint signs seq %" PRIu64 " with another hash than the chain's: "
                     "lines before it were rewritten",
                     cp.seq);
            al_problem(file, lineno, "bad signature", detail);
            return 1;
        }
        v->checkpoints++;
        v->verified += v->pub != NULL;
        v->unsigned_lines = 0;
    }
    else {
        if (v->unsigned_lines++ == 0) {
            v->tail_file = file;
            v->tail_lineno = lineno;
        }
    }
    v->last = link;
    v->last_file = file;
    v->last_lineno = lineno;
    return 0;
}

static int al_verify_main(int argc, char **argv)
{
    static al_verify_t v;
    const char *pub_path = NULL;
    int c, i, tampered = 0;
    char *line = NULL;
    size_t cap = 0;

    memset(&v, 0, sizeof(v));
    optind = 1;
    while ((c = getopt(argc, argv, "p:")) != -1) {
        if (c != 'p') {
            fputs(al_usage, stderr);
            return AL_EXIT_USAGE;
        }
        pub_path = optarg;
    }
    if (optind >= argc) {
        fputs(al_usage, stderr);
        return AL_EXIT_USAGE;
    }
    if (pub_path != NULL) {
        if ((v.pub = al_load_key(pub_path, 0)) == NULL || ca_key_id(v.pub, v.key_id) != 0) {
            return AL_EXIT_USAGE;
        }
    }
    for (i = optind; i < argc && !tampered; i++) {
        FILE *f = fopen(argv[i], "r");
        uint64_t lineno = 0;
        ssize_t n;

        if (f == NULL) {
            fprintf(stderr, "claude-auditlog: cannot open %s: %s\n", argv[i], strerror(errno));
            EVP_PKEY_free(v.pub);
            return AL_EXIT_USAGE;
        }
        while ((n = getline(&line, &cap, f)) > 0) {
            size_t len = (size_t)n;
            int r;

            if (line[len - 1] == '\n') {
                len--;
            }
            r = al_verify_line(&v, argv[i], ++lineno, line, len);
            if (r == 1) {
                tampered = 1;
                break;
            }
            if (r == 0) {
                v.brk.active = 0;
            }
        }
        fclose(f);
    }
    if (!tampered && v.brk.active) {
        al_judge_break(&v, NULL);
        tampered = 1;
    }
    if (!tampered && v.unsigned_lines > 0) {
        printf("%s:%" PRIu64 ": unsigned tail: %" PRIu64
               " line(s) after the last checkpoint are not signed (warning)\n",
               v.tail_file, v.tail_lineno, v.unsigned_lines);
    }
    printf("claude-auditlog verify: %s: %" PRIu64 " lines, %" PRIu64 " checkpoints verified",
           tampered ? "TAMPERED" : "intact", v.lines, v.verified);
    if (v.pub == NULL && v.checkpoints > 0) {
        printf(" (%" PRIu64 " not checked: no -p key)", v.checkpoints);
    }
    printf(", last seq %" PRIu64 "\n", v.last.seq);
    free(line);
    free(v.content);
    EVP_PKEY_free(v.pub);
    return tampered ? AL_EXIT_TAMPERED : AL_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "verify") == 0) {
        return al_verify_main(argc - 1, argv + 1);
    }
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(al_usage, stdout);
        return AL_EXIT_OK;
    }
    return al_writer_main(argc, argv);
}
