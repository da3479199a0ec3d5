/*
 * admin.c - see admin.h.
 */
#include "admin.h"
#include "admin_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "crypto.h"
#include "log.h"
#include "session.h"
#include "store.h"
#include "store_open.h"

static const char help_run[] =
"usage: mailgate run [-c FILE]\n"
"Runs the gateway in the foreground; logs go to standard error.\n"
"SIGINT or SIGTERM stops it.\n";
static const char help_check[] =
"usage: mailgate check [--syntax-only] [-c FILE]\n"
"Validates the configuration and the files it names; prints each problem\n"
"as FILE:LINE:COL: message and exits 2 if there is any.\n"
"--syntax-only skips the checks of referenced files.\n";
static const char help_init[] =
"usage: mailgate init [-c FILE]\n"
"Creates what the configuration names but is missing: the master key\n"
"(mode 0600), the store, and a self-signed certificate and key when\n"
"neither exists. Never overwrites anything.\n";
static const char help_user[] =
"usage: mailgate user add USER [--password-stdin]\n"
"       mailgate user passwd USER [--password-stdin]\n"
"       mailgate user del USER\n"
"       mailgate user disable|enable USER\n"
"       mailgate user password-login USER on|off\n"
"       mailgate user list [--json]\n"
"Manages gateway users. The password is read from the terminal without\n"
"echo (twice), or as one line from standard input with --password-stdin.\n"
"'passwd', 'del', 'disable' and 'password-login USER off' end the user's\n"
"live sessions on every gateway sharing the store within the poll interval.\n"
"'password-login off' leaves only device passwords working.\n";
static const char help_account[] =
"usage: mailgate account set USER PROVIDER --login UPSTREAM_LOGIN [--password-stdin]\n"
"       mailgate account del USER PROVIDER\n"
"       mailgate account list [USER] [--json]\n"
"Manages the provider accounts a user's devices are relayed to. 'set' stores\n"
"the provider app password, encrypted under the master key; setting it again\n"
"replaces it, and the next login of every device uses the new one (live\n"
"sessions go on). With several accounts, a device picks one by logging in as\n"
"USER+PROVIDER, or by being bound to one (device add --account); otherwise\n"
"the first by provider name is used.\n";
static const char help_device[] =
"usage: mailgate device add USER LABEL [--scopes imap,pop3,smtp] [--account PROVIDER] [--json]\n"
"       mailgate device list [USER] [--json]\n"
"       mailgate device revoke USER LABEL\n"
"Device passwords: 'add' generates a random password (160 bits), prints it\n"
"once and stores only a keyed hash. It logs in as USER, only for its scopes\n"
"(default: all three protocols). 'revoke' ends the device's live sessions\n"
"on every gateway sharing the store within the poll interval.\n";
static const char help_key[] =
"usage: mailgate key rotate\n"
"       mailgate key prune\n"
"       mailgate key list [--json]\n"
"'rotate' makes a new master key and re-encrypts every provider secret under\n"
"it while gateways keep serving; the old key stays beside the master key as\n"
"MASTER_KEY.<id> until 'prune' removes the keys no secret uses any more.\n";
static const char help_audit[] =
"usage: mailgate audit [--user USER] [--since WHEN] [--json]\n"
"Shows logins and admin changes, oldest first. WHEN is seconds since the\n"
"epoch, a date (2026-11-22), a UTC time (2026-11-22T10:00:00Z), or an age\n"
"(90s, 30m, 12h, 7d).\n";
static const char help_import[] =
"usage: mailgate import dovecot-passwd FILE\n"
"Adds the users of a Dovecot passwd-file with their existing hashes\n"
"({SHA512-CRYPT}, {BLF-CRYPT}, {CRYPT}, or a bare crypt string), so that\n"
"they keep their passwords. Existing users are left as they are.\n";

