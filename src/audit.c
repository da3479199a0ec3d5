/*
 * audit.c - see audit.h.
 */
#include "audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "session.h"
#include "store.h"

/*
 * Login records are written by group commit: while one thread-pool job
 * writes a batch in one transaction, the records of the logins that happen
 * meanwhile wait in the loop's queue, and the next job takes all of them.
 * An idle gateway writes each record at once; a busy one writes one
 * transaction per batch instead of one per login, and uses one thread-pool
 * round trip for it.
 */
#define AUDIT_QUEUE_MAX	100000		/* beyond this, records are dropped (and counted in the log) */

struct mg_audit_queue {
	uv_work_t		 work;		/* work.data == this queue */
	uv_loop_t		*loop;
	struct mg_store		*store;
	struct mg_audit		*wait;		/* records waiting for the next job (loop thread) */
	size_t			 nwait, capwait;
	struct mg_audit		*batch;		/* the records the running job writes (its thread) */
	size_t			 nbatch, capbatch;
	int			 running;	/* a job is queued or running */
	uint64_t		 dropped;	/* records lost to a full queue or no memory */
	char			 err[MG_ERRLEN];	/* the job's store error, or "" */
};

/* Copies s into dst, replacing control bytes, so the store's checks never refuse a record. */
static void
audit_copy(char *dst, size_t len, const char *s)
{
	size_t i;

	for (i = 0; i + 1 < len && s[i] != '\0'; i++)
		dst[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	dst[i] = '\0';
}

static void	audit_start(struct mg_audit_queue *);

static void
audit_work_cb(uv_work_t *w)
{
	struct mg_audit_queue *q = w->data;

	q->err[0] = '\0';
	if (mg_store_audit_add_many(q->store, q->batch, q->nbatch, q->err, sizeof(q->err)) == -1 &&
	    q->err[0] == '\0')
		snprintf(q->err, sizeof(q->err), "unknown error");
}

static void
audit_after_cb(uv_work_t *w, int status)
{
	struct mg_audit_queue *q = w->data;

	(void)status;
	if (q->err[0] != '\0')
		mg_log_warn(0, "audit store error=\"%s\" records=%zu", q->err, q->nbatch);
	q->nbatch = 0;
	q->running = 0;
	audit_start(q);
}

/* Hands all waiting records to a job, unless one is running (its after_cb comes back here). */
static void
audit_start(struct mg_audit_queue *q)
{
	struct mg_audit	*tmp;
	size_t		 cap;

	if (q->running || q->nwait == 0)
		return;
	/* The two arrays change places: the job owns `batch` until after_cb. */
	tmp = q->batch;
	cap = q->capbatch;
	q->batch = q->wait;
	q->capbatch = q->capwait;
	q->nbatch = q->nwait;
	q->wait = tmp;
	q->capwait = cap;
	q->nwait = 0;
	q->work.data = q;
	if (uv_queue_work(q->loop, &q->work, audit_work_cb, audit_after_cb) != 0) {
		q->dropped += q->nbatch;
		mg_log_warn(0, "audit records lost=%zu error=\"cannot queue the store write\"", q->nbatch);
		q->nbatch = 0;
		return;
	}
	q->running = 1;
}

/* Queues one record (loop thread); 0 ok, -1 dropped. */
static int
audit_queue(struct mg_audit_queue *q, const struct mg_audit *rec)
{
	struct mg_audit	*nw;
	size_t		 cap;

	if (q->nwait == q->capwait) {
		cap = q->capwait != 0 ? q->capwait * 2 : 16;
		if (q->nwait >= AUDIT_QUEUE_MAX || (nw = realloc(q->wait, cap * sizeof(*nw))) == NULL) {
			if (q->dropped++ % 1000 == 0)
				mg_log_warn(0, "audit records lost=%llu error=\"the store cannot keep up\"",
				    (unsigned long long)q->dropped);
			return -1;
		}
		q->wait = nw;
		q->capwait = cap;
	}
	q->wait[q->nwait++] = *rec;
	audit_start(q);
	return 0;
}

int
mg_audit_init(struct mg_gateway *gw)
{
	struct mg_audit_queue *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return -1;
	q->loop = gw->loop;
	q->store = gw->store;
	gw->audit = q;
	return 0;
}

void
mg_audit_free(struct mg_gateway *gw)
{
	struct mg_audit_queue *q = gw->audit;

	if (q == NULL)
		return;
	/* The loop has ended, so no job runs; anything still waiting was never written. */
	if (q->nwait > 0)
		mg_log_warn(0, "audit records lost=%zu error=\"the gateway stopped first\"", q->nwait);
	free(q->wait);
	free(q->batch);
	free(q);
	gw->audit = NULL;
}

void
mg_audit_login(struct mg_session *s, const char *result, const char *reason)
{
	struct mg_audit rec;

	if (s->gw->audit == NULL)
		return;
	memset(&rec, 0, sizeof(rec));
	rec.ts = time(NULL);
	snprintf(rec.kind, sizeof(rec.kind), "login");
	audit_copy(rec.user, sizeof(rec.user), s->auth_user != NULL ? s->auth_user : s->user != NULL ? s->user : "");
	audit_copy(rec.device, sizeof(rec.device), s->device);
	snprintf(rec.proto, sizeof(rec.proto), "%s", s->ops->name);
	audit_copy(rec.client, sizeof(rec.client), s->peer);
	audit_copy(rec.result, sizeof(rec.result), result);
	audit_copy(rec.detail, sizeof(rec.detail), reason);
	(void)audit_queue(s->gw->audit, &rec);
}

int
mg_audit_admin(struct mg_store *st, const char *user, const char *detail)
{
	struct mg_audit	rec;
	char		err[MG_ERRLEN];

	memset(&rec, 0, sizeof(rec));
	snprintf(rec.kind, sizeof(rec.kind), "admin");
	audit_copy(rec.user, sizeof(rec.user), user != NULL ? user : "");
	snprintf(rec.client, sizeof(rec.client), "cli");
	snprintf(rec.result, sizeof(rec.result), "ok");
	audit_copy(rec.detail, sizeof(rec.detail), detail);
	if (mg_store_audit_add(st, &rec, err, sizeof(err)) == -1) {
		fprintf(stderr, "mailgate: audit: %s\n", err);
		return -1;
	}
	return 0;
}
