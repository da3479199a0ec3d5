/*
 * loadgen.c - mailgate's benchmark client: IMAP and SMTP over TLS, libuv.
 *
 * One process, one event loop, loopback only. Every run is bounded by a
 * count and by time, and ends with one line of key=value pairs on standard
 * output that bench/run.sh reads. Modes:
 *
 *   logins  N concurrent clients, each looping connect -> TLS (fresh, or
 *           resumed with the last session ticket the server gave that
 *           client) -> greeting -> LOGIN -> tagged OK -> LOGOUT -> close.
 *           Reports logins/s and p50/p99 of connect-to-tagged-OK.
 *   fetch   one client: LOGIN, SELECT INBOX, R times UID FETCH uid BODY[];
 *           MB/s of the literal, read 16 KiB at a time.
 *   smtp    one client: EHLO, AUTH PLAIN, then R times MAIL, RCPT, DATA of S
 *           bytes; MB/s from each 354 to its 250.
 *   idle    N sessions: LOGIN, IDLE, "+ idling"; prints a line when all are
 *           established, then holds them until SIGTERM/SIGINT or for --hold
 *           seconds.
 *   noop    one session, K NOOP round trips; p50/p99 in microseconds.
 *
 * MB here is 10^6 bytes. The client verifies the server's certificate
 * against --ca and the name (or IP address) given by --verify-name, unless
 * --insecure; --plain speaks without TLS (for checking the tools only).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "bconn.h"

extern int bconn_nodelay;

enum lg_mode { M_LOGINS, M_FETCH, M_SMTP, M_IDLE, M_NOOP };

/* Command-line options. */
static struct {
	enum lg_mode	 mode;
	const char	*label;		/* echoed in the result line */
	struct sockaddr_in to;		/* --connect */
	struct sockaddr_in from;	/* --bind */
	int		 bind;		/* --bind given */
	const char	*ca;		/* --ca */
	const char	*vname;		/* --verify-name: host name or IP address */
	int		 insecure;	/* --insecure: no certificate check */
	int		 plain;		/* --plain: no TLS at all */
	const char	*user, *pass;	/* --user, --pass */
	int		 user_random;	/* --user-random: "USER-xxxxxxxx", a new name at every login */
	long		 users;		/* --users N: logins mode, client i logs in as "USER-(i mod N)" */
	int		 conc;		/* --concurrency */
	double		 duration;	/* --duration seconds (logins) */
	uint64_t	 count;		/* --count: logins, fetches, NOOPs or sessions */
	int		 resume;	/* --resume: reuse session tickets */
	const char	*uid;		/* --uid */
	uint64_t	 size;		/* --size of the SMTP body */
	double		 hold;		/* --hold seconds (idle) */
	int		 ramp;		/* --ramp: sessions being set up at once (idle) */
	double		 timeout;	/* --timeout: hard limit for the whole run */
	const char	*mail_from, *rcpt_to;
} opt;

static uv_loop_t	*loop;
static SSL_CTX		*ctx;
static uv_timer_t	 deadline_timer;	/* --timeout */
static uv_timer_t	 stop_timer;		/* --duration, --hold */
static uv_signal_t	 sig_term, sig_int;
static uint64_t		 t_start;
static int		 finishing;
static int		 exit_code;

/* Results. */
static uint64_t	 n_started, n_done, n_errors, n_resumed;
static char	 first_error[160];
static char	 tls_info[96];
static uint32_t	*lat;		/* microseconds, one per completed operation */
static size_t	 lat_n, lat_cap;
static uint64_t	 bytes_moved;	/* fetch literal or SMTP DATA bytes */
static uint64_t	 move_ns;	/* time spent moving them */
static double	 best_mbps;

/* A client slot of the logins mode: keeps its last session ticket. */
struct slot {
	SSL_SESSION	*sess;
	int		 busy;
};

enum {
	S_GREETING, S_LOGIN, S_LOGOUT, S_SELECT, S_FETCH, S_IDLE_WAIT, S_IDLING, S_NOOP,
	/* SMTP */
	S_SMTP_GREETING, S_EHLO, S_AUTH, S_MAIL, S_RCPT, S_DATA, S_BODY, S_DOT, S_QUIT
};

