/*
 * Deadlock avoidance for unregister. unregister() waits for the delivery of the service's events
 * by another thread and for the uses other threads hold; remove_listener() waits for the calls of
 * the listener running on other threads. When callbacks on two threads make such calls against
 * each other (T1, inside a callback of A, unregisters B while T2, inside a callback of B,
 * unregisters A), each would wait for the other forever. Every waiting thread therefore records
 * what it waits for; an unregister, before it waits and after each wake-up, follows the threads
 * it waits for, and those they wait for, and stops waiting (-EDEADLK) if the chain comes back to
 * itself. A thread starting to wait wakes the others so that they check again.
 * remove_listener() never gives up: its caller frees the listener's context next.
 */
#include "registry/registry_internal.h"

void reg__wait_begin(pelix_registry_t *r, waiter_t *w)
{
    w->tid = pthread_self();
    w->stamp = 0;
    w->next = r->waiters;
    r->waiters = w;
    pthread_cond_broadcast(&r->cond); /* waiters check again: this may close a cycle */
}

void reg__wait_end(pelix_registry_t *r, waiter_t *w)
{
    for (waiter_t **p = &r->waiters; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            return;
        }
    }
}

static waiter_t *waiter_of(pelix_registry_t *r, pthread_t tid)
{
    for (waiter_t *w = r->waiters; w; w = w->next) {
        if (pthread_equal(w->tid, tid)) {
            return w;
        }
    }
    return NULL;
}

static bool reaches(pelix_registry_t *r, const waiter_t *from, pthread_t me, unsigned stamp);

/* True if thread `t`, which `from` waits for, is `me` or waits (transitively) for `me`. */
static bool through(pelix_registry_t *r, const waiter_t *from, pthread_t t, pthread_t me,
                    unsigned stamp)
{
    waiter_t *next;

    if (pthread_equal(t, from->tid)) {
        return false; /* a thread never waits for itself */
    }
    if (pthread_equal(t, me)) {
        return true;
    }
    next = waiter_of(r, t);
    if (!next || next->stamp == stamp) {
        return false; /* not waiting here, or already followed */
    }
    next->stamp = stamp;
    return reaches(r, next, me, stamp);
}

static bool reaches(pelix_registry_t *r, const waiter_t *from, pthread_t me, unsigned stamp)
{
    const svc_reg_t *s = from->svc;

    if (s && s->delivering && through(r, from, s->deliverer, me, stamp)) {
        return true;
    }
    for (const holder_t *h = s ? s->uses.head : NULL; h; h = h->next) {
        if (through(r, from, h->tid, me, stamp)) {
            return true;
        }
    }
    for (const holder_t *h = from->listener ? from->listener->calls.head : NULL; h; h = h->next) {
        if (through(r, from, h->tid, me, stamp)) {
            return true;
        }
    }
    return false;
}

bool reg__would_deadlock(pelix_registry_t *r, waiter_t *w)
{
    unsigned stamp = ++r->wait_stamp;

    if (stamp == 0) {
        /* Wrapped around: clear the marks so that none looks already followed. */
        for (waiter_t *x = r->waiters; x; x = x->next) {
            x->stamp = 0;
        }
        stamp = ++r->wait_stamp;
    }
    w->stamp = stamp;
    return reaches(r, w, w->tid, stamp);
}
