/*
 * Checks the plan encoders of sdk/switchyard.h against the golden plans the Rust SDK encodes
 * (sdk/golden/plans.txt): every valid plan of the file is built here with the header's helpers
 * and must give the same plan word and the same plan-buffer bytes. Plans the host refuses are
 * skipped (the header has no decoder).
 *
 * A native program (`make test` builds and runs it): the header's helpers compile for any
 * target as long as nothing calls the host's imports.
 *
 *     golden_test path/to/plans.txt
 *
 * Exits 0 when every valid plan matches and each has a builder here; 1 otherwise, naming each
 * mismatch; 2 when the file cannot be read or parsed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchyard.h"

/* Fills the plan buffer before each build, so that bytes a helper leaves unwritten (padding
 * that should be zeros) do not match by chance. */
#define POISON 0xa5

/* Builds one plan into `plan` for a node of `children` children; returns the plan word. */
typedef int64_t (*builder)(uint32_t *plan, uint32_t children);

/* ---- The builders, one per valid plan of the file, in its order -------------------------- */

static int64_t forward_0(uint32_t *plan, uint32_t children) {
    (void)plan, (void)children;
    return sy_forward(0);
}

static int64_t forward_2(uint32_t *plan, uint32_t children) {
    (void)plan, (void)children;
    return sy_forward(2);
}

static int64_t forward_1000(uint32_t *plan, uint32_t children) {
    (void)plan, (void)children;
    return sy_forward(1000);
}

#define REPLY_WITHOUT_MESSAGE(name, code)                         \
    static int64_t name(uint32_t *plan, uint32_t children) {     \
        (void)plan, (void)children;                              \
        return sy_reply(code, 0);                                \
    }
REPLY_WITHOUT_MESSAGE(reply_miss, SY_REPLY_MISS)
REPLY_WITHOUT_MESSAGE(reply_not_stored, SY_REPLY_NOT_STORED)
REPLY_WITHOUT_MESSAGE(reply_stored, SY_REPLY_STORED)
REPLY_WITHOUT_MESSAGE(reply_exists, SY_REPLY_EXISTS)
REPLY_WITHOUT_MESSAGE(reply_not_found, SY_REPLY_NOT_FOUND)
REPLY_WITHOUT_MESSAGE(reply_deleted, SY_REPLY_DELETED)
REPLY_WITHOUT_MESSAGE(reply_touched, SY_REPLY_TOUCHED)
REPLY_WITHOUT_MESSAGE(reply_error, SY_REPLY_ERROR)
REPLY_WITHOUT_MESSAGE(reply_server_error_empty, SY_REPLY_SERVER_ERROR)

static int64_t reply_server_error_message(uint32_t *plan, uint32_t children) {
    (void)children;
    return sy_reply_message(plan, SY_REPLY_SERVER_ERROR, SY_STR("no server up"));
}

static int64_t reply_client_error_message(uint32_t *plan, uint32_t children) {
    (void)children;
    return sy_reply_message(plan, SY_REPLY_CLIENT_ERROR, SY_STR("bad key"));
}

static int64_t pass(uint32_t *plan, uint32_t children) {
    (void)plan, (void)children;
    return sy_pass();
}

/* Starts a plan in the whole plan buffer. */
static sy_writer writer(uint32_t *plan) {
    sy_writer w;
    sy_writer_init(&w, plan, SY_PLAN_CAPACITY / 4);
    return w;
}

static int64_t fan_out_wait_all(uint32_t *plan, uint32_t children) {
    (void)children;
    static const uint32_t to[] = {0, 1, 2};
    sy_writer w = writer(plan);
    sy_write_fan_out(&w, SY_WAIT_ALL, to, 3);
    return sy_writer_plan(&w);
}

static int64_t fan_out_wait_first(uint32_t *plan, uint32_t children) {
    (void)children;
    static const uint32_t to[] = {2, 0};
    sy_writer w = writer(plan);
    sy_write_fan_out(&w, SY_WAIT_FIRST, to, 2);
    return sy_writer_plan(&w);
}

