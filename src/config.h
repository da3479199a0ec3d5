/*
 * config.h - the gateway's configuration, loaded from YAML.
 *
 * The loader is a library: it never logs and never exits. Every problem it
 * finds is appended to a struct mg_diag as one "FILE:LINE:COL: message"
 * line, so that `mailgate check` can print all of them at once and
 * `mailgate run` can refuse to start with the same text.
 */
#ifndef MG_CONFIG_H
#define MG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum mg_proto {
	MG_PROTO_IMAP = 0,
	MG_PROTO_POP3,
	MG_PROTO_SMTP,
	MG_PROTO_COUNT
};

/* How TLS is started on a connection. There is no plaintext mode on purpose. */
enum mg_tls_mode {
	MG_TLS_IMPLICIT = 0,	/* TLS from the first byte (993, 995, 465) */
	MG_TLS_STARTTLS		/* plaintext greeting, then STARTTLS/STLS */
};

/* Collected diagnostics: zero or more lines, each ending in '\n'. */
struct mg_diag {
	char	*text;		/* malloc'd, NUL-terminated, or NULL when empty */
	size_t	 len;		/* strlen(text) */
	int	 count;		/* number of lines */
};

/* A path from the config, with the position of its value for messages. */
struct mg_cfg_path {
	char	*path;		/* malloc'd; relative paths already resolved against the config file's directory; NULL if unset */
	const char *file;	/* file the value came from (points into mg_config.files) */
	int	 line;		/* 1-based position of the value */
	int	 col;
};

/* Where a value was written, for messages about it found after loading. */
struct mg_cfg_pos {
	const char *file;	/* file the value came from (points into mg_config.files); NULL when unset */
	int	 line;		/* 1-based position of the value */
	int	 col;
};

struct mg_listen_cfg {
	enum mg_proto		 proto;
	enum mg_tls_mode	 tls;
	char			 address[80];	/* as written, e.g. "0.0.0.0:993" or "[::1]:143" */
	struct sockaddr_storage	 addr;		/* parsed numeric address and port */
	socklen_t		 addrlen;
};

/* One protocol's endpoint at a provider. */
struct mg_endpoint_cfg {
	int			 present;	/* 0 when the provider has no such endpoint */
	char			 host[256];	/* DNS name or literal address; also the TLS name checked */
	uint16_t		 port;
	enum mg_tls_mode	 tls;
};

struct mg_provider_cfg {
	char			 name[64];		/* the key under providers: */
	struct mg_endpoint_cfg	 ep[MG_PROTO_COUNT];	/* indexed by enum mg_proto */
	struct mg_cfg_path	 ca_file;		/* optional; NULL path means the system store */
};

struct mg_config {
	char			*path;		/* the main file, as given */
	char			**files;	/* every file read (main + includes), malloc'd strings */
	size_t			 nfiles;

	struct mg_listen_cfg	*listen;	/* malloc'd array */
	size_t			 nlisten;

	struct mg_cfg_path	 tls_cert;	/* PEM certificate chain presented to devices */
	struct mg_cfg_path	 tls_key;	/* PEM private key */

	struct mg_cfg_path	 store_sqlite;	/* SQLite database file; NULL path when store_postgres is set */
	struct mg_cfg_path	 store_postgres;/* libpq connection string (in .path, never resolved); NULL when sqlite */
	struct mg_cfg_path	 master_key;	/* 32 random bytes, mode 0600 */
	struct mg_cfg_path	 device_key;	/* the device password key; default "device.key" beside master_key
						   (then positioned at master_key's value) */
	unsigned		 poll_interval;	/* seconds between checks of the store generation (default 2) */
	unsigned		 auth_cache_ttl;/* seconds a verified login is cached; 0: no cache (default 60) */

