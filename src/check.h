/*
 * check: compares each fd received in an offer with what its entry
 * claims, as the kernel answers (family, type, address, listening), and
 * makes it non-blocking. With many fds a second thread checks the rows
 * already received while the caller receives the next batch; it is
 * joined by check_finish.
 *
 * The caller owns the fds (in the adopt_set) throughout; the checker
 * only inspects them and fills in each listener's id.
 */
#ifndef HANDOFF_CHECK_H
#define HANDOFF_CHECK_H

#include <pthread.h>

#include "adopt.h"
#include "handoff-int.h"

struct check_claim {
	const char	*family, *socktype, *address;	/* in the name's bytes */
	int		 listening;
};

struct checker {
	struct adopt_set	*o;
	struct check_claim	*claims;	/* one per row of o */
	pthread_t		 helper;
	int			 helped;	/* the helper thread runs */
	pthread_mutex_t		 lock;
	pthread_cond_t		 more;
	size_t			 published;	/* rows that may be checked */
	size_t			 next;		/* first row not yet taken */
	int			 done;		/* no more rows will come */
	int			 failed;
	size_t			 failed_row;	/* the lowest found */
	char			 err[HANDOFF_ERR_MAX];
};

/* 0, or -1 (out of memory). A helper thread runs if threaded is set and
 * one can be started; without it check_finish checks every row. */
int	 check_init(struct checker *, struct adopt_set *, int threaded);
/* Keeps row i's claims; returns its name, followed by them, to be the
 * listener's name (NULL: out of memory). */
char	*check_claim(struct checker *, size_t i, const char *name,
	    const char *family, const char *socktype, const char *address,
	    int listening);
/* Rows [0, n) are stored in the set: the helper may check them. */
void	 check_publish(struct checker *, size_t n);
/* Checks a few published rows not yet taken, as the caller waits for
 * the next batch; 0 if there were none. */
int	 check_some(struct checker *);
/* A row checked so far did not match. */
int	 check_failed(struct checker *);
/* Checks what is left, stops the helper, frees the claims. 0 if every
 * published row matched; -1 with the mismatch of the lowest row found in
 * err (the checking stops at the first found). */
int	 check_finish(struct checker *, char *err, size_t len);

#endif
