/*
 * config.c - loads the YAML configuration into struct mg_config.
 *
 * A file is read whole with libyaml's document API, which keeps the start
 * position of every node, and the tree is then walked against a fixed
 * schema. The walk never stops at the first problem: each one becomes a
 * "FILE:LINE:COL: where: message" line and the walk goes on with the next
 * key, so that one run of `mailgate check` shows everything there is to
 * fix. The lines reach the caller's struct mg_diag sorted by file and
 * position. Only a YAML syntax error ends the reading of a file, because
 * libyaml has no tree to give after one.
 *
 * Like every library module here, this file never logs and never exits.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <yaml.h>

#include "config.h"

#define MG_CFG_TIMEOUT_LOGIN	60	/* seconds, default for timeouts.login */
#define MG_CFG_TIMEOUT_IDLE	1800	/* RFC 3501 5.4: at least 30 minutes */
#define MG_CFG_TIMEOUT_CONNECT	30
#define MG_CFG_TIMEOUT_SHUTDOWN	30	/* seconds live sessions may finish after SIGTERM */
#define MG_CFG_TIMEOUT_REUSE	60	/* seconds a logged-out IMAP provider connection is kept */
#define MG_CFG_POLL_INTERVAL	2	/* seconds, default for store.poll_interval */
#define MG_CFG_POLL_MAX		60
#define MG_CFG_CACHE_TTL	60	/* seconds, default for auth.cache_ttl */
#define MG_CFG_CACHE_TTL_MAX	3600
#define MG_CFG_DEVICE_KEY	"device.key"	/* default device key, beside the master key */
#define MG_CFG_NAME_MAX		255	/* longest user or group name (LOGIN_NAME_MAX - 1) */

#define MG_CFG_WHERE_MAX	160	/* longest "providers.NAME.imap.port" and more */
#define MG_CFG_QUOTE_MAX	64	/* values are cut to this many bytes in messages */

/* One key a mapping may hold. */
struct config_field {
	const char	*name;
	int		 required;	/* reported when missing (outside included files) */
};

/*
 * A node of the document with the key that led to it and its dotted path,
 * e.g. "listen[0].tls", which starts every message about it.
 */
struct config_item {
	yaml_node_t	*key;		/* the mapping key; NULL for a sequence entry or the root */
	yaml_node_t	*val;		/* NULL only for the root of an empty file */
	char		 where[MG_CFG_WHERE_MAX];
};

/* Where something was first defined, for "first defined at" messages. */
struct config_pos {
	const char	*file;		/* points into mg_config.files */
	int		 line;		/* 1-based */
	int		 col;
	int		 ok;		/* the thing parsed well enough to be compared */
};

/* A problem found, held back so that all of them can be given in file order. */
struct config_msg {
	const char	*file;		/* in mg_config.files, or the main path when it could not be read */
	int		 findex;	/* file's index in mg_config.files, -1 for the latter */
	int		 line;		/* 1-based; 0 for the file as a whole */
	int		 col;
	size_t		 seq;		/* order found, which breaks ties */
	char		*text;		/* malloc'd */
};

/* The state of one mg_config_load() call. */
struct config_load {
	struct mg_config	*cfg;		/* being filled */
	struct mg_diag		*diag;		/* the caller's */
	int			 nerr;		/* problems found so far */
	struct config_msg	*msgs;		/* the nerr problems, in the order found */
	size_t			 nmsgs;
	const char		*file;		/* file being walked (in cfg->files) */
	yaml_document_t		*doc;		/* its document */
	int			 included;	/* 1 while walking an included file */
	struct config_pos	*lpos;		/* each listener's address, parallel to cfg->listen */
	struct config_pos	*ppos;		/* each provider's name, parallel to cfg->providers */
};

enum {
	TOP_LISTEN, TOP_TLS, TOP_STORE, TOP_TIMEOUTS, TOP_INCLUDE, TOP_PROVIDERS, TOP_AUTH,
	TOP_USER, TOP_GROUP, TOP_LIMITS, TOP_BRUTE_FORCE,
	TOP_N
};
static const struct config_field config_top_fields[TOP_N] = {
	{ "listen", 1 }, { "tls", 1 }, { "store", 1 }, { "timeouts", 0 },
	{ "include", 0 }, { "providers", 0 }, { "auth", 0 },
	{ "user", 0 }, { "group", 0 }, { "limits", 0 }, { "brute_force", 0 },
};

enum { LISTEN_PROTOCOL, LISTEN_ADDRESS, LISTEN_TLS, LISTEN_N };
static const struct config_field config_listen_fields[LISTEN_N] = {
	{ "protocol", 1 }, { "address", 1 }, { "tls", 0 },
};

enum { TLS_CERTIFICATE, TLS_KEY, TLS_N };
static const struct config_field config_tls_fields[TLS_N] = {
	{ "certificate", 1 }, { "key", 1 },
};

/* Exactly one of sqlite and postgres is required; config_store() checks that. */
enum { STORE_SQLITE, STORE_POSTGRES, STORE_MASTER_KEY, STORE_DEVICE_KEY, STORE_POLL_INTERVAL, STORE_N };
static const struct config_field config_store_fields[STORE_N] = {
	{ "sqlite", 0 }, { "postgres", 0 }, { "master_key", 1 }, { "device_key", 0 },
	{ "poll_interval", 0 },
};

enum { AUTH_CACHE_TTL, AUTH_N };
static const struct config_field config_auth_fields[AUTH_N] = {
	{ "cache_ttl", 0 },
};

enum { TIMEOUT_LOGIN, TIMEOUT_IDLE, TIMEOUT_CONNECT, TIMEOUT_SHUTDOWN_GRACE, TIMEOUT_UPSTREAM_REUSE,
	TIMEOUT_N };
static const struct config_field config_timeout_fields[TIMEOUT_N] = {
	{ "login", 0 }, { "idle", 0 }, { "connect", 0 }, { "shutdown_grace", 0 },
	{ "upstream_reuse", 0 },
};
/*
 * Bounds, in seconds. A bigger value is far more likely a slip (an "h" for
 * an "m") than a wish, and would keep dead sessions for days. Only the
 * shutdown grace (a gateway that closes every session at once) and
 * upstream_reuse (provider connections are never kept) may be 0.
 */
static const unsigned config_timeout_min[TIMEOUT_N] = {
	1, 1, 1, 0, 0,
};
static const unsigned config_timeout_max[TIMEOUT_N] = {
	3600, 86400, 600, 3600, 3600,
};

/*
 * A setting that is a whole number or a duration within bounds, with its
 * default; the tables below drive config_settings().
 */
struct config_setting {
	const char	*name;		/* the key */
	int		 duration;	/* 1: a duration (30s, 10m), 0: a plain count */
	unsigned	 min, max;	/* bounds, inclusive (seconds for a duration) */
	unsigned	 def;		/* the value when the key is absent */
	size_t		 offset;	/* of the unsigned in struct mg_config */
};
#define MG_CFG_SETTINGS_MAX	8	/* most settings in one section (config_settings) */

#define MG_CFG_AT(f)	offsetof(struct mg_config, f)

/*
 * limits: generous for a mail gateway, tight enough that one client or one
 * address cannot take the machine. The line lengths bound what is read
 * before login, when nobody is known yet; RFC 4954 section 4 lets an SMTP
 * AUTH line reach 12288 bytes, hence SMTP's default. A literal bound above
 * 8191 could not fit the IMAP parser's argument buffer.
 */
enum {
	LIMIT_CONNECTIONS, LIMIT_CONNECTIONS_PER_IP, LIMIT_SESSIONS_PER_USER, LIMIT_IMAP_LINE,
	LIMIT_POP3_LINE, LIMIT_SMTP_LINE, LIMIT_LITERAL, LIMIT_N
};
static const struct config_setting config_limit_settings[LIMIT_N] = {
	{ "connections", 0, 1, 1000000, 10000, MG_CFG_AT(max_connections) },
	{ "connections_per_ip", 0, 1, 1000000, 100, MG_CFG_AT(max_connections_per_ip) },
	{ "sessions_per_user", 0, 1, 100000, 50, MG_CFG_AT(max_sessions_per_user) },
	{ "imap_line", 0, 512, 8192, 4096, MG_CFG_AT(line_max[MG_PROTO_IMAP]) },
	{ "pop3_line", 0, 512, 16384, 2048, MG_CFG_AT(line_max[MG_PROTO_POP3]) },
	{ "smtp_line", 0, 512, 16384, 12288, MG_CFG_AT(line_max[MG_PROTO_SMTP]) },
	{ "literal", 0, 64, 8191, 1024, MG_CFG_AT(literal_max) },
};

/*
 * brute_force: the defaults let a person mistype a password a few times
 * without noticing anything, and hold a password guesser to a handful of
 * tries a minute per address.
 */
enum { BF_DELAY_AFTER, BF_MAX_DELAY, BF_BLOCK_AFTER, BF_BLOCK_TIME, BF_WINDOW, BF_N };
static const struct config_setting config_bf_settings[BF_N] = {
	{ "delay_after", 0, 1, 1000, 3, MG_CFG_AT(bf_delay_after) },
	{ "max_delay", 1, 0, 60, 8, MG_CFG_AT(bf_max_delay) },
	{ "block_after", 0, 1, 100000, 20, MG_CFG_AT(bf_block_after) },
	{ "block_time", 1, 1, 86400, 600, MG_CFG_AT(bf_block_time) },
	{ "window", 1, 1, 86400, 900, MG_CFG_AT(bf_window) },
};
_Static_assert(LIMIT_N <= MG_CFG_SETTINGS_MAX && BF_N <= MG_CFG_SETTINGS_MAX,
    "config_settings() holds MG_CFG_SETTINGS_MAX settings");

