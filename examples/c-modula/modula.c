/*
 * c-modula: a Switchyard hashing plugin written in C, with nothing but sdk/switchyard.h.
 *
 * A key goes to child crc32(key) % child_count. When that child is marked down, it goes to the
 * next child that is up, in index order (wrapping around after the last); when every child is
 * down, the request is answered `SERVER_ERROR no server up`. The plugin takes no config.
 *
 * Build: `make` (see the Makefile and README.md).
 */
#include "switchyard.h"

/* The host writes each request's key here before calling switchyard_route. */
static uint8_t key_buffer[SY_KEY_CAPACITY];

/* Where reply messages go; words, so that it is 4-byte aligned as an extended plan needs. */
static uint32_t plan_buffer[SY_PLAN_CAPACITY / 4];

/* The host writes the node's config (TOML text) here before calling switchyard_init. This
 * plugin takes none, so a small area is plenty: switchyard_alloc refuses more. */
#define CONFIG_CAPACITY 4096
static uint8_t config_buffer[CONFIG_CAPACITY];

/* The number of children of this node, as switchyard_init found it. */
static uint32_t children;

/* Addresses in linear memory, as the ABI passes them (wasm32 pointers are 32 bits). */
static int32_t address(const void *p) {
    return (int32_t)(uintptr_t)p;
}

SY_EXPORT("switchyard_abi_version")
int32_t switchyard_abi_version(void) {
    return SY_ABI_VERSION;
}

SY_EXPORT("switchyard_key_buffer")
int32_t switchyard_key_buffer(void) {
    return address(key_buffer);
}

SY_EXPORT("switchyard_plan_buffer")
int32_t switchyard_plan_buffer(void) {
    return address(plan_buffer);
}

/* Room for the config: the static area, or 0 (no room) for a config longer than it. */
SY_EXPORT("switchyard_alloc")
int32_t switchyard_alloc(int32_t len) {
    if (len < 0 || len > CONFIG_CAPACITY) {
        return 0;
    }
    return address(config_buffer);
}

/* Whether `len` bytes of TOML at `text` hold nothing: only whitespace and comments. */
static bool toml_is_empty(const uint8_t *text, uint32_t len) {
    bool in_comment = false;
    for (uint32_t i = 0; i < len; i++) {
        uint8_t c = text[i];
        if (in_comment) {
            in_comment = c != '\n';
        } else if (c == '#') {
            in_comment = true;
        } else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            return false;
        }
    }
    return true;
}

/* Accepts an empty config only. The config is in config_buffer, where switchyard_alloc put
 * it; a pointer anywhere else means the host found no room (switchyard_alloc returned 0). */
SY_EXPORT("switchyard_init")
int32_t switchyard_init(int32_t cfg_ptr, int32_t cfg_len) {
    bool empty = cfg_len == 0 ||
                 (cfg_ptr == address(config_buffer) && cfg_len > 0 &&
                  cfg_len <= CONFIG_CAPACITY && toml_is_empty(config_buffer, (uint32_t)cfg_len));
    if (!empty) {
        sy_set_error(SY_STR("c-modula takes no config"));
        return 1;
    }
    children = sy_child_count();
    return 0;
}

/* The plan for a request nothing can serve. */
static int64_t no_server_up(void) {
    return sy_reply_message(plan_buffer, SY_REPLY_SERVER_ERROR, SY_STR("no server up"));
}

/* Every operation is routed alike: by the key alone. */
SY_EXPORT("switchyard_route")
int64_t switchyard_route(int32_t op, int32_t key_len, int32_t flags, int64_t exptime,
                         int32_t value_len, int32_t listener) {
    (void)op;
    (void)flags;
    (void)exptime;
    (void)value_len;
    (void)listener;
    uint32_t len = (uint32_t)key_len;
    if (len > SY_KEY_CAPACITY) {
        /* The host never does this; if it did, hashing would read past the key buffer. */
        sy_fail(SY_STR("c-modula: key longer than the key buffer"));
    }
    if (children == 0) {
        return no_server_up();
    }
    uint32_t first = sy_hash(SY_HASH_CRC32, key_buffer, len) % children;
    for (uint32_t i = 0; i < children; i++) {
        uint32_t child = first + i < children ? first + i : first + i - children;
        if (sy_child_healthy(child)) {
            return sy_forward(child);
        }
    }
    return no_server_up();
}
