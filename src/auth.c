/*
 * auth.c - see auth.h.
 */
#include "auth.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "log.h"
#include "session.h"

struct auth_req {
	uv_work_t		 work;		/* work.data == this */
	struct mg_session	*s;		/* referenced until the callback ran */
	struct mg_gateway	*gw;
	mg_auth_cb		 cb;
	enum mg_proto		 proto;
	char			 user[MG_NAME_MAX];
	char			 password[MG_NAME_MAX];	/* wiped right after hashing */
	struct mg_auth_result	 res;
};

static void	auth_work_cb(uv_work_t *);
static void	auth_after_cb(uv_work_t *, int);

static void
auth_tempfail(struct auth_req *a, const char *reason)
{
	a->res.status = MG_AUTH_TEMPFAIL;
	snprintf(a->res.reason, sizeof(a->res.reason), "%s", reason);
}

/*
 * Runs in the thread pool. Touches only the request, the store (safe from
 * several threads) and read-only gateway state.
 */
static void
auth_work_cb(uv_work_t *w)
{
	struct auth_req			*a = w->data;
	struct mg_gateway		*gw = a->gw;
	struct mg_user			 u;
	struct mg_account		*acct = NULL;
	const struct mg_provider_cfg	*pcfg;
	char				 err[MG_ERRLEN];
	uint8_t				 aad[2 * MG_NAME_MAX + 16];
	int				 r, aadlen, ok;
	long				 n;

	memset(&u, 0, sizeof(u));
	r = mg_store_user_get(gw->store, a->user, &u, err, sizeof(err));
	if (r == -1) {
		OPENSSL_cleanse(a->password, sizeof(a->password));
		mg_log_warn(a->s->id, "auth store error=\"%s\"", err);
		auth_tempfail(a, "credential store unavailable");
		return;
	}
	/*
	 * An unknown user costs the same slow hash as a known one, so the
	 * reply's timing does not say whether the name exists.
	 */
	ok = mg_password_verify(a->password, r == 1 ? u.hash : gw->dummy_hash);
	OPENSSL_cleanse(a->password, sizeof(a->password));
	if (r == 0 || ok != 1) {
		a->res.status = MG_AUTH_FAIL;
		snprintf(a->res.reason, sizeof(a->res.reason), "%s",
		    r == 0 ? "unknown user" : ok == -1 ? "unusable password hash" : "wrong password");
		return;
	}
	snprintf(a->res.user, sizeof(a->res.user), "%s", u.name);

	if ((acct = calloc(1, sizeof(*acct))) == NULL) {
		auth_tempfail(a, "out of memory");
		return;
	}
	r = mg_store_account_get(gw->store, u.name, NULL, acct, err, sizeof(err));
	if (r == -1) {
		mg_log_warn(a->s->id, "auth store error=\"%s\"", err);
		auth_tempfail(a, "credential store unavailable");
		goto out;
	}
	if (r == 0) {
		auth_tempfail(a, "no provider account is set up for this user");
		goto out;
	}
	snprintf(a->res.provider, sizeof(a->res.provider), "%s", acct->provider);
	snprintf(a->res.login, sizeof(a->res.login), "%s", acct->login);
	pcfg = mg_config_provider(gw->cfg, acct->provider);
	if (pcfg == NULL) {
		auth_tempfail(a, "the account's provider is not configured on this gateway");
		goto out;
	}
	if (!pcfg->ep[a->proto].present) {
		auth_tempfail(a, "the provider has no endpoint for this protocol");
		goto out;
	}
	if (acct->kind != MG_SECRET_PASSWORD) {
		auth_tempfail(a, "OAuth2 accounts are not supported yet");
		goto out;
	}
	aadlen = mg_account_aad(acct->user, acct->provider, (int)acct->kind, aad, sizeof(aad));
	if (aadlen < 0) {
		auth_tempfail(a, "stored secret cannot be opened");
		goto out;
	}
	n = mg_unseal(&gw->mkey, aad, (size_t)aadlen, acct->sealed, acct->sealed_len,
	    (uint8_t *)a->res.secret, sizeof(a->res.secret), err, sizeof(err));
	if (n < 0) {
		mg_log_warn(a->s->id, "auth unseal user=%s provider=%s error=\"%s\"", u.name,
		    acct->provider, err);
		auth_tempfail(a, "stored secret cannot be opened (master key?)");
		goto out;
	}
	a->res.secret_len = (size_t)n;
	/* A secret goes into protocol lines upstream: it may never end one early. */
	if (memchr(a->res.secret, '\r', (size_t)n) != NULL || memchr(a->res.secret, '\n', (size_t)n) != NULL ||
	    memchr(a->res.secret, '\0', (size_t)n) != NULL) {
		OPENSSL_cleanse(a->res.secret, sizeof(a->res.secret));
		a->res.secret_len = 0;
		auth_tempfail(a, "the stored secret is unusable");
		goto out;
	}
	a->res.kind = acct->kind;
	a->res.status = MG_AUTH_OK;
	snprintf(a->res.reason, sizeof(a->res.reason), "ok");
out:
	OPENSSL_cleanse(acct, sizeof(*acct));
	free(acct);
}

static void
auth_after_cb(uv_work_t *w, int status)
{
	struct auth_req		*a = w->data;
	struct mg_session	*s = a->s;

	if (status != 0)
		auth_tempfail(a, "credential check cancelled");
	if (!s->closing)
		a->cb(s, &a->res);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
	mg_session_unref(s);
}

int
mg_auth_start(struct mg_session *s, enum mg_proto proto, const char *user, size_t ulen,
    const char *password, size_t plen, mg_auth_cb cb)
{
	struct auth_req	*a;

	if (ulen == 0 || ulen >= MG_NAME_MAX || plen >= MG_NAME_MAX ||
	    memchr(user, '\0', ulen) != NULL || memchr(password, '\0', plen) != NULL)
		return -1;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return -1;
	a->work.data = a;
	a->s = s;
	a->gw = s->gw;
	a->cb = cb;
	a->proto = proto;
	memcpy(a->user, user, ulen);
	memcpy(a->password, password, plen);
	if (uv_queue_work(s->gw->loop, &a->work, auth_work_cb, auth_after_cb) != 0) {
		OPENSSL_cleanse(a, sizeof(*a));
		free(a);
		return -1;
	}
	mg_session_ref(s);
	return 0;
}
