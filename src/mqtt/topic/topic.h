/*
 * MQTT topic names and topic filters (internal module `mqtt_topic`): validation (MQTT 3.1.1 §4.7
 * and MQTT 5 shared subscriptions), matching, and a trie of filters that dispatches a published
 * topic to the keys (listener ids) whose filters match it. Not installed.
 *
 * Thread safety: the validation and matching functions are pure and thread-safe. A trie is not
 * thread-safe against mqtt__trie_add()/mqtt__trie_remove()/mqtt__trie_free(): the caller
 * serialises them (the MQTT service calls all of them from one thread). Concurrent
 * mqtt__trie_match() calls on a trie that is not being modified ARE safe: the trie holds no
 * hidden mutable state; each concurrent caller passes its own mqtt_trie_scratch_t.
 *
 * Strings: every `const char *` argument is borrowed for the call only (the trie copies what it
 * keeps). C strings cannot hold U+0000, so the MQTT rule "no NUL in a topic" holds by
 * construction: a string is the bytes before its first NUL.
 */
#ifndef PELIX_MQTT_TOPIC_H
#define PELIX_MQTT_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pelix/errors.h>

/** Longest topic name or filter, in bytes (MQTT strings carry a 16-bit length). */
#define MQTT_TOPIC_MAX_LEN 65535

/* ---- validation and matching ----------------------------------------------------------------- */

/**
 * @brief Checks a topic name (what is published).
 *
 * Valid: non-empty, at most MQTT_TOPIC_MAX_LEN bytes, well-formed UTF-8 (no surrogates, no
 * overlong forms), no '+' nor '#'. Control characters U+0001..U+001F are accepted (MQTT
 * discourages them but allows them). Empty levels are allowed: "/", "a//b".
 * @param[in] topic the topic name (NULL is reported as invalid).
 * @param[out] err optional; on failure receives the reason and the byte offset of the problem.
 * @return 0, or PELIX_E_TOPIC.
 */
int mqtt__topic_check_name(const char *topic, pelix_error_t *err);

/**
 * @brief Checks a topic filter (what is subscribed).
 *
 * As a topic name, plus wildcards: '+' must occupy a whole level, '#' must be the whole last
 * level. A shared subscription `$share/<group>/<filter>` is valid when the group is non-empty,
 * holds no '+', '#' (nor '/', by construction) and `<filter>` is a valid, non-empty filter.
 * @param[in] filter the topic filter (NULL is reported as invalid).
 * @param[out] err optional; on failure receives the reason and the byte offset of the problem.
 * @return 0, or PELIX_E_TOPIC.
 */
int mqtt__topic_check_filter(const char *filter, pelix_error_t *err);

/**
 * @brief The filter of a shared subscription.
 * @param[in] filter a topic filter.
 * @return for `$share/<group>/<filter>`, a pointer to `<filter>` inside `filter` (borrowed, same
 *         lifetime); otherwise `filter` itself. Does not validate.
 */
const char *mqtt__topic_unshare(const char *filter);

/**
 * @brief MQTT 3.1.1 §4.7 matching of a topic name against a topic filter.
 *
 * '+' matches exactly one level (an empty one included); '#' matches the rest, including the
 * parent level ("sport/#" matches "sport"); a topic starting with '$' is not matched by a filter
 * whose first level is '+' or '#'. Empty levels are levels ("/a" has the levels "" and "a").
 * A shared subscription filter matches as its unshared filter.
 * @param[in] filter the topic filter; an invalid one matches nothing.
 * @param[in] topic the topic name; an invalid one (e.g. holding a wildcard) is matched by nothing.
 * @return true if `topic` matches `filter`.
 */
bool mqtt__topic_matches(const char *filter, const char *topic);

/* ---- trie of filters ------------------------------------------------------------------------- */

/**
 * A set of topic filters, each holding a set of uint64_t keys (listener ids), with a count per
 * (filter, key) pair: adding the same pair twice needs two removes. A shared subscription filter
 * is stored under its unshared filter: for one key, `$share/g/a/b`, `$share/h/a/b` and `a/b` are
 * the same pair.
 */
typedef struct mqtt_trie mqtt_trie_t;

/**
 * Buffers of one mqtt__trie_match() caller, kept and reused between calls so that matching does
 * not allocate once they have grown. Initialise with MQTT_TRIE_SCRATCH_INIT, release with
 * mqtt__trie_scratch_free(). Owned by its caller; one scratch per thread. The fields are
 * private, except `keys`: see mqtt__trie_match().
 */
typedef struct mqtt_trie_scratch {
    struct mqtt_trie_level *levels; /* the levels of the topic being matched */
    size_t levels_cap;
    struct mqtt_trie_frame *stack; /* the depth-first walk */
    size_t stack_cap;
    uint64_t *keys; /* after a successful match: the distinct matching keys, ascending */
    size_t keys_cap;
} mqtt_trie_scratch_t;

