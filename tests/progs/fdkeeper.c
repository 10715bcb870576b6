/*
 * fdkeeper: a server with no listener but fds of other kinds that carry
 * its state across takeovers (tests/integration/pass-fd.sh): a memfd
 * holding a counter each generation increments, a pipe each generation
 * reads its predecessor's line from and writes its own to, an eventfd
 * each generation reads the previous counter from and adds its own to, a timerfd set once to a 1234 s interval,
 * and a TCP connection to a backend at 127.0.0.1:PORT that each
 * generation reads the backend's pending line from and writes its tag
 * to. At each turn (when it serves, and again after a rollback) it
 * prints one line: "TAG gen G: counter=N pipe=LINE eventfd=V timer=S
 * backend=LINE" ("TAG resumed gen G: ..." after a rollback), and exits
 * 0 when drained.
 *
 * -w FILE: once the fds are received, says "TAG received gen G" and
 * waits (60 s at most) for FILE before it touches them and says ready.
 * -h FILE: drains until FILE exists (or the drain deadline), so that a
 * successor that vanishes meanwhile brings a rollback.
 *
 * usage: fdkeeper [-h FILE] [-w FILE] CONTROL TAG BACKEND-PORT
 */
#include "config.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "handoff.h"

#define TIMER_INTERVAL	1234	/* s: what a successor checks it finds */
#define POLL_MS		50

struct keeper {
	struct event_base	*base;
	struct handoff		*h;
	struct event		*hold_ev;	/* -h: is FILE there yet? */
	const char		*tag;
	const char		*hold;		/* -h FILE */
	int			 mfd, r, w, efd, tfd, bfd;
	int			 code;
};

static int	keeper_turn(struct keeper *, const char *);

static int
exists(const char *path)
{
	struct stat	st;

	return stat(path, &st) == 0;
}

/* Draining: done at once, or with -h once FILE exists. */
static void
hold_poll(evutil_socket_t fd, short what, void *arg)
{
	struct keeper	*k = arg;
	struct timeval	 tv = { 0, POLL_MS * 1000 };

	if (k->hold == NULL || exists(k->hold))
		event_base_loopexit(k->base, NULL);
	else
		evtimer_add(k->hold_ev, &tv);
}