/* One client connection. */
struct lg {
	struct bconn	 c;		/* first: the bconn's owner is this struct */
	struct slot	*slot;		/* logins mode: the slot it runs for */
	size_t		 idx;		/* idle mode: index in the sessions array */
	int		 state;		/* S_* */
	int		 ok;		/* reached its goal (login done, fetch done...) */
	int		 failed;	/* an error was counted for it already */
	char		 line[16384];	/* a response line being assembled */
	size_t		 linelen;	/* bytes in line */
	uint64_t	 t0;		/* connect started */
	uint64_t	 t_cmd;		/* current command sent */
	uint64_t	 lit_left;	/* literal bytes still to come */
	uint64_t	 iter;		/* fetch or NOOP number */
	uint64_t	 body_sent;	/* SMTP: body bytes queued */
	uint64_t	 body_total;	/* SMTP: body bytes to send */
};

static struct slot	*slots;
static struct lg	**sessions;	/* idle mode */
static size_t		 n_sessions_open, n_established, n_dropped;
static int		 idle_announced;
static char		 pattern[65520];	/* 819 lines of 80 bytes */

static void	lg_ready(struct bconn *);
static void	lg_data(struct bconn *, const char *, size_t);
static void	lg_drain(struct bconn *);
static void	lg_closed(struct bconn *);
static void	finish(void);
static void	start_one(struct slot *, size_t);
static void	stop_cb(uv_timer_t *);

static const struct bconn_ops lg_ops = { lg_ready, lg_data, lg_drain, lg_closed };

static void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen MODE --connect IP:PORT [options]\n"
	    "  MODE: logins | fetch | smtp | idle | noop\n"
	    "  --ca FILE --verify-name NAME|IP | --insecure | --plain\n"
	    "  --bind IP --user U [--user-random | --users N] --pass P --label TEXT --timeout S --nagle\n"
	    "  logins: --concurrency N --duration S --count C --resume\n"
	    "  fetch: --uid UID --count R      smtp: --size BYTES --count R --from A --to A\n"
	    "  idle: --count N --ramp R --hold S     noop: --count K\n");
	exit(2);
}

static void
note_error(const char *what, const char *text, size_t len)
{
	size_t i, o = 0;

	n_errors++;
	if (getenv("LOADGEN_VERBOSE") != NULL)
		fprintf(stderr, "loadgen: %s: %.*s\n", what, (int)len, text ? text : "");
	if (first_error[0] != '\0')
		return;
	o = (size_t)snprintf(first_error, sizeof(first_error), "%s", what);
	if (text != NULL && o < sizeof(first_error) - 3) {
		first_error[o++] = ':';
		first_error[o++] = ' ';
		for (i = 0; i < len && o < sizeof(first_error) - 1; i++)
			first_error[o++] = (text[i] >= 32 && text[i] < 127 && text[i] != '"') ?
			    text[i] : '?';
		first_error[o] = '\0';
	}
}

/* Counts one failure for the connection (once) with the server's words. */
static void
lg_fail(struct lg *s, const char *what, const char *text, size_t len)
{
	if (s->failed)
		return;
	s->failed = 1;
	note_error(what, text, len);
}

static void
add_latency(uint64_t ns)
{
	uint32_t *n;

	if (lat_n == lat_cap) {
		lat_cap = lat_cap ? lat_cap * 2 : 4096;
		if ((n = realloc(lat, lat_cap * sizeof(*lat))) == NULL) {
			fprintf(stderr, "loadgen: out of memory\n");
			exit(1);
		}
		lat = n;
	}
	lat[lat_n++] = ns / 1000 > UINT32_MAX ? UINT32_MAX : (uint32_t)(ns / 1000);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile (nearest rank) of the latencies, in microseconds. */
static double
percentile(double p)
{
	size_t k;

	if (lat_n == 0)
		return 0;
	k = (size_t)(p / 100.0 * (double)lat_n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > lat_n)
		k = lat_n;
	return lat[k - 1];
}

static double
elapsed(void)
{
	return (double)(bconn_now_ns() - t_start) / 1e9;
}

static void
send_str(struct lg *s, const char *text)
{
	(void)bconn_send(&s->c, text, strlen(text));
}

/* Appends an IMAP quoted string. */
static size_t
quote(char *out, size_t cap, const char *in)
{
	size_t o = 0;

	if (cap < 3)
		return 0;
	out[o++] = '"';
	for (; *in != '\0' && o + 3 < cap; in++) {
		if (*in == '"' || *in == '\\')
			out[o++] = '\\';
		out[o++] = *in;
	}
	out[o++] = '"';
	out[o] = '\0';
	return o;
}

static struct lg *
new_lg(void)
{
	struct lg *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		fprintf(stderr, "loadgen: out of memory\n");
		exit(1);
	}
	if (bconn_init(&s->c, loop, opt.plain ? NULL : ctx, &lg_ops, s) == -1) {
		fprintf(stderr, "loadgen: connection setup failed\n");
		exit(1);
	}
	if (s->c.ssl != NULL)
		SSL_set_app_data(s->c.ssl, s);
	return s;
}

