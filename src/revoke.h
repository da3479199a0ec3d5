/*
 * revoke.h - live revocation: every gateway that shares a store ends the
 * sessions whose credential was revoked (device revoked, user disabled or
 * deleted, gateway password changed, password login turned off) within a
 * few seconds, without a restart and without any message between gateways.
 *
 * Every poll_interval the gateway asks the store for its generation, a
 * counter each revoking change bumps. When it moved, the auth cache is
 * dropped and the logged-in sessions are checked against the store in the
 * thread pool; those whose credential no longer holds are closed. Changing
 * an upstream app password does not bump the generation: live sessions go
 * on, and the next login uses the new password.
 */
#ifndef MG_REVOKE_H
#define MG_REVOKE_H

#include <stdint.h>
#include <uv.h>

struct mg_gateway;

/* Embedded in struct mg_gateway, which outlives every job (uv_run returns after them). */
struct mg_revoke_state {
	uv_timer_t	timer;		/* timer.data == the gateway */
	int		busy;		/* a job is in the thread pool */
	int		stopped;	/* the gateway is stopping: jobs only clean up */
	int		have_gen;	/* gen holds a value read from the store */
	int		store_down;	/* the last query failed (logged once) */
	int64_t		gen;		/* the store generation last acted on */
};

/* Starts polling. 0 ok, -1 error. */
int mg_revoke_start(struct mg_gateway *gw);

/* Stops polling (the timer handle is closed; work in flight completes harmlessly). */
void mg_revoke_stop(struct mg_gateway *gw);

#endif
