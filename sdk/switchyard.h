/*
 * switchyard.h: the Switchyard plugin ABI, version 1, for plugins written in C.
 *
 * One header, nothing to link: the host's imports, every constant of sdk/ABI.md, and inline
 * helpers that encode plans exactly as the Rust SDK (switchyard-sdk) does. sdk/ABI.md is the
 * specification; examples/c-modula is a complete plugin built with this header, and
 * sdk/golden/plans.txt holds the plans its encoders are tested against.
 *
 * Building a plugin (Debian: `apt-get install clang lld`; C99 or later, no libc):
 *
 *     clang --target=wasm32-unknown-unknown -std=c11 -O2 -ffreestanding -nostdlib \
 *         -Wl,--no-entry -Wl,--strip-all -o plugin.wasm plugin.c
 *
 * -ffreestanding keeps clang from turning loops into calls to memset or memcpy, which do not
 * exist without a libc (the link would fail with an undefined symbol). Only <stdint.h>,
 * <stddef.h> and <stdbool.h> are included, which clang provides itself.
 *
 * What the module must export (mark each function with SY_EXPORT, below, so that no linker
 * flag is needed; wasm-ld exports `memory` by itself):
 *
 *     memory                                  the linear memory
 *     SY_EXPORT("switchyard_abi_version")     int32_t (void): SY_ABI_VERSION
 *     SY_EXPORT("switchyard_key_buffer")      int32_t (void): address of SY_KEY_CAPACITY bytes
 *                                             where the host writes each request's key
 *     SY_EXPORT("switchyard_plan_buffer")     int32_t (void): address of SY_PLAN_CAPACITY bytes
 *                                             where the plugin writes extended plans and reply
 *                                             messages (keep it 4-byte aligned: uint32_t[1024])
 *     SY_EXPORT("switchyard_alloc")           int32_t (int32_t len): room for `len` bytes of
 *                                             configuration, 0 if there is none
 *     SY_EXPORT("switchyard_init")            int32_t (int32_t cfg_ptr, int32_t cfg_len): 0 to
 *                                             accept the configuration (TOML text, at the
 *                                             address switchyard_alloc returned: check), else
 *                                             sy_set_error() first, then nonzero
 *     SY_EXPORT("switchyard_route")           int64_t (int32_t op, int32_t key_len,
 *                                             int32_t flags, int64_t exptime,
 *                                             int32_t value_len, int32_t listener): a plan
 *     SY_EXPORT("switchyard_on_reply")        optional, int64_t (int32_t cookie, int32_t status,
 *                                             int32_t op, int32_t key_len): the continuation
 *                                             of a `call` plan
 *
 * A plugin may import only the functions declared below, and only those it calls end up in
 * the module; importing anything else (a libc's WASI functions, say) gets it refused at load.
 * It runs on one thread, with no WASI. A plugin that finds itself in a state it cannot route
 * from calls sy_fail(): the message goes with the fault the host reports for the trap.
 *
 * Every name it defines starts with `sy_` or `SY_`, but its include guard.
 */
#ifndef SWITCHYARD_H
#define SWITCHYARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Imports and exports ------------------------------------------------------------------ */

#if defined(__wasm__)
/* Declares a function the host provides: import `name` of module `switchyard`. */
#define SY_IMPORT(name) __attribute__((import_module("switchyard"), import_name(name)))
/* Exports the function it marks as `name`. */
#define SY_EXPORT(name) __attribute__((export_name(name)))
#else
/* Compiled natively (a test of the encoders), the imports are plain declarations that must
 * not be called, and nothing is exported. */
#define SY_IMPORT(name)
#define SY_EXPORT(name)
#endif

/* Hashes `len` bytes at `ptr` with algorithm `alg` (SY_HASH_*). Traps for an unknown `alg`. */
SY_IMPORT("hash") uint32_t sy_hash(uint32_t alg, const void *ptr, uint32_t len);

