/*
 * adopt: the listeners asked for, matched against fds already held.
 */
#include "config.h"

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "adopt.h"
#include "handoff-int.h"

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
	dst->name = strdup(name);
	dst->spec = spec != NULL ? strdup(spec) : NULL;
	o->l[i].fd = -1;
	o->taken[i] = 1;
}

static int
cmp_name(const void *a, const void *b, void *arg)
{
	const struct hlistener	*l = arg;

	return strcmp(l[*(const size_t *)a].name, l[*(const size_t *)b].name);
}

/* Sorts the offer by name once, so matching stays fast at 10000, and
 * finds names offered twice. */
int
adopt_index(struct handoff *h, struct adopt_set *o)
{
	size_t	i;

	if ((o->byname = calloc(o->n + 1, sizeof(*o->byname))) == NULL)
		return herr(h, "out of memory");
	for (i = 0; i < o->n; i++)
		o->byname[i] = i;
	qsort_r(o->byname, o->n, sizeof(*o->byname), cmp_name, o->l);
	for (i = 1; i < o->n; i++)
		if (strcmp(o->l[o->byname[i - 1]].name,
		    o->l[o->byname[i]].name) == 0)
			return herr(h, "listener \"%s\" offered twice",
			    o->l[o->byname[i]].name);
	return 0;
}

static ssize_t
find_by_name(struct adopt_set *o, const struct request *r)
{
	size_t	lo = 0, hi = o->n, mid, i;
	int	c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		i = o->byname[mid];
		if ((c = strcmp(r->name, o->l[i].name)) == 0)
			return !o->taken[i] && listener_matches(&r->ls,
			    &o->l[i].id) ? (ssize_t)i : -1;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
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

static int
note(json_t *changes, const char *key, const char *name)
{
	return json_array_append_new(json_object_get(changes, key),
	    json_string(name));
}

/*
 * Adopt what matches by name and address (or by address alone), bind the
 * rest, retire what nobody asked for. On failure what was adopted or bound
 * so far stays in h->listeners (h->nlisteners of them) for the caller to
 * close; the set keeps, and frees, the rest.
 */
int
adopt_match(struct handoff *h, struct adopt_set *o)
{
	struct request	*r;
	ssize_t		 j;
	size_t		 i;
	int		 fd;

	h->changes = json_pack("{s:[], s:[], s:[]}", "adopted", "added",
	    "retired");
	h->listeners = calloc(h->nrequests + 1, sizeof(*h->listeners));
	if (h->changes == NULL || h->listeners == NULL)
		return herr(h, "out of memory");
	for (i = 0; i < h->nrequests; i++) {
		r = &h->requests[i];
		if ((j = find_by_name(o, r)) == -1)
			j = find_by_address(o, r);
		if (j >= 0) {
			adopt_take(o, (size_t)j, &h->listeners[i], r->name,
			    r->spec);
			h->nlisteners++;
			if (h->listeners[i].name == NULL)
				return herr(h, "out of memory");
			note(h->changes, "adopted", r->name);
			continue;
		}
		fd = listener_bind(&r->ls, r->spec, h->err, sizeof(h->err));
		if (fd == -1)
			return -1;
		if (hlistener_set(&h->listeners[i], r->name, r->spec,
		    fd, NULL) == -1)
			return herr(h, "%s: cannot identify the bound socket",
			    r->spec);
		h->nlisteners++;
		note(h->changes, "added", r->name);
	}
	for (i = 0; i < o->n; i++)
		if (!o->taken[i] && strcmp(o->l[i].name, CONTROL_NAME) != 0)
			note(h->changes, "retired", o->l[i].name);
	return 0;
}

