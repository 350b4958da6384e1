/*
 * Validation and matching of MQTT topic names and filters (MQTT 3.1.1 §4.7, MQTT 5 §4.8.2 for
 * `$share/<group>/<filter>`).
 *
 * Levels are the substrings between '/' separators, empty ones included: "/a/" has three levels
 * "", "a" and "". Matching walks both strings one level at a time, without allocating; it
 * validates both arguments first so that an invalid filter (e.g. "a/#/b") matches nothing rather
 * than something surprising.
 */
#include "mqtt/topic/topic.h"

#include <string.h>

#include "util/util.h"

#define SHARE_PREFIX "$share/"
#define SHARE_PREFIX_LEN (sizeof(SHARE_PREFIX) - 1)

/* Reports a problem of `s` at byte `pos`; quotes `s` when it is short enough to be readable. */
static int topic_error(pelix_error_t *err, const char *what, const char *s, size_t len, size_t pos,
                       const char *reason)
{
    if (len <= 80 && pelix__utf8_valid(s, len)) {
        return pelix__error(err, PELIX_E_TOPIC, (long)pos, "%s '%s': %s (offset %zu)", what, s,
                            reason, pos);
    }
    return pelix__error(err, PELIX_E_TOPIC, (long)pos, "%s of %zu bytes: %s (offset %zu)", what,
                        len, reason, pos);
}

static int topic_check(const char *s, bool filter, pelix_error_t *err)
{
    const char *what = filter ? "topic filter" : "topic name";
    const char *body = s;
    size_t len;

    if (!s) {
        return pelix__error(err, PELIX_E_TOPIC, -1, "%s is NULL", what);
    }
    len = strlen(s);
    if (len == 0) {
        return pelix__error(err, PELIX_E_TOPIC, 0, "%s is empty", what);
    }
    if (len > MQTT_TOPIC_MAX_LEN) {
        return pelix__error(err, PELIX_E_TOPIC, MQTT_TOPIC_MAX_LEN,
                            "%s of %zu bytes is longer than %d bytes", what, len,
                            MQTT_TOPIC_MAX_LEN);
    }
    if (!pelix__utf8_valid(s, len)) {
        return pelix__error(err, PELIX_E_TOPIC, -1, "%s of %zu bytes is not valid UTF-8", what,
                            len);
    }
    if (filter && strncmp(s, SHARE_PREFIX, SHARE_PREFIX_LEN) == 0) {
        const char *group = s + SHARE_PREFIX_LEN;
        size_t glen = strcspn(group, "/");
        size_t wild = strcspn(group, "+#");

        if (glen == 0) {
            return topic_error(err, what, s, len, SHARE_PREFIX_LEN,
                               "the share name of a shared subscription is empty");
        }
        if (wild < glen) {
            return topic_error(err, what, s, len, SHARE_PREFIX_LEN + wild,
                               "the share name of a shared subscription holds a wildcard");
        }
        if (group[glen] == '\0' || group[glen + 1] == '\0') {
            return topic_error(err, what, s, len, len,
                               "a shared subscription has no topic filter after its share name");
        }
        body = group + glen + 1;
    }
    for (const char *p = body; *p; p++) {
        bool whole;

        if (*p != '+' && *p != '#') {
            continue;
        }
        if (!filter) {
            return topic_error(err, what, s, len, (size_t)(p - s),
                               *p == '+' ? "the wildcard '+' is not allowed in a topic name"
                                         : "the wildcard '#' is not allowed in a topic name");
        }
        whole = (p == body || p[-1] == '/') && (p[1] == '\0' || p[1] == '/');
        if (!whole) {
            return topic_error(err, what, s, len, (size_t)(p - s),
                               *p == '+' ? "'+' must occupy a whole level"
                                         : "'#' must occupy a whole level");
        }
        if (*p == '#' && p[1] != '\0') {
            return topic_error(err, what, s, len, (size_t)(p - s), "'#' must be the last level");
        }
    }
    return 0;
}

int mqtt__topic_check_name(const char *topic, pelix_error_t *err)
{
    return topic_check(topic, false, err);
}

int mqtt__topic_check_filter(const char *filter, pelix_error_t *err)
{
    return topic_check(filter, true, err);
}

const char *mqtt__topic_unshare(const char *filter)
{
    const char *slash;

    if (!filter || strncmp(filter, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0) {
        return filter;
    }
    slash = strchr(filter + SHARE_PREFIX_LEN, '/');
    return slash ? slash + 1 : filter;
}

bool mqtt__topic_matches(const char *filter, const char *topic)
{
    const char *f, *t;

    if (mqtt__topic_check_filter(filter, NULL) != 0 || mqtt__topic_check_name(topic, NULL) != 0) {
        return false;
    }
    f = mqtt__topic_unshare(filter);
    t = topic;
    if (t[0] == '$' && (f[0] == '+' || f[0] == '#')) {
        return false;
    }
    for (;;) {
        size_t flen = strcspn(f, "/");
        size_t tlen = strcspn(t, "/");

        if (flen == 1 && f[0] == '#') {
            return true; /* the rest, whatever it is (the filter is valid: '#' is last) */
        }
        if (!(flen == 1 && f[0] == '+') && (flen != tlen || memcmp(f, t, flen) != 0)) {
            return false;
        }
        f += flen;
        t += tlen;
        if (*t == '\0') {
            /* Topic exhausted: the filter must be too, or end with "/#" (the parent rule). */
            return *f == '\0' || strcmp(f, "/#") == 0;
        }
        if (*f == '\0') {
            return false; /* the topic has more levels than the filter */
        }
        f++;
        t++;
    }
}
