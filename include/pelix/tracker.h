/**
 * @file tracker.h
 * @brief Service trackers: follow the services of a specification that match a filter.
 *
 * A tracker calls `added` for every matching service (those already registered when it opens,
 * then new ones), `modified` when the properties of a tracked service change and still match,
 * and `removed` when a tracked service is unregistered or stops matching, or when the tracker is
 * closed. For one service, the calls come in that order and never overlap.
 *
 * Callbacks run on the thread that delivers the registry event (see registry.h) or, for
 * `removed` at close, on the thread that closes; never under a registry or tracker lock. They may
 * call the registry, including registering or unregistering services.
 *
 * Ownership: the tracker is owned by whoever opened it; `svc` and `props` given to callbacks are
 * borrowed for the call. `svc` stays valid until `removed` has returned for it.
 *
 * Thread safety: all functions are thread-safe, except that pelix_tracker_close() must be
 * called once, and not from a callback of the same tracker.
 */
#ifndef PELIX_TRACKER_H
#define PELIX_TRACKER_H

#include <pelix/registry.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pelix_tracker pelix_tracker_t;

/** @brief A tracker callback: service id, service pointer and properties (borrowed). */
typedef void (*pelix_tracker_fn)(void *ctx, long id, void *svc, const pelix_props_t *props);

/** Options of pelix_tracker_open(); start from PELIX_TRACKER_OPTIONS_INIT. */
typedef struct pelix_tracker_options {
    const char *spec;   /**< specification to track; NULL for any */
    const char *filter; /**< LDAP filter on the properties; NULL or "" for all */
    pelix_tracker_fn added;
    pelix_tracker_fn modified;
    pelix_tracker_fn removed;
    void *ctx; /**< passed to every callback */
} pelix_tracker_options_t;

#define PELIX_TRACKER_OPTIONS_INIT                                                                 \
    {                                                                                              \
        NULL, NULL, NULL, NULL, NULL, NULL                                                         \
    }

/**
 * @brief Opens a tracker; `added` is called for the matching services already registered
 * before this returns (on the calling thread, unless another thread is delivering events of that
 * service, which then calls it).
 * @param[out] ret_tracker the tracker, owned by the caller. It is written before the first
 * `added` call (so callbacks may use it through the caller's variable), and set to NULL on
 * failure.
 * @param[out] err optional filter syntax details.
 * @return 0, PELIX_E_FILTER_SYNTAX, -EINVAL, -ENOMEM. On failure no callback is called.
 */
PELIX_API int pelix_tracker_open(pelix_registry_t *reg, const pelix_tracker_options_t *opts,
                                 pelix_tracker_t **ret_tracker, pelix_error_t *err);

/**
 * @brief Closes the tracker: no callback starts after this returns, the callbacks running on
 * other threads have ended, and `removed` was called (here) for every service still tracked.
 * During those calls the tracker holds a use of each service, so an unregister of it running on
 * another thread waits for its `removed` call to return before returning itself.
 * Frees the tracker (NULL accepted); returns NULL.
 */
PELIX_API pelix_tracker_t *pelix_tracker_close(pelix_tracker_t *tracker);

/** @brief Number of services tracked now. */
PELIX_API size_t pelix_tracker_count(pelix_tracker_t *tracker);

/**
 * @brief Ids of the tracked services, best first (ranking, then id).
 * @param[out] ret_ids array owned by the caller (free()), NULL if none.
 * @return 0, -EINVAL, -ENOMEM.
 */
PELIX_API int pelix_tracker_ids(pelix_tracker_t *tracker, long **ret_ids, size_t *ret_count);

/**
 * @brief Calls `fn` with the best tracked service, holding a registry use of it during the call
 * (see pelix_registry_use_id()).
 * @return 0 (fn called), -ENOENT (nothing tracked), -EINVAL, -ENOMEM.
 */
PELIX_API int pelix_tracker_use(pelix_tracker_t *tracker, pelix_svc_use_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