static void
on_event(struct handoff *h, enum handoff_event ev, void *arg)
{
	struct keeper	*k = arg;

	switch (ev) {
	case HANDOFF_DRAIN:
		hold_poll(-1, 0, k);
		break;
	case HANDOFF_HAMMER:
		event_base_loopexit(k->base, NULL);
		break;
	case HANDOFF_RESUME:
		/* The successor vanished: ours again, still the same fds. */
		evtimer_del(k->hold_ev);
		if (keeper_turn(k, "resumed ") == -1) {
			k->code = 1;
			event_base_loopexit(k->base, NULL);
		}
		break;
	case HANDOFF_ABORT:
		k->code = 1;
		break;
	default:
		break;
	}
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

/* A blocking connect to the backend, then non-blocking; -1. */
static int
backend_connect(const char *port)
{
	struct sockaddr_in	sin;
	int			fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(port));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
timer_made(void)
{
	struct itimerspec	its = { { TIMER_INTERVAL, 0 },
				    { TIMER_INTERVAL, 0 } };
	int			fd;

	if ((fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC |
	    TFD_NONBLOCK)) == -1)
		return -1;
	if (timerfd_settime(fd, 0, &its, NULL) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Up to a newline of what is pending on fd, without it; "-" if none. */
static void
read_line(int fd, char *line, size_t len)
{
	ssize_t	n;

	if ((n = read(fd, line, len - 1)) > 0) {
		line[n] = '\0';
		line[strcspn(line, "\n")] = '\0';
	} else
		snprintf(line, len, "-");
}

/*
 * The fds, passed by the predecessor or made now (fresh start): 0, or -1
 * after saying why.
 */
static int
keeper_fds(struct keeper *k, const char *port)
{
	int	fresh, pfd[2] = { -1, -1 };

	fresh = handoff_fd(k->h, "counter") < 0;
	if (fresh && pipe2(pfd, O_CLOEXEC | O_NONBLOCK) == -1)
		return -1;
	k->mfd = kept(k->h, "counter", fresh ? memfd_create("counter",
	    MFD_CLOEXEC) : -1);
	k->r = kept(k->h, "pipe-r", pfd[0]);
	k->w = kept(k->h, "pipe-w", pfd[1]);
	k->efd = kept(k->h, "events", fresh ? eventfd(0, EFD_CLOEXEC |
	    EFD_NONBLOCK) : -1);
	k->tfd = kept(k->h, "timer", fresh ? timer_made() : -1);
	k->bfd = kept(k->h, "backend", fresh ? backend_connect(port) : -1);
	if (k->mfd < 0 || k->r < 0 || k->w < 0 || k->efd < 0 || k->tfd < 0 ||
	    k->bfd < 0) {
		fprintf(stderr, "fdkeeper: %s\n", handoff_strerror(k->h));
		return -1;
	}
	return 0;
}

/*
 * A turn with the state, ours from here (our successor's after ready):
 * each fd read and written, one line said. 0, or -1.
 */
static int
keeper_turn(struct keeper *k, const char *how)
{
	struct itimerspec	its;
	uint64_t		counter = 0, ev = 0;
	char			line[64], reply[64];

	if (pread(k->mfd, &counter, sizeof(counter), 0) != sizeof(counter))
		counter = 0;
	counter++;
	if (pwrite(k->mfd, &counter, sizeof(counter), 0) != sizeof(counter))
		return -1;
	read_line(k->r, line, sizeof(line));
	if (dprintf(k->w, "%s\n", k->tag) < 0)
		return -1;
	if (read(k->efd, &ev, sizeof(ev)) != sizeof(ev))
		ev = 0;
	if (write(k->efd, &counter, sizeof(counter)) == -1 ||
	    timerfd_gettime(k->tfd, &its) == -1)
		return -1;
	read_line(k->bfd, reply, sizeof(reply));
	if (dprintf(k->bfd, "%s\n", k->tag) < 0)
		return -1;
	printf("%s %sgen %u: counter=%llu pipe=%s eventfd=%llu timer=%lld "
	    "backend=%s\n", k->tag, how, handoff_generation(k->h),
	    (unsigned long long)counter, line, (unsigned long long)ev,
	    (long long)its.it_interval.tv_sec, reply);
	fflush(stdout);
	return 0;
}

/* -w FILE: a window in which the test kills us, fds received. */
static void
wait_file(struct keeper *k, const char *path)
{
	int	i;

	printf("%s received gen %u\n", k->tag, handoff_generation(k->h));
	fflush(stdout);
	for (i = 0; i < 60000 / POLL_MS && !exists(path); i++)
		poll(NULL, 0, POLL_MS);
}

int
main(int argc, char *argv[])
{
	struct keeper	 k;
	struct event	*term = NULL;
	const char	*wait = NULL;
	int		 c;

	memset(&k, 0, sizeof(k));
	while ((c = getopt(argc, argv, "h:w:")) != -1) {
		if (c == 'h')
			k.hold = optarg;
		else if (c == 'w')
			wait = optarg;
		else
			argc = 0;
	}
	if (argc - optind != 3) {
		fprintf(stderr, "usage: fdkeeper [-h FILE] [-w FILE] CONTROL "
		    "TAG BACKEND-PORT\n");
		return 2;
	}
	k.tag = argv[optind + 1];
	if ((k.base = event_base_new()) == NULL ||
	    (k.hold_ev = evtimer_new(k.base, hold_poll, &k)) == NULL ||
	    (k.h = handoff_new(k.base, argv[optind])) == NULL)
		return 1;
	handoff_set_ident(k.h, "fdkeeper");
	handoff_set_tag(k.h, k.tag);
	handoff_set_event_cb(k.h, on_event, &k);
	handoff_set_drain_timeout(k.h, 60000);
	if (handoff_listen(k.h, "counter", "fd:") == -1 ||
	    handoff_listen(k.h, "pipe-r", "fd:") == -1 ||
	    handoff_listen(k.h, "pipe-w", "fd:") == -1 ||
	    handoff_listen(k.h, "events", "fd:") == -1 ||
	    handoff_listen(k.h, "timer", "fd:") == -1 ||
	    handoff_listen(k.h, "backend", "fd:") == -1 ||
	    handoff_start(k.h) == -1) {
		fprintf(stderr, "fdkeeper: %s\n", handoff_strerror(k.h));
		return 1;
	}
	if (wait != NULL)
		wait_file(&k, wait);
	if (keeper_fds(&k, argv[optind + 2]) == -1 ||
	    keeper_turn(&k, "") == -1)
		return 1;
	if (handoff_ready(k.h) == -1) {
		fprintf(stderr, "fdkeeper: %s\n", handoff_strerror(k.h));
		return 1;
	}
	term = evsignal_new(k.base, SIGTERM, on_term, &k);
	if (term == NULL || event_add(term, NULL) == -1)
		return 1;
	event_base_dispatch(k.base);
	event_free(term);
	event_free(k.hold_ev);
	handoff_free(k.h);
	event_base_free(k.base);
	return k.code;
}