/* The first three are indexed by enum mg_proto on purpose. */
enum { PROV_IMAP, PROV_POP3, PROV_SMTP, PROV_CA_FILE, PROV_N };
static const struct config_field config_provider_fields[PROV_N] = {
	{ "imap", 0 }, { "pop3", 0 }, { "smtp", 0 }, { "ca_file", 0 },
};

enum { EP_HOST, EP_PORT, EP_TLS, EP_N };
static const struct config_field config_endpoint_fields[EP_N] = {
	{ "host", 1 }, { "port", 1 }, { "tls", 0 },
};

static const char *const config_proto_names[MG_PROTO_COUNT] = {
	"imap", "pop3", "smtp",
};
static const char *const config_tls_names[] = { "implicit", "starttls" };

static void	config_note(struct config_load *, const char *, int, int, const char *, ...)
		    __attribute__((format(printf, 5, 6)));
static int	config_file_index(const struct mg_config *, const char *);
static int	config_msg_cmp(const void *, const void *);
static void	config_flush(struct config_load *);
static void	config_err(struct config_load *, const yaml_node_t *, const char *,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
static const char *config_quote(const char *, size_t, char *, size_t);
static const char *config_quote_node(const yaml_node_t *, char *, size_t);
static int	config_is_null(const yaml_node_t *);
static const char *config_describe(const yaml_node_t *, char *, size_t);
static const yaml_node_t *config_at(const struct config_item *);
static int	config_is(struct config_load *, const struct config_item *, yaml_node_type_t);
static void	config_where(struct config_item *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	config_child(struct config_item *, const struct config_item *, const char *);
static int	config_distance(const char *, size_t, const char *);
static const char *config_suggest(const char *, size_t, const struct config_field *, size_t);
static int	config_fields(struct config_load *, const struct config_item *,
		    const struct config_field *, size_t, int, struct config_item *, size_t *);
static const char *config_string(struct config_load *, const struct config_item *);
static int	config_enum(struct config_load *, const struct config_item *,
		    const char *const *, size_t, const char *);
static int	config_number(const char *, unsigned long, unsigned long *);
static int	config_parse_port(const char *, uint16_t *);
static int	config_parse_address(const char *, struct sockaddr_storage *, socklen_t *,
		    char *, size_t);
static int	config_addr_clash(const struct sockaddr_storage *, const struct sockaddr_storage *);
static char	*config_resolve(const char *, const char *);
static const char *config_path_string(struct config_load *, const struct config_item *);
static void	config_path(struct config_load *, const struct config_item *, struct mg_cfg_path *);
static void	config_listen(struct config_load *, const struct config_item *);
static void	config_listener(struct config_load *, const struct config_item *, size_t);
static void	config_tls(struct config_load *, const struct config_item *);
static void	config_store(struct config_load *, const struct config_item *);
static void	config_conninfo(struct config_load *, const struct config_item *, struct mg_cfg_path *);
static int	config_default_device_key(struct mg_config *);
static const char *config_fmt_secs(unsigned, char *, size_t);
static int	config_duration(struct config_load *, const struct config_item *, unsigned, unsigned,
		    unsigned *);
static int	config_count(struct config_load *, const struct config_item *, unsigned, unsigned,
		    unsigned *);
static void	config_timeouts(struct config_load *, const struct config_item *);
static void	config_defaults(struct mg_config *, const struct config_setting *, size_t);
static void	config_settings(struct config_load *, const struct config_item *,
		    const struct config_setting *, size_t, struct config_item *, int *);
static void	config_limits(struct config_load *, const struct config_item *);
static void	config_brute_force(struct config_load *, const struct config_item *);
static void	config_name(struct config_load *, const struct config_item *, const char *, char **,
		    struct mg_cfg_pos *);
static void	config_auth(struct config_load *, const struct config_item *);
static void	config_include(struct config_load *, const struct config_item *);
static int	config_valid_name(const char *, size_t);
static void	config_providers(struct config_load *, const struct config_item *);
static void	config_provider(struct config_load *, const struct config_item *,
		    struct mg_provider_cfg *);
static void	config_endpoint(struct config_load *, const struct config_item *,
		    struct mg_endpoint_cfg *);
static void	config_top(struct config_load *, yaml_node_t *);
static const char *config_add_file(struct config_load *, const char *);
static void	config_offset_pos(FILE *, size_t, int *, int *);
static void	config_yaml_err(struct config_load *, const yaml_parser_t *, FILE *);
static void	config_file(struct config_load *, const char *, const struct config_item *, int);
static void	config_path_free(struct mg_cfg_path *);
static void	config_file_err(struct mg_diag *, const struct mg_cfg_path *, const char *,
		    const char *, const char *, ...) __attribute__((format(printf, 5, 6)));
static FILE	*config_fopen(struct mg_diag *, const struct mg_cfg_path *, const char *);
static int	config_nopass_cb(char *, int, int, void *);
static int	config_check_tls(const struct mg_config *, struct mg_diag *);
static int	config_check_store(const struct mg_config *, struct mg_diag *);
static int	config_check_key(const struct mg_cfg_path *, const char *, struct mg_diag *);
static int	config_check_ca(const struct mg_provider_cfg *, struct mg_diag *);
static int	config_check_ids(const struct mg_config *, struct mg_diag *);

/*
 * Diagnostics
 */

void
mg_diag_add(struct mg_diag *diag, const char *file, int line, int col, const char *fmt, ...)
{
	char	 msg[1024], head[512];
	va_list	 ap;
	size_t	 hlen, mlen;
	char	*text;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	/* A line without a position is about the file as a whole. */
	if (file == NULL)
		head[0] = '\0';
	else if (line <= 0)
		snprintf(head, sizeof(head), "%s: ", file);
	else
		snprintf(head, sizeof(head), "%s:%d:%d: ", file, line, col);
	hlen = strlen(head);
	mlen = strlen(msg);

	/* Out of memory, the line is lost; the caller still sees failure. */
	if ((text = realloc(diag->text, diag->len + hlen + mlen + 2)) == NULL)
		return;
	memcpy(text + diag->len, head, hlen);
	memcpy(text + diag->len + hlen, msg, mlen);
	diag->len += hlen + mlen;
	text[diag->len++] = '\n';
	text[diag->len] = '\0';
	diag->text = text;
	diag->count++;
}

void
mg_diag_free(struct mg_diag *diag)
{
	free(diag->text);
	diag->text = NULL;
	diag->len = 0;
	diag->count = 0;
}

const char *
mg_proto_name(enum mg_proto p)
{
	if ((unsigned)p >= MG_PROTO_COUNT)
		return "?";
	return config_proto_names[p];
}

/*
 * Records one problem of the file being loaded. Problems are found section
 * by section, keys before values, which is not the order of the lines;
 * config_flush() sorts them before the caller sees them.
 */
static void
config_note(struct config_load *ld, const char *file, int line, int col, const char *fmt, ...)
{
	struct config_msg *m;
	char	 msg[1024];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ld->nerr++;
	m = realloc(ld->msgs, (ld->nmsgs + 1) * sizeof(*m));
	if (m == NULL || (m[ld->nmsgs].text = strdup(msg)) == NULL) {
		/* Out of memory: better out of order than lost. */
		if (m != NULL)
			ld->msgs = m;
		config_note(ld, file, line, col, "%s", msg);
		return;
	}
	ld->msgs = m;
	m += ld->nmsgs;
	m->file = file;
	m->line = line;
	m->col = col;
	m->seq = ld->nmsgs++;
}

/* The position of a file in cfg->files; -1 for one never read (the main file). */
static int
config_file_index(const struct mg_config *cfg, const char *file)
{
	size_t	 i;

	for (i = 0; i < cfg->nfiles; i++)
		if (cfg->files[i] == file)
			return (int)i;
	return -1;
}

/* Orders problems by file (in the order read), line, column, then as found. */
static int
config_msg_cmp(const void *a, const void *b)
{
	const struct config_msg *x = a, *y = b;

	if (x->findex != y->findex)
		return x->findex < y->findex ? -1 : 1;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Hands the problems found to the caller's diag, sorted, and frees them. */
static void
config_flush(struct config_load *ld)
{
	struct config_msg *m;
	size_t	 i;

	for (i = 0; i < ld->nmsgs; i++)
		ld->msgs[i].findex = config_file_index(ld->cfg, ld->msgs[i].file);
	if (ld->nmsgs > 1)
		qsort(ld->msgs, ld->nmsgs, sizeof(*ld->msgs), config_msg_cmp);
	for (i = 0; i < ld->nmsgs; i++) {
		m = &ld->msgs[i];
		mg_diag_add(ld->diag, m->file, m->line, m->col, "%s", m->text);
		free(m->text);
	}
	free(ld->msgs);
	ld->msgs = NULL;
	ld->nmsgs = 0;
}

/*
 * Reports one problem at node `at` (1:1 when NULL), led by `where` when it
 * is not empty.
 */
static void
config_err(struct config_load *ld, const yaml_node_t *at, const char *where, const char *fmt, ...)
{
	char	 msg[768];
	va_list	 ap;
	int	 line = 1, col = 1;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (at != NULL) {
		line = (int)at->start_mark.line + 1;
		col = (int)at->start_mark.column + 1;
	}
	config_note(ld, ld->file, line, col, "%s%s%s", where, where[0] != '\0' ? ": " : "", msg);
}

/*
 * Writes s in double quotes into buf, escaping quotes, backslashes and
 * anything unprintable, and cut to MG_CFG_QUOTE_MAX bytes: a message must
 * stay one readable line whatever the file holds.
 */
static const char *
config_quote(const char *s, size_t len, char *buf, size_t bufsz)
{
	size_t	 i, o = 0;
	unsigned char c;

	buf[o++] = '"';
	for (i = 0; i < len && i < MG_CFG_QUOTE_MAX && o + 8 < bufsz; i++) {
		c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(buf + o, bufsz - o, "\\x%02x", c);
		} else
			buf[o++] = (char)c;
	}
	if (i < len && o + 5 < bufsz) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

static const char *
config_quote_node(const yaml_node_t *n, char *buf, size_t bufsz)
{
	return config_quote((const char *)n->data.scalar.value, n->data.scalar.length, buf, bufsz);
}

/* Is n what YAML reads as null: nothing, "~" or "null" written plainly? */
static int
config_is_null(const yaml_node_t *n)
{
	const char *v;

	if (n == NULL)
		return 1;
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	v = (const char *)n->data.scalar.value;
	return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	    strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* Describes a node for "expected X, got Y" messages. */
static const char *
config_describe(const yaml_node_t *n, char *buf, size_t bufsz)
{
	if (config_is_null(n))
		return "an empty value";
	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a sequence";
	default:
		return config_quote_node(n, buf, bufsz);
	}
}

/*
 * The node a message about an item points at. libyaml places an empty
 * value at the token after it, often on the next line, so a message about
 * "key:" with nothing after it points at the key instead.
 */
static const yaml_node_t *
config_at(const struct config_item *it)
{
	if (it->key != NULL && config_is_null(it->val))
		return it->key;
	return it->val;
}

/* Checks that an item is a node of the given type; reports it when not. */
static int
config_is(struct config_load *ld, const struct config_item *it, yaml_node_type_t type)
{
	char	 buf[MG_CFG_QUOTE_MAX + 16];
	const char *want;

	/* An empty value is a scalar, so it is never a mapping or a sequence. */
	if (it->val != NULL && it->val->type == type)
		return 1;
	want = type == YAML_MAPPING_NODE ? "a mapping" :
	    type == YAML_SEQUENCE_NODE ? "a sequence" : "a scalar";
	config_err(ld, config_at(it), it->where, "expected %s, got %s", want,
	    config_describe(it->val, buf, sizeof(buf)));
	return 0;
}

/*
 * Sets an item's path. The longest real one, "providers." + 63 + ".imap.port",
 * fits; a longer one could only be cut, never overflow.
 */
static void
config_where(struct config_item *it, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(it->where, sizeof(it->where), fmt, ap);
	va_end(ap);
}

/* Makes child's path: parent.where + "." + name, or name at the top. */
static void
config_child(struct config_item *child, const struct config_item *parent, const char *name)
{
	config_where(child, "%s%s%s", parent->where, parent->where[0] != '\0' ? "." : "", name);
}

/* Levenshtein distance between a[0..la) and b, for "did you mean". */
static int
config_distance(const char *a, size_t la, const char *b)
{
	int	 row[33], prev, tmp, best;
	size_t	 lb = strlen(b), i, j;

	if (la > 32 || lb > 32)
		return 99;
	for (j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = (int)i;
		for (j = 1; j <= lb; j++) {
			tmp = row[j];
			best = prev + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = tmp;
		}
	}
	return row[lb];
}

/*
 * Returns the field an unknown key was probably meant to be: one a typo or
 * two away, or one the key abbreviates ("proto" for "protocol"); NULL when
 * nothing is close.
 */
static const char *
config_suggest(const char *key, size_t len, const struct config_field *fields, size_t n)
{
	const char *best = NULL;
	int	 d, bestd = 3;
	size_t	 i;

	for (i = 0; i < n; i++) {
		d = config_distance(key, len, fields[i].name);
		if (len >= 3 && strncmp(fields[i].name, key, len) == 0)
			d = 1;
		if (d < bestd && (size_t)d < strlen(fields[i].name)) {
			bestd = d;
			best = fields[i].name;
		}
	}
	return best;
}

/*
 * Checks the keys of the mapping it->val against `fields`: each key must be
 * a scalar naming one of them, at most once. Unknown and repeated keys are
 * reported and left out; missing required fields are reported when
 * `required` is set. Fills items[f] for every field f present (the others
 * get a NULL val) and order[] with the present fields in the order the file
 * has them. Returns how many are present, or -1 when it->val is not a
 * mapping. A NULL it->val stands for the empty root of an empty file.
 */
static int
config_fields(struct config_load *ld, const struct config_item *it, const struct config_field *fields,
    size_t nfields, int required, struct config_item *items, size_t *order)
{
	char	 buf[MG_CFG_QUOTE_MAX + 16];
	yaml_node_pair_t *pairs = NULL, *p, *q;
	yaml_node_t *k, *v, *k2;
	size_t	 npairs = 0, f, n = 0;
	const char *key, *hint;
	size_t	 klen;
	int	 seen;

	if (it->val != NULL) {
		if (!config_is(ld, it, YAML_MAPPING_NODE))
			return -1;
		pairs = it->val->data.mapping.pairs.start;
		npairs = (size_t)(it->val->data.mapping.pairs.top - pairs);
	}
	for (f = 0; f < nfields; f++) {
		items[f].key = items[f].val = NULL;
		config_child(&items[f], it, fields[f].name);
	}

	/* Missing keys first: they belong to the mapping's own position. */
	for (f = 0; required && f < nfields; f++) {
		if (!fields[f].required)
			continue;
		seen = 0;
		for (p = pairs; p != NULL && p < pairs + npairs && !seen; p++) {
			k = yaml_document_get_node(ld->doc, p->key);
			seen = k->type == YAML_SCALAR_NODE &&
			    strcmp((const char *)k->data.scalar.value, fields[f].name) == 0;
		}
		if (!seen)
			config_err(ld, config_at(it), it->where, "missing required key \"%s\"",
			    fields[f].name);
	}

	for (p = pairs; p != NULL && p < pairs + npairs; p++) {
		k = yaml_document_get_node(ld->doc, p->key);
		v = yaml_document_get_node(ld->doc, p->value);
		if (k->type != YAML_SCALAR_NODE) {
			config_err(ld, k, it->where, "expected a key name, got %s",
			    config_describe(k, buf, sizeof(buf)));
			continue;
		}
		key = (const char *)k->data.scalar.value;
		klen = k->data.scalar.length;

		/* A repeated key is an error YAML parsers disagree on: say so. */
		for (q = pairs, seen = 0; q < p && !seen; q++) {
			k2 = yaml_document_get_node(ld->doc, q->key);
			seen = k2->type == YAML_SCALAR_NODE && k2->data.scalar.length == klen &&
			    memcmp(k2->data.scalar.value, key, klen) == 0;
		}
		if (seen) {
			config_err(ld, k, it->where, "duplicate key %s (first at line %d)",
			    config_quote(key, klen, buf, sizeof(buf)), (int)k2->start_mark.line + 1);
			continue;
		}

		for (f = 0; f < nfields; f++)
			if (strlen(fields[f].name) == klen && memcmp(fields[f].name, key, klen) == 0)
				break;
		if (f == nfields) {
			hint = config_suggest(key, klen, fields, nfields);
			if (hint != NULL)
				config_err(ld, k, it->where, "unknown key %s (did you mean \"%s\"?)",
				    config_quote(key, klen, buf, sizeof(buf)), hint);
			else
				config_err(ld, k, it->where, "unknown key %s",
				    config_quote(key, klen, buf, sizeof(buf)));
			continue;
		}
		items[f].key = k;
		items[f].val = v;
		order[n++] = f;
	}
	return (int)n;
}

/*
 * Returns an item's value as a non-empty C string, or NULL after reporting
 * why it is not one. The string lives as long as the document.
 */
static const char *
config_string(struct config_load *ld, const struct config_item *it)
{
	if (!config_is(ld, it, YAML_SCALAR_NODE))
		return NULL;
	if (config_is_null(it->val) || it->val->data.scalar.length == 0) {
		config_err(ld, config_at(it), it->where, "must not be empty");
		return NULL;
	}
	/* A "\0" escape would cut the string short without anyone seeing. */
	if (strlen((const char *)it->val->data.scalar.value) != it->val->data.scalar.length) {
		config_err(ld, it->val, it->where, "must not contain a NUL byte");
		return NULL;
	}
	return (const char *)it->val->data.scalar.value;
}

/*
 * Returns the index of the item's value in names[0..n), or -1 after
 * reporting that it is none of `expected`.
 */
static int
config_enum(struct config_load *ld, const struct config_item *it, const char *const *names, size_t n,
    const char *expected)
{
	char	 buf[MG_CFG_QUOTE_MAX + 16];
	const char *s;
	size_t	 i;

	if ((s = config_string(ld, it)) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	config_err(ld, it->val, it->where, "%s: expected %s", config_quote_node(it->val, buf, sizeof(buf)),
	    expected);
	return -1;
}

/*
 * Reads the decimal number at the start of s into *out, stopping at the
 * first non-digit, which the caller then looks at. Returns the number of
 * digits, or -1 when the value exceeds max (checked before each digit is
 * added, so nothing overflows).
 */
static int
config_number(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	int	 n = 0;

	for (; *s >= '0' && *s <= '9'; s++, n++) {
		if (v > (max - (unsigned long)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	*out = v;
	return n;
}

/* Parses a port: decimal digits only, 1-65535. 0 ok, -1 otherwise. */
static int
config_parse_port(const char *s, uint16_t *port)
{
	unsigned long v;
	int	 n;

	if ((n = config_number(s, 65535, &v)) <= 0 || s[n] != '\0' || v == 0)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/*
 * Parses "IPv4:port" or "[IPv6]:port", numeric only: a listener binds to
 * what it is told and resolves nothing. 0 ok; -1 with the reason in why.
 */
static int
config_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len, char *why, size_t whylen)
{
	struct sockaddr_in  *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char	 host[80], q[MG_CFG_QUOTE_MAX + 16];
	const char *end, *colon, *port;
	size_t	 hlen;
	uint16_t portnum;
	int	 family, ok;

	if (strlen(s) >= sizeof(((struct mg_listen_cfg *)NULL)->address)) {
		snprintf(why, whylen, "too long for an address");
		return -1;
	}
	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL) {
			snprintf(why, whylen, "missing \"]\" after the IPv6 address");
			return -1;
		}
		if (end[1] != ':') {
			snprintf(why, whylen, "missing \":port\" after \"]\"");
			return -1;
		}
		family = AF_INET6;
		hlen = (size_t)(end - s - 1);
		memcpy(host, s + 1, hlen);
		port = end + 2;
	} else {
		if ((colon = strrchr(s, ':')) == NULL) {
			snprintf(why, whylen, "missing \":port\"");
			return -1;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			snprintf(why, whylen, "an IPv6 address must be in brackets, as in \"[::1]:993\"");
			return -1;
		}
		family = AF_INET;
		hlen = (size_t)(colon - s);
		memcpy(host, s, hlen);
		port = colon + 1;
	}
	host[hlen] = '\0';

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		ok = inet_pton(AF_INET, host, &sin->sin_addr) == 1;
		*len = sizeof(*sin);
	} else {
		sin6->sin6_family = AF_INET6;
		ok = inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1;
		*len = sizeof(*sin6);
	}
	if (!ok) {
		snprintf(why, whylen, "%s is not a numeric %s address", config_quote(host, hlen, q, sizeof(q)),
		    family == AF_INET ? "IPv4" : "IPv6");
		return -1;
	}
	if (config_parse_port(port, &portnum) == -1) {
		snprintf(why, whylen, "the port must be a number from 1 to 65535");
		return -1;
	}
	if (family == AF_INET)
		sin->sin_port = htons(portnum);
	else
		sin6->sin6_port = htons(portnum);
	return 0;
}

/*
 * Would two listeners fight over a port? 1 when the addresses are the same,
 * 2 when one of them is the wildcard of the other's family (bind() would
 * fail with EADDRINUSE), 0 when they can coexist. IPv4 against IPv6 is left
 * to the gateway, which decides on IPV6_V6ONLY.
 */
static int
config_addr_clash(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in  *a4 = (const struct sockaddr_in *)a, *b4 = (const struct sockaddr_in *)b;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a, *b6 = (const struct sockaddr_in6 *)b;

	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		if (a4->sin_port != b4->sin_port)
			return 0;
		if (a4->sin_addr.s_addr == b4->sin_addr.s_addr)
			return 1;
		return a4->sin_addr.s_addr == htonl(INADDR_ANY) || b4->sin_addr.s_addr == htonl(INADDR_ANY) ?
		    2 : 0;
	}
	if (a6->sin6_port != b6->sin6_port)
		return 0;
	if (IN6_ARE_ADDR_EQUAL(&a6->sin6_addr, &b6->sin6_addr))
		return 1;
	return IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&b6->sin6_addr) ? 2 : 0;
}

/*
 * Resolves `rel` against the directory of `file`, by joining the two: the
 * result is relative to the current directory when `file` is. Returns a
 * malloc'd string, NULL when out of memory.
 */
static char *
config_resolve(const char *file, const char *rel)
{
	const char *slash;
	size_t	 dlen;
	char	*out;

	if (rel[0] == '/' || (slash = strrchr(file, '/')) == NULL)
		return strdup(rel);
	dlen = (size_t)(slash - file) + 1;
	if ((out = malloc(dlen + strlen(rel) + 1)) == NULL)
		return NULL;
	memcpy(out, file, dlen);
	strcpy(out + dlen, rel);
	return out;
}

/*
 * Returns an item's value as a path, or NULL after reporting why it is not
 * one. Paths are printed as they are in messages ("tls.key: PATH: No such
 * file or directory") and files are named by them in every
 * "FILE:LINE:COL" line, so a newline or another control character in one
 * would break a message in two or hide part of it: they are refused.
 */
static const char *
config_path_string(struct config_load *ld, const struct config_item *it)
{
	char	 q[MG_CFG_QUOTE_MAX + 16];
	const char *s, *p;

	if ((s = config_string(ld, it)) == NULL)
		return NULL;
	for (p = s; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			config_err(ld, it->val, it->where, "%s: a path must not contain control characters",
			    config_quote_node(it->val, q, sizeof(q)));
			return NULL;
		}
	}
	return s;
}

/* Fills a path setting: the value resolved, and where it was written. */
static void
config_path(struct config_load *ld, const struct config_item *it, struct mg_cfg_path *out)
{
	const char *s;

	if ((s = config_path_string(ld, it)) == NULL)
		return;
	config_path_free(out);
	if ((out->path = config_resolve(ld->file, s)) == NULL) {
		config_err(ld, it->val, it->where, "out of memory");
		return;
	}
	out->file = ld->file;
	out->line = (int)it->val->start_mark.line + 1;
	out->col = (int)it->val->start_mark.column + 1;
}

/* listen: a sequence of listeners, at least one. */
static void
config_listen(struct config_load *ld, const struct config_item *it)
{
	struct mg_config *cfg = ld->cfg;
	struct config_item e;
	yaml_node_item_t *items;
	size_t	 n, i;

	if (!config_is(ld, it, YAML_SEQUENCE_NODE))
		return;
	items = it->val->data.sequence.items.start;
	n = (size_t)(it->val->data.sequence.items.top - items);
	if (n == 0) {
		config_err(ld, it->val, it->where, "at least one listener is required");
		return;
	}
	cfg->listen = calloc(n, sizeof(*cfg->listen));
	ld->lpos = calloc(n, sizeof(*ld->lpos));
	if (cfg->listen == NULL || ld->lpos == NULL) {
		config_err(ld, it->val, it->where, "out of memory");
		return;
	}
	for (i = 0; i < n; i++) {
		e.key = NULL;
		e.val = yaml_document_get_node(ld->doc, items[i]);
		config_where(&e, "%s[%zu]", it->where, i);
		config_listener(ld, &e, cfg->nlisten++);
	}
}

/* One listener; its index in cfg->listen is i. */
static void
config_listener(struct config_load *ld, const struct config_item *it, size_t i)
{
	struct mg_listen_cfg *l = &ld->cfg->listen[i];
	struct config_item items[LISTEN_N];
	size_t	 order[LISTEN_N], j, k;
	char	 why[160], q[MG_CFG_QUOTE_MAX + 16];
	const char *s;
	int	 n, v, clash;

	l->proto = MG_PROTO_IMAP;
	l->tls = MG_TLS_IMPLICIT;
	if ((n = config_fields(ld, it, config_listen_fields, LISTEN_N, 1, items, order)) == -1)
		return;
	for (j = 0; j < (size_t)n; j++) {
		const struct config_item *f = &items[order[j]];

		switch (order[j]) {
		case LISTEN_PROTOCOL:
			if ((v = config_enum(ld, f, config_proto_names, MG_PROTO_COUNT,
			    "imap, pop3 or smtp")) != -1)
				l->proto = (enum mg_proto)v;
			break;
		case LISTEN_TLS:
			if ((v = config_enum(ld, f, config_tls_names, 2, "implicit or starttls")) != -1)
				l->tls = (enum mg_tls_mode)v;
			break;
		case LISTEN_ADDRESS:
			if ((s = config_string(ld, f)) == NULL)
				break;
			if (config_parse_address(s, &l->addr, &l->addrlen, why, sizeof(why)) == -1) {
				config_err(ld, f->val, f->where, "%s: %s", config_quote_node(f->val, q, sizeof(q)),
				    why);
				break;
			}
			snprintf(l->address, sizeof(l->address), "%s", s);
			for (k = 0; k < i; k++) {
				if (!ld->lpos[k].ok)
					continue;
				clash = config_addr_clash(&ld->cfg->listen[k].addr, &l->addr);
				if (clash == 1)
					config_err(ld, f->val, f->where, "%s: already used by listen[%zu] at line %d",
					    config_quote_node(f->val, q, sizeof(q)), k, ld->lpos[k].line);
				else if (clash == 2)
					config_err(ld, f->val, f->where, "%s: same port as listen[%zu] at line %d "
					    "(\"%s\"), and a wildcard address takes the port on every address",
					    config_quote_node(f->val, q, sizeof(q)), k, ld->lpos[k].line,
					    ld->cfg->listen[k].address);
				if (clash != 0)
					break;
			}
			ld->lpos[i].file = ld->file;
			ld->lpos[i].line = (int)f->val->start_mark.line + 1;
			ld->lpos[i].col = (int)f->val->start_mark.column + 1;
			ld->lpos[i].ok = 1;
			break;
		}
	}
}

static void
config_tls(struct config_load *ld, const struct config_item *it)
{
	struct config_item items[TLS_N];
	size_t	 order[TLS_N], j;
	int	 n;

	if ((n = config_fields(ld, it, config_tls_fields, TLS_N, 1, items, order)) == -1)
		return;
	for (j = 0; j < (size_t)n; j++)
		config_path(ld, &items[order[j]],
		    order[j] == TLS_CERTIFICATE ? &ld->cfg->tls_cert : &ld->cfg->tls_key);
}

/*
 * store: the backend (exactly one of sqlite and postgres), the keys, and
 * how often to poll for revocations. device_key defaults to "device.key"
 * beside the master key, once both are known (see config_load's end).
 */
static void
config_store(struct config_load *ld, const struct config_item *it)
{
	struct mg_config *cfg = ld->cfg;
	struct config_item items[STORE_N];
	size_t	 order[STORE_N], j;
	int	 n;

	if ((n = config_fields(ld, it, config_store_fields, STORE_N, 1, items, order)) == -1)
		return;
	if (items[STORE_SQLITE].val == NULL && items[STORE_POSTGRES].val == NULL)
		config_err(ld, config_at(it), it->where,
		    "missing required key \"sqlite\" or \"postgres\"");
	else if (items[STORE_SQLITE].val != NULL && items[STORE_POSTGRES].val != NULL)
		config_err(ld, config_at(it), it->where, "\"sqlite\" and \"postgres\" are both set; "
		    "a gateway uses one store");
	for (j = 0; j < (size_t)n; j++) {
		const struct config_item *f = &items[order[j]];

		switch (order[j]) {
		case STORE_SQLITE:
			config_path(ld, f, &cfg->store_sqlite);
			break;
		case STORE_POSTGRES:
			config_conninfo(ld, f, &cfg->store_postgres);
			break;
		case STORE_MASTER_KEY:
			config_path(ld, f, &cfg->master_key);
			break;
		case STORE_DEVICE_KEY:
			config_path(ld, f, &cfg->device_key);
			break;
		case STORE_POLL_INTERVAL:
			(void)config_duration(ld, f, 1, MG_CFG_POLL_MAX, &cfg->poll_interval);
			break;
		}
	}
	/* One key must not serve two purposes: each has its own backup and rotation. */
	if (cfg->device_key.path != NULL && cfg->master_key.path != NULL &&
	    strcmp(cfg->device_key.path, cfg->master_key.path) == 0)
		config_err(ld, items[STORE_DEVICE_KEY].val, items[STORE_DEVICE_KEY].where,
		    "must not be the master key file");
}

/*
 * store.postgres: a libpq connection string, kept as written (it is not a
 * path). It is parsed here so that a typo is reported with its position;
 * libpq's own message is not shown, because it may quote the string, and
 * the string may hold a password.
 */
static void
config_conninfo(struct config_load *ld, const struct config_item *it, struct mg_cfg_path *out)
{
	PQconninfoOption *opts;
	const char *s;
	char	*msg = NULL;

	if ((s = config_string(ld, it)) == NULL)
		return;
	if ((opts = PQconninfoParse(s, &msg)) == NULL) {
		if (msg != NULL) {
			OPENSSL_cleanse(msg, strlen(msg));
			PQfreemem(msg);
			config_err(ld, it->val, it->where, "not a valid libpq connection string "
			    "(key=value pairs such as \"host=db.example port=5432 dbname=mailgate\", "
			    "or a postgresql:// URI)");
		} else
			config_err(ld, it->val, it->where, "out of memory");
		return;
	}
	PQconninfoFree(opts);
	config_path_free(out);
	if ((out->path = strdup(s)) == NULL) {
		config_err(ld, it->val, it->where, "out of memory");
		return;
	}
	out->file = ld->file;
	out->line = (int)it->val->start_mark.line + 1;
	out->col = (int)it->val->start_mark.column + 1;
}

/*
 * Sets device_key to "device.key" in the master key's directory when the
 * file does not name one, positioned where the master key is. 0 ok (or
 * nothing to do), -1 out of memory.
 */
static int
config_default_device_key(struct mg_config *cfg)
{
	const char *mk = cfg->master_key.path, *slash;
	size_t	 dlen;
	char	*p;

	if (cfg->device_key.path != NULL || mk == NULL)
		return 0;
	dlen = (slash = strrchr(mk, '/')) != NULL ? (size_t)(slash - mk) + 1 : 0;
	if ((p = malloc(dlen + sizeof(MG_CFG_DEVICE_KEY))) == NULL)
		return -1;
	memcpy(p, mk, dlen);
	memcpy(p + dlen, MG_CFG_DEVICE_KEY, sizeof(MG_CFG_DEVICE_KEY));
	cfg->device_key = cfg->master_key;
	cfg->device_key.path = p;
	return 0;
}

/* Writes a number of seconds the way a person would: "1h", "10m", "45s". */
static const char *
config_fmt_secs(unsigned secs, char *buf, size_t bufsz)
{
	if (secs == 0)
		snprintf(buf, bufsz, "0s");
	else if (secs % 3600 == 0)
		snprintf(buf, bufsz, "%uh", secs / 3600);
	else if (secs % 60 == 0)
		snprintf(buf, bufsz, "%um", secs / 60);
	else
		snprintf(buf, bufsz, "%us", secs);
	return buf;
}

/*
 * A duration: a whole number of seconds with an optional s, m or h
 * suffix, between min and max seconds. 0 and *out set, or -1 after
 * reporting the problem (*out keeps its default).
 */
static int
config_duration(struct config_load *ld, const struct config_item *it, unsigned min, unsigned max,
    unsigned *out)
{
	char	 q[MG_CFG_QUOTE_MAX + 16], b1[32], b2[32];
	unsigned long v, mult;
	const char *s;
	int	 digits;

	if ((s = config_string(ld, it)) == NULL)
		return -1;
	digits = config_number(s, 0xffffffffUL, &v);
	mult = 1;
	if (digits > 0 && s[digits] != '\0' && s[digits + 1] == '\0') {
		switch (s[digits]) {
		case 's':
			break;
		case 'm':
			mult = 60;
			break;
		case 'h':
			mult = 3600;
			break;
		default:
			digits = 0;
			break;
		}
	} else if (digits > 0 && s[digits] != '\0')
		digits = 0;
	if (digits == 0) {
		config_err(ld, it->val, it->where,
		    "%s: expected a number of seconds, optionally followed by s, m or h "
		    "(as in 90, 30s, 30m, 1h)", config_quote_node(it->val, q, sizeof(q)));
		return -1;
	}
	/* digits == -1 means too big to hold, which is out of range too. */
	if (digits == -1 || v > max / mult || v * mult < min) {
		config_err(ld, it->val, it->where, "%s: must be between %s and %s",
		    config_quote_node(it->val, q, sizeof(q)), config_fmt_secs(min, b1, sizeof(b1)),
		    config_fmt_secs(max, b2, sizeof(b2)));
		return -1;
	}
	*out = (unsigned)(v * mult);
	return 0;
}

/*
 * A count: decimal digits only, between min and max. 0 and *out set, or -1
 * after reporting the problem (*out keeps its default). "1e3", "0x10",
 * "+5" and "10_000", which YAML 1.1 might read as numbers, are refused
 * rather than guessed at.
 */
static int
config_count(struct config_load *ld, const struct config_item *it, unsigned min, unsigned max,
    unsigned *out)
{
	char	 q[MG_CFG_QUOTE_MAX + 16];
	unsigned long v;
	const char *s;
	int	 digits;

	if ((s = config_string(ld, it)) == NULL)
		return -1;
	digits = config_number(s, 0xffffffffUL, &v);
	if (digits == 0 || (digits > 0 && s[digits] != '\0')) {
		config_err(ld, it->val, it->where, "%s: expected a whole number (digits only, as in 100)",
		    config_quote_node(it->val, q, sizeof(q)));
		return -1;
	}
	/* digits == -1 means too big to hold, which is out of range too. */
	if (digits == -1 || v < min || v > max) {
		config_err(ld, it->val, it->where, "%s: must be between %u and %u",
		    config_quote_node(it->val, q, sizeof(q)), min, max);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/*
 * timeouts: each a duration between config_timeout_min[] and
 * config_timeout_max[]. Absent ones keep their defaults; an empty
 * "timeouts:" is the same as none.
 */
static void
config_timeouts(struct config_load *ld, const struct config_item *it)
{
	struct config_item items[TIMEOUT_N];
	unsigned *dst[TIMEOUT_N] = {
		&ld->cfg->timeout_login, &ld->cfg->timeout_idle, &ld->cfg->timeout_connect,
		&ld->cfg->timeout_shutdown, &ld->cfg->timeout_reuse,
	};
	size_t	 order[TIMEOUT_N], j;
	int	 n;

	if (config_is_null(it->val))
		return;
	if ((n = config_fields(ld, it, config_timeout_fields, TIMEOUT_N, 1, items, order)) == -1)
		return;
	for (j = 0; j < (size_t)n; j++)
		(void)config_duration(ld, &items[order[j]], config_timeout_min[order[j]],
		    config_timeout_max[order[j]], dst[order[j]]);
}

/* Gives every setting of a table its default. */
static void
config_defaults(struct mg_config *cfg, const struct config_setting *set, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		*(unsigned *)(void *)((char *)cfg + set[i].offset) = set[i].def;
}

/*
 * A section made of settings only (limits, brute_force): a mapping of
 * optional keys, each a count or a duration within its bounds. An empty
 * section is the same as none. Fills items[i] as config_fields() does (a
 * NULL val for an absent key) and ok[i] with 1 for each setting that was
 * present and valid. At most MG_CFG_SETTINGS_MAX settings.
 */
static void
config_settings(struct config_load *ld, const struct config_item *it, const struct config_setting *set,
    size_t n, struct config_item *items, int *ok)
{
	struct config_field fields[MG_CFG_SETTINGS_MAX];
	size_t	 order[MG_CFG_SETTINGS_MAX], i, j;
	unsigned *dst;
	int	 m;

	for (i = 0; i < n; i++) {
		fields[i].name = set[i].name;
		fields[i].required = 0;
		items[i].key = items[i].val = NULL;
		config_child(&items[i], it, set[i].name);
		ok[i] = 0;
	}
	if (config_is_null(it->val))
		return;
	if ((m = config_fields(ld, it, fields, n, 0, items, order)) == -1)
		return;
	for (j = 0; j < (size_t)m; j++) {
		i = order[j];
		dst = (unsigned *)(void *)((char *)ld->cfg + set[i].offset);
		if (set[i].duration)
			ok[i] = config_duration(ld, &items[i], set[i].min, set[i].max, dst) == 0;
		else
			ok[i] = config_count(ld, &items[i], set[i].min, set[i].max, dst) == 0;
	}
}

static void
config_limits(struct config_load *ld, const struct config_item *it)
{
	struct config_item items[LIMIT_N];
	int	 ok[LIMIT_N];

	config_settings(ld, it, config_limit_settings, LIMIT_N, items, ok);
}

/*
 * brute_force: the settings, and one rule between them: an address must
 * be slowed down before it is blocked, so block_after >= delay_after. The
 * rule is checked only when both values are good (or defaults), and
 * reported at block_after, or at delay_after when block_after is the
 * default.
 */
static void
config_brute_force(struct config_load *ld, const struct config_item *it)
{
	const struct mg_config *cfg = ld->cfg;
	struct config_item items[BF_N];
	const struct config_item *d = &items[BF_DELAY_AFTER], *b = &items[BF_BLOCK_AFTER];
	char	 q[MG_CFG_QUOTE_MAX + 16];
	int	 ok[BF_N];

	config_settings(ld, it, config_bf_settings, BF_N, items, ok);
	if ((d->val != NULL && !ok[BF_DELAY_AFTER]) || (b->val != NULL && !ok[BF_BLOCK_AFTER]) ||
	    cfg->bf_block_after >= cfg->bf_delay_after)
		return;
	if (b->val != NULL)
		config_err(ld, b->val, b->where, "%s: must not be less than delay_after (%u)",
		    config_quote_node(b->val, q, sizeof(q)), cfg->bf_delay_after);
	else
		config_err(ld, d->val, d->where, "%s: must not be more than block_after (%u by default)",
		    config_quote_node(d->val, q, sizeof(q)), cfg->bf_block_after);
}

/*
 * user, group: a name to look up when the gateway drops its privileges.
 * Only its form is checked here (mg_config_check_files() checks that it
 * exists): not a number, since a uid or gid written here would be looked
 * up as a name and not found, or worse, found; and nothing a passwd or
 * group file could not hold. `what` is "user" or "group".
 */
static void
config_name(struct config_load *ld, const struct config_item *it, const char *what, char **out,
    struct mg_cfg_pos *pos)
{
	char	 q[MG_CFG_QUOTE_MAX + 16];
	const char *s;
	size_t	 len, i, digits = 0;
	unsigned char c;

	if ((s = config_string(ld, it)) == NULL)
		return;
	len = strlen(s);
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f || c == ':' || c == ',' || c == '/')
			break;
		digits += c >= '0' && c <= '9';
	}
	if (len > MG_CFG_NAME_MAX) {
		config_err(ld, it->val, it->where, "%s: too long for a %s name (at most %d bytes)",
		    config_quote(s, len, q, sizeof(q)), what, MG_CFG_NAME_MAX);
		return;
	}
	if (i < len || s[0] == '-') {
		config_err(ld, it->val, it->where, "%s: not a valid %s name (no spaces, ':', ',' or '/', "
		    "and no '-' first)", config_quote(s, len, q, sizeof(q)), what);
		return;
	}
	if (digits == len) {
		config_err(ld, it->val, it->where, "%s: expected a %s name, not a number",
		    config_quote(s, len, q, sizeof(q)), what);
		return;
	}
	free(*out);
	if ((*out = strdup(s)) == NULL) {
		config_err(ld, it->val, it->where, "out of memory");
		return;
	}
	pos->file = ld->file;
	pos->line = (int)it->val->start_mark.line + 1;
	pos->col = (int)it->val->start_mark.column + 1;
}

/*
 * auth: how logins are verified. cache_ttl is how long a verified login
 * is remembered, 0 (no cache) to 1h. An empty "auth:" is the same as none.
 */
static void
config_auth(struct config_load *ld, const struct config_item *it)
{
	struct config_item items[AUTH_N];
	size_t	 order[AUTH_N], j;
	int	 n;

	if (config_is_null(it->val))
		return;
	if ((n = config_fields(ld, it, config_auth_fields, AUTH_N, 1, items, order)) == -1)
		return;
	for (j = 0; j < (size_t)n; j++)
		(void)config_duration(ld, &items[order[j]], 0, MG_CFG_CACHE_TTL_MAX,
		    &ld->cfg->auth_cache_ttl);
}

/*
 * include: a sequence of files read in turn, right away, each relative to
 * the including file's directory. They may only hold providers.
 */
static void
config_include(struct config_load *ld, const struct config_item *it)
{
	struct config_item e;
	yaml_node_item_t *items;
	size_t	 n, i;
	const char *s;
	char	*path;

	if (config_is_null(it->val))
		return;
	if (!config_is(ld, it, YAML_SEQUENCE_NODE))
		return;
	items = it->val->data.sequence.items.start;
	n = (size_t)(it->val->data.sequence.items.top - items);
	for (i = 0; i < n; i++) {
		e.key = NULL;
		e.val = yaml_document_get_node(ld->doc, items[i]);
		config_where(&e, "%s[%zu]", it->where, i);
		if ((s = config_path_string(ld, &e)) == NULL)
			continue;
		if ((path = config_resolve(ld->file, s)) == NULL) {
			config_err(ld, e.val, e.where, "out of memory");
			continue;
		}
		config_file(ld, path, &e, 1);
		free(path);
	}
}

/* Provider names: [A-Za-z0-9_.-]{1,63}; they are typed in admin commands. */
static int
config_valid_name(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0 || len > 63)
		return 0;
	for (i = 0; i < len; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.' || s[i] == '-'))
			return 0;
	}
	return 1;
}

