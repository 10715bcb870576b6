/*
 * connkeeper: a line server whose connections migrate (tests/integration
 * /conns.sh). Each line X on a connection is answered "pid=P tag=T n=N
 * X", N counting the lines answered on that connection by every
 * generation (it travels in the connection's state). Drained after a
 * takeover, it gives each idle connection (nothing to write, no whole
 * line waiting) to the successor with the bytes of a partial line; one
 * that comes back is served on. Exits 0 once it drains with no
 * connection of its own and none pending. Its last log line says how
 * many connections it accepted itself and how many it was given.
 *
 * usage: connkeeper [-n] CONTROL TAG NAME=SPEC
 *   -n  no migration: no connection callback, so no "conns" extension
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "handoff.h"

struct keeper;

struct conn {
	LIST_ENTRY(conn)	 entry;
	struct keeper		*k;
	struct bufferevent	*bev;
	int			 fd;
	char			 listener[65];
	long			 n;		/* lines answered, all told */
};

struct keeper {
	struct event_base	*base;
	struct handoff		*h;
	struct evconnlistener	*lev[8];
	size_t			 nlev;
	struct event		*sigterm;
	const char		*tag;
	int			 draining;
	LIST_HEAD(, conn)	 conns;
	unsigned		 nconns;
	unsigned long		 accepted, given_us;
};

static void	conn_read(struct bufferevent *, void *);

static void
conn_free(struct conn *c, int close_fd)
{
	LIST_REMOVE(c, entry);
	c->k->nconns--;
	bufferevent_free(c->bev);
	if (close_fd)
		close(c->fd);
	free(c);
}

static void
check_done(struct keeper *k)
{
	if (k->draining && k->nconns == 0 && handoff_conns_pending(k->h) == 0)
		event_base_loopexit(k->base, NULL);
}

/* Idle: to the successor, with the partial line read and its count. */
static void
try_give(struct conn *c)
{
	struct evbuffer	*in = bufferevent_get_input(c->bev);
	struct evbuffer_ptr p;
	char		 state[64];
	size_t		 len = evbuffer_get_length(in);

	p = evbuffer_search(in, "\n", 1, NULL);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0 ||
	    p.pos != -1)
		return;
	snprintf(state, sizeof(state), "{\"n\":%ld}", c->n);
	if (handoff_conn_give(c->k->h, c->fd, c->listener,
	    evbuffer_pullup(in, -1), len, state) == 0)
		conn_free(c, 0);	/* the library's fd now */
}

static void
conn_read(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;
	char		*line;
	size_t		 n;

	while ((line = evbuffer_readln(bufferevent_get_input(bev), &n,
	    EVBUFFER_EOL_LF)) != NULL) {
		c->n++;
		evbuffer_add_printf(bufferevent_get_output(bev),
		    "pid=%ld tag=%s n=%ld %s\n", (long)getpid(), c->k->tag,
		    c->n, line);
		free(line);
	}
}

static void
conn_written(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;

	if (c->k->draining)
		try_give(c);
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn	*c = arg;
	struct keeper	*k = c->k;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		conn_free(c, 1);
		check_done(k);
	}
}

/* Serves fd, beginning with len bytes already read from it. */
static int
conn_new(struct keeper *k, int fd, const char *listener, const void *data,
    size_t len, long n)
{
	struct conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	/* The input's end is the socket's: what was read goes in front. */
	if ((c->bev = bufferevent_socket_new(k->base, fd, 0)) == NULL ||
	    (len > 0 && evbuffer_prepend(bufferevent_get_input(c->bev), data,
	    len) == -1)) {
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		free(c);
		return -1;
	}
	c->k = k;
	c->fd = fd;
	c->n = n;
	snprintf(c->listener, sizeof(c->listener), "%s", listener);
	LIST_INSERT_HEAD(&k->conns, c, entry);
	k->nconns++;
	bufferevent_setcb(c->bev, conn_read, conn_written, conn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	conn_read(c->bev, c);
	return 0;
}

static int
on_conn(struct handoff *h, enum handoff_way from, int fd,
    const char *listener, const void *data, size_t len, const char *state,
    void *arg)
{
	struct keeper	*k = arg;
	const char	*p;
	long		 n = 0;

	if (state != NULL && (p = strstr(state, "\"n\":")) != NULL)
		n = strtol(p + 4, NULL, 10);
	if (conn_new(k, fd, listener, data, len, n) == -1)
		return -1;
	k->given_us++;
	return 0;
}

static void
on_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct keeper	*k = arg;
	size_t		 i;

	for (i = 0; i < k->nlev && k->lev[i] != lev; i++)
		;
	k->accepted++;
	if (conn_new(k, fd, handoff_listener_name(k->h, i), "", 0, 0) == -1)
		close(fd);
}

