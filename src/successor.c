/*
 * successor: the client side of a takeover. Says hello, receives the
 * offer and its batches of fds, checks every fd against its entry, then
 * adopts, binds or retires listeners by name and address. Until ready is
 * sent, any failure closes everything received and leaves the incumbent
 * serving.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adopt.h"
#include "check.h"
#include "handoff-int.h"
#include "message.h"
#include "systemd.h"
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
/* How long a predecessor that closed on us may take to finish exiting. */
#define EXIT_WAIT_MS	1000
/* How long a full socket may hold up a message of ours. */
#define SEND_WAIT_MS	5000

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
static void
fd_room_check(struct handoff *h)
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
 * Receives one message within the I/O timeout. Returns it, with *nfds fds
 * in fds (the caller's), or NULL with the reason recorded.
 */
static json_t *
recv_msg(struct handoff *h, const char *what, int *fds, size_t *nfds,
    const struct fd_room *room)
{
	static char	 buf[WIRE_MAX_MSG];
	json_t		*msg;
	const char	*code;
	ssize_t		 n;
	char		 err[512], hint[160];

	*nfds = 0;
	if (wire_wait(h->pred_fd, POLLIN, (int)h->io_timeout) == -1) {
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
		return NULL;
	}
	n = wire_recv(h->pred_fd, buf, sizeof(buf), fds, WIRE_MAX_FDS, nfds);
	if (n <= 0) {
		herr(h, "incumbent pid %ld %s while we waited for %s",
		    (long)h->predecessor, n == 0 ? "closed the connection" :
		    strerror(errno), what);
		return NULL;
	}
	if ((msg = msg_parse(buf, (size_t)n, err, sizeof(err))) == NULL) {
		wire_close_fds(fds, *nfds);
		*nfds = 0;
		herr(h, "bad %s from incumbent pid %ld: %s", what,
		    (long)h->predecessor, err);
		return NULL;
	}
	if (strcmp(msg_type(msg), "error") == 0) {
		code = json_string_value(json_object_get(msg, "code"));
		hint[0] = '\0';
		/* Its count of our fds came from us: say how we made it. */
		if (room != NULL && strcmp(code, MSG_E_TOOMANYFDS) == 0)
			snprintf(hint, sizeof(hint), " (here RLIMIT_NOFILE is "
			    "%lld, %d fds are open and %d are kept for the "
			    "library)", room->limit, room->open, FD_RESERVE);
		herr(h, "incumbent pid %ld refused the takeover: %s: %s%s",
		    (long)h->predecessor, code, json_string_value(
		    json_object_get(msg, "message")), hint);
		goto bad;
	}
	if (strcmp(msg_type(msg), what) != 0) {
		herr(h, "incumbent pid %ld sent \"%s\" where \"%s\" was due",
		    (long)h->predecessor, msg_type(msg), what);
		goto bad;
	}
	return msg;
bad:
	wire_close_fds(fds, *nfds);
	*nfds = 0;
	json_decref(msg);
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

static int
adopt_control(struct handoff *h, struct adopt_set *o)
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

/* Does the offer's optional "extensions" array name ext? */
static int
offers_extension(const json_t *offer, const char *ext)
{
	json_t	*v;
	size_t	 i;

	json_array_foreach(json_object_get(offer, "extensions"), i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), ext) == 0)
			return 1;
	return 0;
}

static int
receive_offer(struct handoff *h, struct adopt_set *o)
{
	struct fd_room	 room;
	json_t		*hello, *offer;
	json_int_t	 count, batches;
	int		 fds[WIRE_MAX_FDS];
	size_t		 nfds;

	fd_room(&room);
	hello = msg_new("hello");
	if (hello == NULL || json_object_set_new(hello, "pid",
	    json_integer(getpid())) == -1 || json_object_set_new(hello, "tag",
	    json_string(h->tag)) == -1 || json_object_set_new(hello,
	    "max_fds", json_integer(room.headroom)) == -1 ||
	    json_object_set_new(hello, "extensions",
	    json_pack("[s]", CHAIN_EXTENSION)) == -1) {
		json_decref(hello);
		return herr(h, "out of memory");
	}
	if (msg_send(h->pred_fd, hello, SEND_WAIT_MS) == -1)
		return herr(h, "cannot send hello to pid %ld: %s",
		    (long)h->predecessor, strerror(errno));
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
	h->pred_chain = offers_extension(offer, CHAIN_EXTENSION);
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

/* A closed connection alone could be a bug; a missing process is not. */
static int
predecessor_dead(struct handoff *h)
{
	FILE	*f;
	char	 path[64], state = '?';
	int	 n;

	if (h->predecessor <= 0)
		return 0;
	if (kill(h->predecessor, 0) == -1 && errno == ESRCH)
		return 1;
	/* A zombie has closed its fds but not yet been reaped. */
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)h->predecessor);
	if ((f = fopen(path, "re")) == NULL)
		return errno == ENOENT;
	n = fscanf(f, "%*d (%*[^)]) %c", &state);
	fclose(f);
	return n == 1 && (state == 'Z' || state == 'X');
}