/*
 * providers: a mapping from name to provider. Names must be unique across
 * all files, so a repeated one is reported with where it first appeared.
 * A provider with a bad or repeated name is still checked, into a scratch
 * copy, so that its other problems show up in the same run.
 */
static void
config_providers(struct config_load *ld, const struct config_item *it)
{
	struct mg_config *cfg = ld->cfg;
	struct mg_provider_cfg *np, scratch;
	struct config_pos *npos;
	struct config_item e;
	yaml_node_pair_t *pairs, *p;
	yaml_node_t *k;
	size_t	 npairs, i;
	char	 q[MG_CFG_QUOTE_MAX + 16];
	const char *name;

	if (config_is_null(it->val))
		return;
	if (!config_is(ld, it, YAML_MAPPING_NODE))
		return;
	pairs = it->val->data.mapping.pairs.start;
	npairs = (size_t)(it->val->data.mapping.pairs.top - pairs);
	for (p = pairs; p < pairs + npairs; p++) {
		k = yaml_document_get_node(ld->doc, p->key);
		if (k->type != YAML_SCALAR_NODE) {
			config_err(ld, k, it->where, "expected a provider name, got %s",
			    config_describe(k, q, sizeof(q)));
			continue;
		}
		name = (const char *)k->data.scalar.value;
		e.key = k;
		e.val = yaml_document_get_node(ld->doc, p->value);
		if (!config_valid_name(name, k->data.scalar.length) ||
		    strlen(name) != k->data.scalar.length) {
			config_err(ld, k, it->where, "%s: invalid provider name "
			    "(1 to 63 letters, digits, '_', '.' or '-')", config_quote_node(k, q, sizeof(q)));
			config_child(&e, it, config_quote_node(k, q, sizeof(q)));
			memset(&scratch, 0, sizeof(scratch));
			config_provider(ld, &e, &scratch);
			config_path_free(&scratch.ca_file);
			continue;
		}
		config_child(&e, it, name);
		for (i = 0; i < cfg->nproviders; i++)
			if (strcmp(cfg->providers[i].name, name) == 0)
				break;
		if (i < cfg->nproviders) {
			config_err(ld, k, it->where, "duplicate provider \"%s\" (first defined at %s:%d:%d)",
			    name, ld->ppos[i].file, ld->ppos[i].line, ld->ppos[i].col);
			memset(&scratch, 0, sizeof(scratch));
			config_provider(ld, &e, &scratch);
			config_path_free(&scratch.ca_file);
			continue;
		}

		np = realloc(cfg->providers, (cfg->nproviders + 1) * sizeof(*np));
		if (np != NULL)
			cfg->providers = np;
		npos = realloc(ld->ppos, (cfg->nproviders + 1) * sizeof(*npos));
		if (npos != NULL)
			ld->ppos = npos;
		if (np == NULL || npos == NULL) {
			config_err(ld, k, it->where, "out of memory");
			return;
		}
		np = &cfg->providers[cfg->nproviders];
		memset(np, 0, sizeof(*np));
		snprintf(np->name, sizeof(np->name), "%s", name);
		npos = &ld->ppos[cfg->nproviders];
		npos->file = ld->file;
		npos->line = (int)k->start_mark.line + 1;
		npos->col = (int)k->start_mark.column + 1;
		npos->ok = 1;
		cfg->nproviders++;
		config_provider(ld, &e, np);
	}
}

