/*
 * incumbent: the server side of the control socket. Checks the peer's
 * uid, answers status and stop, and offers the listeners to a successor:
 * offer, batches of fds, then waits for ready, stops accepting, answers
 * released and drains. If the successor goes away first, nothing changes;
 * if it goes away while we drain, we accept again (rollback).
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handoff-int.h"
#include "message.h"
#include "systemd.h"
#include "wire.h"

/* Keep each batch well under the message limit. */
#define BATCH_BYTES	(WIRE_MAX_MSG - 4096)
/* How often a draining incumbent tells its successor how it goes. */
#define PROGRESS_MS	1000
/* How often, and how long at most, the queues of retiring listeners are
 * looked at before they are shut. */
#define RETIRE_POLL_MS	10
#define RETIRE_MS	1000
/* Control connections at once; more are closed as they come. */
#define MAX_PEERS	256
/* How long a refused peer has to read its error before we close. */
#define CLOSE_MS	1000
#define FORBIDDEN_TEXT	"uid not allowed on this control socket"
/* Messages read from a successor gone while we sent: its socket's worth. */
#define LAST_WORDS_MAX	1024

static void	peer_read(evutil_socket_t, short, void *);
static void	peer_write(evutil_socket_t, short, void *);
static void	peer_timeout(evutil_socket_t, short, void *);
static void	peer_free(struct peer *, int);
static int	peer_flush(struct peer *);
static char	*encode_batch(struct handoff *, size_t, size_t, size_t,
		    size_t *);
static struct hlistener *entry_at(struct handoff *, size_t);
static void	peer_refuse(struct peer *, const char *, const char *);
static void	peer_last_words(struct peer *);
static int	names_extension(const json_t *);
static void	dispatch(struct peer *, json_t *);

/* What a peer sent; one message is handled at a time. */
static char	inbuf[WIRE_MAX_MSG];

static void
peer_arm(struct peer *p, unsigned ms)
{
	struct timeval	tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(p->timer, &tv);
}

/* Queues a message; fds are borrowed from the listeners. Takes msg. */
static int
peer_queue(struct peer *p, json_t *msg, const int *fds, size_t nfds,
    int head)
{
	struct outmsg	*m;

	if (msg == NULL)
		return -1;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		goto bad;
	m->buf = msg_encode(msg, &m->len);
	if (m->buf == NULL)
		goto bad;
	if (nfds > 0) {
		if ((m->fds = calloc(nfds, sizeof(int))) == NULL)
			goto bad;
		memcpy(m->fds, fds, nfds * sizeof(int));
		m->nfds = nfds;
	}
	json_decref(msg);
	if (head)
		STAILQ_INSERT_HEAD(&p->queue, m, entry);
	else
		STAILQ_INSERT_TAIL(&p->queue, m, entry);
	return 0;
bad:
	if (m != NULL) {
		free(m->buf);
		free(m);
	}
	json_decref(msg);
	return -1;
}

static void
peer_send(struct peer *p, json_t *msg)
{
	if (peer_queue(p, msg, NULL, 0, 0) == -1) {
		hlog(p->h, "control: cannot build a reply for pid %ld",
		    (long)p->pid);
		peer_free(p, 1);
		return;
	}
	peer_flush(p);
}

static void
peer_discard(struct peer *p)
{
	struct outmsg	*m;

	while ((m = STAILQ_FIRST(&p->queue)) != NULL) {
		STAILQ_REMOVE_HEAD(&p->queue, entry);
		free(m->buf);
		free(m->fds);
		free(m);
	}
}

/*
 * Replies with an error and closes once it is written, or after CLOSE_MS
 * if the peer does not read: whatever was still queued (batches of fds)
 * is dropped first, and nothing more is read.
 */
static void
peer_refuse(struct peer *p, const char *code, const char *text)
{
	hlog(p->h, "control: pid %ld uid %ld: %s: %s", (long)p->pid,
	    (long)p->uid, code, text);
	peer_discard(p);
	p->state = PEER_CLOSING;
	event_del(p->rev);
	peer_arm(p, CLOSE_MS);
	peer_send(p, msg_error(code, "%s", text));
}

/*
 * Writes what it can, the queue first, then the batches of the offer;
 * returns -1 if the peer was freed.
 */