static int64_t fan_out_wait_first_good(uint32_t *plan, uint32_t children) {
    (void)children;
    static const uint32_t to[] = {1};
    sy_writer w = writer(plan);
    sy_write_fan_out(&w, SY_WAIT_FIRST_GOOD, to, 1);
    return sy_writer_plan(&w);
}

static int64_t fan_out_wait_majority(uint32_t *plan, uint32_t children) {
    sy_writer w = writer(plan);
    sy_write_fan_out_all(&w, SY_WAIT_MAJORITY, children);
    return sy_writer_plan(&w);
}

static int64_t fan_out_wait_none(uint32_t *plan, uint32_t children) {
    (void)children;
    static const uint32_t to[] = {0, 2};
    sy_writer w = writer(plan);
    sy_write_fan_out(&w, SY_WAIT_NONE, to, 2);
    return sy_writer_plan(&w);
}

static int64_t call_1_cookie_deadbeef(uint32_t *plan, uint32_t children) {
    (void)children;
    sy_writer w = writer(plan);
    sy_write_call(&w, 1, 0xdeadbeef);
    return sy_writer_plan(&w);
}

static int64_t call_0_cookie_0(uint32_t *plan, uint32_t children) {
    (void)children;
    sy_writer w = writer(plan);
    sy_write_call(&w, 0, 0);
    return sy_writer_plan(&w);
}

static int64_t forward_extended_plain(uint32_t *plan, uint32_t children) {
    (void)children;
    sy_writer w = writer(plan);
    sy_write_forward(&w, 1);
    return sy_writer_plan(&w);
}

/* forward(child) rewritten by `r`. */
static int64_t forward_rewritten(uint32_t *plan, uint32_t child, const sy_rewrite *r) {
    sy_writer w = writer(plan);
    sy_write_forward(&w, child);
    sy_write_rewrite(&w, r);
    return sy_writer_plan(&w);
}

static int64_t forward_rewrite_keep_prefix(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite r = {.mode = SY_EXPTIME_KEEP, .prefix = "v2:", .prefix_len = 3};
    return forward_rewritten(plan, 1, &r);
}

static int64_t forward_rewrite_set(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite r = {.mode = SY_EXPTIME_SET, .exptime = 300};
    return forward_rewritten(plan, 2, &r);
}

static int64_t forward_rewrite_set_negative(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite r = {.mode = SY_EXPTIME_SET, .exptime = -1};
    return forward_rewritten(plan, 0, &r);
}

static int64_t forward_rewrite_set_wide(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite r = {.mode = SY_EXPTIME_SET, .exptime = INT64_C(0x123456789)};
    return forward_rewritten(plan, 0, &r);
}

static int64_t forward_rewrite_cap_strip_prefix(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite r = {
        .mode = SY_EXPTIME_CAP, .exptime = 60, .strip = 4, .prefix = "new:", .prefix_len = 4};
    return forward_rewritten(plan, 1, &r);
}

static int64_t forward_rewrite_cap_max(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite r = {.mode = SY_EXPTIME_CAP, .exptime = UINT32_MAX};
    return forward_rewritten(plan, 1, &r);
}

static int64_t forward_rewrite_strip(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite r = {.mode = SY_EXPTIME_KEEP, .strip = 3};
    return forward_rewritten(plan, 0, &r);
}

static int64_t forward_rewrite_prefix_padded(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite r = {.prefix = "tenant-a:", .prefix_len = 9};
    return forward_rewritten(plan, 0, &r);
}

static int64_t reply_rewrite_set(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite r = {.mode = SY_EXPTIME_SET, .exptime = 10};
    sy_writer w = writer(plan);
    sy_write_reply(&w, SY_REPLY_NOT_FOUND, NULL, 0);
    sy_write_rewrite(&w, &r);
    return sy_writer_plan(&w);
}

static int64_t reply_message_rewrite_cap(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite r = {.mode = SY_EXPTIME_CAP, .exptime = 30};
    sy_writer w = writer(plan);
    sy_write_reply(&w, SY_REPLY_SERVER_ERROR, SY_STR("maintenance"));
    sy_write_rewrite(&w, &r);
    return sy_writer_plan(&w);
}

