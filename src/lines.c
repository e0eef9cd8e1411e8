/*
 * lines.c - JSON-lines input.
 */
#include "lines.h"

#include <string.h>

FILE *ws_lines_open(const char *name)
{
    return strcmp(name, "-") == 0 ? stdin : fopen(name, "rb");
}

void ws_lines_close(FILE *f)
{
    if (f && f != stdin)
        fclose(f);
}

const char *ws_lines_label(const char *name)
{
    return strcmp(name, "-") == 0 ? "<stdin>" : name;
}

ssize_t ws_lines_read(FILE *f, char **buf, size_t *cap, size_t *len)
{
    ssize_t got = getline(buf, cap, f);

    if (got < 0)
        return -1;
    *len = (size_t)got;
    if (*len > 0 && (*buf)[*len - 1] == '\n')
        (*len)--;
    return got;
}

int ws_lines_blank(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}