static int
peer_flush(struct peer *p)
{
	struct handoff	*h = p->h;
	struct outmsg	*m;
	struct hbatch	*b;
	int		 bfds[WIRE_MAX_FDS];
	size_t		 i;
	int		 r;
	char		 text[160];

	for (;;) {
		if ((m = STAILQ_FIRST(&p->queue)) != NULL)
			r = wire_send(p->fd, m->buf, m->len, m->fds, m->nfds);
		else if (p->state == PEER_OFFERED &&
		    p->next_batch < h->nbatches) {
			b = &h->batches[p->next_batch];
			if (b->buf == NULL && (b->buf = encode_batch(h,
			    p->next_batch, b->first, b->end, &b->len)) == NULL) {
				peer_refuse(p, MSG_E_INTERNAL, errno == EINVAL ?
				    "cannot encode a batch of the offer: a "
				    "listener's address or spec is not UTF-8" :
				    errno == EMSGSIZE ? "cannot encode a batch "
				    "of the offer: over 64 KiB (a bug)" :
				    "cannot encode a batch of the offer: out "
				    "of memory");
				return -1;
			}
			for (i = b->first; i < b->end; i++)
				bfds[i - b->first] = entry_at(h, i)->fd;
			r = wire_send(p->fd, b->buf, b->len, bfds,
			    b->end - b->first);
		} else
			break;
		if (r == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				event_add(p->wev, NULL);
				return 0;
			}
			/* A successor still there is told why the offer stops
			 * (ETOOMANYREFS: our fds in flight); a bare message
			 * may go where the fds did not. */
			if (p->state == PEER_OFFERED && errno != EPIPE &&
			    errno != ECONNRESET) {
				snprintf(text, sizeof(text), "cannot send the "
				    "offer: %s%s", strerror(errno), errno ==
				    ETOOMANYREFS ? " (too many fds in flight: "
				    "raise the incumbent's RLIMIT_NOFILE)" : "");
				peer_refuse(p, MSG_E_INTERNAL, text);
				return -1;
			}
			if (p->state != PEER_CLOSING)
				hlog(h, "control: sending to pid %ld "
				    "failed: %s%s", (long)p->pid,
				    strerror(errno), errno == ETOOMANYREFS ?
				    " (raise RLIMIT_NOFILE)" : "");
			if (p->state == PEER_RELEASED)
				peer_last_words(p);
			peer_free(p, 1);
			return -1;
		}
		if (m == NULL) {
			p->next_batch++;
			continue;
		}
		STAILQ_REMOVE_HEAD(&p->queue, entry);
		free(m->buf);
		free(m->fds);
		free(m);
	}
	if (p->state == PEER_CLOSING) {
		peer_free(p, 1);
		return -1;
	}
	return 0;
}

static void
peer_write(evutil_socket_t fd, short what, void *arg)
{
	peer_flush(arg);
}

static void
control_retry(evutil_socket_t fd, short what, void *arg)
{
	struct handoff	*h = arg;

	/* Not while draining: our successor accepts there now. */
	if (h->hstate == HS_SERVING || h->hstate == HS_OFFERING ||
	    h->hstate == HS_STOPPING)
		control_listen(h);
}

/*
 * Accepts one control connection. With the fd table full, the spare
 * fd's slot takes it in (*spared says so), so that a successor, the way
 * out for a server short of fds, is never left in the backlog (*spared
 * is then EMFILE or ENFILE). -1 with errno when nothing is queued, or
 * when there is no room even so.
 */
static int
accept_control(struct handoff *h, int lfd, int *spared)
{
	int	fd;

	*spared = 0;
	control_spare(h);	/* a slot may have come free since */
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1 && (errno == EMFILE || errno == ENFILE) &&
	    h->spare_fd >= 0) {
		*spared = errno;
		close(h->spare_fd);
		h->spare_fd = -1;
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	}
	return fd;
}

/* A peer for connection fd, or NULL (fd closed). */
static struct peer *
peer_new(struct handoff *h, int fd, const struct ucred *cred)
{
	struct peer	*p;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		close(fd);
		return NULL;
	}
	p->h = h;
	p->fd = fd;
	p->uid = cred->uid;
	p->pid = cred->pid;
	STAILQ_INIT(&p->queue);
	p->rev = event_new(h->base, fd, EV_READ | EV_PERSIST, peer_read, p);
	p->wev = event_new(h->base, fd, EV_WRITE, peer_write, p);
	p->timer = evtimer_new(h->base, peer_timeout, p);
	LIST_INSERT_HEAD(&h->peers, p, entry);
	h->npeers++;
	if (p->rev == NULL || p->wev == NULL || p->timer == NULL) {
		peer_free(p, 0);
		return NULL;
	}
	return p;
}

/* Out of fds with the spare in use: retry later, not in a loop. */
static void
accept_later(struct handoff *h)
{
	static const struct timeval retry = { 1, 0 };

	if (!h->fds_short)
		hlog(h, "control: accept: %s, and the spare fd is in use; "
		    "pausing the control socket, trying again every 1 s "
		    "(raise RLIMIT_NOFILE)", strerror(errno));
	h->fds_short = 1;
	control_pause(h);
	if (h->retry_ev == NULL)
		h->retry_ev = evtimer_new(h->base, control_retry, h);
	if (h->retry_ev != NULL)
		evtimer_add(h->retry_ev, &retry);
}