static int64_t pass_rewrite_set(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite r = {.mode = SY_EXPTIME_SET, .exptime = 60};
    sy_writer w = writer(plan);
    sy_write_pass(&w);
    sy_write_rewrite(&w, &r);
    return sy_writer_plan(&w);
}

static int64_t fan_out_rewrite_prefix(uint32_t *plan, uint32_t children) {
    (void)children;
    static const uint32_t to[] = {0, 1};
    const sy_rewrite r = {.prefix = "r:", .prefix_len = 2};
    sy_writer w = writer(plan);
    sy_write_fan_out(&w, SY_WAIT_FIRST_GOOD, to, 2);
    sy_write_rewrite(&w, &r);
    return sy_writer_plan(&w);
}

static int64_t call_rewrite_strip(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite r = {.strip = 2};
    sy_writer w = writer(plan);
    sy_write_call(&w, 2, 7);
    sy_write_rewrite(&w, &r);
    return sy_writer_plan(&w);
}

static int64_t forward_background_copy_compare(uint32_t *plan, uint32_t children) {
    (void)children;
    sy_writer w = writer(plan);
    sy_write_forward(&w, 0);
    sy_write_background(&w, 1, 0, SY_BACKGROUND_COMPARE, NULL);
    return sy_writer_plan(&w);
}

static int64_t forward_background_set_compare(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite r = {
        .mode = SY_EXPTIME_SET, .exptime = 600, .strip = 1, .prefix = "warm:", .prefix_len = 5};
    sy_writer w = writer(plan);
    sy_write_forward(&w, 0);
    sy_write_background(&w, 2, SY_OP_SET, SY_BACKGROUND_COMPARE, &r);
    return sy_writer_plan(&w);
}

static int64_t forward_background_add_replace(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite cap = {.mode = SY_EXPTIME_CAP, .exptime = 3600};
    sy_writer w = writer(plan);
    sy_write_forward(&w, 1);
    sy_write_background(&w, 0, SY_OP_ADD, 0, &cap);
    sy_write_background(&w, 2, SY_OP_REPLACE, 0, NULL);
    return sy_writer_plan(&w);
}

static int64_t forward_rewrite_and_background(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite rewrite = {.mode = SY_EXPTIME_CAP, .exptime = 60, .prefix = "p", .prefix_len = 1};
    const sy_rewrite warm = {
        .mode = SY_EXPTIME_SET, .exptime = 300, .strip = 2, .prefix = "warm:", .prefix_len = 5};
    sy_writer w = writer(plan);
    sy_write_forward(&w, 0);
    sy_write_rewrite(&w, &rewrite);
    sy_write_background(&w, 1, 0, SY_BACKGROUND_COMPARE, NULL);
    sy_write_background(&w, 2, SY_OP_ADD, 0, &warm);
    return sy_writer_plan(&w);
}

static int64_t forward_eight_backgrounds(uint32_t *plan, uint32_t children) {
    (void)children;
    sy_writer w = writer(plan);
    sy_write_forward(&w, 0);
    for (uint32_t i = 0; i < SY_MAX_BACKGROUND; i++) {
        sy_write_background(&w, 1 + i % 2, 0, 0, NULL);
    }
    return sy_writer_plan(&w);
}

static int64_t fan_out_background(uint32_t *plan, uint32_t children) {
    (void)children;
    static const uint32_t to[] = {0, 1};
    sy_writer w = writer(plan);
    sy_write_fan_out(&w, SY_WAIT_MAJORITY, to, 2);
    sy_write_background(&w, 2, SY_OP_SET, 0, NULL);
    return sy_writer_plan(&w);
}

static int64_t call_background(uint32_t *plan, uint32_t children) {
    (void)children;
    sy_writer w = writer(plan);
    sy_write_call(&w, 1, 42);
    sy_write_background(&w, 2, 0, 0, NULL);
    return sy_writer_plan(&w);
}

