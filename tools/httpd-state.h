/*
 * httpd-state: handoff-httpd's state across generations, a memfd handed
 * from each generation to the next under the name STATE_NAME (an "fd:"
 * entry of the handoff), mapped MAP_SHARED by every generation that
 * holds it: an incumbent still draining and its successor count in the
 * same page. Nothing is copied at a takeover, whatever its size.
 *
 * Errors: state_open returns NULL after writing what failed and what to
 * do into err; the other functions cannot fail.
 */
#ifndef HANDOFF_HTTPD_STATE_H
#define HANDOFF_HTTPD_STATE_H

#include <stddef.h>
#include <stdint.h>

struct handoff;
struct state;

#define STATE_NAME	"state"
/* --state-mb at most: a bound on what one may ask for, and on what a
 * successor maps of what it is offered. */
#define STATE_MB_MAX	65536

/* Asks for the predecessor's state by name: before handoff_start. */
int		 state_listen(struct handoff *);
/*
 * After handoff_start and before handoff_ready: maps the predecessor's
 * state if it offered a good one, else makes one of mb MiB (one page if
 * 0) and passes it to successors; logs which, and why, through
 * handoff_log.
 */
struct state	*state_open(struct handoff *, unsigned, char *, size_t);
/* One more GET / answered, by any generation: the new total. */
uint64_t	 state_count(struct state *);
/* The total so far, counting nothing. */
uint64_t	 state_served(const struct state *);
/* Unmaps it; the fd is the handle's, still offered to successors. */
void		 state_close(struct state *);

#endif