static const char *
cmd_help(const char *cmd)
{
	if (strcmp(cmd, "run") == 0)
		return help_run;
	if (strcmp(cmd, "check") == 0)
		return help_check;
	if (strcmp(cmd, "init") == 0)
		return help_init;
	if (strcmp(cmd, "user") == 0)
		return help_user;
	if (strcmp(cmd, "account") == 0)
		return help_account;
	if (strcmp(cmd, "device") == 0)
		return help_device;
	if (strcmp(cmd, "key") == 0)
		return help_key;
	if (strcmp(cmd, "audit") == 0)
		return help_audit;
	if (strcmp(cmd, "import") == 0)
		return help_import;
	return NULL;
}

int
mg_args_parse(struct mg_args *a, int argc, char **argv)
{
	const char	*help;
	int		 i;

	memset(a, 0, sizeof(*a));
	a->cmd = argv[0];
	a->config = getenv("MAILGATE_CONFIG") ? getenv("MAILGATE_CONFIG") : MG_DEFAULT_CONFIG;
	for (i = 1; i < argc; i++) {
		const char *s = argv[i];

		if (strcmp(s, "-c") == 0 || strcmp(s, "--config") == 0) {
			if (++i >= argc)
				goto missing;
			a->config = argv[i];
		} else if (strncmp(s, "--config=", 9) == 0) {
			a->config = s + 9;
		} else if (strcmp(s, "--login") == 0) {
			if (++i >= argc)
				goto missing;
			a->login = argv[i];
		} else if (strncmp(s, "--login=", 8) == 0) {
			a->login = s + 8;
		} else if (strcmp(s, "--scopes") == 0) {
			if (++i >= argc)
				goto missing;
			a->scopes = argv[i];
		} else if (strcmp(s, "--account") == 0) {
			if (++i >= argc)
				goto missing;
			a->account = argv[i];
		} else if (strcmp(s, "--user") == 0) {
			if (++i >= argc)
				goto missing;
			a->user = argv[i];
		} else if (strcmp(s, "--since") == 0) {
			if (++i >= argc)
				goto missing;
			a->since = argv[i];
		} else if (strcmp(s, "--json") == 0) {
			a->json = 1;
		} else if (strcmp(s, "--password-stdin") == 0) {
			a->password_stdin = 1;
		} else if (strcmp(s, "--syntax-only") == 0) {
			a->syntax_only = 1;
		} else if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			a->help = 1;
		} else if (s[0] == '-' && s[1] != '\0') {
			fprintf(stderr, "mailgate %s: unknown option '%s' (see mailgate %s --help)\n",
			    a->cmd, s, a->cmd);
			return -1;
		} else {
			if (a->npos >= MG_ARGS_MAX) {
				fprintf(stderr, "mailgate %s: too many arguments\n", a->cmd);
				return -1;
			}
			a->pos[a->npos++] = s;
		}
	}
	if (a->help) {
		if ((help = cmd_help(a->cmd)) == NULL) {
			fprintf(stderr, "mailgate: unknown command '%s'\n", a->cmd);
			return -1;
		}
		fputs(help, stdout);
		return 1;
	}
	return 0;
missing:
	fprintf(stderr, "mailgate %s: option '%s' needs a value\n", a->cmd, argv[i - 1]);
	return -1;
}

static void
print_diag(struct mg_diag *d)
{
	if (d->text != NULL)
		fputs(d->text, stderr);
	mg_diag_free(d);
}

/* Loads and checks the configuration; prints every problem. NULL on failure. */
struct mg_config *
admin_load_config(struct mg_args *a, int check_files)
{
	struct mg_config	*cfg = NULL;
	struct mg_diag		 d = { NULL, 0, 0 };

	if (mg_config_load(a->config, &cfg, &d) == -1) {
		print_diag(&d);
		return NULL;
	}
	if (check_files && mg_config_check_files(cfg, &d) > 0) {
		print_diag(&d);
		mg_config_free(cfg);
		return NULL;
	}
	mg_diag_free(&d);
	return cfg;
}

int
mg_cmd_check(struct mg_args *a)
{
	struct mg_config *cfg;

	if (a->npos != 0) {
		fputs(help_check, stderr);
		return 2;
	}
	if ((cfg = admin_load_config(a, !a->syntax_only)) == NULL)
		return 2;
	printf("%s: ok\n", a->config);
	mg_config_free(cfg);
	return 0;
}

