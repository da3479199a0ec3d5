/*
 * test_parse_mail.c - the POP3 and SMTP line parsers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "parse_mail.h"

#define S(x) x, sizeof(x) - 1

static void
test_cmd_verb_only(void **state)
{
	struct mg_mail_cmd c;

	(void)state;
	assert_int_equal(mg_mail_cmd_parse(S("quit"), &c), 0);
	assert_string_equal(c.verb, "QUIT");
	assert_int_equal(c.rest_len, 0);
	assert_null(c.arg1);
	assert_null(c.arg2);
}

static void
test_cmd_pass_keeps_spaces(void **state)
{
	struct mg_mail_cmd c;

	(void)state;
	/* RFC 1939 §7: PASS takes the whole rest of the line, spaces included. */
	assert_int_equal(mg_mail_cmd_parse(S("PASS my secret  pw"), &c), 0);
	assert_string_equal(c.verb, "PASS");
	assert_int_equal(c.rest_len, 13);
	assert_memory_equal(c.rest, "my secret  pw", 13);
	assert_int_equal(c.arg1_len, 2);
	assert_memory_equal(c.arg1, "my", 2);
	assert_non_null(c.arg2);
	assert_int_equal(c.arg2_len, 10);
	assert_memory_equal(c.arg2, "secret  pw", 10);
}

static void
test_cmd_auth_ir(void **state)
{
	struct mg_mail_cmd c;

	(void)state;
	assert_int_equal(mg_mail_cmd_parse(S("AUTH PLAIN AGFsaWNlAHNlY3JldA=="), &c), 0);
	assert_string_equal(c.verb, "AUTH");
	assert_int_equal(c.arg1_len, 5);
	assert_memory_equal(c.arg1, "PLAIN", 5);
	assert_int_equal(c.arg2_len, 20);
	assert_memory_equal(c.arg2, "AGFsaWNlAHNlY3JldA==", 20);
}

static void
test_cmd_rejects(void **state)
{
	struct mg_mail_cmd c;

	(void)state;
	assert_int_equal(mg_mail_cmd_parse("", 0, &c), -1);
	assert_int_equal(mg_mail_cmd_parse(S(" USER x"), &c), -1);
	assert_int_equal(mg_mail_cmd_parse(S("US-ER x"), &c), -1);
	assert_int_equal(mg_mail_cmd_parse(S("ABCDEFGHIJKLMNOP x"), &c), -1);	/* 16-byte verb */
	assert_int_equal(mg_mail_cmd_parse(S("USER a\x01" "b"), &c), -1);
	assert_int_equal(mg_mail_cmd_parse("USER a\0b", 8, &c), -1);
	assert_int_equal(mg_mail_cmd_parse(S("USER a\rb"), &c), -1);
	assert_int_equal(mg_mail_cmd_parse(S("ABCDEFGHIJKLMNO x"), &c), 0);	/* 15 is the limit */
}

static void
test_pop3_resp(void **state)
{
	struct mg_pop3_resp r;

	(void)state;
	assert_int_equal(mg_pop3_resp_parse(S("+OK Dovecot ready."), &r), 0);
	assert_int_equal(r.status, MG_POP3_OK);
	assert_null(r.code);
	assert_int_equal(r.text_len, 14);
	assert_int_equal(mg_pop3_resp_parse(S("-ERR [AUTH] Authentication failed."), &r), 0);
	assert_int_equal(r.status, MG_POP3_ERR);
	assert_int_equal(r.code_len, 4);
	assert_memory_equal(r.code, "AUTH", 4);
	assert_memory_equal(r.text, "Authentication failed.", r.text_len);
	assert_int_equal(mg_pop3_resp_parse(S("-ERR [SYS/TEMP] later"), &r), 0);
	assert_memory_equal(r.code, "SYS/TEMP", 8);
	assert_int_equal(mg_pop3_resp_parse(S("+ "), &r), 0);
	assert_int_equal(r.status, MG_POP3_CONT);
	assert_int_equal(mg_pop3_resp_parse(S("+OK"), &r), 0);
	assert_int_equal(r.text_len, 0);
	assert_int_equal(mg_pop3_resp_parse(S("-ERR [unterminated"), &r), -1);
	assert_int_equal(mg_pop3_resp_parse(S("+OKAY"), &r), -1);
	assert_int_equal(mg_pop3_resp_parse(S("* OK imap"), &r), -1);
	assert_int_equal(mg_pop3_resp_parse("", 0, &r), -1);
}

static void
test_smtp_reply(void **state)
{
	struct mg_smtp_reply_line r;

	(void)state;
	assert_int_equal(mg_smtp_reply_parse(S("250-mail.example.test"), &r), 0);
	assert_int_equal(r.code, 250);
	assert_false(r.last);
	assert_int_equal(mg_smtp_reply_parse(S("250 AUTH PLAIN LOGIN"), &r), 0);
	assert_true(r.last);
	assert_memory_equal(r.text, "AUTH PLAIN LOGIN", r.text_len);
	assert_int_equal(mg_smtp_reply_parse(S("354"), &r), 0);
	assert_true(r.last);
	assert_int_equal(r.code, 354);
	assert_int_equal(mg_smtp_reply_parse(S("535 5.7.8 no"), &r), 0);
	assert_int_equal(r.code, 535);
	assert_int_equal(mg_smtp_reply_parse(S("25 short"), &r), -1);
	assert_int_equal(mg_smtp_reply_parse(S("2500 long"), &r), -1);
	assert_int_equal(mg_smtp_reply_parse(S("650 bad class"), &r), -1);
	assert_int_equal(mg_smtp_reply_parse(S("abc def"), &r), -1);
}

static void
test_ehlo_has(void **state)
{
	const char *list = "PIPELINING\nSIZE 62914560\nAUTH PLAIN LOGIN\nAUTH=LOGIN\nSTARTTLS\n";

	(void)state;
	assert_true(mg_smtp_ehlo_has(list, "pipelining", NULL));
	assert_true(mg_smtp_ehlo_has(list, "STARTTLS", NULL));
	assert_true(mg_smtp_ehlo_has(list, "AUTH", "PLAIN"));
	assert_true(mg_smtp_ehlo_has(list, "auth", "login"));
	assert_false(mg_smtp_ehlo_has(list, "AUTH", "XOAUTH2"));
	assert_false(mg_smtp_ehlo_has(list, "SMTPUTF8", NULL));
	assert_false(mg_smtp_ehlo_has(list, "PIPE", NULL));
	assert_false(mg_smtp_ehlo_has(list, "SIZE", "6291456"));
	assert_true(mg_smtp_ehlo_has(list, "SIZE", "62914560"));
	assert_false(mg_smtp_ehlo_has("", "AUTH", NULL));
	/* POP3 CAPA lines use the same shape. */
	assert_true(mg_smtp_ehlo_has("USER\nSASL PLAIN\n", "SASL", "PLAIN"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmd_verb_only),
		cmocka_unit_test(test_cmd_pass_keeps_spaces),
		cmocka_unit_test(test_cmd_auth_ir),
		cmocka_unit_test(test_cmd_rejects),
		cmocka_unit_test(test_pop3_resp),
		cmocka_unit_test(test_smtp_reply),
		cmocka_unit_test(test_ehlo_has),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
