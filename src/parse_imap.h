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

/*
 * Relay tracking: what the gateway needs to know about an IMAP session it
 * relays to hand the provider connection, still logged in, to the next
 * login of the same account once the device says LOGOUT (see uppool.h).
 *
 * Two scanners, one per direction, fed the bytes exactly as they are
 * relayed. They find line ends and skip literals ({n}, {n+}, ~{n}: RFC 9051
 * section 4.3, RFC 7888), so message data is never mistaken for commands or
 * responses; they look at the first bytes of each client command (tag,
 * name, UID's subcommand) and of each server response (tagged or not), and
 * count the commands still unanswered. Anything that changes the session
 * for good (ENABLE, COMPRESS, CONDSTORE, an unknown command...) or that the
 * scanners cannot follow marks the session tainted: it is then never
 * reused, and the caller may stop feeding the scanners.
 *
 * Pure: no allocation, no I/O; any byte boundary; every number checked.
 */
#define MG_IMTRK_HEAD	80	/* first bytes of a client command kept (tag, name, subcommand) */
#define MG_IMTRK_SHEAD	28	/* first bytes of a server response kept (tag, status) */
#define MG_IMTRK_SELTAG	20	/* longest tag of a SELECT/EXAMINE/CLOSE/UNSELECT whose answer is followed */

enum mg_imtrk_result {
	MG_IMTRK_AGAIN = 0,	/* everything was consumed */
	MG_IMTRK_LOGOUT		/* a LOGOUT the gateway may answer itself begins at *consumed;
				 * t->logout_tag holds its tag and t->logout_len its length */
};

struct mg_imap_track {
	/* Client -> provider. */
	uint64_t	c_lit;		/* literal bytes still to skip */
	uint64_t	c_num;		/* literal length being read at the end of a line */
	uint8_t		c_litst;	/* private: where in "{digits[+]}" CR the line's end is */
	uint8_t		c_inline;	/* a command has begun (its first byte was seen) */
	uint8_t		c_idle;		/* IDLE is in progress: the next line is DONE */
	uint16_t	c_head_len;	/* bytes in c_head */
	char		c_head[MG_IMTRK_HEAD];	/* the command's first bytes (not literal data) */
	uint64_t	c_w1, c_w2;	/* the command's last 16 bytes, upper-cased, for words like MODSEQ */
	/* Provider -> client. */
	uint64_t	s_lit;		/* literal bytes still to skip */
	uint8_t		s_head_len;	/* bytes in s_head */
	uint8_t		s_tail_len;	/* bytes in s_tail */
	char		s_head[MG_IMTRK_SHEAD];	/* the response's first bytes: "* ", "+ " or tag and status */
	char		s_tail[24];	/* the last bytes of the current line, for "{n}" */
	/* Both. */
	uint32_t	pending;	/* commands sent and not yet answered with a tagged line */
	uint8_t		selected;	/* a mailbox may be selected (see parse_imap_relay.c) */
	uint8_t		sel_kind;	/* the last SELECT/EXAMINE (1) or CLOSE/UNSELECT (0) sent */
	uint8_t		sel_tag_len;	/* its tag's length; 0: no answer awaited (or too long a tag) */
	char		sel_tag[MG_IMTRK_SELTAG];	/* its tag */
	uint8_t		tainted;	/* the session must not be reused */
	const char	*why;		/* when tainted: a static reason, for the log */
	int64_t		c_start;	/* private: where the current command began in this buffer, -1 before it */
	uint8_t		logout_tag_len;	/* after MG_IMTRK_LOGOUT: its tag is c_head[0 .. logout_tag_len) */
	size_t		logout_len;	/* after MG_IMTRK_LOGOUT: bytes of the LOGOUT line, CRLF included */
};

void mg_imap_track_init(struct mg_imap_track *t);

/*
 * Feeds client bytes on their way to the provider. Returns AGAIN when all n
 * were consumed, or LOGOUT when a complete LOGOUT command (all of it in this
 * buffer, with a valid tag and no arguments) arrived while no other command
 * was unanswered, IDLE was not running, the provider was between two
 * responses (not inside a line or a literal) and the session is not
 * tainted: *consumed is then where that command begins (the bytes before it
 * go to the provider as usual). A LOGOUT that does not qualify is counted
 * like any other command.
 */
enum mg_imtrk_result mg_imap_track_client(struct mg_imap_track *t, const uint8_t *p, size_t n,
    size_t *consumed);
/*
 * (After LOGOUT the scanner is left inside that command: the session ends
 * there, or the caller stops feeding it.)
 */

/* Feeds provider bytes on their way to the device (all are consumed). */
void mg_imap_track_server(struct mg_imap_track *t, const uint8_t *p, size_t n);

#endif
