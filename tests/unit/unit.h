/*
 * unit: a tiny test harness. CHECK records a failure and goes on;
 * unit_done() prints the totals and gives the exit status.
 */
#ifndef HANDOFF_UNIT_H
#define HANDOFF_UNIT_H

#include <sys/resource.h>

#include <dirent.h>
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

/* Integers, with both values in the failure line. */
#define CHECK_INT(got, want) do {					\
	long long g_ = (long long)(got), w_ = (long long)(want);	\
	unit_checks++;							\
	if (g_ != w_) {							\
		unit_failures++;					\
		fprintf(stderr, "%s:%d: FAIL: %s is %lld, want %lld\n",	\
		    __FILE__, __LINE__, #got, g_, w_);			\
	}								\
} while (0)

static inline int
unit_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, unit_checks,
	    unit_failures);
	return unit_failures == 0 && unit_checks > 0 ? 0 : 1;
}

/* Entries of a /proc directory, its own fd aside; -1 if missing. */
static inline int
unit_count_entries(const char *path)
{
	DIR		*d;
	struct dirent	*e;
	int		 n = 0;

	if ((d = opendir(path)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Open fds of this process, for leak checks; -1 if /proc is missing. */
static inline int
unit_count_fds(void)
{
	return unit_count_entries("/proc/self/fd");
}

/* Raises the soft fd limit to the hard one; returns the new soft limit. */
static inline long
unit_raise_nofile(void)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return -1;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		return -1;
	return (long)rl.rlim_cur;
}

#endif
