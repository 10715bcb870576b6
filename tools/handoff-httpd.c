/*
 * handoff-httpd: the reference HTTP/1.1 server on libhandoff and httpserv
 * (HTTP on bufferevents, tools/httpserv.c).
 * Starting it while another instance serves the same control socket takes
 * that instance's listeners over; the old one drains and exits 0.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "handoff.h"
#include "httpd-sess.h"
#include "httpd-state.h"
#include "httpserv.h"
#include "toolutil.h"

#define SLOW_MAX_MS	600000
/* The longest ms= of /slow read, digits and all. */
#define SLOW_ARG_MAX	16
/* --max-draining's default. */
#define MAX_DRAINING	4
/* Out of fds, the HTTP listeners pause this long before trying again. */
#define ACCEPT_RETRY_MS	100
/* A datagram's bytes at most, and how many are answered a turn. */
#define UDP_MAX		65536
#define UDP_BATCH	64
/* Idle connections given to the successor a turn of the loop: one
 * message's worth, so that its answers and room on the socket are seen
 * between them and both sides work at once. */
#define GIVE_BATCH	252
/* Hammered, how long the idle connections we give then may take to be
 * answered for before we exit anyway. */
#define HAMMER_GIVE_MS	1000

struct httpd {
	struct event_base	*base;
	struct hs_server	*hs;
	struct handoff		*h;
	struct hs_listener	**lev;		/* per listener; NULL: udp */
	struct event		**udp;		/* per udp:// listener */
	size_t			 nlev;		/* listeners watched */
	const char		*tag;
	int			 draining;
	int			 migrate;	/* not --no-migrate */
	int			 migrating;	/* idle ones go to the successor */
	unsigned long		 accepted;	/* connections, by us */
	unsigned long		 given;		/* to our successor */
	struct event		*give_ev;	/* gives the next batch */
	struct evbuffer		*rest;		/* a given one's bytes */
	unsigned long		 taken;		/* from our predecessor */
	int			 paused;	/* HANDOFF_PAUSE until RESUME */
	int			 accept_err;	/* accept failed: paused */
	struct timeval		 accept_err_at;	/* when it first did */
	struct event		*accept_ev;	/* try accepting again */
	int			 signals;
	struct event		*sigterm, *sigint, *sighup;
	int			 aborted;	/* takeover failed after ready */
	int			 exiting;
	int			 hammered;	/* exit once what we gave settles */
	char			*def_control;	/* the control path we chose */
	LIST_HEAD(, slow)	 slows;		/* answers not yet due */
	struct sess_set		*sess;		/* sessions first seen here */
	int			 sess_full;	/* said once */
	unsigned long		 sess_dropped;	/* neighbour full, not said */
	time_t			 sess_said;	/* when drops were last said */
	struct state		*state;		/* served=; NULL: --no-state */
	unsigned		 state_mb;	/* --state-mb */
	int			 no_state;	/* --no-state */
};

struct slow {
	LIST_ENTRY(slow)	 entry;
	struct httpd		*d;
	struct hs_request	*req;
	struct event		*ev;
};

static void
usage(FILE *f)
{
	fprintf(f,
"usage: handoff-httpd [--control PATH] [--listen [NAME=]SPEC]... [--tag TEXT]\n"
"                     [--drain-timeout SECONDS] [--ready-timeout SECONDS]\n"
"                     [--max-draining N] [--no-migrate]\n"
"                     [--state-mb N | --no-state]\n"
"\n"
"Serves HTTP/1.1. If another handoff-httpd serves on the same control\n"
"socket, takes its listeners over; it then drains and exits 0.\n"
"\n"
"  --control PATH           control socket (default $RUNTIME_DIRECTORY/handoff-httpd.sock,\n"
"                           /run/handoff-httpd/control.sock as root, else\n"
"                           $XDG_RUNTIME_DIR or /tmp/handoff-httpd-UID)\n"
"  --listen [NAME=]SPEC     tcp://HOST:PORT, tcp://[V6]:PORT, unix:PATH or\n"
"                           udp://HOST:PORT (datagrams echoed with pid=...);\n"
"                           repeatable (default http=tcp://0.0.0.0:8080)\n"
"  --tag TEXT               version label shown in responses and status\n"
"  --drain-timeout SECONDS  hammer after this long draining (default 30)\n"
"  --ready-timeout SECONDS  how long a successor may take (default 30)\n"
"  --max-draining N         at most N older generations drain at once; a\n"
"                           takeover hammers the oldest first (default 4)\n"
"  --no-migrate             keep established connections to the end of the\n"
"                           drain instead of giving idle ones to the successor\n"
"  --state-mb N             make a new state of N MiB (default one page);\n"
"                           a successor keeps its predecessor's\n"
"  --no-state               keep no served= count and hand none over, as\n"
"                           versions before it (to compare, to test)\n"
"  --help, --version\n"
"\n"
"GET / answers pid=, tag=, gen= and served= (GET / answered by this and\n"
"every earlier generation); GET /slow?ms=N answers after N ms.\n");
}