/*
 * An exiting process closes its fds before it is a zombie: after its
 * connection closed, give it a moment to be seen gone. A pidfd turns
 * readable when it exits.
 */
static int
predecessor_dies(struct handoff *h, int ms)
{
	struct pollfd	pfd;
	int		fd, r;

	if (predecessor_dead(h))
		return 1;
	fd = (int)syscall(SYS_pidfd_open, h->predecessor, 0);
	if (fd == -1)
		return predecessor_dead(h);
	pfd.fd = fd;
	pfd.events = POLLIN;
	do {
		r = poll(&pfd, 1, ms);
	} while (r == -1 && errno == EINTR);
	close(fd);
	return r == 1 || predecessor_dead(h);
}

/* Takes sock, connected to the incumbent's control socket. */
int
successor_takeover(struct handoff *h, int sock)
{
	struct adopt_set	 o;
	struct ucred	 cred;
	socklen_t	 len = sizeof(cred);
	const char	*code = MSG_E_MISMATCH;
	char		 changes[768];
	size_t		 i;
	int		 r, other;

	memset(&o, 0, sizeof(o));
	h->pred_fd = sock;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		h->predecessor = cred.pid;
	if (receive_offer(h, &o) == -1) {
		/* Before the offer we do not know who answered: SO_PEERCRED
		 * names whoever bound the shared socket. */
		if (o.l == NULL || !predecessor_dies(h, EXIT_WAIT_MS))
			goto bad;
		/* What arrived is ours alone now: start fresh with it. */
		hlog(h, "incumbent pid %ld died during the offer (%s): "
		    "continuing as a fresh start with the %zu listener%s "
		    "received", (long)h->predecessor, h->err, o.n,
		    o.n == 1 ? "" : "s");
		close(sock);
		sock = h->pred_fd = -1;
		h->predecessor = 0;
		free(o.byname);
		o.byname = NULL;
		if (adopt_index(h, &o) == -1)
			goto bad;
	}
	/* Learnt now: it may have exited by the time it releases us. */
	h->pred_same_unit = systemd_same_unit(h->predecessor);
	if ((r = adopt_control(h, &o)) == -1)
		goto bad;
	if (r == 1 && h->predecessor > 0) {
		herr(h, "incumbent pid %ld did not offer its control socket",
		    (long)h->predecessor);
		goto bad;
	}
	/* No control socket received from a dead incumbent: bind one. */
	if (r == 1) {
		if (control_probe(h, &other) == -1)
			goto bad;
		if (other >= 0) {
			close(other);
			herr(h, "another server answers on %s",
			    h->control_path);
			goto bad;
		}
		if (control_bind(h) == -1)
			goto bad;
	}
	code = MSG_E_BIND;
	if (adopt_match(h, &o) == -1)
		goto bad;
	hchanges(h->changes, changes, sizeof(changes));
	if (h->predecessor > 0)
		hlog(h, "took over from pid %ld: %s", (long)h->predecessor,
		    changes);
	else
		hlog(h, "started from a partial offer: %s", changes);
	adopt_free(&o);	/* closes the retired ones */
	fd_room_check(h);
	return 0;
bad:
	if (sock >= 0)
		msg_send(sock, msg_error(code, "%s", h->err), SEND_WAIT_MS);
	adopt_free(&o);
	for (i = 0; i < h->nlisteners; i++)
		hlistener_close(&h->listeners[i]);
	h->nlisteners = 0;
	hlistener_close(&h->control);
	json_decref(h->changes);
	h->changes = NULL;
	free(h->pred_state);
	h->pred_state = NULL;
	if (sock >= 0)
		close(sock);
	h->pred_fd = -1;
	h->predecessor = 0;
	return -1;
}

static void	predecessor_read(evutil_socket_t, short, void *);

