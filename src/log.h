/*
 * log.h - one key=value line per event on stderr.
 *
 * Every line is led by a timestamp, a level and the session id in hex (or
 * "-" outside a session), so that all lines of one connection can be found
 * with one grep:
 *
 *   2026-11-22T00:40:00.123Z info 3f9a0c21 imap login user=alice result=ok
 *
 * Text a client sent is passed through mg_log_escape() first. Nothing here
 * ever receives a password, token or key: callers never pass them.
 */
#ifndef MG_LOG_H
#define MG_LOG_H

#include <stddef.h>
#include <stdint.h>

enum mg_log_level {
	MG_LOG_DEBUG = 0,
	MG_LOG_INFO,
	MG_LOG_WARN,
	MG_LOG_ERR
};

void mg_log_set_level(enum mg_log_level level);
void mg_log(enum mg_log_level level, uint32_t sid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define mg_log_debug(sid, ...)	mg_log(MG_LOG_DEBUG, (sid), __VA_ARGS__)
#define mg_log_info(sid, ...)	mg_log(MG_LOG_INFO, (sid), __VA_ARGS__)
#define mg_log_warn(sid, ...)	mg_log(MG_LOG_WARN, (sid), __VA_ARGS__)
#define mg_log_err(sid, ...)	mg_log(MG_LOG_ERR, (sid), __VA_ARGS__)

/*
 * Copies untrusted bytes into out as printable ASCII: '"', '\' and
 * non-printable bytes become \xNN, and the result is cut to at most 64
 * input bytes (marked with "..."). out is always NUL-terminated.
 */
void mg_log_escape(const void *in, size_t len, char *out, size_t outlen);

#endif
