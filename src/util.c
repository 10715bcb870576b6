/*
 * util: the helpers every module of libhandoff uses: logging with pid
 * and generation, the error text, events to the application, packed
 * strings, and the listener slot. A leaf: of the other modules it calls
 * only listener.c, for what a listener is and its names.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handoff-int.h"
#include "message.h"

/* One line through the handle's log callback: "IDENT[PID] gen N: text",
 * or "IDENT[PID]: text" before it has a generation. */
void
hvlog(struct handoff *h, const char *fmt, va_list ap)
{
	char	text[1024], line[1200];

	vsnprintf(text, sizeof(text), fmt, ap);
	if (h->generation > 0)
		snprintf(line, sizeof(line), "%s[%ld] gen %u: %s", h->ident,
		    (long)getpid(), h->generation, text);
	else
		snprintf(line, sizeof(line), "%s[%ld]: %s", h->ident,
		    (long)getpid(), text);
	h->log_cb(line, h->log_arg);
}

void
hlog(struct handoff *h, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	hvlog(h, fmt, ap);
	va_end(ap);
}

/* Records the reason of a failure; always returns -1. */
int
herr(struct handoff *h, const char *fmt, ...)
{
	va_list	ap;
	int	save_errno = errno;

	va_start(ap, fmt);
	vsnprintf(h->err, sizeof(h->err), fmt, ap);
	va_end(ap);
	errno = save_errno;
	return -1;
}

/* Appends to buf, never past len; output is cut, not overrun. */
static void
append(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (*off + 1 >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off = *off + (size_t)n < len ? *off + (size_t)n : len - 1;
}

/*
 * Formats the adopted/added/retired lists of a ready message for a log
 * line: "adopted 2 (http,api); added 0; retired 1 (old)", at most a few
 * names each so that 10000 listeners still make one readable line.
 */
void
hchanges(const json_t *ready, char *buf, size_t len)
{
	static const char *const keys[] = { "adopted", "added", "retired" };
	const json_t	*list, *v, *count;
	size_t		 off = 0, k, i, n, shown;

	buf[0] = '\0';
	for (k = 0; k < 3; k++) {
		list = json_object_get(ready, keys[k]);
		/* A ready message may name fewer than it counts. */
		count = json_object_get(json_object_get(ready, "counts"),
		    keys[k]);
		n = json_array_size(list);
		if (json_is_integer(count) && json_integer_value(count) >= 0 &&
		    (size_t)json_integer_value(count) > n)
			n = (size_t)json_integer_value(count);
		append(buf, len, &off, "%s%s %zu", k > 0 ? "; " : "",
		    keys[k], n);
		shown = 0;
		json_array_foreach(list, i, v) {
			if (i == 8)
				break;
			append(buf, len, &off, "%s%s", i == 0 ? " (" : ",",
			    json_string_value(v));
			shown++;
		}
		if (shown < n)
			append(buf, len, &off, "%s+%zu more", shown == 0 ?
			    " (" : ",", n - shown);
		if (n > 0)
			append(buf, len, &off, ")");
	}
}

void
hevent(struct handoff *h, enum handoff_event ev)
{
	if (h->event_cb != NULL)
		h->event_cb(h, ev, h->event_arg);
}

/* The extensions we speak, for hello, offer and ready: connections only
 * if the application takes them. A new reference, or NULL. */
json_t *
hextensions(const struct handoff *h)
{
	return h->conn_cb != NULL ? json_pack("[s,s,s]", CHAIN_EXTENSION,
	    FLOW_EXTENSION, CONN_EXTENSION) : json_pack("[s,s]",
	    CHAIN_EXTENSION, FLOW_EXTENSION);
}

/* The application's connections, and those it gave that are not settled
 * yet (ours until the successor takes them). */
unsigned
hcount(struct handoff *h)
{
	return (h->count_cb != NULL ? h->count_cb(h->count_arg) : 0) +
	    (unsigned)h->nlive;
}

/*
 * Copies n strings into one allocation (a NULL stays NULL): 10000
 * listeners are 10000 mallocs, not two or four times that. Returns the
 * allocation, to be freed, which is out[0] if in[0] is a string.
 */
char *
hpack(const char *const in[], char *out[], size_t n)
{
	size_t	 i, len = 0, k;
	char	*p;

	for (i = 0; i < n; i++)
		len += in[i] != NULL ? strlen(in[i]) + 1 : 0;
	if ((p = malloc(len > 0 ? len : 1)) == NULL)
		return NULL;
	for (i = 0, len = 0; i < n; i++) {
		out[i] = NULL;
		if (in[i] == NULL)
			continue;
		k = strlen(in[i]) + 1;
		out[i] = memcpy(p + len, in[i], k);
		len += k;
	}
	return p;
}

/* A name and its spec (or NULL) packed: returns the name; *specp points
 * into it. */
char *
hnames(const char *name, const char *spec, char **specp)
{
	const char	*in[2] = { name, spec };
	char		*out[2], *p;

	p = hpack(in, out, 2);
	*specp = p != NULL ? out[1] : NULL;
	return p;
}

void
hlistener_close(struct hlistener *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	free(l->name);
	l->name = l->spec = NULL;
}

/*
 * Listeners are non-blocking whoever made them (systemd passes blocking
 * ones); the flag is shared with any other holder of the socket, which
 * expects it too.
 */
int
hnonblock(int fd)
{
	int	fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1)
		return -1;
	return (fl & O_NONBLOCK) || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != -1 ?
	    0 : -1;
}