/*
 * Accepts where the library lets us, unless accept itself is failing:
 * everywhere while serving; after HANDOFF_PAUSE on the listeners a
 * successor retired with connections still queued, which nobody else
 * will serve, until HANDOFF_DRAIN (handoff_listener_retiring() says 0
 * for all from then on).
 */
static void
update_accepting(struct httpd *d)
{
	size_t	i;

	for (i = 0; i < d->nlev; i++) {
		if (d->udp[i] != NULL) {
			/* From released on, what is queued is the
			 * successor's to read. */
			if (!d->paused)
				event_add(d->udp[i], NULL);
			else
				event_del(d->udp[i]);
		} else
			hs_listener_enable(d->lev[i], !d->accept_err &&
			    (!d->paused || handoff_listener_retiring(d->h, i)));
	}
}

static unsigned
count_conns(void *arg)
{
	struct httpd	*d = arg;

	return d->hs != NULL ? hs_conn_count(d->hs) : 0;
}

static void
accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct httpd	*d = arg;

	d->accept_err = 0;
	update_accepting(d);
}

/*
 * accept failed for another reason than a connection gone before we took
 * it: out of fds, most likely. Listening on would fail again at once, in
 * a loop; pause every HTTP listener and try again shortly, saying so once
 * until a connection is accepted again. The control socket has its own
 * spare fd, so an upgrade still gets in.
 */
static void
accept_failed(struct hs_listener *lev, int err, void *arg)
{
	static const struct timeval retry = { ACCEPT_RETRY_MS / 1000,
	    (ACCEPT_RETRY_MS % 1000) * 1000 };
	struct httpd	*d = arg;
	size_t		 i;

	if (!timerisset(&d->accept_err_at)) {
		for (i = 0; i < handoff_listener_count(d->h) &&
		    handoff_listener_fd(d->h, i) != hs_listener_fd(lev); i++)
			;
		handoff_log(d->h, "accept on %s: %s; pausing the HTTP "
		    "listeners, trying again every %d ms (%u connections "
		    "open%s)", handoff_listener_name(d->h, i) ?:
		    "?", strerror(err), ACCEPT_RETRY_MS, count_conns(d), err ==
		    EMFILE || err == ENFILE ? "; raise the fd limit, ulimit -n" :
		    "");
		gettimeofday(&d->accept_err_at, NULL);
	}
	d->accept_err = 1;
	update_accepting(d);
	evtimer_add(d->accept_ev, &retry);
}

/* A connection came in: accept works again, if it had stopped. */
static void
accept_works(struct httpd *d)
{
	struct timeval	now, took;

	if (!timerisset(&d->accept_err_at))
		return;
	gettimeofday(&now, NULL);
	timersub(&now, &d->accept_err_at, &took);
	handoff_log(d->h, "accepting again, after %lld ms of failures",
	    (long long)took.tv_sec * 1000 + took.tv_usec / 1000);
	timerclear(&d->accept_err_at);
}

/*
 * Draining, with no connection of ours and none given and unsettled: we
 * exit, at once. Not at the end of this turn of the loop: a predecessor
 * that still gives (our takeover crossed its) would have what it sent
 * meanwhile read and refused, and stop giving; unread, it goes with its
 * connection to our successor, who takes it.
 */
static void
maybe_drained(struct httpd *d)
{
	if (!d->draining || hs_conn_count(d->hs) > 0 ||
	    handoff_conns_pending(d->h) > 0 || d->exiting++)
		return;
	handoff_log(d->h, "drained: no connection left");
	event_base_loopbreak(d->base);
}

/* While draining without migration, every response says Connection:
 * close. */
static void
set_draining(struct httpd *d, int on)
{
	d->draining = on;
	if (!on)
		d->migrating = 0;
	if (d->hs != NULL)
		hs_set_close_all(d->hs, on && !d->migrating);
}

/* Migration stops (the successor takes no connection, or gave one
 * back): the rest are drained here, as without it. */
static void
stop_migrating(struct httpd *d, const char *why)
{
	if (!d->migrating)
		return;
	d->migrating = 0;
	/* A stop, or a successor that takes none: nothing to say. */
	if (d->given > 0)
		handoff_log(d->h, "connections stay here to the end of the "
		    "drain: %s", why);
	set_draining(d, d->draining);
}

/*
 * An idle connection to the successor, with the bytes it read and we did
 * not answer (pipelined requests, half of one); if it cannot go after
 * all, it is served here again.
 */
