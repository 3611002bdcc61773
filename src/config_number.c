/*
 * Numbers with units in directive values: durations, sizes, seconds,
 * percentages and status ranges, parsed from a file and written back for
 * messages and the reference.
 */
#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "config-int.h"

/* A unit of a written value: how many of the base unit, and its suffix. */
struct unit {
	unsigned long long size;
	const char *suffix;
};

/* Units from the largest, the last one of size 1 and always exact; the
 * parsers read the same suffixes. */
static const struct unit ms_units[] = {
	{ 3600000, "h" }, { 60000, "m" }, { 1000, "s" }, { 1, "ms" },
};
static const struct unit size_units[] = {
	{ 1ULL << 30, "g" }, { 1ULL << 20, "m" }, { 1024, "k" }, { 1, "" },
};
static const struct unit second_units[] = {
	{ 86400, "d" }, { 3600, "h" }, { 60, "m" }, { 1, "s" },
};

/* n in the largest of units that divides it exactly ("2m", not "120s"). */
static void
format_exact(unsigned long long n, const struct unit *u, char *buf, size_t len)
{
	while (u->size > 1 && (n == 0 || n % u->size != 0))
		u++;
	snprintf(buf, len, "%llu%s", n / u->size, u->suffix);
}

/* How many base units suffix stands for in units[0..n), or 0 for none. */
static unsigned long long
unit_mult(const struct unit *units, size_t n, const char *suffix)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(units[i].suffix, suffix) == 0)
			return units[i].size;
	return 0;
}

void
config_value_format_size(unsigned long long n, char *buf, size_t len)
{
	format_exact(n, size_units, buf, len);
}

static void
format_value(enum opt_type type, unsigned long long n, char *buf, size_t len)
{
	if (type == OPT_DURATION)
		format_exact(n, ms_units, buf, len);
	else if (type == OPT_SECONDS)
		format_exact(n, second_units, buf, len);
	else if (type == OPT_SIZE || type == OPT_SIZE64)
		config_value_format_size(n, buf, len);
	else if (type == OPT_PERCENT)
		snprintf(buf, len, "%llu%%", n);
	else
		snprintf(buf, len, "%llu", n);
}

bool
config_value_has_bounds(const struct opt_def *d)
{
	return d->type == OPT_UINT || d->type == OPT_INT || d->type == OPT_DURATION ||
		d->type == OPT_SIZE || d->type == OPT_SIZE64 || d->type == OPT_SECONDS ||
		d->type == OPT_PERCENT;
}

void
config_value_format_bounds(const struct opt_def *d, char *buf, size_t len)
{
	char lo[32], hi[32];

	format_value(d->type, d->min, lo, sizeof(lo));
	format_value(d->type, d->max, hi, sizeof(hi));
	snprintf(buf, len, "%s..%s", lo, hi);
}

/* ----------------------------------------------------------------- parsers */

int
config_number_digits(const char **sp, unsigned long long *out)
{
	const char *s = *sp;
	unsigned long long n = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		if (n > (ULLONG_MAX - 9) / 10)
			return -1;
		n = n * 10 + (unsigned long long)(*s - '0');
	}
	*sp = s;
	*out = n;
	return 0;
}

int
config_parse_duration(const char *s, unsigned *ms)
{
	unsigned long long n, mult;

	if (s == NULL || config_number_digits(&s, &n) < 0)
		return -1;
	/* A bare number is seconds. */
	mult = *s == '\0' ? 1000 : unit_mult(ms_units, ARRAY_LEN(ms_units), s);
	if (mult == 0 || n > UINT_MAX / mult)
		return -1;
	*ms = (unsigned)(n * mult);
	return 0;
}

/* A size as config_parse_size() reads it, in 64 bits whatever size_t is. */
int
config_number_size64(const char *s, uint64_t *bytes)
{
	unsigned long long n;
	unsigned shift;

	if (s == NULL || config_number_digits(&s, &n) < 0)
		return -1;
	switch (*s) {
	case '\0':
		shift = 0;
		break;
	case 'k': case 'K':
		shift = 10;
		break;
	case 'm': case 'M':
		shift = 20;
		break;
	case 'g': case 'G':
		shift = 30;
		break;
	default:
		return -1;
	}
	if (*s != '\0' && s[1] != '\0')
		return -1;
	if (n > UINT64_MAX >> shift)
		return -1;
	*bytes = (uint64_t)n << shift;
	return 0;
}

int
config_parse_size(const char *s, size_t *bytes)
{
	uint64_t n;

	if (config_number_size64(s, &n) < 0 || n > SIZE_MAX)
		return -1;
	*bytes = (size_t)n;
	return 0;
}

/*
 * A duration in whole seconds: digits and s, m, h or d (a bare number is
 * seconds). Used where the consumer counts in seconds (TLS sessions, HSTS),
 * which also lets it go past the 49 days that milliseconds fit in 32 bits.
 */
int
config_number_seconds(const char *s, unsigned long long *out)
{
	unsigned long long n, mult;

	if (config_number_digits(&s, &n) < 0)
		return -1;
	mult = *s == '\0' ? 1 : unit_mult(second_units, ARRAY_LEN(second_units), s);
	if (mult == 0 || n > UINT_MAX / mult)
		return -1;
	*out = n * mult;
	return 0;
}

/* "200-399" or "200": HTTP status codes 100..599, low first. */
int
config_number_status_range(const char *s, unsigned long long *lo, unsigned long long *hi)
{
	if (config_number_digits(&s, lo) < 0)
		return -1;
	if (*s == '-') {
		s++;
		if (config_number_digits(&s, hi) < 0)
			return -1;
	} else {
		*hi = *lo;
	}
	if (*s != '\0' || *lo < 100 || *hi > 599 || *lo > *hi)
		return -1;
	return 0;
}

/* "50%" or "50". */
int
config_number_percent(const char *s, unsigned long long *out)
{
	if (config_number_digits(&s, out) < 0)
		return -1;
	if (*s == '%')
		s++;
	return *s == '\0' ? 0 : -1;
}