/* Writes the 16-byte MD5 digest of `len` bytes at `ptr` to `out`. */
SY_IMPORT("md5") void sy_md5(const void *ptr, uint32_t len, uint8_t *out);

/* The number of children of this node (a pool's servers, or a route's `children`). */
SY_IMPORT("child_count") uint32_t sy_child_count(void);

/* Writes up to `cap` bytes of child `idx`'s name to `out` (not NUL-terminated) and returns
 * the name's full length. Traps for an `idx` out of range. */
SY_IMPORT("child_name") uint32_t sy_child_name(uint32_t idx, char *out, uint32_t cap);

/* The child's weight: a server's `:weight`, 1 for a route's children. */
SY_IMPORT("child_weight") uint32_t sy_child_weight(uint32_t idx);

/* 1 if the host considers child `idx` usable now, 0 if it is marked down. */
SY_IMPORT("child_healthy") int32_t sy_child_healthy(uint32_t idx);

/* 64 random bits from the host's per-instance generator. */
SY_IMPORT("random") uint64_t sy_random(void);

/* Wall-clock time, milliseconds since the Unix epoch. */
SY_IMPORT("now_ms") int64_t sy_now_ms(void);

/* Logs `len` bytes of UTF-8 at `ptr` at `level` (SY_LOG_*); rate-limited per node. */
SY_IMPORT("log") void sy_log(uint32_t level, const char *ptr, uint32_t len);

/* During `init`: why the configuration is rejected. During `route` or `on_reply`: what went
 * wrong, just before trapping (see sy_fail). */
SY_IMPORT("set_error") void sy_set_error(const char *ptr, uint32_t len);

/* Optional. During `route` or `on_reply`: writes up to `cap` bytes of the requesting client's
 * identity (from its verified TLS certificate) to `out` and returns its full length; -1 when
 * the client has none. */
SY_IMPORT("client_identity") int32_t sy_client_identity(char *out, uint32_t cap);

/* Optional, during `init` only: defines a metric of `kind` (SY_METRIC_COUNTER or
 * SY_METRIC_HISTOGRAM) named by `len` bytes at `name`; returns its id (0 and up), or a negative
 * SY_METRIC_ERR_* code. */
SY_IMPORT("metric_define") int32_t sy_metric_define(uint32_t kind, const char *name, uint32_t len);

/* Optional: adds `delta` to counter `id`. Traps for an id metric_define did not return. */
SY_IMPORT("counter_add") void sy_counter_add(int32_t id, uint64_t delta);

/* Optional: records `value` in histogram `id`. Traps for an id metric_define did not return. */
SY_IMPORT("histogram_record") void sy_histogram_record(int32_t id, uint64_t value);

/* Passes a string literal to sy_set_error, sy_log's message, ...: `SY_STR("text")` is
 * `"text", 4`. */
#define SY_STR(literal) (literal), (uint32_t)(sizeof(literal) - 1)

/* Reports `message` with the fault, then traps: the request gets the node's `on_fault` and the
 * host replaces the instance. What a Rust plugin's panic does. */
__attribute__((noreturn)) static inline void sy_fail(const char *message, uint32_t len) {
    sy_set_error(message, len);
    __builtin_trap();
}

/* ---- Sizes and limits -------------------------------------------------------------------- */

/* The ABI version this header speaks; switchyard_abi_version returns it. */
#define SY_ABI_VERSION 1
/* Bytes behind switchyard_key_buffer; longer keys never reach a plugin. */
#define SY_KEY_CAPACITY 1024
/* Bytes behind switchyard_plan_buffer. */
#define SY_PLAN_CAPACITY 4096
/* Most `background` entries one plan may carry. */
#define SY_MAX_BACKGROUND 8
/* Longest key prefix a rewrite may add (memcached's key length limit). */
#define SY_MAX_KEY_PREFIX 250
/* Most `call` entries one request may chain through one node. */
#define SY_MAX_CALLS 8
/* Largest value of the 24-bit `small` field of a plan word. */
#define SY_SMALL_MAX 0x00ffffffu