static void
give_conn(struct hs_conn *c, void *arg)
{
	struct httpd	*d = arg;
	struct evbuffer	*rest = d->rest;
	struct hs_conn	*back;
	const char	*name = hs_conn_tag(c);
	int		 fd;

	if (!d->migrating || hs_conn_pending(c) > HANDOFF_CONN_DATA_MAX)
		return;
	if (hs_detach_idle(c, &fd, rest) == -1)
		;	/* not idle after all: it goes when it is */
	else if (handoff_conn_give(d->h, fd, name != NULL ? name : "http",
	    evbuffer_pullup(rest, -1), evbuffer_get_length(rest), NULL) == 0)
		d->given++;
	else {
		stop_migrating(d, handoff_strerror(d->h));
		if ((back = hs_adopt(d->hs, fd, evbuffer_pullup(rest, -1),
		    evbuffer_get_length(rest))) == NULL) {
			handoff_log(d->h, "cannot serve a connection again: "
			    "%s; closed", strerror(errno));
			close(fd);
		} else
			hs_conn_set_tag(back, name);
	}
	evbuffer_drain(rest, evbuffer_get_length(rest));
}

/* The idle connections at the release, GIVE_BATCH a turn. */
static void
give_some(evutil_socket_t fd, short what, void *arg)
{
	struct httpd		*d = arg;
	const struct timeval	 now = { 0, 0 };

	if (d->migrating && hs_foreach_idle(d->hs, give_conn, d,
	    GIVE_BATCH) == GIVE_BATCH)
		evtimer_add(d->give_ev, &now);
	else
		maybe_drained(d);
}

/*
 * The hammer: requests in flight end now, but an idle connection still
 * moves at once and loses nothing: every one goes to the successor
 * (not GIVE_BATCH a turn), and we exit once all we gave are answered
 * for, or HAMMER_GIVE_MS from now.
 */
static void
hammer(struct httpd *d)
{
	const struct timeval	tv = { HAMMER_GIVE_MS / 1000,
				    HAMMER_GIVE_MS % 1000 * 1000 };
	size_t			n = 0;

	d->exiting = 1;
	if (d->migrating) {
		hs_foreach_idle(d->hs, give_conn, d, SIZE_MAX);
		n = handoff_conns_pending(d->h);
	}
	/* At once: a gift our predecessor sent meanwhile goes, unread, with
	 * its connection to our successor. */
	if (!d->migrating || n == 0) {
		event_base_loopbreak(d->base);
		return;
	}
	handoff_log(d->h, "hammered: %zu idle connection%s given to our "
	    "successor first", n, n == 1 ? "" : "s");
	d->hammered = 1;
	event_base_loopexit(d->base, &tv);
}

/*
 * A connection came in (accept works again, if it had stopped), became
 * idle (to the successor, while we drain and migrate), or closed (the
 * drain may be over).
 */
static void
conn_event(struct hs_conn *c, enum hs_conn_event ev, void *arg)
{
	struct httpd	*d = arg;

	if (ev == HS_CONN_ACCEPTED) {
		d->accepted++;
		accept_works(d);
	}
	else if (ev == HS_CONN_IDLE && d->migrating)
		give_conn(c, d);
	else if (ev == HS_CONN_CLOSED)
		maybe_drained(d);
}

/*
 * A connection from the library: from our predecessor, one it gave
 * (beginning with the bytes it read), passed on to our successor once
 * idle if we drain and migrate in our turn; from our successor, one it
 * did not take, served here to the end of the drain.
 */
static int
on_conn(struct handoff *h, enum handoff_way from, int fd,
    const char *listener, const void *data, size_t len, const char *state,
    void *arg)
{
	struct httpd		*d = arg;
	struct hs_conn		*c;
	const struct timeval	 now = { 0, 0 };
	size_t			 i;

	/* Hammered, we give what we hold and exit: a gift goes on to our
	 * successor as it came, bytes and state. Exiting otherwise, it
	 * would be closed with us: refused, its giver serves it again. */
	if (from == HANDOFF_PREDECESSOR && d->hammered && d->migrating)
		return handoff_conn_give(h, fd, listener, data, len, state) ==
		    0 ? 0 : -1;
	if (from == HANDOFF_PREDECESSOR && d->exiting)
		return -1;
	if (from == HANDOFF_SUCCESSOR)
		stop_migrating(d, "one came back from our successor");
	if ((c = hs_adopt(d->hs, fd, data, len)) == NULL)
		return -1;
	if (from == HANDOFF_PREDECESSOR)
		d->taken++;
	for (i = 0; i < handoff_listener_count(h); i++)
		if (strcmp(handoff_listener_name(h, i), listener) == 0)
			hs_conn_set_tag(c, handoff_listener_name(h, i));
	if (from == HANDOFF_PREDECESSOR && d->migrating)
		evtimer_add(d->give_ev, &now);
	return 0;
}

static void
respond(struct hs_request *req, int code, const char *reason,
    const char *body)
{
	hs_respond(req, code, reason, "text/plain", body, strlen(body));
}