void
incumbent_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct handoff	*h = arg;
	struct peer	*p;
	struct ucred	 cred;
	socklen_t	 len;
	int		 fd, spared;

	while ((fd = accept_control(h, lfd, &spared)) >= 0) {
		len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred,
		    &len) == -1) {
			hlog(h, "control: SO_PEERCRED: %s", strerror(errno));
			close(fd);
			continue;
		}
		if (spared)
			hlog(h, "control: accept: %s: took pid %ld (uid %ld) "
			    "in with the spare fd (raise RLIMIT_NOFILE)",
			    strerror(spared), (long)cred.pid, (long)cred.uid);
		else
			h->fds_short = 0;
		if (h->npeers >= MAX_PEERS) {
			if (!h->peers_full)
				hlog(h, "control: %d connections open; closing "
				    "new ones until some finish (the first from "
				    "pid %ld uid %ld)", MAX_PEERS,
				    (long)cred.pid, (long)cred.uid);
			h->peers_full = 1;
			close(fd);
			continue;
		}
		h->peers_full = 0;
		if ((p = peer_new(h, fd, &cred)) == NULL)
			continue;
		/* Refused at its first message, so that it reads the answer
		 * instead of a reset. */
		if (!huid_allowed(h, cred.uid))
			p->state = PEER_FORBIDDEN;
		event_add(p->rev, NULL);
		peer_arm(p, h->io_timeout);
		/* accept says EMFILE even with nothing queued: the next call
		 * comes when something is. */
		if (spared)
			return;
	}
	if (errno == EMFILE || errno == ENFILE)
		accept_later(h);
}

/*
 * The service manager follows the successor when it runs in our unit
 * (started by ExecReload, say). One in another unit (a template
 * instance) is that unit's main pid already, and ours really stops.
 */
static void
pass_main_pid(struct handoff *h, pid_t pid)
{
	if (!h->main_pid)
		return;
	if (systemd_same_unit(pid)) {
		hnotify(h, "MAINPID=%ld\nSTATUS=handed over to pid %ld, "
		    "draining", (long)pid, (long)pid);
		h->gave_main = pid;
		h->main_pid = 0;
	} else {
		hnotify(h, "STOPPING=1\nSTATUS=handed over to pid %ld of "
		    "another unit, draining", (long)pid);
		h->told_stopping = 1;
	}
}

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
static void
refuse_retired(struct handoff *h, json_t *ready)
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
void
incumbent_retire_end(struct handoff *h)
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
static void
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
	incumbent_retire_end(h);
	hevent(h, HANDOFF_DRAIN);
}

/* The drain begins once what is queued on retiring listeners is taken. */
static void
retire_watch(struct handoff *h)
{
	struct timeval	now, most = { RETIRE_MS / 1000,
	    (RETIRE_MS % 1000) * 1000 };

	if (h->retire_ev == NULL &&
	    (h->retire_ev = evtimer_new(h->base, retire_tick, h)) == NULL) {
		incumbent_retire_end(h);
		hevent(h, HANDOFF_DRAIN);
		return;
	}
	gettimeofday(&now, NULL);
	timeradd(&now, &most, &h->retire_end);
	retire_arm(h);
}

/* Rollback: listen again on what refuse_retired shut. */
static void
listen_again(struct handoff *h)
{
	struct hlistener	*l;
	struct listener_id	 id;
	size_t			 i;
	int			 r;

	for (i = 0; i < h->nlisteners; i++) {
		l = &h->listeners[i];
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
		incumbent_free_offer(h);
	}
}

/*
 * "connections", and "counted": false when the application does not
 * count them (handoff-exec): the 0 then means nothing, and a reader
 * must not say "0 connections".
 */
static int
set_connections(struct handoff *h, json_t *m)
{
	if (json_object_set_new(m, "connections",
	    json_integer(hcount(h))) == -1)
		return -1;
	if (h->count_cb == NULL && json_object_set_new(m, "counted",
	    json_false()) == -1)
		return -1;
	return 0;
}

static json_t *
build_released(struct handoff *h, struct peer *p)
{
	json_t	*rel;

	rel = msg_new("released");
	if (rel == NULL || json_object_set_new(rel, "pid",
	    json_integer(getpid())) == -1 || set_connections(h, rel) == -1 ||
	    json_object_set_new(rel, "deadline_ms",
	    json_integer(h->drain_timeout)) == -1 ||
	    json_object_set_new(rel, "main", json_boolean(h->gave_main ==
	    p->pid)) == -1) {
		json_decref(rel);
		return NULL;
	}
	return rel;
}