static void
config_provider(struct config_load *ld, const struct config_item *it, struct mg_provider_cfg *prov)
{
	struct config_item items[PROV_N];
	size_t	 order[PROV_N], j, neps = 0;
	int	 n;

	if ((n = config_fields(ld, it, config_provider_fields, PROV_N, 1, items, order)) == -1)
		return;
	for (j = 0; j < (size_t)n; j++)
		if (order[j] != PROV_CA_FILE)
			neps++;
	if (neps == 0)
		config_err(ld, config_at(it), it->where, "at least one of imap, pop3 or smtp is required");
	for (j = 0; j < (size_t)n; j++) {
		if (order[j] == PROV_CA_FILE)
			config_path(ld, &items[PROV_CA_FILE], &prov->ca_file);
		else
			config_endpoint(ld, &items[order[j]], &prov->ep[order[j]]);
	}
}

/* One upstream endpoint: host and port, and TLS implicit unless told. */
static void
config_endpoint(struct config_load *ld, const struct config_item *it, struct mg_endpoint_cfg *ep)
{
	struct config_item items[EP_N];
	size_t	 order[EP_N], j, i, len;
	char	 q[MG_CFG_QUOTE_MAX + 16];
	const char *s;
	int	 n, v;

	ep->present = 1;
	ep->tls = MG_TLS_IMPLICIT;
	if ((n = config_fields(ld, it, config_endpoint_fields, EP_N, 1, items, order)) == -1)
		return;
	for (j = 0; j < (size_t)n; j++) {
		const struct config_item *f = &items[order[j]];

		switch (order[j]) {
		case EP_HOST:
			if ((s = config_string(ld, f)) == NULL)
				break;
			len = strlen(s);
			if (len >= sizeof(ep->host)) {
				config_err(ld, f->val, f->where, "%s: too long for a host name "
				    "(at most %zu bytes)", config_quote(s, len, q, sizeof(q)),
				    sizeof(ep->host) - 1);
				break;
			}
			/* It is also the name the certificate is checked against. */
			for (i = 0; i < len; i++)
				if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
					break;
			if (i < len) {
				config_err(ld, f->val, f->where, "%s: a host name must not contain spaces",
				    config_quote(s, len, q, sizeof(q)));
				break;
			}
			memcpy(ep->host, s, len + 1);
			break;
		case EP_PORT:
			if ((s = config_string(ld, f)) == NULL)
				break;
			if (config_parse_port(s, &ep->port) == -1)
				config_err(ld, f->val, f->where, "%s: expected a port number from 1 to 65535",
				    config_quote_node(f->val, q, sizeof(q)));
			break;
		case EP_TLS:
			if ((v = config_enum(ld, f, config_tls_names, 2, "implicit or starttls")) != -1)
				ep->tls = (enum mg_tls_mode)v;
			break;
		}
	}
}

