/*
 * adopt: match the listeners an application asks for against a set of
 * fds it already holds (an offer from the incumbent, or systemd's
 * LISTEN_FDS): adopt by name and address, then by address alone; bind
 * what is missing; retire what nobody asked for.
 *
 * Functions returning int return 0, or -1 with the reason in the handle.
 * The set owns its fds until adopt_take moves one out.
 */
#ifndef HANDOFF_ADOPT_H
#define HANDOFF_ADOPT_H

#include <stddef.h>

struct handoff;
struct hlistener;

struct adopt_set {
	struct hlistener	*l;
	size_t			 n;		/* received so far */
	size_t			 count;		/* announced */
	int			*taken;
	size_t			*byname;	/* hash of names: index + 1 */
	size_t			 mask;		/* byname's size - 1 */
};

int	adopt_init(struct handoff *, struct adopt_set *, size_t);
int	adopt_index(struct handoff *, struct adopt_set *);
int	adopt_match(struct handoff *, struct adopt_set *);
void	adopt_take(struct adopt_set *, size_t, struct hlistener *,
	    const char *, const char *);
void	adopt_free(struct adopt_set *);

#endif
