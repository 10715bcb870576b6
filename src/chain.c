/*
 * chain: the line of succession. A generation that hands over in its
 * turn, or stops, first tells its draining predecessor (superseded),
 * which then never rolls back; the word travels down the chain, and each
 * older generation counts itself against the newest one's cap on
 * draining generations. A successor that vanishes without that word may
 * have crashed, or may have been taken over at the very moment it died:
 * the incumbent holds, and rolls back only if no newer generation
 * answers on the control socket.
 */
#include "config.h"

#include <sys/time.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "handoff-int.h"
#include "message.h"
#include "wire.h"

/* How often a hold looks again at the lock, or at a full backlog. */
#define CHECK_POLL_MS	100
/* Takeover notices unread by the predecessor before we hold back more:
 * a few dozen, far from what fills its socket. */
#define CHAIN_UNREAD_MAX	16384

static void	check_step(evutil_socket_t, short, void *);

static void
chain_retry(evutil_socket_t fd, short what, void *arg)
{
	chain_flush(arg, 0);
}

/*
 * Sends what is pending for our predecessor, the takeover notice first.
 * Takeover notices wait while CHAIN_UNREAD_MAX bytes we sent are unread,
 * the latest replacing the one before: a predecessor that is stopped or
 * stuck gets the latest word when it reads again, and its socket never
 * fills with them, so there is always room for superseded, the word
 * that matters. Waits at most wait_ms for room (0 from the event loop:
 * a timer tries again). 0 once nothing is pending.
 */
int
chain_flush(struct handoff *h, int wait_ms)
{
	static const struct timeval again = { 0, CHECK_POLL_MS * 1000 };
	json_t	*m;
	int	 k;

	for (k = 0; k < CHAIN_NOUT; k++) {
		if ((m = h->chain_out[k]) == NULL)
			continue;
		if (h->pred_fd < 0 || !h->pred_chain) {
			json_decref(m);
			h->chain_out[k] = NULL;
			continue;
		}
		if ((k == CHAIN_TAKEOVER && wait_ms == 0 &&
		    wire_unread(h->pred_fd) > CHAIN_UNREAD_MAX) ||
		    msg_send(h->pred_fd, json_incref(m), wait_ms) == -1) {
			if (h->chain_ev == NULL)
				h->chain_ev = evtimer_new(h->base, chain_retry,
				    h);
			if (h->chain_ev != NULL && wait_ms == 0)
				evtimer_add(h->chain_ev, &again);
			return -1;
		}
		json_decref(m);
		h->chain_out[k] = NULL;
	}
	return 0;
}

/* Replaces what was pending of that kind, and sends when it can. */
static void
chain_post(struct handoff *h, int kind, json_t *m)
{
	if (m == NULL) {
		hlog(h, "cannot tell predecessor pid %ld: out of memory",
		    (long)h->predecessor);
		return;
	}
	json_decref(h->chain_out[kind]);
	h->chain_out[kind] = m;
	/* Once superseded, what takes over from us no longer matters. */
	if (kind == CHAIN_SUPERSEDED) {
		json_decref(h->chain_out[CHAIN_TAKEOVER]);
		h->chain_out[CHAIN_TAKEOVER] = NULL;
	}
	chain_flush(h, 0);
}

/*
 * Tells our draining predecessor, if it understands, that it is
 * superseded: pid `by` serves now (0: we are stopping), and `keep`
 * generations, it and older, may go on draining (0: it hammers).
 */
void
chain_tell(struct handoff *h, pid_t by, unsigned keep, unsigned max)
{
	if (h->pred_fd >= 0 && h->pred_chain)
		chain_post(h, CHAIN_SUPERSEDED, msg_superseded(by, keep, max));
	links_tell(h, by, keep, max);
}

/*
 * Our successor `from` handed over to a newer generation, or is
 * stopping: no rollback may come now. The word goes on down the chain.
 * Returns 1 if we are one generation too many and must be hammered.
 */
