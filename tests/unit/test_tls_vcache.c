/*
 * test_tls_vcache.c - the verified-chain cache of client TLS contexts
 * (tls.h): what counts as the same verification, and when it stops counting.
 * Whether the handshake takes a hit, and refuses a different certificate
 * after one, is tested end to end in tests/e2e/test_hardening_upstream.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tls.h"

static const unsigned char LEAF_A[] = "leaf A, as DER";
static const unsigned char LEAF_B[] = "leaf B, as DER";
static const unsigned char LEAF_A_LONGER[] = "leaf A, as DER, and more";

#define NOW	1000000
#define NB	(NOW - 3600)
#define NA	(NOW + 86400)

static void
test_hit_same_leaf_same_name(void **state)
{
	struct mg_tls_vcache c = { 0 };

	(void)state;
	assert_false(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "imap.example.test", NOW));
	assert_int_equal(mg_tls_vcache_put(&c, LEAF_A, sizeof(LEAF_A), "imap.example.test", NB, NA, NOW), 0);
	assert_true(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "imap.example.test", NOW));
	assert_true(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "imap.example.test",
	    NOW + MG_TLS_VCACHE_TTL_S - 1));
	mg_tls_vcache_clear(&c);
	assert_false(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "imap.example.test", NOW));
}

static void
test_miss_other_leaf_or_name(void **state)
{
	struct mg_tls_vcache c = { 0 };

	(void)state;
	assert_int_equal(mg_tls_vcache_put(&c, LEAF_A, sizeof(LEAF_A), "imap.example.test", NB, NA, NOW), 0);
	/* Another certificate for the same name, or a longer one starting the same. */
	assert_false(mg_tls_vcache_hit(&c, LEAF_B, sizeof(LEAF_B), "imap.example.test", NOW));
	assert_false(mg_tls_vcache_hit(&c, LEAF_A_LONGER, sizeof(LEAF_A_LONGER), "imap.example.test", NOW));
	assert_false(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A) - 1, "imap.example.test", NOW));
	/* The same certificate for another name (or address): verified again. */
	assert_false(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "smtp.example.test", NOW));
	assert_false(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "imap.example.tes", NOW));
	assert_false(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "127.0.0.2", NOW));
	mg_tls_vcache_clear(&c);
}

static void
test_miss_outside_validity_or_after_ttl(void **state)
{
	struct mg_tls_vcache c = { 0 };

	(void)state;
	/* A chain whose shortest-lived certificate ends in 100 s. */
	assert_int_equal(mg_tls_vcache_put(&c, LEAF_A, sizeof(LEAF_A), "h", NB, NOW + 100, NOW), 0);
	assert_true(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "h", NOW + 100));
	assert_false(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "h", NOW + 101));
	mg_tls_vcache_clear(&c);
	/* Not yet valid (a clock set back), then valid. */
	assert_int_equal(mg_tls_vcache_put(&c, LEAF_A, sizeof(LEAF_A), "h", NOW + 10, NA, NOW), 0);
	assert_false(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "h", NOW));
	assert_true(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "h", NOW + 10));
	/* The deadline: verified in full again from then on, and the clock going back does not stretch it. */
	assert_false(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "h", NOW + MG_TLS_VCACHE_TTL_S));
	assert_false(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "h", NOW - 1));
	mg_tls_vcache_clear(&c);
}

static void
test_refresh_in_place_and_replace_oldest(void **state)
{
	struct mg_tls_vcache	c = { 0 };
	char			host[16];
	int			i;

	(void)state;
	for (i = 0; i < MG_TLS_VCACHE_SLOTS; i++) {
		snprintf(host, sizeof(host), "h%d", i);
		assert_int_equal(mg_tls_vcache_put(&c, LEAF_A, sizeof(LEAF_A), host, NB, NA, NOW), 0);
	}
	/* Verified again after its deadline: the same entry, with a new deadline. */
	assert_int_equal(mg_tls_vcache_put(&c, LEAF_A, sizeof(LEAF_A), "h1", NB, NA,
	    NOW + MG_TLS_VCACHE_TTL_S), 0);
	assert_true(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "h1", NOW + MG_TLS_VCACHE_TTL_S + 1));
	/* The others are untouched (h1's deadline is now measured from its new verification). */
	for (i = 0; i < MG_TLS_VCACHE_SLOTS; i++) {
		snprintf(host, sizeof(host), "h%d", i);
		assert_int_equal(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), host, NOW + 1), i != 1);
	}
	/* Full: a new one replaces the first put, then the next. */
	assert_int_equal(mg_tls_vcache_put(&c, LEAF_B, sizeof(LEAF_B), "h9", NB, NA, NOW), 0);
	assert_true(mg_tls_vcache_hit(&c, LEAF_B, sizeof(LEAF_B), "h9", NOW));
	assert_false(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "h0", NOW));
	assert_true(mg_tls_vcache_hit(&c, LEAF_A, sizeof(LEAF_A), "h2", NOW));
	mg_tls_vcache_clear(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_same_leaf_same_name),
		cmocka_unit_test(test_miss_other_leaf_or_name),
		cmocka_unit_test(test_miss_outside_validity_or_after_ttl),
		cmocka_unit_test(test_refresh_in_place_and_replace_oldest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