/*
 * Takes fd, and makes it non-blocking: on failure it is closed. id, if
 * given, is what listener_identify already said of fd.
 */
int
hlistener_set(struct hlistener *l, const char *name, const char *spec,
    int fd, const struct listener_id *id)
{
	memset(l, 0, sizeof(*l));
	if (hnonblock(fd) == -1) {
		close(fd);
		l->fd = -1;
		return -1;
	}
	l->fd = fd;
	l->name = hnames(name, spec, &l->spec);
	if (id != NULL)
		l->id = *id;
	if (l->name == NULL ||
	    (id == NULL && listener_identify(fd, &l->id) == -1)) {
		hlistener_close(l);
		return -1;
	}
	return 0;
}

/* Our euid, root, and what handoff_allow_uid added. */
int
huid_allowed(const struct handoff *h, uid_t uid)
{
	size_t	i;

	for (i = 0; i < h->nallow; i++)
		if (h->allow[i] == uid)
			return 1;
	return 0;
}

/* The row of listener l in an offer or a report, as the kernel says it
 * is: strings that l owns or that are constant. */
void
hlistener_cells(const struct hlistener *l, const char *row[MSG_NCOLUMNS])
{
	row[MSG_COL_NAME] = l->name;
	row[MSG_COL_KIND] = listener_kind_name(listener_kind_of(&l->id));
	row[MSG_COL_FAMILY] = listener_family_name(l->id.family);
	row[MSG_COL_SOCKTYPE] = listener_socktype_name(l->id.socktype);
	row[MSG_COL_ADDRESS] = l->id.address;
	row[MSG_COL_LISTENING] = l->id.listening ? "true" : "false";
	row[MSG_COL_SPEC] = l->spec;
}

/* What an offer or a report lists: the control socket, the listeners,
 * then the other fds kept. */
size_t
hentries(const struct handoff *h)
{
	return 1 + h->nlisteners + h->nkept;
}

struct hlistener *
hentry(struct handoff *h, size_t i)
{
	if (i == 0)
		return &h->control;
	if (i <= h->nlisteners)
		return &h->listeners[i - 1];
	return &h->kept[i - 1 - h->nlisteners];
}

/* Closes every listener and kept fd; the arrays stay. */
void
hlisteners_close(struct handoff *h)
{
	while (h->nlisteners > 0)
		hlistener_close(&h->listeners[--h->nlisteners]);
	while (h->nkept > 0)
		hlistener_close(&h->kept[--h->nkept]);
}
