/* pelix_strerror() and the error-detail helper. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/util.h"

const char *pelix_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case PELIX_E_FILTER_SYNTAX:
        return "invalid LDAP filter";
    case PELIX_E_JSON:
        return "invalid JSON";
    case PELIX_E_TYPE:
        return "value of the wrong type";
    case PELIX_E_RANGE:
        return "value out of range";
    case PELIX_E_MISSING:
        return "mandatory property missing";
    case PELIX_E_PID:
        return "invalid configuration PID";
    case PELIX_E_DELETED:
        return "configuration deleted";
    case PELIX_E_TOPIC:
        return "invalid MQTT topic or filter";
    case PELIX_E_COMMAND:
        return "invalid command line";
    case -EINVAL:
        return "invalid argument";
    case -ENOMEM:
        return "out of memory";
    case -ENOENT:
        return "not found";
    case -EEXIST:
        return "already exists";
    case -EBUSY:
        return "busy";
    case -EIO:
        return "input/output error";
    case -EDEADLK:
        return "would deadlock";
    case -EPERM:
        return "operation not permitted";
    case -EACCES:
        return "permission denied";
    case -ENOSPC:
        return "no space left on device";
    case -EROFS:
        return "read-only file system";
    case -ETIMEDOUT:
        return "timed out";
    case -ESHUTDOWN:
        return "shut down";
    default:
        return "unknown error";
    }
}

int pelix__error(pelix_error_t *err, int code, long position, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        err->position = position;
        va_start(ap, fmt);
        vsnprintf(err->text, sizeof(err->text), fmt, ap);
        va_end(ap);
    }
    return code;
}
