/**
 * @file configadmin.h
 * @brief Configuration Admin (spec `pelix.configadmin`), as Pelix has it, with its folder of
 * `<pid>.config.js` files.
 *
 * A configuration is a PID and properties. Configurations of a factory have the PID
 * `<factory_pid>-<uuid4>` and carry `service.factoryPid`. Updating a configuration writes its
 * file and notifies:
 * - managed services: services registered as `pelix.configadmin.managed` whose `service.pid`
 *   property (a string or a list) names the PID; they get `updated(props)`, and `updated(NULL)`
 *   when the configuration is deleted or, at registration, when none exists;
 * - managed service factories: services registered as `pelix.configadmin.managed.factory` whose
 *   `service.pid` names the factory PID; they get `updated(pid, props)` and `deleted(pid)`.
 * A service registered late receives the existing configurations. Notifications run on the
 * ConfigAdmin thread, one at a time, in the order of the changes (so in order per PID), never
 * with a lock held, whatever thread made the change; callbacks may call ConfigAdmin back.
 *
 * Persistence: `<folder>/<pid>.config.js`, JSON with sorted keys and 4-space indent, exactly as
 * Pelix writes it (so either reads the other's files), written atomically (temporary file,
 * fsync, rename), mode 0600 when a key is named `password`, `*_password` or `*secret*`, else
 * 0644. Files not ending in `.config.js` are ignored. A malformed file is reported once through
 * the logger, with its name and the reason, and changes nothing. With `watch` on, files added,
 * changed (in content) or removed while running are applied within a second: a new factory
 * configuration file reaches its factory, a removed file deletes its configuration. The
 * changes ConfigAdmin writes itself do not come back as notifications. A file is read 100 ms
 * after its last change (at most 800 ms after its first, if it keeps changing); a file written in
 * place is read once its writer closed it; files published by rename or by a link (`ln`,
 * `ln -s`, `linkat` of an O_TMPFILE) are applied too. Non-regular files (FIFOs, folders) named
 * like configurations are reported, never opened for blocking reads.
 *
 * PIDs: non-empty UTF-8 of at most 200 bytes, without `/`, control characters, surrounding
 * blanks or a leading `.` (they name files).
 *
 * Ownership: pelix_configadmin_new() returns the owner's handle; configurations are reference
 * counted handles (functions returning one give a reference the caller must unref). A
 * configuration handle stays safe to use after pelix_configadmin_free(): its functions then fail
 * with -ESHUTDOWN.
 *
 * Thread safety: every function is thread-safe.
 */
#ifndef PELIX_CONFIGADMIN_H
#define PELIX_CONFIGADMIN_H

#include <stdbool.h>

#include <pelix/errors.h>
#include <pelix/log.h>
#include <pelix/props.h>
#include <pelix/registry.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Specification of the ConfigAdmin service (the service pointer is the pelix_configadmin_t). */
#define PELIX_CONFIGADMIN_SPEC "pelix.configadmin"
/** Specification of managed services (service pointer: pelix_managed_service_t). */
#define PELIX_MANAGED_SERVICE_SPEC "pelix.configadmin.managed"
/** Specification of managed service factories (pointer: pelix_managed_service_factory_t). */
#define PELIX_MANAGED_FACTORY_SPEC "pelix.configadmin.managed.factory"
/** Property of a factory configuration: its factory PID. */
#define PELIX_SERVICE_FACTORY_PID "service.factoryPid"
/** Suffix of configuration files. */
#define PELIX_CONFIG_FILE_SUFFIX ".config.js"
/** Longest accepted PID, in bytes. */
#define PELIX_PID_MAX 200

/**
 * @brief A managed service. `updated` is called on the ConfigAdmin thread with the
 * configuration (borrowed for the call), or NULL when there is none or it was deleted.
 */
typedef struct pelix_managed_service {
    void (*updated)(void *handle, const pelix_props_t *props);
    void *handle;
} pelix_managed_service_t;

/**
 * @brief A managed service factory, called on the ConfigAdmin thread: `updated` for a new or
 * changed configuration of the factory (props borrowed for the call), `deleted` when it goes.
 */
typedef struct pelix_managed_service_factory {
    void (*updated)(void *handle, const char *pid, const pelix_props_t *props);
    void (*deleted)(void *handle, const char *pid);
    void *handle;
} pelix_managed_service_factory_t;

