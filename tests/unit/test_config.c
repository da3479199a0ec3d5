/*
 * test_config.c - the YAML loader and the file checks.
 *
 * Every test runs in a fresh temporary directory that is also the current
 * directory, so the configs are written as "c.yaml" and the messages they
 * produce can be compared byte for byte. The error cases form a table:
 * each is its own test, named after the case, and states the exact
 * "FILE:LINE:COL: message" lines it must produce.
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "config.h"

/*
 * The smallest valid start, four lines; error cases add from line 5, either
 * top-level keys or more listeners.
 */
#define HEAD \
	"tls: { certificate: c.pem, key: k.pem }\n" \
	"store: { sqlite: s.db, master_key: m.key }\n" \
	"listen:\n" \
	"  - { protocol: imap, address: \"127.0.0.1:993\" }\n"

static char	test_tmp[64];		/* this test's directory */
static char	test_cwd[4096];		/* where to go back to (PATH_MAX on Linux) */
static char	last_diag[8192];	/* the last diagnostics, for messages */

/*
 * Fixtures
 */

static int
test_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
test_setup(void **state)
{
	(void)state;
	snprintf(test_tmp, sizeof(test_tmp), "/tmp/mg_test_config.XXXXXX");
	if (getcwd(test_cwd, sizeof(test_cwd)) == NULL || mkdtemp(test_tmp) == NULL ||
	    chdir(test_tmp) == -1)
		return -1;
	return 0;
}

