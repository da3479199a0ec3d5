/*
 * admin.h - the subcommands: argument parsing, run, check, init, user,
 * account. Admin commands work on the store directly; a running gateway
 * sees their changes at the next login.
 */
#ifndef MG_ADMIN_H
#define MG_ADMIN_H

#define MG_VERSION		"0.1.0"
#define MG_DEFAULT_CONFIG	"/etc/mailgate/mailgate.yaml"
#define MG_ARGS_MAX		8

/* A parsed command line: options may stand before or after the positional arguments. */
struct mg_args {
	const char	*cmd;			/* run, check, init, user, account */
	const char	*config;		/* -c FILE */
	const char	*pos[MG_ARGS_MAX];	/* positional arguments after cmd */
	int		 npos;
	const char	*login;			/* --login */
	int		 password_stdin;	/* --password-stdin */
	int		 syntax_only;		/* --syntax-only */
	int		 help;			/* --help */
};

/* 0 parsed, 1 help was printed, -1 usage error (printed). argv[0] is the command. */
int mg_args_parse(struct mg_args *a, int argc, char **argv);

int mg_cmd_run(struct mg_args *a);
int mg_cmd_check(struct mg_args *a);
int mg_cmd_init(struct mg_args *a);
int mg_cmd_user(struct mg_args *a);
int mg_cmd_account(struct mg_args *a);

#endif