typedef struct pelix_configadmin pelix_configadmin_t;
typedef struct pelix_configuration pelix_configuration_t;

/** Options of pelix_configadmin_new(); start from PELIX_CONFIGADMIN_OPTIONS_INIT. */
typedef struct pelix_configadmin_options {
    /** Folder of the `<pid>.config.js` files, created if missing; NULL keeps configurations in
     * memory only. */
    const char *folder;
    /** Apply changes made to the folder while running (inotify). */
    bool watch;
    /** Where ConfigAdmin reports what it could not do (malformed files, failed writes). */
    pelix_logger_t logger;
} pelix_configadmin_options_t;

#define PELIX_CONFIGADMIN_OPTIONS_INIT                                                             \
    {                                                                                              \
        NULL, true,                                                                                \
        {                                                                                          \
            NULL, NULL, PELIX_LOG_INFO                                                             \
        }                                                                                          \
    }

/**
 * @brief Starts ConfigAdmin: loads the folder (reporting malformed files), registers the
 * `pelix.configadmin` service, starts tracking managed services and factories, starts its
 * notification thread and, with `watch`, its folder watcher.
 * @param[in] reg the registry; must outlive the ConfigAdmin.
 * @param[out] ret_ca the ConfigAdmin, owned by the caller.
 * @param[out] err optional details (e.g. the folder cannot be created).
 * @return 0, -EINVAL, -ENOMEM, -errno of the folder.
 */
PELIX_API int pelix_configadmin_new(pelix_registry_t *reg, const pelix_configadmin_options_t *opts,
                                    pelix_configadmin_t **ret_ca, pelix_error_t *err);

/**
 * @brief Stops ConfigAdmin: unregisters its service, stops watching, delivers the notifications
 * already queued, then stops its thread. NULL accepted; returns NULL. Must not be called from a
 * ConfigAdmin callback, nor while another thread may still call a function with `ca` (the
 * configuration handles are not concerned: they stay safe, see the file comment).
 */
PELIX_API pelix_configadmin_t *pelix_configadmin_free(pelix_configadmin_t *ca);

/**
 * @brief Gets the configuration `pid`, creating an empty one (not stored until updated).
 * @param[out] ret_config a new reference. The same object is returned for the same PID until it
 * is deleted.
 * @return 0, PELIX_E_PID (invalid PID, or a factory PID), -EINVAL, -ENOMEM, -ESHUTDOWN.
 */
PELIX_API int pelix_configadmin_get_configuration(pelix_configadmin_t *ca, const char *pid,
                                                  pelix_configuration_t **ret_config,
                                                  pelix_error_t *err);

/**
 * @brief Creates a configuration of the factory `factory_pid`, PID `<factory_pid>-<uuid4>`,
 * without properties until its first update.
 * @param[out] ret_config a new reference.
 * @return 0, PELIX_E_PID (NULL, empty, blank or unacceptable factory PID, or the PID of a plain
 * configuration), -ENOMEM, -ESHUTDOWN.
 */
PELIX_API int pelix_configadmin_create_factory_configuration(pelix_configadmin_t *ca,
                                                             const char *factory_pid,
                                                             pelix_configuration_t **ret_config,
                                                             pelix_error_t *err);

/**
 * @brief Lists configurations, sorted by PID. With no filter (NULL or blank), all of them,
 * updated or not; with a filter, the updated ones whose properties match.
 * @param[out] ret_configs array of new references; release with pelix_configuration_list_free().
 * @return 0, PELIX_E_FILTER_SYNTAX, -EINVAL, -ENOMEM, -ESHUTDOWN.
 */
PELIX_API int pelix_configadmin_list_configurations(pelix_configadmin_t *ca, const char *filter,
                                                    pelix_configuration_t ***ret_configs,
                                                    size_t *ret_count, pelix_error_t *err);

/** @brief Unrefs every configuration of a list and frees the array (NULL accepted). */
PELIX_API void pelix_configuration_list_free(pelix_configuration_t **configs, size_t count);

