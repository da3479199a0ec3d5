/*
 * audit.c - see audit.h.
 */
#include "audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "session.h"
#include "store.h"

struct audit_job {
	uv_work_t		 work;
	struct mg_store		*store;
	uint32_t		 sid;
	struct mg_audit		 rec;
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

static void
audit_work_cb(uv_work_t *w)
{
	struct audit_job	*j = w->data;
	char			 err[MG_ERRLEN];

	if (mg_store_audit_add(j->store, &j->rec, err, sizeof(err)) == -1)
		mg_log_warn(j->sid, "audit store error=\"%s\"", err);
}

static void
audit_after_cb(uv_work_t *w, int status)
{
	(void)status;
	free(w->data);
}

void
mg_audit_login(struct mg_session *s, const char *result, const char *reason)
{
	struct audit_job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return;
	j->work.data = j;
	j->store = s->gw->store;
	j->sid = s->id;
	snprintf(j->rec.kind, sizeof(j->rec.kind), "login");
	audit_copy(j->rec.user, sizeof(j->rec.user), s->auth_user[0] ? s->auth_user : s->user);
	audit_copy(j->rec.device, sizeof(j->rec.device), s->device);
	snprintf(j->rec.proto, sizeof(j->rec.proto), "%s", s->ops->name);
	audit_copy(j->rec.client, sizeof(j->rec.client), s->peer);
	audit_copy(j->rec.result, sizeof(j->rec.result), result);
	audit_copy(j->rec.detail, sizeof(j->rec.detail), reason);
	if (uv_queue_work(s->gw->loop, &j->work, audit_work_cb, audit_after_cb) != 0)
		free(j);
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
