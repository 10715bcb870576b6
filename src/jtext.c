/*
 * jtext: JSON written as text into a bounded buffer, strings escaped as
 * jansson escapes them, for the messages whose rows are many ("fds",
 * "conns"): building a jansson value a cell and dumping it cost a sender
 * about 1.5 us a row. The first failure sticks (EMSGSIZE past the
 * buffer, EINVAL for a string that is not UTF-8) and jtext_end says it.
 * A leaf: it calls no other module.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jtext.h"

/* The caller's buffer of cap bytes and a NUL. */
void
jtext_use(struct jtext *o, char *buf, size_t cap)
{
	o->p = buf;
	o->len = 0;
	o->cap = cap;
	o->bad = 0;
}

void
jtext_put(struct jtext *o, const char *s, size_t n)
{
	if (o->bad == 0 && n > o->cap - o->len)
		o->bad = EMSGSIZE;
	if (o->bad != 0)
		return;
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

/* A decimal integer, without printf: a message has hundreds. */
void
jtext_int(struct jtext *o, long long v)
{
	char			 num[24], *p = num + sizeof(num);
	unsigned long long	 u = v < 0 ? 0ULL - (unsigned long long)v :
				    (unsigned long long)v;

	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	jtext_put(o, p, (size_t)(num + sizeof(num) - p));
}

/* A buffer for cap bytes and a NUL: -1 if none. */
int
jtext_begin(struct jtext *o, size_t cap)
{
	o->len = 0;
	o->cap = cap;
	o->bad = 0;
	return (o->p = malloc(cap + 1)) == NULL ? -1 : 0;
}

/* The text written, of *len bytes, or NULL with errno. */
char *
jtext_end(struct jtext *o, size_t *len)
{
	if (o->bad != 0) {
		free(o->p);
		errno = o->bad;
		return NULL;
	}
	o->p[o->len] = '\0';
	*len = o->len;
	return o->p;
}

/* Bytes of the UTF-8 sequence at s, 0 if it is not one (overlong, a
 * surrogate, beyond U+10FFFF): jansson refuses what this refuses. */
static size_t
utf8_seq(const unsigned char *s)
{
	unsigned	cp, n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A JSON string, escaped as jansson does (msg_escaped_len counts it);
 * EINVAL if it is not UTF-8. */
void
jtext_string(struct jtext *o, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s, *run;
	char			 esc[8];
	size_t			 n;

	jtext_put(o, "\"", 1);
	while (*p != '\0' && !o->bad) {
		for (run = p; *p >= 0x20 && *p != '"' && *p != '\\' &&
		    *p < 0x80; p++)
			;
		jtext_put(o, (const char *)run, (size_t)(p - run));
		if (*p == '\0')
			break;
		if (*p >= 0x80) {
			if ((n = utf8_seq(p)) == 0)
				o->bad = EINVAL;
			jtext_put(o, (const char *)p, n);
			p += n;
			continue;
		}
		switch (*p) {
		case '"':	jtext_put(o, "\\\"", 2); break;
		case '\\':	jtext_put(o, "\\\\", 2); break;
		case '\b':	jtext_put(o, "\\b", 2); break;
		case '\f':	jtext_put(o, "\\f", 2); break;
		case '\n':	jtext_put(o, "\\n", 2); break;
		case '\r':	jtext_put(o, "\\r", 2); break;
		case '\t':	jtext_put(o, "\\t", 2); break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04X", *p);
			jtext_put(o, esc, 6);
		}
		p++;
	}
	jtext_put(o, "\"", 1);
}