int
mg_cmd_run(struct mg_args *a)
{
	struct mg_config	*cfg;
	int			 r;

	if (a->npos != 0) {
		fputs(help_run, stderr);
		return 2;
	}
	if ((cfg = admin_load_config(a, 1)) == NULL)
		return 2;
	r = mg_gateway_run(cfg);
	mg_config_free(cfg);
	return r;
}

/* Creates the parent directory of path (one level) when it is missing. */
static int
make_parent(const char *path, mode_t mode)
{
	char	*copy, *dir;
	int	 r = 0;

	if ((copy = strdup(path)) == NULL)
		return -1;
	dir = dirname(copy);
	if (mkdir(dir, mode) == -1 && errno != EEXIST) {
		fprintf(stderr, "mailgate: cannot create directory %s: %s\n", dir, strerror(errno));
		r = -1;
	}
	free(copy);
	return r;
}

/* A P-256 key and a self-signed certificate for localhost, valid one year. */
static int
make_self_signed(const char *certpath, const char *keypath)
{
	EVP_PKEY	*key = NULL;
	X509		*x = NULL;
	X509V3_CTX	 ctx;
	X509_EXTENSION	*ext = NULL;
	FILE		*f = NULL;
	int		 fd, rc = -1;
	uint8_t		 serial[16];
	BIGNUM		*bn = NULL;

	if ((key = EVP_EC_gen("P-256")) == NULL || (x = X509_new()) == NULL)
		goto fail;
	if (mg_random(serial, sizeof(serial)) == -1)
		goto fail;
	serial[0] &= 0x7f;
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		goto fail;
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)"mailgate", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
	if (ext == NULL || !X509_add_ext(x, ext, -1))
		goto fail;
	if (!X509_sign(x, key, EVP_sha256()))
		goto fail;

	if (make_parent(keypath, 0700) == -1)
		goto fail;
	fd = open(keypath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1 || (f = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "mailgate: cannot create %s: %s\n", keypath, strerror(errno));
		goto fail;
	}
	if (!PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) || fclose(f) != 0) {
		f = NULL;
		goto fail;
	}
	f = NULL;
	if (make_parent(certpath, 0755) == -1)
		goto fail;
	fd = open(certpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd == -1 || (f = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "mailgate: cannot create %s: %s\n", certpath, strerror(errno));
		goto fail;
	}
	if (!PEM_write_X509(f, x) || fclose(f) != 0) {
		f = NULL;
		goto fail;
	}
	f = NULL;
	rc = 0;
fail:
	if (rc == -1)
		fprintf(stderr, "mailgate: cannot make a self-signed certificate\n");
	if (f != NULL)
		fclose(f);
	X509_EXTENSION_free(ext);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

int
mg_cmd_init(struct mg_args *a)
{
	struct mg_config	*cfg;
	struct mg_store		*st;
	struct stat		 sb;
	char			 err[MG_ERRLEN];
	int			 rc = 1, have_cert, have_key;

	if (a->npos != 0) {
		fputs(help_init, stderr);
		return 2;
	}
	if ((cfg = admin_load_config(a, 0)) == NULL)
		return 2;
	if (stat(cfg->master_key.path, &sb) == -1) {
		if (make_parent(cfg->master_key.path, 0700) == -1)
			goto out;
		if (mg_master_key_create(cfg->master_key.path, err, sizeof(err)) == -1) {
			fprintf(stderr, "mailgate: %s\n", err);
			goto out;
		}
		printf("created master key %s\n", cfg->master_key.path);
	}
	if (stat(cfg->device_key.path, &sb) == -1) {
		if (make_parent(cfg->device_key.path, 0700) == -1)
			goto out;
		if (mg_master_key_create(cfg->device_key.path, err, sizeof(err)) == -1) {
			fprintf(stderr, "mailgate: device key: %s\n", err);
			goto out;
		}
		printf("created device key %s\n", cfg->device_key.path);
	}
	have_cert = stat(cfg->tls_cert.path, &sb) == 0;
	have_key = stat(cfg->tls_key.path, &sb) == 0;
	if (!have_cert && !have_key) {
		if (make_self_signed(cfg->tls_cert.path, cfg->tls_key.path) == -1)
			goto out;
		printf("created self-signed certificate %s and key %s\n", cfg->tls_cert.path,
		    cfg->tls_key.path);
	} else if (!have_cert || !have_key) {
		fprintf(stderr, "mailgate: only one of %s and %s exists; not touching either\n",
		    cfg->tls_cert.path, cfg->tls_key.path);
		goto out;
	}
	if (cfg->store_sqlite.path != NULL && make_parent(cfg->store_sqlite.path, 0750) == -1)
		goto out;
	if ((st = admin_open_store(cfg)) == NULL)
		goto out;
	mg_store_close(st);
	rc = 0;
out:
	mg_config_free(cfg);
	return rc;
}