static int
connect_lg(struct lg *s, SSL_SESSION *sess)
{
	struct in_addr a;
	const char *sni = NULL;

	/* SNI carries host names only (RFC 6066 section 3). */
	if (opt.vname != NULL && inet_pton(AF_INET, opt.vname, &a) != 1)
		sni = opt.vname;
	s->t0 = bconn_now_ns();
	return bconn_connect(&s->c, (const struct sockaddr *)&opt.to,
	    opt.bind ? (const struct sockaddr *)&opt.from : NULL, sni, sess);
}

/* TLS 1.3 tickets arrive after the handshake; keep the latest per slot. */
static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct lg *s = SSL_get_app_data(ssl);

	if (s == NULL || s->slot == NULL || !opt.resume)
		return 0;
	SSL_SESSION_free(s->slot->sess);
	s->slot->sess = sess;
	return 1;	/* we keep the reference */
}

static void
lg_ready(struct bconn *c)
{
	struct lg *s = c->owner;

	if (c->ssl != NULL) {
		if (SSL_session_reused(c->ssl))
			n_resumed++;
		if (tls_info[0] == '\0')
			snprintf(tls_info, sizeof(tls_info), "tls=%s cipher=%s",
			    SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
	}
	s->state = opt.mode == M_SMTP ? S_SMTP_GREETING : S_GREETING;
}

static void
send_login(struct lg *s)
{
	char buf[1200], *p = buf;

	p += snprintf(p, 16, "a LOGIN ");
	if (opt.user_random) {
		char name[520];

		snprintf(name, sizeof(name), "%s-%08lx", opt.user, (unsigned long)random() & 0xffffffffUL);
		p += quote(p, 512, name);
	} else if (opt.users > 0 && s->slot != NULL) {
		char name[520];

		snprintf(name, sizeof(name), "%s-%ld", opt.user, (long)(s->slot - slots) % opt.users);
		p += quote(p, 512, name);
	} else
		p += quote(p, 512, opt.user);
	*p++ = ' ';
	p += quote(p, 512, opt.pass);
	memcpy(p, "\r\n", 3);
	send_str(s, buf);
	s->state = S_LOGIN;
}

static void
send_fetch(struct lg *s)
{
	char buf[128];

	snprintf(buf, sizeof(buf), "f%llu UID FETCH %s BODY[]\r\n",
	    (unsigned long long)s->iter, opt.uid);
	s->t_cmd = bconn_now_ns();
	send_str(s, buf);
	s->state = S_FETCH;
}

static void
send_noop(struct lg *s)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "n%llu NOOP\r\n", (unsigned long long)s->iter);
	s->t_cmd = bconn_now_ns();
	send_str(s, buf);
	s->state = S_NOOP;
}

/* Does the line carry the tag's completion?  Sets *ok for "OK". */
static int
tagged(const char *line, size_t len, const char *tag, int *ok)
{
	size_t t = strlen(tag);

	if (len <= t || memcmp(line, tag, t) != 0 || line[t] != ' ')
		return 0;
	*ok = len >= t + 3 && strncasecmp(line + t + 1, "OK", 2) == 0;
	return 1;
}