static void
listening(struct keeper *k, int on)
{
	size_t	i;

	for (i = 0; i < k->nlev; i++)
		if (on)
			evconnlistener_enable(k->lev[i]);
		else
			evconnlistener_disable(k->lev[i]);
}

static void
on_event(struct handoff *h, enum handoff_event ev, void *arg)
{
	struct keeper	*k = arg;
	struct conn	*c, *next;

	switch (ev) {
	case HANDOFF_PAUSE:
		listening(k, 0);
		break;
	case HANDOFF_DRAIN:
		k->draining = 1;
		for (c = LIST_FIRST(&k->conns); c != NULL; c = next) {
			next = LIST_NEXT(c, entry);
			try_give(c);
		}
		check_done(k);
		break;
	case HANDOFF_RESUME:
		k->draining = 0;
		listening(k, 1);
		break;
	case HANDOFF_HOLD:
		k->draining = 0;
		break;
	case HANDOFF_CONNS_SETTLED:
		check_done(k);
		break;
	case HANDOFF_HAMMER:
		event_base_loopexit(k->base, NULL);
		break;
	case HANDOFF_SUPERSEDED:
	case HANDOFF_ABORT:
	case HANDOFF_PREDECESSOR_GONE:
		break;
	}
}

static unsigned
count(void *arg)
{
	return ((struct keeper *)arg)->nconns;
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	struct keeper	*k = arg;

	if (handoff_stop(k->h) == -1)
		event_base_loopexit(k->base, NULL);
}

int
main(int argc, char *argv[])
{
	struct keeper	 k;
	char		*name, *spec;
	size_t		 i;
	int		 migrate = 1, code = 1;

	if (argc > 1 && strcmp(argv[1], "-n") == 0) {
		migrate = 0;
		argv++;
		argc--;
	}
	if (argc != 4 || (spec = strchr(argv[3], '=')) == NULL) {
		fprintf(stderr, "usage: connkeeper [-n] CONTROL TAG NAME=SPEC\n");
		return 2;
	}
	memset(&k, 0, sizeof(k));
	LIST_INIT(&k.conns);
	k.tag = argv[2];
	name = argv[3];
	*spec++ = '\0';
	signal(SIGPIPE, SIG_IGN);
	if ((k.base = event_base_new()) == NULL ||
	    (k.h = handoff_new(k.base, argv[1])) == NULL)
		return 1;
	handoff_set_ident(k.h, "connkeeper");
	handoff_set_tag(k.h, k.tag);
	handoff_set_event_cb(k.h, on_event, &k);
	handoff_set_count_cb(k.h, count, &k);
	handoff_set_drain_timeout(k.h, 60000);
	if (migrate)
		handoff_set_conn_cb(k.h, on_conn, &k);
	if (handoff_listen(k.h, name, spec) == -1 || handoff_start(k.h) == -1)
		goto out;
	for (i = 0; i < handoff_listener_count(k.h) && i < 8; i++)
		if ((k.lev[k.nlev++] = evconnlistener_new(k.base, on_accept, &k,
		    0, -1, handoff_listener_fd(k.h, i))) == NULL)
			goto out;
	k.sigterm = evsignal_new(k.base, SIGTERM, on_term, &k);
	if (k.sigterm == NULL || evsignal_add(k.sigterm, NULL) == -1 ||
	    handoff_ready(k.h) == -1)
		goto out;
	event_base_dispatch(k.base);
	handoff_log(k.h, "exiting: accepted %lu connections, was given %lu",
	    k.accepted, k.given_us);
	code = 0;
out:
	if (code != 0)
		fprintf(stderr, "connkeeper: %s\n", handoff_strerror(k.h));
	while (!LIST_EMPTY(&k.conns))
		conn_free(LIST_FIRST(&k.conns), 1);
	for (i = 0; i < k.nlev; i++)
		evconnlistener_free(k.lev[i]);
	if (k.sigterm != NULL)
		event_free(k.sigterm);
	handoff_free(k.h);
	event_base_free(k.base);
	return code;
}
