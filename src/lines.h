/*
 * lines.h - JSON-lines input (replay, produce): one record value per line,
 * from files or standard input ("-"). Blank lines are not records.
 */
#ifndef WS_LINES_H
#define WS_LINES_H

#include <stdio.h>
#include <sys/types.h>

/* Opens `name` for reading, "-" being standard input. NULL with errno set
 * on failure. Close with ws_lines_close. */
FILE *ws_lines_open(const char *name);
void ws_lines_close(FILE *f);

/* The name to show for `name` in messages ("<stdin>" for "-"). */
const char *ws_lines_label(const char *name);

/* Reads the next line into *buf (grown as needed, reused between calls,
 * freed by the caller), without its final '\n'; *len is its length.
 * Returns the bytes consumed from the stream, or -1 at end of input or on
 * a read error (ferror tells which). */
ssize_t ws_lines_read(FILE *f, char **buf, size_t *cap, size_t *len);

/* 1 when s[0..n) holds only spaces, tabs and carriage returns. */
int ws_lines_blank(const char *s, size_t n);

#endif
