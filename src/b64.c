/*
 * b64: base64 (RFC 4648, padded), for the bytes of a datagram in a
 * message. A leaf: it calls no other module.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "b64.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* RFC 4648 base64 of len bytes, padded, into out (B64_LEN(len) bytes,
 * no NUL): the length written. */
size_t
b64_write(const void *data, size_t len, char *out)
{
	const unsigned char	*p = data;
	char			*o = out;
	unsigned long		 v;
	size_t			 i;

	for (i = 0; i < len; i += 3) {
		v = (unsigned long)p[i] << 16;
		if (i + 1 < len)
			v |= (unsigned long)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		*o++ = b64_alphabet[(v >> 18) & 63];
		*o++ = b64_alphabet[(v >> 12) & 63];
		o[0] = o[1] = '=';
		if (i + 1 < len)
			o[0] = b64_alphabet[(v >> 6) & 63];
		if (i + 2 < len)
			o[1] = b64_alphabet[v & 63];
		o += 2;
	}
	return (size_t)(o - out);
}

/* The same as a new string, or NULL. */
char *
b64_encode(const void *data, size_t len)
{
	char	*s;

	if ((s = malloc(B64_LEN(len) + 1)) == NULL)
		return NULL;
	s[b64_write(data, len, s)] = '\0';
	return s;
}

static int
b64_value(char c)
{
	const char	*p;

	if (c == '\0' || (p = strchr(b64_alphabet, c)) == NULL)
		return -1;
	return (int)(p - b64_alphabet);
}

/*
 * Decodes padded base64 s into out (room for max bytes; NULL only checks
 * s): the length, or -1 if s is not base64 (a character outside the
 * alphabet, a length that is not a multiple of 4, padding anywhere but
 * at the end) or decodes to more than max bytes.
 */
ssize_t
b64_decode(const char *s, void *out, size_t max)
{
	unsigned char	*o = out;
	size_t		 len = strlen(s), i, n = 0;
	int		 k, pad, c[4];

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4) {
		pad = 0;
		for (k = 0; k < 4; k++) {
			if (s[i + k] == '=' && i + 4 == len && k >= 2 &&
			    (k == 3 || s[i + 3] == '=')) {
				c[k] = 0;
				pad++;
			} else if ((c[k] = b64_value(s[i + k])) == -1)
				return -1;
		}
		if (n + 3 - (size_t)pad > max)
			return -1;
		if (o == NULL) {
			n += 3 - (size_t)pad;
			continue;
		}
		o[n++] = (unsigned char)(c[0] << 2 | c[1] >> 4);
		if (pad < 2)
			o[n++] = (unsigned char)((c[1] & 15) << 4 | c[2] >> 2);
		if (pad < 1)
			o[n++] = (unsigned char)((c[2] & 3) << 6 | c[3]);
	}
	return (ssize_t)n;
}
