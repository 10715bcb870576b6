/*
 * toolutil: option parsing and messages the programs share.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toolutil.h"

/*
 * Appends s (an argv string, which outlives the array) to *list; -1 after
 * printing "PROG: out of memory", the list left as it was.
 */
int
tool_append(const char *prog, char ***list, size_t *n, char *s)
{
	char	**more;

	if ((more = reallocarray(*list, *n + 1, sizeof(**list))) == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -1;
	}
	*list = more;
	(*list)[(*n)++] = s;
	return 0;
}

/* SECONDS from 0 to 86400, fractions allowed, into milliseconds. */
int
tool_seconds(const char *prog, const char *opt, const char *s, unsigned *ms)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || end == s || v < 0 || v > 86400) {
		fprintf(stderr, "%s: %s: \"%s\" is not a number of seconds "
		    "from 0 to 86400\n", prog, opt, s);
		return -1;
	}
	*ms = (unsigned)(v * 1000);
	return 0;
}

/* A whole number from 0 to max. */
int
tool_count(const char *prog, const char *opt, const char *s, unsigned max,
    unsigned *n)
{
	char		*end;
	unsigned long	 v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || s[0] == '-' ||
	    v > max) {
		fprintf(stderr, "%s: %s: \"%s\" is not a whole number from 0 "
		    "to %u\n", prog, opt, s, max);
		return -1;
	}
	*n = (unsigned)v;
	return 0;
}

/* Why handoff_new() refused a control path, given its errno. */
const char *
tool_control_error(int err)
{
	if (err == EINVAL)
		return "must be 1 to 107 bytes (a unix socket path); choose "
		    "a shorter path";
	return strerror(err);
}
