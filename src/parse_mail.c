/*
 * parse_mail.c - see parse_mail.h.
 */
#include "parse_mail.h"

#include <string.h>
#include <strings.h>

static int
is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int
mg_mail_cmd_parse(const char *line, size_t len, struct mg_mail_cmd *c)
{
	size_t	i, v;

	memset(c, 0, sizeof(*c));
	c->rest = "";
	if (len == 0)
		return -1;
	/* No NUL or control bytes but TAB anywhere in a command line. */
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if (ch == 0 || (ch < 0x20 && ch != '\t') || ch == 0x7f)
			return -1;
	}
	for (v = 0; v < len && line[v] != ' '; v++) {
		if (v >= MG_VERB_MAX || !is_alnum((unsigned char)line[v]))
			return -1;
		c->verb[v] = (char)(line[v] >= 'a' && line[v] <= 'z' ? line[v] - 32 : line[v]);
	}
	if (v == 0)
		return -1;
	c->verb[v] = '\0';
	if (v == len)
		return 0;
	c->rest = line + v + 1;
	c->rest_len = len - v - 1;
	c->arg1 = c->rest;
	for (i = 0; i < c->rest_len && c->rest[i] != ' '; i++)
		;
	c->arg1_len = i;
	if (i < c->rest_len) {
		c->arg2 = c->rest + i + 1;
		c->arg2_len = c->rest_len - i - 1;
	}
	return 0;
}

int
mg_pop3_resp_parse(const char *line, size_t len, struct mg_pop3_resp *r)
{
	size_t	off, i;

	memset(r, 0, sizeof(*r));
	if (len >= 3 && memcmp(line, "+OK", 3) == 0 && (len == 3 || line[3] == ' ')) {
		r->status = MG_POP3_OK;
		off = 3;
	} else if (len >= 4 && memcmp(line, "-ERR", 4) == 0 && (len == 4 || line[4] == ' ')) {
		r->status = MG_POP3_ERR;
		off = 4;
	} else if (len >= 1 && line[0] == '+' && (len == 1 || line[1] == ' ')) {
		r->status = MG_POP3_CONT;
		off = 1;
	} else
		return -1;
	if (off < len)
		off++;
	/* RFC 2449 §8: an optional [CODE] right after the status. */
	if (r->status != MG_POP3_CONT && off < len && line[off] == '[') {
		for (i = off + 1; i < len && line[i] != ']'; i++)
			;
		if (i == len)
			return -1;
		r->code = line + off + 1;
		r->code_len = i - off - 1;
		off = i + 1;
		if (off < len && line[off] == ' ')
			off++;
	}
	r->text = line + off;
	r->text_len = len - off;
	return 0;
}

int
mg_smtp_reply_parse(const char *line, size_t len, struct mg_smtp_reply_line *r)
{
	memset(r, 0, sizeof(*r));
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9')
		return -1;
	r->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (len == 3) {
		r->last = 1;
		r->text = line + 3;
		return 0;
	}
	if (line[3] != ' ' && line[3] != '-')
		return -1;
	r->last = line[3] == ' ';
	r->text = line + 4;
	r->text_len = len - 4;
	return 0;
}

/* Whether word w (length wl) equals s, ignoring case. */
static int
word_is(const char *w, size_t wl, const char *s)
{
	return strlen(s) == wl && strncasecmp(w, s, wl) == 0;
}

int
mg_smtp_ehlo_has(const char *list, const char *kw, const char *param)
{
	const char	*line = list, *end, *p, *w;
	int		 first;

	while (*line != '\0') {
		end = strchr(line, '\n');
		if (end == NULL)
			end = line + strlen(line);
		first = 1;
		for (p = line; p < end;) {
			while (p < end && (*p == ' ' || *p == '='))
				p++;
			w = p;
			while (p < end && *p != ' ' && *p != '=')
				p++;
			if (p == w)
				break;
			if (first) {
				if (!word_is(w, (size_t)(p - w), kw))
					break;
				if (param == NULL)
					return 1;
				first = 0;
			} else if (word_is(w, (size_t)(p - w), param))
				return 1;
		}
		line = *end == '\n' ? end + 1 : end;
	}
	return 0;
}