	unsigned		 timeout_login;		/* seconds before authentication (default 60) */
	unsigned		 timeout_idle;		/* seconds of silence after login (default 1800) */
	unsigned		 timeout_connect;	/* seconds for upstream connect+TLS+login (default 30) */
	unsigned		 timeout_shutdown;	/* seconds live sessions may finish after SIGTERM
						   (0-3600, default 30) */
	unsigned		 timeout_reuse;		/* seconds an IMAP provider connection stays logged in
						   after the device's LOGOUT, for the account's next
						   login (0-3600, 0: never kept; default 60) */

	/*
	 * Whom to run as once the listeners are bound and the files opened.
	 * Names as written, never numbers; mg_config_check_files() checks that
	 * they exist. run_group without run_user is refused by the loader; a
	 * NULL run_group with a run_user means that user's primary group.
	 */
	char			*run_user;	/* malloc'd; NULL: stay who started the gateway */
	char			*run_group;	/* malloc'd; NULL: run_user's primary group */
	struct mg_cfg_pos	 run_user_pos;	/* where run_user was written (file NULL when unset) */
	struct mg_cfg_pos	 run_group_pos;	/* where run_group was written (file NULL when unset) */

	/* limits: what one gateway and one client may hold (defaults in config.c). */
	unsigned		 max_connections;	/* client connections in all (1-1000000, default 10000) */
	unsigned		 max_connections_per_ip;/* per client address (1-1000000, default 100) */
	unsigned		 max_sessions_per_user;	/* logged-in sessions per gateway user (1-100000, default 50) */
	unsigned		 line_max[MG_PROTO_COUNT];/* longest command line before login, bytes, indexed by
							   enum mg_proto (512-16384; default imap 4096, pop3 2048,
							   smtp 12288 for RFC 4954 AUTH lines) */
	unsigned		 literal_max;		/* largest IMAP literal or SASL response before login,
							   bytes (64-8191, default 1024) */

	/*
	 * brute_force: failed logins are counted per client address and per
	 * user over bf_window; past bf_delay_after of them failure replies are
	 * delayed (up to bf_max_delay), and an address with bf_block_after
	 * failures is refused for bf_block_time. bf_block_after >= bf_delay_after.
	 */
	unsigned		 bf_delay_after;	/* failures before replies slow down (1-1000, default 3) */
	unsigned		 bf_max_delay;		/* seconds, longest delay of a failure reply (0-60, default 8) */
	unsigned		 bf_block_after;	/* failures from one address before it is blocked
						   (1-100000, default 20) */
	unsigned		 bf_block_time;		/* seconds an address stays blocked (1-86400, default 600) */
	unsigned		 bf_window;		/* seconds after which a failure is forgotten (1-86400, default 900) */

	struct mg_provider_cfg	*providers;	/* malloc'd array */
	size_t			 nproviders;
};

/*
 * Loads and validates `path` (and the files it includes). Returns 0 and sets
 * *out on success; returns -1 with every problem appended to diag otherwise
 * (*out is then NULL). Does not check that referenced files exist: see
 * mg_config_check_files().
 */
int mg_config_load(const char *path, struct mg_config **out, struct mg_diag *diag);

/*
 * Checks what the config names on this machine: that the files exist and
 * are readable: the TLS certificate and key (and that they parse and
 * match), the master key and the device key, each provider's ca_file, and
 * the directory of the SQLite store (a PostgreSQL store has nothing on disk
 * to check); and that the user and group to run as exist. Returns the
 * number of problems appended to diag (0 when all is well).
 */
int mg_config_check_files(const struct mg_config *cfg, struct mg_diag *diag);

void mg_config_free(struct mg_config *cfg);

/* Looks a provider up by name; NULL when unknown. */
const struct mg_provider_cfg *mg_config_provider(const struct mg_config *cfg, const char *name);

const char *mg_proto_name(enum mg_proto p);	/* "imap", "pop3", "smtp" */

/* Appends one formatted line to diag (a '\n' is added). */
void mg_diag_add(struct mg_diag *diag, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void mg_diag_free(struct mg_diag *diag);

#endif
