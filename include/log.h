/*
 * The error log (stderr) and the access log (one JSON line per exchange).
 * Both may be written from any thread: each line is one write(2), which
 * O_APPEND makes atomic for lines of this size.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stddef.h>

#include "config-t.h"

void log_set_level(enum config_log_level level);
int log_enabled(enum config_log_level level);

/* printf-style line at level, prefixed by time and level. */
void log_msg(enum config_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(CONFIG_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(CONFIG_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(CONFIG_LOG_INFO, __VA_ARGS__)
/*
 * Debug lines (per connection and per exchange) exist only in builds
 * configured with --enable-debug; elsewhere they cost nothing, and
 * log_level = debug shows no more than info.
 */
#ifdef SLUICE_DEBUG
#define log_debug(...) \
	do { if (log_enabled(CONFIG_LOG_DEBUG)) log_msg(CONFIG_LOG_DEBUG, __VA_ARGS__); } while (0)
#else
#define log_debug(...) do { } while (0)
#endif

/*
 * Open the access log: NULL turns it off, "-" is stdout, anything else a
 * file opened for appending. Main thread, before workers start. Returns 0 or
 * -1 with errno set.
 */
int log_access_open(const char *path) __attribute__((warn_unused_result));
int log_access_enabled(void);
/* Write one complete line (with its newline). */
void log_access_write(const char *line, size_t len);
void log_access_close(void);

/* "2026-11-25T22:34:08.123Z" into buf (at least 32 bytes) for the wall clock. */
void log_format_time(char *buf, size_t len);

#endif
