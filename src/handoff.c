/*
 * handoff: the public API. Settings, the listener table, start, ready,
 * stop, drain deadline, and logging with pid and generation.
 */
#include "config.h"

#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adopt.h"
#include "handoff-int.h"
#include "message.h"
#include "systemd.h"
#include "wire.h"

#define DEFAULT_READY_TIMEOUT	30000
#define DEFAULT_DRAIN_TIMEOUT	30000
#define DEFAULT_IO_TIMEOUT	5000
#define DEFAULT_MAX_DRAINING	4
/* How long an exit waits for a predecessor to read its last word. */
#define EXIT_TELL_MS		1000
/* The offer's other fields take well under 4 KiB. */
#define STATE_MAX		(WIRE_MAX_MSG - 4096)

static void
log_stderr(const char *line, void *arg)
{
	fprintf(stderr, "%s\n", line);
}

struct handoff *
handoff_new(struct event_base *base, const char *control_path)
{
	struct handoff	*h;
	size_t		 len;

	if (base == NULL || control_path == NULL ||
	    (len = strlen(control_path)) == 0 || len > CONTROL_PATH_MAX) {
		errno = EINVAL;
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->base = base;
	h->lock_fd = -1;
	h->pred_fd = -1;
	h->check_fd = -1;
	h->control.fd = -1;
	h->spare_fd = -1;
	h->ready_timeout = DEFAULT_READY_TIMEOUT;
	h->drain_timeout = DEFAULT_DRAIN_TIMEOUT;
	h->io_timeout = DEFAULT_IO_TIMEOUT;
	h->max_draining = DEFAULT_MAX_DRAINING;
	h->log_cb = log_stderr;
	h->allow[h->nallow++] = geteuid();
	if (geteuid() != 0)
		h->allow[h->nallow++] = 0;
	LIST_INIT(&h->peers);
	h->control_path = strdup(control_path);
	h->ident = strdup("handoff");
	h->tag = strdup("");
	if (h->control_path == NULL || h->ident == NULL || h->tag == NULL ||
	    asprintf(&h->lock_path, "%s.lock", control_path) == -1) {
		h->lock_path = NULL;
		handoff_free(h);
		return NULL;
	}
	return h;
}

void
handoff_free(struct handoff *h)
{
	size_t	i;

	if (h == NULL)
		return;
	/* Before our successor's connection closes with the others. */
	if (h->successor != NULL && (h->hstate == HS_DRAINING ||
	    incumbent_offer_sent(h)))
		links_pass(h, h->successor->fd);
	peer_free_all(h);
	conn_free(h);
	chain_check_cancel(h);
	if (h->check_ev != NULL)
		event_free(h->check_ev);
	/* The word our predecessor waits for, before our exit closes the
	 * connection it would otherwise take for a crash. */
	if (chain_flush(h, EXIT_TELL_MS) == -1)
		hlog(h, "predecessor pid %ld did not take our last word within "
		    "%d ms: it may roll back when we exit", (long)h->predecessor,
		    EXIT_TELL_MS);
	for (i = 0; i < CHAIN_NOUT; i++)
		json_decref(h->chain_out[i]);
	links_close(h);
	if (h->chain_ev != NULL)
		event_free(h->chain_ev);
	if (h->control_ev != NULL)
		event_free(h->control_ev);
	if (h->drain_ev != NULL)
		event_free(h->drain_ev);
	if (h->retire_ev != NULL)
		event_free(h->retire_ev);
	if (h->retry_ev != NULL)
		event_free(h->retry_ev);
	if (h->progress_ev != NULL)
		event_free(h->progress_ev);
	offer_free(h);
	json_decref(h->pred_progress);
	json_decref(h->older);
	if (h->pred_ev != NULL)
		event_free(h->pred_ev);
	if (h->pred_fd >= 0)
		close(h->pred_fd);
	hlisteners_close(h);
	hlistener_close(&h->control);
	if (h->spare_fd >= 0)
		close(h->spare_fd);
	for (i = 0; i < h->nrequests; i++)
		free(h->requests[i].name);
	control_unlock(h);
	free(h->listeners);
	free(h->kept);
	free(h->requests);
	json_decref(h->state);
	json_decref(h->changes);
	free(h->pred_state);
	free(h->control_path);
	free(h->lock_path);
	free(h->ident);
	free(h->tag);
	free(h);
}

const char *
handoff_strerror(const struct handoff *h)
{
	return h->err[0] != '\0' ? h->err : "no error";
}

/* Text that goes into messages must be UTF-8, or no message is built. */
static int
replace_string(struct handoff *h, const char *what, char **dst,
    const char *src, size_t max)
{
	json_t	*j;
	char	*s;

	if (src == NULL)
		return herr(h, "%s: missing", what);
	if (strlen(src) > max)
		return herr(h, "%s longer than %zu bytes", what, max);
	if ((j = json_string(src)) == NULL)
		return herr(h, "%s is not valid UTF-8", what);
	json_decref(j);
	if ((s = strdup(src)) == NULL)
		return herr(h, "out of memory");
	free(*dst);
	*dst = s;
	return 0;
}

int
handoff_set_ident(struct handoff *h, const char *ident)
{
	return replace_string(h, "ident", &h->ident, ident, MSG_NAME_MAX);
}

int
handoff_set_tag(struct handoff *h, const char *tag)
{
	return replace_string(h, "tag", &h->tag, tag, MSG_NAME_MAX * 4);
}

void
handoff_set_ready_timeout(struct handoff *h, unsigned ms)
{
	h->ready_timeout = ms;
}

void
handoff_set_drain_timeout(struct handoff *h, unsigned ms)
{
	h->drain_timeout = ms;
}

void
handoff_set_io_timeout(struct handoff *h, unsigned ms)
{
	h->io_timeout = ms > 0 ? ms : DEFAULT_IO_TIMEOUT;
}

void
handoff_set_max_draining(struct handoff *h, unsigned n)
{
	/* It travels as a protocol integer. */
	h->max_draining = n < INT32_MAX ? n : INT32_MAX;
}

int
handoff_allow_uid(struct handoff *h, uid_t uid)
{
	if (h->nallow == HANDOFF_MAX_ALLOW)
		return herr(h, "at most %d allowed uids", HANDOFF_MAX_ALLOW);
	h->allow[h->nallow++] = uid;
	return 0;
}

void
handoff_set_event_cb(struct handoff *h, handoff_event_cb cb, void *arg)
{
	h->event_cb = cb;
	h->event_arg = arg;
}

void
handoff_set_log_cb(struct handoff *h, handoff_log_cb cb, void *arg)
{
	h->log_cb = cb != NULL ? cb : log_stderr;
	h->log_arg = arg;
}

void
handoff_set_count_cb(struct handoff *h, handoff_count_cb cb, void *arg)
{
	h->count_cb = cb;
	h->count_arg = arg;
}

void
handoff_set_serve_retired(struct handoff *h, int on)
{
	h->serve_retired = on != 0;
}

int
handoff_set_state(struct handoff *h, const char *text)
{
	json_error_t	 jerr;
	json_t		*o;
	char		*dump;

	o = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL)
		return herr(h, "state is not valid JSON: %s", jerr.text);
	if (!json_is_object(o)) {
		json_decref(o);
		return herr(h, "state must be a JSON object");
	}
	/* It travels in the offer, which must fit in one message. */
	if ((dump = json_dumps(o, JSON_COMPACT)) == NULL ||
	    strlen(dump) > STATE_MAX) {
		free(dump);
		json_decref(o);
		return herr(h, "state must encode to at most %d bytes",
		    STATE_MAX);
	}
	free(dump);
	json_decref(h->state);
	h->state = o;
	return 0;
}

