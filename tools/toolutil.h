/*
 * toolutil: small helpers shared by the programs in tools/.
 * tool_seconds returns 0, or -1 after printing "PROG: OPT: why" on stderr.
 */
#ifndef HANDOFF_TOOLUTIL_H
#define HANDOFF_TOOLUTIL_H

int		 tool_seconds(const char *, const char *, const char *,
		    unsigned *);
const char	*tool_control_error(int);

#endif
