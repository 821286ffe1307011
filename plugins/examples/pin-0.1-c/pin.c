// A plugin for skiff's frozen 0.1.0 world (`plugin` of skiff:plugin@0.1.0: one freestanding
// `before-pull` export, no host imports), kept to show that 0.1.0 components still load.
//
// The rule: a reference whose repository's last path component is `old-name` has it replaced
// by `busybox`, keeping the registry, the rest of the path and the tag or digest:
//   127.0.0.1:5000/old-name:1.0       ->  127.0.0.1:5000/busybox:1.0
//   127.0.0.1:5000/team/old-name@sha256:…  ->  127.0.0.1:5000/team/busybox@sha256:…
// A reference without a `/` before `old-name` (no registry) and every other reference is kept.

#include <stdlib.h>
#include <string.h>

#include "plugin.h"

static const char OLD[] = "/old-name";
static const char NEW[] = "/busybox";

void exports_plugin_before_pull(plugin_string_t *reference, plugin_pull_decision_t *ret) {
    ret->tag = SKIFF_PLUGIN_TYPES_PULL_DECISION_KEEP;
    const uint8_t *ref = reference->ptr;
    size_t len = reference->len;

    // The name ends where the digest ('@') or the tag (a ':' after the last '/') starts.
    size_t name_end = len;
    const uint8_t *at = memchr(ref, '@', len);
    if (at != NULL) {
        name_end = (size_t)(at - ref);
    }
    size_t last_slash = 0;
    bool any_slash = false;
    for (size_t i = 0; i < name_end; i++) {
        if (ref[i] == '/') {
            last_slash = i;
            any_slash = true;
        }
    }
    if (any_slash) {
        for (size_t i = last_slash; i < name_end; i++) {
            if (ref[i] == ':') {
                name_end = i;
                break;
            }
        }
    }

    size_t old_len = sizeof OLD - 1;
    size_t new_len = sizeof NEW - 1;
    if (name_end < old_len || memcmp(ref + name_end - old_len, OLD, old_len) != 0) {
        plugin_string_free(reference);
        return;
    }

    size_t keep = name_end - old_len;
    size_t out_len = keep + new_len + (len - name_end);
    uint8_t *out = malloc(out_len);
    if (out == NULL) {
        abort();
    }
    memcpy(out, ref, keep);
    memcpy(out + keep, NEW, new_len);
    memcpy(out + keep + new_len, ref + name_end, len - name_end);
    ret->tag = SKIFF_PLUGIN_TYPES_PULL_DECISION_REWRITE;
    ret->val.rewrite.ptr = out;
    ret->val.rewrite.len = out_len;
    plugin_string_free(reference);
}