/* The body of GET / (counted) and of GET /slow (not counted). */
static void
hello(struct httpd *d, struct hs_request *req, int counted)
{
	char	body[512], served[32] = "";

	if (d->state != NULL)
		snprintf(served, sizeof(served), " served=%llu",
		    (unsigned long long)(counted ? state_count(d->state) :
		    state_served(d->state)));
	snprintf(body, sizeof(body), "pid=%ld tag=%s gen=%u%s\n",
	    (long)getpid(), d->tag, handoff_generation(d->h), served);
	respond(req, 200, "OK", body);
}

static void
slow_free(struct slow *s)
{
	LIST_REMOVE(s, entry);
	event_free(s->ev);
	free(s);
}

static void
slow_done(evutil_socket_t fd, short what, void *arg)
{
	struct slow	*s = arg;

	hello(s->d, s->req, 0);
	slow_free(s);
}

/*
 * The value of the first NAME= parameter of query (NULL: none) into
 * buf: 0, or -1 if there is none or it does not fit.
 */
static int
query_value(const char *query, const char *name, char *buf, size_t size)
{
	size_t	nlen = strlen(name), vlen;

	while (query != NULL) {
		if (strncmp(query, name, nlen) == 0 && query[nlen] == '=') {
			query += nlen + 1;
			vlen = strcspn(query, "&");
			if (vlen >= size)
				return -1;
			memcpy(buf, query, vlen);
			buf[vlen] = '\0';
			return 0;
		}
		if ((query = strchr(query, '&')) != NULL)
			query++;
	}
	return -1;
}

static void
slow(struct httpd *d, struct hs_request *req)
{
	struct slow	*s;
	struct timeval	 tv;
	char		 ms[SLOW_ARG_MAX], *end;
	long		 n = -1;

	if (query_value(hs_request_query(req), "ms", ms, sizeof(ms)) == 0) {
		errno = 0;
		n = strtol(ms, &end, 10);
		if (errno != 0 || *end != '\0' || end == ms)
			n = -1;
	}
	if (n < 0 || n > SLOW_MAX_MS) {
		respond(req, 400, "Bad Request",
		    "ms must be a number from 0 to 600000\n");
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		respond(req, 500, "Internal Server Error", "no memory\n");
		return;
	}
	s->d = d;
	s->req = req;
	s->ev = evtimer_new(d->base, slow_done, s);
	if (s->ev == NULL) {
		free(s);
		respond(req, 500, "Internal Server Error", "no memory\n");
		return;
	}
	LIST_INSERT_HEAD(&d->slows, s, entry);
	tv.tv_sec = n / 1000;
	tv.tv_usec = (n % 1000) * 1000;
	evtimer_add(s->ev, &tv);
}

static void
route(struct hs_request *req, void *arg)
{
	struct httpd	*d = arg;
	const char	*path = hs_request_path(req);

	if (strcmp(path, "/") == 0)
		hello(d, req, 1);
	else if (strcmp(path, "/slow") == 0)
		slow(d, req);
	else
		respond(req, 404, "Not Found", "not found\n");
}

/* One datagram back on fd: "pid=P tag=T gen=G " and the bytes. */
static void
udp_answer(struct httpd *d, int fd, const struct sockaddr *sa,
    socklen_t salen, const void *in, size_t n)
{
	static char	out[UDP_MAX];
	int		head;

	head = snprintf(out, sizeof(out), "pid=%ld tag=%s gen=%u ",
	    (long)getpid(), d->tag, handoff_generation(d->h));
	if (head < 0 || (size_t)head >= sizeof(out))
		return;
	if (n > sizeof(out) - (size_t)head)
		n = sizeof(out) - (size_t)head;
	memcpy(out + head, in, n);
	sendto(fd, out, (size_t)head + n, MSG_DONTWAIT, sa, salen);
}

/* Session id now ours: answered here from now on. */
static void
sess_take(struct httpd *d, const char *id)
{
	if (sess_claim(d->sess, id) == -1 && !d->sess_full) {
		d->sess_full = 1;
		handoff_log(d->h, "%zu sessions: no room for more; new ones "
		    "are answered but not kept", sess_count(d->sess));
	}
}

/*
 * A session datagram to a neighbour: 1 if it went, or was dropped because
 * the neighbour has not read what we sent (as the network may drop one:
 * answering it here would move the session); 0 if there is no such
 * neighbour for it, and the caller keeps it.
 */
static int
sess_pass(struct httpd *d, enum handoff_way to, const char *name,
    const struct sockaddr *sa, socklen_t salen, const void *in, size_t n)
{
	time_t	now;

	if (handoff_flow_send(d->h, to, name, sa, salen, in, n) == 0)
		return 1;
	if (errno != EAGAIN)
		return 0;
	d->sess_dropped++;
	if ((now = time(NULL)) != d->sess_said) {
		handoff_log(d->h, "%lu session datagram%s dropped: %s",
		    d->sess_dropped, d->sess_dropped == 1 ? "" : "s",
		    handoff_strerror(d->h));
		d->sess_dropped = 0;
		d->sess_said = now;
	}
	return 1;
}

