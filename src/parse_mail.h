/*
 * parse_mail.h - pure parsers for the line-based protocols: POP3 (RFC 1939,
 * 2449) and SMTP (RFC 5321), commands as the front ends receive them and
 * replies as the upstream logins read them.
 *
 * Pure: no I/O, no allocation, no logging. Each takes one line without its
 * CRLF (mg_line_find() in parse_imap.h finds it) and points into it.
 */
#ifndef MG_PARSE_MAIL_H
#define MG_PARSE_MAIL_H

#include <stddef.h>

#define MG_VERB_MAX	15	/* longest command verb kept (bytes) */

/*
 * A command line: a verb (upper-cased, letters and digits only, 1 to
 * MG_VERB_MAX) and the rest after one space (may hold spaces: POP3's PASS
 * takes the whole rest, RFC 1939 §7). The rest's first word is split out
 * for convenience.
 */
struct mg_mail_cmd {
	char		 verb[MG_VERB_MAX + 1];
	const char	*rest;		/* after the verb and one space; "" if none */
	size_t		 rest_len;
	const char	*arg1;		/* first space-separated word of rest */
	size_t		 arg1_len;
	const char	*arg2;		/* everything after arg1 and one space, or NULL */
	size_t		 arg2_len;
};

/* Splits a command line. 0 ok, -1 malformed (empty, bad verb, NUL or control bytes). */
int mg_mail_cmd_parse(const char *line, size_t len, struct mg_mail_cmd *c);

/* A POP3 server line: "+OK text", "-ERR [CODE] text", or "+ challenge" (RFC 5034). */
enum mg_pop3_status {
	MG_POP3_OK = 0,
	MG_POP3_ERR,
	MG_POP3_CONT
};

struct mg_pop3_resp {
	enum mg_pop3_status	 status;
	const char		*code;		/* RFC 2449 response code inside [...], or NULL */
	size_t			 code_len;
	const char		*text;
	size_t			 text_len;
};

/* 0 ok, -1 not a POP3 status line. */
int mg_pop3_resp_parse(const char *line, size_t len, struct mg_pop3_resp *r);

/* One line of an SMTP reply: "250-text" (more follow) or "250 text" (the last). */
struct mg_smtp_reply_line {
	int		 code;		/* 200 .. 599 */
	int		 last;		/* no '-' after the code */
	const char	*text;
	size_t		 text_len;
};

/* 0 ok, -1 malformed (RFC 5321 §4.2: three digits, then SP, '-' or the end). */
int mg_smtp_reply_parse(const char *line, size_t len, struct mg_smtp_reply_line *r);

/*
 * Whether an EHLO keyword list ("PIPELINING\nAUTH PLAIN LOGIN\nSIZE 1000\n",
 * one extension per line as collected from a reply) has keyword kw; with
 * param non-NULL, whether that extension lists param among its words.
 * Case-insensitive.
 */
int mg_smtp_ehlo_has(const char *list, const char *kw, const char *param);

#endif