/* ---- Operation codes: the `op` argument of route and on_reply ---------------------------- */

#define SY_OP_GET 1             /* get */
#define SY_OP_GETS 2            /* gets */
#define SY_OP_GAT 3             /* gat */
#define SY_OP_GATS 4            /* gats */
#define SY_OP_SET 5             /* set */
#define SY_OP_ADD 6             /* add */
#define SY_OP_REPLACE 7         /* replace */
#define SY_OP_APPEND 8          /* append */
#define SY_OP_PREPEND 9         /* prepend */
#define SY_OP_CAS 10            /* cas */
#define SY_OP_DELETE 11         /* delete */
#define SY_OP_INCR 12           /* incr */
#define SY_OP_DECR 13           /* decr */
#define SY_OP_TOUCH 14          /* touch */
#define SY_OP_META_GET 15       /* mg */
#define SY_OP_META_SET 16       /* ms */
#define SY_OP_META_DELETE 17    /* md */
#define SY_OP_META_ARITHMETIC 18 /* ma */
#define SY_OP_META_DEBUG 19     /* me (the key arrives base64-decoded) */
/* Codes from this one up are reserved: route them as SY_OP_GET. */
#define SY_OP_RESERVED_FROM 20

/* ---- Plan tags: the low byte of the plan word -------------------------------------------- */

#define SY_TAG_FORWARD 1 /* forward(child): small 0, arg the child index */
#define SY_TAG_REPLY 2   /* reply(code): small the code, arg the message length (plan buffer) */
#define SY_TAG_PLAN 3    /* extended plan: small 0, arg its length in bytes (plan buffer) */
#define SY_TAG_PASS 4    /* pass, from on_reply only: small 0, arg 0 */

/* ---- Reply codes: the `small` field of a reply plan, or a reply entry's code -------------- */

#define SY_REPLY_MISS 0         /* the key is absent (a miss, NOT_STORED or NOT_FOUND) */
#define SY_REPLY_NOT_STORED 1   /* NOT_STORED */
#define SY_REPLY_STORED 2       /* STORED */
#define SY_REPLY_EXISTS 3       /* EXISTS */
#define SY_REPLY_NOT_FOUND 4    /* NOT_FOUND (a miss for retrievals) */
#define SY_REPLY_DELETED 5      /* DELETED */
#define SY_REPLY_TOUCHED 6      /* TOUCHED */
#define SY_REPLY_ERROR 7        /* ERROR */
#define SY_REPLY_SERVER_ERROR 8 /* SERVER_ERROR <message> */
#define SY_REPLY_CLIENT_ERROR 9 /* CLIENT_ERROR <message> */

/* ---- Reply statuses: the `status` argument of on_reply ----------------------------------- */

#define SY_STATUS_HIT 0          /* a retrieval that returned values */
#define SY_STATUS_MISS 1         /* a retrieval that returned none */
#define SY_STATUS_STORED 2       /* STORED */
#define SY_STATUS_NOT_STORED 3   /* NOT_STORED */
#define SY_STATUS_EXISTS 4       /* EXISTS */
#define SY_STATUS_NOT_FOUND 5    /* NOT_FOUND */
#define SY_STATUS_DELETED 6      /* DELETED */
#define SY_STATUS_TOUCHED 7      /* TOUCHED */
#define SY_STATUS_NUMBER 8       /* an incr/decr result */
#define SY_STATUS_OK 9           /* OK */
#define SY_STATUS_VERSION 10     /* VERSION ... */
#define SY_STATUS_ERROR 11       /* ERROR */
#define SY_STATUS_CLIENT_ERROR 12 /* CLIENT_ERROR ... */
#define SY_STATUS_SERVER_ERROR 13 /* SERVER_ERROR ..., the backend's or the router's own */

/* ---- Extended plans: entry opcodes ------------------------------------------------------- */