/*
 * A datagram read here, or one our predecessor says is not its own: a
 * session it does not know goes to the predecessor while one drains
 * (the generation that first saw it answers), else it is ours.
 */
static void
udp_serve(struct httpd *d, const char *name, int fd,
    const struct sockaddr *sa, socklen_t salen, const void *in, size_t n,
    int returned)
{
	char	id[SESS_ID_MAX + 1];

	if (sess_id(in, n, id) && !sess_owned(d->sess, id)) {
		if (!returned && sess_pass(d, HANDOFF_PREDECESSOR, name, sa,
		    salen, in, n))
			return;
		sess_take(d, id);
	}
	udp_answer(d, fd, sa, salen, in, n);
}

/*
 * A datagram on a udp:// listener gets one back: "pid=P tag=T gen=G "
 * and its own bytes. A batch at a time, so that TCP is served too.
 */
static void
udp_read(evutil_socket_t fd, short what, void *arg)
{
	struct httpd		*d = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	static char		 in[UDP_MAX];
	const char		*name;
	ssize_t			 n;
	size_t			 k;
	int			 i;

	for (k = 0; k < handoff_listener_count(d->h); k++)
		if (handoff_listener_fd(d->h, k) == fd)
			break;
	name = handoff_listener_name(d->h, k);
	for (i = 0; i < UDP_BATCH; i++) {
		len = sizeof(ss);
		n = recvfrom(fd, in, sizeof(in), MSG_DONTWAIT,
		    (struct sockaddr *)&ss, &len);
		if (n == -1)
			return;		/* EAGAIN, or an ICMP error: next */
		udp_serve(d, name, fd, (struct sockaddr *)&ss, len, in,
		    (size_t)n, 0);
	}
}

/*
 * A datagram from a neighbour. From our successor, one of a session it
 * did not know: answered if the session is ours, else handed further
 * back, else returned (nobody older has it). From our predecessor, one
 * it returned: ours if we serve, else on to our successor.
 */
static void
on_flow(struct handoff *h, enum handoff_way from, const char *name, int fd,
    const struct sockaddr *sa, socklen_t salen, const void *in, size_t n,
    void *arg)
{
	struct httpd	*d = arg;
	char		 id[SESS_ID_MAX + 1];

	if (from == HANDOFF_SUCCESSOR) {
		if (sess_id(in, n, id) && sess_owned(d->sess, id)) {
			udp_answer(d, fd, sa, salen, in, n);
			return;
		}
		if (sess_pass(d, HANDOFF_PREDECESSOR, name, sa, salen, in, n) ||
		    sess_pass(d, HANDOFF_SUCCESSOR, name, sa, salen, in, n))
			return;
		udp_answer(d, fd, sa, salen, in, n);
		return;
	}
	if (d->paused && sess_pass(d, HANDOFF_SUCCESSOR, name, sa, salen, in,
	    n))
		return;
	udp_serve(d, name, fd, sa, salen, in, n, 1);
}

static void
on_event(struct handoff *h, enum handoff_event ev, void *arg)
{
	struct httpd	*d = arg;

	switch (ev) {
	case HANDOFF_PAUSE:
		d->paused = 1;
		update_accepting(d);
		break;
	case HANDOFF_DRAIN:
		/* Idle connections go to the successor, and the others once
		 * their response is written; without migration they stay
		 * until their next response says Connection: close, or the
		 * deadline. */
		update_accepting(d);
		d->migrating = d->migrate;
		set_draining(d, 1);
		give_some(-1, 0, d);
		break;
	case HANDOFF_RESUME:
		set_draining(d, 0);
		d->paused = 0;
		update_accepting(d);
		break;
	case HANDOFF_HOLD:
		/* The successor vanished: stay, even drained, until the
		 * library knows whether we roll back. */
		set_draining(d, 0);
		break;
	case HANDOFF_CONNS_SETTLED:
		if (d->hammered)
			event_base_loopbreak(d->base);
		else
			maybe_drained(d);
		break;
	case HANDOFF_SUPERSEDED:
		break;
	case HANDOFF_PREDECESSOR_GONE:
		handoff_log(h, "predecessor pid %ld has gone: the sessions it "
		    "owned are answered here from now on",
		    (long)handoff_predecessor(h));
		break;
	case HANDOFF_HAMMER:
		hammer(d);
		break;
	case HANDOFF_ABORT:
		/* Drain what we accepted, then exit non-zero. */
		d->aborted = 1;
		break;
	}
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct httpd	*d = arg;
	unsigned	 n = count_conns(d);

	if (d->signals++ > 0) {
		handoff_log(d->h, "signal %d again: closing %u connection%s "
		    "now", (int)sig, n, n == 1 ? "" : "s");
		event_base_loopexit(d->base, NULL);
		return;
	}
	if (handoff_stop(d->h) == -1) {
		fprintf(stderr, "handoff-httpd: %s\n", handoff_strerror(d->h));
		event_base_loopexit(d->base, NULL);
	}
}

