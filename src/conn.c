/*
 * conn: established connections given to the successor while we drain
 * ("conns" extension, PROTOCOL.md 6.9). The incumbent's application
 * gives a connection and the bytes it read and did not consume; the
 * library sends it, keeps its copy until the successor says it took it,
 * and hands back through the connection callback every one the
 * successor refused or did not answer for before it went: nothing is
 * lost on any path. The successor's half is conntake.c. Its public
 * functions are here, beside what they do.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "b64.h"
#include "handoff-int.h"
#include "listener.h"
#include "message.h"
#include "wire.h"

/* Given and not yet taken, at once: the fds the library holds. */
#define CONN_HELD_MAX	65536
/* One connection's row, state and all, once encoded. */
#define CONN_ENTRY_MAX	(WIRE_MAX_MSG / 2)
/* What a "conns" message holds besides its rows. */
#define CONN_MSG_HEAD	256
/* Out of memory: how soon the rest is tried again. */
#define CONN_RETRY_MS	20
/* Of the fds our successor said it had room for, those left to it for
 * what it accepts and opens itself. */
#define CONN_FDS_SPARE	64

_Static_assert(B64_LEN(HANDOFF_CONN_DATA_MAX) + 1024 < CONN_ENTRY_MAX,
    "a row with the most data fits");
_Static_assert(HANDOFF_CONN_DATA_MAX == MSG_CONN_DATA_MAX,
    "the API's unread bytes are the protocol's");

static void	conn_compact(struct handoff *);

void
handoff_set_conn_cb(struct handoff *h, handoff_conn_cb cb, void *arg)
{
	h->conn_cb = cb;
	h->conn_arg = arg;
}

size_t
handoff_conns_pending(const struct handoff *h)
{
	return h->nlive;
}

static void
conn_retry(evutil_socket_t fd, short what, void *arg)
{
	conn_flush(arg);
}

/* Sends the rest at the next turn of the loop (0: gives come in
 * bursts), or a while later (out of memory now). */
static void
conn_schedule(struct handoff *h, unsigned ms)
{
	struct timeval	tv = { 0, (suseconds_t)ms * 1000 };

	if (h->conn_ev == NULL &&
	    (h->conn_ev = evtimer_new(h->base, conn_retry, h)) == NULL) {
		hlog(h, "cannot send the connections given: out of memory; "
		    "they come back when the successor goes");
		return;
	}
	if (!evtimer_pending(h->conn_ev, NULL))
		evtimer_add(h->conn_ev, &tv);
}

/* Our successor's socket had room again and its queue is written. */
void
conn_writable(struct peer *p)
{
	struct handoff	*h = p->h;

	if (p != h->successor || !h->conn_blocked)
		return;
	h->conn_blocked = 0;
	conn_flush(h);
}

/* Connection id's row of "conns" in *c: 0, or -1 with the reason in
 * h->err. */
static int
conn_row(struct handoff *h, struct msg_conn *c, long id, int fd,
    const char *listener, const void *data, size_t len, const char *state)
{
	char		 peer[LISTENER_ADDR_MAX], local[LISTENER_ADDR_MAX];
	char		*st = NULL;
	json_t		*o = NULL;
	json_error_t	 jerr;
	struct stat	 sb;
	int		 r = -1;

	if (conn_addresses(fd, peer, local) == -1 || fstat(fd, &sb) == -1) {
		herr(h, "fd %d is not a connected socket (%s): only "
		    "connections can be given", fd, strerror(errno));
		goto out;
	}
	if (state != NULL && ((o = json_loads(state, JSON_REJECT_DUPLICATES,
	    &jerr)) == NULL || !json_is_object(o))) {
		herr(h, "connection state is not a JSON object: %s",
		    o == NULL ? jerr.text : "another value");
		goto out;
	}
	if (o != NULL && (st = json_dumps(o, JSON_COMPACT)) == NULL) {
		herr(h, "cannot give a connection: out of memory");
		goto out;
	}
	if (msg_conn_cells(c, id, (long long)sb.st_ino, listener, peer, local,
	    data, len, st) == -1) {
		herr(h, "cannot give a connection: %s", errno == EINVAL ?
		    "an address is not UTF-8" : "out of memory");
		goto out;
	}
	if (msg_conn_row_len(c) > CONN_ENTRY_MAX) {
		herr(h, "a connection's state and data take more than %d "
		    "bytes in a message: keep the state smaller",
		    CONN_ENTRY_MAX);
		free(c->block);
		c->block = NULL;
		goto out;
	}
	r = 0;
out:
	json_decref(o);
	free(st);
	return r;
}