#define SY_ENTRY_FAN_OUT 1    /* primary: wait, then the child indexes */
#define SY_ENTRY_CALL 2       /* primary: child, cookie */
#define SY_ENTRY_BACKGROUND 3 /* at most 8: child, op, flags, then a rewrite */
#define SY_ENTRY_FORWARD 4    /* primary: child */
#define SY_ENTRY_REPLY 5      /* primary: code, message length, the message zero-padded */
#define SY_ENTRY_PASS 6       /* primary, on_reply only: no payload */
#define SY_ENTRY_REWRITE 7    /* at most one: mode, exptime low, high, strip, prefix len, prefix */

/* Wait policies of a fan_out entry. */
#define SY_WAIT_ALL 0        /* every child; the worst reply */
#define SY_WAIT_FIRST 1      /* the first reply */
#define SY_WAIT_FIRST_GOOD 2 /* the first reply that is not an error, else the worst */
#define SY_WAIT_MAJORITY 3   /* the first status more than half the children reply */
#define SY_WAIT_NONE 4       /* at once, the operation's default reply; children still sent */

/* Exptime modes of a rewrite or background entry. */
#define SY_EXPTIME_KEEP 0 /* as the request has it */
#define SY_EXPTIME_SET 1  /* the entry's value */
#define SY_EXPTIME_CAP 2  /* at most the entry's value (0 to 2^32-1) in seconds from now */

/* Flags of a background entry. */
#define SY_BACKGROUND_COMPARE 1u /* compare its reply with the node's (shadow_mismatches) */

/* ---- Hash algorithms of sy_hash ---------------------------------------------------------- */

#define SY_HASH_MD5 0      /* first four bytes of the MD5 digest, little-endian */
#define SY_HASH_CRC32 1    /* CRC-32 (IEEE 802.3, reflected, as zlib) */
#define SY_HASH_FNV1A_32 2 /* 32-bit FNV-1a */
#define SY_HASH_FNV1A_64 3 /* 64-bit FNV-1a, low 32 bits */

/* ---- Log levels of sy_log ---------------------------------------------------------------- */

#define SY_LOG_ERROR 1
#define SY_LOG_WARN 2
#define SY_LOG_INFO 3
#define SY_LOG_DEBUG 4

/* ---- Metrics (optional imports) ---------------------------------------------------------- */

#define SY_METRIC_COUNTER 1   /* metric_define kind: a counter (counter_add) */
#define SY_METRIC_HISTOGRAM 2 /* metric_define kind: a histogram (histogram_record) */

/* Negative results of sy_metric_define. */
#define SY_METRIC_ERR_INVALID_NAME (-1) /* not 1-64 bytes of a-z, 0-9, _ (no leading digit) */
#define SY_METRIC_ERR_TOO_MANY (-2)     /* 64 counters or 8 histograms already */
#define SY_METRIC_ERR_NAME_TAKEN (-3)   /* the name belongs to a metric of the other kind */
#define SY_METRIC_ERR_NOT_IN_INIT (-4)  /* called outside init */
#define SY_METRIC_ERR_UNKNOWN_KIND (-5) /* kind is neither counter nor histogram */

/* ---- Plan words -------------------------------------------------------------------------- */

/* A plan word as route returns it: `arg` in bits 32-63, `small` in bits 8-31 (24 bits: larger
 * values are masked), `tag` in bits 0-7. */
static inline int64_t sy_plan_word(uint8_t tag, uint32_t small, uint32_t arg) {
    return (int64_t)(((uint64_t)arg << 32) | ((uint64_t)(small & SY_SMALL_MAX) << 8) | tag);
}

/* forward(child): this node's reply is child `child`'s reply. */
static inline int64_t sy_forward(uint32_t child) {
    return sy_plan_word(SY_TAG_FORWARD, 0, child);
}

/* reply(code): answer with reply `code` (SY_REPLY_*); for the error replies, the message is the
 * first `message_len` bytes of the plan buffer (see sy_reply_message). */
