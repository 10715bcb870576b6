/*
 * incumbent: the state machine of the server side of the control socket.
 * Answers status and stop, and offers the listeners to a successor
 * (hello), then waits for ready, stops accepting, answers released and
 * drains. If the successor goes away first, nothing changes; if it goes
 * away while we drain, we accept again (rollback), or hold while a newer
 * generation may serve (chain.c). The connections themselves are peer.c's.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handoff-int.h"
#include "message.h"
#include "systemd.h"

/* How often a draining incumbent tells its successor how it goes. */
#define PROGRESS_MS	1000
/* Control connections at once; more are closed as they come. */
#define MAX_PEERS	256

static void	dispatch(struct peer *, json_t *);
static void	gone(struct peer *, int);

/* Takes the connections queued on the control socket. */
static void
incumbent_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct handoff	*h = arg;
	struct ucred	 cred;
	int		 fd, last;

	while ((fd = control_accept(h, lfd, &cred, &last)) >= 0) {
		if (h->npeers >= MAX_PEERS) {
			if (!h->peers_full)
				hlog(h, "control: %d connections open; closing "
				    "new ones until some finish (the first from "
				    "pid %ld uid %ld)", MAX_PEERS,
				    (long)cred.pid, (long)cred.uid);
			h->peers_full = 1;
			close(fd);
		} else {
			h->peers_full = 0;
			peer_new(h, fd, &cred, dispatch, gone);
		}
		if (last)
			return;
	}
}

/* Starts, or resumes, accepting successors and requests. */
int
incumbent_listen(struct handoff *h)
{
	return control_listen(h, incumbent_accept);
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

static json_t *
build_released(struct handoff *h, struct peer *p)
{
	json_t	*rel;

	rel = msg_new("released");
	if (rel == NULL || json_object_set_new(rel, "pid",
	    json_integer(getpid())) == -1 || report_connections(h, rel) == -1 ||
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
	    report_connections(h, m) == -1 ||
	    json_object_set_new(m, "remaining_ms",
	    json_integer(drain_remaining(h))) == -1 ||
	    json_object_set_new(m, "draining", chain_drainers(h)) == -1) {
		json_decref(m);
		return;
	}
	/* Progress is best effort: a full socket drops it, not the peer. */
	if (peer_idle(p) && peer_queue(p, m) == 0)
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
	char		 changes[HCHANGES_MAX];

	if (!peer_offer_sent(p)) {
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
	h->succ_chain = msg_has_extension(msg, CHAIN_EXTENSION);
	h->succ_flows = msg_has_extension(msg, FLOW_EXTENSION);
	h->succ_conns = msg_has_extension(msg, CONN_EXTENSION);
	p->state = PEER_RELEASED;
	h->hstate = HS_DRAINING;
	/* Stop accepting first, so released is true when it arrives; what
	 * is retiring is known before the application hears it. */
	control_pause(h);
	retire_refuse(h, msg);
	hevent(h, HANDOFF_PAUSE);
	pass_main_pid(h, p->pid);
	hlog(h, "released to pid %ld", (long)p->pid);
	if (peer_queue(p, build_released(h, p)) == -1) {
		hlog(h, "cannot build released for pid %ld", (long)p->pid);
		peer_free(p, 1);
		return;
	}
	if (peer_flush(p) == -1)
		return;		/* gone: rolled back */
	/* The clock first, so that the first progress says the time left;
	 * the drain itself once retiring listeners are shut. */
	drain_clock(h, h->drain_timeout);
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

static unsigned long long
monotonic_usec(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL;
}

static void
on_hello(struct peer *p, json_t *msg)
{
	struct handoff	*h = p->h;
	json_int_t	 max_fds;
	size_t		 count = hentries(h);
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
	/* What is left of it for the connections we may give. */
	h->conn_room = (size_t)(max_fds - (json_int_t)count);
	h->conn_sent = 0;
	if (offer_plan(h) == -1) {
		peer_refuse(p, MSG_E_INTERNAL, "cannot plan the offer: out of "
		    "memory");
		return;
	}
	nb = (int)h->nbatches;
	if (peer_queue(p, offer_build(h, count, nb)) == -1) {
		peer_refuse(p, MSG_E_INTERNAL, "cannot build the offer");
		return;
	}
	/* Before any of it is sent; successor_gone says when it ends. */
	chain_tell_takeover(h, p->pid);
	/* Should we exit before it is ready, it takes our links. */
	h->succ_chain = msg_has_extension(msg, CHAIN_EXTENSION);
	h->succ_flows = msg_has_extension(msg, FLOW_EXTENSION);
	h->succ_conns = msg_has_extension(msg, CONN_EXTENSION);
	p->next_batch = 0;
	p->state = PEER_OFFERED;
	p->writable = conn_writable;
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
	    json_integer(getpid())) == -1 || report_connections(h, m) == -1 ||
	    json_object_set_new(m, "deadline_ms",
	    json_integer(h->drain_timeout)) == -1)) {
		json_decref(m);
		m = NULL;
	}
	if (peer_queue(p, m) == 0 && peer_flush(p) == -1)
		return;
	incumbent_stop(h);
}