static int64_t reply_background(uint32_t *plan, uint32_t children) {
    (void)children;
    sy_writer w = writer(plan);
    sy_write_reply(&w, SY_REPLY_STORED, NULL, 0);
    sy_write_background(&w, 0, 0, 0, NULL);
    return sy_writer_plan(&w);
}

static int64_t pass_background_store_add(uint32_t *plan, uint32_t children) {
    (void)children;
    const sy_rewrite r = {.mode = SY_EXPTIME_SET, .exptime = 300};
    sy_writer w = writer(plan);
    sy_write_pass(&w);
    sy_write_background(&w, 0, SY_OP_ADD, 0, &r);
    return sy_writer_plan(&w);
}

#define BUILDER(name) {#name, name, 0}
static struct {
    const char *name;
    builder build;
    int used; /* lines of the file that named it */
} builders[] = {
    BUILDER(forward_0),
    BUILDER(forward_2),
    BUILDER(forward_1000),
    BUILDER(reply_miss),
    BUILDER(reply_not_stored),
    BUILDER(reply_stored),
    BUILDER(reply_exists),
    BUILDER(reply_not_found),
    BUILDER(reply_deleted),
    BUILDER(reply_touched),
    BUILDER(reply_error),
    BUILDER(reply_server_error_message),
    BUILDER(reply_client_error_message),
    BUILDER(reply_server_error_empty),
    BUILDER(pass),
    BUILDER(fan_out_wait_all),
    BUILDER(fan_out_wait_first),
    BUILDER(fan_out_wait_first_good),
    BUILDER(fan_out_wait_majority),
    BUILDER(fan_out_wait_none),
    BUILDER(call_1_cookie_deadbeef),
    BUILDER(call_0_cookie_0),
    BUILDER(forward_extended_plain),
    BUILDER(forward_rewrite_keep_prefix),
    BUILDER(forward_rewrite_set),
    BUILDER(forward_rewrite_set_negative),
    BUILDER(forward_rewrite_set_wide),
    BUILDER(forward_rewrite_cap_strip_prefix),
    BUILDER(forward_rewrite_cap_max),
    BUILDER(forward_rewrite_strip),
    BUILDER(forward_rewrite_prefix_padded),
    BUILDER(reply_rewrite_set),
    BUILDER(reply_message_rewrite_cap),
    BUILDER(pass_rewrite_set),
    BUILDER(fan_out_rewrite_prefix),
    BUILDER(call_rewrite_strip),
    BUILDER(forward_background_copy_compare),
    BUILDER(forward_background_set_compare),
    BUILDER(forward_background_add_replace),
    BUILDER(forward_rewrite_and_background),
    BUILDER(forward_eight_backgrounds),
    BUILDER(fan_out_background),
    BUILDER(call_background),
    BUILDER(reply_background),
    BUILDER(pass_background_store_add),
};
#define BUILDERS (sizeof builders / sizeof builders[0])

/* ---- The file ------------------------------------------------------------------------------ */

/* Longest line: a whole plan buffer in hex, and the other fields. */
#define MAX_LINE (2 * SY_PLAN_CAPACITY + 256)

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Parses `text` (lowercase hex, or `-` for none) into `out`; returns the byte count, or -1. */
static long parse_bytes(const char *text, uint8_t *out, size_t cap) {
    if (strcmp(text, "-") == 0) {
        return 0;
    }
    size_t len = strlen(text);
    if (len == 0 || len % 2 != 0 || len / 2 > cap) {
        return -1;
    }
    for (size_t i = 0; i < len; i += 2) {
        int high = hex_digit(text[i]), low = hex_digit(text[i + 1]);
        if (high < 0 || low < 0) {
            return -1;
        }
        out[i / 2] = (uint8_t)(high << 4 | low);
    }
    return (long)(len / 2);
}

/* Parses 16 lowercase hex digits. */
static bool parse_word(const char *text, uint64_t *word) {
    if (strlen(text) != 16) {
        return false;
    }
    *word = 0;
    for (int i = 0; i < 16; i++) {
        int digit = hex_digit(text[i]);
        if (digit < 0) {
            return false;
        }
        *word = *word << 4 | (uint64_t)digit;
    }
    return true;
}

