/*
 * revoke.c - see revoke.h.
 */
#include "revoke.h"

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "session.h"

/* One logged-in session as the check sees it: copies, so the session may close meanwhile. */
struct revoke_item {
	uint32_t	id;
	char		user[MG_NAME_MAX];
	char		device[MG_LABEL_MAX];
	int64_t		auth_gen;
	int		revoked;	/* set by the check */
};

struct revoke_job {
	uv_work_t		 work;
	struct mg_gateway	*gw;
	int			 failed;	/* the store did not answer */
	int64_t			 gen;		/* generation read */
	struct revoke_item	*items;		/* NULL for a generation query */
	size_t			 nitems;
};

static void	revoke_timer_cb(uv_timer_t *);
static void	revoke_gen_work(uv_work_t *);
static void	revoke_gen_after(uv_work_t *, int);
static void	revoke_check_work(uv_work_t *);
static void	revoke_check_after(uv_work_t *, int);

int
mg_revoke_start(struct mg_gateway *gw)
{
	struct mg_revoke_state *st = &gw->revoke;

	memset(st, 0, sizeof(*st));
	if (uv_timer_init(gw->loop, &st->timer) != 0)
		return -1;
	st->timer.data = gw;
	uv_timer_start(&st->timer, revoke_timer_cb, 0, (uint64_t)gw->cfg->poll_interval * 1000);
	return 0;
}

void
mg_revoke_stop(struct mg_gateway *gw)
{
	if (gw->revoke.stopped)
		return;
	gw->revoke.stopped = 1;
	uv_close((uv_handle_t *)&gw->revoke.timer, NULL);
}

static void
revoke_job_done(struct mg_gateway *gw, struct revoke_job *j)
{
	free(j->items);
	free(j);
	gw->revoke.busy = 0;
}

static void
revoke_timer_cb(uv_timer_t *t)
{
	struct mg_gateway	*gw = t->data;
	struct revoke_job	*j;

	if (gw->revoke.busy || gw->revoke.stopped)
		return;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return;
	j->work.data = j;
	j->gw = gw;
	if (uv_queue_work(gw->loop, &j->work, revoke_gen_work, revoke_gen_after) != 0) {
		free(j);
		return;
	}
	gw->revoke.busy = 1;
}

static void
revoke_gen_work(uv_work_t *w)
{
	struct revoke_job	*j = w->data;
	char			 err[MG_ERRLEN];

	if (mg_store_generation(j->gw->store, &j->gen, err, sizeof(err)) == -1) {
		j->failed = 1;
		mg_log_debug(0, "revoke store error=\"%s\"", err);
	}
}

static void
revoke_gen_after(uv_work_t *w, int status)
{
	struct revoke_job	*j = w->data;
	struct mg_gateway	*gw = j->gw;
	struct mg_revoke_state	*st = &gw->revoke;
	struct mg_session	*s;
	size_t			 n = 0;

	if (st->stopped || status != 0) {
		revoke_job_done(gw, j);
		return;
	}
	if (j->failed) {
		if (!st->store_down)
			mg_log_warn(0, "revoke store unavailable; live sessions are not re-checked until it returns");
		st->store_down = 1;
		revoke_job_done(gw, j);
		return;
	}
	if (st->store_down)
		mg_log_info(0, "revoke store available again");
	st->store_down = 0;
	if (st->have_gen && j->gen == st->gen) {
		revoke_job_done(gw, j);
		return;
	}
	/*
	 * The first reading also checks: a change made while the store was
	 * unreachable, or before this gateway started, must not slip through.
	 */
	st->have_gen = 1;
	st->gen = j->gen;
	mg_auth_cache_clear(gw);
	for (s = gw->sessions; s != NULL; s = s->next)
		if (!s->closing && s->auth_user != NULL)
			n++;
	if (n == 0) {
		revoke_job_done(gw, j);
		return;
	}
	if ((j->items = calloc(n, sizeof(*j->items))) == NULL) {
		st->have_gen = 0;	/* try again next time */
		revoke_job_done(gw, j);
		return;
	}
	for (s = gw->sessions; s != NULL && j->nitems < n; s = s->next) {
		struct revoke_item *it;

		if (s->closing || s->auth_user == NULL)
			continue;
		it = &j->items[j->nitems++];
		it->id = s->id;
		snprintf(it->user, sizeof(it->user), "%s", s->auth_user);
		snprintf(it->device, sizeof(it->device), "%s", s->device);
		it->auth_gen = s->auth_gen;
	}
	if (uv_queue_work(gw->loop, &j->work, revoke_check_work, revoke_check_after) != 0) {
		st->have_gen = 0;
		revoke_job_done(gw, j);
	}
}

/* In the thread pool: which of these sessions lost their credential? */
static void
revoke_check_work(uv_work_t *w)
{
	struct revoke_job	*j = w->data;
	struct mg_store		*store = j->gw->store;
	struct mg_user		 u;
	struct mg_device	 d;
	char			 err[MG_ERRLEN], last[MG_NAME_MAX] = "";
	int			 have = -1;
	size_t			 i;

	for (i = 0; i < j->nitems; i++) {
		struct revoke_item *it = &j->items[i];

		if (strcmp(last, it->user) != 0) {
			snprintf(last, sizeof(last), "%s", it->user);
			have = mg_store_user_get(store, it->user, &u, err, sizeof(err));
		}
		if (have == -1) {
			j->failed = 1;	/* unknown: keep the session, check again later */
			continue;
		}
		if (have == 0 || u.disabled || u.auth_gen != it->auth_gen) {
			it->revoked = 1;
			continue;
		}
		if (it->device[0] == '\0') {
			it->revoked = !u.password_login;
			continue;
		}
		switch (mg_store_device_get(store, it->user, it->device, &d, err, sizeof(err))) {
		case 0:
			it->revoked = 1;
			break;
		case -1:
			j->failed = 1;
			break;
		}
	}
}

static void
revoke_check_after(uv_work_t *w, int status)
{
	struct revoke_job	*j = w->data;
	struct mg_gateway	*gw = j->gw;
	struct mg_session	*s, *next;
	size_t			 i, closed = 0;

	if (gw->revoke.stopped || status != 0) {
		revoke_job_done(gw, j);
		return;
	}
	if (j->failed)
		gw->revoke.have_gen = 0;	/* check everything again next time */
	/* Matched by id: a session that ended meanwhile is simply not found. */
	for (i = 0; i < j->nitems; i++) {
		if (!j->items[i].revoked)
			continue;
		for (s = gw->sessions; s != NULL; s = next) {
			next = s->next;
			if (s->id == j->items[i].id && !s->closing) {
				mg_log_info(s->id, "%s revoked user=%s device=%s", s->ops->name, s->auth_user,
				    s->device[0] ? s->device : "-");
				mg_session_close(s, "credential revoked");
				closed++;
				break;
			}
		}
	}
	if (closed > 0)
		mg_log_info(0, "revoke generation=%lld closed=%zu", (long long)gw->revoke.gen, closed);
	revoke_job_done(gw, j);
}
