/*
 * intake: the successor's side of the offer. Says hello with the fds it
 * has room for, receives the offer and its batches of fds, has every fd
 * checked against its entry (check.c), and indexes them for adoption.
 * Any failure leaves what it received in the set, for the caller to
 * close or keep.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adopt.h"
#include "check.h"
#include "handoff-int.h"
#include "message.h"
#include "wire.h"

/*
 * Fds the library may open in the middle of a takeover besides those it
 * receives and the listeners it binds (which fail clearly if there is no
 * room): a pidfd and a /proc file to see whether the predecessor died,
 * the notify socket, a dup that grows the table, the control socket's
 * spare fd. hello's max_fds keeps them back, nothing more.
 */
#define FD_RESERVE	16
/* Fewer fds free than this once we hold the listeners is said in the log:
 * the application needs some to serve. */
#define FD_LOW		64

/* What RLIMIT_NOFILE leaves us. */
struct fd_room {
	long long	limit;
	int		open;
	int		headroom;	/* what we may receive: hello.max_fds */
};

/* Open fds: the entries of /proc/self/fd but ".", ".." and its own. */
static int
count_open_fds(void)
{
	struct dirent	*e;
	DIR		*d;
	int		 n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' &&
		    strtol(e->d_name, NULL, 10) != dirfd(d))
			n++;
	closedir(d);
	return n;
}

static void
fd_room(struct fd_room *room)
{
	struct rlimit	 rl;

	memset(room, 0, sizeof(*room));
	room->open = count_open_fds();
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT32_MAX)
		rl.rlim_cur = INT32_MAX;
	room->limit = (long long)rl.rlim_cur;
	if (room->limit > room->open + FD_RESERVE)
		room->headroom = (int)(room->limit - room->open - FD_RESERVE);
}

/* Once we hold the listeners: too few fds left to serve is said. */
void
intake_fd_check(struct handoff *h)
{
	struct fd_room	room;

	fd_room(&room);
	if (room.limit > 0 && room.limit - room.open < FD_LOW)
		hlog(h, "only %lld fds free now (RLIMIT_NOFILE %lld, %d open): "
		    "the application may run short of them; raise "
		    "RLIMIT_NOFILE", room.limit - room.open, room.limit,
		    room.open);
}

/*
 * Receives the message `what` within the I/O timeout. Returns it, with
 * *nfds fds in fds (the caller's), or NULL with the reason recorded.
 */
static json_t *
recv_msg(struct handoff *h, const char *what, int *fds, size_t *nfds,
    const struct fd_room *room)
{
	struct msg_fail	 f;
	json_t		*msg;
	char		 hint[160];

	if ((msg = msg_expect(h->pred_fd, what, (int)h->io_timeout, fds, nfds,
	    &f)) != NULL)
		return msg;
	switch (f.why) {
	case MSG_TIMEOUT:
		/* Before the offer we do not know who accepted us: the
		 * peer's pid is whoever created the shared socket. */
		if (strcmp(what, "offer") == 0)
			herr(h, "no offer within %u ms from the server on %s: "
			    "it may be stopped (SIGSTOP) or overloaded (the "
			    "socket was created by pid %ld, which may be an "
			    "older generation)", h->io_timeout,
			    h->control_path, (long)h->predecessor);
		else
			herr(h, "no %s from incumbent pid %ld within %u ms",
			    what, (long)h->predecessor, h->io_timeout);
		break;
	case MSG_REFUSED:
		hint[0] = '\0';
		/* Its count of our fds came from us: say how we made it. */
		if (room != NULL && strcmp(f.code, MSG_E_TOOMANYFDS) == 0)
			snprintf(hint, sizeof(hint), " (here RLIMIT_NOFILE is "
			    "%lld, %d fds are open and %d are kept for the "
			    "library)", room->limit, room->open, FD_RESERVE);
		herr(h, "incumbent pid %ld refused the takeover: %s: %s%s",
		    (long)h->predecessor, f.code, f.err, hint);
		break;
	case MSG_UNEXPECTED:
		herr(h, "incumbent pid %ld sent \"%s\" where \"%s\" was due",
		    (long)h->predecessor, f.err, what);
		break;
	case MSG_BAD:
		herr(h, "bad %s from incumbent pid %ld: %s", what,
		    (long)h->predecessor, f.err);
		break;
	default:
		herr(h, "incumbent pid %ld %s while we waited for %s",
		    (long)h->predecessor, f.err, what);
	}
	return NULL;
}

