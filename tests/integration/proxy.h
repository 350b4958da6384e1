/*
 * A TCP proxy for fault injection: listens on a free port of 127.0.0.1 and forwards each
 * connection to a target port (a test broker), and on demand stalls, delays, cuts connections, or
 * cuts one in the middle of what the broker sends.
 *
 * One thread forwards every connection (poll); the controls may be called from any thread. What
 * the proxy forwards is not parsed (but for tp_proxy_cut_before()): "in the middle of a packet"
 * means in the middle of one read from the broker, which holds one or more whole MQTT packets when
 * the broker sends them one at a time (a PUBLISH of a few hundred bytes arrives in one read on
 * loopback).
 *
 * Nothing here asserts (cmocka): failures are returned with a message on stderr.
 */
#ifndef TP_PROXY_H
#define TP_PROXY_H

#include <stdbool.h>

typedef struct tp_proxy tp_proxy_t;

/* Starts a proxy to 127.0.0.1:`target_port` on a free port; NULL on failure. */
tp_proxy_t *tp_proxy_start(int target_port);
int tp_proxy_port(const tp_proxy_t *p);
/* Connections accepted so far. */
int tp_proxy_accepted(tp_proxy_t *p);
/* While stalled, nothing is read nor forwarded in either direction (connections stay open, new
 * ones are accepted and connected to the target, and wait). */
void tp_proxy_stall(tp_proxy_t *p, bool stalled);
/* Each read is forwarded `ms` milliseconds later (0: at once); applies to both directions. */
void tp_proxy_delay(tp_proxy_t *p, long ms);
/* Closes every open connection, both sides, now. */
void tp_proxy_cut(tp_proxy_t *p);
/* The next read from the target of at least 2 bytes is forwarded in part (half of it), then that
 * connection is closed, both sides. True once done (poll with a bound). */
void tp_proxy_cut_mid_packet(tp_proxy_t *p);
bool tp_proxy_cut_done(tp_proxy_t *p);
/* The next packet of MQTT type `type` (e.g. 6, PUBREL) from the target is not forwarded: what
 * came before it in that read is, then that connection is closed, both sides. Reads are parsed
 * from their first byte as whole packets (see above); true once done, as for the cut above. */
void tp_proxy_cut_before(tp_proxy_t *p, int type);
/* While refusing, new connections are closed as soon as they are accepted. */
void tp_proxy_refuse(tp_proxy_t *p, bool refuse);
/* Stops the thread, closes everything, frees. NULL is ignored. */
void tp_proxy_free(tp_proxy_t *p);

#endif