/* The literal size when the line ends with {N} (RFC 9051 section 4.3). */
static int
literal_size(const char *line, size_t len, uint64_t *n)
{
	size_t i;
	uint64_t v = 0;

	if (len < 3 || line[len - 1] != '}')
		return 0;
	i = len - 2;
	while (i > 0 && line[i] >= '0' && line[i] <= '9')
		i--;
	if (line[i] != '{' || i == len - 2)
		return 0;
	for (i++; i < len - 1; i++) {
		if (v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(line[i] - '0');
	}
	*n = v;
	return 1;
}

static void
idle_check_all(void)
{
	if (idle_announced || n_established + n_errors < opt.count)
		return;
	idle_announced = 1;
	printf("mode=idle label=%s event=established established=%zu failed=%llu seconds=%.3f%s%s "
	    "first_error=\"%s\"\n", opt.label, n_established, (unsigned long long)n_errors,
	    elapsed(), tls_info[0] ? " " : "", tls_info, first_error);
	fflush(stdout);
	if (n_established == 0)
		finish();
	else	/* --hold counts from here */
		uv_timer_start(&stop_timer, stop_cb, (uint64_t)(opt.hold * 1000), 0);
}

static void
imap_line(struct lg *s, const char *line, size_t len)
{
	int ok;
	uint64_t now;

	switch (s->state) {
	case S_GREETING:
		if (len >= 4 && strncasecmp(line, "* OK", 4) == 0) {
			send_login(s);
			return;
		}
		lg_fail(s, "greeting", line, len);
		bconn_close(&s->c, "greeting");
		return;
	case S_LOGIN:
		if (!tagged(line, len, "a", &ok))
			return;
		if (!ok) {
			lg_fail(s, "login", line, len);
			bconn_close(&s->c, "login");
			return;
		}
		switch (opt.mode) {
		case M_LOGINS:
			add_latency(bconn_now_ns() - s->t0);
			s->ok = 1;
			send_str(s, "b LOGOUT\r\n");
			s->state = S_LOGOUT;
			return;
		case M_FETCH:
			send_str(s, "s SELECT INBOX\r\n");
			s->state = S_SELECT;
			return;
		case M_IDLE:
			send_str(s, "i IDLE\r\n");
			s->state = S_IDLE_WAIT;
			return;
		case M_NOOP:
			send_noop(s);
			return;
		default:
			return;
		}
	case S_LOGOUT:
		/* A clean end: close_notify, then close (RFC 8446 section 6.1). */
		if (tagged(line, len, "b", &ok))
			bconn_close_flush(&s->c);
		return;
	case S_SELECT:
		if (!tagged(line, len, "s", &ok))
			return;
		if (!ok) {
			lg_fail(s, "select", line, len);
			bconn_close(&s->c, "select");
			return;
		}
		send_fetch(s);
		return;
	case S_FETCH: {
		char tag[32];
		uint64_t n;

		if (line[0] == '*' && literal_size(line, len, &n)) {
			s->lit_left = n;
			bytes_moved += n;
			return;
		}
		snprintf(tag, sizeof(tag), "f%llu", (unsigned long long)s->iter);
		if (!tagged(line, len, tag, &ok))
			return;
		if (!ok) {
			lg_fail(s, "fetch", line, len);
			bconn_close(&s->c, "fetch");
			return;
		}
		now = bconn_now_ns();
		move_ns += now - s->t_cmd;
		add_latency(now - s->t_cmd);
		n_done++;
		if (++s->iter < opt.count) {
			send_fetch(s);
			return;
		}
		s->ok = 1;
		send_str(s, "b LOGOUT\r\n");
		s->state = S_LOGOUT;
		return;
	}
	case S_IDLE_WAIT:
		if (line[0] == '+') {
			s->state = S_IDLING;
			s->ok = 1;
			n_established++;
			/* The ramp bounds sessions being set up, not sessions held. */
			if (n_started < opt.count)
				start_one(NULL, (size_t)n_started);
			idle_check_all();
			return;
		}
		if (tagged(line, len, "i", &ok)) {
			lg_fail(s, "idle", line, len);
			bconn_close(&s->c, "idle");
		}
		return;
	case S_IDLING:
		return;	/* untagged updates */
	case S_NOOP: {
		char tag[32];

		snprintf(tag, sizeof(tag), "n%llu", (unsigned long long)s->iter);
		if (!tagged(line, len, tag, &ok))
			return;
		if (!ok) {
			lg_fail(s, "noop", line, len);
			bconn_close(&s->c, "noop");
			return;
		}
		add_latency(bconn_now_ns() - s->t_cmd);
		n_done++;
		if (++s->iter < opt.count) {
			send_noop(s);
			return;
		}
		s->ok = 1;
		send_str(s, "b LOGOUT\r\n");
		s->state = S_LOGOUT;
		return;
	}
	default:
		return;
	}
}

/* Queues body lines while the write queue is short; then the final dot. */
static void
smtp_pump(struct lg *s)
{
	uint64_t left;
	size_t n;

	while (s->body_sent < s->body_total) {
		if (bconn_queued(&s->c) >= 4 * BCONN_LOW_WATER) {
			s->c.want_drain = 1;
			return;
		}
		left = s->body_total - s->body_sent;
		n = left > sizeof(pattern) ? sizeof(pattern) : (size_t)left;
		if (bconn_send(&s->c, pattern, n) == -1)
			return;
		s->body_sent += n;
	}
	send_str(s, ".\r\n");
	s->state = S_DOT;
}

static void
lg_drain(struct bconn *c)
{
	struct lg *s = c->owner;

	if (s->state == S_BODY)
		smtp_pump(s);
}

static void
smtp_line(struct lg *s, const char *line, size_t len)
{
	char buf[1200];
	int code;
	uint64_t now;

	/* Continuation lines ("250-...") are read and skipped (RFC 5321 4.2.1). */
	if (len < 3 || line[0] < '0' || line[0] > '9') {
		lg_fail(s, "smtp reply", line, len);
		bconn_close(&s->c, "smtp");
		return;
	}
	if (len > 3 && line[3] == '-')
		return;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	switch (s->state) {
	case S_SMTP_GREETING:
		if (code != 220)
			break;
		send_str(s, "EHLO loadgen.bench\r\n");
		s->state = S_EHLO;
		return;
	case S_EHLO: {
		unsigned char raw[1100];
		size_t ul = strlen(opt.user), pl = strlen(opt.pass);

		if (code != 250 || ul + pl + 2 > 512)
			break;
		raw[0] = '\0';
		memcpy(raw + 1, opt.user, ul);
		raw[1 + ul] = '\0';
		memcpy(raw + 2 + ul, opt.pass, pl);
		memcpy(buf, "AUTH PLAIN ", 11);
		EVP_EncodeBlock((unsigned char *)buf + 11, raw, (int)(ul + pl + 2));
		strcat(buf, "\r\n");
		send_str(s, buf);
		s->state = S_AUTH;
		return;
	}
	case S_AUTH:
		if (code != 235)
			break;
		snprintf(buf, sizeof(buf), "MAIL FROM:<%s>\r\n", opt.mail_from);
		send_str(s, buf);
		s->state = S_MAIL;
		return;
	case S_MAIL:
		if (code != 250)
			break;
		snprintf(buf, sizeof(buf), "RCPT TO:<%s>\r\n", opt.rcpt_to);
		send_str(s, buf);
		s->state = S_RCPT;
		return;
	case S_RCPT:
		if (code != 250 && code != 251)
			break;
		send_str(s, "DATA\r\n");
		s->state = S_DATA;
		return;
	case S_DATA:
		if (code != 354)
			break;
		s->state = S_BODY;
		s->t_cmd = bconn_now_ns();
		smtp_pump(s);
		return;
	case S_DOT:
		if (code != 250)
			break;
		now = bconn_now_ns();
		move_ns += now - s->t_cmd;
		add_latency(now - s->t_cmd);
		bytes_moved += s->body_total + 3;
		if (++n_done < opt.count) {
			/* The next message in the same session (RFC 5321 3.3). */
			s->body_sent = 0;
			snprintf(buf, sizeof(buf), "MAIL FROM:<%s>\r\n", opt.mail_from);
			send_str(s, buf);
			s->state = S_MAIL;
			return;
		}
		send_str(s, "QUIT\r\n");
		s->state = S_QUIT;
		s->ok = 1;
		return;
	case S_QUIT:
		bconn_close(&s->c, NULL);
		return;
	default:
		break;
	}
	lg_fail(s, "smtp", line, len);
	bconn_close(&s->c, "smtp");
}

static void
lg_data(struct bconn *c, const char *p, size_t n)
{
	struct lg *s = c->owner;
	const char *nl;
	size_t k;

	while (n > 0 && !c->closing) {
		if (s->lit_left > 0) {
			k = n < s->lit_left ? n : (size_t)s->lit_left;
			s->lit_left -= k;
			p += k;
			n -= k;
			continue;
		}
		nl = memchr(p, '\n', n);
		k = nl != NULL ? (size_t)(nl - p) + 1 : n;
		if (s->linelen + k > sizeof(s->line)) {
			lg_fail(s, "line too long", NULL, 0);
			bconn_close(c, "line");
			return;
		}
		memcpy(s->line + s->linelen, p, k);
		s->linelen += k;
		p += k;
		n -= k;
		if (nl == NULL)
			break;
		k = s->linelen;
		s->linelen = 0;
		while (k > 0 && (s->line[k - 1] == '\n' || s->line[k - 1] == '\r'))
			k--;
		s->line[k] = '\0';
		if (opt.mode == M_SMTP)
			smtp_line(s, s->line, k);
		else
			imap_line(s, s->line, k);
	}
}

static void
lg_closed(struct bconn *c)
{
	struct lg *s = c->owner;
	struct slot *slot = s->slot;

	switch (opt.mode) {
	case M_LOGINS:
		if (s->ok && (c->error == NULL || strcmp(c->error, "eof") == 0))
			n_done++;
		else if (!s->ok && !s->failed)
			note_error(c->error ? c->error : "closed before login", NULL, 0);
		break;
	case M_IDLE:
		sessions[s->idx] = NULL;
		n_sessions_open--;
		if (!s->ok && !s->failed)
			note_error(c->error ? c->error : "closed", NULL, 0);
		else if (s->ok && !finishing)
			n_dropped++;
		break;
	default:
		if (!s->ok && !s->failed)
			note_error(c->error ? c->error : "closed", NULL, 0);
		break;
	}
	free(s);
	if (finishing)
		return;
	switch (opt.mode) {
	case M_LOGINS:
		slot->busy = 0;
		start_one(slot, 0);
		break;
	case M_IDLE:
		if (n_started < opt.count)
			start_one(NULL, (size_t)n_started);
		else
			idle_check_all();
		break;
	default:
		finish();
	}
}

/* Starts the next connection for a slot (logins) or session index (idle). */
static void
start_one(struct slot *slot, size_t idx)
{
	struct lg *s;
	size_t i;

	if (finishing)
		return;
	if (opt.mode == M_LOGINS) {
		if ((opt.count > 0 && n_started >= opt.count) ||
		    elapsed() >= opt.duration) {
			for (i = 0; i < (size_t)opt.conc; i++)
				if (slots[i].busy)
					return;
			finish();
			return;
		}
		slot->busy = 1;
	}
	n_started++;
	s = new_lg();
	s->slot = slot;
	s->idx = idx;
	if (opt.mode == M_IDLE) {
		sessions[idx] = s;
		n_sessions_open++;
	}
	if (connect_lg(s, slot != NULL && opt.resume ? slot->sess : NULL) == -1) {
		note_error("connect setup", NULL, 0);
		bconn_close(&s->c, "connect");
	}
}

static void
print_result(void)
{
	double secs = elapsed();
	double rate;

	qsort(lat, lat_n, sizeof(*lat), cmp_u32);
	switch (opt.mode) {
	case M_LOGINS:
		rate = secs > 0 ? (double)n_done / secs : 0;
		printf("mode=logins label=%s conc=%d resume=%d logins=%llu errors=%llu seconds=%.3f "
		    "rate=%.1f p50_ms=%.3f p99_ms=%.3f resumed=%llu %s first_error=\"%s\"\n",
		    opt.label, opt.conc, opt.resume, (unsigned long long)n_done,
		    (unsigned long long)n_errors, secs, rate, percentile(50) / 1000,
		    percentile(99) / 1000, (unsigned long long)n_resumed, tls_info, first_error);
		break;
	case M_FETCH:
	case M_SMTP:
		/* The fastest single transfer: the least disturbed by other work. */
		if (lat_n > 0 && n_done > 0 && lat[0] > 0)
			best_mbps = (double)bytes_moved / (double)n_done / ((double)lat[0] / 1e6) / 1e6;
		printf("mode=%s label=%s ops=%llu errors=%llu bytes=%llu seconds=%.3f mbps=%.1f "
		    "best_mbps=%.1f %s first_error=\"%s\"\n",
		    opt.mode == M_FETCH ? "fetch" : "smtp", opt.label, (unsigned long long)n_done,
		    (unsigned long long)n_errors, (unsigned long long)bytes_moved,
		    (double)move_ns / 1e9,
		    move_ns ? (double)bytes_moved / ((double)move_ns / 1e9) / 1e6 : 0,
		    best_mbps, tls_info, first_error);
		break;
	case M_IDLE:
		printf("mode=idle label=%s event=end established=%zu failed=%llu dropped=%zu "
		    "seconds=%.3f first_error=\"%s\"\n", opt.label, n_established,
		    (unsigned long long)n_errors, n_dropped, secs, first_error);
		break;
	case M_NOOP:
		printf("mode=noop label=%s noops=%llu errors=%llu p50_us=%.1f p99_us=%.1f "
		    "min_us=%.1f %s first_error=\"%s\"\n", opt.label, (unsigned long long)n_done,
		    (unsigned long long)n_errors, percentile(50), percentile(99),
		    lat_n ? (double)lat[0] : 0.0, tls_info, first_error);
		break;
	}
	fflush(stdout);
}

static void
close_walk_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (uv_is_closing(h))
		return;
	if (h->type == UV_TCP)
		bconn_close(h->data, "stopped");
	else
		uv_close(h, NULL);
}

