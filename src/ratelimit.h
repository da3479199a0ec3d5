/*
 * ratelimit.h - counters that bound what clients can make the gateway do:
 * connections in total and per client address, logged-in sessions per
 * user, and failed logins per address and per user (brute-force defence).
 *
 * Failed logins slow the failure replies down once an address or a user
 * has failed delay_after times in the window (1 s, doubling, up to
 * max_delay), and an address that failed block_after times is blocked for
 * block_time: its new connections are refused at the greeting. A user is
 * never blocked, only slowed, so an attacker guessing one user's password
 * from one address cannot lock that user's real devices out. Successful
 * logins pass undelayed.
 *
 * The tables are guarded by a mutex so that several event loops (or the
 * thread pool) can share them. Memory is bounded: each table holds at most
 * a fixed number of entries and forgets the stalest first.
 */
#ifndef MG_RATELIMIT_H
#define MG_RATELIMIT_H

#include <stdint.h>

struct mg_config;
struct mg_limits;

/* Results of mg_limits_conn_open(). */
enum mg_conn_verdict {
	MG_CONN_OK = 0,
	MG_CONN_TOO_MANY,	/* limits.connections reached */
	MG_CONN_TOO_MANY_IP,	/* limits.connections_per_ip reached */
	MG_CONN_BLOCKED		/* the address failed too many logins */
};

struct mg_limits *mg_limits_new(const struct mg_config *cfg);
void mg_limits_free(struct mg_limits *l);

/*
 * Counts a new connection from addr (an IP address in text) at time now
 * (seconds). On anything but MG_CONN_OK the connection was not counted.
 */
enum mg_conn_verdict mg_limits_conn_open(struct mg_limits *l, const char *addr, uint64_t now);
void mg_limits_conn_close(struct mg_limits *l, const char *addr);

/* A failed login: returns the delay (milliseconds) before the failure reply. */
uint64_t mg_limits_login_failed(struct mg_limits *l, const char *addr, const char *user, uint64_t now);

/* A successful login of user: the user's failure count starts over. */
void mg_limits_login_ok(struct mg_limits *l, const char *user);

/* Logged-in sessions of a user: 0 counted, -1 the user has sessions_per_user already. */
int mg_limits_user_open(struct mg_limits *l, const char *user);
void mg_limits_user_close(struct mg_limits *l, const char *user);

#endif