int
chain_on_superseded(struct handoff *h, pid_t from, const json_t *msg)
{
	json_int_t	by, keep, max;

	by = json_integer_value(json_object_get(msg, "by"));
	keep = json_integer_value(json_object_get(msg, "keep"));
	max = json_integer_value(json_object_get(msg, "max_draining"));
	h->superseded = 1;
	if (by > 0)
		hlog(h, "successor pid %ld handed over to pid %lld: no "
		    "rollback from now on", (long)from, (long long)by);
	else
		hlog(h, "successor pid %ld is stopping: no rollback from now "
		    "on", (long)from);
	/* Handed over, it still takes what we give (or its successor will,
	 * on the link it is handed); stopping, it serves nobody next. */
	if (by == 0)
		conn_keep_unsent(h);
	chain_tell(h, (pid_t)by, keep > 0 ? (unsigned)keep - 1 : 0,
	    (unsigned)max);
	hevent(h, HANDOFF_SUPERSEDED);
	if (keep > 0)
		return 0;
	if (json_object_get(msg, "max_draining") != NULL)
		hlog(h, "hammered: more than %lld older generations would "
		    "drain (--max-draining), and we are the oldest of them",
		    (long long)max);
	else
		hlog(h, "hammered: our successor asked it of the oldest "
		    "generations");
	return 1;
}

/*
 * Tells our draining predecessor that pid `by` is taking over from us
 * (0: that takeover ended before ready). Sent before the offer: once a
 * successor holds our fds it may serve without us, and our predecessor
 * must then not take our death for the end of the line.
 */
void
chain_tell_takeover(struct handoff *h, pid_t by)
{
	json_t	*m;

	if (h->pred_fd < 0 || !h->pred_chain)
		return;
	m = msg_new("takeover");
	if (m != NULL && (json_object_set_new(m, "pid",
	    json_integer(getpid())) == -1 || json_object_set_new(m, "by",
	    json_integer(by)) == -1)) {
		json_decref(m);
		m = NULL;
	}
	chain_post(h, CHAIN_TAKEOVER, m);
}

void
chain_on_takeover(struct handoff *h, pid_t from, const json_t *msg)
{
	h->chain_takeover = (pid_t)json_integer_value(json_object_get(msg,
	    "by"));
	if (h->chain_takeover > 0)
		hlog(h, "successor pid %ld is being taken over by pid %ld",
		    (long)from, (long)h->chain_takeover);
	else
		hlog(h, "successor pid %ld serves on: its takeover ended "
		    "before ready", (long)from);
}

/*
 * Could a generation newer than our vanished successor serve? Only one
 * that was taking over from it: every start goes through the process
 * that serves, and nobody else can bind the control path while we hold
 * it. A successor that speaks the chain said so first.
 */
int
chain_may_be_newer(const struct handoff *h)
{
	return h->chain_takeover > 0;
}

static int
check_before_end(const struct handoff *h)
{
	struct timeval	now;

	gettimeofday(&now, NULL);
	return timercmp(&now, &h->check_end, <);
}

/* Waits ms for fd (-1: a plain timer), then takes the next step. */
static void
check_arm(struct handoff *h, int fd, unsigned ms)
{
	struct timeval	tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_del(h->check_ev);
	event_assign(h->check_ev, h->base, fd, fd >= 0 ? EV_READ : 0,
	    check_step, h);
	event_add(h->check_ev, &tv);
}

static void
check_end(struct handoff *h, int newer)
{
	void	(*done)(struct handoff *, int) = h->check_done;

	chain_check_cancel(h);
	if (newer) {
		h->superseded = 1;
		conn_keep_unsent(h);
	}
	done(h, newer);
}

