/*
 * log.c tests: the error log's levels and line format (stderr captured
 * through a pipe), the access log's file, stdout and off modes, and the
 * timestamp format.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* "2026-11-25T22:34:08.123Z", as an extended regular expression. */
#define TIME_RE "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])" \
	"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\\.[0-9]{3}Z"

static bool
matches(const char *re, const char *s)
{
	regex_t rx;
	int rc;

	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	rc = regexec(&rx, s, 0, NULL, 0);
	regfree(&rx);
	return rc == 0;
}

/* Seconds between a "YYYY-MM-DDTHH:MM:SS..." stamp read as UTC and now. */
static long
stamp_age(const char *s)
{
	struct tm tm = { 0 };

	assert_int_equal(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon,
		&tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec), 6);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return labs((long)(time(NULL) - timegm(&tm)));
}

/* ------------------------------------------------- capturing a stream */

struct capture {
	int fd;			/* the stream captured: 1 or 2 */
	int saved;
	int pipe[2];
};

static void
capture_start(struct capture *c, int fd)
{
	c->fd = fd;
	fflush(NULL);
	assert_int_equal(pipe2(c->pipe, O_CLOEXEC | O_NONBLOCK), 0);
	c->saved = dup(fd);
	assert_true(c->saved >= 0);
	assert_true(dup2(c->pipe[1], fd) == fd);
}

/* Restore the stream; what was written to it meanwhile, NUL-terminated. */
static size_t
capture_end(struct capture *c, char *buf, size_t len)
{
	ssize_t n;

	assert_true(dup2(c->saved, c->fd) == c->fd);
	close(c->saved);
	close(c->pipe[1]);
	n = read(c->pipe[0], buf, len - 1);
	if (n < 0 && errno == EAGAIN)
		n = 0;
	assert_true(n >= 0);
	buf[n] = '\0';
	close(c->pipe[0]);
	return (size_t)n;
}

/* ------------------------------------------------------------ files */

static char tmpdir[64];

static int
setup_dir(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/sluice-test-log.XXXXXX");
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int
teardown_dir(void **state)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char path[PATH_MAX];

	(void)state;
	log_access_close();
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(tmpdir);
	return 0;
}

static void
path_in_dir(char *buf, size_t len, const char *name)
{
	assert_true((size_t)snprintf(buf, len, "%s/%s", tmpdir, name) < len);
}

static size_t
slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;
	ssize_t n;

	assert_true(fd >= 0);
	while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	return got;
}

static void
spit(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	close(fd);
}

/* The descriptor of ours that has path open, or -1. */
static int
fd_of(const char *path)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int found = -1;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char target[PATH_MAX];
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, path) == 0)
			found = atoi(e->d_name);
	}
	closedir(d);
	return found;
}

static void
access_line(const char *s)
{
	log_access_write(s, strlen(s));
}

/* -------------------------------------------------------------- tests */

static void
test_format_time(void **state)
{
	char buf[32], small[10];

	(void)state;
	log_format_time(buf, sizeof(buf));
	assert_int_equal(strlen(buf), 24);
	assert_true(matches("^" TIME_RE "$", buf));
	assert_true(stamp_age(buf) <= 2);
	/* Over a whole second, so that milliseconds below 100 (and below 10)
	 * show their zero padding too. */
	for (int i = 0; i < 400; i++) {
		struct timespec nap = { 0, 3000000 };

		log_format_time(buf, sizeof(buf));
		assert_true(matches("^" TIME_RE "$", buf));
		nanosleep(&nap, NULL);
	}
	/* A short buffer gets a terminated prefix, never an overrun. */
	log_format_time(small, sizeof(small));
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_memory_equal(small, buf, 4);
}