/* Prints the result once and closes everything; the loop then ends. */
static void
finish(void)
{
	if (finishing)
		return;
	finishing = 1;
	if (opt.mode == M_LOGINS && n_done == 0)
		exit_code = 1;
	if ((opt.mode == M_FETCH || opt.mode == M_SMTP || opt.mode == M_NOOP) &&
	    n_done < opt.count)
		exit_code = 1;
	if (opt.mode == M_IDLE && (n_established < opt.count || n_dropped > 0))
		exit_code = 1;
	print_result();
	uv_walk(loop, close_walk_cb, NULL);
}

static void
deadline_cb(uv_timer_t *t)
{
	(void)t;
	note_error("timeout", NULL, 0);
	printf("timeout=1 label=%s\n", opt.label);
	exit_code = 1;
	finish();
	exit_code = 1;
}

static void
stop_cb(uv_timer_t *t)
{
	(void)t;
	/* Logins: no new connections; the last ones finish. Idle: the hold is over. */
	if (opt.mode == M_IDLE)
		finish();
}

static void
signal_cb(uv_signal_t *h, int sig)
{
	(void)h;
	(void)sig;
	finish();
}

static int
parse_addr(const char *s, struct sockaddr_in *out, int need_port)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	size_t hl = colon ? (size_t)(colon - s) : strlen(s);
	int port = 0;

	if (hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (colon != NULL)
		port = atoi(colon + 1);
	if (need_port && (port <= 0 || port > 65535))
		return -1;
	return uv_ip4_addr(host, port, out) == 0 ? 0 : -1;
}

