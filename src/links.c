/*
 * links: a middle generation that exits while older ones still drain
 * hands us its connections to them ("predecessors", PROTOCOL.md 6.7),
 * with what it had not read still queued: from then on we tell them that
 * they are superseded, and we read what they send on them: connections
 * given to the generation that has gone, or to us through it (6.9),
 * which we take, or refuse, and answer for, as their successor would
 * have, so that none waits for an answer to its drain deadline; and the
 * links an older generation hands on as it exits in its turn.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handoff-int.h"
#include "message.h"
#include "wire.h"

/* How long an exit waits for room to hand its links on. */
#define LINKS_PASS_MS	1000
/* Messages read from a link a turn of the loop. */
#define LINKS_READ_MAX	16

static void
link_drop(struct handoff *h, size_t i)
{
	if (h->links[i].ev != NULL)
		event_free(h->links[i].ev);
	close(h->links[i].fd);
	h->nlinks--;
	memmove(&h->links[i], &h->links[i + 1], (h->nlinks - i) *
	    sizeof(h->links[0]));
}

/* What an older generation sends on a link: connections it gives are
 * answered here, and the links it hands on as it exits are ours; the
 * rest (progress, datagrams) has nobody to read it, and its end closes
 * the link. */
static void
link_read(evutil_socket_t fd, short what, void *arg)
{
	struct handoff	*h = arg;
	struct msg_fail	 f;
	json_t		*msg;
	int		 fds[WIRE_MAX_FDS];
	size_t		 nfds, i, k;

	for (k = 0; k < LINKS_READ_MAX; k++) {
		if ((msg = msg_recv_lossy(fd, fds, &nfds, &f)) == NULL) {
			if (f.why == MSG_BAD)
				continue;
			if (f.why == MSG_NONE)
				return;
			for (i = 0; i < h->nlinks; i++)
				if (h->links[i].fd == fd) {
					link_drop(h, i);
					break;
				}
			return;
		}
		if (strcmp(msg_type(msg), "conns") == 0) {
			conn_receive(h, msg, fds, nfds, fd, 1);
			nfds = 0;	/* taken or closed */
		} else if (nfds > 0 && strcmp(msg_type(msg), "predecessors") ==
		    0) {
			json_decref(msg);
			links_adopt(h, fds, nfds);	/* may move the links */
			return;
		}
		wire_close_fds(fds, nfds);
		json_decref(msg);
	}
}

/*
 * Our predecessor hands us, as it exits, its links to the generations
 * older than it that still drain (its own predecessor first): we speak
 * to them from now on, so the chain is not cut where a middle generation
 * has finished. Takes the fds it keeps (set to -1); the caller closes
 * the rest.
 */
void
links_adopt(struct handoff *h, int *fds, size_t n)
{
	struct hlink	*l;
	size_t		 i;

	for (i = 0; i < n && h->nlinks < CHAIN_LINKS_MAX; i++) {
		l = &h->links[h->nlinks++];
		l->fd = fds[i];
		fds[i] = -1;
		/* Without a watch it is still a link: we tell it. */
		if ((l->ev = event_new(h->base, l->fd, EV_READ | EV_PERSIST,
		    link_read, h)) != NULL && event_add(l->ev, NULL) == -1) {
			event_free(l->ev);
			l->ev = NULL;
		}
	}
	hlog(h, "predecessor pid %ld handed us %zu link%s to older draining "
	    "generations", (long)h->predecessor, i, i == 1 ? "" : "s");
}

/*
 * Links our predecessor handed us that we have not read yet, as it died
 * before it released us: taken now, so that we tell them we serve. It
 * gave us no connections (only after released); any that came are
 * refused. What else is queued is dropped.
 */
void
links_take(struct handoff *h)
{
	struct msg_fail	 f;
	json_t		*msg;
	int		 fds[WIRE_MAX_FDS];
	size_t		 nfds, i;

	if (h->pred_fd < 0)
		return;
	for (i = 0; i < CHAIN_LINKS_MAX; i++) {
		if ((msg = msg_recv(h->pred_fd, fds, &nfds, &f)) == NULL) {
			if (f.why == MSG_BAD)
				continue;
			break;		/* msg_recv closed any fds */
		}
		if (nfds > 0 && strcmp(msg_type(msg), "predecessors") == 0)
			links_adopt(h, fds, nfds);
		else if (strcmp(msg_type(msg), "conns") == 0) {
			conn_receive(h, msg, fds, nfds, h->pred_fd, 0);
			nfds = 0;	/* closed */
		}
		wire_close_fds(fds, nfds);
		json_decref(msg);
	}
}

/*
 * As we exit: our links to older drainers (our predecessor first, if it
 * still drains) go to our successor, if it takes them, on its
 * connection. Closing them would cut them off from the chain. What we
 * have not read on them goes with them, unread: connections given us
 * are its to take, links handed us its to keep.
 */
void
links_pass(struct handoff *h, int sock)
{
	int	 fds[CHAIN_LINKS_MAX + 1];
	size_t	 n = 0, i, len;
	json_t	*m;
	char	*buf;

	if (sock < 0 || !h->succ_chain)
		return;
	if (h->pred_fd >= 0 && h->pred_chain)
		fds[n++] = h->pred_fd;
	for (i = 0; i < h->nlinks && n < CHAIN_LINKS_MAX; i++)
		fds[n++] = h->links[i].fd;
	if (n == 0)
		return;
	m = msg_new("predecessors");
	if (m == NULL || json_object_set_new(m, "pid",
	    json_integer(getpid())) == -1 || (buf = msg_encode(m,
	    &len)) == NULL) {
		json_decref(m);
		return;
	}
	json_decref(m);
	/* Copies travel; ours are closed as we exit. */
	while (wire_send(sock, buf, len, fds, n) == -1 && errno == EAGAIN &&
	    wire_wait(sock, POLLOUT, LINKS_PASS_MS) == 0)
		;
	free(buf);
}

/*
 * The older drainers we hold links to, beyond our predecessor, each one
 * generation further down: each gets a keep one less than the one before.
 * Best effort: a link whose generation has exited is closed.
 */
void
links_tell(struct handoff *h, pid_t by, unsigned keep, unsigned max)
{
	size_t	i = 0;

	if (h->pred_fd >= 0 && keep > 0)
		keep--;		/* our predecessor is the first of them */
	while (i < h->nlinks) {
		if (msg_send(h->links[i].fd, msg_superseded(by, keep, max),
		    0) == -1 && errno != EAGAIN) {
			link_drop(h, i);
			continue;
		}
		i++;
		if (keep > 0)
			keep--;
	}
}

void
links_close(struct handoff *h)
{
	while (h->nlinks > 0)
		link_drop(h, h->nlinks - 1);
}
