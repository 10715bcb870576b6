/*
 * fdkeeper: a server with no listener but fds of other kinds that carry
 * its state across takeovers (tests/integration/pass-fd.sh): a memfd
 * holding a counter each generation increments, a pipe each generation
 * reads its predecessor's line from and writes its own to, and an
 * eventfd each generation adds 1 to. Prints one line when it serves:
 * "TAG gen G: counter=N pipe=LINE eventfd=V", and exits 0 when drained.
 *
 * usage: fdkeeper CONTROL TAG
 */
#include "config.h"

#include <sys/eventfd.h>
#include <sys/mman.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "handoff.h"

struct keeper {
	struct event_base	*base;
	struct handoff		*h;
	int			 code;
};

static void
on_event(struct handoff *h, enum handoff_event ev, void *arg)
{
	struct keeper	*k = arg;

	if (ev == HANDOFF_DRAIN || ev == HANDOFF_HAMMER)
		event_base_loopexit(k->base, NULL);	/* nothing to drain */
	if (ev == HANDOFF_ABORT)
		k->code = 1;
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	struct keeper	*k = arg;

	if (handoff_stop(k->h) == -1)
		event_base_loopexit(k->base, NULL);
}

/* The fd passed as name, or one made by make and passed now; -1. */
static int
kept(struct handoff *h, const char *name, int made)
{
	int	fd;

	if ((fd = handoff_fd(h, name)) >= 0) {
		if (made >= 0)
			close(made);
		return fd;
	}
	if (made < 0 || handoff_pass_fd(h, name, made) == -1)
		return -1;
	return handoff_fd(h, name);
}

int
main(int argc, char *argv[])
{
	struct keeper	 k = { NULL, NULL, 0 };
	struct event	*term = NULL;
	uint64_t	 counter = 0, ev = 0;
	char		 line[64] = "";
	ssize_t		 n;
	int		 mfd, pfd[2] = { -1, -1 }, efd, r = -1, w = -1, fresh;

	if (argc != 3) {
		fprintf(stderr, "usage: fdkeeper CONTROL TAG\n");
		return 2;
	}
	if ((k.base = event_base_new()) == NULL ||
	    (k.h = handoff_new(k.base, argv[1])) == NULL)
		return 1;
	handoff_set_ident(k.h, "fdkeeper");
	handoff_set_tag(k.h, argv[2]);
	handoff_set_event_cb(k.h, on_event, &k);
	handoff_set_drain_timeout(k.h, 10000);
	if (handoff_listen(k.h, "counter", "fd:") == -1 ||
	    handoff_listen(k.h, "pipe-r", "fd:") == -1 ||
	    handoff_listen(k.h, "pipe-w", "fd:") == -1 ||
	    handoff_listen(k.h, "events", "fd:") == -1 ||
	    handoff_start(k.h) == -1) {
		fprintf(stderr, "fdkeeper: %s\n", handoff_strerror(k.h));
		return 1;
	}
	fresh = handoff_fd(k.h, "counter") < 0;
	if (fresh && pipe2(pfd, O_CLOEXEC | O_NONBLOCK) == -1)
		return 1;
	mfd = kept(k.h, "counter", fresh ? memfd_create("counter",
	    MFD_CLOEXEC) : -1);
	r = kept(k.h, "pipe-r", pfd[0]);
	w = kept(k.h, "pipe-w", pfd[1]);
	efd = kept(k.h, "events", fresh ? eventfd(0, EFD_CLOEXEC |
	    EFD_NONBLOCK) : -1);
	if (mfd < 0 || r < 0 || w < 0 || efd < 0) {
		fprintf(stderr, "fdkeeper: %s\n", handoff_strerror(k.h));
		return 1;
	}
	/* The state: ours from here, our successor's after ready. */
	if (pread(mfd, &counter, sizeof(counter), 0) != sizeof(counter))
		counter = 0;
	counter++;
	if (pwrite(mfd, &counter, sizeof(counter), 0) != sizeof(counter))
		return 1;
	if ((n = read(r, line, sizeof(line) - 1)) > 0)
		line[n - (line[n - 1] == '\n')] = '\0';
	if (dprintf(w, "%s\n", argv[2]) < 0)
		return 1;
	if (read(efd, &ev, sizeof(ev)) != sizeof(ev))
		ev = 0;
	if (write(efd, &(uint64_t){ 1 }, sizeof(uint64_t)) == -1)
		return 1;
	if (handoff_ready(k.h) == -1) {
		fprintf(stderr, "fdkeeper: %s\n", handoff_strerror(k.h));
		return 1;
	}
	printf("%s gen %u: counter=%llu pipe=%s eventfd=%llu\n", argv[2],
	    handoff_generation(k.h), (unsigned long long)counter,
	    line[0] != '\0' ? line : "-", (unsigned long long)ev);
	fflush(stdout);
	term = evsignal_new(k.base, SIGTERM, on_term, &k);
	if (term == NULL || event_add(term, NULL) == -1)
		return 1;
	event_base_dispatch(k.base);
	event_free(term);
	handoff_free(k.h);
	event_base_free(k.base);
	return k.code;
}
