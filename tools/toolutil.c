/*
 * toolutil: option parsing and messages the programs share.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handoff.h"
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

/* The defaults both servers document: 30 s timeouts, an empty tag. */
void
tool_server_init(struct tool_server_opts *o, const char *prog,
    void (*usage)(FILE *))
{
	memset(o, 0, sizeof(*o));
	o->prog = prog;
	o->usage = usage;
	o->tag = "";
	o->drain_ms = o->ready_ms = 30000;
}

/*
 * Takes option c, as getopt_long returned it with argument arg, if it is
 * one of TOOL_SERVER_LONGOPTS; see enum tool_opt.
 */
enum tool_opt
tool_server_option(struct tool_server_opts *o, int c, char *arg, int *code)
{
	int	bad = 0;

	switch (c) {
	case 'c':
		o->control = arg;
		break;
	case 'l':
		if (tool_append(o->prog, &o->listens, &o->nlisten, arg) == -1) {
			*code = 1;
			return TOOL_OPT_EXIT;
		}
		break;
	case 't':
		o->tag = arg;
		break;
	case 'd':
		bad = tool_seconds(o->prog, "--drain-timeout", arg,
		    &o->drain_ms) == -1;
		break;
	case 'r':
		bad = tool_seconds(o->prog, "--ready-timeout", arg,
		    &o->ready_ms) == -1;
		break;
	case 'm':
		bad = tool_count(o->prog, "--max-draining", arg,
		    TOOL_MAX_DRAINING_MAX, &o->max_draining) == -1;
		o->max_draining_set = 1;
		break;
	case 'h':
		o->usage(stdout);
		*code = 0;
		return TOOL_OPT_EXIT;
	case 'V':
		printf("%s %s (protocol %d)\n", o->prog, PACKAGE_VERSION,
		    HANDOFF_PROTO_VERSION);
		*code = 0;
		return TOOL_OPT_EXIT;
	default:
		return TOOL_OPT_OTHER;
	}
	if (bad) {
		*code = 2;
		return TOOL_OPT_EXIT;
	}
	return TOOL_OPT_TAKEN;
}

/* Frees what the options hold; they may be parsed again after init. */
void
tool_server_clear(struct tool_server_opts *o)
{
	free(o->listens);
	o->listens = NULL;
	o->nlisten = 0;
}