const char *
handoff_predecessor_state(const struct handoff *h)
{
	return h->pred_state;
}

int
handoff_listen(struct handoff *h, const char *name, const char *spec)
{
	struct request	*r;
	size_t		 cap;

	if (h->hstate != HS_NEW)
		return herr(h, "listeners must be named before handoff_start");
	if (name == NULL || !msg_name_valid(name) || name[0] == '@')
		return herr(h, "listener name \"%s\": use 1 to %d of A-Z a-z "
		    "0-9 _ . : - (not starting with @)", name ? name : "",
		    MSG_NAME_MAX);
	if (spec == NULL || strlen(spec) > MSG_ADDR_MAX)
		return herr(h, "listener \"%s\": spec missing or longer than "
		    "%d bytes", name, MSG_ADDR_MAX);
	/* Names given twice are found once, in handoff_start. */
	if (h->nrequests == h->caprequests) {
		cap = h->caprequests ? h->caprequests * 2 : 16;
		if ((r = reallocarray(h->requests, cap, sizeof(*r))) == NULL)
			return herr(h, "out of memory");
		h->requests = r;
		h->caprequests = cap;
	}
	r = &h->requests[h->nrequests];
	memset(r, 0, sizeof(*r));
	if (listener_spec_parse(spec, &r->ls, h->err, sizeof(h->err)) == -1)
		return -1;
	if ((r->name = hnames(name, spec, &r->spec)) == NULL)
		return herr(h, "out of memory");
	h->nrequests++;
	if (r->ls.naddrs > 1)
		hlog(h, "listener %s: %s resolves to %d addresses; only the "
		    "first, %s, is used (give each address a listener of its "
		    "own to listen on all)", name, spec, r->ls.naddrs,
		    r->ls.address);
	return 0;
}

