/*
 * drain: the drain clock. Started at released (or at a stop), stopped by
 * a hold or a rollback; at its end the application hears HANDOFF_HAMMER.
 */
#include "config.h"

#include <sys/time.h>

#include <stdio.h>

#include "handoff-int.h"

/* "N connections", or nothing when the application does not count. */
static const char *
hconns(struct handoff *h, char *buf, size_t len)
{
	unsigned	n = hcount(h);

	if (h->count_cb == NULL)
		snprintf(buf, len, "the application's connections");
	else
		snprintf(buf, len, "%u connection%s", n, n == 1 ? "" : "s");
	return buf;
}

static void
drain_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct handoff	*h = arg;
	char		 conns[64];

	hlog(h, "hammered: drain deadline of %u ms passed; closing %s",
	    h->drain_ms, hconns(h, conns, sizeof(conns)));
	hevent(h, HANDOFF_HAMMER);
}

/* Starts the drain clock, ms before the hammer. */
void
drain_clock(struct handoff *h, unsigned ms)
{
	struct timeval	tv, now;
	char		conns[64];

	h->drain_ms = ms;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	gettimeofday(&now, NULL);
	timeradd(&now, &tv, &h->drain_end);
	if (h->drain_ev == NULL)
		h->drain_ev = evtimer_new(h->base, drain_deadline, h);
	if (h->drain_ev != NULL)
		evtimer_add(h->drain_ev, &tv);
	hlog(h, "draining %s, deadline %u ms", hconns(h, conns,
	    sizeof(conns)), ms);
}

void
drain_cancel(struct handoff *h)
{
	if (h->drain_ev != NULL)
		evtimer_del(h->drain_ev);
	timerclear(&h->drain_end);
}

unsigned
drain_remaining(const struct handoff *h)
{
	struct timeval	now, left;

	if (!timerisset(&h->drain_end))
		return 0;
	gettimeofday(&now, NULL);
	if (timercmp(&now, &h->drain_end, >=))
		return 0;
	timersub(&h->drain_end, &now, &left);
	return (unsigned)(left.tv_sec * 1000 + left.tv_usec / 1000);
}
