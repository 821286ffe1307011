// A registry-mirror plugin for skiff (world `puller` of skiff:plugin@0.2.0), in C.
//
// before-pull rewrites a reference whose registry is `docker.io` to the registry named by the
// setting `mirror` (e.g. `127.0.0.1:5000`), keeping the repository path and the tag or digest:
//   docker.io/library/alpine:3.20  ->  127.0.0.1:5000/library/alpine:3.20
// A reference without a registry part (`alpine`, `user/app`) is docker.io's too, read as Docker
// reads it (`library/` before a single-part name). Every other reference is kept. Each rewrite
// is logged at info; without the setting (or with it empty) it keeps and logs a warning.
// It uses nothing but the host interface: the component has no WASI imports.

#include <stdlib.h>
#include <string.h>

#include "puller.h"

static void log_line(skiff_plugin_host_level_t level, const char *text) {
    puller_string_t msg;
    puller_string_set(&msg, text);
    skiff_plugin_host_log(level, &msg);
}

// Whether the first `n` bytes of `s` name a registry by Docker's rule: a dot, a colon, or
// `localhost`.
static bool is_registry(const uint8_t *s, size_t n) {
    if (n == 9 && memcmp(s, "localhost", 9) == 0) {
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.' || s[i] == ':') {
            return true;
        }
    }
    return false;
}

void exports_skiff_plugin_before_pull_before_pull(puller_string_t *reference,
                                                  exports_skiff_plugin_before_pull_pull_decision_t *ret) {
    ret->tag = SKIFF_PLUGIN_TYPES_PULL_DECISION_KEEP;
    const uint8_t *ref = reference->ptr;
    size_t len = reference->len;

    // Split off the registry: the part before the first '/', when it is one.
    const uint8_t *slash = memchr(ref, '/', len);
    const uint8_t *path = ref;
    size_t path_len = len;
    bool single = slash == NULL;
    if (slash != NULL && is_registry(ref, (size_t)(slash - ref))) {
        size_t reg_len = (size_t)(slash - ref);
        if (!(reg_len == 9 && memcmp(ref, "docker.io", 9) == 0)) {
            puller_string_free(reference);
            return; // another registry: keep
        }
        path = slash + 1;
        path_len = len - reg_len - 1;
        single = memchr(path, '/', path_len) == NULL;
    }

    puller_string_t key, mirror = {NULL, 0};
    puller_string_set(&key, "mirror");
    bool have = skiff_plugin_host_setting(&key, &mirror);
    if (!have || mirror.len == 0) {
        if (have) {
            puller_string_free(&mirror);
        }
        log_line(SKIFF_PLUGIN_TYPES_LEVEL_WARN, "no `mirror` setting: keeping docker.io references");
        puller_string_free(reference);
        return;
    }

    // MIRROR "/" ["library/"] PATH
    const char *library = single ? "library/" : "";
    size_t lib_len = strlen(library);
    size_t out_len = mirror.len + 1 + lib_len + path_len;
    uint8_t *out = malloc(out_len);
    if (out == NULL) {
        abort();
    }
    memcpy(out, mirror.ptr, mirror.len);
    out[mirror.len] = '/';
    memcpy(out + mirror.len + 1, library, lib_len);
    memcpy(out + mirror.len + 1 + lib_len, path, path_len);

    // "rewrote REF to OUT" for the log.
    size_t msg_len = 8 + len + 4 + out_len;
    char *msg = malloc(msg_len + 1);
    if (msg != NULL) {
        memcpy(msg, "rewrote ", 8);
        memcpy(msg + 8, ref, len);
        memcpy(msg + 8 + len, " to ", 4);
        memcpy(msg + 12 + len, out, out_len);
        msg[msg_len] = '\0';
        log_line(SKIFF_PLUGIN_TYPES_LEVEL_INFO, msg);
        free(msg);
    }

    ret->tag = SKIFF_PLUGIN_TYPES_PULL_DECISION_REWRITE;
    ret->val.rewrite.ptr = out;
    ret->val.rewrite.len = out_len;
    puller_string_free(&mirror);
    puller_string_free(reference);
}