/*
 * A fresh start: adopt what systemd passed (LISTEN_FDS), bind the rest.
 * On failure nothing is left open.
 */
static int
start_fresh(struct handoff *h)
{
	struct adopt_set	set;
	size_t			i;
	int			n, r;
	char			changes[HCHANGES_MAX];

	if ((n = systemd_listen_fds(h, &set)) == -1)
		return -1;
	if (n == 0 && adopt_init(h, &set, 0) == -1)
		return -1;
	r = adopt_index(h, &set) == -1 ? -1 : adopt_match(h, &set);
	adopt_free(&set);	/* closes what nobody asked for */
	if (r == -1) {
		hlisteners_close(h);
		return -1;
	}
	if (n > 0) {
		hchanges(h->changes, changes, sizeof(changes));
		hlog(h, "socket activation passed %d fd%s: %s", n,
		    n == 1 ? "" : "s", changes);
	}
	for (i = 0; i < h->nlisteners; i++)
		hlog(h, "%s %s=%s", n > 0 ? "listening" : "bound",
		    h->listeners[i].name, h->listeners[i].id.address);
	return 0;
}

static int
cmp_request(const void *a, const void *b)
{
	return strcmp((*(const struct request *const *)a)->name,
	    (*(const struct request *const *)b)->name);
}

static int
cmp_request_spec(const void *a, const void *b)
{
	return listener_spec_cmp(&(*(const struct request *const *)a)->ls,
	    &(*(const struct request *const *)b)->ls);
}

/*
 * Two listeners this one process cannot both hold: said here, rather
 * than as a bind that fails as if another process held the address.
 * sorted[0..n) is in listener_spec_cmp order; port 0 is left out.
 */
static int
find_clash(struct handoff *h, struct request **sorted, size_t n)
{
	struct request	*a, *b;
	size_t		 i, j;

	for (i = 0; i < n; i++)
		for (j = i + 1; j < n && listener_spec_cmp(&sorted[i]->ls,
		    &sorted[j]->ls) == 0; j++) {
			if (!listener_spec_clash(&sorted[i]->ls,
			    &sorted[j]->ls))
				continue;
			/* Named in the order they were asked for. */
			if (sorted[i] < sorted[j]) {
				a = sorted[i];
				b = sorted[j];
			} else {
				a = sorted[j];
				b = sorted[i];
			}
			if (strcmp(a->ls.address, b->ls.address) == 0)
				return herr(h, "listeners \"%s\" and \"%s\" both "
				    "ask for %s; give each an address of its "
				    "own", a->name, b->name, a->ls.address);
			return herr(h, "listeners \"%s\" (%s) and \"%s\" (%s) "
			    "cannot both be bound: a wildcard address takes "
			    "its port on every address", a->name,
			    a->ls.address, b->name, b->ls.address);
		}
	return 0;
}

