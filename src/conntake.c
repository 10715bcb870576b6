/*
 * conntake: the successor's half of the "conns" extension (PROTOCOL.md
 * 6.9): each connection its predecessor, or an older drainer on a link,
 * gives is checked against what the kernel says of its fd, offered to
 * the application, and answered for. conn.c, the giver's half, uses its
 * two helpers to read a socket's addresses and to offer a connection.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "b64.h"
#include "handoff-int.h"
#include "listener.h"
#include "message.h"
#include "wire.h"

/*
 * A connected socket's two addresses; -1 with errno. A listener or an
 * unconnected socket has no peer (ENOTCONN). Whether it is a stream is
 * the taker's check (conn_is_stream): the giver of ten thousand saves a
 * call on each.
 */
int
conn_addresses(int fd, char *peer, char *local)
{
	struct sockaddr_storage	ss;
	socklen_t		len;

	len = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == -1)
		return -1;
	listener_format((struct sockaddr *)&ss, len, peer, LISTENER_ADDR_MAX);
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return -1;
	listener_format((struct sockaddr *)&ss, len, local, LISTENER_ADDR_MAX);
	return 0;
}

/* A connected stream socket, with its two addresses; -1 with errno. */
static int
conn_stream_addresses(int fd, char *peer, char *local)
{
	socklen_t	len = sizeof(int);
	int		v;

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == -1)
		return -1;
	if (v != SOCK_STREAM) {
		errno = ESOCKTNOSUPPORT;
		return -1;
	}
	return conn_addresses(fd, peer, local);
}

/* Hands the connection with bytes (base64) and state (JSON text or
 * NULL) to the callback, which owns the fd if it returns 0; closed
 * otherwise. */
int
conn_offer(struct handoff *h, enum handoff_way from, int fd,
    const char *listener, const char *b64, const char *state)
{
	unsigned char	*buf = NULL;
	ssize_t		 n = 0;
	int		 r = -1;

	/* An idle connection, the usual one, brought no bytes. */
	if (*b64 != '\0' && ((buf = malloc(HANDOFF_CONN_DATA_MAX)) == NULL ||
	    (n = b64_decode(b64, buf, HANDOFF_CONN_DATA_MAX)) < 0))
		goto out;
	if (h->conn_cb != NULL)
		r = h->conn_cb(h, from, fd, listener, buf != NULL ? buf :
		    (unsigned char *)"", (size_t)n, state, h->conn_arg);
out:
	free(buf);
	return r;
}

/* Row i of column k of a "conns" table: its value there, or the
 * column's one value; NULL if the column is left out. */
static const json_t *
conn_cell(const json_t *const col[], enum msg_conn_column k, size_t i)
{
	return json_is_array(col[k]) ? json_array_get(col[k], i) : col[k];
}

/* A connection, which its inode does not say: TCP and not listening
 * (one call), or a connected stream socket of another family. */
static int
conn_is_stream(int fd)
{
	struct tcp_info	ti;
	char		peer[LISTENER_ADDR_MAX], local[LISTENER_ADDR_MAX];
	socklen_t	len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0)
		return ti.tcpi_state != TCP_LISTEN;
	return errno != EBADF && errno != ENOTSOCK &&
	    conn_stream_addresses(fd, peer, local) == 0;
}

/* Keys of one message seen so far (ids, inodes: never 0), open
 * addressing: a check per row, not a scan of the rows before it. */
#define SEEN_SLOTS	512	/* a power of two, over 2 * WIRE_MAX_FDS */
_Static_assert(SEEN_SLOTS > 2 * WIRE_MAX_FDS, "the set stays half empty");

/* 1 if key was in set already; else adds it and says 0. */
static int
seen_add(unsigned long long *set, unsigned long long key)
{
	size_t	i = (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 55);

	for (; set[i] != 0; i = (i + 1) & (SEEN_SLOTS - 1))
		if (set[i] == key)
			return 1;
	set[i] = key;
	return 0;
}

/*
 * Is fd connection i of the table, as the kernel sees it? With an inode,
 * fstat says it is that very socket, and TCP_INFO that it is a
 * connection; without, its type and two addresses. A socket already
 * given in the message under another id (in seen) is not: it would be
 * served twice.
 */
