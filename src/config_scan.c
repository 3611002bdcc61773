/*
 * The pre-scan of a configuration file, before libconfuse parses it: blanks
 * comments out and records where each section opens and closes. It reads
 * and writes only struct config_scan; config.c runs libconfuse afterwards.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-int.h"

/*
 * libconfuse 3.3 miscounts lines after comments and accepts a section left
 * open at the end of the file. So before it sees the file, this scan blanks
 * comments out (keeping newlines, so its line numbers stay right) and notes
 * where each section's '{' is and what closes it, so that errors about a
 * whole section can point at its first line. It follows libconfuse's lexer:
 * '#' starts a comment anywhere outside quotes, "//" and "/ *" only where a
 * token starts, and "${NAME}" is one token.
 */
enum tok_kind {
	TOK_NONE = 0,
	TOK_WORD,
	TOK_EQUAL,
	TOK_OTHER,
};

struct tok {
	enum tok_kind kind;
	bool value;			/* a word right after '=' */
	int line;
	size_t start, len;
};

static void
scan_error(struct config_scan *sc, int line, const char *msg)
{
	if (sc->failed)
		return;
	sc->failed = true;
	sc->err_line = line;
	snprintf(sc->msg, sizeof(sc->msg), "%s", msg);
}

static void
scan_open(struct config_scan *sc, const struct tok *t1, const struct tok *t2, int line)
{
	struct brace *b;

	sc->opens = xrealloc(sc->opens, sc->nopens + 1, sizeof(*sc->opens));
	b = &sc->opens[sc->nopens++];
	memset(b, 0, sizeof(*b));
	b->line = line;
	if (t1->kind != TOK_WORD || t1->value)
		return;
	if (t2->kind == TOK_WORD && !t2->value &&
	    config_table_titled(sc->buf + t2->start, t2->len)) {
		b->kind = xstrndup(sc->buf + t2->start, t2->len);
		b->title = xstrndup(sc->buf + t1->start, t1->len);
		b->line = t2->line;
	} else {
		b->kind = xstrndup(sc->buf + t1->start, t1->len);
		b->line = t1->line;
	}
}

static void
scan_close(struct config_scan *sc, size_t open)
{
	sc->closes = xrealloc(sc->closes, sc->ncloses + 1, sizeof(*sc->closes));
	sc->closes[sc->ncloses++] = open;
}

/* Index of the '}' that ends "${...}" starting at i, or 0. */
static size_t
scan_env_end(const char *b, size_t n, size_t i)
{
	if (i + 1 >= n || b[i] != '$' || b[i + 1] != '{')
		return 0;
	for (size_t k = i + 2; k < n; k++)
		if (b[k] == '}')
			return k;
	return 0;
}

static int
count_newlines(const char *b, size_t from, size_t to)
{
	int n = 0;

	for (size_t i = from; i < to; i++)
		n += b[i] == '\n';
	return n;
}

void
config_scan_run(struct config_scan *sc)
{
	char *b = sc->buf;
	size_t n = sc->len, i = 0, *stack = NULL, depth = 0;
	struct tok t1 = { 0 }, t2 = { 0 };
	int line = 1;

	/* config_load() clamps libconfuse's line numbers to this count. */
	sc->nlines = count_newlines(b, 0, n) + (n > 0 && b[n - 1] != '\n');
	while (i < n) {
		char c = b[i];
		struct tok t = { .kind = TOK_WORD, .line = line, .start = i };
		size_t end;

		if (c == '\0') {
			scan_error(sc, line, "unexpected NUL byte");
			sc->fatal = true;
			break;
		}
		if (c == '\n') {
			line++;
			i++;
			continue;
		}
		/* libconfuse's lexer drops a stray '*' like blank space. */
		if (c == ' ' || c == '\t' || c == '\r' || c == '*') {
			i++;
			continue;
		}
		if (c == '#' || (c == '/' && i + 1 < n && b[i + 1] == '/')) {
			while (i < n && b[i] != '\n')
				b[i++] = ' ';
			continue;
		}
		if (c == '/' && i + 1 < n && b[i + 1] == '*') {
			int start = line;

			b[i++] = ' ';
			b[i++] = ' ';
			while (i < n && !(b[i] == '*' && i + 1 < n && b[i + 1] == '/')) {
				if (b[i] == '\n')
					line++;
				else
					b[i] = ' ';
				i++;
			}
			if (i >= n) {
				scan_error(sc, start, "unterminated comment");
				break;
			}
			b[i++] = ' ';
			b[i++] = ' ';
			continue;
		}
		if (c == '"' || c == '\'') {
			size_t j = i + 1;

			while (j < n && b[j] != c) {
				if (b[j] == '\\' && j + 1 < n) {
					line += b[j + 1] == '\n';
					j += 2;
				} else if (c == '"' && (end = scan_env_end(b, n, j)) != 0) {
					line += count_newlines(b, j, end);
					j = end + 1;
				} else {
					line += b[j] == '\n';
					j++;
				}
			}
			if (j >= n) {
				scan_error(sc, t.line, "unterminated string");
				break;
			}
			t.start = i + 1;
			t.len = j - i - 1;
			i = j + 1;
		} else if ((end = scan_env_end(b, n, i)) != 0) {
			line += count_newlines(b, i, end);
			t.len = end + 1 - i;
			i = end + 1;
		} else if (strchr("={}()+,", c) != NULL) {
			t.kind = c == '=' ? TOK_EQUAL : TOK_OTHER;
			if (c == '{') {
				scan_open(sc, &t1, &t2, line);
				stack = xrealloc(stack, depth + 1, sizeof(*stack));
				stack[depth++] = sc->nopens - 1;
			} else if (c == '}' && depth > 0) {
				/* A '}' at top level is libconfuse's to report. */
				scan_close(sc, stack[--depth]);
			}
			i++;
		} else {
			while (i < n && b[i] != '\0' && strchr(" #\"'\t\n\r={}()+,*", b[i]) == NULL)
				i++;
			t.len = i - t.start;
		}
		t.value = t.kind == TOK_WORD && t1.kind == TOK_EQUAL;
		t2 = t1;
		t1 = t;
	}
	if (depth > 0 && !sc->failed) {
		const struct brace *open = &sc->opens[stack[depth - 1]];
		char msg[200];

		if (open->title != NULL)
			snprintf(msg, sizeof(msg), "%s \"%s\" is not closed (missing \"}\")",
				open->kind, open->title);
		else
			snprintf(msg, sizeof(msg), "%s is not closed (missing \"}\")",
				open->kind != NULL ? open->kind : "section");
		scan_error(sc, open->line, msg);
	}
	/* libconfuse closes what is left open at the end of the file. */
	while (depth > 0)
		scan_close(sc, stack[--depth]);
	free(stack);
}


void
config_scan_free(struct config_scan *sc)
{
	for (size_t i = 0; i < sc->nopens; i++) {
		free(sc->opens[i].kind);
		free(sc->opens[i].title);
	}
	free(sc->opens);
	free(sc->closes);
	/* The file may hold sticky_key. */
	if (sc->buf != NULL)
		explicit_bzero(sc->buf, sc->len);
	free(sc->buf);
}
