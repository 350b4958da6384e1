/**
 * @file props.h
 * @brief Typed properties with OSGi/Pelix case-insensitive keys, JSON in and out, coercion.
 *
 * A `pelix_props_t` maps keys (non-empty UTF-8 strings, compared ASCII-case-insensitively, the
 * spelling of the last `set` kept) to typed values: string, 64-bit integer ("long"), double,
 * boolean, or a list of values (a list of strings is the common case; lists may nest). Entries
 * are kept sorted by the bytes of their key, which is the order of iteration and of the JSON
 * output.
 *
 * JSON output is byte-identical to Python's
 * `json.dumps(props, sort_keys=True, indent=4, separators=(",", ": "))`, the format of Pelix's
 * `<pid>.config.js` files, so files written by either side are read by the other.
 *
 * Ownership: a props object has one owner. Values passed to setters are copied; getters return
 * pointers borrowed from the props, valid until the next change of that key or the props' free.
 *
 * Thread safety: none inside one object; distinct objects may be used from distinct threads, and
 * const functions may run concurrently on one object while nobody mutates it.
 */
#ifndef PELIX_PROPS_H
#define PELIX_PROPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pelix/errors.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Value types. */
typedef enum pelix_type {
    PELIX_TYPE_STRING = 1,
    PELIX_TYPE_LONG = 2,
    PELIX_TYPE_DOUBLE = 3,
    PELIX_TYPE_BOOL = 4,
    PELIX_TYPE_LIST = 5,
} pelix_type_t;

typedef struct pelix_value pelix_value_t;
typedef struct pelix_props pelix_props_t;

/* ---- values ---------------------------------------------------------------------------------- */

/**
 * @brief Creates a value. Strings must be valid UTF-8 without NUL; doubles must be finite.
 * @return a new value owned by the caller, or NULL on invalid input or allocation failure.
 */
PELIX_API pelix_value_t *pelix_value_new_string(const char *s);
PELIX_API pelix_value_t *pelix_value_new_long(int64_t v);
PELIX_API pelix_value_t *pelix_value_new_double(double v);
PELIX_API pelix_value_t *pelix_value_new_bool(bool v);
/** @brief Creates an empty list. */
PELIX_API pelix_value_t *pelix_value_new_list(void);
/** @brief Creates a list of strings; NULL if one of them is not valid UTF-8. */
PELIX_API pelix_value_t *pelix_value_new_strings(const char *const *items, size_t count);

/**
 * @brief Appends `item` to `list`. `item` is consumed, also on failure.
 * @return 0, -EINVAL (list is not a list, or item is NULL), -ENOMEM.
 */
PELIX_API int pelix_value_list_append(pelix_value_t *list, pelix_value_t *item);

/** @brief Deep copy; NULL on allocation failure. */
PELIX_API pelix_value_t *pelix_value_copy(const pelix_value_t *v);
/** @brief Frees a value (NULL accepted); returns NULL. */
PELIX_API pelix_value_t *pelix_value_free(pelix_value_t *v);

/** @brief Type of a value (0, which is no type, for NULL). */
PELIX_API pelix_type_t pelix_value_type(const pelix_value_t *v);
/** @brief The string of a string value (borrowed), or NULL for another type. */
PELIX_API const char *pelix_value_string(const pelix_value_t *v);
/** @brief The integer of a long value, 0 for another type. */
PELIX_API int64_t pelix_value_long(const pelix_value_t *v);
/** @brief The number of a double or long value, 0 for another type. */
PELIX_API double pelix_value_double(const pelix_value_t *v);
/** @brief The boolean of a bool value, false for another type. */
PELIX_API bool pelix_value_bool(const pelix_value_t *v);
/** @brief Number of items of a list value, 0 for another type. */
PELIX_API size_t pelix_value_list_size(const pelix_value_t *v);
/** @brief Item `i` of a list value (borrowed), NULL when out of range or not a list. */
PELIX_API const pelix_value_t *pelix_value_list_at(const pelix_value_t *v, size_t i);

/** @brief Strict equality: same type and same content (1 and 1.0 differ). NULLs equal only NULL. */
PELIX_API bool pelix_value_equal(const pelix_value_t *a, const pelix_value_t *b);

/**
 * @brief Display form of a value: strings as they are, numbers and booleans as in JSON, lists as
 * JSON arrays on one line. Owned by the caller (free()); NULL on allocation failure.
 */
PELIX_API char *pelix_value_to_string(const pelix_value_t *v);

/* ---- properties ------------------------------------------------------------------------------ */

/** @brief New empty properties, or NULL on allocation failure. */
PELIX_API pelix_props_t *pelix_props_new(void);
/** @brief Frees the properties (NULL accepted); returns NULL: `p = pelix_props_free(p);`. */
PELIX_API pelix_props_t *pelix_props_free(pelix_props_t *p);
/** @brief Deep copy, or NULL on allocation failure (or if `p` is NULL). */
PELIX_API pelix_props_t *pelix_props_copy(const pelix_props_t *p);
/** @brief Same keys (case-insensitively) with equal values (pelix_value_equal()). */
PELIX_API bool pelix_props_equal(const pelix_props_t *a, const pelix_props_t *b);

/** @brief Number of entries. */
PELIX_API size_t pelix_props_size(const pelix_props_t *p);
/** @brief Key of entry `i` (entries sorted by key bytes), borrowed; NULL when out of range. */
PELIX_API const char *pelix_props_key_at(const pelix_props_t *p, size_t i);
/** @brief Value of entry `i`, borrowed; NULL when out of range. */
PELIX_API const pelix_value_t *pelix_props_value_at(const pelix_props_t *p, size_t i);