/*
 * The root of a file. An included file may hold only providers; the keys
 * the main file alone may have are reported as out of place.
 */
static void
config_top(struct config_load *ld, yaml_node_t *root)
{
	struct config_item top, items[TOP_N];
	size_t	 order[TOP_N], j;
	int	 n;

	top.key = NULL;
	top.val = root;
	top.where[0] = '\0';
	if ((n = config_fields(ld, &top, config_top_fields, TOP_N, !ld->included, items, order)) == -1)
		return;
	for (j = 0; j < (size_t)n; j++) {
		const struct config_item *f = &items[order[j]];

		if (ld->included && order[j] != TOP_PROVIDERS) {
			config_err(ld, f->key, "", "\"%s\" is not allowed in an included file "
			    "(only \"providers\" is)", config_top_fields[order[j]].name);
			continue;
		}
		switch (order[j]) {
		case TOP_LISTEN:
			config_listen(ld, f);
			break;
		case TOP_TLS:
			config_tls(ld, f);
			break;
		case TOP_STORE:
			config_store(ld, f);
			break;
		case TOP_TIMEOUTS:
			config_timeouts(ld, f);
			break;
		case TOP_INCLUDE:
			config_include(ld, f);
			break;
		case TOP_PROVIDERS:
			config_providers(ld, f);
			break;
		case TOP_AUTH:
			config_auth(ld, f);
			break;
		case TOP_USER:
			config_name(ld, f, "user", &ld->cfg->run_user, &ld->cfg->run_user_pos);
			break;
		case TOP_GROUP:
			config_name(ld, f, "group", &ld->cfg->run_group, &ld->cfg->run_group_pos);
			break;
		case TOP_LIMITS:
			config_limits(ld, f);
			break;
		case TOP_BRUTE_FORCE:
			config_brute_force(ld, f);
			break;
		}
	}
	/*
	 * A group without a user is refused: started as root, the gateway
	 * would change its group and go on as root, which is not what anyone
	 * writing "group:" means.
	 */
	if (!ld->included && items[TOP_GROUP].val != NULL && items[TOP_USER].val == NULL)
		config_err(ld, config_at(&items[TOP_GROUP]), items[TOP_GROUP].where,
		    "needs \"user\" as well (the group alone would leave the gateway running as root)");
}