/*
 * Reads a password: one line from standard input with --password-stdin,
 * else from the terminal without echo (twice when confirm is set).
 * 0 ok, -1 error (printed). buf is wiped by the caller.
 */
int
admin_read_password(struct mg_args *a, const char *prompt, int confirm, char *buf, size_t len)
{
	struct termios	 old, noecho;
	char		 again[MG_NAME_MAX];
	size_t		 n;
	FILE		*tty;
	int		 ok;

	if (a->password_stdin) {
		if (fgets(buf, (int)len, stdin) == NULL) {
			fprintf(stderr, "mailgate: no password on standard input\n");
			return -1;
		}
		if ((n = strcspn(buf, "\r\n")) == strlen(buf) && n == len - 1) {
			fprintf(stderr, "mailgate: password too long (at most %zu bytes)\n", len - 2);
			return -1;
		}
		buf[n] = '\0';
		if (n == 0) {
			fprintf(stderr, "mailgate: empty password\n");
			return -1;
		}
		return 0;
	}
	if ((tty = fopen("/dev/tty", "r+")) == NULL || tcgetattr(fileno(tty), &old) == -1) {
		fprintf(stderr, "mailgate: no terminal to read the password from; use --password-stdin\n");
		if (tty != NULL)
			fclose(tty);
		return -1;
	}
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	noecho.c_lflag |= ECHONL;
	ok = -1;
	if (tcsetattr(fileno(tty), TCSAFLUSH, &noecho) == 0) {
		fprintf(tty, "%s: ", prompt);
		fflush(tty);
		if (fgets(buf, (int)len, tty) != NULL) {
			buf[strcspn(buf, "\r\n")] = '\0';
			ok = buf[0] != '\0' ? 0 : -1;
			if (ok == 0 && confirm) {
				fprintf(tty, "Again: ");
				fflush(tty);
				if (fgets(again, sizeof(again), tty) == NULL)
					ok = -1;
				else {
					again[strcspn(again, "\r\n")] = '\0';
					if (strcmp(buf, again) != 0) {
						fprintf(stderr, "mailgate: the passwords differ\n");
						ok = -1;
					}
				}
				OPENSSL_cleanse(again, sizeof(again));
			} else if (ok == -1)
				fprintf(stderr, "mailgate: empty password\n");
		}
		tcsetattr(fileno(tty), TCSAFLUSH, &old);
	}
	fclose(tty);
	return ok;
}

int
admin_valid_name(const char *what, const char *s)
{
	size_t	i, n = strlen(s);

	if (n == 0 || n >= MG_NAME_MAX) {
		fprintf(stderr, "mailgate: %s must be 1 to %d bytes\n", what, MG_NAME_MAX - 1);
		return 0;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c == 0x7f) {
			fprintf(stderr, "mailgate: %s may not contain spaces or control characters\n", what);
			return 0;
		}
	}
	return 1;
}

struct mg_store *
admin_open_store(struct mg_config *cfg)
{
	struct mg_store	*st;
	char		 err[MG_ERRLEN];

	if ((st = mg_store_open_config(cfg, err, sizeof(err))) == NULL)
		fprintf(stderr, "mailgate: %s\n", err);
	return st;
}

void
admin_json_str(FILE *f, const char *s)
{
	const unsigned char *p;

	fputc('"', f);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

const char *
admin_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0) {
		snprintf(buf, len, "never");
		return buf;
	}
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}
