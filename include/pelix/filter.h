/**
 * @file filter.h
 * @brief LDAP filters (RFC 1960, as OSGi and Pelix use them), parsed once, matched many times.
 *
 * Syntax: `(&(a=1)(|(b~=x)(!(c<=3)))(d>=2)(e=*)(f=pre*mid*post))`, with `\` escaping the next
 * character in a value (`\(`, `\)`, `\*`, `\\`). Blanks between components and around the whole
 * text are ignored; blanks inside a value are kept. Attribute names are compared ignoring case,
 * like property keys.
 *
 * Matching against properties:
 * - `=`: strings compare exactly; longs and doubles compare as numbers (`(port=1883)` matches the
 *   long 1883 and the double 1883.0); booleans match `true`/`false` in any case.
 * - `~=`: like `=`, ignoring case and blanks in strings.
 * - `<`, `<=`, `>`, `>=`: numbers numerically, strings by their bytes, booleans as false < true
 *   when the filter value is `true` or `false` (any case).
 * - `=*`: the key is present, and not an empty string or list. `a*b`: substring match on strings.
 * - A list value matches if any of its items matches. A missing key matches nothing (so `(!(x=1))`
 *   matches properties without `x`).
 *
 * Ownership: a filter is immutable and reference-counted; pelix_filter_parse() returns one
 * reference, pelix_filter_ref()/pelix_filter_unref() add and drop one.
 *
 * Thread safety: all functions are thread-safe; one filter may be matched from many threads.
 */
#ifndef PELIX_FILTER_H
#define PELIX_FILTER_H

#include <stdbool.h>

#include <pelix/errors.h>
#include <pelix/props.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pelix_filter pelix_filter_t;

/**
 * @brief Parses an LDAP filter.
 * @param[in] text the filter, NUL-terminated.
 * @param[out] ret_filter a new reference owned by the caller, on success only.
 * @param[out] err optional: the reason and the 0-based offset in `text` where parsing failed.
 * @return 0, PELIX_E_FILTER_SYNTAX (including an empty or blank text), -EINVAL (NULL argument),
 * -ENOMEM.
 */
PELIX_API int pelix_filter_parse(const char *text, pelix_filter_t **ret_filter, pelix_error_t *err);

/** @brief Adds a reference; returns `f` (NULL accepted). */
PELIX_API pelix_filter_t *pelix_filter_ref(pelix_filter_t *f);
/** @brief Drops a reference, freeing the filter with the last one; returns NULL. */
PELIX_API pelix_filter_t *pelix_filter_unref(pelix_filter_t *f);

/**
 * @brief Tests properties against the filter.
 * @param[in] f the filter; NULL matches everything.
 * @param[in] props the properties; NULL is treated as empty properties.
 */
PELIX_API bool pelix_filter_match(const pelix_filter_t *f, const pelix_props_t *props);

/**
 * @brief Normalized text of the filter: no blanks between components, values escaped where
 * needed. Parsing it again gives an equal filter. Borrowed, valid as long as the reference.
 */
PELIX_API const char *pelix_filter_text(const pelix_filter_t *f);

#ifdef __cplusplus
}
#endif

#endif