/* What answered our status request: a report from another process? */
static void
check_answer(struct handoff *h, short what)
{
	struct msg_fail	 f;
	json_t		*msg;
	int		 fds[WIRE_MAX_FDS];
	size_t		 nfds;

	if (what & EV_TIMEOUT) {
		hlog(h, "nobody answered a status request on %s within %u ms: "
		    "no newer generation serves", h->control_path,
		    h->io_timeout);
		check_end(h, 0);
		return;
	}
	/* Fds have no business on a report: closed, the report read. */
	if ((msg = msg_recv(h->check_fd, fds, &nfds, &f)) != NULL)
		wire_close_fds(fds, nfds);
	if (msg == NULL && f.why == MSG_NONE) {
		check_arm(h, h->check_fd, h->io_timeout);
		return;
	}
	if (msg != NULL && strcmp(msg_type(msg), "report") == 0 &&
	    json_integer_value(json_object_get(msg, "pid")) != getpid()) {
		hlog(h, "pid %lld (generation %lld, tag \"%s\") serves on %s: "
		    "no rollback; draining on", (long long)json_integer_value(
		    json_object_get(msg, "pid")), (long long)json_integer_value(
		    json_object_get(msg, "generation")), json_string_value(
		    json_object_get(msg, "tag")), h->control_path);
		json_decref(msg);
		check_end(h, 1);
		return;
	}
	hlog(h, "our status request on %s got %s: no newer generation serves",
	    h->control_path, msg != NULL ? msg_type(msg) : f.why ==
	    MSG_CLOSED ? "no answer" : f.err);
	json_decref(msg);
	check_end(h, 0);
}

/*
 * Did a generation newer than our vanished successor serve? Then it came
 * through the successor, and no rollback may come, even if it has stopped
 * since and nobody answers on the control socket.
 */
static int
check_served(struct handoff *h)
{
	unsigned	gen;
	long		pid;

	if ((gen = control_last_serving(h, &pid)) <= h->generation + 1)
		return 0;
	hlog(h, "pid %ld (generation %u) served after successor pid %ld, as "
	    "%s says: no rollback; draining on", pid, gen,
	    (long)h->check_gone, h->lock_path);
	check_end(h, 1);
	return 1;
}

/*
 * A start under way holds the lock (from before its probe to its ready or
 * released), and may become the newest generation without us: wait for
 * it. Then whoever serves accepts on the control socket, and answers.
 */
static void
check_step(evutil_socket_t fd, short what, void *arg)
{
	struct handoff	*h = arg;
	pid_t		 holder;

	if (h->check_fd >= 0) {
		check_answer(h, what);
		return;
	}
	holder = control_lock_holder(h);
	if (holder > 0 && holder != getpid() && check_before_end(h)) {
		if (holder != h->check_holder)
			hlog(h, "pid %ld holds %s: waiting for its start to end "
			    "before deciding", (long)holder, h->lock_path);
		h->check_holder = holder;
		check_arm(h, -1, CHECK_POLL_MS);
		return;
	}
	if (holder == 0 && check_served(h))
		return;
	if ((h->check_fd = control_connect(h)) == -1) {
		if (errno == EAGAIN && check_before_end(h)) {
			check_arm(h, -1, CHECK_POLL_MS);
			return;
		}
		hlog(h, "cannot ask who serves on %s: %s; rolling back",
		    h->control_path, strerror(errno));
		check_end(h, 0);
		return;
	}
	if (msg_send(h->check_fd, msg_new("status"), 0) == -1) {
		hlog(h, "cannot ask who serves on %s: %s; rolling back",
		    h->control_path, strerror(errno));
		check_end(h, 0);
		return;
	}
	check_arm(h, h->check_fd, h->io_timeout);
}

/*
 * Our successor `gone` vanished while we drained, without a word: hold
 * (the drain clock stopped) and find out whether a newer generation
 * serves. done(h, 1) if one does, done(h, 0) to roll back.
 */
void
chain_check(struct handoff *h, pid_t gone, void (*done)(struct handoff *,
    int))
{
	struct timeval	now, wait;
	unsigned	ms = h->ready_timeout + h->io_timeout;

	if (h->check_ev == NULL &&
	    (h->check_ev = evtimer_new(h->base, check_step, h)) == NULL) {
		hlog(h, "successor pid %ld vanished and we cannot check who "
		    "serves: out of memory; rolling back", (long)gone);
		done(h, 0);
		return;
	}
	/* Gone before the drain began (released could not be sent): the
	 * whole drain is still ahead. */
	h->hold_left = timerisset(&h->drain_end) ?
	    drain_remaining(h) : h->drain_timeout;
	drain_cancel(h);
	h->check_gone = gone;
	h->check_holder = 0;
	h->check_done = done;
	wait.tv_sec = ms / 1000;
	wait.tv_usec = (ms % 1000) * 1000;
	gettimeofday(&now, NULL);
	timeradd(&now, &wait, &h->check_end);
	hlog(h, "successor pid %ld vanished while we drained, without saying "
	    "it was superseded: holding until we know whether a newer "
	    "generation serves on %s", (long)gone, h->control_path);
	hevent(h, HANDOFF_HOLD);
	if (h->check_done != NULL)	/* the callback may have stopped us */
		check_step(-1, EV_TIMEOUT, h);
}

