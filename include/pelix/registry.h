/**
 * @file registry.h
 * @brief The service registry: services registered under specifications with properties,
 * looked up by specification and LDAP filter, watched through service events.
 *
 * A service is any pointer (usually a struct of function pointers, see the specifications in
 * other headers) registered under one or more specification names with properties. The registry
 * adds `objectClass` (list of the specifications), `service.id` (a long > 0, never reused) and
 * `service.ranking` (a long, 0 unless given). Lookups order services by ranking (highest first),
 * then by id (oldest first).
 *
 * Service events (REGISTERED, MODIFIED, MODIFIED_ENDMATCH, UNREGISTERING) are delivered
 * synchronously: when register/set_properties/unregister returns, every listener has been called.
 *
 * Guarantees:
 * - No listener or tracker callback runs while a registry lock is held; callbacks may call any
 *   registry function, including register, set_properties and unregister of the service they are
 *   called for, without deadlock.
 * - Events of one service reach each listener in the order they happened. The events of a service
 *   are queued and delivered by one thread at a time: the thread that caused them, unless another
 *   thread is already delivering events of that service, in which case that thread delivers them
 *   too and register/set_properties return without waiting (so no thread ever waits for another's
 *   callbacks in these calls). A nested call from a callback of the same service is delivered
 *   after that callback returns.
 * - Once pelix_registry_unregister() returns, no lookup returns the service, no new use starts,
 *   every listener has received UNREGISTERING, and every use started by other threads has ended.
 *   Uses held by the calling thread itself are not waited for (unregistering from inside a
 *   callback of that service is allowed): they end when that thread releases them. Called from
 *   inside a callback of the same service's events, the UNREGISTERING event is delivered right
 *   after that callback returns.
 * - Once pelix_registry_remove_listener() returns, the listener is not called any more and no
 *   call to it is in progress on another thread.
 * - Unregister never deadlocks inside the registry: when it would wait for a thread that is
 *   itself waiting in the registry (directly or through others) for the calling thread (two
 *   callbacks on two threads unregistering each other's service, or one removing the listener
 *   the other is called from), the unregister that would close the cycle returns -EDEADLK
 *   without waiting: the service is unregistered (no lookup, no new use), but its UNREGISTERING
 *   is delivered by the other thread after its current callback, and that callback or use may
 *   still run: keep the service alive until the calling callback has returned.
 *   pelix_registry_remove_listener() always waits (its caller frees the listener's context next):
 *   two callbacks removing each other's listener on two threads wait for each other.
 *
 * Thread safety: every function is thread-safe. Callbacks run on the thread that caused the
 * event (or that delivers the events of that service, see above), never under a registry lock.
 */
#ifndef PELIX_REGISTRY_H
#define PELIX_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include <pelix/errors.h>
#include <pelix/filter.h>
#include <pelix/props.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Standard property: list of the specifications of a service (set by the registry). */
#define PELIX_OBJECTCLASS "objectClass"
/** Standard property: the service id, a long > 0 (set by the registry). */
#define PELIX_SERVICE_ID "service.id"
/** Standard property: the ranking, a long (default 0); higher ranks are found first. */
#define PELIX_SERVICE_RANKING "service.ranking"
/** Standard property: the persistent identity of a service (used by ConfigAdmin). */
#define PELIX_SERVICE_PID "service.pid"

typedef struct pelix_registry pelix_registry_t;

/** Kinds of service events (values as in OSGi). */
typedef enum pelix_svc_event_kind {
    PELIX_SVC_REGISTERED = 1,
    PELIX_SVC_MODIFIED = 2,
    PELIX_SVC_UNREGISTERING = 4,
    PELIX_SVC_MODIFIED_ENDMATCH = 8,
} pelix_svc_event_kind_t;

/**
 * @brief A service event. Every pointer is borrowed for the duration of the callback.
 *
 * `props` are the properties after the change (for UNREGISTERING: the last ones); `old_props`
 * the properties before a MODIFIED or MODIFIED_ENDMATCH event, NULL otherwise. `svc` may be
 * called during the callback: unregistering waits for the delivery of the service's events.
 */
typedef struct pelix_svc_event {
    pelix_svc_event_kind_t kind;
    long id;
    void *svc;
    const pelix_props_t *props;
    const pelix_props_t *old_props;
} pelix_svc_event_t;

/**
 * @brief A service listener. Called on the thread that delivers the event (see the file
 * comment), never under a registry lock.
 */
typedef void (*pelix_svc_listener_fn)(void *ctx, const pelix_svc_event_t *event);

/**
 * @brief Receives one service during pelix_registry_use(); `svc` and `props` are borrowed for
 * the call, during which the registry holds a use of the service.
 */
typedef void (*pelix_svc_use_fn)(void *ctx, long id, void *svc, const pelix_props_t *props);

/** @brief Creates an empty registry, or NULL on allocation failure. */
PELIX_API pelix_registry_t *pelix_registry_new(void);

/**
 * @brief Frees the registry (NULL accepted); returns NULL.
 * Every service and listener must have been removed by its owner before; those left are
 * dropped without events. Must not be called from a registry callback.
 */
PELIX_API pelix_registry_t *pelix_registry_free(pelix_registry_t *reg);

/**
 * @brief Registers a service and delivers REGISTERED.
 * @param[in] specs `count` specification names (non-empty, distinct, at least one); copied.
 * @param[in] svc the service pointer (non-NULL); the caller keeps it alive until unregistered.
 * @param[in] props the properties, consumed (also on failure); NULL means none. Its
 * `objectClass` and `service.id` are replaced; `service.ranking`, if present, must be a long or
 * a string holding one.
 * @param[out] ret_id the service id (> 0), optional.
 * @return 0, -EINVAL, PELIX_E_TYPE (bad ranking), -ENOMEM.
 */
