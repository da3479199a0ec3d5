/*
 * fuzz_config.c - libFuzzer driver for the configuration loader:
 * mg_config_load, mg_config_check_files, mg_config_free and mg_diag_free.
 *
 * The loader reads files, so each input is written to c.yaml in a private
 * directory made once per process (under /dev/shm when it exists, else
 * /tmp) and removed at exit. Whatever follows a line "#inc" goes to
 * inc.yaml beside it instead, so that "include: [ inc.yaml ]" reaches a
 * second file of the fuzzer's making; inc.yaml is written (empty if need
 * be) for every input, so that a run never depends on the one before.
 *
 * Nothing outside that directory may be read: an include or a certificate
 * naming /proc/kmsg or a FIFO would block the fuzzer, and /etc files would
 * make runs depend on the machine. So an input whose include entries hold
 * a '/' is rejected (found by parsing its first document the way the
 * loader does, and only when the input holds a '/' or a '\' at all), and
 * the certificate, key and CA paths of a loaded config that lead out of
 * the directory are dropped before mg_config_check_files() runs. The
 * other checks only stat() their paths, which is harmless anywhere; the
 * user and group are looked up for real.
 *
 * Checked on every input: load fails exactly when it reports something;
 * the diagnostics are NUL-terminated, diag.len and diag.count agree with
 * the text, and every line names a file in the directory; a loaded config
 * keeps every setting within its documented range and its rules
 * (block_after >= delay_after, a group only with a user, one store). Leaks
 * are LeakSanitizer's to find.
 */
/* fuzz-sources: src/config.c */
/* fuzz-pkgs: yaml-0.1 openssl libpq */
#include <sys/stat.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "config.h"

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

#define IN_MAX		(64 * 1024)	/* longer inputs are rejected, to keep runs fast */
#define INC_MARK	"\n#inc\n"	/* what follows goes to inc.yaml */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	fz_dir[64];		/* the private directory, no trailing '/' */
static char	fz_main[96];		/* fz_dir/c.yaml */
static char	fz_inc[96];		/* fz_dir/inc.yaml */

static void
fz_cleanup(void)
{
	unlink(fz_main);
	unlink(fz_inc);
	rmdir(fz_dir);
}

static void
fz_init(void)
{
	struct stat st;

	if (fz_dir[0] != '\0')
		return;
	snprintf(fz_dir, sizeof(fz_dir), "%s/mg_fuzz_config.XXXXXX",
	    stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp");
	CHECK(mkdtemp(fz_dir) != NULL);
	snprintf(fz_main, sizeof(fz_main), "%s/c.yaml", fz_dir);
	snprintf(fz_inc, sizeof(fz_inc), "%s/inc.yaml", fz_dir);
	atexit(fz_cleanup);
}

static void
fz_write(const char *path, const uint8_t *data, size_t len)
{
	FILE	*fp;

	CHECK((fp = fopen(path, "wb")) != NULL);
	CHECK(len == 0 || fwrite(data, 1, len, fp) == len);
	CHECK(fclose(fp) == 0);
}

/* Whether any scalar in the tree under node id holds a '/'. */
static int
fz_has_slash(yaml_document_t *doc, int id, int depth)
{
	yaml_node_t *n = yaml_document_get_node(doc, id);
	yaml_node_item_t *i;
	yaml_node_pair_t *p;

	if (n == NULL)
		return 0;
	if (depth > 64)
		return 1;	/* deeper than the loader looks; refuse to guess */
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return memchr(n->data.scalar.value, '/', n->data.scalar.length) != NULL;
	case YAML_SEQUENCE_NODE:
		for (i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++)
			if (fz_has_slash(doc, *i, depth + 1))
				return 1;
		return 0;
	case YAML_MAPPING_NODE:
		for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++)
			if (fz_has_slash(doc, p->key, depth + 1) || fz_has_slash(doc, p->value, depth + 1))
				return 1;
		return 0;
	default:
		return 0;
	}
}

/*
 * Whether the main file could make the loader open a file outside fz_dir:
 * an "include" key at the top of its first document (the only one the
 * loader walks) whose value holds a '/'. A document libyaml cannot load is
 * never walked, so it is safe.
 */
