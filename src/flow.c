/*
 * flow: datagrams of flows that belong to another generation. Sent to
 * the neighbour that owns them, over the control connection that stays
 * open while the predecessor drains ("datagrams" extension, PROTOCOL.md
 * 6.8), and handed to the application's flow callback with the
 * receiver's own fd of the same socket, to answer on. Its two public
 * functions are here, beside what they do.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handoff-int.h"
#include "b64.h"
#include "message.h"
#include "wire.h"

/* The bytes of ours a neighbour may leave unread before datagrams are
 * dropped: the words of the chain (superseded) always find room. */
#define FLOW_UNREAD_MAX		131072

_Static_assert(HANDOFF_FLOW_MAX == MSG_DATAGRAM_MAX,
    "the API's largest datagram is the protocol's");

/*
 * Our datagram listener called name that is the same socket as the
 * neighbour's that way (we adopted it from our predecessor; our
 * successor did not retire it), or NULL.
 */
static const struct hlistener *
flow_listener(const struct handoff *h, enum handoff_way way,
    const char *name)
{
	const struct hlistener	*l;
	size_t			 i;

	for (i = 0; i < h->nlisteners; i++) {
		l = &h->listeners[i];
		if (l->fd < 0 || l->id.socktype != SOCK_DGRAM ||
		    strcmp(l->name, name) != 0)
			continue;
		if (way == HANDOFF_PREDECESSOR ? l->bound_here : l->unshared)
			return NULL;
		return l;
	}
	return NULL;
}

/* The "datagram" message, or NULL (errno set). */
static json_t *
flow_msg(const char *name, const struct sockaddr *sa, socklen_t salen,
    const void *data, size_t len)
{
	char	 addr[LISTENER_ADDR_MAX], *b64;
	json_t	*m;

	listener_format(sa, salen, addr, sizeof(addr));
	if ((b64 = b64_encode(data, len)) == NULL)
		return NULL;
	if ((m = msg_new("datagram")) != NULL && (json_object_set_new(m,
	    "pid", json_integer(getpid())) == -1 || json_object_set_new(m,
	    "listener", json_string(name)) == -1 || json_object_set_new(m,
	    "peer", json_string(addr)) == -1 || json_object_set_new(m,
	    "data", json_string(b64)) == -1)) {
		json_decref(m);
		m = NULL;
	}
	free(b64);
	if (m == NULL)
		errno = ENOMEM;
	return m;
}

/* Can the neighbour that way take a datagram now? Its fd, or -1. */
static int
flow_to(struct handoff *h, enum handoff_way way)
{
	struct peer	*p = h->successor;

	if (way == HANDOFF_PREDECESSOR) {
		if (h->pred_fd < 0 || h->hstate == HS_WAITING) {
			herr(h, "no predecessor to send a datagram to: it has "
			    "exited, or it has not released us yet");
			return -1;
		}
		if (!h->pred_flows) {
			herr(h, "predecessor pid %ld does not take datagrams "
			    "(no \"datagrams\" extension in its offer)",
			    (long)h->predecessor);
			return -1;
		}
		return h->pred_fd;
	}
	if (p == NULL || p->state != PEER_RELEASED) {
		herr(h, "no successor to send a datagram to: none has taken "
		    "over from us, or it has gone");
		return -1;
	}
	if (!h->succ_flows) {
		herr(h, "successor pid %ld does not take datagrams (no "
		    "\"datagrams\" extension in its ready)", (long)p->pid);
		return -1;
	}
	/* Behind what is queued for it already: dropped. */
	return STAILQ_EMPTY(&p->queue) ? p->fd : -2;
}

void
handoff_set_flow_cb(struct handoff *h, handoff_flow_cb cb, void *arg)
{
	h->flow_cb = cb;
	h->flow_arg = arg;
}

