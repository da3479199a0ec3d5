/*
 * parse_imap.h - pure parsers for IMAP (RFC 9051 / 3501): client commands
 * as the gateway's front end receives them, and server responses as the
 * upstream login reads them.
 *
 * Pure means: bytes in, result out. No I/O, no allocation, no logging; the
 * parser can stop after any byte and resume with the next buffer, and every
 * number it accumulates is checked for overflow. tests/fuzz/ drives them.
 */
#ifndef MG_PARSE_IMAP_H
#define MG_PARSE_IMAP_H

#include <stddef.h>
#include <stdint.h>

#define MG_IMAP_TAG_MAX		64	/* bytes of a tag, NUL excluded */
#define MG_IMAP_NAME_MAX	32	/* bytes of a command name */
#define MG_IMAP_ARGS_MAX	8	/* arguments kept per command (more is INVALID) */
#define MG_IMAP_ARGBUF		8192	/* bytes of all arguments of one command, literals included */

enum mg_imap_result {
	MG_IMAP_OK = 0,		/* a whole command is in p->cmd */
	MG_IMAP_AGAIN,		/* everything was consumed; feed more bytes */
	MG_IMAP_LITERAL,	/* a synchronizing literal {n} was announced: send "+ ..." then feed more */
	MG_IMAP_INVALID		/* syntax error or limit: p->error says why, p->fatal says whether to close */
};

enum mg_imap_argtype {
	MG_IMAP_ATOM = 0,	/* also numbers and NIL, as written */
	MG_IMAP_QUOTED,		/* unescaped contents */
	MG_IMAP_LIT		/* literal contents, {n} or {n+} */
};

struct mg_imap_arg {
	enum mg_imap_argtype	 type;
	const char		*p;	/* into the parser's argbuf, NUL-terminated */
	size_t			 len;	/* may contain NUL for literals */
};

struct mg_imap_cmd {
	char			tag[MG_IMAP_TAG_MAX + 1];	/* empty if not parsed (yet) */
	char			name[MG_IMAP_NAME_MAX + 1];	/* upper-cased */
	int			nargs;
	struct mg_imap_arg	args[MG_IMAP_ARGS_MAX];
};

struct mg_imap_parser {
	int			state;		/* private: where in a command we are */
	size_t			literal_left;	/* private: literal bytes still to read */
	size_t			literal_max;	/* largest literal accepted (<= MG_IMAP_ARGBUF) */
	size_t			line_max;	/* longest command line accepted, literals excluded */
	size_t			line_len;	/* private: bytes of the current line so far */
	size_t			argbuf_used;	/* private */
	int			fatal;		/* after INVALID: 1 if the connection should be closed */
	const char		*error;		/* after INVALID: a static human-readable reason */
	struct mg_imap_cmd	cmd;		/* the command being built / just completed */
	char			argbuf[MG_IMAP_ARGBUF];	/* private: argument storage */
};

/*
 * Prepares a parser. line_max bounds one line (at most MG_IMAP_ARGBUF);
 * literal_max bounds one literal. Call again (or mg_imap_parser_reset) to
 * start over, e.g. after STARTTLS.
 */
void mg_imap_parser_init(struct mg_imap_parser *p, size_t line_max, size_t literal_max);
void mg_imap_parser_reset(struct mg_imap_parser *p);	/* keeps the limits */

/*
 * Feeds bytes. *consumed is set to how many were used. After OK, LITERAL and
 * INVALID, call again with the remaining bytes. After a non-fatal INVALID the
 * parser has skipped to the end of the bad line (or refused the literal) and
 * p->cmd.tag holds the tag if one was read, for a tagged BAD. A fatal INVALID
 * (line too long, literal too large for a non-synchronizing literal) cannot
 * be recovered from. Lines end in CRLF; a bare LF is accepted too.
 */
enum mg_imap_result mg_imap_parse(struct mg_imap_parser *p, const uint8_t *data, size_t len, size_t *consumed);

/*
 * Finds one line in data: returns 1 and sets *linelen (without CR LF) and
 * *consumed (with them) when a whole line is there; 0 when more bytes are
 * needed; -1 when no line end comes within max bytes.
 */
int mg_line_find(const uint8_t *data, size_t len, size_t max, size_t *linelen, size_t *consumed);

/* A server response line, classified. */
enum mg_imap_resp_type {
	MG_IMAP_RESP_UNTAGGED = 0,	/* "* ..." */
	MG_IMAP_RESP_TAGGED,		/* "tag ..." */
	MG_IMAP_RESP_CONTINUE		/* "+ ..." */
};

enum mg_imap_resp_status {
	MG_IMAP_ST_NONE = 0,	/* untagged data such as "* CAPABILITY ..." or "* 3 EXISTS" */
	MG_IMAP_ST_OK,
	MG_IMAP_ST_NO,
	MG_IMAP_ST_BAD,
	MG_IMAP_ST_BYE,
	MG_IMAP_ST_PREAUTH
};

struct mg_imap_resp {
	enum mg_imap_resp_type	 type;
	enum mg_imap_resp_status status;
	char			 tag[MG_IMAP_TAG_MAX + 1];
	const char		*code;		/* into the line: text inside [...] after the status, or NULL */
	size_t			 code_len;
	const char		*text;		/* into the line: the rest after status and code (or after "+ ") */
	size_t			 text_len;
	const char		*data;		/* for untagged non-status lines: everything after "* " */
	size_t			 data_len;
};

/* Classifies one response line (without CRLF). 0 ok, -1 malformed. */
int mg_imap_resp_parse(const char *line, size_t len, struct mg_imap_resp *r);

/*
 * Looks for a capability (case-insensitive, whole word) in a space-separated
 * list such as "IMAP4rev1 SASL-IR AUTH=PLAIN". For a response code pass the
 * code with its leading "CAPABILITY " word; the word itself never matches.
 */
int mg_imap_caps_has(const char *caps, size_t len, const char *cap);

/*
 * Writes s as an IMAP quoted string (with surrounding quotes, \ and "
 * escaped) into out. Returns its length, or -1 when s cannot be quoted
 * (contains CR, LF, NUL or 8-bit bytes: send it as a literal) or out is too small.
 */
int mg_imap_quote(const char *s, size_t slen, char *out, size_t outlen);

#endif