/* Adds a file to cfg->files; returns the stored copy, NULL when out of memory. */
static const char *
config_add_file(struct config_load *ld, const char *path)
{
	struct mg_config *cfg = ld->cfg;
	char	**files, *copy;

	if ((copy = strdup(path)) == NULL)
		return NULL;
	if ((files = realloc(cfg->files, (cfg->nfiles + 1) * sizeof(*files))) == NULL) {
		free(copy);
		return NULL;
	}
	files[cfg->nfiles++] = copy;
	cfg->files = files;
	return copy;
}

/* Turns a byte offset into a 1-based line and column by reading the file again. */
static void
config_offset_pos(FILE *fp, size_t offset, int *line, int *col)
{
	size_t	 i;
	int	 c;

	*line = *col = 1;
	if (fseek(fp, 0, SEEK_SET) == -1)
		return;
	for (i = 0; i < offset && (c = getc(fp)) != EOF; i++) {
		if (c == '\n') {
			(*line)++;
			*col = 1;
		} else
			(*col)++;
	}
}

/* Reports the error libyaml stopped at, where it says it is. */
static void
config_yaml_err(struct config_load *ld, const yaml_parser_t *p, FILE *fp)
{
	int	 line, col;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		config_note(ld, ld->file, 0, 0, "out of memory");
		break;
	case YAML_READER_ERROR:
		/* The reader gives a byte offset rather than a mark. */
		config_offset_pos(fp, p->problem_offset, &line, &col);
		config_note(ld, ld->file, line, col, "syntax error: %s", p->problem);
		break;
	default:
		line = (int)p->problem_mark.line + 1;
		col = (int)p->problem_mark.column + 1;
		if (p->context != NULL)
			config_note(ld, ld->file, line, col, "syntax error: %s (%s at %d:%d)",
			    p->problem, p->context, (int)p->context_mark.line + 1,
			    (int)p->context_mark.column + 1);
		else
			config_note(ld, ld->file, line, col, "syntax error: %s",
			    p->problem != NULL ? p->problem : "unknown error");
		break;
	}
}