/** @brief Value of `key` (case-insensitive), borrowed; NULL if absent. */
PELIX_API const pelix_value_t *pelix_props_get(const pelix_props_t *p, const char *key);
/** @brief The string at `key`, or `def` if absent or not a string. Borrowed. */
PELIX_API const char *pelix_props_get_string(const pelix_props_t *p, const char *key,
                                             const char *def);
/** @brief The integer at `key`, or `def` if absent or not a long. */
PELIX_API int64_t pelix_props_get_long(const pelix_props_t *p, const char *key, int64_t def);
/** @brief The number at `key` (double or long), or `def`. */
PELIX_API double pelix_props_get_double(const pelix_props_t *p, const char *key, double def);
/** @brief The boolean at `key`, or `def` if absent or not a bool. */
PELIX_API bool pelix_props_get_bool(const pelix_props_t *p, const char *key, bool def);

/**
 * @brief Sets `key` to a copy of `v`, replacing any entry whose key differs only in case.
 * @return 0, -EINVAL (NULL argument, empty or non-UTF-8 key), -ENOMEM. On failure `p` is
 * unchanged.
 */
PELIX_API int pelix_props_set(pelix_props_t *p, const char *key, const pelix_value_t *v);
/** @brief pelix_props_set() for one string (-EINVAL if not UTF-8). */
PELIX_API int pelix_props_set_string(pelix_props_t *p, const char *key, const char *v);
PELIX_API int pelix_props_set_long(pelix_props_t *p, const char *key, int64_t v);
/** @brief pelix_props_set() for a double (-EINVAL if not finite: JSON cannot hold it). */
PELIX_API int pelix_props_set_double(pelix_props_t *p, const char *key, double v);
PELIX_API int pelix_props_set_bool(pelix_props_t *p, const char *key, bool v);
PELIX_API int pelix_props_set_strings(pelix_props_t *p, const char *key, const char *const *items,
                                      size_t count);
/** @brief Removes `key` (case-insensitive): 0 or -ENOENT. */
PELIX_API int pelix_props_remove(pelix_props_t *p, const char *key);

/**
 * @brief True for keys that name a secret: `password`, `*_password` or `*secret*` (ignoring
 * case). Their values are never shown, and files holding them are written with mode 0600.
 */
PELIX_API bool pelix_props_is_secret_key(const char *key);

/* ---- JSON ------------------------------------------------------------------------------------ */

/**
 * @brief Parses a JSON object into properties.
 *
 * Accepted values: strings, integers (64-bit), finite reals, booleans and arrays of those (nested
 * arrays allowed). Rejected with a reason: malformed JSON (with line and column), a top level that
 * is not an object, `null`, nested objects, keys that are empty or equal ignoring case.
 * @param[in] text the JSON text, `len` bytes (need not be NUL-terminated).
 * @param[out] ret_props new properties owned by the caller, on success only.
 * @param[out] err optional details (position = line number for syntax errors).
 * @return 0, PELIX_E_JSON, -ENOMEM, -EINVAL (NULL argument).
 */
PELIX_API int pelix_props_from_json(const char *text, size_t len, pelix_props_t **ret_props,
                                    pelix_error_t *err);

/**
 * @brief Serializes as Python's `json.dumps(p, sort_keys=True, indent=4, separators=(",", ": "))`
 * (ASCII only, `\uXXXX` escapes, Python's shortest float repr), without a trailing newline.
 * @param[out] ret_json NUL-terminated text owned by the caller (free()).
 * @return 0, -EINVAL, -ENOMEM.
 */
PELIX_API int pelix_props_to_json(const pelix_props_t *p, char **ret_json);

/* ---- coercion -------------------------------------------------------------------------------- */

/**
 * @brief One entry of a schema: the expected type of `key`, whether it is mandatory, an optional
 * inclusive range (`ranged`) for longs and doubles.
 */
typedef struct pelix_prop_schema {
    const char *key;
    pelix_type_t type;
    bool required;
    bool ranged;
    double min;
    double max;
} pelix_prop_schema_t;

/**
 * @brief Converts `v` to `type`, as values typed in a shell or a file need.
 *
 * - to long: a long; an integral double; a decimal string (surrounding blanks allowed).
 * - to double: a double; a long; a decimal string.
 * - to bool: a bool; the longs 0 and 1; the strings true/false, yes/no, on/off, 1/0 (any case).
 * - to string: a string; a long, double or bool in display form.
 * - to list: a list (kept); any other value becomes a one-item list.
 * @param[in] name the property name, used in the error text (`port: "abc" is not an integer`);
 * the value of a secret key (pelix_props_is_secret_key()) is shown as `***`.
 * @param[out] ret_value a new value owned by the caller, on success only.
 * @return 0, PELIX_E_TYPE, -EINVAL, -ENOMEM.
 */
PELIX_API int pelix_value_coerce(const char *name, const pelix_value_t *v, pelix_type_t type,
                                 pelix_value_t **ret_value, pelix_error_t *err);

/**
 * @brief Checks and coerces `p` against a schema, all or nothing.
 *
 * Every key of the schema present in `p` is coerced to its type and checked against its range;
 * a mandatory key that is absent fails. Keys not in the schema are left alone. On failure `p` is
 * unchanged and `err` names the first offending key.
 * @return 0, PELIX_E_TYPE, PELIX_E_RANGE, PELIX_E_MISSING, -EINVAL, -ENOMEM.
 */
PELIX_API int pelix_props_coerce(pelix_props_t *p, const pelix_prop_schema_t *schema, size_t count,
                                 pelix_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
