/*
 * The configuration folder: one `<pid>.config.js` file per configuration, in Pelix's JSON
 * format. Writes are atomic (a temporary file that does not end in ".config.js", fsync, rename,
 * fsync of the folder), so a reader (Pelix, an editor, our watcher) sees the old or the new file,
 * never half of one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "configadmin/configadmin_internal.h"

#define MAX_FILE_SIZE (1024 * 1024)

int persist__check_pid(const char *pid, const char *what, pelix_error_t *err)
{
    size_t len;

    if (!pid) {
        return pelix__error(err, PELIX_E_PID, -1, "%s is missing", what);
    }
    len = strlen(pid);
    if (pelix__str_blank(pid)) {
        return pelix__error(err, PELIX_E_PID, -1, "%s is empty", what);
    }
    if (len > PELIX_PID_MAX) {
        return pelix__error(err, PELIX_E_PID, -1, "%s is longer than %d bytes", what,
                            PELIX_PID_MAX);
    }
    if (!pelix__utf8_valid(pid, len)) {
        return pelix__error(err, PELIX_E_PID, -1, "%s is not valid UTF-8", what);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)pid[i];
        if (c < 0x20 || c == 0x7F) {
            return pelix__error(err, PELIX_E_PID, -1, "%s contains a control character", what);
        }
        if (c == '/') {
            return pelix__error(err, PELIX_E_PID, -1, "%s '%s' contains '/'", what, pid);
        }
    }
    if (pid[0] == ' ' || pid[len - 1] == ' ') {
        return pelix__error(err, PELIX_E_PID, -1, "%s '%s' starts or ends with a blank", what, pid);
    }
    if (pid[0] == '.') {
        return pelix__error(err, PELIX_E_PID, -1, "%s '%s' starts with '.'", what, pid);
    }
    return 0;
}

char *persist__pid_of(const char *filename)
{
    size_t len = strlen(filename), slen = strlen(PELIX_CONFIG_FILE_SUFFIX);

    if (len <= slen || strcmp(filename + len - slen, PELIX_CONFIG_FILE_SUFFIX) != 0) {
        return NULL;
    }
    return pelix__strndup(filename, len - slen);
}

int persist__mkdirs(const char *folder, pelix_error_t *err)
{
    char path[PATH_MAX];
    size_t len = strlen(folder);

    if (!len || len >= sizeof(path)) {
        return pelix__error(err, -EINVAL, -1, "invalid configuration folder '%s'", folder);
    }
    memcpy(path, folder, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            char saved = path[i];
            path[i] = '\0';
            if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                int rc = -errno;
                return pelix__error(err, rc, -1, "cannot create folder '%s': %s", path,
                                    strerror(-rc));
            }
            path[i] = saved;
        }
    }
    struct stat st;
    if (stat(folder, &st) < 0 || !S_ISDIR(st.st_mode)) {
        return pelix__error(err, -ENOTDIR, -1, "'%s' is not a folder", folder);
    }
    return 0;
}

static char *path_of(const char *folder, const char *pid)
{
    return pelix__sprintf("%s/%s%s", folder, pid, PELIX_CONFIG_FILE_SUFFIX);
}

static uint64_t fnv1a(const char *data, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)data[i];
        h *= 1099511628211ULL;
    }
    return h;
}

int persist__read(const char *folder, const char *pid, pelix_props_t **ret_props,
                  uint64_t *ret_hash, pelix_error_t *err)
{
    char *path = path_of(folder, pid), *data = NULL;
    struct stat st;
    size_t got = 0;
    int fd = -1, rc = 0;

    if (!path) {
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    /* Non-blocking: opening a FIFO dropped in the folder must not wait for a writer. */
    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        pelix__error(err, rc, -1, "%s: %s", path, strerror(-rc));
        goto out;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = pelix__error(err, PELIX_E_JSON, -1, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_size > MAX_FILE_SIZE) {
        rc = pelix__error(err, PELIX_E_JSON, -1, "%s: larger than %d bytes", path, MAX_FILE_SIZE);
        goto out;
    }
    data = pelix__malloc((size_t)st.st_size + 1);
    if (!data) {
        rc = pelix__error(err, -ENOMEM, -1, "out of memory");
        goto out;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            pelix__error(err, rc, -1, "%s: %s", path, strerror(-rc));
            goto out;
        }
        if (n == 0) {
            break; /* shrank while reading: parse what is there */
        }
        got += (size_t)n;
    }
    if (ret_hash) {
        *ret_hash = fnv1a(data, got);
    }
    rc = pelix_props_from_json(data, got, ret_props, err);
    if (rc < 0 && err) {
        /* Prefix the reason with the file name. */
        char reason[sizeof(err->text)];
        memcpy(reason, err->text, sizeof(reason));
        pelix__error(err, rc, err->position, "%s: %s", path, reason);
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    if (data) {
        explicit_bzero(data, got); /* the file may hold a password */
    }
    pelix__free(data);
    pelix__free(path);
    return rc;
}

