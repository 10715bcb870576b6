/*
 * peer: one connection on the incumbent's control socket. Its queue of
 * messages, then the batches of the offer, written as the socket takes
 * them; what it sends read and handed to its dispatch callback; its
 * timer; and its end, told to its gone callback. What a message means is
 * the state machine's (incumbent.c).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handoff-int.h"
#include "message.h"
#include "wire.h"

/* How long a refused peer has to read its error before we close. */
#define CLOSE_MS	1000
#define FORBIDDEN_TEXT	"uid not allowed on this control socket"
/* Messages read from a successor gone while we sent: its socket's worth. */
#define LAST_WORDS_MAX	1024

struct outmsg {
	STAILQ_ENTRY(outmsg)	 entry;
	char			*buf;
	size_t			 len;
};

static void	peer_read(evutil_socket_t, short, void *);
static void	peer_write(evutil_socket_t, short, void *);
static void	peer_timeout(evutil_socket_t, short, void *);
static void	peer_last_words(struct peer *);
static void	peer_bad_input(struct peer *, const char *, const char *);

void
peer_arm(struct peer *p, unsigned ms)
{
	struct timeval	tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(p->timer, &tv);
}

/* Queues msg, taken even on failure. */
int
peer_queue(struct peer *p, json_t *msg)
{
	struct outmsg	*m;

	if (msg == NULL)
		return -1;
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->buf = msg_encode(msg, &m->len)) == NULL) {
		free(m);
		json_decref(msg);
		return -1;
	}
	json_decref(msg);
	STAILQ_INSERT_TAIL(&p->queue, m, entry);
	return 0;
}

void
peer_send(struct peer *p, json_t *msg)
{
	if (peer_queue(p, msg) == -1) {
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
		free(m);
	}
}

/*
 * Replies with an error and closes once it is written, or after CLOSE_MS
 * if the peer does not read: whatever was still queued (batches of fds)
 * is dropped first, and nothing more is read.
 */
void
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
int
peer_flush(struct peer *p)
{
	struct handoff	*h = p->h;
	struct outmsg	*m;
	const char	*buf;
	int		 bfds[WIRE_MAX_FDS];
	size_t		 len, nfds;
	int		 r;
	char		 text[160];

	for (;;) {
		if ((m = STAILQ_FIRST(&p->queue)) != NULL)
			r = wire_send(p->fd, m->buf, m->len, NULL, 0);
		else if (p->state == PEER_OFFERED &&
		    p->next_batch < h->nbatches) {
			if ((buf = offer_batch(h, p->next_batch, &len, bfds,
			    &nfds, text, sizeof(text))) == NULL) {
				peer_refuse(p, MSG_E_INTERNAL, text);
				return -1;
			}
			r = wire_send(p->fd, buf, len, bfds, nfds);
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
		free(m);
	}
	if (p->state == PEER_CLOSING) {
		peer_free(p, 1);
		return -1;
	}
	if (p->writable != NULL)
		p->writable(p);
	return 0;
}

static void
peer_write(evutil_socket_t fd, short what, void *arg)
{
	peer_flush(arg);
}

/* A peer for connection fd, or NULL (fd closed). */
struct peer *
peer_new(struct handoff *h, int fd, const struct ucred *cred,
    void (*dispatch)(struct peer *, json_t *),
    void (*gone)(struct peer *, int))
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
	p->dispatch = dispatch;
	p->gone = gone;
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
	/* Refused at its first message, so that it reads the answer
	 * instead of a reset. */
	if (!huid_allowed(h, cred->uid))
		p->state = PEER_FORBIDDEN;
	event_add(p->rev, NULL);
	peer_arm(p, h->io_timeout);
	return p;
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
	struct msg_fail	 f;
	json_t		*msg;
	int		 fds[WIRE_MAX_FDS];
	size_t		 nfds, i;

	/* Fds that came with them are not ours to keep, but the words
	 * count: closed, and the message read. */
	for (i = 0; i < LAST_WORDS_MAX; i++) {
		if ((msg = msg_recv(p->fd, fds, &nfds, &f)) != NULL) {
			wire_close_fds(fds, nfds);
			p->dispatch(p, msg);
			json_decref(msg);
		} else if (f.why != MSG_BAD)
			return;
	}
}

static void
peer_read(evutil_socket_t fd, short what, void *arg)
{
	struct peer	*p = arg;
	struct msg_fail	 f;
	json_t		*msg;

	if ((msg = msg_recv(p->fd, NULL, NULL, &f)) != NULL) {
		if (p->state == PEER_FORBIDDEN)
			peer_refuse(p, MSG_E_FORBIDDEN, FORBIDDEN_TEXT);
		else
			p->dispatch(p, msg);
		json_decref(msg);
	} else if (f.why == MSG_CLOSED)
		peer_free(p, 1);	/* gone: a close is not an error */
	else if (f.why == MSG_BAD)
		peer_bad_input(p, f.code, f.err);
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

/* Frees p, and tells its gone callback; with notify, its going is to be
 * acted on (a rollback), else it is our own doing. */
void
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
	p->gone(p, notify);
	free(p);
}

void
peer_free_all(struct handoff *h)
{
	struct peer	*p;

	while ((p = LIST_FIRST(&h->peers)) != NULL)
		peer_free(p, 0);
}

/* Nothing queued for p: all it was sent is written. */
int
peer_idle(const struct peer *p)
{
	return STAILQ_EMPTY(&p->queue);
}

/* Every message and batch of the offer written to p. */
int
peer_offer_sent(const struct peer *p)
{
	return peer_idle(p) && p->next_batch >= p->h->nbatches;
}