static inline int64_t sy_reply(uint32_t code, uint32_t message_len) {
    return sy_plan_word(SY_TAG_REPLY, code, message_len);
}

/* pass, from on_reply only: the reply just received is this node's reply. */
static inline int64_t sy_pass(void) {
    return sy_plan_word(SY_TAG_PASS, 0, 0);
}

/* An extended plan of `len` bytes at the start of the plan buffer (see sy_writer). */
static inline int64_t sy_extended(uint32_t len) {
    return sy_plan_word(SY_TAG_PLAN, 0, len);
}

/* A byte of a reply message as the host accepts it: printable ASCII stays, anything else
 * becomes `?` (as the Rust SDK sends it; the host refuses other bytes). */
static inline uint8_t sy_message_byte(uint8_t byte) {
    return byte >= 0x20 && byte <= 0x7e ? byte : (uint8_t)'?';
}

/* reply(code) with a message: copies `len` bytes of `message` (cut at SY_PLAN_CAPACITY, see
 * sy_message_byte) to the start of `plan_buffer` and returns the plan word. */
static inline int64_t sy_reply_message(void *plan_buffer, uint32_t code, const char *message,
                                       uint32_t len) {
    uint8_t *out = (uint8_t *)plan_buffer;
    if (len > SY_PLAN_CAPACITY) {
        len = SY_PLAN_CAPACITY;
    }
    for (uint32_t i = 0; i < len; i++) {
        out[i] = sy_message_byte((uint8_t)message[i]);
    }
    return sy_reply(code, len);
}

/* ---- Extended plans ---------------------------------------------------------------------- */

/*
 * Writes the entries of an extended plan, each `[opcode][n][n payload words]` of little-endian
 * u32 words, into a buffer of words (the plan buffer):
 *
 *     static uint32_t plan[SY_PLAN_CAPACITY / 4];
 *     sy_writer w;
 *     sy_writer_init(&w, plan, SY_PLAN_CAPACITY / 4);
 *     sy_write_forward(&w, child);
 *     sy_write_background(&w, shadow, 0, SY_BACKGROUND_COMPARE, NULL);
 *     return sy_writer_plan(&w);
 *
 * A plan needs exactly one primary entry (fan_out, call, forward, reply or pass), at most one
 * rewrite and at most SY_MAX_BACKGROUND background entries; the writers do not check that, the
 * host does (it refuses the plan as a plugin fault). An entry that does not fit is not written,
 * and the writer remembers it: sy_writer_plan then returns SY_PLAN_INVALID.
 */
typedef struct sy_writer {
    uint32_t *words;   /* where the plan goes */
    uint32_t capacity; /* room there, in words */
    uint32_t len;      /* words written */
    bool overflowed;   /* an entry did not fit */
} sy_writer;

/* A plan word the host always refuses (tag 0): what sy_writer_plan returns for a plan that did
 * not fit. The request gets the node's on_fault, as for a trap. */
#define SY_PLAN_INVALID ((int64_t)0)

/* Starts an empty plan in `words`, which holds `capacity` words. */
static inline void sy_writer_init(sy_writer *w, uint32_t *words, uint32_t capacity) {
    w->words = words;
    w->capacity = capacity;
    w->len = 0;
    w->overflowed = false;
}

/* The plan word for what `w` holds: sy_extended(bytes written), or SY_PLAN_INVALID. */
static inline int64_t sy_writer_plan(const sy_writer *w) {
    return w->overflowed ? SY_PLAN_INVALID : sy_extended(w->len * 4);
}

/* Words that `len` bytes take, zero-padded. */
static inline uint32_t sy_padded_words(uint32_t len) {
    return len / 4 + (len % 4 != 0);
}

/* Whether `n` more words fit; if not, remembers the overflow. */
static inline bool sy_writer_room(sy_writer *w, uint32_t n) {
    if (n > w->capacity - w->len) {
        w->overflowed = true;
        return false;
    }
    return true;
}