/* Row i of a column: its value there, or the column's one value. */
static json_t *
cell(json_t *const cols[], enum msg_column k, size_t i)
{
	return json_is_array(cols[k]) ? json_array_get(cols[k], i) : cols[k];
}

static const char *
cell_string(json_t *const cols[], enum msg_column k, size_t i)
{
	return json_string_value(cell(cols, k, i));
}

/*
 * Stores one batch in the set with what its entries claim (checked by
 * msg_parse; the spec is the incumbent's: an adopted listener takes
 * ours), for the checker. On failure the rows stored stay in the set
 * and the other fds of the batch are closed.
 */
static int
receive_batch(struct handoff *h, struct adopt_set *o, struct checker *k,
    size_t want)
{
	struct hlistener	*l;
	json_t			*msg, *list, *cols[MSG_NCOLUMNS];
	int			 fds[WIRE_MAX_FDS];
	size_t			 nfds, i, n;

	if ((msg = recv_msg(h, "fds", fds, &nfds, NULL)) == NULL)
		return -1;
	list = json_object_get(msg, "listeners");
	for (i = 0; i < MSG_NCOLUMNS; i++)
		cols[i] = json_object_get(list, msg_column(i));
	n = json_array_size(cols[MSG_COL_NAME]);
	if (json_integer_value(json_object_get(msg, "batch")) !=
	    (json_int_t)want) {
		herr(h, "batch %lld arrived where batch %zu was due",
		    (long long)json_integer_value(json_object_get(msg,
		    "batch")), want);
		goto bad;
	}
	if (n != nfds || nfds == 0 || o->n + nfds > o->count) {
		herr(h, "batch %zu: %zu entries with %zu fds (%zu of %zu "
		    "received before)", want, n, nfds, o->n, o->count);
		goto bad;
	}
	for (i = 0; i < nfds; i++) {
		l = &o->l[o->n];
		l->name = check_claim(k, o->n,
		    cell_string(cols, MSG_COL_NAME, i),
		    cell_string(cols, MSG_COL_FAMILY, i),
		    cell_string(cols, MSG_COL_SOCKTYPE, i),
		    cell_string(cols, MSG_COL_ADDRESS, i),
		    json_is_true(cell(cols, MSG_COL_LISTENING, i)));
		if (l->name == NULL) {
			herr(h, "out of memory");
			goto bad;
		}
		l->spec = NULL;
		l->fd = fds[i];
		fds[i] = -1;
		o->n++;
	}
	json_decref(msg);
	return 0;
bad:
	wire_close_fds(fds, nfds);
	json_decref(msg);
	return -1;
}

/*
 * The fds received grow the fd table as they come; once a second thread
 * runs, each growth waits for an RCU grace period (70 ms in all at 10000
 * fds here). Grow it once for them all while this thread is alone: they
 * take the lowest free numbers, so all are below `below` (the open fds
 * plus the count offered, which fd_room found room for).
 */
static void
grow_fd_table(int fd, int below)
{
	int	d;

	if (below > fd && (d = fcntl(fd, F_DUPFD_CLOEXEC, below - 1)) != -1)
		close(d);
}

/*
 * Receives the batches and has every fd checked, by a second thread too
 * when there is more than one batch. On failure what was received stays
 * in the set if every fd of it matched (the incumbent may have died
 * mid-offer); a mismatch drops it all.
 */
static int
receive_batches(struct handoff *h, struct adopt_set *o, size_t batches,
    int open_fds)
{
	struct checker	 k;
	char		 err[HANDOFF_ERR_MAX];
	size_t		 b;
	int		 r = 0;

	if (batches > 1)
		grow_fd_table(h->pred_fd, open_fds + (int)o->count);
	if (check_init(&k, o, batches > 1) == -1)
		return herr(h, "out of memory");
	for (b = 0; b < batches && r == 0; b++) {
		/* Until the next batch is there, help check. */
		while (wire_wait(h->pred_fd, POLLIN, 0) == -1 &&
		    check_some(&k))
			;
		r = receive_batch(h, o, &k, b);
		check_publish(&k, o->n);
		if (check_failed(&k))
			break;
	}
	if (check_finish(&k, err, sizeof(err)) == -1) {
		adopt_free(o);
		return herr(h, "%s", err);
	}
	return r;
}

