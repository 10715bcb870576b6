/*
 * retire: the listeners a successor gave up (moved or dropped) and the
 * start of the drain. A retired TCP port is shut so that it refuses new
 * connections, but stays bound so that a rollback can listen again; what
 * is queued on it is first served, if the application serves retired
 * listeners.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <poll.h>
#include <string.h>

#include "handoff-int.h"

/* How often, and how long at most, the queues of retiring listeners are
 * looked at before they are shut. */
#define RETIRE_POLL_MS	10
#define RETIRE_MS	1000

/*
 * shutdown() gives a port the kernel chose (bound to port 0) back to it,
 * and a later listen() would choose another: bind it again at once. A
 * port asked for stays bound, and bind() says EINVAL.
 */
static void
shut_listener(struct handoff *h, struct hlistener *l)
{
	struct sockaddr_storage	ss;
	socklen_t		len = sizeof(ss);

	if (getsockname(l->fd, (struct sockaddr *)&ss, &len) == -1 ||
	    shutdown(l->fd, SHUT_RD) == -1)
		return;
	l->refusing = 1;
	if (bind(l->fd, (struct sockaddr *)&ss, len) == -1 && errno != EINVAL)
		hlog(h, "retired %s=%s: refusing new connections, but cannot "
		    "keep its port: %s", l->name, l->id.address,
		    strerror(errno));
	else
		hlog(h, "retired %s=%s: refusing new connections", l->name,
		    l->id.address);
}

/* Connections waiting in l's accept queue: TCP_INFO says for a listener. */
static unsigned
queued(const struct hlistener *l)
{
	struct tcp_info	ti;
	socklen_t	len = sizeof(ti);
	struct pollfd	pfd = { .fd = l->fd, .events = POLLIN };

	if (getsockopt(l->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	    ti.tcpi_state == TCP_LISTEN)
		return ti.tcpi_unacked;
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN) ? 1 : 0;
}

/*
 * A TCP port the successor retired (moved or dropped) would queue
 * connections until we exit and then reset them; shutdown() makes it
 * refuse them now, and keeps the port bound so a rollback can listen()
 * again. But shutdown() resets what is already queued too: if the
 * application serves retired listeners, one with connections queued is
 * retiring instead, accepted on until its queue is empty (retire_tick).
 */
void
retire_refuse(struct handoff *h, json_t *ready)
{
	struct hlistener	*l;
	json_t			*v;
	size_t			 i, j;
	unsigned		 n;

	if (json_is_true(json_object_get(ready, "truncated")))
		return;		/* not all named: keep them all */
	json_array_foreach(json_object_get(ready, "retired"), i, v) {
		for (j = 0; j < h->nlisteners; j++) {
			l = &h->listeners[j];
			if (strcmp(l->name, json_string_value(v)) != 0)
				continue;
			/* Its datagrams are the successor's new socket's. */
			if (l->id.socktype == SOCK_DGRAM)
				l->unshared = 1;
			if (l->id.socktype != SOCK_STREAM || !l->id.listening ||
			    (l->id.family != AF_INET && l->id.family !=
			    AF_INET6))
				break;
			if (h->serve_retired && (n = queued(l)) > 0) {
				l->retiring = 1;
				h->nretiring++;
				hlog(h, "retired %s=%s: %u connection%s queued; "
				    "accepting them before refusing new ones",
				    l->name, l->id.address, n, n == 1 ? "" :
				    "s");
			} else
				shut_listener(h, l);
			break;
		}
	}
}

/*
 * Shuts what is still retiring (at its deadline, or as the drain begins
 * after a hold): from HANDOFF_DRAIN on nothing is accepted. What is still
 * queued then is reset, and said.
 */
static void
retire_shut(struct handoff *h)
{
	struct hlistener	*l;
	size_t			 i;
	unsigned		 n;

	if (h->retire_ev != NULL)
		evtimer_del(h->retire_ev);
	for (i = 0; i < h->nlisteners && h->nretiring > 0; i++) {
		l = &h->listeners[i];
		if (!l->retiring)
			continue;
		l->retiring = 0;
		h->nretiring--;
		if ((n = queued(l)) > 0)
			hlog(h, "retired %s=%s: %u connection%s still queued, "
			    "reset: the application did not accept them in "
			    "time", l->name, l->id.address, n, n == 1 ? "" :
			    "s");
		shut_listener(h, l);
	}
}

