/*
 * adopt: the listeners asked for, matched against fds already held.
 */
#include "config.h"

#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adopt.h"
#include "handoff-int.h"
#include "message.h"

int
adopt_init(struct handoff *h, struct adopt_set *o, size_t count)
{
	memset(o, 0, sizeof(*o));
	o->count = count;
	o->l = calloc(count + 1, sizeof(*o->l));
	o->taken = calloc(count + 1, sizeof(*o->taken));
	if (o->l == NULL || o->taken == NULL) {
		adopt_free(o);
		return herr(h, "out of memory");
	}
	return 0;
}

void
adopt_free(struct adopt_set *o)
{
	size_t	i;

	for (i = 0; i < o->n; i++)
		hlistener_close(&o->l[i]);
	free(o->l);
	free(o->taken);
	free(o->byname);
	memset(o, 0, sizeof(*o));
}

/* Moves offered listener i's fd into dst; the offer keeps its name. */
void
adopt_take(struct adopt_set *o, size_t i, struct hlistener *dst,
    const char *name, const char *spec)
{
	memset(dst, 0, sizeof(*dst));
	dst->fd = o->l[i].fd;
	dst->id = o->l[i].id;
	dst->name = hnames(name, spec, &dst->spec);
	o->l[i].fd = -1;
	o->taken[i] = 1;
}

/* FNV-1a: names are short and come from an allowed uid. */
static size_t
name_hash(const char *s)
{
	uint32_t	v = 2166136261u;

	while (*s != '\0')
		v = (v ^ (unsigned char)*s++) * 16777619u;
	return v;
}

/* The slot of name in the index: its entry's, or the empty one ending
 * its probe sequence. */
static size_t
name_slot(const struct adopt_set *o, const char *name)
{
	size_t	k = name_hash(name) & o->mask;

	while (o->byname[k] != 0 &&
	    strcmp(o->l[o->byname[k] - 1].name, name) != 0)
		k = (k + 1) & o->mask;
	return k;
}

/* Indexes the offer by name once, so matching 10000 listeners is 10000
 * lookups, and finds names offered twice. */
int
adopt_index(struct handoff *h, struct adopt_set *o)
{
	size_t	i, k, size = 16;

	while (size < 2 * o->n)
		size *= 2;
	if ((o->byname = calloc(size, sizeof(*o->byname))) == NULL)
		return herr(h, "out of memory");
	o->mask = size - 1;
	for (i = 0; i < o->n; i++) {
		k = name_slot(o, o->l[i].name);
		if (o->byname[k] != 0)
			return herr(h, "listener \"%s\" offered twice",
			    o->l[i].name);
		o->byname[k] = i + 1;
	}
	return 0;
}

static ssize_t
find_by_name(struct adopt_set *o, const struct request *r)
{
	size_t	i = o->byname[name_slot(o, r->name)];

	if (i == 0 || o->taken[i - 1] || !listener_matches(&r->ls,
	    &o->l[i - 1].id))
		return -1;
	return (ssize_t)(i - 1);
}

/* A listener renamed but at the same address is still adopted; port 0
 * names no address, so it only ever matches by name. */
static ssize_t
find_by_address(struct adopt_set *o, const struct request *r)
{
	size_t	i;

	if (r->ls.any_port)
		return -1;
	for (i = 0; i < o->n; i++) {
		if (o->taken[i] || strcmp(o->l[i].name, CONTROL_NAME) == 0)
			continue;
		if (listener_matches(&r->ls, &o->l[i].id))
			return (ssize_t)i;
	}
	return -1;
}

enum { ADOPTED, ADDED, RETIRED };

/*
 * Counts a change and names it: 0, or -1 out of memory. Adopted and
 * added names stop at what ready can carry; retired ones are all kept,
 * since ready names them first (the incumbent shuts what it names).
 */
static int
note(json_t *changes, size_t counts[], size_t *bytes, int k,
    const char *name)
{
	static const char *const keys[] = { "adopted", "added", "retired" };

	counts[k]++;
	if (k != RETIRED && (*bytes += msg_list_item_len(name)) >
	    READY_NAMES_BYTES)
		return 0;
	return json_array_append_new(json_object_get(changes, keys[k]),
	    json_string(name));
}

/*
 * Adopt what matches by name and address (or by address alone), bind the
 * rest, retire what nobody asked for; an fd: request takes the offered fd
 * of its name into h->kept, or nothing. On failure what was adopted or
 * bound so far stays in h->listeners and h->kept for the caller to close;
 * the set keeps, and frees, the rest.
 */
int
adopt_match(struct handoff *h, struct adopt_set *o)
{
	struct request		*r;
	struct hlistener	*l;
	ssize_t			 j;
	size_t			 i, counts[3] = { 0, 0, 0 }, bytes = 0;
	int			 fd;

	h->changes = json_pack("{s:[], s:[], s:[]}", "adopted", "added",
	    "retired");
	h->listeners = calloc(h->nrequests + 1, sizeof(*h->listeners));
	h->kept = calloc(h->nrequests + 1, sizeof(*h->kept));
	h->capkept = h->nrequests + 1;
	if (h->changes == NULL || h->listeners == NULL || h->kept == NULL)
		return herr(h, "out of memory");
	for (i = 0; i < h->nrequests; i++) {
		r = &h->requests[i];
		if ((j = find_by_name(o, r)) == -1 &&
		    r->ls.kind != LISTENER_FD)
			j = find_by_address(o, r);
		l = r->ls.kind == LISTENER_FD ? &h->kept[h->nkept] :
		    &h->listeners[h->nlisteners];
		if (j >= 0) {
			adopt_take(o, (size_t)j, l, r->name, r->spec);
			if (r->ls.kind == LISTENER_FD)
				h->nkept++;
			else
				h->nlisteners++;
			if (l->name == NULL || note(h->changes,
			    counts, &bytes, ADOPTED, r->name) == -1)
				return herr(h, "out of memory");
			continue;
		}
		if (r->ls.kind == LISTENER_FD)
			continue;	/* not offered: the application's call */
		fd = listener_bind(&r->ls, r->spec, h->err, sizeof(h->err));
		if (fd == -1)
			return -1;
		if (hlistener_set(l, r->name, r->spec, fd, NULL) == -1)
			return herr(h, "%s: cannot identify the bound socket",
			    r->spec);
		l->bound_here = 1;	/* no datagram of it goes back */
		h->nlisteners++;
		if (note(h->changes, counts, &bytes, ADDED, r->name) == -1)
			return herr(h, "out of memory");
	}
	for (i = 0; i < o->n; i++)
		if (!o->taken[i] && strcmp(o->l[i].name, CONTROL_NAME) != 0 &&
		    note(h->changes, counts, &bytes, RETIRED,
		    o->l[i].name) == -1)
			return herr(h, "out of memory");
	if (json_object_set_new(h->changes, "counts", json_pack("{s:I, s:I, "
	    "s:I}", "adopted", (json_int_t)counts[ADOPTED], "added",
	    (json_int_t)counts[ADDED], "retired", (json_int_t)counts[RETIRED]))
	    == -1)
		return herr(h, "out of memory");
	return 0;
}