/*
 * Finds a name given twice, then two listeners that clash, each in one
 * sort; the listeners keep their order.
 */
static int
check_requests(struct handoff *h)
{
	struct request	**sorted;
	size_t		  i, n;
	int		  r = 0;

	if ((sorted = calloc(h->nrequests + 1, sizeof(*sorted))) == NULL)
		return herr(h, "out of memory");
	for (i = 0; i < h->nrequests; i++)
		sorted[i] = &h->requests[i];
	qsort(sorted, h->nrequests, sizeof(*sorted), cmp_request);
	for (i = 1; i < h->nrequests && r == 0; i++)
		if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0)
			r = herr(h, "listener name \"%s\" given twice",
			    sorted[i]->name);
	for (i = n = 0; i < h->nrequests; i++)
		if (!h->requests[i].ls.any_port)
			sorted[n++] = &h->requests[i];
	qsort(sorted, n, sizeof(*sorted), cmp_request_spec);
	if (r == 0)
		r = find_clash(h, sorted, n);
	free(sorted);
	return r;
}

int
handoff_start(struct handoff *h)
{
	int	sock = -1;

	if (h->hstate != HS_NEW)
		return herr(h, h->hstate == HS_FAILED ? "handoff_start failed "
		    "before; make a new handle to try again" :
		    "handoff_start called twice");
	h->hstate = HS_FAILED;	/* until it succeeds */
	if (check_requests(h) == -1 || control_absolute(h) == -1 ||
	    control_check_dir(h) == -1)
		return -1;
	if (control_lock(h) == -1)
		return -1;
	if (control_probe(h, &sock) == -1)
		goto bad;
	if (sock >= 0) {
		if (successor_takeover(h, sock) == -1)
			goto bad;
	} else {
		h->generation = 1;
		if (control_bind(h) == -1)
			goto bad;
		if (start_fresh(h) == -1) {
			/* Ours, made under the lock: leave no stale file. */
			unlink(h->control_path);
			goto bad;
		}
		/* Started by the service manager as its main process. */
		h->main_pid = systemd_applies();
		hlog(h, "started fresh with %zu listener%s, control %s",
		    h->nlisteners, h->nlisteners == 1 ? "" : "s",
		    h->control_path);
	}
	h->hstate = HS_STARTED;
	return 0;
bad:
	hlisteners_close(h);
	free(h->listeners);
	h->listeners = NULL;
	free(h->kept);
	h->kept = NULL;
	h->capkept = 0;
	json_decref(h->changes);
	h->changes = NULL;
	hlistener_close(&h->control);
	control_unlock(h);
	h->generation = 0;
	return -1;
}

size_t
handoff_listener_count(const struct handoff *h)
{
	return h->nlisteners;
}

const char *
handoff_listener_name(const struct handoff *h, size_t i)
{
	return i < h->nlisteners ? h->listeners[i].name : NULL;
}

int
handoff_listener_fd(const struct handoff *h, size_t i)
{
	return i < h->nlisteners ? h->listeners[i].fd : -1;
}

int
handoff_listener_retiring(const struct handoff *h, size_t i)
{
	return i < h->nlisteners && h->listeners[i].retiring;
}

int
handoff_fd(const struct handoff *h, const char *name)
{
	size_t	i;

	for (i = 0; i < h->nlisteners; i++)
		if (strcmp(h->listeners[i].name, name) == 0)
			return h->listeners[i].fd;
	for (i = 0; i < h->nkept; i++)
		if (strcmp(h->kept[i].name, name) == 0)
			return h->kept[i].fd;
	return -1;
}

