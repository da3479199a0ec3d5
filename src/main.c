/*
 * main.c - the mailgate command: run the gateway, check a configuration,
 * and administer the credential store (admin.c).
 *
 * Exit status: see enum mg_exit in admin.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "auth.h"
#include "config.h"
#include "log.h"
#include "session.h"

static const char usage_text[] =
"usage: mailgate COMMAND [ARGS] [-c FILE]\n"
"\n"
"Commands:\n"
"  run                      run the gateway in the foreground\n"
"  check [--syntax-only]    validate the configuration (FILE:LINE:COL: message)\n"
"  init                     create the master key, the store and, when missing,\n"
"                           a self-signed certificate\n"
"  user add|passwd|del|list manage gateway users\n"
"  account set|del|list     manage users' provider accounts\n"
"  device add|list|revoke   per-device passwords with scopes\n"
"  key rotate|prune|list    master key rotation\n"
"  audit                    logins and admin changes\n"
"  import dovecot-passwd F  users with their existing hashes\n"
"\n"
"Every command takes -c FILE (default " MG_DEFAULT_CONFIG ") before or after\n"
"its arguments, and --help.\n";

int
main(int argc, char **argv)
{
	struct mg_args	a;
	int		r;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("mailgate %s\n", MG_VERSION);
		return 0;
	}
	if ((r = mg_args_parse(&a, argc - 1, argv + 1)) != 0)
		return r < 0 ? 2 : 0;
	if (strcmp(a.cmd, "run") == 0) {
		mg_auth_pool_setup();	/* before libuv starts its threads */
		return mg_cmd_run(&a);
	}
	if (strcmp(a.cmd, "check") == 0)
		return mg_cmd_check(&a);
	if (strcmp(a.cmd, "init") == 0)
		return mg_cmd_init(&a);
	if (strcmp(a.cmd, "user") == 0)
		return mg_cmd_user(&a);
	if (strcmp(a.cmd, "account") == 0)
		return mg_cmd_account(&a);
	if (strcmp(a.cmd, "device") == 0)
		return mg_cmd_device(&a);
	if (strcmp(a.cmd, "key") == 0)
		return mg_cmd_key(&a);
	if (strcmp(a.cmd, "audit") == 0)
		return mg_cmd_audit(&a);
	if (strcmp(a.cmd, "import") == 0)
		return mg_cmd_import(&a);
	fprintf(stderr, "mailgate: unknown command '%s'\n%s", a.cmd, usage_text);
	return 2;
}