static void
predecessor_closed(struct handoff *h, const char *why)
{
	hlog(h, "predecessor pid %ld %s", (long)h->predecessor, why);
	chain_predecessor_left(h);
	event_free(h->pred_ev);
	h->pred_ev = NULL;
	close(h->pred_fd);
	h->pred_fd = -1;
}

/*
 * Our predecessor died while it handed over to us, after it had passed us
 * its links to the older generations still draining: they hear from us
 * that we serve, so that none of them rolls back beside us.
 */
static void
told_we_serve(struct handoff *h)
{
	if (h->nlinks > 0)
		chain_tell(h, getpid(), h->max_draining, h->max_draining);
}

/* Serve the control socket: the incumbent has let go, or is dead. */
static void
become_incumbent(struct handoff *h)
{
	h->hstate = HS_SERVING;
	if (incumbent_listen(h) == -1)
		hlog(h, "%s", h->err);
	control_unlock(h);
}

/*
 * After ready, the incumbent neither released us nor died: it serves on,
 * so we must not. The application hears HANDOFF_PAUSE, HANDOFF_ABORT and
 * then drains as for a stop; handoff_strerror() says why.
 */
static void
successor_abort(struct handoff *h, const char *why)
{
	herr(h, "takeover from pid %ld failed after ready: %s; it keeps "
	    "serving", (long)h->predecessor, why);
	hlog(h, "%s", h->err);
	predecessor_closed(h, "keeps serving");
	control_unlock(h);
	h->hstate = HS_STOPPING;
	hevent(h, HANDOFF_PAUSE);
	hevent(h, HANDOFF_ABORT);
	hdrain_begin(h, h->drain_timeout);
}

/* The incumbent is gone or silent while we wait for released. */
static void
wait_failed(struct handoff *h, const char *why)
{
	if (predecessor_dies(h, EXIT_WAIT_MS)) {
		chain_take_links(h);
		predecessor_closed(h, "died before releasing us: serving");
		become_incumbent(h);
		told_we_serve(h);
	} else
		successor_abort(h, why);
}

static void
on_released(struct handoff *h, json_t *msg)
{
	json_int_t	conns;
	char		what[64];

	/* Serving and unlocked before we say so: whoever reads the log
	 * line may start the next successor at once. */
	become_incumbent(h);
	conns = json_integer_value(json_object_get(msg, "connections"));
	if (json_is_false(json_object_get(msg, "counted")))
		snprintf(what, sizeof(what), "its application's connections "
		    "(not counted)");
	else
		snprintf(what, sizeof(what), "%lld connection%s",
		    (long long)conns, conns == 1 ? "" : "s");
	hlog(h, "released by pid %ld: it drains %s within %lld ms",
	    (long)h->predecessor, what, (long long)json_integer_value(
	    json_object_get(msg, "deadline_ms")));
	/* The manager now follows us, or we are the main pid of a unit of
	 * our own (a template instance). */
	if (json_is_true(json_object_get(msg, "main")) ||
	    (systemd_applies() && !h->pred_same_unit)) {
		h->main_pid = 1;
		hnotify(h, "READY=1\nSTATUS=serving, generation %u, tag %s",
		    h->generation, h->tag);
	}
	/* Keep watching, without a timeout, to log its exit. */
	event_del(h->pred_ev);
	event_assign(h->pred_ev, h->base, h->pred_fd, EV_READ | EV_PERSIST,
	    predecessor_read, h);
	event_add(h->pred_ev, NULL);
}