/* Every PROGRESS_MS while draining, so status can show who drains. */
static void
send_progress(evutil_socket_t fd, short what, void *arg)
{
	struct handoff	*h = arg;
	struct peer	*p = h->successor;
	json_t		*m;

	if (p == NULL || p->state != PEER_RELEASED) {
		evtimer_del(h->progress_ev);
		return;
	}
	m = msg_new("progress");
	if (m == NULL || json_object_set_new(m, "pid",
	    json_integer(getpid())) == -1 || json_object_set_new(m,
	    "generation", json_integer(h->generation)) == -1 ||
	    json_object_set_new(m, "tag", json_string(h->tag)) == -1 ||
	    set_connections(h, m) == -1 ||
	    json_object_set_new(m, "remaining_ms",
	    json_integer(handoff_drain_remaining(h))) == -1 ||
	    json_object_set_new(m, "draining", chain_drainers(h)) == -1) {
		json_decref(m);
		return;
	}
	/* Progress is best effort: a full socket drops it, not the peer. */
	if (STAILQ_EMPTY(&p->queue) && peer_queue(p, m, NULL, 0, 0) == 0)
		peer_flush(p);
	else
		json_decref(m);
}

static void
start_progress(struct handoff *h)
{
	static const struct timeval every = { PROGRESS_MS / 1000,
	    (PROGRESS_MS % 1000) * 1000 };

	if (h->progress_ev == NULL)
		h->progress_ev = event_new(h->base, -1, EV_PERSIST,
		    send_progress, h);
	if (h->progress_ev != NULL)
		evtimer_add(h->progress_ev, &every);
	send_progress(-1, EV_TIMEOUT, h);	/* the first at once */
}

/*
 * State changes come before the application hears of them, so that a
 * handoff_stop() from its callback finds a takeover already done.
 */
static void
on_ready(struct peer *p, json_t *msg)
{
	struct handoff	*h = p->h;
	json_t		*v;
	unsigned	 max;
	char		 changes[768];

	if (!STAILQ_EMPTY(&p->queue) || p->next_batch < h->nbatches) {
		peer_refuse(p, MSG_E_UNEXPECTED, "ready before every batch "
		    "was sent");
		return;
	}
	evtimer_del(p->timer);
	hchanges(msg, changes, sizeof(changes));
	hlog(h, "successor pid %ld ready: %s", (long)p->pid, changes);
	/* Its cap, if it says one: the newest generation's settings rule. */
	v = json_object_get(msg, "max_draining");
	max = json_is_integer(v) ? (unsigned)json_integer_value(v) :
	    h->max_draining;
	/* Before released: once our successor serves, we may exit at any
	 * moment, and our predecessor must not take that for a crash. */
	chain_tell(h, p->pid, max > 0 ? max - 1 : 0, max);
	/* It takes our links to older drainers when we exit. */
	h->succ_chain = names_extension(msg);
	p->state = PEER_RELEASED;
	h->hstate = HS_DRAINING;
	/* Stop accepting first, so released is true when it arrives; what
	 * is retiring is known before the application hears it. */
	control_pause(h);
	refuse_retired(h, msg);
	hevent(h, HANDOFF_PAUSE);
	pass_main_pid(h, p->pid);
	hlog(h, "released to pid %ld", (long)p->pid);
	if (peer_queue(p, build_released(h, p), NULL, 0, 0) == -1) {
		hlog(h, "cannot build released for pid %ld", (long)p->pid);
		peer_free(p, 1);
		return;
	}
	if (peer_flush(p) == -1)
		return;		/* gone: rolled back */
	/* The clock first, so that the first progress says the time left;
	 * the drain itself once retiring listeners are shut. */
	hdrain_clock(h, h->drain_timeout);
	if (h->nretiring > 0)
		retire_watch(h);
	else
		hevent(h, HANDOFF_DRAIN);
	start_progress(h);
	/* A failed send there means the successor is gone: rolled back. */
	if (h->hstate != HS_DRAINING)
		return;
	if (max == 0 && !chain_checking(h)) {
		hlog(h, "hammered: no older generation may drain "
		    "(--max-draining 0)");
		hevent(h, HANDOFF_HAMMER);
	}
}

static struct hlistener *
entry_at(struct handoff *h, size_t i)
{
	return i == 0 ? &h->control : &h->listeners[i - 1];
}

/*
 * Bytes entry l adds to the columns of an "fds" message once encoded:
 * seven values and their commas, strings quoted, "false" or "null" at
 * most for the others.
 */
static size_t
row_len(const struct hlistener *l)
{
	return 7 + 2 * 5 + 5 + msg_escaped_len(l->name) +
	    strlen(listener_kind_name(listener_kind_of(&l->id))) +
	    strlen(listener_family_name(l->id.family)) +
	    strlen(listener_socktype_name(l->id.socktype)) +
	    msg_escaped_len(l->id.address) +
	    (l->spec != NULL ? 2 + msg_escaped_len(l->spec) : 4);
}