/* Rollback: the retiring listeners listen on, as they never stopped. */
void
retire_cancel(struct handoff *h)
{
	size_t	i;

	if (h->retire_ev != NULL)
		evtimer_del(h->retire_ev);
	for (i = 0; i < h->nlisteners; i++)
		h->listeners[i].retiring = 0;
	h->nretiring = 0;
}

static void
retire_arm(struct handoff *h)
{
	static const struct timeval poll_every = { 0, RETIRE_POLL_MS * 1000 };

	evtimer_add(h->retire_ev, &poll_every);
}

/*
 * While the application accepts on retiring listeners: once every queue
 * is empty (it has taken all that was there), or RETIRE_MS after ready,
 * they are shut and the drain begins. Not during a hold, whose end
 * decides (a rollback listens on; a drain shuts them as it begins).
 */
static void
retire_tick(evutil_socket_t fd, short what, void *arg)
{
	struct handoff	*h = arg;
	struct timeval	 now;
	size_t		 i;
	int		 late;

	if (h->hstate != HS_DRAINING || h->nretiring == 0)
		return;
	gettimeofday(&now, NULL);
	late = timercmp(&now, &h->retire_end, >=);
	for (i = 0; i < h->nlisteners && !late; i++)
		if (h->listeners[i].retiring && queued(&h->listeners[i]) > 0)
			break;
	if (chain_checking(h) || (!late && i < h->nlisteners)) {
		retire_arm(h);
		return;
	}
	retire_shut(h);
	hevent(h, HANDOFF_DRAIN);
}

/* The drain begins once what is queued on retiring listeners is taken. */
void
retire_watch(struct handoff *h)
{
	struct timeval	now, most = { RETIRE_MS / 1000,
	    (RETIRE_MS % 1000) * 1000 };

	if (h->retire_ev == NULL &&
	    (h->retire_ev = evtimer_new(h->base, retire_tick, h)) == NULL) {
		retire_shut(h);
		hevent(h, HANDOFF_DRAIN);
		return;
	}
	gettimeofday(&now, NULL);
	timeradd(&now, &most, &h->retire_end);
	retire_arm(h);
}

/* Rollback: listen again on what retire_refuse shut. */
void
retire_listen_again(struct handoff *h)
{
	struct hlistener	*l;
	struct listener_id	 id;
	size_t			 i;
	int			 r;

	for (i = 0; i < h->nlisteners; i++) {
		l = &h->listeners[i];
		l->unshared = 0;
		if (!l->refusing)
			continue;
		l->refusing = 0;
		if ((r = listen(l->fd, LISTENER_BACKLOG)) == -1)
			hlog(h, "rollback: cannot listen on %s=%s again: %s",
			    l->name, l->id.address, strerror(errno));
		/* What the next offer says must be what the fd is: the
		 * offer is encoded anew if anything changed. */
		if (listener_identify(l->fd, &id) == -1)
			continue;
		if (strcmp(id.address, l->id.address) == 0 &&
		    id.listening == l->id.listening) {
			if (r == 0)
				hlog(h, "rollback: listening on %s=%s again",
				    l->name, l->id.address);
			continue;
		}
		if (strcmp(id.address, l->id.address) != 0)
			hlog(h, "rollback: %s=%s listens on %s now", l->name,
			    l->id.address, id.address);
		l->id = id;
		offer_free(h);
	}
}

/*
 * Starts the drain clock and says HANDOFF_DRAIN; the caller has already
 * paused accepting. From HANDOFF_DRAIN on nothing is accepted, so what
 * was still retiring is shut first.
 */
void
retire_then_drain(struct handoff *h, unsigned ms)
{
	drain_clock(h, ms);
	retire_shut(h);
	hevent(h, HANDOFF_DRAIN);
}