static void
test_msg_levels(void **state)
{
	struct capture cap;
	char out[8192];

	(void)state;
	log_set_level(CONFIG_LOG_WARN);
	assert_true(log_enabled(CONFIG_LOG_ERROR));
	assert_true(log_enabled(CONFIG_LOG_WARN));
	assert_false(log_enabled(CONFIG_LOG_INFO));
	capture_start(&cap, STDERR_FILENO);
	log_info("hidden %d", 1);
	log_msg(CONFIG_LOG_DEBUG, "hidden %d", 2);
	log_warn("s12 %s: connect(%s) failed: %s", "127.0.0.1:5555", "127.0.0.1:3001",
		"Connection refused");
	log_error("bad %d", 3);
	capture_end(&cap, out, sizeof(out));
	assert_true(matches("^" TIME_RE " \\[warn\\] s12 127\\.0\\.0\\.1:5555: "
		"connect\\(127\\.0\\.0\\.1:3001\\) failed: Connection refused\n"
		TIME_RE " \\[error\\] bad 3\n$", out));
	assert_true(stamp_age(out) <= 2);

	log_set_level(CONFIG_LOG_DEBUG);
	capture_start(&cap, STDERR_FILENO);
	log_info("i");
	log_msg(CONFIG_LOG_DEBUG, "d");
	capture_end(&cap, out, sizeof(out));
	assert_true(matches("^" TIME_RE " \\[info\\] i\n" TIME_RE " \\[debug\\] d\n$", out));

	log_set_level(CONFIG_LOG_ERROR);
	capture_start(&cap, STDERR_FILENO);
	log_warn("w");
	log_error("e");
	capture_end(&cap, out, sizeof(out));
	assert_true(matches("^" TIME_RE " \\[error\\] e\n$", out));
	log_set_level(CONFIG_LOG_INFO);
}

static void
test_msg_long_line(void **state)
{
	struct capture cap;
	char *big = malloc(5001);
	char out[8192];
	size_t n;

	(void)state;
	assert_non_null(big);
	memset(big, 'x', 5000);
	big[5000] = '\0';
	log_set_level(CONFIG_LOG_INFO);
	capture_start(&cap, STDERR_FILENO);
	log_error("%s", big);
	n = capture_end(&cap, out, sizeof(out));
	free(big);
	/* Cut, but still one line ending in a newline. */
	assert_true(n > 1000 && n < 5000);
	assert_int_equal(out[n - 1], '\n');
	assert_ptr_equal(strchr(out, '\n'), out + n - 1);
	assert_true(matches("^" TIME_RE " \\[error\\] x+\n$", out));
}

static void
test_access_file_appends(void **state)
{
	char path[PATH_MAX], buf[256];
	int fd;

	(void)state;
	path_in_dir(path, sizeof(path), "access.log");
	spit(path, "old\n");
	assert_int_equal(log_access_open(path), 0);
	assert_true(log_access_enabled());
	access_line("{\"a\":1}\n");
	access_line("{\"b\":2}\n");
	/* An existing log is continued, not truncated. */
	slurp(path, buf, sizeof(buf));
	assert_string_equal(buf, "old\n{\"a\":1}\n{\"b\":2}\n");
	fd = fd_of(path);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFL) & O_APPEND);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* Someone truncates the file (logrotate's copytruncate): the next
	 * line lands at the new end, not after a hole at the old offset. */
	assert_int_equal(truncate(path, 0), 0);
	access_line("{\"c\":3}\n");
	assert_int_equal(slurp(path, buf, sizeof(buf)), 8);
	assert_string_equal(buf, "{\"c\":3}\n");
	log_access_close();
	assert_false(log_access_enabled());
	assert_int_equal(fd_of(path), -1);
	access_line("{\"d\":4}\n");
	slurp(path, buf, sizeof(buf));
	assert_string_equal(buf, "{\"c\":3}\n");
}

static void
test_access_file_created(void **state)
{
	char path[PATH_MAX], buf[64];
	struct stat st;
	mode_t old = umask(022);

	(void)state;
	path_in_dir(path, sizeof(path), "new.log");
	assert_int_equal(log_access_open(path), 0);
	umask(old);
	access_line("x\n");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	slurp(path, buf, sizeof(buf));
	assert_string_equal(buf, "x\n");
}