static int
test_teardown(void **state)
{
	(void)state;
	if (chdir(test_cwd) == -1)
		return -1;
	return nftw(test_tmp, test_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes a file, making its directories. */
static void
put(const char *path, const char *text)
{
	char	 dir[256], *p;
	FILE	*fp;

	snprintf(dir, sizeof(dir), "%s", path);
	for (p = strchr(dir, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		assert_true(mkdir(dir, 0755) == 0 || errno == EEXIST);
		*p = '/';
	}
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* Loads a file that must be valid; prints the diagnostics when it is not. */
static struct mg_config *
load_ok(const char *path)
{
	struct mg_diag	 diag = { 0 };
	struct mg_config *cfg = NULL;
	int		 rc;

	rc = mg_config_load(path, &cfg, &diag);
	if (rc != 0 || diag.count != 0)
		print_error("unexpected diagnostics:\n%s", diag.text != NULL ? diag.text : "(none)\n");
	assert_int_equal(rc, 0);
	assert_int_equal(diag.count, 0);
	assert_null(diag.text);
	assert_non_null(cfg);
	return cfg;
}

/* Loads a file that must fail; returns its diagnostics (in last_diag). */
static const char *
load_bad(const char *path)
{
	struct mg_diag	 diag = { 0 };
	struct mg_config *cfg = (struct mg_config *)&diag;
	int		 rc;

	rc = mg_config_load(path, &cfg, &diag);
	assert_int_equal(rc, -1);
	assert_null(cfg);
	assert_non_null(diag.text);
	assert_int_equal(strlen(diag.text), diag.len);
	snprintf(last_diag, sizeof(last_diag), "%s", diag.text);
	mg_diag_free(&diag);
	return last_diag;
}

static const struct sockaddr_in *
sin4(const struct mg_listen_cfg *l)
{
	assert_int_equal(l->addr.ss_family, AF_INET);
	assert_int_equal(l->addrlen, sizeof(struct sockaddr_in));
	return (const struct sockaddr_in *)&l->addr;
}

static const struct sockaddr_in6 *
sin6(const struct mg_listen_cfg *l)
{
	assert_int_equal(l->addr.ss_family, AF_INET6);
	assert_int_equal(l->addrlen, sizeof(struct sockaddr_in6));
	return (const struct sockaddr_in6 *)&l->addr;
}

static void
assert_path(const struct mg_cfg_path *p, const char *path, const char *file, int line, int col)
{
	assert_non_null(p->path);
	assert_string_equal(p->path, path);
	assert_non_null(p->file);
	assert_string_equal(p->file, file);
	assert_int_equal(p->line, line);
	assert_int_equal(p->col, col);
}

/*
 * Good configurations
 */

static const char good_block[] =
    "# The same configuration as good_flow, in block style.\n"
    "listen:\n"
    "  - protocol: imap\n"
    "    address: \"0.0.0.0:993\"\n"
    "    tls: implicit\n"
    "  - protocol: imap\n"
    "    address: \"[::1]:143\"\n"
    "    tls: starttls\n"
    "  - protocol: smtp\n"
    "    address: 127.0.0.1:465\n"
    "tls:\n"
    "  certificate: cert.pem\n"
    "  key: /etc/mailgate/key.pem\n"
    "store:\n"
    "  sqlite: ../var/store.db\n"
    "  master_key: 'keys/master.key'\n"
    "providers:\n"
    "  acme:\n"
    "    imap: { host: imap.acme.example, port: 993 }\n"
    "    smtp:\n"
    "      host: smtp.acme.example\n"
    "      port: \"587\"\n"
    "      tls: starttls\n"
    "    ca_file: ca/acme.pem\n"
    "  Other_1.x-y:\n"
    "    pop3: { host: 192.0.2.7, port: 995, tls: implicit }\n";

static const char good_flow[] =
    "{ listen: [ { protocol: imap, address: \"0.0.0.0:993\", tls: implicit },\n"
    "            { protocol: imap, address: \"[::1]:143\", tls: starttls },\n"
    "            { protocol: smtp, address: 127.0.0.1:465 } ],\n"
    "  tls: { certificate: cert.pem, key: /etc/mailgate/key.pem },\n"
    "  store: { sqlite: ../var/store.db, master_key: 'keys/master.key' },\n"
    "  providers: { acme: { imap: { host: imap.acme.example, port: 993 },\n"
    "                       smtp: { host: smtp.acme.example, port: \"587\", tls: starttls },\n"
    "                       ca_file: ca/acme.pem },\n"
    "               Other_1.x-y: { pop3: { host: 192.0.2.7, port: 995, tls: implicit } } } }\n";

/* Checks what good_block and good_flow both say, whatever the positions. */
static void
check_good(const struct mg_config *cfg, const char *file)
{
	const struct mg_provider_cfg *p;
	struct in6_addr loop6 = IN6ADDR_LOOPBACK_INIT;

	assert_string_equal(cfg->path, file);
	assert_int_equal(cfg->nfiles, 1);
	assert_string_equal(cfg->files[0], file);

	assert_int_equal(cfg->nlisten, 3);
	assert_int_equal(cfg->listen[0].proto, MG_PROTO_IMAP);
	assert_int_equal(cfg->listen[0].tls, MG_TLS_IMPLICIT);
	assert_string_equal(cfg->listen[0].address, "0.0.0.0:993");
	assert_int_equal(sin4(&cfg->listen[0])->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(ntohs(sin4(&cfg->listen[0])->sin_port), 993);

	assert_int_equal(cfg->listen[1].proto, MG_PROTO_IMAP);
	assert_int_equal(cfg->listen[1].tls, MG_TLS_STARTTLS);
	assert_string_equal(cfg->listen[1].address, "[::1]:143");
	assert_memory_equal(&sin6(&cfg->listen[1])->sin6_addr, &loop6, sizeof(loop6));
	assert_int_equal(ntohs(sin6(&cfg->listen[1])->sin6_port), 143);

	/* tls defaults to implicit. */
	assert_int_equal(cfg->listen[2].proto, MG_PROTO_SMTP);
	assert_int_equal(cfg->listen[2].tls, MG_TLS_IMPLICIT);
	assert_int_equal(sin4(&cfg->listen[2])->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	assert_int_equal(ntohs(sin4(&cfg->listen[2])->sin_port), 465);

	/* Relative paths follow the file's directory; absolute ones stay. */
	assert_string_equal(cfg->tls_cert.path, "etc/cert.pem");
	assert_string_equal(cfg->tls_key.path, "/etc/mailgate/key.pem");
	assert_string_equal(cfg->store_sqlite.path, "etc/../var/store.db");
	assert_string_equal(cfg->master_key.path, "etc/keys/master.key");
	assert_ptr_equal(cfg->tls_cert.file, cfg->files[0]);
	assert_null(cfg->store_postgres.path);

	/* Defaults. */
	assert_int_equal(cfg->timeout_login, 60);
	assert_int_equal(cfg->timeout_idle, 1800);
	assert_int_equal(cfg->timeout_connect, 30);
	assert_int_equal(cfg->poll_interval, 2);
	assert_int_equal(cfg->auth_cache_ttl, 60);
	/* The device key sits beside the master key, and is reported where that one is. */
	assert_string_equal(cfg->device_key.path, "etc/keys/device.key");
	assert_ptr_equal(cfg->device_key.file, cfg->master_key.file);
	assert_int_equal(cfg->device_key.line, cfg->master_key.line);
	assert_int_equal(cfg->device_key.col, cfg->master_key.col);

	assert_int_equal(cfg->nproviders, 2);
	assert_non_null(p = mg_config_provider(cfg, "acme"));
	assert_string_equal(p->name, "acme");
	assert_true(p->ep[MG_PROTO_IMAP].present);
	assert_string_equal(p->ep[MG_PROTO_IMAP].host, "imap.acme.example");
	assert_int_equal(p->ep[MG_PROTO_IMAP].port, 993);
	assert_int_equal(p->ep[MG_PROTO_IMAP].tls, MG_TLS_IMPLICIT);
	assert_false(p->ep[MG_PROTO_POP3].present);
	assert_true(p->ep[MG_PROTO_SMTP].present);
	assert_string_equal(p->ep[MG_PROTO_SMTP].host, "smtp.acme.example");
	assert_int_equal(p->ep[MG_PROTO_SMTP].port, 587);
	assert_int_equal(p->ep[MG_PROTO_SMTP].tls, MG_TLS_STARTTLS);
	assert_string_equal(p->ca_file.path, "etc/ca/acme.pem");

	assert_non_null(p = mg_config_provider(cfg, "Other_1.x-y"));
	assert_false(p->ep[MG_PROTO_IMAP].present);
	assert_true(p->ep[MG_PROTO_POP3].present);
	assert_string_equal(p->ep[MG_PROTO_POP3].host, "192.0.2.7");
	assert_int_equal(p->ep[MG_PROTO_POP3].port, 995);
	assert_null(p->ca_file.path);

	assert_null(mg_config_provider(cfg, "nope"));
	assert_null(mg_config_provider(cfg, "ACME"));
}

static void
test_good_block(void **state)
{
	struct mg_config *cfg;

	(void)state;
	put("etc/block.yaml", good_block);
	cfg = load_ok("etc/block.yaml");
	check_good(cfg, "etc/block.yaml");
	assert_path(&cfg->tls_cert, "etc/cert.pem", "etc/block.yaml", 12, 16);
	assert_path(&cfg->master_key, "etc/keys/master.key", "etc/block.yaml", 16, 15);
	assert_path(&cfg->providers[0].ca_file, "etc/ca/acme.pem", "etc/block.yaml", 24, 14);
	mg_config_free(cfg);
}

static void
test_good_flow(void **state)
{
	struct mg_config *cfg;

	(void)state;
	put("etc/flow.yaml", good_flow);
	cfg = load_ok("etc/flow.yaml");
	check_good(cfg, "etc/flow.yaml");
	assert_path(&cfg->tls_cert, "etc/cert.pem", "etc/flow.yaml", 4, 23);
	assert_path(&cfg->master_key, "etc/keys/master.key", "etc/flow.yaml", 5, 49);
	mg_config_free(cfg);
}

/* A file named without a directory: its relative paths stay as written. */
static void
test_good_no_dir(void **state)
{
	struct mg_config *cfg;

	(void)state;
	put("c.yaml", HEAD);
	cfg = load_ok("c.yaml");
	assert_string_equal(cfg->tls_cert.path, "c.pem");
	assert_string_equal(cfg->store_sqlite.path, "s.db");
	assert_int_equal(cfg->nproviders, 0);
	assert_null(cfg->providers);
	mg_config_free(cfg);
}

static void
test_good_include(void **state)
{
	struct mg_config *cfg;
	const struct mg_provider_cfg *p;

	(void)state;
	put("etc/main.yaml", HEAD
	    "include:\n"
	    "  - presets/providers.yaml\n"
	    "  - presets/empty.yaml\n"
	    "  - presets/none.yaml\n"
	    "providers:\n"
	    "  mine: { imap: { host: imap.mine.example, port: 993 }, ca_file: mine.pem }\n");
	put("etc/presets/providers.yaml",
	    "providers:\n"
	    "  gmail:\n"
	    "    imap: { host: imap.gmail.com, port: 993 }\n"
	    "    ca_file: ../ca/google.pem\n");
	put("etc/presets/empty.yaml", "# every preset commented out\n");
	put("etc/presets/none.yaml", "providers:\n");
	cfg = load_ok("etc/main.yaml");

	assert_int_equal(cfg->nfiles, 4);
	assert_string_equal(cfg->files[0], "etc/main.yaml");
	assert_string_equal(cfg->files[1], "etc/presets/providers.yaml");
	assert_string_equal(cfg->files[2], "etc/presets/empty.yaml");
	assert_string_equal(cfg->files[3], "etc/presets/none.yaml");

	assert_int_equal(cfg->nproviders, 2);
	assert_non_null(p = mg_config_provider(cfg, "gmail"));
	assert_string_equal(p->ep[MG_PROTO_IMAP].host, "imap.gmail.com");
	/* Relative to the included file, and positioned in it. */
	assert_path(&p->ca_file, "etc/presets/../ca/google.pem", "etc/presets/providers.yaml", 4, 14);
	assert_ptr_equal(p->ca_file.file, cfg->files[1]);
	assert_non_null(p = mg_config_provider(cfg, "mine"));
	assert_path(&p->ca_file, "etc/mine.pem", "etc/main.yaml", 10, 66);
	mg_config_free(cfg);
}

static void
test_good_timeouts(void **state)
{
	struct mg_config *cfg;

	(void)state;
	put("a.yaml", HEAD "timeouts: { login: 90, idle: 30m, connect: 45s }\n");
	cfg = load_ok("a.yaml");
	assert_int_equal(cfg->timeout_login, 90);
	assert_int_equal(cfg->timeout_idle, 1800);
	assert_int_equal(cfg->timeout_connect, 45);
	mg_config_free(cfg);

	/* The largest values allowed, and a partial section. */
	put("b.yaml", HEAD "timeouts:\n  login: 1h\n  idle: 24h\n  connect: 10m\n");
	cfg = load_ok("b.yaml");
	assert_int_equal(cfg->timeout_login, 3600);
	assert_int_equal(cfg->timeout_idle, 86400);
	assert_int_equal(cfg->timeout_connect, 600);
	mg_config_free(cfg);

	put("c.yaml", HEAD "timeouts:\n  idle: 1s\n");
	cfg = load_ok("c.yaml");
	assert_int_equal(cfg->timeout_login, 60);
	assert_int_equal(cfg->timeout_idle, 1);
	assert_int_equal(cfg->timeout_connect, 30);
	mg_config_free(cfg);

	put("d.yaml", HEAD "timeouts:\n");
	cfg = load_ok("d.yaml");
	assert_int_equal(cfg->timeout_idle, 1800);
	mg_config_free(cfg);
}

/* store.postgres instead of store.sqlite: a connection string, taken as written. */
static void
test_good_postgres(void **state)
{
	struct mg_config *cfg;

	(void)state;
	put("etc/a.yaml",
	    "listen:\n"
	    "  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	    "tls: { certificate: c.pem, key: k.pem }\n"
	    "store:\n"
	    "  postgres: \"host=db.example port=5432 dbname=mailgate user=mailgate sslmode=verify-full\"\n"
	    "  master_key: m.key\n"
	    "  device_key: keys/dev.key\n"
	    "  poll_interval: 1m\n"
	    "auth:\n"
	    "  cache_ttl: 0\n");
	cfg = load_ok("etc/a.yaml");
	assert_null(cfg->store_sqlite.path);
	/* Not a path: never resolved against the file's directory. */
	assert_path(&cfg->store_postgres,
	    "host=db.example port=5432 dbname=mailgate user=mailgate sslmode=verify-full", "etc/a.yaml", 5, 13);
	assert_path(&cfg->device_key, "etc/keys/dev.key", "etc/a.yaml", 7, 15);
	assert_int_equal(cfg->poll_interval, 60);
	assert_int_equal(cfg->auth_cache_ttl, 0);
	mg_config_free(cfg);

	/* A URI, flow style, the smallest poll interval and the longest cache. */
	put("b.yaml", "listen: [ { protocol: imap, address: \"127.0.0.1:993\" } ]\n"
	    "tls: { certificate: c.pem, key: k.pem }\n"
	    "store: { postgres: \"postgresql://mailgate@db.example/mailgate?connect_timeout=5\","
	    " master_key: /etc/mailgate/master.key, poll_interval: 1s }\n"
	    "auth: { cache_ttl: 1h }\n");
	cfg = load_ok("b.yaml");
	assert_string_equal(cfg->store_postgres.path,
	    "postgresql://mailgate@db.example/mailgate?connect_timeout=5");
	assert_string_equal(cfg->device_key.path, "/etc/mailgate/device.key");
	assert_int_equal(cfg->poll_interval, 1);
	assert_int_equal(cfg->auth_cache_ttl, 3600);
	mg_config_free(cfg);

	/* An empty auth section keeps the defaults; a master key without a directory. */
	put("c.yaml", HEAD "auth:\n");
	cfg = load_ok("c.yaml");
	assert_int_equal(cfg->auth_cache_ttl, 60);
	assert_string_equal(cfg->device_key.path, "device.key");
	mg_config_free(cfg);
}

/* Ports and addresses at their limits, and YAML features that must just work. */
static void
test_good_edges(void **state)
{
	struct mg_config *cfg;

	(void)state;
	put("c.yaml",
	    "listen:\n"
	    "  - &l { protocol: pop3, address: \"[fe80::1:2]:65535\", tls: starttls }\n"
	    "  - { protocol: pop3, address: \"1.2.3.4:1\" }\n"
	    "  - { protocol: pop3, address: \"[::]:1\" }\n"
	    "  - { protocol: pop3, address: \"[::ffff:1.2.3.4]:2\" }\n"
	    "tls: { certificate: \"a b.pem\", key: k.pem }\n"
	    "store: { sqlite: s.db, master_key: m.key }\n"
	    "providers:\n"
	    "  a: &ep\n"
	    "    smtp: { host: \"xn--bcher-kva.example.\", port: 1 }\n"
	    "  b: *ep\n"
	    "  c: { imap: { host: '" "0123456789012345678901234567890123456789012345678901234567890123"
	    "0123456789012345678901234567890123456789012345678901234567890123"
	    "0123456789012345678901234567890123456789012345678901234567890123"
	    "012345678901234567890123456789012345678901234567890123456789012', port: 65535 } }\n"
	    "  " "012345678901234567890123456789012345678901234567890123456789012: { pop3: { host: a, port: 2 } }\n"
	    "...\n");
	cfg = load_ok("c.yaml");
	assert_int_equal(cfg->nlisten, 4);
	assert_int_equal(ntohs(sin6(&cfg->listen[0])->sin6_port), 65535);
	assert_int_equal(cfg->listen[0].tls, MG_TLS_STARTTLS);
	assert_int_equal(cfg->listen[0].proto, MG_PROTO_POP3);
	assert_int_equal(ntohs(sin4(&cfg->listen[1])->sin_port), 1);
	assert_string_equal(cfg->tls_cert.path, "a b.pem");
	assert_int_equal(cfg->nproviders, 4);
	assert_int_equal(mg_config_provider(cfg, "b")->ep[MG_PROTO_SMTP].port, 1);
	assert_int_equal(strlen(mg_config_provider(cfg, "c")->ep[MG_PROTO_IMAP].host), 255);
	assert_int_equal(mg_config_provider(cfg, "c")->ep[MG_PROTO_IMAP].port, 65535);
	assert_non_null(mg_config_provider(cfg,
	    "012345678901234567890123456789012345678901234567890123456789012"));
	mg_config_free(cfg);
}

/* Checks every limit and brute-force setting at once. */
static void
assert_limits(const struct mg_config *cfg, unsigned conns, unsigned per_ip, unsigned per_user,
    unsigned imap, unsigned pop3, unsigned smtp, unsigned literal)
{
	assert_int_equal(cfg->max_connections, conns);
	assert_int_equal(cfg->max_connections_per_ip, per_ip);
	assert_int_equal(cfg->max_sessions_per_user, per_user);
	assert_int_equal(cfg->line_max[MG_PROTO_IMAP], imap);
	assert_int_equal(cfg->line_max[MG_PROTO_POP3], pop3);
	assert_int_equal(cfg->line_max[MG_PROTO_SMTP], smtp);
	assert_int_equal(cfg->literal_max, literal);
}

static void
assert_bf(const struct mg_config *cfg, unsigned delay_after, unsigned max_delay, unsigned block_after,
    unsigned block_time, unsigned window)
{
	assert_int_equal(cfg->bf_delay_after, delay_after);
	assert_int_equal(cfg->bf_max_delay, max_delay);
	assert_int_equal(cfg->bf_block_after, block_after);
	assert_int_equal(cfg->bf_block_time, block_time);
	assert_int_equal(cfg->bf_window, window);
}

/* Nothing said: no privilege drop, and the documented defaults. */
static void
test_good_limits_defaults(void **state)
{
	struct mg_config *cfg;

	(void)state;
	put("c.yaml", HEAD);
	cfg = load_ok("c.yaml");
	assert_null(cfg->run_user);
	assert_null(cfg->run_group);
	assert_null(cfg->run_user_pos.file);
	assert_null(cfg->run_group_pos.file);
	assert_int_equal(cfg->timeout_shutdown, 30);
	assert_limits(cfg, 10000, 100, 50, 4096, 2048, 12288, 1024);
	assert_bf(cfg, 3, 8, 20, 600, 900);
	mg_config_free(cfg);

	/* Empty sections are the same as none. */
	put("d.yaml", HEAD "limits:\nbrute_force:\ntimeouts:\n");
	cfg = load_ok("d.yaml");
	assert_int_equal(cfg->timeout_shutdown, 30);
	assert_limits(cfg, 10000, 100, 50, 4096, 2048, 12288, 1024);
	assert_bf(cfg, 3, 8, 20, 600, 900);
	mg_config_free(cfg);
}

/* Every new key set, at the lower and at the upper bounds, block and flow style. */
static void
test_good_limits(void **state)
{
	struct mg_config *cfg;

	(void)state;
	put("etc/a.yaml", HEAD
	    "user: mailgate\n"
	    "group: \"mail-gw\"\n"
	    "timeouts:\n"
	    "  shutdown_grace: 0\n"
	    "limits:\n"
	    "  connections: 1\n"
	    "  connections_per_ip: 1\n"
	    "  sessions_per_user: 1\n"
	    "  imap_line: 512\n"
	    "  pop3_line: 512\n"
	    "  smtp_line: 512\n"
	    "  literal: 64\n"
	    "brute_force:\n"
	    "  delay_after: 1\n"
	    "  max_delay: 0\n"
	    "  block_after: 1\n"
	    "  block_time: 1s\n"
	    "  window: 1\n");
	cfg = load_ok("etc/a.yaml");
	assert_string_equal(cfg->run_user, "mailgate");
	assert_string_equal(cfg->run_group, "mail-gw");
	assert_ptr_equal(cfg->run_user_pos.file, cfg->files[0]);
	assert_int_equal(cfg->run_user_pos.line, 5);
	assert_int_equal(cfg->run_user_pos.col, 7);
	assert_ptr_equal(cfg->run_group_pos.file, cfg->files[0]);
	assert_int_equal(cfg->run_group_pos.line, 6);
	assert_int_equal(cfg->run_group_pos.col, 8);
	assert_int_equal(cfg->timeout_shutdown, 0);
	assert_limits(cfg, 1, 1, 1, 512, 512, 512, 64);
	assert_bf(cfg, 1, 0, 1, 1, 1);
	/* The other timeouts keep their defaults. */
	assert_int_equal(cfg->timeout_login, 60);
	mg_config_free(cfg);

	put("b.yaml", HEAD
	    "timeouts: { shutdown_grace: 1h }\n"
	    "limits: { connections: 1000000, connections_per_ip: \"1000000\", sessions_per_user: 100000,\n"
	    "          imap_line: 8192, pop3_line: 16384, smtp_line: 16384, literal: 8191 }\n"
	    "brute_force: { delay_after: 1000, max_delay: 60s, block_after: 100000, block_time: 24h,\n"
	    "               window: 1440m }\n"
	    "user: root\n");
	cfg = load_ok("b.yaml");
	assert_string_equal(cfg->run_user, "root");
	assert_int_equal(cfg->run_user_pos.line, 10);
	assert_int_equal(cfg->run_user_pos.col, 7);
	/* Without a group: the user's primary group, decided at the drop. */
	assert_null(cfg->run_group);
	assert_null(cfg->run_group_pos.file);
	assert_int_equal(cfg->timeout_shutdown, 3600);
	assert_limits(cfg, 1000000, 1000000, 100000, 8192, 16384, 16384, 8191);
	assert_bf(cfg, 1000, 60, 100000, 86400, 86400);
	mg_config_free(cfg);

	/* Partial sections; block_after may equal delay_after; leading zeros and minutes. */
	put("c.yaml", HEAD
	    "limits:\n  smtp_line: 01000\n"
	    "brute_force:\n  delay_after: 7\n  block_after: 7\n  max_delay: 1m\n"
	    "timeouts: { shutdown_grace: 2m }\n"
	    "user: \"_mailgate$\"\ngroup: mail\n");
	cfg = load_ok("c.yaml");
	assert_limits(cfg, 10000, 100, 50, 4096, 2048, 1000, 1024);
	assert_bf(cfg, 7, 60, 7, 600, 900);
	assert_int_equal(cfg->timeout_shutdown, 120);
	assert_string_equal(cfg->run_user, "_mailgate$");
	assert_string_equal(cfg->run_group, "mail");
	mg_config_free(cfg);

	/* delay_after up to the default block_after is fine without block_after. */
	put("d.yaml", HEAD "brute_force: { delay_after: 20 }\n"
	    "user: " "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" "\n");
	cfg = load_ok("d.yaml");
	assert_bf(cfg, 20, 8, 20, 600, 900);
	assert_int_equal(strlen(cfg->run_user), 255);
	mg_config_free(cfg);
}

/*
 * Bad configurations: the exact lines each must produce.
 */

struct bad_case {
	const char	*name;
	const char	*yaml;		/* written to c.yaml */
	const char	*expected;
	const char	*extra_name;	/* an optional second file */
	const char	*extra_yaml;
};

#define BAD(name, yaml, expected)	{ name, yaml, expected, NULL, NULL }
#define BAD2(name, yaml, expected, xname, xyaml) { name, yaml, expected, xname, xyaml }

static const struct bad_case bad_cases[] = {
	BAD("syntax_indent",
	  "listen:\n  - protocol: imap\n   address: x\n",
	  "c.yaml:3:4: syntax error: did not find expected '-' indicator "
	  "(while parsing a block collection at 2:3)\n"),
	BAD("syntax_tab",
	  "listen:\n\t- protocol: imap\n",
	  "c.yaml:2:1: syntax error: found character that cannot start any token "
	  "(while scanning for the next token at 2:1)\n"),
	BAD("syntax_unclosed_flow",
	  "listen: [ { protocol: imap }\ntls: x\n",
	  "c.yaml:2:1: syntax error: did not find expected ',' or ']' (while parsing a flow sequence at 1:9)\n"),
	BAD("syntax_undefined_alias",
	  HEAD "providers: *nope\n",
	  "c.yaml:5:12: syntax error: found undefined alias\n"),
	BAD("syntax_bad_utf8",
	  HEAD "# caf\xe9\n",
	  "c.yaml:5:6: syntax error: incomplete UTF-8 octet sequence\n"),
	BAD("two_documents",
	  HEAD "---\nlisten: []\n",
	  "c.yaml:6:1: only one YAML document is allowed in a file\n"),
	BAD("empty_file",
	  "# nothing here\n",
	  "c.yaml:1:1: missing required key \"listen\"\n"
	  "c.yaml:1:1: missing required key \"tls\"\n"
	  "c.yaml:1:1: missing required key \"store\"\n"),
	BAD("root_not_mapping",
	  "- listen\n",
	  "c.yaml:1:1: expected a mapping, got a sequence\n"),
	BAD("unknown_top_key_hint",
	  HEAD "provider:\n  a: { imap: { host: a, port: 1 } }\n",
	  "c.yaml:5:1: unknown key \"provider\" (did you mean \"providers\"?)\n"),
	BAD("unknown_top_key",
	  HEAD "frobnicate: 1\n",
	  "c.yaml:5:1: unknown key \"frobnicate\"\n"),
	BAD("unknown_key_quoted",
	  HEAD "\"we\\tird\\\"\": 1\n",
	  "c.yaml:5:1: unknown key \"we\\x09ird\\\"\"\n"),
	BAD("non_scalar_key",
	  HEAD "? [a]\n: b\n",
	  "c.yaml:5:3: expected a key name, got a sequence\n"),
	BAD("duplicate_top_key",
	  HEAD "tls: { certificate: c.pem, key: k.pem }\n",
	  "c.yaml:5:1: duplicate key \"tls\" (first at line 1)\n"),
	BAD("listen_mapping",
	  "listen:\n  protocol: imap\n  address: \"0.0.0.0:993\"\n"
	  "tls: { certificate: c.pem, key: k.pem }\nstore: { sqlite: s.db, master_key: m.key }\n",
	  "c.yaml:2:3: listen: expected a sequence, got a mapping\n"),
	BAD("listen_empty",
	  "listen: []\ntls: { certificate: c.pem, key: k.pem }\nstore: { sqlite: s.db, master_key: m.key }\n",
	  "c.yaml:1:9: listen: at least one listener is required\n"),
	BAD("listen_null",
	  "listen:\ntls: { certificate: c.pem, key: k.pem }\nstore: { sqlite: s.db, master_key: m.key }\n",
	  "c.yaml:1:1: listen: expected a sequence, got an empty value\n"),
	BAD("listen_missing",
	  "tls: { certificate: c.pem, key: k.pem }\nstore: { sqlite: s.db, master_key: m.key }\n",
	  "c.yaml:1:1: missing required key \"listen\"\n"),
	BAD("listener_scalar",
	  "listen:\n  - imap\ntls: { certificate: c.pem, key: k.pem }\nstore: { sqlite: s.db, master_key: m.key }\n",
	  "c.yaml:2:5: listen[0]: expected a mapping, got \"imap\"\n"),
	BAD("listener_unknown_key",
	  HEAD "  - { proto: imap, address: \"0.0.0.0:143\", tls: starttls }\n",
	  "c.yaml:5:5: listen[1]: missing required key \"protocol\"\n"
	  "c.yaml:5:7: listen[1]: unknown key \"proto\" (did you mean \"protocol\"?)\n"),
	BAD("listener_missing_address",
	  HEAD "  - protocol: pop3\n    tls: starttls\n",
	  "c.yaml:5:5: listen[1]: missing required key \"address\"\n"),
	BAD("bad_protocol",
	  HEAD "  - { protocol: imaps, address: \"0.0.0.0:143\" }\n",
	  "c.yaml:5:17: listen[1].protocol: \"imaps\": expected imap, pop3 or smtp\n"),
	BAD("bad_protocol_case",
	  HEAD "  - { protocol: IMAP, address: \"0.0.0.0:143\" }\n",
	  "c.yaml:5:17: listen[1].protocol: \"IMAP\": expected imap, pop3 or smtp\n"),
	BAD("protocol_empty",
	  HEAD "  - protocol:\n    address: \"0.0.0.0:143\"\n",
	  "c.yaml:5:5: listen[1].protocol: must not be empty\n"),
	BAD("bad_tls_mode",
	  HEAD "  - { protocol: imap, address: \"0.0.0.0:143\", tls: none }\n",
	  "c.yaml:5:52: listen[1].tls: \"none\": expected implicit or starttls\n"),
	BAD("address_no_port",
	  HEAD "  - { protocol: imap, address: 0.0.0.0 }\n",
	  "c.yaml:5:32: listen[1].address: \"0.0.0.0\": missing \":port\"\n"),
	BAD("address_hostname",
	  HEAD "  - { protocol: imap, address: \"localhost:143\" }\n",
	  "c.yaml:5:32: listen[1].address: \"localhost:143\": \"localhost\" is not a numeric IPv4 address\n"),
	BAD("address_v6_unbracketed",
	  HEAD "  - { protocol: imap, address: \"::1:143\" }\n",
	  "c.yaml:5:32: listen[1].address: \"::1:143\": an IPv6 address must be in brackets, "
	  "as in \"[::1]:993\"\n"),
	BAD("address_v6_bad",
	  HEAD "  - { protocol: imap, address: \"[::g]:143\" }\n",
	  "c.yaml:5:32: listen[1].address: \"[::g]:143\": \"::g\" is not a numeric IPv6 address\n"),
	BAD("address_v6_no_close",
	  HEAD "  - { protocol: imap, address: \"[::1:143\" }\n",
	  "c.yaml:5:32: listen[1].address: \"[::1:143\": missing \"]\" after the IPv6 address\n"),
	BAD("address_v6_no_port",
	  HEAD "  - { protocol: imap, address: \"[::1]\" }\n",
	  "c.yaml:5:32: listen[1].address: \"[::1]\": missing \":port\" after \"]\"\n"),
	BAD("address_v4_in_brackets",
	  HEAD "  - { protocol: imap, address: \"[127.0.0.1]:143\" }\n",
	  "c.yaml:5:32: listen[1].address: \"[127.0.0.1]:143\": \"127.0.0.1\" is not a numeric IPv6 address\n"),
	BAD("address_port_zero",
	  HEAD "  - { protocol: imap, address: \"0.0.0.0:0\" }\n",
	  "c.yaml:5:32: listen[1].address: \"0.0.0.0:0\": the port must be a number from 1 to 65535\n"),
	BAD("address_port_range",
	  HEAD "  - { protocol: imap, address: \"0.0.0.0:65536\" }\n",
	  "c.yaml:5:32: listen[1].address: \"0.0.0.0:65536\": the port must be a number from 1 to 65535\n"),
	BAD("address_port_overflow",
	  HEAD "  - { protocol: imap, address: \"0.0.0.0:18446744073709551617\" }\n",
	  "c.yaml:5:32: listen[1].address: \"0.0.0.0:18446744073709551617\": the port must be a number "
	  "from 1 to 65535\n"),
	BAD("address_port_junk",
	  HEAD "  - { protocol: imap, address: \"0.0.0.0:14x\" }\n",
	  "c.yaml:5:32: listen[1].address: \"0.0.0.0:14x\": the port must be a number from 1 to 65535\n"),
	BAD("address_port_sign",
	  HEAD "  - { protocol: imap, address: \"0.0.0.0:+143\" }\n",
	  "c.yaml:5:32: listen[1].address: \"0.0.0.0:+143\": the port must be a number from 1 to 65535\n"),
	BAD("address_too_long",
	  HEAD "  - { protocol: imap, address: \"[0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:1]:143\" }\n",
	  "c.yaml:5:32: listen[1].address: \"[0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0...\": "
	  "too long for an address\n"),
	BAD("address_mapping",
	  HEAD "  - { protocol: imap, address: { ip: 0.0.0.0 } }\n",
	  "c.yaml:5:32: listen[1].address: expected a scalar, got a mapping\n"),
	BAD("address_nul",
	  HEAD "  - { protocol: imap, address: \"0.0.0.0:1\\0\" }\n",
	  "c.yaml:5:32: listen[1].address: must not contain a NUL byte\n"),
	BAD("duplicate_listener",
	  HEAD "  - { protocol: pop3, address: \"127.0.0.1:993\" }\n",
	  "c.yaml:5:32: listen[1].address: \"127.0.0.1:993\": already used by listen[0] at line 4\n"),
	BAD("duplicate_listener_v6",
	  HEAD "  - { protocol: imap, address: \"[::1]:143\" }\n"
	  "  - { protocol: imap, address: \"[0:0::1]:143\" }\n",
	  "c.yaml:6:32: listen[2].address: \"[0:0::1]:143\": already used by listen[1] at line 5\n"),
	BAD("listener_wildcard_clash",
	  HEAD "  - { protocol: imap, address: \"0.0.0.0:993\" }\n",
	  "c.yaml:5:32: listen[1].address: \"0.0.0.0:993\": same port as listen[0] at line 4 "
	  "(\"127.0.0.1:993\"), and a wildcard address takes the port on every address\n"),
	BAD("tls_missing",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "store: { sqlite: s.db, master_key: m.key }\n",
	  "c.yaml:1:1: missing required key \"tls\"\n"),
	BAD("tls_key_missing",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls:\n  certificate: c.pem\nstore: { sqlite: s.db, master_key: m.key }\n",
	  "c.yaml:4:3: tls: missing required key \"key\"\n"),
	BAD("tls_scalar",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: yes\nstore: { sqlite: s.db, master_key: m.key }\n",
	  "c.yaml:3:6: tls: expected a mapping, got \"yes\"\n"),
	BAD("tls_null",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls:\nstore: { sqlite: s.db, master_key: m.key }\n",
	  "c.yaml:3:1: tls: expected a mapping, got an empty value\n"),
	BAD("certificate_empty",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls:\n  certificate: \"\"\n  key:\nstore: { sqlite: s.db, master_key: m.key }\n",
	  "c.yaml:4:16: tls.certificate: must not be empty\n"
	  "c.yaml:5:3: tls.key: must not be empty\n"),
	BAD("certificate_sequence",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls:\n  certificate: [a.pem, b.pem]\n  key: k.pem\nstore: { sqlite: s.db, master_key: m.key }\n",
	  "c.yaml:4:16: tls.certificate: expected a scalar, got a sequence\n"),
	BAD("tls_unknown_key",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls:\n  cert: c.pem\n  key: k.pem\nstore: { sqlite: s.db, master_key: m.key }\n",
	  "c.yaml:4:3: tls: missing required key \"certificate\"\n"
	  "c.yaml:4:3: tls: unknown key \"cert\" (did you mean \"certificate\"?)\n"),
	BAD("tls_duplicate_key",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls:\n  certificate: c.pem\n  key: k.pem\n  key: k2.pem\nstore: { sqlite: s.db, master_key: m.key }\n",
	  "c.yaml:6:3: tls: duplicate key \"key\" (first at line 5)\n"),
	BAD("store_missing_keys",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: { certificate: c.pem, key: k.pem }\nstore: { sqllite: s.db }\n",
	  "c.yaml:4:8: store: missing required key \"master_key\"\n"
	  "c.yaml:4:8: store: missing required key \"sqlite\" or \"postgres\"\n"
	  "c.yaml:4:10: store: unknown key \"sqllite\" (did you mean \"sqlite\"?)\n"),
	BAD("store_both_backends",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: { certificate: c.pem, key: k.pem }\n"
	  "store:\n  sqlite: s.db\n  postgres: \"dbname=mailgate\"\n  master_key: m.key\n",
	  "c.yaml:5:3: store: \"sqlite\" and \"postgres\" are both set; a gateway uses one store\n"),
	BAD("store_no_backend",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: { certificate: c.pem, key: k.pem }\n"
	  "store: { master_key: m.key, device_key: d.key }\n",
	  "c.yaml:4:8: store: missing required key \"sqlite\" or \"postgres\"\n"),
	BAD("store_postgres_bad",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: { certificate: c.pem, key: k.pem }\n"
	  "store: { postgres: \"host=db password='s3cret\", master_key: m.key }\n",
	  "c.yaml:4:20: store.postgres: not a valid libpq connection string (key=value pairs such as "
	  "\"host=db.example port=5432 dbname=mailgate\", or a postgresql:// URI)\n"),
	BAD("store_postgres_unknown_option",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: { certificate: c.pem, key: k.pem }\n"
	  "store:\n  postgres: host=db dbnmae=mailgate\n  master_key: m.key\n",
	  "c.yaml:5:13: store.postgres: not a valid libpq connection string (key=value pairs such as "
	  "\"host=db.example port=5432 dbname=mailgate\", or a postgresql:// URI)\n"),
	BAD("store_postgres_uri_bad",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: { certificate: c.pem, key: k.pem }\n"
	  "store:\n  postgres: \"postgresql://u:s3cret@[::1/db\"\n  master_key: m.key\n",
	  "c.yaml:5:13: store.postgres: not a valid libpq connection string (key=value pairs such as "
	  "\"host=db.example port=5432 dbname=mailgate\", or a postgresql:// URI)\n"),
	BAD("store_postgres_empty",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: { certificate: c.pem, key: k.pem }\n"
	  "store:\n  postgres: \"\"\n  master_key: m.key\n",
	  "c.yaml:5:13: store.postgres: must not be empty\n"),
	BAD("store_postgres_mapping",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: { certificate: c.pem, key: k.pem }\n"
	  "store:\n  postgres: { host: db }\n  master_key: m.key\n",
	  "c.yaml:5:13: store.postgres: expected a scalar, got a mapping\n"),
	BAD("store_device_key_is_master_key",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: { certificate: c.pem, key: k.pem }\n"
	  "store: { sqlite: s.db, device_key: keys/m.key, master_key: keys/m.key }\n",
	  "c.yaml:4:36: store.device_key: must not be the master key file\n"),
	BAD("store_device_key_empty",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: { certificate: c.pem, key: k.pem }\n"
	  "store:\n  sqlite: s.db\n  master_key: m.key\n  device_key:\n",
	  "c.yaml:7:3: store.device_key: must not be empty\n"),
	BAD("store_poll_interval",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: { certificate: c.pem, key: k.pem }\n"
	  "store:\n  sqlite: s.db\n  master_key: m.key\n  poll_interval: 0\n",
	  "c.yaml:7:18: store.poll_interval: \"0\": must be between 1s and 1m\n"),
	BAD("store_poll_interval_big",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: { certificate: c.pem, key: k.pem }\n"
	  "store: { sqlite: s.db, master_key: m.key, poll_interval: 61s }\n",
	  "c.yaml:4:58: store.poll_interval: \"61s\": must be between 1s and 1m\n"),
	BAD("store_poll_interval_syntax",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: { certificate: c.pem, key: k.pem }\n"
	  "store: { sqlite: s.db, master_key: m.key, poll_interval: 2 s }\n",
	  "c.yaml:4:58: store.poll_interval: \"2 s\": expected a number of seconds, optionally followed by "
	  "s, m or h (as in 90, 30s, 30m, 1h)\n"),
	BAD("auth_cache_ttl",
	  HEAD "auth:\n  cache_ttl: 61m\n",
	  "c.yaml:6:14: auth.cache_ttl: \"61m\": must be between 0s and 1h\n"),
	BAD("auth_cache_ttl_syntax",
	  HEAD "auth: { cache_ttl: -1 }\n",
	  "c.yaml:5:20: auth.cache_ttl: \"-1\": expected a number of seconds, optionally followed by "
	  "s, m or h (as in 90, 30s, 30m, 1h)\n"),
	BAD("auth_unknown_key",
	  HEAD "auth: { cache: 10s }\n",
	  "c.yaml:5:9: auth: unknown key \"cache\" (did you mean \"cache_ttl\"?)\n"),
	BAD("auth_sequence",
	  HEAD "auth: [ cache_ttl ]\n",
	  "c.yaml:5:7: auth: expected a mapping, got a sequence\n"),
	BAD("timeout_zero",
	  HEAD "timeouts: { login: 0 }\n",
	  "c.yaml:5:20: timeouts.login: \"0\": must be between 1s and 1h\n"),
	BAD("timeout_too_big",
	  HEAD "timeouts:\n  login: 2h\n  idle: 1441m\n  connect: 601\n",
	  "c.yaml:6:10: timeouts.login: \"2h\": must be between 1s and 1h\n"
	  "c.yaml:7:9: timeouts.idle: \"1441m\": must be between 1s and 24h\n"
	  "c.yaml:8:12: timeouts.connect: \"601\": must be between 1s and 10m\n"),
	BAD("timeout_overflow",
	  HEAD "timeouts:\n  idle: 99999999999999999999999h\n  login: 4294967296\n",
	  "c.yaml:6:9: timeouts.idle: \"99999999999999999999999h\": must be between 1s and 24h\n"
	  "c.yaml:7:10: timeouts.login: \"4294967296\": must be between 1s and 1h\n"),
	BAD("timeout_syntax",
	  HEAD "timeouts:\n  login: 30x\n  idle: -5\n  connect: 1.5m\n",
	  "c.yaml:6:10: timeouts.login: \"30x\": expected a number of seconds, optionally followed by "
	  "s, m or h (as in 90, 30s, 30m, 1h)\n"
	  "c.yaml:7:9: timeouts.idle: \"-5\": expected a number of seconds, optionally followed by "
	  "s, m or h (as in 90, 30s, 30m, 1h)\n"
	  "c.yaml:8:12: timeouts.connect: \"1.5m\": expected a number of seconds, optionally followed by "
	  "s, m or h (as in 90, 30s, 30m, 1h)\n"),
	BAD("timeout_suffix_only",
	  HEAD "timeouts: { idle: m, login: 5ms }\n",
	  "c.yaml:5:19: timeouts.idle: \"m\": expected a number of seconds, optionally followed by "
	  "s, m or h (as in 90, 30s, 30m, 1h)\n"
	  "c.yaml:5:29: timeouts.login: \"5ms\": expected a number of seconds, optionally followed by "
	  "s, m or h (as in 90, 30s, 30m, 1h)\n"),
	BAD("timeouts_sequence",
	  HEAD "timeouts: [60]\n",
	  "c.yaml:5:11: timeouts: expected a mapping, got a sequence\n"),
	BAD("timeouts_unknown",
	  HEAD "timeouts: { idel: 60 }\n",
	  "c.yaml:5:13: timeouts: unknown key \"idel\" (did you mean \"idle\"?)\n"),
	BAD("shutdown_grace_too_big",
	  HEAD "timeouts:\n  shutdown_grace: 61m\n",
	  "c.yaml:6:19: timeouts.shutdown_grace: \"61m\": must be between 0s and 1h\n"),
	BAD("shutdown_grace_syntax",
	  HEAD "timeouts: { shutdown_grace: -1, login: 5 }\n",
	  "c.yaml:5:29: timeouts.shutdown_grace: \"-1\": expected a number of seconds, optionally followed by "
	  "s, m or h (as in 90, 30s, 30m, 1h)\n"),
	BAD("shutdown_grace_overflow",
	  HEAD "timeouts: { shutdown_grace: 4294967296s }\n",
	  "c.yaml:5:29: timeouts.shutdown_grace: \"4294967296s\": must be between 0s and 1h\n"),
	BAD("limits_too_small",
	  HEAD "limits:\n  connections: 0\n  connections_per_ip: 0\n  sessions_per_user: 0\n"
	  "  imap_line: 511\n  pop3_line: 511\n  smtp_line: 511\n  literal: 63\n",
	  "c.yaml:6:16: limits.connections: \"0\": must be between 1 and 1000000\n"
	  "c.yaml:7:23: limits.connections_per_ip: \"0\": must be between 1 and 1000000\n"
	  "c.yaml:8:22: limits.sessions_per_user: \"0\": must be between 1 and 100000\n"
	  "c.yaml:9:14: limits.imap_line: \"511\": must be between 512 and 8192\n"
	  "c.yaml:10:14: limits.pop3_line: \"511\": must be between 512 and 16384\n"
	  "c.yaml:11:14: limits.smtp_line: \"511\": must be between 512 and 16384\n"
	  "c.yaml:12:12: limits.literal: \"63\": must be between 64 and 8191\n"),
	BAD("limits_too_big",
	  HEAD "limits:\n  connections: 1000001\n  connections_per_ip: 1000001\n  sessions_per_user: 100001\n"
	  "  imap_line: 8193\n  pop3_line: 16385\n  smtp_line: 16385\n  literal: 8192\n",
	  "c.yaml:6:16: limits.connections: \"1000001\": must be between 1 and 1000000\n"
	  "c.yaml:7:23: limits.connections_per_ip: \"1000001\": must be between 1 and 1000000\n"
	  "c.yaml:8:22: limits.sessions_per_user: \"100001\": must be between 1 and 100000\n"
	  "c.yaml:9:14: limits.imap_line: \"8193\": must be between 512 and 8192\n"
	  "c.yaml:10:14: limits.pop3_line: \"16385\": must be between 512 and 16384\n"
	  "c.yaml:11:14: limits.smtp_line: \"16385\": must be between 512 and 16384\n"
	  "c.yaml:12:12: limits.literal: \"8192\": must be between 64 and 8191\n"),
	BAD("limits_overflow",
	  HEAD "limits: { connections: 99999999999999999999, literal: 4294967296 }\n",
	  "c.yaml:5:24: limits.connections: \"99999999999999999999\": must be between 1 and 1000000\n"
	  "c.yaml:5:55: limits.literal: \"4294967296\": must be between 64 and 8191\n"),
	BAD("limits_syntax",
	  HEAD "limits:\n  connections: 1e3\n  connections_per_ip: 0x10\n  sessions_per_user: +5\n"
	  "  imap_line: 10_000\n  pop3_line: 2k\n  smtp_line: -1\n  literal: 1.5\n",
	  "c.yaml:6:16: limits.connections: \"1e3\": expected a whole number (digits only, as in 100)\n"
	  "c.yaml:7:23: limits.connections_per_ip: \"0x10\": expected a whole number (digits only, as in 100)\n"
	  "c.yaml:8:22: limits.sessions_per_user: \"+5\": expected a whole number (digits only, as in 100)\n"
	  "c.yaml:9:14: limits.imap_line: \"10_000\": expected a whole number (digits only, as in 100)\n"
	  "c.yaml:10:14: limits.pop3_line: \"2k\": expected a whole number (digits only, as in 100)\n"
	  "c.yaml:11:14: limits.smtp_line: \"-1\": expected a whole number (digits only, as in 100)\n"
	  "c.yaml:12:12: limits.literal: \"1.5\": expected a whole number (digits only, as in 100)\n"),
	BAD("limits_types",
	  HEAD "limits:\n  connections: \"\"\n  literal: [1]\n  imap_line:\n  pop3_line: \"1\\0\"\n",
	  "c.yaml:6:16: limits.connections: must not be empty\n"
	  "c.yaml:7:12: limits.literal: expected a scalar, got a sequence\n"
	  "c.yaml:8:3: limits.imap_line: must not be empty\n"
	  "c.yaml:9:14: limits.pop3_line: must not contain a NUL byte\n"),
	BAD("limits_unknown_key",
	  HEAD "limits: { connection: 5, pop_line: 4 }\n",
	  "c.yaml:5:11: limits: unknown key \"connection\" (did you mean \"connections\"?)\n"
	  "c.yaml:5:26: limits: unknown key \"pop_line\" (did you mean \"pop3_line\"?)\n"),
	BAD("limits_duplicate_key",
	  HEAD "limits:\n  literal: 100\n  literal: 200\n",
	  "c.yaml:7:3: limits: duplicate key \"literal\" (first at line 6)\n"),
	BAD("limits_sequence",
	  HEAD "limits: [ 1 ]\n",
	  "c.yaml:5:9: limits: expected a mapping, got a sequence\n"),
	BAD("limits_scalar",
	  HEAD "limits: 100\n",
	  "c.yaml:5:9: limits: expected a mapping, got \"100\"\n"),
	BAD("brute_force_too_small",
	  HEAD "brute_force:\n  delay_after: 0\n  block_after: 0\n  block_time: 0\n  window: 0s\n",
	  "c.yaml:6:16: brute_force.delay_after: \"0\": must be between 1 and 1000\n"
	  "c.yaml:7:16: brute_force.block_after: \"0\": must be between 1 and 100000\n"
	  "c.yaml:8:15: brute_force.block_time: \"0\": must be between 1s and 24h\n"
	  "c.yaml:9:11: brute_force.window: \"0s\": must be between 1s and 24h\n"),
	BAD("brute_force_too_big",
	  HEAD "brute_force:\n  delay_after: 1001\n  max_delay: 61\n  block_after: 100001\n"
	  "  block_time: 86401\n  window: 1441m\n",
	  "c.yaml:6:16: brute_force.delay_after: \"1001\": must be between 1 and 1000\n"
	  "c.yaml:7:14: brute_force.max_delay: \"61\": must be between 0s and 1m\n"
	  "c.yaml:8:16: brute_force.block_after: \"100001\": must be between 1 and 100000\n"
	  "c.yaml:9:15: brute_force.block_time: \"86401\": must be between 1s and 24h\n"
	  "c.yaml:10:11: brute_force.window: \"1441m\": must be between 1s and 24h\n"),
	BAD("brute_force_durations",
	  HEAD "brute_force: { max_delay: 2m, window: 25h }\n",
	  "c.yaml:5:27: brute_force.max_delay: \"2m\": must be between 0s and 1m\n"
	  "c.yaml:5:39: brute_force.window: \"25h\": must be between 1s and 24h\n"),
	BAD("brute_force_syntax",
	  HEAD "brute_force:\n  delay_after: 3x\n  max_delay: 8 s\n  block_after: 20s\n"
	  "  block_time: -10m\n  window: 1.5h\n",
	  "c.yaml:6:16: brute_force.delay_after: \"3x\": expected a whole number (digits only, as in 100)\n"
	  "c.yaml:7:14: brute_force.max_delay: \"8 s\": expected a number of seconds, optionally followed by "
	  "s, m or h (as in 90, 30s, 30m, 1h)\n"
	  "c.yaml:8:16: brute_force.block_after: \"20s\": expected a whole number (digits only, as in 100)\n"
	  "c.yaml:9:15: brute_force.block_time: \"-10m\": expected a number of seconds, optionally followed by "
	  "s, m or h (as in 90, 30s, 30m, 1h)\n"
	  "c.yaml:10:11: brute_force.window: \"1.5h\": expected a number of seconds, optionally followed by "
	  "s, m or h (as in 90, 30s, 30m, 1h)\n"),
	BAD("brute_force_block_before_delay",
	  HEAD "brute_force:\n  delay_after: 10\n  block_after: 5\n",
	  "c.yaml:7:16: brute_force.block_after: \"5\": must not be less than delay_after (10)\n"),
	BAD("brute_force_block_before_default_delay",
	  HEAD "brute_force: { block_after: 2 }\n",
	  "c.yaml:5:29: brute_force.block_after: \"2\": must not be less than delay_after (3)\n"),
	BAD("brute_force_block_written_first",
	  HEAD "brute_force:\n  block_after: 4\n  delay_after: 5\n",
	  "c.yaml:6:16: brute_force.block_after: \"4\": must not be less than delay_after (5)\n"),
	BAD("brute_force_delay_over_default_block",
	  HEAD "brute_force:\n  delay_after: 21\n",
	  "c.yaml:6:16: brute_force.delay_after: \"21\": must not be more than block_after (20 by default)\n"),
	BAD("brute_force_no_rule_when_invalid",
	  HEAD "brute_force:\n  delay_after: 50\n  block_after: abc\n"
	  "  window: 0\n",
	  "c.yaml:7:16: brute_force.block_after: \"abc\": expected a whole number (digits only, as in 100)\n"
	  "c.yaml:8:11: brute_force.window: \"0\": must be between 1s and 24h\n"),
	BAD("brute_force_no_rule_when_delay_invalid",
	  HEAD "brute_force: { delay_after: 5000, block_after: 1 }\n",
	  "c.yaml:5:29: brute_force.delay_after: \"5000\": must be between 1 and 1000\n"),
	BAD("brute_force_unknown_key",
	  HEAD "brute_force: { delay: 3, blocktime: 10m }\n",
	  "c.yaml:5:16: brute_force: unknown key \"delay\" (did you mean \"delay_after\"?)\n"
	  "c.yaml:5:26: brute_force: unknown key \"blocktime\" (did you mean \"block_time\"?)\n"),
	BAD("brute_force_sequence",
	  HEAD "brute_force: [ 3 ]\n",
	  "c.yaml:5:14: brute_force: expected a mapping, got a sequence\n"),
	BAD("user_number",
	  HEAD "user: 1000\ngroup: \"0\"\n",
	  "c.yaml:5:7: user: \"1000\": expected a user name, not a number\n"
	  "c.yaml:6:8: group: \"0\": expected a group name, not a number\n"),
	BAD("user_invalid",
	  HEAD "user: \"a b\"\ngroup: \"-wheel\"\n",
	  "c.yaml:5:7: user: \"a b\": not a valid user name (no spaces, ':', ',' or '/', and no '-' first)\n"
	  "c.yaml:6:8: group: \"-wheel\": not a valid group name (no spaces, ':', ',' or '/', and no '-' first)\n"),
	BAD("user_invalid_chars",
	  HEAD "user: \"mail:gate\"\ngroup: \"a/b\"\n",
	  "c.yaml:5:7: user: \"mail:gate\": not a valid user name (no spaces, ':', ',' or '/', and no '-' first)\n"
	  "c.yaml:6:8: group: \"a/b\": not a valid group name (no spaces, ':', ',' or '/', and no '-' first)\n"),
	BAD("user_control_char",
	  HEAD "user: \"mail\\tgate\"\ngroup: \"mail,x\"\n",
	  "c.yaml:5:7: user: \"mail\\x09gate\": not a valid user name (no spaces, ':', ',' or '/', and no '-' first)\n"
	  "c.yaml:6:8: group: \"mail,x\": not a valid group name (no spaces, ':', ',' or '/', and no '-' first)\n"),
	BAD("user_empty",
	  HEAD "user:\ngroup: \"\"\n",
	  "c.yaml:5:1: user: must not be empty\n"
	  "c.yaml:6:8: group: must not be empty\n"),
	BAD("user_mapping",
	  HEAD "user: { name: mailgate }\ngroup: [ mail ]\n",
	  "c.yaml:5:7: user: expected a scalar, got a mapping\n"
	  "c.yaml:6:8: group: expected a scalar, got a sequence\n"),
	BAD("user_nul",
	  HEAD "user: \"mail\\0gate\"\n",
	  "c.yaml:5:7: user: must not contain a NUL byte\n"),
	BAD("user_too_long",
	  HEAD "user: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	  "c.yaml:5:7: user: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": too long for a user name (at most 255 bytes)\n"),
	BAD("group_without_user",
	  HEAD "group: mail\n",
	  "c.yaml:5:8: group: needs \"user\" as well (the group alone would leave the gateway running as root)\n"),
	BAD("group_without_user_empty",
	  HEAD "group:\n",
	  "c.yaml:5:1: group: must not be empty\n"
	  "c.yaml:5:1: group: needs \"user\" as well (the group alone would leave the gateway running as root)\n"),
	BAD("unknown_top_key_new_hints",
	  HEAD "usr: x\nlimit: {}\nbruteforce: {}\n",
	  "c.yaml:5:1: unknown key \"usr\" (did you mean \"user\"?)\n"
	  "c.yaml:6:1: unknown key \"limit\" (did you mean \"limits\"?)\n"
	  "c.yaml:7:1: unknown key \"bruteforce\" (did you mean \"brute_force\"?)\n"),
	BAD2("include_not_settings",
	  HEAD "include: [ inc.yaml ]\n",
	  "inc.yaml:1:1: \"user\" is not allowed in an included file (only \"providers\" is)\n"
	  "inc.yaml:2:1: \"group\" is not allowed in an included file (only \"providers\" is)\n"
	  "inc.yaml:3:1: \"limits\" is not allowed in an included file (only \"providers\" is)\n"
	  "inc.yaml:4:1: \"brute_force\" is not allowed in an included file (only \"providers\" is)\n",
	  "inc.yaml",
	  "user: x\ngroup: y\nlimits: { connections: 0 }\nbrute_force: {}\n"),
	BAD("provider_no_endpoints",
	  HEAD "providers:\n  acme:\n    ca_file: ca.pem\n",
	  "c.yaml:7:5: providers.acme: at least one of imap, pop3 or smtp is required\n"),
	BAD("provider_empty_mapping",
	  HEAD "providers: { acme: {} }\n",
	  "c.yaml:5:20: providers.acme: at least one of imap, pop3 or smtp is required\n"),
	BAD("provider_null",
	  HEAD "providers:\n  acme:\n",
	  "c.yaml:6:3: providers.acme: expected a mapping, got an empty value\n"),
	BAD("providers_sequence",
	  HEAD "providers:\n  - acme\n",
	  "c.yaml:6:3: providers: expected a mapping, got a sequence\n"),
	BAD("provider_unknown_key",
	  HEAD "providers:\n  acme:\n    imap: { host: a, port: 1 }\n    cafile: x.pem\n    pop: {}\n",
	  "c.yaml:8:5: providers.acme: unknown key \"cafile\" (did you mean \"ca_file\"?)\n"
	  "c.yaml:9:5: providers.acme: unknown key \"pop\" (did you mean \"pop3\"?)\n"),
	BAD("endpoint_missing_host_port",
	  HEAD "providers:\n  acme:\n    imap: { tls: starttls }\n    smtp: {}\n",
	  "c.yaml:7:11: providers.acme.imap: missing required key \"host\"\n"
	  "c.yaml:7:11: providers.acme.imap: missing required key \"port\"\n"
	  "c.yaml:8:11: providers.acme.smtp: missing required key \"host\"\n"
	  "c.yaml:8:11: providers.acme.smtp: missing required key \"port\"\n"),
	BAD("endpoint_scalar",
	  HEAD "providers:\n  acme:\n    imap: imap.acme.example:993\n",
	  "c.yaml:7:11: providers.acme.imap: expected a mapping, got \"imap.acme.example:993\"\n"),
	BAD("endpoint_bad_port",
	  HEAD "providers:\n  acme:\n    imap: { host: a, port: 0 }\n    pop3: { host: a, port: 65536 }\n"
	  "    smtp: { host: a, port: 99999999999999999999999 }\n",
	  "c.yaml:7:28: providers.acme.imap.port: \"0\": expected a port number from 1 to 65535\n"
	  "c.yaml:8:28: providers.acme.pop3.port: \"65536\": expected a port number from 1 to 65535\n"
	  "c.yaml:9:28: providers.acme.smtp.port: \"99999999999999999999999\": expected a port number "
	  "from 1 to 65535\n"),
	BAD("endpoint_bad_tls",
	  HEAD "providers:\n  acme:\n    smtp: { host: a, port: 25, tls: plain }\n",
	  "c.yaml:7:37: providers.acme.smtp.tls: \"plain\": expected implicit or starttls\n"),
	BAD("endpoint_bad_host",
	  HEAD "providers:\n  acme:\n    imap: { host: \"imap acme\", port: 993 }\n"
	  "    pop3: { host: \"\", port: 995 }\n    smtp: { host: \"a\\tb\", port: 465 }\n",
	  "c.yaml:7:19: providers.acme.imap.host: \"imap acme\": a host name must not contain spaces\n"
	  "c.yaml:8:19: providers.acme.pop3.host: must not be empty\n"
	  "c.yaml:9:19: providers.acme.smtp.host: \"a\\x09b\": a host name must not contain spaces\n"),
	BAD("endpoint_host_too_long",
	  HEAD "providers:\n  acme:\n    imap: { port: 993, host: "
	  "0123456789012345678901234567890123456789012345678901234567890123"
	  "0123456789012345678901234567890123456789012345678901234567890123"
	  "0123456789012345678901234567890123456789012345678901234567890123"
	  "0123456789012345678901234567890123456789012345678901234567890123 }\n",
	  "c.yaml:7:30: providers.acme.imap.host: "
	  "\"0123456789012345678901234567890123456789012345678901234567890123...\": "
	  "too long for a host name (at most 255 bytes)\n"),
	BAD("provider_bad_names",
	  HEAD "providers:\n  \"acme mail\": { imap: { host: a } }\n"
	  "  \"\": { imap: { host: a, port: 1 } }\n"
	  "  0123456789012345678901234567890123456789012345678901234567890123: { imap: { host: a, port: 1 } }\n"
	  "  caf\xc3\xa9: { imap: { host: a, port: 1 } }\n",
	  "c.yaml:6:3: providers: \"acme mail\": invalid provider name (1 to 63 letters, digits, '_', '.' or '-')\n"
	  "c.yaml:6:24: providers.\"acme mail\".imap: missing required key \"port\"\n"
	  "c.yaml:7:3: providers: \"\": invalid provider name (1 to 63 letters, digits, '_', '.' or '-')\n"
	  "c.yaml:8:3: providers: \"0123456789012345678901234567890123456789012345678901234567890123\": "
	  "invalid provider name (1 to 63 letters, digits, '_', '.' or '-')\n"
	  "c.yaml:9:3: providers: \"caf\xc3\xa9\": invalid provider name (1 to 63 letters, digits, '_', '.' or '-')\n"),
	BAD("duplicate_provider",
	  HEAD "providers:\n  acme: { imap: { host: a, port: 1 } }\n  acme: { imap: { host: b } }\n",
	  "c.yaml:7:3: providers: duplicate provider \"acme\" (first defined at c.yaml:6:3)\n"
	  "c.yaml:7:17: providers.acme.imap: missing required key \"port\"\n"),
	BAD("include_missing",
	  HEAD "include:\n  - providers.yaml\n  - sub/nope.yaml\n",
	  "c.yaml:6:5: include[0]: providers.yaml: No such file or directory\n"
	  "c.yaml:7:5: include[1]: sub/nope.yaml: No such file or directory\n"),
	BAD("path_control_chars",
	  "listen:\n  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	  "tls: { certificate: \"c\\n.pem\", key: k.pem }\n"
	  "store: { sqlite: s.db, master_key: \"m\\tkey\" }\n"
	  "include: [ \"a\\nb\", \"x\\x7f\" ]\n"
	  "providers: { a: { imap: { host: a, port: 1 }, ca_file: \"\\r\" } }\n",
	  "c.yaml:3:21: tls.certificate: \"c\\x0a.pem\": a path must not contain control characters\n"
	  "c.yaml:4:36: store.master_key: \"m\\x09key\": a path must not contain control characters\n"
	  "c.yaml:5:12: include[0]: \"a\\x0ab\": a path must not contain control characters\n"
	  "c.yaml:5:20: include[1]: \"x\\x7f\": a path must not contain control characters\n"
	  "c.yaml:6:56: providers.a.ca_file: \"\\x0d\": a path must not contain control characters\n"),
	BAD("include_scalar",
	  HEAD "include: providers.yaml\n",
	  "c.yaml:5:10: include: expected a sequence, got \"providers.yaml\"\n"),
	BAD("include_empty_item",
	  HEAD "include: [ \"\", [x] ]\n",
	  "c.yaml:5:12: include[0]: must not be empty\n"
	  "c.yaml:5:16: include[1]: expected a scalar, got a sequence\n"),
	BAD("include_directory",
	  HEAD "include: [ /tmp ]\n",
	  "c.yaml:5:12: include[0]: /tmp: Is a directory\n"),
	BAD2("include_not_providers",
	  HEAD "include: [ inc.yaml ]\n",
	  "inc.yaml:1:1: \"listen\" is not allowed in an included file (only \"providers\" is)\n"
	  "inc.yaml:2:1: \"include\" is not allowed in an included file (only \"providers\" is)\n"
	  "inc.yaml:3:1: unknown key \"provider\" (did you mean \"providers\"?)\n",
	  "inc.yaml",
	  "listen: []\ninclude: [ other.yaml ]\nprovider: {}\n"),
	BAD2("include_duplicate_provider",
	  HEAD "providers:\n  acme: { imap: { host: a, port: 1 } }\ninclude: [ inc.yaml ]\n",
	  "inc.yaml:3:3: providers: duplicate provider \"acme\" (first defined at c.yaml:6:3)\n",
	  "inc.yaml",
	  "providers:\n  other: { imap: { host: a, port: 1 } }\n  acme: { smtp: { host: a, port: 1 } }\n"),
	BAD2("include_syntax_error",
	  HEAD "include: [ inc.yaml ]\nproviders: { a: { imap: { host: a, port: 0 } } }\n",
	  "c.yaml:6:42: providers.a.imap.port: \"0\": expected a port number from 1 to 65535\n"
	  "inc.yaml:2:3: syntax error: did not find expected key (while parsing a block mapping at 1:1)\n",
	  "inc.yaml",
	  "providers: {}\n  x: 1\n"),
	BAD("many_problems_in_line_order",
	  "providers:\n  a: { imap: { host: a, port: 1 } }\n"
	  "listen:\n  - { protocol: ftp, address: \"1.2.3.4\" }\n"
	  "tls: { certificate: c.pem, key: k.pem, key: k.pem }\n"
	  "timeouts: { login: 0 }\n",
	  "c.yaml:1:1: missing required key \"store\"\n"
	  "c.yaml:4:17: listen[0].protocol: \"ftp\": expected imap, pop3 or smtp\n"
	  "c.yaml:4:31: listen[0].address: \"1.2.3.4\": missing \":port\"\n"
	  "c.yaml:5:40: tls: duplicate key \"key\" (first at line 5)\n"
	  "c.yaml:6:20: timeouts.login: \"0\": must be between 1s and 1h\n"),
};

static void
test_bad(void **state)
{
	const struct bad_case *c = *state;

	put("c.yaml", c->yaml);
	if (c->extra_name != NULL)
		put(c->extra_name, c->extra_yaml);
	assert_string_equal(load_bad("c.yaml"), c->expected);
}

/* A main file that cannot be read has no position to give. */
static void
test_bad_main_file(void **state)
{
	(void)state;
	assert_string_equal(load_bad("nope.yaml"), "nope.yaml: No such file or directory\n");
	assert_string_equal(load_bad("/"), "/: Is a directory\n");
	assert_string_equal(load_bad("/dev/null"),
	    "/dev/null: not a regular file\n");
}

/*
 * The other exported helpers
 */

static void
test_diag(void **state)
{
	struct mg_diag d = { 0 };

	(void)state;
	mg_diag_add(&d, "f.yaml", 3, 7, "bad %s: %d", "thing", 42);
	mg_diag_add(&d, "f.yaml", 0, 0, "whole file");
	mg_diag_add(&d, NULL, 0, 0, "no file");
	assert_int_equal(d.count, 3);
	assert_string_equal(d.text, "f.yaml:3:7: bad thing: 42\nf.yaml: whole file\nno file\n");
	assert_int_equal(d.len, strlen(d.text));
	mg_diag_free(&d);
	assert_null(d.text);
	assert_int_equal(d.len, 0);
	assert_int_equal(d.count, 0);
	mg_diag_free(&d);
}

static void
test_proto_name(void **state)
{
	(void)state;
	assert_string_equal(mg_proto_name(MG_PROTO_IMAP), "imap");
	assert_string_equal(mg_proto_name(MG_PROTO_POP3), "pop3");
	assert_string_equal(mg_proto_name(MG_PROTO_SMTP), "smtp");
	assert_string_equal(mg_proto_name(MG_PROTO_COUNT), "?");
	mg_config_free(NULL);
}

/* Loading appends to what the caller's diag already holds. */
static void
test_diag_appends(void **state)
{
	struct mg_diag	 d = { 0 };
	struct mg_config *cfg;

	(void)state;
	put("c.yaml", HEAD "x: 1\n");
	mg_diag_add(&d, "earlier", 1, 1, "line");
	assert_int_equal(mg_config_load("c.yaml", &cfg, &d), -1);
	assert_int_equal(d.count, 2);
	assert_string_equal(d.text, "earlier:1:1: line\nc.yaml:5:1: unknown key \"x\"\n");
	mg_diag_free(&d);
}

/*
 * mg_config_check_files() with real files
 */

/* A fresh P-256 key. */
static EVP_PKEY *
make_key(void)
{
	EVP_PKEY *k;

	assert_non_null(k = EVP_EC_gen("P-256"));
	return k;
}

/* A self-signed certificate for key, valid for a day. */
static X509 *
make_cert(EVP_PKEY *key)
{
	X509	*x;
	X509_NAME *name;

	assert_non_null(x = X509_new());
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"mailgate test", -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, name), 1);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	return x;
}

static void
write_key(const char *path, EVP_PKEY *k, const char *pass)
{
	FILE	*fp;

	assert_non_null(fp = fopen(path, "w"));
	if (pass != NULL)
		assert_int_equal(PEM_write_PrivateKey(fp, k, EVP_aes_256_cbc(),
		    (const unsigned char *)pass, (int)strlen(pass), NULL, NULL), 1);
	else
		assert_int_equal(PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(fp), 0);
}

static void
write_cert(const char *path, X509 *x)
{
	FILE	*fp;

	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(PEM_write_X509(fp, x), 1);
	assert_int_equal(fclose(fp), 0);
}

/*
 * Makes pki/: cert.pem with its key.pem, other.pem (another key),
 * enc.pem (key.pem under a passphrase), master.key and notpem.txt.
 */
static void
make_pki(void)
{
	EVP_PKEY *key, *other;
	X509	*cert;

	assert_int_equal(mkdir("pki", 0755), 0);
	key = make_key();
	other = make_key();
	cert = make_cert(key);
	write_key("pki/key.pem", key, NULL);
	write_key("pki/other.pem", other, NULL);
	write_key("pki/enc.pem", key, "secret");
	write_cert("pki/cert.pem", cert);
	put("pki/master.key", "0123456789abcdef0123456789abcdef");
	put("pki/device.key", "fedcba9876543210fedcba9876543210");
	put("pki/notpem.txt", "just text\n");
	X509_free(cert);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

/* Loads a config naming the given files and returns what the check says. */
static const char *
check_files(const char *cert, const char *key, const char *sqlite, const char *master,
    const char *ca, int *nproblems)
{
	struct mg_diag	 d = { 0 };
	struct mg_config *cfg;
	char		 yaml[2048];

	snprintf(yaml, sizeof(yaml),
	    "listen:\n"
	    "  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	    "tls:\n"
	    "  certificate: %s\n"
	    "  key: %s\n"
	    "store:\n"
	    "  sqlite: %s\n"
	    "  master_key: %s\n"
	    "providers:\n"
	    "  acme: { imap: { host: a, port: 1 }, ca_file: %s }\n"
	    "  plain: { imap: { host: a, port: 1 } }\n",
	    cert, key, sqlite, master, ca);
	put("etc/c.yaml", yaml);
	cfg = load_ok("etc/c.yaml");
	*nproblems = mg_config_check_files(cfg, &d);
	assert_int_equal(*nproblems, d.count);
	snprintf(last_diag, sizeof(last_diag), "%s", d.text != NULL ? d.text : "");
	mg_diag_free(&d);
	mg_config_free(cfg);
	return last_diag;
}

static void
test_check_files_ok(void **state)
{
	char	 abs[128];
	int	 n;

	(void)state;
	make_pki();
	assert_string_equal(check_files("../pki/cert.pem", "../pki/key.pem", "../pki/store.db",
	    "../pki/master.key", "../pki/cert.pem", &n), "");
	assert_int_equal(n, 0);

	/* Absolute paths, and a database that already exists. */
	put("pki/store.db", "");
	snprintf(abs, sizeof(abs), "%s/pki/cert.pem", test_tmp);
	assert_string_equal(check_files(abs, "../pki/key.pem", "../pki/store.db", "../pki/master.key",
	    abs, &n), "");
	assert_int_equal(n, 0);
}

static void
test_check_files_missing(void **state)
{
	int	 n;

	(void)state;
	make_pki();
	assert_string_equal(check_files("nope.pem", "/nonexistent/key.pem", "../nodir/store.db",
	    "../pki/nope.key", "ca/nope.pem", &n),
	    "etc/c.yaml:4:16: tls.certificate: etc/nope.pem: No such file or directory\n"
	    "etc/c.yaml:5:8: tls.key: /nonexistent/key.pem: No such file or directory\n"
	    "etc/c.yaml:7:11: store.sqlite: etc/../nodir: No such file or directory\n"
	    "etc/c.yaml:8:15: store.master_key: etc/../pki/nope.key: No such file or directory\n"
	    "etc/c.yaml:10:48: providers.acme.ca_file: etc/ca/nope.pem: No such file or directory\n");
	assert_int_equal(n, 5);
}

static void
test_check_files_mismatch(void **state)
{
	int	 n;

	(void)state;
	make_pki();
	assert_string_equal(check_files("../pki/cert.pem", "../pki/other.pem", "../pki/store.db",
	    "../pki/master.key", "../pki/cert.pem", &n),
	    "etc/c.yaml:5:8: tls.key: etc/../pki/other.pem: does not match the certificate in "
	    "etc/../pki/cert.pem\n");
	assert_int_equal(n, 1);
}

static void
test_check_files_not_pem(void **state)
{
	int	 n;

	(void)state;
	make_pki();
	/* A key is not a certificate, text is neither, and a directory is not a file. */
	assert_string_equal(check_files("../pki/key.pem", "../pki/notpem.txt", "../pki/master.key/x.db",
	    "../pki", "../pki/notpem.txt", &n),
	    "etc/c.yaml:4:16: tls.certificate: etc/../pki/key.pem: no PEM certificate found\n"
	    "etc/c.yaml:5:8: tls.key: etc/../pki/notpem.txt: no PEM private key found\n"
	    "etc/c.yaml:7:11: store.sqlite: etc/../pki/master.key: Not a directory\n"
	    "etc/c.yaml:8:15: store.master_key: etc/../pki: not a regular file\n"
	    "etc/c.yaml:8:15: store.device_key: etc/../device.key: No such file or directory\n"
	    "etc/c.yaml:10:48: providers.acme.ca_file: etc/../pki/notpem.txt: no PEM certificate found\n");
	assert_int_equal(n, 6);

	assert_string_equal(check_files("../pki", "../pki/enc.pem", "../pki",
	    "../pki/master.key", "../pki/other.pem", &n),
	    "etc/c.yaml:4:16: tls.certificate: etc/../pki: Is a directory\n"
	    "etc/c.yaml:5:8: tls.key: etc/../pki/enc.pem: the key is encrypted; mailgate needs it "
	    "without a passphrase\n"
	    "etc/c.yaml:7:11: store.sqlite: etc/../pki: not a regular file\n"
	    "etc/c.yaml:10:48: providers.acme.ca_file: etc/../pki/other.pem: no PEM certificate found\n");
	assert_int_equal(n, 4);
}

/*
 * A PostgreSQL store: nothing to check on disk for it, but both keys; an
 * explicit device key is reported where it is written.
 */
static void
test_check_files_postgres(void **state)
{
	struct mg_diag	 d = { 0 };
	struct mg_config *cfg;

	(void)state;
	make_pki();
	put("etc/c.yaml",
	    "listen:\n"
	    "  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	    "tls: { certificate: ../pki/cert.pem, key: ../pki/key.pem }\n"
	    "store:\n"
	    "  postgres: \"host=/nonexistent dbname=nodir/x.db\"\n"
	    "  master_key: ../pki/master.key\n");
	cfg = load_ok("etc/c.yaml");
	assert_int_equal(mg_config_check_files(cfg, &d), 0);
	assert_null(d.text);
	mg_config_free(cfg);

	put("etc/c.yaml",
	    "listen:\n"
	    "  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	    "tls: { certificate: ../pki/cert.pem, key: ../pki/key.pem }\n"
	    "store:\n"
	    "  postgres: dbname=mailgate\n"
	    "  master_key: ../pki/master.key\n"
	    "  device_key: ../pki/nope.key\n");
	cfg = load_ok("etc/c.yaml");
	assert_int_equal(mg_config_check_files(cfg, &d), 1);
	assert_string_equal(d.text, "etc/c.yaml:7:15: store.device_key: etc/../pki/nope.key: "
	    "No such file or directory\n");
	mg_diag_free(&d);
	mg_config_free(cfg);

	/* The default one, missing: reported at the master key. */
	assert_int_equal(remove("pki/device.key"), 0);
	put("etc/c.yaml",
	    "listen:\n"
	    "  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	    "tls: { certificate: ../pki/cert.pem, key: ../pki/key.pem }\n"
	    "store: { postgres: dbname=mailgate, master_key: ../pki/master.key }\n");
	cfg = load_ok("etc/c.yaml");
	assert_int_equal(mg_config_check_files(cfg, &d), 1);
	assert_string_equal(d.text, "etc/c.yaml:4:49: store.device_key: etc/../pki/device.key: "
	    "No such file or directory\n");
	mg_diag_free(&d);
	mg_config_free(cfg);
}

/*
 * user and group must exist here. root (uid 0, group 0) is on every
 * machine the tests run on; the made-up names are on none.
 */
static const char *
check_ids(const char *ids, int *nproblems)
{
	struct mg_diag	 d = { 0 };
	struct mg_config *cfg;
	char		 yaml[1024];

	snprintf(yaml, sizeof(yaml),
	    "listen:\n"
	    "  - { protocol: imap, address: \"127.0.0.1:993\" }\n"
	    "tls: { certificate: ../pki/cert.pem, key: ../pki/key.pem }\n"
	    "store: { sqlite: ../pki/store.db, master_key: ../pki/master.key }\n"
	    "%s", ids);
	put("etc/c.yaml", yaml);
	cfg = load_ok("etc/c.yaml");
	*nproblems = mg_config_check_files(cfg, &d);
	assert_int_equal(*nproblems, d.count);
	snprintf(last_diag, sizeof(last_diag), "%s", d.text != NULL ? d.text : "");
	mg_diag_free(&d);
	mg_config_free(cfg);
	return last_diag;
}

static void
test_check_files_ids(void **state)
{
	int	 n;

	(void)state;
	make_pki();
	assert_string_equal(check_ids("", &n), "");
	assert_int_equal(n, 0);
	assert_string_equal(check_ids("user: root\n", &n), "");
	assert_int_equal(n, 0);
	assert_string_equal(check_ids("user: root\ngroup: root\n", &n), "");
	assert_int_equal(n, 0);

	assert_string_equal(check_ids("user: mg-no-such-user-7q\ngroup: mg-no-such-group-7q\n", &n),
	    "etc/c.yaml:5:7: user: mg-no-such-user-7q: no such user on this machine\n"
	    "etc/c.yaml:6:8: group: mg-no-such-group-7q: no such group on this machine\n");
	assert_int_equal(n, 2);

	/* A good user with a bad group. */
	assert_string_equal(check_ids("group: \"mg-no-such-group-7q\"\nuser: root\n", &n),
	    "etc/c.yaml:5:8: group: mg-no-such-group-7q: no such group on this machine\n");
	assert_int_equal(n, 1);
}

/* A file without read permission; meaningless for root, who reads anything. */
static void
test_check_files_unreadable(void **state)
{
	int	 n;

	(void)state;
	if (geteuid() == 0)
		skip();
	make_pki();
	assert_int_equal(chmod("pki/key.pem", 0), 0);
	assert_string_equal(check_files("../pki/cert.pem", "../pki/key.pem", "../pki/store.db",
	    "../pki/master.key", "../pki/cert.pem", &n),
	    "etc/c.yaml:5:8: tls.key: etc/../pki/key.pem: Permission denied\n");
	assert_int_equal(n, 1);
}

int
main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test_setup_teardown(test_good_block, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_good_flow, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_good_no_dir, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_good_include, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_good_timeouts, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_good_postgres, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_good_edges, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_good_limits_defaults, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_good_limits, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_bad_main_file, test_setup, test_teardown),
		cmocka_unit_test(test_diag),
		cmocka_unit_test(test_proto_name),
		cmocka_unit_test_setup_teardown(test_diag_appends, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_check_files_ok, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_check_files_missing, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_check_files_mismatch, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_check_files_not_pem, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_check_files_postgres, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_check_files_unreadable, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_check_files_ids, test_setup, test_teardown),
	};
	enum { NFIXED = sizeof(fixed) / sizeof(fixed[0]), NBAD = sizeof(bad_cases) / sizeof(bad_cases[0]) };
	static struct CMUnitTest tests[NFIXED + NBAD];
	size_t	 i;

	/* One test per bad case, named after it, so a failure says which. */
	memcpy(tests, fixed, sizeof(fixed));
	for (i = 0; i < NBAD; i++) {
		tests[NFIXED + i].name = bad_cases[i].name;
		tests[NFIXED + i].test_func = test_bad;
		tests[NFIXED + i].setup_func = test_setup;
		tests[NFIXED + i].teardown_func = test_teardown;
		tests[NFIXED + i].initial_state = (void *)(uintptr_t)&bad_cases[i];
	}
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