int
intake_control(struct handoff *h, struct adopt_set *o)
{
	size_t	i;

	for (i = 0; i < o->n; i++) {
		if (o->taken[i] || strcmp(o->l[i].name, CONTROL_NAME) != 0)
			continue;
		if (o->l[i].id.family != AF_UNIX ||
		    o->l[i].id.socktype != SOCK_SEQPACKET ||
		    !o->l[i].id.listening ||
		    strcmp(o->l[i].id.address, h->control_path) != 0)
			return herr(h, "the control socket offered is %s, not "
			    "a listening seqpacket socket at %s",
			    o->l[i].id.address, h->control_path);
		adopt_take(o, i, &h->control, CONTROL_NAME, NULL);
		return h->control.name != NULL ? 0 : herr(h, "out of memory");
	}
	return 1;
}

/* Hello, with the fds we have room for. */
static int
send_hello(struct handoff *h, const struct fd_room *room)
{
	json_t	*hello;

	hello = msg_new("hello");
	if (hello == NULL || json_object_set_new(hello, "pid",
	    json_integer(getpid())) == -1 || json_object_set_new(hello, "tag",
	    json_string(h->tag)) == -1 || json_object_set_new(hello,
	    "max_fds", json_integer(room->headroom)) == -1 ||
	    json_object_set_new(hello, "extensions",
	    hextensions(h)) == -1) {
		json_decref(hello);
		return herr(h, "out of memory");
	}
	if (msg_send(h->pred_fd, hello, SEND_WAIT_MS) == -1)
		return herr(h, "cannot send hello to pid %ld: %s",
		    (long)h->predecessor, strerror(errno));
	return 0;
}

/* Hello, the offer and its batches: o holds what came, checked. */
int
intake_offer(struct handoff *h, struct adopt_set *o)
{
	struct fd_room	 room;
	json_t		*offer;
	json_int_t	 count, batches;
	int		 fds[WIRE_MAX_FDS];
	size_t		 nfds;

	fd_room(&room);
	if (send_hello(h, &room) == -1)
		return -1;
	if ((offer = recv_msg(h, "offer", fds, &nfds, &room)) == NULL)
		return -1;
	wire_close_fds(fds, nfds);
	/* SO_PEERCRED names whoever bound the shared control socket, which
	 * may be an older generation: the offer says who is answering. */
	h->predecessor = (pid_t)json_integer_value(json_object_get(offer,
	    "pid"));
	count = json_integer_value(json_object_get(offer, "count"));
	batches = json_integer_value(json_object_get(offer, "batches"));
	h->generation = (unsigned)json_integer_value(json_object_get(offer,
	    "generation")) + 1;
	h->pred_chain = msg_has_extension(offer, CHAIN_EXTENSION);
	h->pred_flows = msg_has_extension(offer, FLOW_EXTENSION);
	h->pred_conns = msg_has_extension(offer, CONN_EXTENSION);
	if (json_is_object(json_object_get(offer, "state")))
		h->pred_state = json_dumps(json_object_get(offer, "state"),
		    JSON_COMPACT);
	hlog(h, "taking over from pid %ld (gen %u, tag \"%s\"): %lld "
	    "listener%s in %lld batch%s", (long)h->predecessor,
	    h->generation - 1, json_string_value(json_object_get(offer, "tag")),
	    (long long)count, count == 1 ? "" : "s", (long long)batches,
	    batches == 1 ? "" : "es");
	json_decref(offer);
	if (nfds > 0)
		return herr(h, "the offer carried %zu fds; they belong in "
		    "batches", nfds);
	if (count > room.headroom)
		return herr(h, "%lld listeners offered but only %d fds free "
		    "(RLIMIT_NOFILE %lld, %d open, %d kept for the library); "
		    "raise RLIMIT_NOFILE", (long long)count, room.headroom,
		    room.limit, room.open, FD_RESERVE);
	if (batches > count || (count > 0 && batches == 0))
		return herr(h, "offer of %lld listeners in %lld batches",
		    (long long)count, (long long)batches);
	if (adopt_init(h, o, (size_t)count) == -1)
		return -1;
	if (receive_batches(h, o, (size_t)batches, room.open) == -1)
		return -1;
	if (o->n != o->count)
		return herr(h, "%zu listeners received of the %zu offered",
		    o->n, o->count);
	return adopt_index(h, o);
}
