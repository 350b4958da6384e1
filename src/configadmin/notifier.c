/*
 * The ConfigAdmin thread: a FIFO of notifications delivered one at a time. Order of delivery is
 * the order of the changes, so the order per PID holds whatever thread made them. The target
 * service is fetched from the registry for each call (a use is held during the call): a service
 * unregistered in the meantime is skipped.
 */
#include <errno.h>

#include "configadmin/configadmin_internal.h"

static void notif_free(notif_t *item)
{
    if (item) {
        pelix__free(item->pid);
        pelix_props_free(item->props);
        pelix__free(item);
    }
}

static void deliver(notifier_t *n, const notif_t *item)
{
    void *svc;

    if (pelix_registry_get_service(n->reg, item->svc_id, &svc) < 0) {
        return; /* gone since */
    }
    if (item->factory) {
        const pelix_managed_service_factory_t *f = svc;
        if (item->props && f->updated) {
            f->updated(f->handle, item->pid, item->props);
        } else if (!item->props && f->deleted) {
            f->deleted(f->handle, item->pid);
        }
    } else {
        const pelix_managed_service_t *m = svc;
        if (m->updated) {
            m->updated(m->handle, item->props);
        }
    }
    pelix_registry_unget_service(n->reg, item->svc_id);
}

static void *run(void *arg)
{
    notifier_t *n = arg;

    pthread_mutex_lock(&n->lock);
    for (;;) {
        notif_t *item;
        while (!n->head && !n->stopping) {
            pthread_cond_wait(&n->cond, &n->lock);
        }
        item = n->head;
        if (!item) {
            break; /* stopping, and everything was delivered */
        }
        n->head = item->next;
        if (!n->head) {
            n->tail = NULL;
        }
        pthread_mutex_unlock(&n->lock);
        deliver(n, item);
        pthread_mutex_lock(&n->lock);
        n->done_seq = item->seq;
        pthread_cond_broadcast(&n->cond);
        notif_free(item);
    }
    pthread_mutex_unlock(&n->lock);
    return NULL;
}

int notifier__start(notifier_t *n, pelix_registry_t *reg)
{
    int rc;

    pthread_mutex_init(&n->lock, NULL);
    pelix__cond_init(&n->cond);
    n->reg = reg;
    rc = pthread_create(&n->thread, NULL, run, n);
    if (rc != 0) {
        pthread_cond_destroy(&n->cond);
        pthread_mutex_destroy(&n->lock);
        return -rc;
    }
    n->running = true;
    return 0;
}

int notifier__push(notifier_t *n, long svc_id, bool factory, const char *pid,
                   const pelix_props_t *props)
{
    notif_t *item = pelix__calloc(1, sizeof(*item));

    if (item) {
        item->svc_id = svc_id;
        item->factory = factory;
        item->pid = pelix__strdup(pid);
        item->props = props ? pelix_props_copy(props) : NULL;
    }
    if (!item || !item->pid || (props && !item->props)) {
        notif_free(item);
        return -ENOMEM;
    }
    pthread_mutex_lock(&n->lock);
    item->seq = ++n->queued_seq;
    if (n->tail) {
        n->tail->next = item;
    } else {
        n->head = item;
    }
    n->tail = item;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
    return 0;
}

int notifier__flush(notifier_t *n, long timeout_ms)
{
    struct timespec until = pelix__deadline_ms(timeout_ms);
    uint64_t target;
    int rc = 0;

    if (n->running && pthread_equal(pthread_self(), n->thread)) {
        return -EDEADLK;
    }
    pthread_mutex_lock(&n->lock);
    target = n->queued_seq;
    while (n->done_seq < target && rc == 0) {
        rc = pthread_cond_timedwait(&n->cond, &n->lock, &until);
    }
    if (n->done_seq >= target) {
        rc = 0;
    }
    pthread_mutex_unlock(&n->lock);
    return rc ? -ETIMEDOUT : 0;
}

void notifier__stop(notifier_t *n)
{
    if (!n->running) {
        return;
    }
    pthread_mutex_lock(&n->lock);
    n->stopping = true;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
    pthread_join(n->thread, NULL);
    n->running = false;
    pthread_cond_destroy(&n->cond);
    pthread_mutex_destroy(&n->lock);
}