/*
 * Takes fd, to be offered to successors under name, as the listeners
 * are: the library owns it from now on (closed on failure too).
 */
int
handoff_pass_fd(struct handoff *h, const char *name, int fd)
{
	struct hlistener	 l, *k;
	size_t			 i, cap;

	memset(&l, 0, sizeof(l));
	l.fd = fd;
	if (fd < 0 || name == NULL || !msg_name_valid(name) ||
	    name[0] == '@') {
		if (fd >= 0)
			close(fd);
		return herr(h, "handoff_pass_fd \"%s\": use 1 to %d of A-Z "
		    "a-z 0-9 _ . : - (not starting with @) and an open fd",
		    name ? name : "", MSG_NAME_MAX);
	}
	if (h->hstate == HS_NEW || h->hstate == HS_FAILED ||
	    h->hstate == HS_OFFERING || h->hstate == HS_WAITING) {
		close(fd);
		return herr(h, "handoff_pass_fd \"%s\": %s", name,
		    h->hstate == HS_OFFERING || h->hstate == HS_WAITING ?
		    "a takeover is under way; try again once it is over" :
		    "only after handoff_start");
	}
	for (i = 0; i < h->nlisteners; i++)
		if (strcmp(h->listeners[i].name, name) == 0) {
			close(fd);
			return herr(h, "handoff_pass_fd \"%s\": a listener "
			    "has that name; give the fd a name of its own",
			    name);
		}
	/* One the handle holds already is left alone: taking it would
	 * close it twice. */
	for (i = 0; i < hentries(h); i++)
		if (hentry(h, i)->fd == fd)
			return herr(h, "handoff_pass_fd \"%s\": fd %d is the "
			    "handle's already (%s); pass a dup of it", name, fd,
			    hentry(h, i)->name);
	if (fd == h->spare_fd || fd == h->lock_fd || fd == h->pred_fd)
		return herr(h, "handoff_pass_fd \"%s\": fd %d is the "
		    "library's own", name, fd);
	if (listener_identify(fd, &l.id) == -1 ||
	    (l.name = hnames(name, NULL, &l.spec)) == NULL) {
		close(fd);
		return herr(h, "handoff_pass_fd \"%s\": %s", name,
		    l.name == NULL && errno == ENOMEM ? "out of memory" :
		    "cannot tell what fd it is");
	}
	for (i = 0; i < h->nkept && strcmp(h->kept[i].name, name) != 0; i++)
		;
	if (i == h->nkept && h->nkept == h->capkept) {
		cap = h->capkept ? h->capkept * 2 : 8;
		if ((k = reallocarray(h->kept, cap, sizeof(*k))) == NULL) {
			hlistener_close(&l);
			return herr(h, "out of memory");
		}
		h->kept = k;
		h->capkept = cap;
	}
	if (i < h->nkept)
		hlistener_close(&h->kept[i]);	/* replaced */
	else
		h->nkept++;
	h->kept[i] = l;
	offer_free(h);		/* the next offer says it */
	return 0;
}

int
handoff_ready(struct handoff *h)
{
	if (h->hstate != HS_STARTED)
		return herr(h, "handoff_ready before handoff_start, or twice");
	if (h->predecessor > 0)
		return successor_ready(h);
	if (incumbent_listen(h) == -1)
		return -1;
	control_unlock_serving(h);
	h->hstate = HS_SERVING;
	hlog(h, "ready: serving, tag \"%s\"", h->tag);
	hnotify(h, "READY=1\nSTATUS=serving, generation %u, tag %s",
	    h->generation, h->tag);
	return 0;
}

unsigned
handoff_generation(const struct handoff *h)
{
	return h->generation;
}

pid_t
handoff_predecessor(const struct handoff *h)
{
	return h->predecessor;
}

unsigned
handoff_drain_remaining(const struct handoff *h)
{
	return drain_remaining(h);
}

int
handoff_stop(struct handoff *h)
{
	return incumbent_stop(h);
}

void
handoff_log(struct handoff *h, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	hvlog(h, fmt, ap);
	va_end(ap);
}