/* Appends one word, little-endian whatever the machine's byte order. Call sy_writer_room
 * first. */
static inline void sy_writer_push(sy_writer *w, uint32_t word) {
    uint8_t *out = (uint8_t *)&w->words[w->len++];
    out[0] = (uint8_t)word;
    out[1] = (uint8_t)(word >> 8);
    out[2] = (uint8_t)(word >> 16);
    out[3] = (uint8_t)(word >> 24);
}

/* Appends `len` bytes zero-padded to whole words, each byte passed through `map` if not NULL. */
static inline void sy_writer_push_bytes(sy_writer *w, const char *bytes, uint32_t len,
                                        uint8_t (*map)(uint8_t)) {
    for (uint32_t i = 0; i < len; i += 4) {
        uint32_t word = 0;
        for (uint32_t j = 0; j < 4 && i + j < len; j++) {
            uint8_t byte = (uint8_t)bytes[i + j];
            word |= (uint32_t)(map ? map(byte) : byte) << (8 * j);
        }
        sy_writer_push(w, word);
    }
}

/* fan_out (primary): send the request to `count` children, combine their replies by `wait`
 * (SY_WAIT_*). At least one child, none twice. */
static inline bool sy_write_fan_out(sy_writer *w, uint32_t wait, const uint32_t *children,
                                    uint32_t count) {
    if (count > SY_PLAN_CAPACITY || !sy_writer_room(w, 3 + count)) {
        w->overflowed = true;
        return false;
    }
    sy_writer_push(w, SY_ENTRY_FAN_OUT);
    sy_writer_push(w, 1 + count);
    sy_writer_push(w, wait);
    for (uint32_t i = 0; i < count; i++) {
        sy_writer_push(w, children[i]);
    }
    return true;
}

/* fan_out (primary) to every child, 0 to child_count - 1, in index order. */
static inline bool sy_write_fan_out_all(sy_writer *w, uint32_t wait, uint32_t child_count) {
    if (child_count > SY_PLAN_CAPACITY || !sy_writer_room(w, 3 + child_count)) {
        w->overflowed = true;
        return false;
    }
    sy_writer_push(w, SY_ENTRY_FAN_OUT);
    sy_writer_push(w, 1 + child_count);
    sy_writer_push(w, wait);
    for (uint32_t child = 0; child < child_count; child++) {
        sy_writer_push(w, child);
    }
    return true;
}

/* call (primary): send the request to `child`, then hand its reply's status and `cookie` to
 * switchyard_on_reply, whose plan decides this node's reply. */
static inline bool sy_write_call(sy_writer *w, uint32_t child, uint32_t cookie) {
    if (!sy_writer_room(w, 4)) {
        return false;
    }
    sy_writer_push(w, SY_ENTRY_CALL);
    sy_writer_push(w, 2);
    sy_writer_push(w, child);
    sy_writer_push(w, cookie);
    return true;
}

/* forward (primary): sy_forward's plan, for a plan with a rewrite or background sends. */
static inline bool sy_write_forward(sy_writer *w, uint32_t child) {
    if (!sy_writer_room(w, 3)) {
        return false;
    }
    sy_writer_push(w, SY_ENTRY_FORWARD);
    sy_writer_push(w, 1);
    sy_writer_push(w, child);
    return true;
}

/* reply (primary): reply `code` with `len` bytes of `message` (none: NULL, 0), which must be
 * printable ASCII (see sy_message_byte). */
static inline bool sy_write_reply(sy_writer *w, uint32_t code, const char *message,
                                  uint32_t len) {
    if (len > SY_PLAN_CAPACITY || !sy_writer_room(w, 4 + sy_padded_words(len))) {
        w->overflowed = true;
        return false;
    }
    sy_writer_push(w, SY_ENTRY_REPLY);
    sy_writer_push(w, 2 + sy_padded_words(len));
    sy_writer_push(w, code);
    sy_writer_push(w, len);
    sy_writer_push_bytes(w, message, len, sy_message_byte);
    return true;
}

