/*
 * test_check: every received fd against its claims, with and without the
 * helper thread: ids filled in and fds made non-blocking when all match,
 * the exact text of the first mismatch otherwise. Loopback sockets only.
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "unit.h"

#define ROWS	1000

/* A blocking listening socket on an ephemeral loopback port. */
static int
listening_socket(struct listener_id *id)
{
	struct listener_spec	ls;
	char			err[256];
	int			fd, fl;

	if (listener_spec_parse("tcp://127.0.0.1:0", &ls, err,
	    sizeof(err)) == -1 ||
	    (fd = listener_bind(&ls, "tcp://127.0.0.1:0", err,
	    sizeof(err))) == -1)
		return -1;
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	listener_identify(fd, id);
	return fd;
}

/* Waits, bounded, until the helper alone has taken every row published
 * or found a mismatch; 0 on time. */
static int
helper_caught_up(struct checker *k)
{
	struct timespec	ms = { 0, 1000000 };
	int		i, caught = 0;

	for (i = 0; i < 10000 && !caught; i++) {
		pthread_mutex_lock(&k->lock);
		caught = k->next == k->published || k->failed;
		pthread_mutex_unlock(&k->lock);
		if (!caught)
			nanosleep(&ms, NULL);
	}
	return caught ? 0 : -1;
}

/*
 * ROWS listeners claimed as they are, row bad (if below ROWS) claimed at
 * another address; published in batches of 252 as a successor would.
 * helping: the caller checks too between batches; if not, the helper
 * must do it all, and publishing stops at a mismatch it found.
 */
static void
run(int threaded, int helping, size_t bad)
{
	struct adopt_set	 o;
	struct checker		 k;
	struct listener_id	 id;
	char			 name[16], err[HANDOFF_ERR_MAX], want[256];
	size_t			 i;
	int			 fds = unit_count_fds(), r, nonblocking = 0;
	int			 ids = 0;

	memset(&o, 0, sizeof(o));
	o.count = ROWS;
	o.l = calloc(ROWS, sizeof(*o.l));
	CHECK(o.l != NULL);
	CHECK(check_init(&k, &o, threaded) == 0);
	CHECK_INT(k.helped, threaded);
	for (i = 0; i < ROWS && !check_failed(&k); i++) {
		o.l[i].fd = listening_socket(&id);
		snprintf(name, sizeof(name), "r%zu", i);
		o.l[i].name = check_claim(&k, i, name, "inet", "stream",
		    i == bad ? "127.0.0.1:1" : id.address, 1);
		if (i == bad)
			snprintf(want, sizeof(want), "listener \"%s\": the fd "
			    "is inet stream %s listening but the offer says "
			    "inet stream 127.0.0.1:1 listening", name,
			    id.address);
		CHECK(o.l[i].fd >= 0 && o.l[i].name != NULL);
		o.n++;
		if (o.n % 252 != 0 && o.n != ROWS)
			continue;
		check_publish(&k, o.n);
		if (helping)
			while (check_some(&k))
				;
		else
			CHECK(helper_caught_up(&k) == 0);
	}
	/* Without help, the rows left to finish are none: the helper
	 * checked them all, or stopped at the mismatch. */
	if (!helping)
		CHECK(k.next == k.published || k.failed);
	r = check_finish(&k, err, sizeof(err));
	for (i = 0; i < o.n; i++) {
		nonblocking += (fcntl(o.l[i].fd, F_GETFL) & O_NONBLOCK) != 0;
		ids += o.l[i].id.family == AF_INET && o.l[i].id.listening;
	}
	if (bad >= ROWS) {
		CHECK_INT(r, 0);
		CHECK_INT(nonblocking, ROWS);
		CHECK_INT(ids, ROWS);
		CHECK_STR(o.l[ROWS - 1].name, "r999");
	} else {
		CHECK_INT(r, -1);
		CHECK_STR(err, want);
		/* Publishing stopped in the batch after the bad row's. */
		if (!helping)
			CHECK(o.n <= (bad / 252 + 2) * 252);
	}
	for (i = 0; i < o.n; i++)
		hlistener_close(&o.l[i]);
	free(o.l);
	CHECK_INT(unit_count_fds(), fds);
}

static void
test_not_a_socket(void)
{
	struct adopt_set	 o;
	struct checker		 k;
	char			 err[HANDOFF_ERR_MAX];
	int			 p[2];

	memset(&o, 0, sizeof(o));
	CHECK(pipe(p) == 0);
	o.count = 1;
	o.l = calloc(1, sizeof(*o.l));
	CHECK(check_init(&k, &o, 0) == 0);
	o.l[0].fd = p[0];
	o.l[0].name = check_claim(&k, 0, "p", "unix", "stream", "/x", 1);
	o.n = 1;
	check_publish(&k, 1);
	CHECK_INT(check_finish(&k, err, sizeof(err)), -1);
	/* A pipe is what it is: not the socket the offer says. */
	CHECK(strncmp(err, "listener \"p\": the fd is other other pipe:[",
	    42) == 0);
	CHECK(strstr(err, "] but the offer says unix stream /x listening") !=
	    NULL);
	hlistener_close(&o.l[0]);
	free(o.l);
	close(p[1]);
}

int
main(void)
{
	unit_raise_nofile();
	run(0, 1, ROWS);
	run(1, 1, ROWS);
	run(1, 0, ROWS);
	run(0, 1, 700);
	run(1, 1, 700);
	run(1, 0, 300);
	test_not_a_socket();
	return unit_done("test_check");
}