/**
 * @brief Declares the property types of the configurations of `pid`: a factory PID (for all its
 * configurations) or the PID of a plain configuration.
 *
 * From then on, the properties given to pelix_configuration_update(), read by
 * pelix_configuration_reload() or found in a file of the folder are coerced to these types with
 * pelix_props_coerce() (so `port` typed as "1883" in a shell is stored and delivered as 1883) and
 * checked (mandatory keys, ranges); properties that do not conform are refused with the reason
 * (`port: "abc" is not an integer`), or for a file reported once and ignored, changing nothing.
 * Configurations that exist already are coerced in memory where they can be (without a
 * notification) and reported where they cannot. Keys not in the schema are kept as they are.
 * @param[in] schema copied; `count` 0 removes the schema of `pid`.
 * @return 0, PELIX_E_PID, -EINVAL (bad entry), -ENOMEM, -ESHUTDOWN.
 */
PELIX_API int pelix_configadmin_set_schema(pelix_configadmin_t *ca, const char *pid,
                                           const pelix_prop_schema_t *schema, size_t count,
                                           pelix_error_t *err);

/**
 * @brief Waits until every notification caused by changes made before this call was delivered.
 * @return 0, -ETIMEDOUT, -EDEADLK (called from the ConfigAdmin thread), -EINVAL.
 */
PELIX_API int pelix_configadmin_flush(pelix_configadmin_t *ca, long timeout_ms);

/* ---- configurations -------------------------------------------------------------------------- */

/** @brief Adds a reference; returns `c`. */
PELIX_API pelix_configuration_t *pelix_configuration_ref(pelix_configuration_t *c);
/** @brief Drops a reference (NULL accepted); returns NULL. */
PELIX_API pelix_configuration_t *pelix_configuration_unref(pelix_configuration_t *c);

/** @brief The PID, borrowed for the life of the reference. */
PELIX_API const char *pelix_configuration_get_pid(const pelix_configuration_t *c);
/** @brief The factory PID, or NULL for a plain configuration. Borrowed like the PID. */
PELIX_API const char *pelix_configuration_get_factory_pid(const pelix_configuration_t *c);

/**
 * @brief Copies the properties (with `service.pid`, and `service.factoryPid` for a factory
 * configuration).
 * @param[out] ret_props a copy owned by the caller, or NULL if never updated.
 * @return 0, PELIX_E_DELETED, -ENOMEM, -EINVAL. After pelix_configadmin_free() it still gives the
 * last properties.
 */
PELIX_API int pelix_configuration_get_properties(pelix_configuration_t *c,
                                                 pelix_props_t **ret_props);

/** @brief True if updated at least once and not deleted (also after pelix_configadmin_free()). */
PELIX_API bool pelix_configuration_is_valid(pelix_configuration_t *c);

/**
 * @brief Replaces the properties: `service.pid` (and `service.factoryPid`) are set, the file is
 * written, then the managed service or factory is notified (asynchronously, see the file
 * comment). Nothing happens when `props` is NULL or empty (as in Pelix) or equal to the current
 * properties. With a schema (pelix_configadmin_set_schema()), the properties are coerced first.
 * On failure nothing changes, on disk or in memory.
 * @param[in] props consumed, also on failure.
 * @return 0, PELIX_E_DELETED, PELIX_E_TYPE / PELIX_E_RANGE / PELIX_E_MISSING (schema), -errno of
 * the write (e.g. -ENOSPC, -EROFS, -EACCES), -ENOMEM, -ESHUTDOWN.
 */
PELIX_API int pelix_configuration_update(pelix_configuration_t *c, pelix_props_t *props,
                                         pelix_error_t *err);

/**
 * @brief Deletes the configuration: removes its file, then notifies (if it had been updated).
 * Idempotent. On failure to remove the file nothing changes.
 * @return 0, -errno of the removal, -ESHUTDOWN.
 */
PELIX_API int pelix_configuration_delete(pelix_configuration_t *c, pelix_error_t *err);

/**
 * @brief Reads the configuration's file again and applies it like an update (without writing).
 * @return 0, -ENOENT (no file or no folder), other -errno of reading it (-EACCES...),
 * PELIX_E_JSON, PELIX_E_TYPE / PELIX_E_RANGE / PELIX_E_MISSING (schema), PELIX_E_DELETED,
 * -ENOMEM, -ESHUTDOWN. On failure nothing changes.
 */
PELIX_API int pelix_configuration_reload(pelix_configuration_t *c, pelix_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