static int
conn_matches(int fd, const json_t *const col[], size_t i,
    unsigned long long *seen)
{
	char		 peer[LISTENER_ADDR_MAX], local[LISTENER_ADDR_MAX];
	const json_t	*ino = conn_cell(col, MSG_CC_INODE, i);
	struct stat	 sb;

	if (fstat(fd, &sb) == -1 || !S_ISSOCK(sb.st_mode) || sb.st_ino == 0 ||
	    seen_add(seen, sb.st_ino))
		return 0;
	if (ino != NULL)
		return (json_int_t)sb.st_ino == json_integer_value(ino) &&
		    conn_is_stream(fd);
	return conn_stream_addresses(fd, peer, local) == 0 && strcmp(peer,
	    json_string_value(conn_cell(col, MSG_CC_PEER, i))) == 0 &&
	    strcmp(local, json_string_value(conn_cell(col, MSG_CC_LOCAL,
	    i))) == 0;
}

/* Offers connection i of the table to the application. */
static int
conn_offer_row(struct handoff *h, int fd, const json_t *const col[],
    size_t i)
{
	const json_t	*st = conn_cell(col, MSG_CC_STATE, i);
	char		*state = NULL;
	int		 r;

	if (st != NULL && !json_is_null(st) &&
	    (state = json_dumps(st, JSON_COMPACT)) == NULL)
		return -1;
	r = conn_offer(h, HANDOFF_PREDECESSOR, fd, json_string_value(
	    conn_cell(col, MSG_CC_LISTENER, i)), json_string_value(
	    conn_cell(col, MSG_CC_DATA, i)), state);
	free(state);
	return r;
}


/* The first ids of a list, for a log line: "2, 3, 5" or "2, 3, ...". */
static const char *
conn_ids(char *buf, size_t size, const long long *id, size_t n)
{
	size_t	i, at = 0;
	int	k;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		k = snprintf(buf + at, size - at, "%s%lld", i > 0 ? ", " : "",
		    id[i]);
		if (k < 0 || (size_t)k >= size - at - 5) {
			snprintf(buf + at, size - at, ", ...");
			break;
		}
		at += (size_t)k;
	}
	return buf;
}

/*
 * "conns" from our predecessor, or an older drainer on a link (schema-
 * checked), with its fds: each checked, offered to the application, and
 * answered for in one "conns_taken" on answer; all refused unless take
 * (we are exiting). Takes the fds: every one is adopted or closed.
 */
void
conn_receive(struct handoff *h, const json_t *msg, int *fds, size_t nfds,
    int answer, int take)
{
	const json_t	*tab = json_object_get(msg, "conns");
	const json_t	*col[MSG_NCONNCOLS];
	long long	 taken[WIRE_MAX_FDS], refused[WIRE_MAX_FDS], id;
	unsigned long long ids_seen[SEEN_SLOTS] = { 0 };
	unsigned long long inodes_seen[SEEN_SLOTS] = { 0 };
	size_t		 i, n, nt = 0, nr = 0, len;
	char		*buf, ids[96];
	const char	*who = answer == h->pred_fd ? "predecessor" :
			    "older generation";
	long		 giver = (long)json_integer_value(json_object_get(msg,
			    "pid"));

	for (i = 0; i < MSG_NCONNCOLS; i++)
		col[i] = json_object_get(tab, msg_conn_column(i));
	/* The schema allows no more than WIRE_MAX_FDS. */
	n = json_array_size(col[MSG_CC_ID]);
	if (n != nfds)
		hlog(h, "%s pid %ld gave %zu connection%s with %zu fds: "
		    "refused", who, giver, n, n == 1 ? "" : "s", nfds);
	for (i = 0; i < n && i < WIRE_MAX_FDS; i++) {
		id = json_integer_value(conn_cell(col, MSG_CC_ID, i));
		/* An id given twice is answered once, for its first. */
		if (seen_add(ids_seen, (unsigned long long)id))
			continue;
		if (take && n == nfds && conn_matches(fds[i], col, i,
		    inodes_seen) && conn_offer_row(h, fds[i], col, i) == 0) {
			fds[i] = -1;
			taken[nt++] = id;
		} else
			refused[nr++] = id;
	}
	wire_close_fds(fds, nfds);
	if (nr > 0 && n == nfds)
		hlog(h, "refused %zu of %zu connections from %s pid %ld (ids "
		    "%s): %s", nr, n, who, giver, conn_ids(ids, sizeof(ids),
		    refused, nr), take ? "not what it said, or the application "
		    "did not take them" : "we are exiting");
	if ((buf = msg_encode_conns_taken((long)getpid(), taken, nt, refused,
	    nr, &len)) == NULL || msg_send_text(answer, buf, len,
	    SEND_WAIT_MS) == -1)
		hlog(h, "cannot tell %s pid %ld which connections we took: "
		    "%s", who, giver, strerror(errno));
	free(buf);
}
