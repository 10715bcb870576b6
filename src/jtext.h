/*
 * jtext: JSON written as text into a bounded buffer (jtext.c).
 */
#ifndef HANDOFF_JTEXT_H
#define HANDOFF_JTEXT_H

#include <stddef.h>

struct jtext {
	char	*p;
	size_t	 len, cap;
	int	 bad;		/* 0, or the errno to fail with */
};

/* A new buffer for cap bytes and a NUL: 0, or -1 (out of memory). */
int	 jtext_begin(struct jtext *, size_t);
/* The caller's buffer of cap bytes and a NUL. */
void	 jtext_use(struct jtext *, char *, size_t);
void	 jtext_put(struct jtext *, const char *, size_t);
void	 jtext_string(struct jtext *, const char *);
void	 jtext_int(struct jtext *, long long);
/* jtext_begin's buffer with what was written, NUL-terminated, of *len
 * bytes; or NULL with errno, the buffer freed. */
char	*jtext_end(struct jtext *, size_t *);

#endif