/*
 * A server detached from its terminal must not die of a hang-up, least
 * of all while it drains: SIGHUP has no other meaning here (to upgrade,
 * start the new version), so it is logged and ignored.
 */
static void
on_hangup(evutil_socket_t sig, short what, void *arg)
{
	struct httpd	*d = arg;

	handoff_log(d->h, "SIGHUP ignored (start the new version to "
	    "upgrade; SIGTERM stops)");
}

static char *
default_control(void)
{
	const char	*dir;
	char		*path = NULL;
	char		 d[PATH_MAX];
	struct stat	 st;

	if ((dir = getenv("RUNTIME_DIRECTORY")) != NULL && *dir != '\0') {
		/* systemd may pass several, separated by colons. */
		snprintf(d, sizeof(d), "%.*s", (int)strcspn(dir, ":"), dir);
		if (asprintf(&path, "%s/handoff-httpd.sock", d) == -1)
			return NULL;
		return path;
	}
	if (geteuid() == 0 && access("/run", W_OK) == 0)
		snprintf(d, sizeof(d), "/run/handoff-httpd");
	else if ((dir = getenv("XDG_RUNTIME_DIR")) != NULL && *dir == '/')
		snprintf(d, sizeof(d), "%s/handoff-httpd", dir);
	else
		snprintf(d, sizeof(d), "/tmp/handoff-httpd-%ld",
		    (long)geteuid());
	if (mkdir(d, 0700) == -1 && errno != EEXIST)
		return NULL;
	/* Somebody else may have made it first: it must be ours alone. */
	if (lstat(d, &st) == -1)
		return NULL;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077) != 0) {
		fprintf(stderr, "handoff-httpd: %s is not a directory of uid "
		    "%ld closed to others (mode 0700); remove it or use "
		    "--control PATH\n", d, (long)geteuid());
		errno = EPERM;
		return NULL;
	}
	if (asprintf(&path, "%s/control.sock", d) == -1)
		return NULL;
	return path;
}

static int
add_listen(struct handoff *h, const char *arg, unsigned *n)
{
	const char	*eq = strchr(arg, '='), *spec = arg;
	char		 name[80];

	if (eq != NULL && strstr(arg, "://") != NULL && eq > strstr(arg,
	    "://"))
		eq = NULL;	/* '=' inside the spec, not a name */
	if (eq != NULL && (strncmp(arg, "unix:", 5) != 0 || eq <
	    arg + 5)) {
		snprintf(name, sizeof(name), "%.*s", (int)(eq - arg), arg);
		spec = eq + 1;
	} else if (*n == 0)
		snprintf(name, sizeof(name), "http");
	else
		snprintf(name, sizeof(name), "http%u", *n + 1);
	(*n)++;
	return handoff_listen(h, name, spec);
}

static long long
first_started(struct handoff *h)
{
	const char	*prev = handoff_predecessor_state(h), *p;

	if (prev != NULL && (p = strstr(prev, "\"first_started\":")) != NULL)
		return strtoll(p + 16, NULL, 10);
	return (long long)time(NULL);
}

static void
raise_nofile(void)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* handoff-httpd's own long options, past any short option's letter. */
enum { OPT_STATE_MB = 256, OPT_NO_STATE };

/*
 * The command line into o and d's own options: 0 to run, or -1 with the
 * exit status in *code (0 after --help or --version, 2 after a usage
 * error said on stderr, 1 out of memory).
 */
static int
httpd_parse(struct httpd *d, struct tool_server_opts *o, int argc,
    char *argv[], int *code)
{
	static const struct option opts[] = {
		TOOL_SERVER_LONGOPTS,
		{ "no-migrate",		no_argument,		NULL, 'M' },
		{ "state-mb",		required_argument,	NULL, OPT_STATE_MB },
		{ "no-state",		no_argument,		NULL, OPT_NO_STATE },
		{ NULL, 0, NULL, 0 }
	};
	int	c;

	d->migrate = 1;
	while ((c = getopt_long(argc, argv, TOOL_SERVER_SHORTOPTS "m:", opts,
	    NULL)) != -1) {
		if (c == 'M') {
			d->migrate = 0;
			continue;
		}
		if (c == OPT_STATE_MB && tool_count(o->prog, "--state-mb",
		    optarg, STATE_MB_MAX, &d->state_mb) == -1) {
			*code = 2;
			return -1;
		}
		if (c == OPT_NO_STATE)
			d->no_state = 1;
		if (c == OPT_STATE_MB || c == OPT_NO_STATE)
			continue;
		switch (tool_server_option(o, c, optarg, code)) {
		case TOOL_OPT_TAKEN:
			break;
		case TOOL_OPT_EXIT:
			return -1;
		case TOOL_OPT_OTHER:
			usage(stderr);
			*code = 2;
			return -1;
		}
	}
	if (d->no_state && d->state_mb > 0) {
		fprintf(stderr, "handoff-httpd: --state-mb and --no-state "
		    "exclude each other\n");
		*code = 2;
		return -1;
	}
	if (optind != argc) {
		fprintf(stderr, "handoff-httpd: unexpected argument \"%s\"\n",
		    argv[optind]);
		usage(stderr);
		*code = 2;
		return -1;
	}
	return 0;
}