static int
fz_escapes(const uint8_t *data, size_t len)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root, *k;
	yaml_node_pair_t *p;
	int	 bad = 0;

	if (memchr(data, '/', len) == NULL && memchr(data, '\\', len) == NULL)
		return 0;
	CHECK(yaml_parser_initialize(&parser));
	yaml_parser_set_input_string(&parser, data, len);
	if (!yaml_parser_load(&parser, &doc)) {
		yaml_parser_delete(&parser);
		return 0;
	}
	root = yaml_document_get_root_node(&doc);
	if (root != NULL && root->type == YAML_MAPPING_NODE) {
		for (p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top && !bad; p++) {
			k = yaml_document_get_node(&doc, p->key);
			if (k->type == YAML_SCALAR_NODE && k->data.scalar.length == 7 &&
			    memcmp(k->data.scalar.value, "include", 7) == 0)
				bad = fz_has_slash(&doc, p->value, 0);
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return bad;
}

/* Whether a path is a file directly in fz_dir. */
static int
fz_inside(const char *path)
{
	size_t	 dlen = strlen(fz_dir);

	return strncmp(path, fz_dir, dlen) == 0 && path[dlen] == '/' && strchr(path + dlen + 1, '/') == NULL;
}

/* Drops a path the file checks would open outside fz_dir. */
static void
fz_contain(struct mg_cfg_path *p)
{
	if (p->path != NULL && !fz_inside(p->path)) {
		free(p->path);
		p->path = NULL;
	}
}

/* The diagnostics must be well formed, and name only files in fz_dir. */
static void
fz_check_diag(const struct mg_diag *d)
{
	const char *line, *nl;
	size_t	 dlen = strlen(fz_dir);
	int	 lines = 0;

	if (d->text == NULL) {
		CHECK(d->len == 0 && d->count == 0);
		return;
	}
	CHECK(strlen(d->text) == d->len);
	CHECK(d->len > 0 && d->text[d->len - 1] == '\n');
	for (line = d->text; *line != '\0'; line = nl + 1) {
		CHECK((nl = strchr(line, '\n')) != NULL);
		CHECK(strncmp(line, fz_dir, dlen) == 0 && line[dlen] == '/');
		lines++;
	}
	/* One problem, one line: a newline inside a message would break that. */
	CHECK(lines == d->count);
}

static void
fz_check_cfg(const struct mg_config *cfg)
{
	size_t	 i;
	int	 p;

	CHECK(cfg->nfiles >= 1 && strcmp(cfg->files[0], fz_main) == 0);
	CHECK(cfg->nlisten >= 1 && cfg->listen != NULL);
	for (i = 0; i < cfg->nlisten; i++) {
		CHECK((unsigned)cfg->listen[i].proto < MG_PROTO_COUNT);
		CHECK(cfg->listen[i].addrlen > 0);
	}
	CHECK(cfg->tls_cert.path != NULL && cfg->tls_key.path != NULL);
	CHECK((cfg->store_sqlite.path != NULL) != (cfg->store_postgres.path != NULL));
	CHECK(cfg->master_key.path != NULL && cfg->device_key.path != NULL);
	CHECK(strcmp(cfg->master_key.path, cfg->device_key.path) != 0);

	CHECK(cfg->timeout_login >= 1 && cfg->timeout_login <= 3600);
	CHECK(cfg->timeout_idle >= 1 && cfg->timeout_idle <= 86400);
	CHECK(cfg->timeout_connect >= 1 && cfg->timeout_connect <= 600);
	CHECK(cfg->timeout_shutdown <= 3600);
	CHECK(cfg->poll_interval >= 1 && cfg->poll_interval <= 60);
	CHECK(cfg->auth_cache_ttl <= 3600);

	CHECK(cfg->run_group == NULL || cfg->run_user != NULL);
	CHECK((cfg->run_user == NULL) == (cfg->run_user_pos.file == NULL));
	CHECK((cfg->run_group == NULL) == (cfg->run_group_pos.file == NULL));
	CHECK(cfg->run_user == NULL || (cfg->run_user[0] != '\0' && strlen(cfg->run_user) <= 255 &&
	    strspn(cfg->run_user, "0123456789") < strlen(cfg->run_user)));

	CHECK(cfg->max_connections >= 1 && cfg->max_connections <= 1000000);
	CHECK(cfg->max_connections_per_ip >= 1 && cfg->max_connections_per_ip <= 1000000);
	CHECK(cfg->max_sessions_per_user >= 1 && cfg->max_sessions_per_user <= 100000);
	for (p = 0; p < MG_PROTO_COUNT; p++)
		CHECK(cfg->line_max[p] >= 512 && cfg->line_max[p] <= 16384);
	CHECK(cfg->literal_max >= 64 && cfg->literal_max <= 8191);

	CHECK(cfg->bf_delay_after >= 1 && cfg->bf_delay_after <= 1000);
	CHECK(cfg->bf_max_delay <= 60);
	CHECK(cfg->bf_block_after >= 1 && cfg->bf_block_after <= 100000);
	CHECK(cfg->bf_block_after >= cfg->bf_delay_after);
	CHECK(cfg->bf_block_time >= 1 && cfg->bf_block_time <= 86400);
	CHECK(cfg->bf_window >= 1 && cfg->bf_window <= 86400);

	for (i = 0; i < cfg->nproviders; i++) {
		CHECK(cfg->providers[i].name[0] != '\0');
		CHECK(mg_config_provider(cfg, cfg->providers[i].name) == &cfg->providers[i]);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mg_diag	 diag = { NULL, 0, 0 }, fdiag = { NULL, 0, 0 };
	struct mg_config *cfg = NULL;
	const uint8_t	*mark;
	size_t		 mainlen, i;
	int		 rc, n;

	if (size > IN_MAX)
		return -1;
	fz_init();

	mark = memmem(data, size, INC_MARK, sizeof(INC_MARK) - 1);
	mainlen = mark != NULL ? (size_t)(mark - data) + 1 : size;
	if (fz_escapes(data, mainlen))
		return -1;
	fz_write(fz_main, data, mainlen);
	if (mark != NULL)
		fz_write(fz_inc, mark + sizeof(INC_MARK) - 1, size - mainlen - (sizeof(INC_MARK) - 2));
	else
		fz_write(fz_inc, data, 0);

	rc = mg_config_load(fz_main, &cfg, &diag);
	CHECK(rc == 0 || rc == -1);
	fz_check_diag(&diag);
	if (rc == -1) {
		CHECK(cfg == NULL);
		CHECK(diag.count > 0);
	} else {
		CHECK(cfg != NULL);
		CHECK(diag.count == 0 && diag.text == NULL);
	}
	mg_diag_free(&diag);
	CHECK(diag.text == NULL && diag.len == 0 && diag.count == 0);
	mg_diag_free(&diag);
	if (cfg == NULL)
		return 0;

	fz_check_cfg(cfg);
	fz_contain(&cfg->tls_cert);
	fz_contain(&cfg->tls_key);
	for (i = 0; i < cfg->nproviders; i++)
		fz_contain(&cfg->providers[i].ca_file);
	n = mg_config_check_files(cfg, &fdiag);
	CHECK(n == fdiag.count);
	fz_check_diag(&fdiag);
	mg_diag_free(&fdiag);
	mg_config_free(cfg);
	return 0;
}