static int sync_folder(const char *folder)
{
    int fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0) {
        return -errno;
    }
    if (fsync(fd) < 0 && errno != EINVAL) {
        rc = -errno;
    }
    close(fd);
    return rc;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int persist__write(const char *folder, const char *pid, const pelix_props_t *props,
                   pelix_error_t *err)
{
    char *json = NULL, *path = path_of(folder, pid);
    char *tmp = pelix__sprintf("%s/.%s.tmp.XXXXXX", folder, pid);
    bool secret = false;
    int fd = -1, rc;

    if (!path || !tmp || pelix_props_to_json(props, &json) < 0) {
        rc = pelix__error(err, -ENOMEM, -1, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < pelix_props_size(props); i++) {
        secret = secret || pelix_props_is_secret_key(pelix_props_key_at(props, i));
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = -errno;
        pelix__error(err, rc, -1, "cannot write '%s': %s", path, strerror(-rc));
        goto out;
    }
    rc = fchmod(fd, secret ? 0600 : 0644) < 0 ? -errno : 0;
    if (rc == 0) {
        rc = write_all(fd, json, strlen(json));
    }
    if (rc == 0) {
        rc = write_all(fd, "\n", 1);
    }
    if (rc == 0 && fsync(fd) < 0) {
        rc = -errno;
    }
    if (close(fd) < 0 && rc == 0) {
        rc = -errno;
    }
    fd = -1;
    if (rc == 0 && rename(tmp, path) < 0) {
        rc = -errno;
    }
    if (rc < 0) {
        unlink(tmp);
        pelix__error(err, rc, -1, "cannot write '%s': %s", path, strerror(-rc));
        goto out;
    }
    /* The new content is in place once renamed: a failed folder fsync only leaves the rename less
     * durable across a power cut, and failing the update now would misreport its state. */
    sync_folder(folder);
out:
    if (json) {
        explicit_bzero(json, strlen(json)); /* it may hold a password */
    }
    pelix__free(json);
    pelix__free(path);
    pelix__free(tmp);
    return rc;
}

int persist__remove(const char *folder, const char *pid, pelix_error_t *err)
{
    char *path = path_of(folder, pid);
    int rc = 0;

    if (!path) {
        return pelix__error(err, -ENOMEM, -1, "out of memory");
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        rc = -errno;
        pelix__error(err, rc, -1, "cannot remove '%s': %s", path, strerror(-rc));
    } else {
        sync_folder(folder);
    }
    pelix__free(path);
    return rc;
}

int persist__list(const char *folder, char ***ret_pids, size_t *ret_count)
{
    DIR *dir = opendir(folder);
    struct dirent *de;
    char **pids = NULL;
    size_t n = 0, cap = 0;

    if (!dir) {
        return -errno;
    }
    while ((de = readdir(dir))) {
        char *pid = persist__pid_of(de->d_name);
        if (!pid) {
            continue;
        }
        if (pelix__grow((void **)&pids, &cap, n + 1, sizeof(*pids)) < 0) {
            pelix__free(pid);
            for (size_t i = 0; i < n; i++) {
                pelix__free(pids[i]);
            }
            pelix__free(pids);
            closedir(dir);
            return -ENOMEM;
        }
        pids[n++] = pid;
    }
    closedir(dir);
    *ret_pids = pids;
    *ret_count = n;
    return 0;
}