PELIX_API int pelix_registry_register(pelix_registry_t *reg, const char *const *specs, size_t count,
                                      void *svc, pelix_props_t *props, long *ret_id);

/**
 * @brief Replaces the properties of a service (the standard ones are kept) and delivers
 * MODIFIED (to listeners whose filter matches the new properties) or MODIFIED_ENDMATCH (to those
 * that matched only the old ones). Nothing is delivered if nothing changed.
 * @param[in] props consumed, also on failure.
 * @return 0, -ENOENT (unknown or unregistering), -EINVAL, PELIX_E_TYPE, -ENOMEM.
 */
PELIX_API int pelix_registry_set_properties(pelix_registry_t *reg, long id, pelix_props_t *props);

/**
 * @brief Unregisters a service: stops lookups and new uses, delivers UNREGISTERING, waits for
 * the uses held by other threads to end (see the file comment). It needs no memory: when
 * none is left, UNREGISTERING still reaches every listener that wants it.
 * @return 0, -ENOENT (unknown or already unregistering), -EINVAL (NULL registry, id <= 0),
 * -EDEADLK (unregistered, but not waited for: see the file comment).
 */
PELIX_API int pelix_registry_unregister(pelix_registry_t *reg, long id);

/**
 * @brief Finds the ids of the services registered under `spec` whose properties match
 * `filter`, best first (ranking, then id).
 * @param[in] spec a specification, or NULL for any.
 * @param[in] filter an LDAP filter text, or NULL/"" for all.
 * @param[out] ret_ids array owned by the caller (free()); NULL when there is none.
 * @param[out] ret_count number of ids.
 * @param[out] err optional details of a filter syntax error.
 * @return 0 (also when nothing is found), PELIX_E_FILTER_SYNTAX, -EINVAL, -ENOMEM.
 */
PELIX_API int pelix_registry_find(pelix_registry_t *reg, const char *spec, const char *filter,
                                  long **ret_ids, size_t *ret_count, pelix_error_t *err);

/** @brief Like pelix_registry_find() with a parsed filter (NULL for all). */
PELIX_API int pelix_registry_find_filter(pelix_registry_t *reg, const char *spec,
                                         const pelix_filter_t *filter, long **ret_ids,
                                         size_t *ret_count);

/**
 * @brief Copies the current properties of a service.
 * @param[out] ret_props a copy owned by the caller.
 * @return 0, -ENOENT, -EINVAL, -ENOMEM.
 */
PELIX_API int pelix_registry_get_properties(pelix_registry_t *reg, long id,
                                            pelix_props_t **ret_props);

/**
 * @brief Gets a service and counts one use of it. Pair with pelix_registry_unget_service().
 * pelix_registry_unregister() waits for the uses of other threads to be released, so keep them
 * short or release them when the service goes (a tracker's `removed` callback is the place).
 * @return 0, -ENOENT (unknown or unregistering), -EINVAL, -ENOMEM.
 */
PELIX_API int pelix_registry_get_service(pelix_registry_t *reg, long id, void **ret_svc);

/** @brief Releases one use taken by pelix_registry_get_service(): 0, -ENOENT, -EINVAL. */
PELIX_API int pelix_registry_unget_service(pelix_registry_t *reg, long id);

/**
 * @brief Calls `fn` with the service `id`, holding a use of it during the call.
 * @return 0 (fn was called), -ENOENT (unknown or unregistering; fn not called), -EINVAL.
 */
PELIX_API int pelix_registry_use_id(pelix_registry_t *reg, long id, pelix_svc_use_fn fn, void *ctx);

/** @brief Current number of uses of a service (0 when unknown). For diagnostics and tests. */
PELIX_API long pelix_registry_use_count(pelix_registry_t *reg, long id);

/**
 * @brief Calls `fn` once with the best service of `spec` matching `filter`, holding a use of it
 * during the call. The calling thread runs `fn`, without registry locks.
 * @return 0 (fn was called), -ENOENT (no such service; fn not called),
 * PELIX_E_FILTER_SYNTAX, -EINVAL, -ENOMEM (parsing the filter).
 */
PELIX_API int pelix_registry_use(pelix_registry_t *reg, const char *spec, const char *filter,
                                 pelix_svc_use_fn fn, void *ctx);

/**
 * @brief Adds a service listener.
 * @param[in] spec only events of services registered under this specification; NULL for all.
 * @param[in] filter only events of services whose properties match (see the MODIFIED rules);
 * NULL or "" for all.
 * @param[in] fn the callback, non-NULL; `ctx` is passed to it.
 * @param[in] replay if true, the listener immediately receives a REGISTERED event for every
 * service already registered that matches, in the per-service order of the other events (this is
 * how trackers start without missing or doubling a service).
 * @param[out] ret_id the listener id (> 0), to remove it; optional. Written on success only,
 * before the first call of `fn` (which may remove the listener with it).
 * @return 0, PELIX_E_FILTER_SYNTAX, -EINVAL, -ENOMEM. On failure `fn` is never called.
 */
PELIX_API int pelix_registry_add_listener(pelix_registry_t *reg, const char *spec,
                                          const char *filter, bool replay, pelix_svc_listener_fn fn,
                                          void *ctx, long *ret_id, pelix_error_t *err);

/**
 * @brief Removes a listener. After it returns the listener is not called any more, and no call
 * to it is running on another thread (a call on the calling thread, when removing from inside
 * the callback, ends when the callback returns).
 * @return 0, -ENOENT.
 */
PELIX_API int pelix_registry_remove_listener(pelix_registry_t *reg, long listener_id);

#ifdef __cplusplus
}
#endif

#endif
