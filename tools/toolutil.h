/*
 * toolutil: small helpers shared by the programs in tools/.
 * tool_seconds and tool_count return 0, or -1 after printing
 * "PROG: OPT: why" on stderr;
 * tool_append grows an array of argv strings.
 */
#ifndef HANDOFF_TOOLUTIL_H
#define HANDOFF_TOOLUTIL_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

int		 tool_seconds(const char *, const char *, const char *,
		    unsigned *);
int		 tool_count(const char *, const char *, const char *,
		    unsigned, unsigned *);
const char	*tool_control_error(int);
int		 tool_append(const char *, char ***, size_t *, char *);

/*
 * The options both servers, handoff-httpd and handoff-exec, take: the
 * first entries of each one's getopt_long table, and the start of its
 * optstring. -m stays handoff-httpd's (it adds "m:"); the order keeps
 * getopt's list of an ambiguous abbreviation's possibilities.
 */
#define TOOL_SERVER_LONGOPTS						\
	{ "control",		required_argument,	NULL, 'c' },	\
	{ "listen",		required_argument,	NULL, 'l' },	\
	{ "tag",		required_argument,	NULL, 't' },	\
	{ "drain-timeout",	required_argument,	NULL, 'd' },	\
	{ "ready-timeout",	required_argument,	NULL, 'r' },	\
	{ "max-draining",	required_argument,	NULL, 'm' },	\
	{ "help",		no_argument,		NULL, 'h' },	\
	{ "version",		no_argument,		NULL, 'V' }
#define TOOL_SERVER_SHORTOPTS	"c:l:t:d:r:hV"
#define TOOL_MAX_DRAINING_MAX	1000

/* What the shared options said; tool_server_init gives the defaults. */
struct tool_server_opts {
	const char	 *prog;		/* "handoff-httpd": messages, --version */
	void		(*usage)(FILE *);	/* --help */
	const char	 *control;	/* NULL without --control */
	char		**listens;	/* --listen, in order; owned array */
	size_t		  nlisten;
	const char	 *tag;
	unsigned	  drain_ms, ready_ms;
	unsigned	  max_draining;
	int		  max_draining_set;
};

/* What tool_server_option made of one option. */
enum tool_opt {
	TOOL_OPT_TAKEN,		/* a shared option, stored */
	TOOL_OPT_OTHER,		/* not a shared one: the tool's own */
	TOOL_OPT_EXIT,		/* exit with *code: 0 after --help or
				 * --version, 2 after a bad value, 1 out
				 * of memory (said on stderr) */
};

void		 tool_server_init(struct tool_server_opts *, const char *,
		    void (*)(FILE *));
enum tool_opt	 tool_server_option(struct tool_server_opts *, int,
		    char *, int *);
void		 tool_server_clear(struct tool_server_opts *);

#endif
