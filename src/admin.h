/*
 * admin.h - the subcommands: argument parsing, run, check, init, user,
 * account, device, key, audit, import. Admin commands work on the store
 * directly; a running gateway sees their changes at the next login, and
 * revoking changes end live sessions within the poll interval.
 *
 * Exit status of every command: see enum mg_exit.
 */
#ifndef MG_ADMIN_H
#define MG_ADMIN_H

#define MG_VERSION		"0.2.0"
#define MG_DEFAULT_CONFIG	"/etc/mailgate/mailgate.yaml"
#define MG_ARGS_MAX		8

enum mg_exit {
	MG_EXIT_OK = 0,		/* done */
	MG_EXIT_FAIL = 1,	/* the store, a file or the system failed */
	MG_EXIT_USAGE = 2,	/* bad arguments or configuration */
	MG_EXIT_NOTFOUND = 3,	/* no such user, provider, account, device or key */
	MG_EXIT_EXISTS = 4	/* the user or device exists already */
};

/* A parsed command line: options may stand before or after the positional arguments. */
struct mg_args {
	const char	*cmd;			/* run, check, init, user, account, device, key, audit, import */
	const char	*config;		/* -c FILE */
	const char	*pos[MG_ARGS_MAX];	/* positional arguments after cmd */
	int		 npos;
	const char	*login;			/* --login */
	const char	*scopes;		/* --scopes imap,pop3,smtp */
	const char	*account;		/* --account PROVIDER */
	const char	*user;			/* --user (audit) */
	const char	*since;			/* --since (audit) */
	int		 password_stdin;	/* --password-stdin */
	int		 syntax_only;		/* --syntax-only */
	int		 json;			/* --json */
	int		 help;			/* --help */
};

/* 0 parsed, 1 help was printed, -1 usage error (printed). argv[0] is the command. */
int mg_args_parse(struct mg_args *a, int argc, char **argv);

int mg_cmd_run(struct mg_args *a);
int mg_cmd_check(struct mg_args *a);
int mg_cmd_init(struct mg_args *a);
int mg_cmd_user(struct mg_args *a);
int mg_cmd_account(struct mg_args *a);
int mg_cmd_device(struct mg_args *a);
int mg_cmd_key(struct mg_args *a);
int mg_cmd_audit(struct mg_args *a);
int mg_cmd_import(struct mg_args *a);

#endif