/*
 * Reads and walks one file. `inc` is the include entry naming it, where a
 * file that cannot be read is reported, or NULL for the main file.
 */
static void
config_file(struct config_load *ld, const char *path, const struct config_item *inc, int included)
{
	const char *saved_file = ld->file;
	yaml_document_t *saved_doc = ld->doc;
	int	 saved_included = ld->included;
	yaml_parser_t parser;
	yaml_document_t doc, more;
	yaml_node_t *root;
	struct stat st;
	const char *why = NULL, *name;
	FILE	*fp;

	if ((fp = fopen(path, "rb")) == NULL)
		why = strerror(errno);
	else if (fstat(fileno(fp), &st) == -1)
		why = strerror(errno);
	else if (S_ISDIR(st.st_mode))
		why = strerror(EISDIR);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	if (why != NULL) {
		if (inc != NULL)
			config_err(ld, inc->val, inc->where, "%s: %s", path, why);
		else
			config_note(ld, path, 0, 0, "%s", why);
		if (fp != NULL)
			fclose(fp);
		return;
	}
	if ((name = config_add_file(ld, path)) == NULL) {
		config_note(ld, path, 0, 0, "out of memory");
		fclose(fp);
		return;
	}

	ld->file = name;
	ld->included = included;
	if (!yaml_parser_initialize(&parser)) {
		config_note(ld, name, 0, 0, "out of memory");
		goto done;
	}
	yaml_parser_set_input_file(&parser, fp);
	if (!yaml_parser_load(&parser, &doc)) {
		config_yaml_err(ld, &parser, fp);
		yaml_parser_delete(&parser);
		goto done;
	}
	ld->doc = &doc;
	root = yaml_document_get_root_node(&doc);
	config_top(ld, root);

	/* Anything after the first document would be ignored silently. */
	if (root != NULL) {
		if (!yaml_parser_load(&parser, &more))
			config_yaml_err(ld, &parser, fp);
		else {
			if ((root = yaml_document_get_root_node(&more)) != NULL)
				config_err(ld, root, "", "only one YAML document is allowed in a file");
			yaml_document_delete(&more);
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
done:
	fclose(fp);
	ld->file = saved_file;
	ld->doc = saved_doc;
	ld->included = saved_included;
}

int
mg_config_load(const char *path, struct mg_config **out, struct mg_diag *diag)
{
	struct config_load ld;
	struct mg_config *cfg;

	*out = NULL;
	memset(&ld, 0, sizeof(ld));
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL || (cfg->path = strdup(path)) == NULL) {
		free(cfg);
		mg_diag_add(diag, path, 0, 0, "out of memory");
		return -1;
	}
	cfg->timeout_login = MG_CFG_TIMEOUT_LOGIN;
	cfg->timeout_idle = MG_CFG_TIMEOUT_IDLE;
	cfg->timeout_connect = MG_CFG_TIMEOUT_CONNECT;
	cfg->timeout_shutdown = MG_CFG_TIMEOUT_SHUTDOWN;
	cfg->timeout_reuse = MG_CFG_TIMEOUT_REUSE;
	config_defaults(cfg, config_limit_settings, LIMIT_N);
	config_defaults(cfg, config_bf_settings, BF_N);
	cfg->poll_interval = MG_CFG_POLL_INTERVAL;
	cfg->auth_cache_ttl = MG_CFG_CACHE_TTL;

	ld.cfg = cfg;
	ld.diag = diag;
	ld.file = cfg->path;
	config_file(&ld, path, NULL, 0);
	if (config_default_device_key(cfg) == -1)
		config_note(&ld, cfg->path, 0, 0, "out of memory");
	free(ld.lpos);
	free(ld.ppos);
	config_flush(&ld);
	if (ld.nerr > 0) {
		mg_config_free(cfg);
		return -1;
	}
	*out = cfg;
	return 0;
}

static void
config_path_free(struct mg_cfg_path *p)
{
	free(p->path);
	memset(p, 0, sizeof(*p));
}

void
mg_config_free(struct mg_config *cfg)
{
	size_t	 i;

	if (cfg == NULL)
		return;
	config_path_free(&cfg->tls_cert);
	config_path_free(&cfg->tls_key);
	config_path_free(&cfg->store_sqlite);
	config_path_free(&cfg->store_postgres);
	config_path_free(&cfg->master_key);
	config_path_free(&cfg->device_key);
	for (i = 0; i < cfg->nproviders; i++)
		config_path_free(&cfg->providers[i].ca_file);
	free(cfg->providers);
	free(cfg->listen);
	free(cfg->run_user);
	free(cfg->run_group);
	for (i = 0; i < cfg->nfiles; i++)
		free(cfg->files[i]);
	free(cfg->files);
	free(cfg->path);
	free(cfg);
}

const struct mg_provider_cfg *
mg_config_provider(const struct mg_config *cfg, const char *name)
{
	size_t	 i;

	for (i = 0; i < cfg->nproviders; i++)
		if (strcmp(cfg->providers[i].name, name) == 0)
			return &cfg->providers[i];
	return NULL;
}

/*
 * Checking the files named
 */

/* Reports "where: path: message" at the position of the setting p. */
static void
config_file_err(struct mg_diag *diag, const struct mg_cfg_path *p, const char *where, const char *path,
    const char *fmt, ...)
{
	char	 msg[512];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mg_diag_add(diag, p->file, p->line, p->col, "%s: %s: %s", where, path, msg);
}

/* Opens a regular file for reading; NULL after reporting why not. */
static FILE *
config_fopen(struct mg_diag *diag, const struct mg_cfg_path *p, const char *where)
{
	struct stat st;
	FILE	*fp;

	if (stat(p->path, &st) == -1) {
		config_file_err(diag, p, where, p->path, "%s", strerror(errno));
		return NULL;
	}
	if (S_ISDIR(st.st_mode)) {
		config_file_err(diag, p, where, p->path, "%s", strerror(EISDIR));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		config_file_err(diag, p, where, p->path, "not a regular file");
		return NULL;
	}
	if ((fp = fopen(p->path, "r")) == NULL)
		config_file_err(diag, p, where, p->path, "%s", strerror(errno));
	return fp;
}

/*
 * Answers OpenSSL's request for a passphrase with a refusal: a check must
 * never stop to prompt, and the gateway could not answer either.
 */
static int
config_nopass_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	*(int *)u = 1;
	return -1;
}

