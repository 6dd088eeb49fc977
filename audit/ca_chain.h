/* ca_chain: the hash chain and signed checkpoints of claude-auditlog (PURE:
 * libc and OpenSSL only, no httpd, no I/O).
 *
 * Every line of a chained log carries its sequence number, the previous
 * line's hash and its own hash, where
 *
 *     hash = hex(SHA-256(prev_hash_hex "\n" content))
 *
 * and content is the line as it arrived, without the chain fields. A JSON
 * object gets the fields injected before its final '}' so that it stays
 * valid JSON; any other line gets a " #chain seq=N prev=H hash=H" suffix.
 * Checkpoints are chained lines whose content is a signed (Ed25519)
 * statement "the chain's line <seq> has hash <hash>". */
#ifndef CA_CHAIN_H
#define CA_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/** Hex length of a SHA-256 hash. */
#define CA_HEX_LEN 64
/** The hash the first line of a chain links to. */
#define CA_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
/** Longest content kept as is; a longer line is wrapped by ca_truncated(). */
#define CA_MAX_CONTENT 65536
/** Upper bound of what the chain fields add to a line, newline included. */
#define CA_CHAIN_OVERHEAD 256
/** A buffer that holds any chained line. */
#define CA_LINE_BUF (CA_MAX_CONTENT + CA_CHAIN_OVERHEAD)
/** Hex length of a key id. */
#define CA_KEY_ID_LEN 16
/** Base64 length of an Ed25519 signature (64 bytes). */
#define CA_SIG_B64_LEN 88
/** Upper bound of a checkpoint's content and of its chained line. */
#define CA_CHECKPOINT_MAX 512

/** The chain fields of one line. */
typedef struct ca_link_t {
    uint64_t seq;
    char prev[CA_HEX_LEN + 1];
    char hash[CA_HEX_LEN + 1];
} ca_link_t;

/** What a checkpoint states and its signature. */
typedef struct ca_checkpoint_t {
    uint64_t seq;              /* the last line it covers */
    char hash[CA_HEX_LEN + 1]; /* that line's hash */
    int64_t time;              /* unix seconds */
    char key_id[CA_KEY_ID_LEN + 1];
    char sig[CA_SIG_B64_LEN + 1]; /* base64 Ed25519 over ca_checkpoint_canonical() */
} ca_checkpoint_t;

/** What ca_content_kind() recognises in a line's content. */
typedef enum ca_kind_e {
    CA_KIND_RECORD = 0, /* an ordinary log line */
    CA_KIND_CHECKPOINT, /* {"_checkpoint":...} */
    CA_KIND_ROTATED,    /* {"_rotated_from":...}, the first line of a new file */
    CA_KIND_OTHER_META  /* {"_dropped":...} or {"_truncated":...} */
} ca_kind_e;

/**
 * The chain hash of a line.
 * @param prev the previous line's hash, CA_HEX_LEN lowercase hex
 * @param out receives CA_HEX_LEN lowercase hex and a NUL
 * @return 0, or -1 when OpenSSL fails
 */
int ca_hash(const char *prev, const char *content, size_t len, char *out);

/** Whether s[0..len) is exactly one valid JSON object (RFC 8259, UTF-8). */
int ca_json_is_object(const char *s, size_t len);

/**
 * Chains one line.
 * @param content the line without its newline, at most CA_MAX_CONTENT bytes
 * @param seq its sequence number
 * @param prev the previous line's hash
 * @param out receives the chained line and a newline (no NUL)
 * @param cap size of out, CA_LINE_BUF is always enough
 * @param hash receives the line's hash (CA_HEX_LEN + 1 bytes)
 * @return the length written to out, or 0 on error (too long, OpenSSL)
 */
size_t ca_chain_line(const char *content, size_t len, uint64_t seq, const char *prev, char *out,
                     size_t cap, char *hash);

/**
 * Splits a chained line (without its newline) into its chain fields and the
 * original content, the inverse of ca_chain_line().
 * @param content receives the content (no NUL); needs len + 1 bytes
 * @return 0, or -1 when the line carries no well-formed chain fields
 */
int ca_parse_line(const char *line, size_t len, ca_link_t *link, char *content,
                  size_t *content_len);

/** What kind of line a content is (by its leading member name only). */
ca_kind_e ca_content_kind(const char *content, size_t len);

/**
 * Input lines must not pass for the writer's own meta lines: one that starts
 * like them is wrapped, a JSON object as {"_input":<line>}, anything else
 * as "_input <line>".
 * @return the length written to out, 0 when the line needs no wrapping or
 *         does not fit (then treat it as too long)
 */
size_t ca_wrap_reserved(const char *line, size_t len, char *out, size_t cap);

/**
 * JSON-escapes s[0..len) into out (no quotes added, NUL-terminated): UTF-8
 * passes, invalid bytes become U+FFFD, controls \u00XX. Stops before a
 * character that would not fit.
 * @param consumed receives how many input bytes were escaped (may be NULL)
 * @return the length written
 */
size_t ca_json_escape(const char *s, size_t len, char *out, size_t cap, size_t *consumed);

/**
 * The content that stands for a line longer than CA_MAX_CONTENT:
 * {"_truncated":{"bytes":<original length>,"head":"<escaped head>"}}, valid
 * JSON of at most CA_MAX_CONTENT bytes.
 * @return its length, 0 when cap is too small
 */
size_t ca_truncated(const char *head, size_t head_len, uint64_t orig_len, char *out, size_t cap);

/** The canonical string a checkpoint signs: "claude-auditlog-checkpoint\n<seq>\n<hash>\n<time>". */
size_t ca_checkpoint_canonical(const ca_checkpoint_t *cp, char *out, size_t cap);

/** The content of a checkpoint line; 0 when cap is too small. */
size_t ca_checkpoint_format(const ca_checkpoint_t *cp, char *out, size_t cap);

/** Parses what ca_checkpoint_format() wrote; 0, or -1 when malformed. */
int ca_checkpoint_parse(const char *content, size_t len, ca_checkpoint_t *cp);

/**
 * The key id of a key: the first CA_KEY_ID_LEN hex digits of the SHA-256 of
 * its DER SubjectPublicKeyInfo (`openssl pkey -pubout -outform DER | sha256sum`).
 * @return 0, or -1
 */
int ca_key_id(EVP_PKEY *key, char *out);

/** Signs cp (seq, hash, time) with an Ed25519 private key into cp->sig and cp->key_id. */
int ca_checkpoint_sign(EVP_PKEY *key, ca_checkpoint_t *cp);

/** 1 when cp->sig is a valid signature of cp by key, else 0. */
int ca_checkpoint_verify(EVP_PKEY *key, const ca_checkpoint_t *cp);

/** The header line of a new file: {"_rotated_from":{"file":..,"seq":..,"hash":..}}. */
size_t ca_rotated_format(const char *file, uint64_t seq, const char *hash, int external, char *out,
                         size_t cap);

/** Reads seq and hash back from a _rotated_from content; 0, or -1. */
int ca_rotated_parse(const char *content, size_t len, uint64_t *seq, char *hash);

/** The content that records lines lost to write errors: {"_dropped":{"lines":N}}. */
size_t ca_dropped_format(uint64_t lines, char *out, size_t cap);

/** The state file's text: "<seq> <hash>\n". */
size_t ca_state_format(uint64_t seq, const char *hash, char *out, size_t cap);

/** Parses a state file's text; 0, or -1. */
int ca_state_parse(const char *s, size_t len, uint64_t *seq, char *hash);

#endif