int
handoff_conn_give(struct handoff *h, int fd, const char *listener,
    const void *data, size_t len, const char *state)
{
	struct peer	*p = h->successor;
	struct hconn	*c;
	struct msg_conn	 row;
	size_t		 cap;

	if (h->hstate != HS_DRAINING || p == NULL || p->state !=
	    PEER_RELEASED || h->conn_cb == NULL || !h->succ_conns)
		return herr(h, "no successor to give a connection to: we do "
		    "not drain after a takeover, or it takes none (no \"%s\" "
		    "extension on both sides; a connection callback sets "
		    "ours)", CONN_EXTENSION);
	if (listener == NULL || !msg_name_valid(listener))
		return herr(h, "handoff_conn_give: \"%s\" is not a listener "
		    "name", listener != NULL ? listener : "(null)");
	if (len > HANDOFF_CONN_DATA_MAX || (data == NULL && len > 0))
		return herr(h, "handoff_conn_give: %zu bytes read and not "
		    "consumed: at most %d travel", len, HANDOFF_CONN_DATA_MAX);
	if (h->nlive >= CONN_HELD_MAX)
		return herr(h, "%d connections given are not taken yet: give "
		    "more once some are", CONN_HELD_MAX);
	/* One it cannot receive would be lost in its fd table's full
	 * receive: we keep the rest. */
	if (h->conn_sent + CONN_FDS_SPARE >= h->conn_room)
		return herr(h, "successor pid %ld said it had room for %zu "
		    "more fds, and has them all (raise its RLIMIT_NOFILE)",
		    (long)p->pid, h->conn_room);
	if (h->conn_kept)
		return herr(h, "our successor stops, or has gone and a newer "
		    "generation serves");
	if (h->nconns == h->capconns)
		conn_compact(h);
	if (h->nconns == h->capconns) {
		cap = h->capconns ? h->capconns * 2 : 64;
		if ((c = reallocarray(h->conns, cap, sizeof(*c))) == NULL)
			return herr(h, "cannot give a connection: out of "
			    "memory");
		h->conns = c;
		h->capconns = cap;
	}
	if (conn_row(h, &row, h->conn_next + 1, fd, listener, data, len,
	    state) == -1)
		return -1;
	c = &h->conns[h->nconns++];
	h->conn_sent++;
	h->nlive++;
	c->id = ++h->conn_next;
	c->fd = fd;
	c->row = row;
	c->sent = 0;
	/* A whole message's worth goes at once; the rest at the next
	 * turn of the loop, with what else is given in this one. */
	if (h->conn_blocked)
		h->nunsent++;		/* sent once the socket has room */
	else if (++h->nunsent >= WIRE_MAX_FDS)
		conn_flush(h);
	else
		conn_schedule(h, 0);
	return 0;
}

/*
 * Sends what was given and not sent yet, in "conns" messages of at most
 * WIRE_MAX_FDS connections and WIRE_MAX_MSG bytes, from the first not
 * sent; a full socket is tried again once it has room (conn_writable).
 */
