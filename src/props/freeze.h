/* Read-only properties in one block (freeze.c), for the library's own long-lived properties. */
#ifndef PELIX_PROPS_FREEZE_H
#define PELIX_PROPS_FREEZE_H

#include <pelix/props.h>

/*
 * Returns the same properties in one block, read-only from then on: pelix_props_free() frees
 * it; setting or removing a key fails with -EINVAL; copies are ordinary properties. Consumes
 * `p`. Without memory (or when `p` is empty or NULL) it returns `p` itself, unchanged.
 * Any thread; `p` must not be shared.
 */
pelix_props_t *props__freeze(pelix_props_t *p);

#endif
