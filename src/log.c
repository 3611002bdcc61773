/*
 * Error log on stderr and the access log. Owns the access log's file
 * descriptor; knows nothing about sessions (session_log.c formats its lines).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static atomic_int log_level = CONFIG_LOG_INFO;
static int access_fd = -1;
static int access_owned;

static const char *const level_names[] = {
	[CONFIG_LOG_ERROR] = "error",
	[CONFIG_LOG_WARN] = "warn",
	[CONFIG_LOG_INFO] = "info",
	[CONFIG_LOG_DEBUG] = "debug",
};

void
log_set_level(enum config_log_level level)
{
	atomic_store(&log_level, (int)level);
}

int
log_enabled(enum config_log_level level)
{
	return (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void
log_format_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* Write all of buf; a log line is never worth more than a retry on EINTR. */
static void
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

void
log_msg(enum config_log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n, m;

	if (!log_enabled(level))
		return;
	log_format_time(line, sizeof(line));
	n = (int)strlen(line);
	n += snprintf(line + n, sizeof(line) - (size_t)n, " [%s] ", level_names[level]);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	write_all(STDERR_FILENO, line, (size_t)n);
}

int
log_access_open(const char *path)
{
	log_access_close();
	if (path == NULL)
		return 0;
	if (strcmp(path, "-") == 0) {
		access_fd = STDOUT_FILENO;
		access_owned = 0;
		return 0;
	}
	access_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (access_fd < 0)
		return -1;
	access_owned = 1;
	return 0;
}

int
log_access_enabled(void)
{
	return access_fd >= 0;
}

void
log_access_write(const char *line, size_t len)
{
	if (access_fd >= 0)
		write_all(access_fd, line, len);
}

void
log_access_close(void)
{
	if (access_fd >= 0 && access_owned)
		close(access_fd);
	access_fd = -1;
	access_owned = 0;
}