void
conn_flush(struct handoff *h)
{
	struct peer	*p = h->successor;
	int		 fds[WIRE_MAX_FDS];
	const struct msg_conn *row[WIRE_MAX_FDS];
	size_t		 idx[WIRE_MAX_FDS], i, n, size, len;
	char		*buf;
	int		 r;

	if (p == NULL || p->state != PEER_RELEASED || h->conn_blocked ||
	    h->conn_kept)
		return;
	/* After what the peer has queued, and only when there is room:
	 * a send that cannot go still takes a reference on every fd. */
	if (!peer_idle(p)) {
		h->conn_blocked = 1;
		event_add(p->wev, NULL);
		return;
	}
	for (i = h->conn_first; i < h->nconns; h->conn_first = i) {
		for (n = 0, size = CONN_MSG_HEAD; i < h->nconns &&
		    n < WIRE_MAX_FDS; i++) {
			if (h->conns[i].sent || h->conns[i].row.block == NULL)
				continue;
			len = msg_conn_row_len(&h->conns[i].row);
			if (size + len > WIRE_MAX_MSG)
				break;
			size += len;
			row[n] = &h->conns[i].row;
			fds[n] = h->conns[i].fd;
			idx[n++] = i;
		}
		if (n == 0)
			continue;
		if ((buf = h->conn_msg) == NULL &&
		    (buf = h->conn_msg = malloc(WIRE_MAX_MSG + 1)) == NULL) {
			conn_schedule(h, CONN_RETRY_MS);
			return;
		}
		/* Measured as they were given, the rows fit. */
		if ((len = msg_encode_conns(buf, (long)getpid(), row, n)) ==
		    0)
			return;
		r = wire_send(p->fd, buf, len, fds, n);
		if (r == -1) {
			/* Full: when it has room. Gone: its end brings them
			 * back. */
			if (errno == EAGAIN) {
				h->conn_blocked = 1;
				event_add(p->wev, NULL);
			}
			return;
		}
		h->nunsent -= n;
		while (n > 0)
			h->conns[idx[--n]].sent = 1;
	}
}

/* Index of the unsettled connection with that id, or -1: ids grow
 * along the array, which compaction keeps in order. */