/*
 * Where the batch that starts at entry `first` ends (exclusive): at most
 * 252 fds and BATCH_BYTES of JSON (the message around the columns is
 * under 160 bytes).
 */
static size_t
batch_end(struct handoff *h, size_t first)
{
	size_t	i, bytes = 160;

	for (i = first; i <= h->nlisteners && i - first < WIRE_MAX_FDS; i++) {
		bytes += row_len(entry_at(h, i));
		if (bytes > BATCH_BYTES && i > first)
			break;
	}
	return i;
}

/* The "fds" message of entries [first, end), its listeners in columns. */
static char *
encode_batch(struct handoff *h, size_t batch, size_t first, size_t end,
    size_t *len)
{
	struct hlistener	 *l;
	const char		**cells, **c;
	char			 *buf;
	size_t			  i;

	if ((cells = calloc((end - first) * MSG_NCOLUMNS,
	    sizeof(*cells))) == NULL)
		return NULL;
	for (i = first; i < end; i++) {
		l = entry_at(h, i);
		c = &cells[(i - first) * MSG_NCOLUMNS];
		c[MSG_COL_NAME] = l->name;
		c[MSG_COL_KIND] = listener_kind_name(listener_kind_of(&l->id));
		c[MSG_COL_FAMILY] = listener_family_name(l->id.family);
		c[MSG_COL_SOCKTYPE] = listener_socktype_name(l->id.socktype);
		c[MSG_COL_ADDRESS] = l->id.address;
		c[MSG_COL_LISTENING] = l->id.listening ? "true" : "false";
		c[MSG_COL_SPEC] = l->spec;
	}
	buf = msg_encode_fds(batch, cells, end - first, len);
	free(cells);
	return buf;
}

/*
 * Plans the offer's batches once: the listeners and what the kernel says
 * of them do not change while we serve. Each is encoded when it is first
 * sent (the successor decodes one while we encode the next) and kept for
 * any later successor.
 */
static int
plan_offer(struct handoff *h)
{
	struct hbatch	*b;
	size_t		 first = 0, cap = 0;

	if (h->batches != NULL)
		return 0;
	h->nbatches = 0;
	while (first <= h->nlisteners) {
		if (h->nbatches == cap) {
			cap = cap ? cap * 2 : 8;
			if ((b = reallocarray(h->batches, cap,
			    sizeof(*b))) == NULL) {
				incumbent_free_offer(h);
				return -1;
			}
			h->batches = b;
		}
		b = &h->batches[h->nbatches++];
		memset(b, 0, sizeof(*b));
		b->first = first;
		first = b->end = batch_end(h, first);
	}
	return 0;
}

void
incumbent_free_offer(struct handoff *h)
{
	size_t	i;

	for (i = 0; i < h->nbatches; i++)
		free(h->batches[i].buf);
	free(h->batches);
	h->batches = NULL;
	h->nbatches = 0;
}

static unsigned long long
monotonic_usec(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL;
}

static json_t *
build_offer(struct handoff *h, size_t count, int nb)
{
	json_t	*offer;

	offer = msg_new("offer");
	if (offer == NULL ||
	    json_object_set_new(offer, "pid", json_integer(getpid())) == -1 ||
	    json_object_set_new(offer, "generation",
	    json_integer(h->generation)) == -1 ||
	    json_object_set_new(offer, "tag", json_string(h->tag)) == -1 ||
	    json_object_set_new(offer, "count",
	    json_integer((json_int_t)count)) == -1 ||
	    json_object_set_new(offer, "batches", json_integer(nb)) == -1 ||
	    json_object_set(offer, "state", h->state != NULL ? h->state :
	    json_null()) == -1 || json_object_set_new(offer, "extensions",
	    json_pack("[s]", CHAIN_EXTENSION)) == -1) {
		json_decref(offer);
		return NULL;
	}
	return offer;
}

/* Does a hello or ready name the chain extension? */
static int
names_extension(const json_t *msg)
{
	json_t	*v;
	size_t	 i;

	json_array_foreach(json_object_get(msg, "extensions"), i, v)
		if (json_is_string(v) && strcmp(json_string_value(v),
		    CHAIN_EXTENSION) == 0)
			return 1;
	return 0;
}