/*
 * epoll's changelist: event_add and event_del are applied by the
 * next dispatch, one epoll_ctl for each fd whose interest changed.
 * A takeover adds (successor) or removes (incumbent) one event a
 * listener: with it, ready and released go out first and those
 * calls follow, before any accept. It is unsafe only for fds
 * cloned by dup(), which nothing here gives libevent.
 */
static int
httpd_new_base(struct httpd *d)
{
	struct event_config	*cfg;

	if ((cfg = event_config_new()) == NULL) {
		fprintf(stderr, "handoff-httpd: out of memory\n");
		return -1;
	}
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	d->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (d->base == NULL) {
		fprintf(stderr, "handoff-httpd: cannot create event base\n");
		return -1;
	}
	return 0;
}

/*
 * The listeners, taken over from the incumbent on control or bound
 * fresh, with the options applied: 0, or -1 after saying why.
 */
static int
httpd_start(struct httpd *d, const struct tool_server_opts *o,
    const char *control)
{
	static char	*def_listen[] = { "http=tcp://0.0.0.0:8080" };
	char		**listens = o->listens, state[128], state_err[256];
	size_t		  nlisten = o->nlisten, i;
	unsigned	  n = 0;

	if ((d->h = handoff_new(d->base, control)) == NULL) {
		fprintf(stderr, "handoff-httpd: --control %s: %s\n", control,
		    tool_control_error(errno));
		return -1;
	}
	handoff_set_ident(d->h, "handoff-httpd");
	handoff_set_event_cb(d->h, on_event, d);
	handoff_set_count_cb(d->h, count_conns, d);
	handoff_set_flow_cb(d->h, on_flow, d);
	if (d->migrate)
		handoff_set_conn_cb(d->h, on_conn, d);
	handoff_set_drain_timeout(d->h, o->drain_ms);
	handoff_set_ready_timeout(d->h, o->ready_ms);
	handoff_set_max_draining(d->h, o->max_draining_set ?
	    o->max_draining : MAX_DRAINING);
	/* What is queued on a port our successor moves is ours to serve. */
	handoff_set_serve_retired(d->h, 1);
	if (handoff_set_tag(d->h, d->tag) == -1)
		goto fail;
	if (nlisten == 0) {
		listens = def_listen;
		nlisten = 1;
	}
	for (i = 0; i < nlisten; i++)
		if (add_listen(d->h, listens[i], &n) == -1)
			goto fail;
	if (!d->no_state && state_listen(d->h) == -1)
		goto fail;
	if (handoff_start(d->h) == -1)
		goto fail;
	if (!d->no_state && (d->state = state_open(d->h, d->state_mb,
	    state_err, sizeof(state_err))) == NULL) {
		fprintf(stderr, "handoff-httpd: %s\n", state_err);
		return -1;
	}
	/* The state carries when generation 1 started, across upgrades. */
	snprintf(state, sizeof(state), "{\"server\":\"handoff-httpd\","
	    "\"first_started\":%lld}", first_started(d->h));
	handoff_set_state(d->h, state);
	return 0;
fail:
	fprintf(stderr, "handoff-httpd: %s\n", handoff_strerror(d->h));
	return -1;
}

static int
is_dgram(int fd)
{
	int		type;
	socklen_t	len = sizeof(type);

	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
	    type == SOCK_DGRAM;
}

/* HTTP on every stream listener of the handoff, datagrams on the udp://
 * ones: 0, or -1 after saying why. */
static int
httpd_serve(struct httpd *d)
{
	size_t	i;

	d->accept_ev = evtimer_new(d->base, accept_retry, d);
	d->give_ev = evtimer_new(d->base, give_some, d);
	d->rest = evbuffer_new();
	d->hs = hs_new(d->base, route, d);
	d->lev = calloc(handoff_listener_count(d->h), sizeof(*d->lev));
	d->udp = calloc(handoff_listener_count(d->h), sizeof(*d->udp));
	if (d->accept_ev == NULL || d->give_ev == NULL || d->rest == NULL ||
	    d->hs == NULL || d->lev == NULL || d->udp == NULL) {
		fprintf(stderr, "handoff-httpd: out of memory\n");
		return -1;
	}
	hs_set_conn_cb(d->hs, conn_event, d);
	hs_set_accept_error_cb(d->hs, accept_failed, d);
	for (i = 0; i < handoff_listener_count(d->h); i++, d->nlev++) {
		if (is_dgram(handoff_listener_fd(d->h, i))) {
			d->udp[i] = event_new(d->base,
			    handoff_listener_fd(d->h, i), EV_READ | EV_PERSIST,
			    udp_read, d);
			if (d->udp[i] == NULL || event_add(d->udp[i],
			    NULL) == -1) {
				fprintf(stderr, "handoff-httpd: cannot watch "
				    "listener %s\n",
				    handoff_listener_name(d->h, i));
				return -1;
			}
			continue;
		}
		/* The library owns the fd; the watch is freed by hs_free. */
		d->lev[i] = hs_listen(d->hs, handoff_listener_fd(d->h, i));
		if (d->lev[i] == NULL) {
			fprintf(stderr, "handoff-httpd: cannot watch listener "
			    "%s: %s\n", handoff_listener_name(d->h, i),
			    strerror(errno));
			return -1;
		}
		/* Its connections say where they came from if they move. */
		hs_listener_set_tag(d->lev[i], handoff_listener_name(d->h, i));
	}
	return 0;
}