static int
config_check_tls(const struct mg_config *cfg, struct mg_diag *diag)
{
	X509	*cert = NULL;
	EVP_PKEY *key = NULL;
	FILE	*fp;
	int	 n = 0, asked = 0;

	if (cfg->tls_cert.path != NULL) {
		if ((fp = config_fopen(diag, &cfg->tls_cert, "tls.certificate")) == NULL)
			n++;
		else {
			ERR_clear_error();
			if ((cert = PEM_read_X509(fp, NULL, NULL, NULL)) == NULL) {
				config_file_err(diag, &cfg->tls_cert, "tls.certificate", cfg->tls_cert.path,
				    "no PEM certificate found");
				n++;
			}
			fclose(fp);
		}
	}
	if (cfg->tls_key.path != NULL) {
		if ((fp = config_fopen(diag, &cfg->tls_key, "tls.key")) == NULL)
			n++;
		else {
			ERR_clear_error();
			if ((key = PEM_read_PrivateKey(fp, NULL, config_nopass_cb, &asked)) == NULL) {
				config_file_err(diag, &cfg->tls_key, "tls.key", cfg->tls_key.path, "%s",
				    asked ? "the key is encrypted; mailgate needs it without a passphrase" :
				    "no PEM private key found");
				n++;
			}
			fclose(fp);
		}
	}
	if (cert != NULL && key != NULL) {
		ERR_clear_error();
		if (X509_check_private_key(cert, key) != 1) {
			config_file_err(diag, &cfg->tls_key, "tls.key", cfg->tls_key.path,
			    "does not match the certificate in %s", cfg->tls_cert.path);
			n++;
		}
	}
	ERR_clear_error();
	X509_free(cert);
	EVP_PKEY_free(key);
	return n;
}

static int
config_check_store(const struct mg_config *cfg, struct mg_diag *diag)
{
	const struct mg_cfg_path *p;
	struct stat st;
	const char *slash;
	char	*dir;
	int	 n = 0;

	/* The database itself may not exist yet: SQLite creates it. */
	p = &cfg->store_sqlite;
	if (p->path != NULL) {
		if ((slash = strrchr(p->path, '/')) == NULL)
			dir = strdup(".");
		else if (slash == p->path)
			dir = strdup("/");
		else
			dir = strndup(p->path, (size_t)(slash - p->path));
		if (dir == NULL) {
			config_file_err(diag, p, "store.sqlite", p->path, "out of memory");
			n++;
		} else if (stat(dir, &st) == -1) {
			config_file_err(diag, p, "store.sqlite", dir, "%s", strerror(errno));
			n++;
		} else if (!S_ISDIR(st.st_mode)) {
			config_file_err(diag, p, "store.sqlite", dir, "%s", strerror(ENOTDIR));
			n++;
		} else if (stat(p->path, &st) == 0 && !S_ISREG(st.st_mode)) {
			config_file_err(diag, p, "store.sqlite", p->path, "not a regular file");
			n++;
		}
		free(dir);
	}

	/* A PostgreSQL store has nothing on disk; its server is not contacted here. */
	n += config_check_key(&cfg->master_key, "store.master_key", diag);
	n += config_check_key(&cfg->device_key, "store.device_key", diag);
	return n;
}

/*
 * A key file must exist and be a regular file; its permissions and size
 * are checked when it is loaded. `mailgate init` creates both keys.
 */
static int
config_check_key(const struct mg_cfg_path *p, const char *where, struct mg_diag *diag)
{
	struct stat st;

	if (p->path == NULL)
		return 0;
	if (stat(p->path, &st) == -1) {
		config_file_err(diag, p, where, p->path, "%s", strerror(errno));
		return 1;
	}
	if (!S_ISREG(st.st_mode)) {
		config_file_err(diag, p, where, p->path, "not a regular file");
		return 1;
	}
	return 0;
}

static int
config_check_ca(const struct mg_provider_cfg *prov, struct mg_diag *diag)
{
	char	 where[MG_CFG_WHERE_MAX];
	X509	*cert;
	FILE	*fp;
	int	 n = 0;

	if (prov->ca_file.path == NULL)
		return 0;
	snprintf(where, sizeof(where), "providers.%s.ca_file", prov->name);
	if ((fp = config_fopen(diag, &prov->ca_file, where)) == NULL)
		return 1;
	ERR_clear_error();
	if ((cert = PEM_read_X509(fp, NULL, NULL, NULL)) == NULL) {
		config_file_err(diag, &prov->ca_file, where, prov->ca_file.path, "no PEM certificate found");
		n++;
	}
	ERR_clear_error();
	X509_free(cert);
	fclose(fp);
	return n;
}

int
mg_config_check_files(const struct mg_config *cfg, struct mg_diag *diag)
{
	size_t	 i;
	int	 n;

	n = config_check_tls(cfg, diag);
	n += config_check_store(cfg, diag);
	for (i = 0; i < cfg->nproviders; i++)
		n += config_check_ca(&cfg->providers[i], diag);
	n += config_check_ids(cfg, diag);
	return n;
}

/*
 * The user and group to run as must exist here: the gateway looks them up
 * only after binding its listeners, too late to say which line is wrong.
 * getpwnam_r()/getgrnam_r() with a buffer that grows while they ask for
 * more, so that a group with many members is not taken for a failure.
 */
static int
config_check_ids(const struct mg_config *cfg, struct mg_diag *diag)
{
	const struct mg_cfg_pos *pos;
	struct passwd pw, *pwp;
	struct group gr, *grp;
	const char *name, *what;
	char	*buf = NULL, *nbuf;
	size_t	 bufsz;
	long	 hint;
	int	 i, rc, n = 0;

	for (i = 0; i < 2; i++) {
		name = i == 0 ? cfg->run_user : cfg->run_group;
		pos = i == 0 ? &cfg->run_user_pos : &cfg->run_group_pos;
		what = i == 0 ? "user" : "group";
		if (name == NULL)
			continue;
		hint = sysconf(i == 0 ? _SC_GETPW_R_SIZE_MAX : _SC_GETGR_R_SIZE_MAX);
		bufsz = hint > 0 ? (size_t)hint : 1024;
		pwp = NULL;
		grp = NULL;
		for (;;) {
			if ((nbuf = realloc(buf, bufsz)) == NULL) {
				rc = ENOMEM;
				break;
			}
			buf = nbuf;
			if (i == 0)
				rc = getpwnam_r(name, &pw, buf, bufsz, &pwp);
			else
				rc = getgrnam_r(name, &gr, buf, bufsz, &grp);
			if (rc != ERANGE || bufsz >= 1024 * 1024)
				break;
			bufsz *= 2;
		}
		/* Not found is 0 with no result; some systems say ENOENT or ESRCH instead. */
		if (rc == 0 && pwp == NULL && grp == NULL)
			rc = ENOENT;
		if (rc == ENOENT || rc == ESRCH) {
			mg_diag_add(diag, pos->file, pos->line, pos->col, "%s: %s: no such %s on this machine",
			    what, name, what);
			n++;
		} else if (rc != 0) {
			mg_diag_add(diag, pos->file, pos->line, pos->col, "%s: %s: cannot look it up: %s",
			    what, name, strerror(rc));
			n++;
		}
	}
	free(buf);
	return n;
}