static void
on_hello(struct peer *p, json_t *msg)
{
	struct handoff	*h = p->h;
	json_int_t	 max_fds;
	size_t		 count = h->nlisteners + 1;
	int		 nb;
	char		 text[256];

	if (h->hstate != HS_SERVING) {
		snprintf(text, sizeof(text), h->successor != NULL ?
		    "pid %ld is already taking over; one takeover at a time" :
		    "this server is stopping or draining (pid %ld)",
		    (long)(h->successor ? h->successor->pid : getpid()));
		peer_refuse(p, MSG_E_BUSY, text);
		return;
	}
	max_fds = json_integer_value(json_object_get(msg, "max_fds"));
	if ((json_int_t)count > max_fds) {
		snprintf(text, sizeof(text), "%zu listeners to pass but the "
		    "successor can take %lld more fds; raise its "
		    "RLIMIT_NOFILE", count, (long long)max_fds);
		peer_refuse(p, MSG_E_TOOMANYFDS, text);
		return;
	}
	if (plan_offer(h) == -1) {
		peer_refuse(p, MSG_E_INTERNAL, "cannot plan the offer: out of "
		    "memory");
		return;
	}
	nb = (int)h->nbatches;
	if (peer_queue(p, build_offer(h, count, nb), NULL, 0, 0) == -1) {
		peer_refuse(p, MSG_E_INTERNAL, "cannot build the offer");
		return;
	}
	/* Before any of it is sent; successor_gone says when it ends. */
	chain_tell_takeover(h, p->pid);
	/* Should we exit before it is ready, it takes our links. */
	h->succ_chain = names_extension(msg);
	p->next_batch = 0;
	p->state = PEER_OFFERED;
	h->successor = p;
	h->hstate = HS_OFFERING;
	hlog(h, "successor pid %ld (uid %ld, tag \"%s\") connected: offering "
	    "%zu listeners in %d batch%s", (long)p->pid, (long)p->uid,
	    json_string_value(json_object_get(msg, "tag")) ?: "", count, nb,
	    nb == 1 ? "" : "es");
	if (h->main_pid)
		hnotify(h, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=handing "
		    "over to pid %ld", monotonic_usec(), (long)p->pid);
	peer_arm(p, h->ready_timeout);
	peer_flush(p);
}

static json_t *
build_report(struct handoff *h)
{
	static const char *const names[] = {
		[HS_NEW] = "starting", [HS_STARTED] = "starting",
		[HS_WAITING] = "starting", [HS_SERVING] = "serving",
		[HS_OFFERING] = "offering", [HS_DRAINING] = "draining",
		[HS_STOPPING] = "stopping", [HS_FAILED] = "starting",
	};
	const struct hlistener	*l;
	json_t			*r, *list;
	size_t			 i, bytes = 0;

	r = msg_new("report");
	if (r == NULL || json_object_set_new(r, "listeners",
	    list = json_array()) == -1 || list == NULL)
		goto bad;
	/* As many entries as fit; "count" says how many there are. */
	for (i = 0; i <= h->nlisteners; i++) {
		l = i == 0 ? &h->control : &h->listeners[i - 1];
		bytes += control_entry_len(l) + 1;
		if (bytes > BATCH_BYTES - 1024)
			break;
		if (json_array_append_new(list, control_entry(l)) == -1)
			goto bad;
	}
	if (json_object_set_new(r, "count",
	    json_integer((json_int_t)h->nlisteners + 1)) == -1 ||
	    json_object_set_new(r, "pid", json_integer(getpid())) == -1 ||
	    json_object_set_new(r, "generation",
	    json_integer(h->generation)) == -1 ||
	    json_object_set_new(r, "tag", json_string(h->tag)) == -1 ||
	    json_object_set_new(r, "state",
	    json_string(names[h->hstate])) == -1 ||
	    set_connections(h, r) == -1 ||
	    json_object_set_new(r, "predecessor",
	    json_integer(h->predecessor)) == -1 ||
	    json_object_set_new(r, "successor", h->successor != NULL ?
	    json_integer(h->successor->pid) : json_null()) == -1 ||
	    json_object_set_new(r, "draining", chain_drainers(h)) == -1)
		goto bad;
	return r;
bad:
	json_decref(r);		/* and list, which it holds */
	return NULL;
}

static void
on_stop(struct peer *p)
{
	struct handoff	*h = p->h;
	json_t		*m;

	if (h->hstate != HS_SERVING) {
		peer_refuse(p, MSG_E_BUSY, "a takeover or stop is under way");
		return;
	}
	hlog(h, "stop requested by pid %ld (uid %ld)", (long)p->pid,
	    (long)p->uid);
	evtimer_del(p->timer);
	/* The requester learns we are gone when this connection closes. */
	p->state = PEER_HOLD;
	m = msg_new("stopping");
	if (m != NULL && (json_object_set_new(m, "pid",
	    json_integer(getpid())) == -1 || set_connections(h, m) == -1 ||
	    json_object_set_new(m, "deadline_ms",
	    json_integer(h->drain_timeout)) == -1)) {
		json_decref(m);
		m = NULL;
	}
	if (peer_queue(p, m, NULL, 0, 0) == 0 && peer_flush(p) == -1)
		return;
	handoff_stop(h);
}