static void
test_access_reopen(void **state)
{
	char a[PATH_MAX], b[PATH_MAX], buf[64];

	(void)state;
	path_in_dir(a, sizeof(a), "a.log");
	path_in_dir(b, sizeof(b), "b.log");
	assert_int_equal(log_access_open(a), 0);
	access_line("to a\n");
	/* Opening another log closes the first: no descriptor leaks. */
	assert_int_equal(log_access_open(b), 0);
	assert_int_equal(fd_of(a), -1);
	access_line("to b\n");
	slurp(a, buf, sizeof(buf));
	assert_string_equal(buf, "to a\n");
	slurp(b, buf, sizeof(buf));
	assert_string_equal(buf, "to b\n");
	/* NULL turns the log off and closes the file too. */
	assert_int_equal(log_access_open(NULL), 0);
	assert_false(log_access_enabled());
	assert_int_equal(fd_of(b), -1);
}

static void
test_access_stdout(void **state)
{
	struct capture cap;
	char out[256];

	(void)state;
	capture_start(&cap, STDOUT_FILENO);
	assert_int_equal(log_access_open("-"), 0);
	assert_true(log_access_enabled());
	access_line("{\"status\":200}\n");
	/* Closing the log must leave stdout itself open. */
	log_access_close();
	assert_false(log_access_enabled());
	assert_true(fcntl(STDOUT_FILENO, F_GETFD) >= 0);
	access_line("{\"status\":500}\n");
	capture_end(&cap, out, sizeof(out));
	assert_string_equal(out, "{\"status\":200}\n");
}

static void
test_access_off(void **state)
{
	struct capture cap;
	char out[256];

	(void)state;
	capture_start(&cap, STDOUT_FILENO);
	assert_int_equal(log_access_open(NULL), 0);
	assert_false(log_access_enabled());
	access_line("{\"status\":200}\n");
	capture_end(&cap, out, sizeof(out));
	assert_string_equal(out, "");
}

static void
test_access_open_fails(void **state)
{
	char path[PATH_MAX];

	(void)state;
	path_in_dir(path, sizeof(path), "no/such/dir.log");
	errno = 0;
	assert_int_equal(log_access_open(path), -1);
	assert_int_equal(errno, ENOENT);
	assert_false(log_access_enabled());
}

/* Writers from several threads, as the workers are. */
#define WRITERS 4
#define LINES 2000

static void *
writer(void *arg)
{
	int id = (int)(intptr_t)arg;
	char line[256];

	for (int i = 0; i < LINES; i++) {
		int n = snprintf(line, sizeof(line), "{\"worker\":%d,\"n\":%04d,\"pad\":\"%0180d\"}\n",
			id, i, 0);

		log_access_write(line, (size_t)n);
	}
	return NULL;
}

static void
test_access_lines_whole(void **state)
{
	char path[PATH_MAX];
	pthread_t t[WRITERS];
	int seen[WRITERS] = { 0 };
	char line[512];
	regex_t rx;
	FILE *f;

	(void)state;
	assert_int_equal(regcomp(&rx, "^\\{\"worker\":[0-9],\"n\":[0-9]{4},\"pad\":\"0{180}\"\\}\n$",
		REG_EXTENDED | REG_NOSUB), 0);
	path_in_dir(path, sizeof(path), "threads.log");
	assert_int_equal(log_access_open(path), 0);
	for (int i = 0; i < WRITERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
	for (int i = 0; i < WRITERS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	log_access_close();
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		int id, n;

		/* Every line is one writer's line, whole and in its order. */
		assert_int_equal(regexec(&rx, line, 0, NULL, 0), 0);
		assert_int_equal(sscanf(line, "{\"worker\":%d,\"n\":%d", &id, &n), 2);
		assert_in_range(id, 0, WRITERS - 1);
		assert_int_equal(n, seen[id]);
		seen[id]++;
	}
	fclose(f);
	regfree(&rx);
	for (int i = 0; i < WRITERS; i++)
		assert_int_equal(seen[i], LINES);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_time),
		cmocka_unit_test(test_msg_levels),
		cmocka_unit_test(test_msg_long_line),
		cmocka_unit_test(test_access_file_appends),
		cmocka_unit_test(test_access_file_created),
		cmocka_unit_test(test_access_reopen),
		cmocka_unit_test(test_access_stdout),
		cmocka_unit_test(test_access_off),
		cmocka_unit_test(test_access_open_fails),
		cmocka_unit_test(test_access_lines_whole),
	};

	/* A zone far from UTC, so that a stamp in local time would show. */
	if (setenv("TZ", "<+0530>-5:30", 1) != 0)
		return 1;
	tzset();
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