static void print_hex(const uint8_t *bytes, size_t len) {
    if (len == 0) {
        fputs("-", stderr);
    }
    for (size_t i = 0; i < len; i++) {
        fprintf(stderr, "%02x", bytes[i]);
    }
}

/* The plan-buffer bytes a plan word uses: a reply's message or an extended plan. */
static size_t used_bytes(uint64_t word) {
    uint8_t tag = (uint8_t)word;
    return tag == SY_TAG_REPLY || tag == SY_TAG_PLAN ? (size_t)(word >> 32) : 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s path/to/sdk/golden/plans.txt\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    FILE *file = fopen(path, "r");
    if (!file) {
        perror(path);
        return 2;
    }
    static char line[MAX_LINE];
    static uint8_t expected[SY_PLAN_CAPACITY];
    static uint32_t plan[SY_PLAN_CAPACITY / 4];
    int number = 0, matched = 0, refused = 0, failures = 0;
    while (fgets(line, sizeof line, file)) {
        number++;
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n') {
            line[--len] = '\0';
        } else if (!feof(file)) {
            fprintf(stderr, "%s:%d: line longer than %d bytes\n", path, number, MAX_LINE);
            return 2;
        }
        if (len == 0 || line[0] == '#') {
            continue;
        }
        char *fields[6];
        int count = 0;
        for (char *field = strtok(line, " "); field; field = strtok(NULL, " ")) {
            if (count == 6) {
                break;
            }
            fields[count++] = field;
        }
        uint64_t word;
        char *end;
        unsigned long children = count == 5 ? strtoul(fields[2], &end, 10) : 0;
        long expected_len = count == 5 ? parse_bytes(fields[4], expected, sizeof expected) : -1;
        if (count != 5 || *end != '\0' || !parse_word(fields[3], &word) || expected_len < 0) {
            fprintf(stderr, "%s:%d: not `verdict name children word bytes`\n", path, number);
            return 2;
        }
        const char *verdict = fields[0], *name = fields[1];
        if (strcmp(verdict, "refused") == 0) {
            refused++;
            continue;
        }
        if (strcmp(verdict, "ok") != 0 && strcmp(verdict, "ok-on-reply") != 0) {
            fprintf(stderr, "%s:%d: unknown verdict `%s`\n", path, number, verdict);
            return 2;
        }
        size_t i = 0;
        while (i < BUILDERS && strcmp(builders[i].name, name) != 0) {
            i++;
        }
        if (i == BUILDERS) {
            fprintf(stderr, "%s:%d: %s: no builder in golden_test.c for this valid plan\n", path,
                    number, name);
            failures++;
            continue;
        }
        builders[i].used++;
        memset(plan, POISON, sizeof plan);
        uint64_t built = (uint64_t)builders[i].build(plan, (uint32_t)children);
        size_t built_len = used_bytes(built);
        if (built_len > SY_PLAN_CAPACITY) {
            built_len = SY_PLAN_CAPACITY;
        }
        if (built != word || built_len != (size_t)expected_len ||
            memcmp(plan, expected, built_len) != 0) {
            fprintf(stderr, "%s:%d: %s differs\n  expected %016" PRIx64 " ", path, number, name,
                    word);
            print_hex(expected, (size_t)expected_len);
            fprintf(stderr, "\n  built    %016" PRIx64 " ", built);
            print_hex((const uint8_t *)plan, built_len);
            fputs("\n", stderr);
            failures++;
            continue;
        }
        matched++;
    }
    if (ferror(file)) {
        perror(path);
        return 2;
    }
    fclose(file);
    for (size_t i = 0; i < BUILDERS; i++) {
        if (builders[i].used != 1) {
            fprintf(stderr, "%s: %d valid plans named %s, not one\n", path, builders[i].used,
                    builders[i].name);
            failures++;
        }
    }
    if (failures) {
        fprintf(stderr, "golden_test: %d failures (%d plans matched)\n", failures, matched);
        return 1;
    }
    printf("golden_test: %d valid plans match sdk/switchyard.h's encoders (%d refused plans "
           "skipped)\n",
           matched, refused);
    return 0;
}
