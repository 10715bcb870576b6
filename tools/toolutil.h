/*
 * toolutil: small helpers shared by the programs in tools/.
 * tool_seconds and tool_count return 0, or -1 after printing "PROG: OPT: why" on stderr;
 * tool_append grows an array of argv strings.
 */
#ifndef HANDOFF_TOOLUTIL_H
#define HANDOFF_TOOLUTIL_H

#include <stddef.h>

int		 tool_seconds(const char *, const char *, const char *,
		    unsigned *);
int		 tool_count(const char *, const char *, const char *,
		    unsigned, unsigned *);
const char	*tool_control_error(int);
int		 tool_append(const char *, char ***, size_t *, char *);

#endif