static int
httpd_watch_signals(struct httpd *d)
{
	d->sigterm = evsignal_new(d->base, SIGTERM, on_signal, d);
	d->sigint = evsignal_new(d->base, SIGINT, on_signal, d);
	d->sighup = evsignal_new(d->base, SIGHUP, on_hangup, d);
	if (d->sigterm == NULL || d->sigint == NULL || d->sighup == NULL ||
	    evsignal_add(d->sigterm, NULL) == -1 || evsignal_add(d->sigint,
	    NULL) == -1 || evsignal_add(d->sighup, NULL) == -1) {
		fprintf(stderr, "handoff-httpd: cannot watch signals\n");
		return -1;
	}
	return 0;
}

/*
 * Everything up to serving, each piece kept in d for httpd_free: 0, or
 * -1 after saying why.
 */
static int
httpd_setup(struct httpd *d, const struct tool_server_opts *o)
{
	const char	*control = o->control;

	d->tag = o->tag;
	if (control == NULL &&
	    (control = d->def_control = default_control()) == NULL) {
		fprintf(stderr, "handoff-httpd: cannot make a directory for "
		    "the control socket: %s; use --control PATH\n",
		    strerror(errno));
		return -1;
	}
	if ((d->sess = sess_new()) == NULL) {
		fprintf(stderr, "handoff-httpd: out of memory\n");
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Until on_hangup is watched: a takeover may take seconds. */
	signal(SIGHUP, SIG_IGN);
	raise_nofile();
	if (httpd_new_base(d) == -1 || httpd_start(d, o, control) == -1 ||
	    httpd_serve(d) == -1 || httpd_watch_signals(d) == -1)
		return -1;
	return 0;
}

/*
 * Says ready and serves until the loop ends: drained, hammered or a
 * second signal. The exit status: 0, or 1 after saying why.
 */
static int
httpd_run(struct httpd *d)
{
	unsigned	n;

	if (handoff_ready(d->h) == 0) {
		event_base_dispatch(d->base);
		if (!d->aborted) {
			n = count_conns(d);
			handoff_log(d->h, "exiting, %u connection%s left; "
			    "accepted %lu, taken over %lu", n, n == 1 ? "" :
			    "s", d->accepted, d->taken);
			return 0;
		}
	}
	fprintf(stderr, "handoff-httpd: %s\n", handoff_strerror(d->h));
	return 1;
}

/* Frees what httpd_setup made, however far it got, in reverse order. */
static void
httpd_free(struct httpd *d)
{
	struct slow	*s;
	size_t		 i;

	/* Cut short by the hammer or a second signal. */
	while ((s = LIST_FIRST(&d->slows)) != NULL)
		slow_free(s);
	/* Closes the connections, without calling back: not a drain. */
	hs_free(d->hs);
	free(d->lev);
	for (i = 0; d->udp != NULL && i < handoff_listener_count(d->h); i++)
		if (d->udp[i] != NULL)
			event_free(d->udp[i]);
	free(d->udp);
	sess_free(d->sess);
	if (d->accept_ev != NULL)
		event_free(d->accept_ev);
	if (d->give_ev != NULL)
		event_free(d->give_ev);
	if (d->rest != NULL)
		evbuffer_free(d->rest);
	if (d->sigterm != NULL)
		event_free(d->sigterm);
	if (d->sigint != NULL)
		event_free(d->sigint);
	if (d->sighup != NULL)
		event_free(d->sighup);
	state_close(d->state);
	handoff_free(d->h);
	if (d->base != NULL)
		event_base_free(d->base);
	free(d->def_control);
}

int
main(int argc, char *argv[])
{
	struct tool_server_opts	o;
	struct httpd		d;
	int			code;

	memset(&d, 0, sizeof(d));
	LIST_INIT(&d.slows);
	tool_server_init(&o, "handoff-httpd", usage);
	if (httpd_parse(&d, &o, argc, argv, &code) == 0)
		code = httpd_setup(&d, &o) == 0 ? httpd_run(&d) : 1;
	httpd_free(&d);
	tool_server_clear(&o);
	return code;
}