static void
dispatch(struct peer *p, json_t *msg)
{
	const char	*type = msg_type(msg);
	char		 text[256];

	switch (p->state) {
	case PEER_FORBIDDEN:
		peer_refuse(p, MSG_E_FORBIDDEN, FORBIDDEN_TEXT);
		return;
	case PEER_NEW:
		evtimer_del(p->timer);
		if (strcmp(type, "hello") == 0)
			on_hello(p, msg);
		else if (strcmp(type, "status") == 0) {
			p->state = PEER_CLOSING;
			peer_send(p, build_report(p->h));
		} else if (strcmp(type, "stop") == 0)
			on_stop(p);
		else {
			snprintf(text, sizeof(text), "\"%s\" cannot open a "
			    "conversation; send hello, status or stop", type);
			peer_refuse(p, MSG_E_UNEXPECTED, text);
		}
		return;
	case PEER_OFFERED:
		if (strcmp(type, "ready") == 0)
			on_ready(p, msg);
		else if (strcmp(type, "error") == 0) {
			hlog(p->h, "successor pid %ld gave up: %s: %s",
			    (long)p->pid, json_string_value(
			    json_object_get(msg, "code")), json_string_value(
			    json_object_get(msg, "message")));
			peer_free(p, 1);
		} else {
			snprintf(text, sizeof(text), "expected ready, got "
			    "\"%s\"", type);
			peer_refuse(p, MSG_E_UNEXPECTED, text);
		}
		return;
	case PEER_RELEASED:
		if (strcmp(type, "hammer") == 0) {
			hlog(p->h, "successor pid %ld asked for the hammer",
			    (long)p->pid);
			hevent(p->h, HANDOFF_HAMMER);
		} else if (strcmp(type, "superseded") == 0) {
			if (chain_on_superseded(p->h, p->pid, msg) == 1)
				hevent(p->h, HANDOFF_HAMMER);
		} else if (strcmp(type, "takeover") == 0)
			chain_on_takeover(p->h, p->pid, msg);
		else
			hlog(p->h, "successor pid %ld sent \"%s\" while we "
			    "drain: ignored", (long)p->pid, type);
		return;
	default:
		hlog(p->h, "control: pid %ld sent \"%s\" after the "
		    "conversation ended: ignored", (long)p->pid, type);
		return;
	}
}

/*
 * Our successor, once released, serves: nothing it sends may make us
 * roll back but its going away, so bad input from it is only logged.
 */
static void
peer_bad_input(struct peer *p, const char *code, const char *text)
{
	if (p->state == PEER_RELEASED)
		hlog(p->h, "successor pid %ld: %s: %s; ignored", (long)p->pid,
		    code, text);
	else if (p->state == PEER_FORBIDDEN)
		peer_refuse(p, MSG_E_FORBIDDEN, FORBIDDEN_TEXT);
	else
		peer_refuse(p, code, text);
}

/*
 * A send to our successor failed: it is gone. What it sent before it
 * went may still be queued, superseded among it: read that first, so
 * that its going is judged by its last word, as when we read its end.
 */
static void
peer_last_words(struct peer *p)
{
	int	 fds[WIRE_MAX_FDS];
	size_t	 nfds, i;
	ssize_t	 n;
	json_t	*msg;
	char	 err[512];

	for (i = 0; i < LAST_WORDS_MAX; i++) {
		n = wire_recv(p->fd, inbuf, sizeof(inbuf), fds, WIRE_MAX_FDS,
		    &nfds);
		if (n <= 0)
			return;		/* wire_recv closed any fds */
		wire_close_fds(fds, nfds);
		if ((msg = msg_parse(inbuf, (size_t)n, err, sizeof(err))) ==
		    NULL)
			continue;
		dispatch(p, msg);
		json_decref(msg);
	}
}

static void
peer_read(evutil_socket_t fd, short what, void *arg)
{
	struct peer	*p = arg;
	char		*buf = inbuf;
	int		 fds[WIRE_MAX_FDS];
	const char	*code;
	size_t		 nfds;
	ssize_t		 n;
	json_t		*msg;
	char		 err[512];

	n = wire_recv(p->fd, buf, sizeof(inbuf), fds, WIRE_MAX_FDS, &nfds);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n == 0 || (n == -1 && errno == ECONNRESET)) {
		peer_free(p, 1);	/* gone: a close is not an error */
		return;
	}
	if (n == -1) {
		/* wire_recv has closed whatever fds came with it. */
		snprintf(err, sizeof(err), "receive failed: %s",
		    errno == EMSGSIZE ? "message over 65536 bytes" :
		    errno == ETOOMANYREFS ? "more than 252 fds attached" :
		    errno == EBADMSG ? "empty message carrying fds" :
		    strerror(errno));
		peer_bad_input(p, MSG_E_MALFORMED, err);
		return;
	}
	if (nfds > 0) {
		wire_close_fds(fds, nfds);
		snprintf(err, sizeof(err), "%zu unsolicited fd%s closed", nfds,
		    nfds == 1 ? "" : "s");
		peer_bad_input(p, MSG_E_MALFORMED, err);
		return;
	}
	msg = msg_parse_code(buf, (size_t)n, &code, err, sizeof(err));
	if (msg == NULL) {
		peer_bad_input(p, code, err);
		return;
	}
	dispatch(p, msg);
	json_decref(msg);
}

