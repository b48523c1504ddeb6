/* frame.c -- the line framer: where the first line of a buffer ends.  Pure: no I/O. */
#include <string.h>

#include "serve.h"

ssize_t line_frame(const char *buf, size_t len, size_t max_line)
{
	size_t scan = len <= max_line ? len : max_line + 1;
	const char *nl = scan > 0 ? memchr(buf, '\n', scan) : NULL;
	if (nl != NULL)
		return (ssize_t)(nl - buf) + 1;
	return len > max_line ? -1 : -2;
}
