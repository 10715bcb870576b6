/*
 * test_adopt: matching the listeners asked for against an offer, by name
 * through the index, by address when renamed, and what ready will say.
 * Binds on ephemeral loopback ports.
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "adopt.h"
#include "handoff-int.h"
#include "unit.h"

#define MANY	3000

static struct event_base	*base;

static struct handoff *
new_handle(void)
{
	return handoff_new(base, "/nonexistent/ctl.sock");
}

/* Binds spec as an incumbent would have and puts it in the offer. */
static int
offer(struct handoff *h, struct adopt_set *o, const char *name,
    const char *spec)
{
	struct listener_spec	ls;
	char			err[256];
	int			fd;

	if (listener_spec_parse(spec, &ls, err, sizeof(err)) == -1 ||
	    (fd = listener_bind(&ls, spec, err, sizeof(err))) == -1) {
		fprintf(stderr, "%s: %s\n", spec, err);
		return -1;
	}
	if (hlistener_set(&o->l[o->n], name, NULL, fd, NULL) == -1)
		return -1;
	o->n++;
	(void)h;
	return 0;
}

static json_int_t
count_of(struct handoff *h, const char *key)
{
	return json_integer_value(json_object_get(json_object_get(h->changes,
	    "counts"), key));
}

static void
test_offered_twice(void)
{
	struct handoff		*h = new_handle();
	struct adopt_set	 o;
	int			 fds = unit_count_fds();

	CHECK(h != NULL);
	CHECK(adopt_init(h, &o, 3) == 0);
	CHECK(offer(h, &o, "x", "tcp://127.0.0.1:0") == 0);
	CHECK(offer(h, &o, "y", "tcp://127.0.0.1:0") == 0);
	CHECK(offer(h, &o, "x", "tcp://127.0.0.1:0") == 0);
	CHECK(adopt_index(h, &o) == -1);
	CHECK_STR(handoff_strerror(h), "listener \"x\" offered twice");
	adopt_free(&o);
	handoff_free(h);
	CHECK_INT(unit_count_fds(), fds);
}

/* The offer in one order, the requests in the other: every one adopted
 * by name, the very socket offered. */
static void
test_many_by_name(void)
{
	struct handoff		*h = new_handle();
	struct adopt_set	 o;
	json_t			*v;
	char			 name[32];
	size_t			 i, bytes = 0;
	int			 fds = unit_count_fds(), *offered, same = 0;

	offered = calloc(MANY, sizeof(*offered));
	CHECK(h != NULL && offered != NULL);
	CHECK(adopt_init(h, &o, MANY + 1) == 0);
	for (i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "n%zu", i);
		CHECK(offer(h, &o, name, "tcp://127.0.0.1:0") == 0);
		offered[i] = o.l[i].fd;
	}
	CHECK(offer(h, &o, "old", "tcp://127.0.0.1:0") == 0);
	for (i = MANY; i-- > 0;) {
		snprintf(name, sizeof(name), "n%zu", i);
		CHECK(handoff_listen(h, name, "tcp://127.0.0.1:0") == 0);
	}
	CHECK(adopt_index(h, &o) == 0);
	CHECK(adopt_match(h, &o) == 0);
	CHECK_INT(h->nlisteners, MANY);
	for (i = 0; i < h->nlisteners; i++)
		same += h->listeners[i].fd == offered[MANY - 1 - i];
	CHECK_INT(same, MANY);
	CHECK_STR(h->listeners[0].spec, "tcp://127.0.0.1:0");
	CHECK_INT(count_of(h, "adopted"), MANY);
	CHECK_INT(count_of(h, "added"), 0);
	CHECK_INT(count_of(h, "retired"), 1);
	CHECK_STR(json_string_value(json_array_get(json_object_get(h->changes,
	    "retired"), 0)), "old");
	/* Named as far as ready can carry them, in the order asked. */
	json_array_foreach(json_object_get(h->changes, "adopted"), i, v)
		bytes += json_string_length(v) + 3;
	CHECK(bytes <= READY_NAMES_BYTES && bytes > READY_NAMES_BYTES - 16);
	CHECK_STR(json_string_value(json_array_get(json_object_get(h->changes,
	    "adopted"), 0)), "n2999");
	adopt_free(&o);
	handoff_free(h);
	free(offered);
	CHECK_INT(unit_count_fds(), fds);
}

/* A renamed listener at the same address is adopted; a new one bound. */
static void
test_renamed_and_added(void)
{
	struct handoff		*h = new_handle();
	struct adopt_set	 o;
	char			 spec[128];
	int			 fds = unit_count_fds(), fd;

	CHECK(h != NULL);
	CHECK(adopt_init(h, &o, 1) == 0);
	CHECK(offer(h, &o, "orig", "tcp://127.0.0.1:0") == 0);
	fd = o.l[0].fd;
	snprintf(spec, sizeof(spec), "tcp://%s", o.l[0].id.address);
	CHECK(handoff_listen(h, "renamed", spec) == 0);
	CHECK(handoff_listen(h, "fresh", "tcp://127.0.0.1:0") == 0);
	CHECK(adopt_index(h, &o) == 0);
	CHECK(adopt_match(h, &o) == 0);
	CHECK_INT(h->nlisteners, 2);
	CHECK_INT(h->listeners[0].fd, fd);
	CHECK_STR(h->listeners[0].name, "renamed");
	CHECK_STR(h->listeners[0].spec, spec);
	CHECK(h->listeners[1].fd >= 0 && h->listeners[1].fd != fd);
	CHECK_INT(count_of(h, "adopted"), 1);
	CHECK_INT(count_of(h, "added"), 1);
	CHECK_INT(count_of(h, "retired"), 0);
	adopt_free(&o);
	handoff_free(h);
	CHECK_INT(unit_count_fds(), fds);
}

int
main(void)
{
	unit_raise_nofile();
	if ((base = event_base_new()) == NULL)
		return 1;
	test_offered_twice();
	test_many_by_name();
	test_renamed_and_added();
	event_base_free(base);
	return unit_done("test_adopt");
}