static ssize_t
conn_find(const struct handoff *h, json_int_t id)
{
	size_t	lo = 0, hi = h->nconns, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (h->conns[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < h->nconns && h->conns[lo].id == id &&
	    h->conns[lo].row.block != NULL)
		return (ssize_t)lo;
	return -1;
}

/* Settles entry i, keeping the fd: the caller says what becomes of it. */
static void
conn_remove(struct handoff *h, size_t i)
{
	if (!h->conns[i].sent)
		h->nunsent--;
	free(h->conns[i].row.block);
	h->conns[i].row.block = NULL;
	h->conns[i].fd = -1;
	h->nlive--;
}

/* Drops the settled entries, in order; not while a loop settles them
 * (a callback may give more meanwhile). */
static void
conn_compact(struct handoff *h)
{
	size_t	i, n = 0, first = h->conn_first;

	if (h->conn_busy)
		return;
	for (i = 0; i < h->nconns; i++) {
		if (i == first)
			h->conn_first = n;	/* where that entry goes */
		if (h->conns[i].row.block != NULL)
			h->conns[n++] = h->conns[i];
	}
	if (first >= h->nconns)
		h->conn_first = n;
	h->nconns = n;
}

/* Row cell k without its quotes (a string that needs no escapes: a
 * name, base64), or NULL. */
static char *
conn_unquote(const struct msg_conn *c, enum msg_conn_column k)
{
	return c->len[k] >= 2 ? strndup(c->cell[k] + 1, c->len[k] - 2) :
	    NULL;
}

/* Connection i comes back: the application serves it again. Its row is
 * read again here, on this path only, and settled before the callback
 * (which may give more, moving the rows). */
static void
conn_back(struct handoff *h, size_t i)
{
	struct msg_conn	*c = &h->conns[i].row;
	int		 fd = h->conns[i].fd, r = -1, ok;
	char		*listener, *data, *peer, *state = NULL;

	listener = conn_unquote(c, MSG_CC_LISTENER);
	data = conn_unquote(c, MSG_CC_DATA);
	peer = conn_unquote(c, MSG_CC_PEER);
	ok = c->len[MSG_CC_STATE] == 4 && memcmp(c->cell[MSG_CC_STATE],
	    "null", 4) == 0;
	if (!ok)
		ok = (state = strndup(c->cell[MSG_CC_STATE],
		    c->len[MSG_CC_STATE])) != NULL;
	conn_remove(h, i);
	if (ok && listener != NULL && data != NULL)
		r = conn_offer(h, HANDOFF_SUCCESSOR, fd, listener, data,
		    state);
	if (r == -1) {
		hlog(h, "connection from %s came back and the application "
		    "did not take it: closed", peer != NULL ? peer :
		    "(out of memory)");
		close(fd);
	}
	free(listener);
	free(data);
	free(peer);
	free(state);
}

static void
conn_settled(struct handoff *h)
{
	if (h->nlive > 0)
		return;
	h->nconns = 0;
	h->conn_first = 0;
	hevent(h, HANDOFF_CONNS_SETTLED);
}

/* "conns_taken" from our successor: close what it took, serve the rest. */
void
conn_on_taken(struct handoff *h, pid_t pid, const json_t *msg)
{
	json_t		*v;
	size_t		 k, nt = 0, nr = 0;
	ssize_t		 i;
	long		 by;
	char		 who[80];

	h->conn_busy = 1;
	json_array_foreach(json_object_get(msg, "taken"), k, v) {
		if ((i = conn_find(h, json_integer_value(v))) == -1 ||
		    !h->conns[i].sent)
			continue;
		close(h->conns[i].fd);
		conn_remove(h, (size_t)i);
		nt++;
	}
	json_array_foreach(json_object_get(msg, "refused"), k, v) {
		if ((i = conn_find(h, json_integer_value(v))) == -1 ||
		    !h->conns[i].sent)
			continue;
		conn_back(h, (size_t)i);
		nr++;
	}
	h->conn_busy = 0;
	/* Once our successor has exited, a newer generation holds its end
	 * and answers (it says so in pid: SO_PEERCRED stays our
	 * successor's). */
	by = (long)json_integer_value(json_object_get(msg, "pid"));
	if (by != (long)pid)
		snprintf(who, sizeof(who), " (answered by pid %ld, which holds "
		    "its connection now)", by);
	else
		who[0] = '\0';
	if (nr > 0)
		hlog(h, "successor pid %ld took %zu connection%s and refused "
		    "%zu: serving those again%s", (long)pid, nt, nt == 1 ? "" :
		    "s", nr, who);
	else
		hlog(h, "successor pid %ld took %zu connection%s; %zu given "
		    "and not taken yet%s", (long)pid, nt, nt == 1 ? "" : "s",
		    h->nlive, who);
	conn_settled(h);
}

/* Our successor is gone: every connection it did not take is ours. */
void
conn_all_back(struct handoff *h, const char *why)
{
	size_t	n = h->nlive, i;

	h->conn_blocked = 0;
	if (n == 0)
		return;
	if (h->conn_ev != NULL)
		evtimer_del(h->conn_ev);
	hlog(h, "%zu connection%s given and not taken (%s): serving them "
	    "again", n, n == 1 ? "" : "s", why);
	/* The callback may give again, appending: only those here now. */
	h->conn_busy = 1;
	for (n = h->nconns, i = 0; i < n; i++)
		if (h->conns[i].row.block != NULL)
			conn_back(h, i);
	h->conn_busy = 0;
	conn_settled(h);
}

/*
 * We give no more: our successor stops, and serves nobody next, or it
 * has gone and a newer generation serves (or we are told to stop).
 * What was given and not sent yet is not sent now: the application
 * serves it again. A successor that hands over to a newer generation
 * still takes what we give, and once it exits the newer one does, on
 * the link it is handed (PROTOCOL.md 6.9 item 7).
 */
void
conn_keep_unsent(struct handoff *h)
{
	size_t	n = h->nunsent, i;

	h->conn_kept = 1;
	if (n == 0)
		return;
	hlog(h, "%zu connection%s given and not sent yet stay here: our "
	    "successor stops, or a newer generation serves", n, n == 1 ?
	    "" : "s");
	h->conn_busy = 1;
	for (n = h->nconns, i = 0; i < n; i++)
		if (h->conns[i].row.block != NULL && !h->conns[i].sent)
			conn_back(h, i);
	h->conn_busy = 0;
	conn_settled(h);
}

void
conn_free(struct handoff *h)
{
	size_t	i;

	for (i = 0; i < h->nconns; i++)
		if (h->conns[i].row.block != NULL) {
			close(h->conns[i].fd);
			conn_remove(h, i);
		}
	h->nconns = 0;
	h->conn_first = 0;
	h->conn_blocked = 0;
	free(h->conns);
	free(h->conn_msg);
	h->conn_msg = NULL;
	h->conns = NULL;
	h->capconns = 0;
	if (h->conn_ev != NULL)
		event_free(h->conn_ev);
	h->conn_ev = NULL;
}