int
chain_checking(const struct handoff *h)
{
	return h->check_done != NULL;
}

void
chain_check_cancel(struct handoff *h)
{
	if (h->check_ev != NULL)
		event_del(h->check_ev);
	if (h->check_fd >= 0)
		close(h->check_fd);
	h->check_fd = -1;
	h->check_done = NULL;
}

/*
 * Our predecessor has exited: the older generations it said were still
 * draining may still be, but nobody tells us of them any more. Keep them,
 * with the time they were heard of, for chain_drainers.
 */
void
chain_predecessor_left(struct handoff *h)
{
	json_t	*older;

	older = json_object_get(h->pred_progress, "draining");
	json_decref(h->older);
	h->older = json_is_array(older) ? json_incref(older) : NULL;
	gettimeofday(&h->older_at, NULL);
	json_decref(h->pred_progress);
	h->pred_progress = NULL;
}

/*
 * An older generation as last heard of, elapsed ms ago: a copy with its
 * time left now, or NULL if it has exited or passed its deadline.
 */
static json_t *
older_entry(const json_t *e, long long elapsed)
{
	json_int_t	 pid, left;
	json_t		*c;

	pid = json_integer_value(json_object_get(e, "pid"));
	left = json_integer_value(json_object_get(e, "remaining_ms")) -
	    elapsed;
	if (pid <= 0 || left <= 0 || (kill((pid_t)pid, 0) == -1 &&
	    errno == ESRCH))
		return NULL;
	if ((c = json_deep_copy(e)) == NULL ||
	    json_object_set_new(c, "remaining_ms", json_integer(left)) == -1) {
		json_decref(c);
		return NULL;
	}
	return c;
}

/* Appends those of `older` still there, heard of at `at`. */
static int
append_older(json_t *list, const json_t *older, const struct timeval *at)
{
	struct timeval	 now, d;
	json_t		*e, *v;
	size_t		 i;

	gettimeofday(&now, NULL);
	timersub(&now, at, &d);
	json_array_foreach(older, i, v)
		if ((e = older_entry(v, (long long)d.tv_sec * 1000 +
		    d.tv_usec / 1000)) != NULL &&
		    json_array_append_new(list, e) == -1)
			return -1;
	return 0;
}

/*
 * The generations older than us still draining: our predecessor and
 * those it last said were older; once it has exited, those older ones
 * that are still alive and before their deadline (their connections as
 * last heard). A new reference, or NULL.
 */
json_t *
chain_drainers(struct handoff *h)
{
	static const char *const keys[] = { "pid", "generation", "tag",
	    "connections", "remaining_ms" };
	json_t		*list, *p = h->pred_progress, *e, *v;
	size_t		 i;

	if ((list = json_array()) == NULL)
		return NULL;
	if (p != NULL) {
		/* generation and tag are optional: older peers omit them. */
		if (json_array_append_new(list, e = json_object()) == -1)
			goto bad;
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if ((v = json_object_get(p, keys[i])) != NULL &&
			    json_object_set(e, keys[i], v) == -1)
				goto bad;
		/* Each link of the chain adds up to a second of age. */
		if (append_older(list, json_object_get(p, "draining"),
		    &h->pred_at) == -1)
			goto bad;
	} else if (h->older != NULL &&
	    append_older(list, h->older, &h->older_at) == -1)
		goto bad;
	while (json_array_size(list) > MSG_DRAINERS_MAX)
		json_array_remove(list, MSG_DRAINERS_MAX);
	return list;
bad:
	json_decref(list);
	return NULL;
}