static void
dispatch(struct peer *p, json_t *msg)
{
	const char	*type = msg_type(msg);
	char		 text[256];

	switch (p->state) {
	case PEER_NEW:
		evtimer_del(p->timer);
		if (strcmp(type, "hello") == 0)
			on_hello(p, msg);
		else if (strcmp(type, "status") == 0) {
			p->state = PEER_CLOSING;
			peer_send(p, report_build(p->h));
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
		else if (strcmp(type, "datagram") == 0)
			flow_receive(p->h, HANDOFF_SUCCESSOR, p->pid, msg);
		else if (strcmp(type, "conns_taken") == 0)
			conn_on_taken(p->h, p->pid, msg);
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
 * The end of a hold (chain.c): drain on if a newer generation serves,
 * else roll back, as if the successor had never been.
 */
static void
rollback(struct handoff *h, int newer)
{
	pid_t	pid = h->check_gone;

	if (newer) {
		retire_then_drain(h, h->hold_left);
		return;
	}
	drain_cancel(h);
	h->hstate = HS_SERVING;
	retire_cancel(h);
	retire_listen_again(h);
	incumbent_listen(h);
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
	conn_all_back(h, "our successor went away");
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

/* Is a successor between hello and ready with the whole offer sent? */
int
incumbent_offer_sent(const struct handoff *h)
{
	const struct peer	*p = h->successor;

	return p != NULL && p->state == PEER_OFFERED &&
	    peer_offer_sent(p);
}

/* A stop while a successor is between hello and ready: refuse it. */
static void
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

/* handoff_stop: a graceful stop, with no successor. */
int
incumbent_stop(struct handoff *h)
{
	if (chain_checking(h)) {
		/* A stop during a hold: no rollback, drain what is left. */
		chain_check_cancel(h);
		h->superseded = 1;
		hlog(h, "stopping: no rollback");
		retire_then_drain(h, h->hold_left);
		hevent(h, HANDOFF_SUPERSEDED);	/* as for any stop */
		return 0;
	}
	switch (h->hstate) {
	case HS_STOPPING:
		return 0;
	case HS_DRAINING:
		/* Told to stop: it must not serve again, whatever becomes of
		 * the successor. */
		if (!h->superseded) {
			h->superseded = 1;
			hlog(h, "stop requested while draining: no rollback "
			    "from now on; draining on, %u ms left",
			    drain_remaining(h));
			conn_keep_unsent(h);
			hevent(h, HANDOFF_SUPERSEDED);
		}
		return 0;
	case HS_NEW:
	case HS_STARTED:
		return herr(h, "handoff_stop before handoff_ready");
	default:
		break;
	}
	incumbent_abort_takeover(h, "this server is stopping");
	h->hstate = HS_STOPPING;
	/* Nobody else accepts on the control socket now: we go on answering
	 * (status says stopping, hello and stop get busy) rather than leave
	 * connections in its backlog to be reset when we exit. */
	hlog(h, "stopping");
	if (h->main_pid)
		hnotify(h, "STOPPING=1\nSTATUS=stopping, draining");
	/* Our predecessor, if it still drains, must not take our exit for
	 * a crash and roll back; a stop adds no generation to the drainers,
	 * so it hammers none (but with a cap of 0). */
	chain_tell(h, 0, h->max_draining, h->max_draining);
	hevent(h, HANDOFF_PAUSE);
	retire_then_drain(h, h->drain_timeout);
	/* No successor, so no rollback: say so to an application that
	 * would linger for one. */
	if (h->hstate == HS_STOPPING)
		hevent(h, HANDOFF_SUPERSEDED);
	return 0;
}

/* A peer's end: if it was our successor, a failed takeover or a hold. */
static void
gone(struct peer *p, int notify)
{
	struct handoff	*h = p->h;

	if (h->successor != p)
		return;
	h->successor = NULL;
	if (notify)
		successor_gone(h, p->pid);
}
