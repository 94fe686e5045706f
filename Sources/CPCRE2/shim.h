#ifndef CPCRE2_SHIM_H
#define CPCRE2_SHIM_H
// PCRE2's 8-bit library (UTF-8), as syslog-ng uses it. The names are macros over `_8` functions, which Swift does
// not import: these inline wrappers give them plain names and fixed types.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>

typedef pcre2_code_8 routerd_pcre2_code;
typedef pcre2_match_data_8 routerd_pcre2_match_data;

// Compiles `pattern` (UTF-8, `length` bytes) for UTF-8 subjects with Unicode properties, tolerating invalid UTF-8 in
// subjects, and JIT-compiles it when the platform can. On failure returns NULL with the error text in `message`.
static inline routerd_pcre2_code *routerd_pcre2_compile(
    const char *pattern, size_t length, char *message, size_t message_size, size_t *error_offset) {
    int error_code = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code_8 *code = pcre2_compile_8(
        (PCRE2_SPTR8)pattern, length, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error_code, &offset, NULL);
    if (code == NULL) {
        pcre2_get_error_message_8(error_code, (PCRE2_UCHAR8 *)message, message_size);
        *error_offset = offset;
        return NULL;
    }
    (void)pcre2_jit_compile_8(code, PCRE2_JIT_COMPLETE);
    return code;
}

static inline void routerd_pcre2_code_free(routerd_pcre2_code *code) { pcre2_code_free_8(code); }

static inline routerd_pcre2_match_data *routerd_pcre2_match_data_create(const routerd_pcre2_code *code) {
    return pcre2_match_data_create_from_pattern_8(code, NULL);
}

static inline void routerd_pcre2_match_data_free(routerd_pcre2_match_data *data) { pcre2_match_data_free_8(data); }

// Searches `subject` from `start`: 1 when it matches (with the match's range in `match_start`, `match_end`), 0 when
// not, negative on an error (a resource limit).
static inline int routerd_pcre2_search(
    const routerd_pcre2_code *code, const uint8_t *subject, size_t length, size_t start, uint32_t options,
    routerd_pcre2_match_data *data, size_t *match_start, size_t *match_end) {
    int result = pcre2_match_8(code, subject, length, start, options, data, NULL);
    if (result == PCRE2_ERROR_NOMATCH) return 0;
    if (result < 0) return result;
    PCRE2_SIZE *vector = pcre2_get_ovector_pointer_8(data);
    *match_start = vector[0];
    *match_end = vector[1];
    return 1;
}

static const uint32_t routerd_pcre2_not_empty_at_start = PCRE2_NOTEMPTY_ATSTART;
static const uint32_t routerd_pcre2_anchored = PCRE2_ANCHORED;

#endif