int
handoff_flow_send(struct handoff *h, enum handoff_way way, const char *name,
    const struct sockaddr *sa, socklen_t salen, const void *data, size_t len)
{
	json_t	*m;
	int	 fd, save_errno;

	if (name == NULL || (data == NULL && len > 0)) {
		errno = EINVAL;
		return herr(h, "handoff_flow_send: no listener name or no "
		    "data");
	}
	if (len > HANDOFF_FLOW_MAX) {
		errno = EMSGSIZE;
		return herr(h, "a datagram of %zu bytes cannot be sent to a "
		    "neighbour: at most %d", len, HANDOFF_FLOW_MAX);
	}
	if (sa == NULL || salen <= (socklen_t)sizeof(sa->sa_family) ||
	    (size_t)salen > sizeof(struct sockaddr_storage)) {
		errno = EDESTADDRREQ;
		return herr(h, "a datagram from an unnamed peer cannot be sent "
		    "to a neighbour: there is no address to answer");
	}
	if (flow_listener(h, way, name) == NULL) {
		errno = ENOENT;
		return herr(h, "no datagram listener \"%s\" shared with the "
		    "%s: none of that name, or not the same socket (bound or "
		    "retired in the takeover)", name, way ==
		    HANDOFF_PREDECESSOR ? "predecessor" : "successor");
	}
	if ((fd = flow_to(h, way)) == -1) {
		errno = ENOTCONN;
		return -1;
	}
	if (fd == -2 || wire_unread(fd) > FLOW_UNREAD_MAX) {
		errno = EAGAIN;
		return herr(h, "%s pid %ld has not read what we sent yet: "
		    "datagram dropped", way == HANDOFF_PREDECESSOR ?
		    "predecessor" : "successor", way == HANDOFF_PREDECESSOR ?
		    (long)h->predecessor : (long)h->successor->pid);
	}
	if ((m = flow_msg(name, sa, salen, data, len)) == NULL)
		return herr(h, "cannot build a datagram message: %s",
		    strerror(errno));
	if (msg_send(fd, m, 0) == -1) {
		save_errno = errno == EAGAIN ? EAGAIN : ENOTCONN;
		herr(h, "cannot send a datagram to %s pid %ld: %s; dropped",
		    way == HANDOFF_PREDECESSOR ? "predecessor" : "successor",
		    way == HANDOFF_PREDECESSOR ? (long)h->predecessor :
		    (long)h->successor->pid, strerror(errno));
		errno = save_errno;
		return -1;
	}
	return 0;
}

/*
 * A "datagram" message (schema-checked) from the neighbour that way, pid:
 * to the application, or dropped with a line that says why.
 */
void
flow_receive(struct handoff *h, enum handoff_way from, pid_t pid,
    const json_t *msg)
{
	const struct hlistener	*l;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	const char		*name, *peer, *who;
	unsigned char		*buf;
	ssize_t			 n;

	who = from == HANDOFF_PREDECESSOR ? "predecessor" : "successor";
	name = json_string_value(json_object_get(msg, "listener"));
	peer = json_string_value(json_object_get(msg, "peer"));
	if ((l = flow_listener(h, from, name)) == NULL) {
		hlog(h, "%s pid %ld sent a datagram of \"%s\", which is not a "
		    "datagram listener we share with it: dropped", who,
		    (long)pid, name);
		return;
	}
	if (listener_addr_parse(peer, &ss, &sslen) == -1 ||
	    ss.ss_family != l->id.family) {
		hlog(h, "%s pid %ld sent a datagram from \"%.*s\", which is not "
		    "a numeric %s address: dropped", who, (long)pid,
		    LISTENER_ADDR_MAX, peer, listener_family_name(l->id.family));
		return;
	}
	if (h->flow_cb == NULL) {
		hlog(h, "%s pid %ld sent a datagram and the application takes "
		    "none (no flow callback): dropped", who, (long)pid);
		return;
	}
	if ((buf = malloc(HANDOFF_FLOW_MAX)) == NULL) {
		hlog(h, "%s pid %ld sent a datagram: out of memory; dropped",
		    who, (long)pid);
		return;
	}
	if ((n = b64_decode(json_string_value(json_object_get(msg,
	    "data")), buf, HANDOFF_FLOW_MAX)) == -1)
		hlog(h, "%s pid %ld sent a datagram whose data is not base64 "
		    "of at most %d bytes: dropped", who, (long)pid,
		    HANDOFF_FLOW_MAX);
	else
		h->flow_cb(h, from, name, l->fd, (struct sockaddr *)&ss, sslen,
		    buf, (size_t)n, h->flow_arg);
	free(buf);
}
