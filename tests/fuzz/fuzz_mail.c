/*
 * fuzz_mail.c - libFuzzer driver for parse_mail.c: the POP3 and SMTP
 * command parser, the POP3 status line, the SMTP reply line, and the
 * keyword-list lookup, over every line mg_line_find() cuts from the input.
 *
 * Checks that every pointer returned lies inside the line it came from and
 * that the verb is upper-case alphanumeric.
 */
/* fuzz-sources: src/parse_mail.c src/parse_imap.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse_imap.h"
#include "parse_mail.h"

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
inside(const char *p, size_t n, const char *line, size_t len)
{
	return p >= line && p + n <= line + len;
}

static void
one_line(const char *line, size_t len)
{
	struct mg_mail_cmd		c;
	struct mg_pop3_resp		pr;
	struct mg_smtp_reply_line	sr;
	char				list[512];
	size_t				i;

	if (mg_mail_cmd_parse(line, len, &c) == 0) {
		CHECK(c.verb[0] != '\0' && strlen(c.verb) <= MG_VERB_MAX);
		for (i = 0; c.verb[i] != '\0'; i++)
			CHECK((c.verb[i] >= 'A' && c.verb[i] <= 'Z') || (c.verb[i] >= '0' && c.verb[i] <= '9'));
		if (c.rest_len > 0)
			CHECK(inside(c.rest, c.rest_len, line, len));
		if (c.arg1 != NULL)
			CHECK(inside(c.arg1, c.arg1_len, line, len));
		if (c.arg2 != NULL)
			CHECK(inside(c.arg2, c.arg2_len, line, len));
	}
	if (mg_pop3_resp_parse(line, len, &pr) == 0) {
		CHECK(inside(pr.text, pr.text_len, line, len));
		if (pr.code != NULL)
			CHECK(inside(pr.code, pr.code_len, line, len));
	}
	if (mg_smtp_reply_parse(line, len, &sr) == 0) {
		CHECK(sr.code >= 200 && sr.code <= 599);
		CHECK(inside(sr.text, sr.text_len, line, len));
	}
	/* The line as a keyword list, looked up by its own first word. */
	if (len < sizeof(list)) {
		memcpy(list, line, len);
		list[len] = '\0';
		if (strlen(list) == len && c.verb[0] != '\0')
			(void)mg_smtp_ehlo_has(list, c.verb, c.arg1 != NULL ? "PLAIN" : NULL);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t	ll, cons;
	int	r;

	while (size > 0) {
		r = mg_line_find(data, size, 4096, &ll, &cons);
		if (r != 1)
			break;
		CHECK(ll < cons && cons <= size);
		one_line((const char *)data, ll);
		data += cons;
		size -= cons;
	}
	return 0;
}
