/*
 * b64: base64 (RFC 4648, with padding).
 */
#ifndef HANDOFF_B64_H
#define HANDOFF_B64_H

#include <sys/types.h>
#include <stddef.h>

/* The length of the base64 of n bytes, without the NUL. */
#define B64_LEN(n)	(((n) + 2) / 3 * 4)

/* Into a buffer of B64_LEN(n) bytes (no NUL): the length written. */
size_t	 b64_write(const void *, size_t, char *);
/* A new string, or NULL when out of memory. */
char	*b64_encode(const void *, size_t);
/* Into out (room for max bytes; NULL only checks): the length, or -1 if
 * the text is not base64 or decodes to more than max bytes. */
ssize_t	 b64_decode(const char *, void *, size_t);

#endif
