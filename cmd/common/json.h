/* json.h -- JSON strings, escaped one way for every command's output. */
#ifndef SOCKIT_JSON_H
#define SOCKIT_JSON_H

#include <stddef.h>
#include <stdio.h>

/* Writes s escaped as a JSON string body (no quotes) into dst: '"', '\\'
 * and control bytes become \" \\ \n \r \t or \u00XX; other bytes pass
 * as they are (UTF-8 stays UTF-8).  dst is always NUL-terminated when
 * cap > 0.  Returns the length the whole escaped string needs (as
 * snprintf), so a result >= cap means it was cut (never inside an
 * escape). */
size_t json_escape(char *dst, size_t cap, const char *s);

/* Prints s as a quoted JSON string to f; NULL prints null. */
void json_put_str(FILE *f, const char *s);

#endif /* SOCKIT_JSON_H */