static void
peer_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct peer	*p = arg;
	char		 text[128];

	if (p->state == PEER_CLOSING) {
		peer_free(p, 1);	/* it does not read: no more waiting */
		return;
	}
	if (p->state == PEER_FORBIDDEN) {
		/* It said nothing; it may still read why it is refused. */
		peer_refuse(p, MSG_E_FORBIDDEN, FORBIDDEN_TEXT);
		return;
	}
	if (p->state == PEER_OFFERED)
		snprintf(text, sizeof(text), "no ready within %u ms; still "
		    "serving", p->h->ready_timeout);
	else
		snprintf(text, sizeof(text), "nothing received within %u ms",
		    p->h->io_timeout);
	peer_refuse(p, MSG_E_TIMEOUT, text);
}

/*
 * The end of a hold (chain.c): drain on if a newer generation serves,
 * else roll back, as if the successor had never been.
 */
static void
rollback(struct handoff *h, int newer)
{
	pid_t	pid = h->check_gone;

	if (newer) {
		hdrain_begin(h, h->hold_left);
		return;
	}
	hdrain_cancel(h);
	h->hstate = HS_SERVING;
	retire_cancel(h);
	listen_again(h);
	control_listen(h);
	hlog(h, "rolled back: successor pid %ld vanished while we drained; "
	    "accepting again", (long)pid);
	if (h->gave_main == pid || h->told_stopping) {
		hnotify(h, "MAINPID=%ld\nREADY=1\nSTATUS=rolled back: pid %ld "
		    "vanished", (long)getpid(), (long)pid);
		h->main_pid = 1;
		h->gave_main = 0;
		h->told_stopping = 0;
	}
	hevent(h, HANDOFF_RESUME);
}

/* Bookkeeping when our successor goes away; a hold if it vanished. */
static void
successor_gone(struct handoff *h, pid_t pid)
{
	if (h->hstate == HS_OFFERING) {
		h->hstate = HS_SERVING;
		chain_tell_takeover(h, 0);
		hlog(h, "successor pid %ld went away before ready: still "
		    "serving", (long)pid);
		if (h->main_pid)
			hnotify(h, "READY=1\nSTATUS=serving; takeover by pid "
			    "%ld failed", (long)pid);
		return;
	}
	if (h->hstate != HS_DRAINING)
		return;
	if (h->progress_ev != NULL)
		evtimer_del(h->progress_ev);
	if (h->superseded)
		hlog(h, "successor pid %ld has exited, after it handed over "
		    "or stopped: draining on", (long)pid);
	else if (chain_may_be_newer(h))
		chain_check(h, pid, rollback);
	else {
		h->check_gone = pid;
		rollback(h, 0);
	}
}

/* Frees p; with notify, our successor's going is acted on (rollback). */
static void
peer_free(struct peer *p, int notify)
{
	struct handoff	*h = p->h;

	LIST_REMOVE(p, entry);
	h->npeers--;
	peer_discard(p);
	if (p->rev != NULL)
		event_free(p->rev);
	if (p->wev != NULL)
		event_free(p->wev);
	if (p->timer != NULL)
		event_free(p->timer);
	close(p->fd);
	/* Its slot may be the spare fd's. */
	if (h->control_ev != NULL)
		control_spare(h);
	if (h->successor == p) {
		h->successor = NULL;
		if (notify)
			successor_gone(h, p->pid);
	}
	free(p);
}

/* Is a successor between hello and ready with the whole offer sent? */
int
incumbent_offer_sent(const struct handoff *h)
{
	const struct peer	*p = h->successor;

	return p != NULL && p->state == PEER_OFFERED &&
	    STAILQ_EMPTY(&p->queue) && p->next_batch >= h->nbatches;
}

/* A stop while a successor is between hello and ready: refuse it. */
void
incumbent_abort_takeover(struct handoff *h, const char *why)
{
	struct peer	*p = h->successor;

	if (p == NULL || p->state != PEER_OFFERED)
		return;
	h->successor = NULL;
	h->hstate = HS_SERVING;
	chain_tell_takeover(h, 0);
	peer_refuse(p, MSG_E_STOPPING, why);
}

void
incumbent_free_peers(struct handoff *h)
{
	struct peer	*p;

	while ((p = LIST_FIRST(&h->peers)) != NULL)
		peer_free(p, 0);
}