#define MQTT_TRIE_SCRATCH_INIT                                                                     \
    {                                                                                              \
        NULL, 0, NULL, 0, NULL, 0                                                                  \
    }

/** Releases the buffers of a scratch (NULL ok); it can be used again afterwards. */
void mqtt__trie_scratch_free(mqtt_trie_scratch_t *scratch);

/**
 * Called once per distinct matching key, in ascending key order, on the thread calling
 * mqtt__trie_match(), which must not modify the trie from the callback.
 */
typedef void (*mqtt_trie_match_fn)(void *ctx, uint64_t key);

/** @brief A new, empty trie; NULL on allocation failure. Free with mqtt__trie_free(). */
mqtt_trie_t *mqtt__trie_new(void);

/** @brief Frees a trie and everything it holds (NULL ok). @return NULL. */
mqtt_trie_t *mqtt__trie_free(mqtt_trie_t *t);

/**
 * @brief Adds one count to the pair (filter, key).
 * @param[in] filter a topic filter (borrowed; the trie copies its levels).
 * @return 0; PELIX_E_TOPIC if the filter is not valid; -ENOMEM; -EOVERFLOW if the pair was
 *         already added 2^32 - 1 times. On failure the trie is unchanged.
 */
int mqtt__trie_add(mqtt_trie_t *t, const char *filter, uint64_t key);

/**
 * @brief Removes one count from the pair (filter, key); the pair is gone when its count drops to
 * zero, and the nodes left empty are freed. Never fails for lack of memory (it may try to shrink
 * a wide node's table, and keeps the larger one if that allocation fails).
 * @return 0, or -ENOENT if the pair is not in the trie (an invalid filter never is).
 */
int mqtt__trie_remove(mqtt_trie_t *t, const char *filter, uint64_t key);

/**
 * @brief As mqtt__trie_add(), keeping a tag (0..3; larger values count as 3) for the filter: the
 * largest given since the filter got its first key (the MQTT service keeps the subscription QoS
 * there).
 * @param[out] ret_prev optional: the filter's tag before the call, or -1 if it had no key (the
 *             filter is new to the trie). Unchanged on failure.
 */
int mqtt__trie_add_tagged(mqtt_trie_t *t, const char *filter, uint64_t key, unsigned tag,
                          int *ret_prev);

/**
 * @brief As mqtt__trie_remove(); on success *ret_last (optional) tells whether the filter has no
 * key left (and so is gone from the trie, its tag forgotten).
 */
int mqtt__trie_remove_last(mqtt_trie_t *t, const char *filter, uint64_t key, bool *ret_last);

/** @brief Whether the pair (filter, key) is in the trie (a shared filter as its unshared one). */
bool mqtt__trie_contains(const mqtt_trie_t *t, const char *filter, uint64_t key);

/** Called by mqtt__trie_each_filter() with a stored filter (borrowed for the call) and its tag. */
typedef void (*mqtt_trie_filter_fn)(void *ctx, const char *filter, unsigned tag);

/**
 * @brief Calls `fn` once per stored filter (one that has keys), in no particular order, on the
 * calling thread, which must not modify the trie from `fn`. Shared subscriptions appear as their
 * unshared filter.
 * @return 0, or -ENOMEM (then `fn` may have been called for some of the filters).
 */
int mqtt__trie_each_filter(const mqtt_trie_t *t, mqtt_trie_filter_fn fn, void *ctx);

/** @brief Number of distinct (filter, key) pairs. */
size_t mqtt__trie_size(const mqtt_trie_t *t);

/**
 * @brief Number of nodes, for tests: a node holds one level, or several where no stored filter
 * branches off nor ends ("a/b/c" alone is one node; adding "a/x" makes it "a" over "b/c" and "x").
 */
size_t mqtt__trie_nodes(const mqtt_trie_t *t);

/**
 * @brief Finds the distinct keys of every filter matching a topic name (§4.7 rules, as
 * mqtt__topic_matches()).
 *
 * Calls `fn` (if not NULL) once per distinct key, in ascending order: a key with several matching
 * filters is reported once. The keys are also left in `scratch->keys[0..return value)` until the
 * scratch is next used or freed.
 * @param[in] t the trie; not modified, so concurrent matches are safe (see the top of the file).
 * @param[in] topic the published topic name (borrowed).
 * @param[in,out] scratch the caller's buffers, grown as needed and kept for the next call.
 * @param[in] fn optional callback; ctx its argument.
 * @return the number of distinct keys (>= 0); PELIX_E_TOPIC if `topic` is not a valid topic name;
 *         -ENOMEM if the scratch could not grow. On failure `fn` is never called.
 */
int mqtt__trie_match(const mqtt_trie_t *t, const char *topic, mqtt_trie_scratch_t *scratch,
                     mqtt_trie_match_fn fn, void *ctx);

#endif