/* pass (primary, from on_reply only): sy_pass's plan, for a plan with background sends. */
static inline bool sy_write_pass(sy_writer *w) {
    if (!sy_writer_room(w, 2)) {
        return false;
    }
    sy_writer_push(w, SY_ENTRY_PASS);
    sy_writer_push(w, 0);
    return true;
}

/*
 * A rewrite of the request: the exptime by `mode` and the key without its first `strip` bytes,
 * with `prefix` in front (at most SY_MAX_KEY_PREFIX bytes, no space or control byte). The
 * all-zero value changes nothing: `(sy_rewrite){ .mode = SY_EXPTIME_SET, .exptime = 300 }`.
 */
typedef struct sy_rewrite {
    uint32_t mode;       /* SY_EXPTIME_KEEP, SY_EXPTIME_SET or SY_EXPTIME_CAP */
    int64_t exptime;     /* the value of SET, the cap of CAP (0 to 2^32-1); 0 for KEEP */
    uint32_t strip;      /* bytes removed from the start of the key */
    const char *prefix;  /* bytes put before the rest; NULL when prefix_len is 0 */
    uint32_t prefix_len; /* their number */
} sy_rewrite;

/* Words a rewrite's payload takes: mode, exptime low, high, strip, prefix length, prefix. */
static inline uint32_t sy_rewrite_words(const sy_rewrite *r) {
    return 5 + (r ? sy_padded_words(r->prefix_len) : 0);
}

/* Appends a rewrite's payload; NULL is the rewrite that changes nothing. */
static inline void sy_writer_push_rewrite(sy_writer *w, const sy_rewrite *r) {
    const sy_rewrite keep = {SY_EXPTIME_KEEP, 0, 0, NULL, 0};
    if (!r) {
        r = &keep;
    }
    uint64_t exptime = (uint64_t)r->exptime;
    sy_writer_push(w, r->mode);
    sy_writer_push(w, (uint32_t)exptime);
    sy_writer_push(w, (uint32_t)(exptime >> 32));
    sy_writer_push(w, r->strip);
    sy_writer_push(w, r->prefix_len);
    sy_writer_push_bytes(w, r->prefix, r->prefix_len, NULL);
}

/* rewrite (at most one): what the primary entry sends is the request rewritten by `r`. */
static inline bool sy_write_rewrite(sy_writer *w, const sy_rewrite *r) {
    if (r->prefix_len > SY_PLAN_CAPACITY || !sy_writer_room(w, 2 + sy_rewrite_words(r))) {
        w->overflowed = true;
        return false;
    }
    sy_writer_push(w, SY_ENTRY_REWRITE);
    sy_writer_push(w, sy_rewrite_words(r));
    sy_writer_push_rewrite(w, r);
    return true;
}

/* background (at most SY_MAX_BACKGROUND): a request to `child` whose reply is read and dropped.
 * `op` 0 sends the request itself; SY_OP_SET, SY_OP_ADD or SY_OP_REPLACE store the value at
 * hand with that command. `flags`: 0 or SY_BACKGROUND_COMPARE. `r`: its exptime and key (NULL:
 * as the request has them). */
static inline bool sy_write_background(sy_writer *w, uint32_t child, uint32_t op, uint32_t flags,
                                       const sy_rewrite *r) {
    if ((r && r->prefix_len > SY_PLAN_CAPACITY) || !sy_writer_room(w, 5 + sy_rewrite_words(r))) {
        w->overflowed = true;
        return false;
    }
    sy_writer_push(w, SY_ENTRY_BACKGROUND);
    sy_writer_push(w, 3 + sy_rewrite_words(r));
    sy_writer_push(w, child);
    sy_writer_push(w, op);
    sy_writer_push(w, flags);
    sy_writer_push_rewrite(w, r);
    return true;
}

#ifdef __cplusplus
}
#endif

#endif /* SWITCHYARD_H */
