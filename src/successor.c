/*
 * successor: the state machine of the client side of a takeover. Has the
 * offer taken in (intake.c), then adopts, binds or retires listeners by
 * name and address, says ready and waits for released. Until ready is
 * sent, any failure closes everything received and leaves the incumbent
 * serving.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adopt.h"
#include "handoff-int.h"
#include "message.h"
#include "systemd.h"
#include "wire.h"

/* How long a predecessor that closed on us may take to finish exiting. */
#define EXIT_WAIT_MS	1000

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

/* Has the incumbent closed its end? A live one still there is not
 * waited for: only a closed connection may mean it died. */
static int
hung_up(int sock)
{
	struct pollfd	pfd = { .fd = sock, .events = POLLRDHUP };

	return poll(&pfd, 1, 0) == 1 &&
	    (pfd.revents & (POLLHUP | POLLRDHUP)) != 0;
}

/* Takes sock, connected to the incumbent's control socket. */
int
successor_takeover(struct handoff *h, int sock)
{
	struct adopt_set	 o;
	struct ucred	 cred;
	socklen_t	 len = sizeof(cred);
	const char	*code = MSG_E_MISMATCH;
	char		 changes[HCHANGES_MAX];
	int		 r, other;

	memset(&o, 0, sizeof(o));
	h->pred_fd = sock;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		h->predecessor = cred.pid;
	if (intake_offer(h, &o) == -1) {
		/* Before the offer we do not know who answered: SO_PEERCRED
		 * names whoever bound the shared socket. */
		if (o.l == NULL || !hung_up(sock) ||
		    !predecessor_dies(h, EXIT_WAIT_MS))
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
	if ((r = intake_control(h, &o)) == -1)
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
	intake_fd_check(h);
	return 0;
bad:
	if (sock >= 0)
		msg_send(sock, msg_error(code, "%s", h->err), SEND_WAIT_MS);
	adopt_free(&o);
	hlisteners_close(h);
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
	control_unlock_serving(h);
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
	retire_then_drain(h, h->drain_timeout);
}

/* The incumbent is gone or silent while we wait for released. */
static void
wait_failed(struct handoff *h, const char *why)
{
	if (predecessor_dies(h, EXIT_WAIT_MS)) {
		links_take(h);
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
	struct msg_fail	 f;
	int		 fds[WIRE_MAX_FDS];
	size_t		 nfds;
	json_t		*msg;
	const char	*type;
	char		 err[MSG_TEXT_MAX + 64];

	if (what & EV_TIMEOUT) {
		snprintf(err, sizeof(err), "no released within %u ms",
		    h->io_timeout);
		wait_failed(h, err);
		return;
	}
	if ((msg = msg_recv_lossy(fd, fds, &nfds, &f)) == NULL) {
		/* A bad message is logged; a failed receive ends it. */
		/* Only its end ends it: a message we could not take (our fd
		 * table full, say) is logged, and the link stays. */
		if (f.why == MSG_BAD)
			hlog(h, "predecessor pid %ld: %s; ignored",
			    (long)h->predecessor, f.err);
		else if (f.why != MSG_NONE && h->hstate == HS_WAITING)
			wait_failed(h, "it closed the connection");
		else if (f.why != MSG_NONE) {
			predecessor_closed(h, "has exited");
			hevent(h, HANDOFF_PREDECESSOR_GONE);
		}
		return;
	}
	type = msg_type(msg);
	/* Connections whose fds are lost are refused: it serves them. */
	if (f.fds_lost)
		hlog(h, "predecessor pid %ld: \"%s\": %s", (long)h->predecessor,
		    type, MSG_FDS_LOST);
	/* Links to older drainers, handed to us as it exits: ours then. */
	if (nfds > 0 && strcmp(type, "predecessors") == 0)
		links_adopt(h, fds, nfds);
	else if (strcmp(type, "conns") == 0 && h->hstate != HS_WAITING) {
		conn_receive(h, msg, fds, nfds, h->pred_fd, 1);	/* takes the fds */
		nfds = 0;
	}
	wire_close_fds(fds, nfds);
	if (h->hstate == HS_WAITING && strcmp(type, "released") == 0)
		on_released(h, msg);
	else if (strcmp(type, "predecessors") == 0 || (strcmp(type,
	    "conns") == 0 && h->hstate != HS_WAITING))
		;	/* their fds were taken above */
	else if (strcmp(type, "datagram") == 0 && h->hstate != HS_WAITING)
		flow_receive(h, HANDOFF_PREDECESSOR, h->predecessor, msg);

	else if (strcmp(type, "progress") == 0) {
		json_decref(h->pred_progress);
		h->pred_progress = json_incref(msg);
		gettimeofday(&h->pred_at, NULL);
	} else if (strcmp(type, "error") == 0) {
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
		    (long)h->predecessor, type);
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
			bytes += msg_list_item_len(json_string_value(v));
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
	    hextensions(h)) == -1)
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

	/* Watching for released is set up first: a failure after ready
	 * would leave us serving beside a live incumbent, or make it roll
	 * back; before it, the incumbent serves on. */
	if (h->pred_ev == NULL)
		h->pred_ev = event_new(h->base, h->pred_fd,
		    EV_READ | EV_PERSIST, predecessor_read, h);
	if (h->pred_ev == NULL || (ready = build_ready(h)) == NULL)
		return herr(h, "out of memory; pid %ld keeps serving",
		    (long)h->predecessor);
	if (msg_send(h->pred_fd, ready, SEND_WAIT_MS) == -1) {
		save_errno = errno;
		/* Serving beside a live incumbent would be two servers. */
		if (!predecessor_dead(h))
			return herr(h, "cannot send ready to pid %ld: %s; it "
			    "keeps serving", (long)h->predecessor,
			    strerror(save_errno));
		hlog(h, "predecessor pid %ld died before ready: serving",
		    (long)h->predecessor);
		links_take(h);
		event_free(h->pred_ev);
		h->pred_ev = NULL;
		close(h->pred_fd);
		h->pred_fd = -1;
		become_incumbent(h);
		told_we_serve(h);
		return 0;
	}
	hlog(h, "ready: serving, tag \"%s\"; waiting for pid %ld to release",
	    h->tag, (long)h->predecessor);
	h->hstate = HS_WAITING;
	tv.tv_sec = h->io_timeout / 1000;
	tv.tv_usec = (h->io_timeout % 1000) * 1000;
	/* event_add only fails for an event that is not set up. */
	event_add(h->pred_ev, &tv);
	return 0;
}
