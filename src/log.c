/*
 * log.c - see log.h.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum mg_log_level log_level = MG_LOG_INFO;

static const char *const log_names[] = { "debug", "info", "warn", "error" };

void
mg_log_set_level(enum mg_log_level level)
{
	log_level = level;
}

/*
 * Formats the whole line into one buffer and writes it with one fputs, so
 * that lines from the thread pool and the loop never interleave mid-line.
 */
void
mg_log(enum mg_log_level level, uint32_t sid, const char *fmt, ...)
{
	char		 line[1024], sidbuf[16];
	struct timespec	 ts;
	struct tm	 tm;
	va_list		 ap;
	int		 n;
	size_t		 off;

	if (level < log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (sid != 0)
		snprintf(sidbuf, sizeof(sidbuf), "%08x", sid);
	else
		strcpy(sidbuf, "-");
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, ts.tv_nsec / 1000000, log_names[level], sidbuf);
	off = n > 0 ? (size_t)n : 0;
	va_start(ap, fmt);
	n = vsnprintf(line + off, sizeof(line) - off - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	off += (size_t)n;
	if (off > sizeof(line) - 2)
		off = sizeof(line) - 2;
	line[off++] = '\n';
	line[off] = '\0';
	fputs(line, stderr);
	fflush(stderr);
}

void
mg_log_escape(const void *in, size_t len, char *out, size_t outlen)
{
	const unsigned char	*p = in;
	size_t			 i, o = 0, max = len > 64 ? 64 : len;

	if (outlen == 0)
		return;
	for (i = 0; i < max; i++) {
		unsigned char c = p[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			if (o + 1 >= outlen)
				break;
			out[o++] = (char)c;
		} else {
			if (o + 4 >= outlen)
				break;
			snprintf(out + o, 5, "\\x%02x", c);
			o += 4;
		}
	}
	if (len > max && o + 3 < outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}