static SSL_CTX *
make_ctx(void)
{
	SSL_CTX *c;
	X509_VERIFY_PARAM *vp;
	struct in_addr a;

	if ((c = SSL_CTX_new(TLS_client_method())) == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
	/*
	 * The TLS 1.3 order devices offer on CPUs with AES instructions
	 * (Apple's and Android's stacks: AES-128-GCM first), rather than
	 * OpenSSL's (AES-256-GCM first): every proxy, and the direct path,
	 * then negotiates the same suite with the client.
	 */
	if (SSL_CTX_set_ciphersuites(c,
	    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") != 1)
		return NULL;
	if (!opt.insecure) {
		if (opt.ca == NULL || SSL_CTX_load_verify_locations(c, opt.ca, NULL) != 1) {
			fprintf(stderr, "loadgen: cannot load CA file %s\n", opt.ca ? opt.ca : "(none)");
			return NULL;
		}
		SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
		vp = SSL_CTX_get0_param(c);
		if (opt.vname != NULL) {
			if (inet_pton(AF_INET, opt.vname, &a) == 1) {
				if (X509_VERIFY_PARAM_set1_ip_asc(vp, opt.vname) != 1)
					return NULL;
			} else if (X509_VERIFY_PARAM_set1_host(vp, opt.vname, 0) != 1)
				return NULL;
		}
	} else
		SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
	if (opt.resume) {
		SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT |
		    SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(c, new_session_cb);
	} else
		SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	return c;
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "bind", required_argument, NULL, 'b' },
		{ "ca", required_argument, NULL, 'a' },
		{ "verify-name", required_argument, NULL, 'v' },
		{ "insecure", no_argument, NULL, 'k' },
		{ "plain", no_argument, NULL, 'P' },
		{ "user", required_argument, NULL, 'u' },
		{ "user-random", no_argument, NULL, 'X' },
		{ "users", required_argument, NULL, 'Y' },
		{ "pass", required_argument, NULL, 'p' },
		{ "concurrency", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "count", required_argument, NULL, 'C' },
		{ "resume", no_argument, NULL, 'r' },
		{ "uid", required_argument, NULL, 'U' },
		{ "size", required_argument, NULL, 's' },
		{ "hold", required_argument, NULL, 'h' },
		{ "ramp", required_argument, NULL, 'R' },
		{ "timeout", required_argument, NULL, 't' },
		{ "label", required_argument, NULL, 'l' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 'T' },
		{ "nagle", no_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 }
	};
	const char *connect = NULL, *bind = NULL;
	int ch, i, j;

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "logins") == 0)
		opt.mode = M_LOGINS;
	else if (strcmp(argv[1], "fetch") == 0)
		opt.mode = M_FETCH;
	else if (strcmp(argv[1], "smtp") == 0)
		opt.mode = M_SMTP;
	else if (strcmp(argv[1], "idle") == 0)
		opt.mode = M_IDLE;
	else if (strcmp(argv[1], "noop") == 0)
		opt.mode = M_NOOP;
	else
		usage();
	opt.label = "-";
	opt.conc = 1;
	opt.duration = 5;
	opt.uid = "1";
	opt.size = 100000000;
	opt.hold = 60;
	opt.ramp = 64;
	opt.timeout = 120;
	opt.user = "bench";
	opt.pass = "bench";
	opt.mail_from = "bench@example.test";
	opt.rcpt_to = "sink@example.test";
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'c': connect = optarg; break;
		case 'b': bind = optarg; break;
		case 'a': opt.ca = optarg; break;
		case 'v': opt.vname = optarg; break;
		case 'k': opt.insecure = 1; break;
		case 'P': opt.plain = 1; break;
		case 'u': opt.user = optarg; break;
		case 'X': opt.user_random = 1; break;
		case 'Y': opt.users = strtol(optarg, NULL, 10); break;
		case 'p': opt.pass = optarg; break;
		case 'n': opt.conc = atoi(optarg); break;
		case 'd': opt.duration = atof(optarg); break;
		case 'C': opt.count = strtoull(optarg, NULL, 10); break;
		case 'r': opt.resume = 1; break;
		case 'U': opt.uid = optarg; break;
		case 's': opt.size = strtoull(optarg, NULL, 10); break;
		case 'h': opt.hold = atof(optarg); break;
		case 'R': opt.ramp = atoi(optarg); break;
		case 't': opt.timeout = atof(optarg); break;
		case 'l': opt.label = optarg; break;
		case 'f': opt.mail_from = optarg; break;
		case 'T': opt.rcpt_to = optarg; break;
		case 'N': bconn_nodelay = 0; break;
		default: usage();
		}
	}
	if (connect == NULL || parse_addr(connect, &opt.to, 1) == -1)
		usage();
	if (bind != NULL) {
		if (parse_addr(bind, &opt.from, 0) == -1)
			usage();
		opt.bind = 1;
	}
	if (opt.conc < 1 || opt.ramp < 1 || opt.timeout <= 0)
		usage();
	if (opt.count == 0 && opt.mode != M_LOGINS)
		opt.count = opt.mode == M_NOOP ? 1000 : 1;
	if (strlen(opt.user) > 500 || strlen(opt.pass) > 500)
		usage();
	/* Without --verify-name, check the connect address itself. */
	if (opt.vname == NULL) {
		static char host[64];
		size_t hl = (size_t)(strrchr(connect, ':') - connect);

		memcpy(host, connect, hl);
		host[hl] = '\0';
		opt.vname = host;
	}

	signal(SIGPIPE, SIG_IGN);
	if (!opt.plain && (ctx = make_ctx()) == NULL) {
		ERR_print_errors_fp(stderr);
		return 2;
	}
	/* 80-byte lines of letters: no line starts with a dot (RFC 5321 4.5.2). */
	for (i = 0; i < (int)(sizeof(pattern) / 80); i++) {
		for (j = 0; j < 78; j++)
			pattern[i * 80 + j] = (char)('A' + (i + j) % 26);
		pattern[i * 80 + 78] = '\r';
		pattern[i * 80 + 79] = '\n';
	}

	loop = uv_default_loop();
	uv_timer_init(loop, &deadline_timer);
	uv_timer_start(&deadline_timer, deadline_cb, (uint64_t)(opt.timeout * 1000), 0);
	uv_timer_init(loop, &stop_timer);
	uv_signal_init(loop, &sig_term);
	uv_signal_start(&sig_term, signal_cb, SIGTERM);
	uv_signal_init(loop, &sig_int);
	uv_signal_start(&sig_int, signal_cb, SIGINT);
	t_start = bconn_now_ns();

	switch (opt.mode) {
	case M_LOGINS:
		if ((slots = calloc((size_t)opt.conc, sizeof(*slots))) == NULL)
			return 1;
		for (i = 0; i < opt.conc; i++)
			start_one(&slots[i], 0);
		break;
	case M_IDLE:
		if ((sessions = calloc(opt.count, sizeof(*sessions))) == NULL)
			return 1;
		for (i = 0; i < opt.ramp && (uint64_t)i < opt.count; i++)
			start_one(NULL, (size_t)i);
		break;
	case M_SMTP: {
		struct lg *s;

		/* Whole lines: each body ends with CRLF before the final dot. */
		n_started = 1;
		s = new_lg();
		s->body_total = opt.size / 80 * 80;
		if (connect_lg(s, NULL) == -1)
			bconn_close(&s->c, "connect");
		break;
	}
	default:
		n_started = 1;
		if (connect_lg(new_lg(), NULL) == -1) {
			fprintf(stderr, "loadgen: connect failed\n");
			return 1;
		}
		break;
	}
	uv_run(loop, UV_RUN_DEFAULT);
	if (!finishing)
		finish();
	uv_run(loop, UV_RUN_DEFAULT);
	if (uv_loop_close(loop) != 0)
		fprintf(stderr, "loadgen: handles left open\n");
	for (i = 0; slots != NULL && i < opt.conc; i++)
		SSL_SESSION_free(slots[i].sess);
	free(slots);
	free(sessions);
	free(lat);
	SSL_CTX_free(ctx);
	return exit_code;
}
