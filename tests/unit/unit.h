/*
 * unit: a tiny test harness. CHECK records a failure and goes on;
 * unit_done() prints the totals and gives the exit status.
 */
#ifndef HANDOFF_UNIT_H
#define HANDOFF_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_checks, unit_failures;

#define CHECK(cond) do {						\
	unit_checks++;							\
	if (!(cond)) {							\
		unit_failures++;					\
		fprintf(stderr, "%s:%d: FAIL: %s\n", __FILE__, __LINE__,\
		    #cond);						\
	}								\
} while (0)

#define CHECK_STR(got, want) do {					\
	const char *g_ = (got), *w_ = (want);				\
	unit_checks++;							\
	if (g_ == NULL || strcmp(g_, w_) != 0) {			\
		unit_failures++;					\
		fprintf(stderr, "%s:%d: FAIL: got \"%s\"\n"		\
		    "    want \"%s\"\n", __FILE__, __LINE__,		\
		    g_ ? g_ : "(null)", w_);				\
	}								\
} while (0)

static inline int
unit_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, unit_checks,
	    unit_failures);
	return unit_failures == 0 && unit_checks > 0 ? 0 : 1;
}

#endif