static void
predecessor_read(evutil_socket_t fd, short what, void *arg)
{
	struct handoff	*h = arg;
	static char	 buf[WIRE_MAX_MSG];
	int		 fds[WIRE_MAX_FDS];
	size_t		 nfds;
	ssize_t		 n;
	json_t		*msg;
	char		 err[512];

	if (what & EV_TIMEOUT) {
		snprintf(err, sizeof(err), "no released within %u ms",
		    h->io_timeout);
		wait_failed(h, err);
		return;
	}
	n = wire_recv(fd, buf, sizeof(buf), fds, WIRE_MAX_FDS, &nfds);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	/* Links to older drainers, handed to us as it exits: ours then. */
	if (n > 0 && nfds > 0 && (msg = msg_parse(buf, (size_t)n, err,
	    sizeof(err))) != NULL) {
		if (strcmp(msg_type(msg), "predecessors") == 0)
			chain_adopt_links(h, fds, nfds);
		json_decref(msg);
	}
	wire_close_fds(fds, nfds);
	if (n == 0 || n == -1) {
		if (h->hstate == HS_WAITING)
			wait_failed(h, "it closed the connection");
		else
			predecessor_closed(h, "has exited");
		return;
	}
	if ((msg = msg_parse(buf, (size_t)n, err, sizeof(err))) == NULL) {
		hlog(h, "predecessor pid %ld: %s", (long)h->predecessor, err);
		return;
	}
	if (h->hstate == HS_WAITING && strcmp(msg_type(msg), "released") ==
	    0)
		on_released(h, msg);
	else if (strcmp(msg_type(msg), "predecessors") == 0)
		;	/* its fds were taken above */
	else if (strcmp(msg_type(msg), "progress") == 0) {
		json_decref(h->pred_progress);
		h->pred_progress = json_incref(msg);
		gettimeofday(&h->pred_at, NULL);
	}
	else if (strcmp(msg_type(msg), "error") == 0) {
		snprintf(err, sizeof(err), "it answered %s: %s",
		    json_string_value(json_object_get(msg, "code")),
		    json_string_value(json_object_get(msg, "message")));
		if (h->hstate == HS_WAITING)
			successor_abort(h, err);
		else
			hlog(h, "predecessor pid %ld: %s", (long)h->predecessor,
			    err);
	} else
		hlog(h, "predecessor pid %ld sent \"%s\": ignored",
		    (long)h->predecessor, msg_type(msg));
	json_decref(msg);
}

/*
 * The ready message: counts, and the names as far as a budget allows,
 * since 10000 names would not fit in one message; the incumbent only logs
 * them.
 */
static json_t *
build_ready(struct handoff *h)
{
	/* Retired first: the incumbent closes those to new connections. */
	static const char *const keys[] = { "retired", "adopted", "added" };
	json_t	*ready, *counts, *list, *all, *v;
	size_t	 k, i, bytes = 0;
	int	 truncated = 0;

	/* adopt_match counted every change and named what fits. */
	counts = json_object_get(h->changes, "counts");
	ready = msg_new("ready");
	if (ready == NULL || json_object_set(ready, "counts", counts) == -1 ||
	    json_object_set_new(ready, "pid", json_integer(getpid())) == -1)
		goto bad;
	for (k = 0; k < 3; k++) {
		all = json_object_get(h->changes, keys[k]);
		if (json_integer_value(json_object_get(counts, keys[k])) !=
		    (json_int_t)json_array_size(all))
			truncated = 1;
		if (json_object_set_new(ready, keys[k], list = json_array()) ==
		    -1)
			goto bad;
		json_array_foreach(all, i, v) {
			bytes += json_string_length(v) + 3;
			if (bytes > READY_NAMES_BYTES) {
				truncated = 1;
				break;
			}
			if (json_array_append(list, v) == -1)
				goto bad;
		}
	}
	if (json_object_set_new(ready, "truncated",
	    json_boolean(truncated)) == -1 || json_object_set_new(ready,
	    "max_draining", json_integer(h->max_draining)) == -1 ||
	    json_object_set_new(ready, "extensions",
	    json_pack("[s]", CHAIN_EXTENSION)) == -1)
		goto bad;
	return ready;
bad:
	json_decref(ready);
	return NULL;
}

int
successor_ready(struct handoff *h)
{
	struct timeval	 tv;
	json_t		*ready;
	int		 save_errno;

	if ((ready = build_ready(h)) == NULL)
		return herr(h, "out of memory");
	if (msg_send(h->pred_fd, ready, SEND_WAIT_MS) == -1) {
		save_errno = errno;
		/* Serving beside a live incumbent would be two servers. */
		if (!predecessor_dead(h))
			return herr(h, "cannot send ready to pid %ld: %s; it "
			    "keeps serving", (long)h->predecessor,
			    strerror(save_errno));
		hlog(h, "predecessor pid %ld died before ready: serving",
		    (long)h->predecessor);
		chain_take_links(h);
		close(h->pred_fd);
		h->pred_fd = -1;
		become_incumbent(h);
		told_we_serve(h);
		return 0;
	}
	hlog(h, "ready: serving, tag \"%s\"; waiting for pid %ld to release",
	    h->tag, (long)h->predecessor);
	h->hstate = HS_WAITING;
	h->pred_ev = event_new(h->base, h->pred_fd, EV_READ | EV_PERSIST,
	    predecessor_read, h);
	tv.tv_sec = h->io_timeout / 1000;
	tv.tv_usec = (h->io_timeout % 1000) * 1000;
	if (h->pred_ev == NULL || event_add(h->pred_ev, &tv) == -1) {
		become_incumbent(h);
		return 0;
	}
	return 0;
}
