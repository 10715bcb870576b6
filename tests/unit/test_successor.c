/*
 * test_successor: the successor's side of a takeover, driven in one
 * process. handoff_start() blocks while it takes over, so a fake
 * incumbent in a thread listens on the control path, reads hello and
 * sends what the test scripted (offer, fds batches with SCM_RIGHTS, or
 * something wrong); after handoff_start() the test plays the incumbent's
 * remaining part itself (ready, released) and steps the event loop. What
 * it checks is what proto/PROTOCOL.md and include/handoff.h say: the
 * listeners adopted are the very sockets offered, the messages and exact
 * error texts, the events, and that no fd is left behind on failure.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "handoff.h"
#include "peer.h"
#include "unit.h"

/* A pid no process can have (above any pid_max): the incumbent is gone. */
#define GONE_PID	INT32_MAX
#define MAX_STEPS	4
#define IO_MS		2000

/* What the fake incumbent sends after hello: a message and its fds. */
struct step {
	json_t		*msg;		/* taken when sent */
	const char	*raw;		/* or these bytes */
	int		 fds[4];	/* borrowed */
	size_t		 nfds;
};

static struct {
	/* The fake incumbent: its sockets, and its script. */
	char		 dir[256];
	char		 path[300];
	int		 ctl;		/* listening at path: offered as @control */
	int		 http, old;	/* offered listeners */
	struct step	 steps[MAX_STEPS];
	size_t		 nsteps;
	int		 hang_up;	/* close once the script is sent */
	pthread_t	 thread;
	int		 conn;		/* accepted: handed back to the test */
	json_t		*hello;		/* what the successor said */
	char		 err[256];	/* why the fake gave up, if it did */

	/* The handle under test. */
	struct event_base	*base;
	struct handoff		*h;
	struct peer_app		 app;
	int			 fds_before;
} F;

#define EXPECT_EVENTS(want)	PEER_EXPECT_EVENTS(F.base, &F.app, want)
#define wait_log(...)		peer_wait_log(F.base, &F.app, __VA_ARGS__)

/* A listening SOCK_SEQPACKET socket at path, as an incumbent binds it. */
static int
seqpacket_listener(const char *path)
{
	struct sockaddr_un	sun;
	int			fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -1;
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fd, 64) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
count_tasks(void)
{
	return unit_count_entries("/proc/self/task");
}

/* Polls (bounded by ms) until the process has at most want tasks. */
static int
wait_tasks(int want, int ms)
{
	struct timespec	pause = { 0, 5 * 1000 * 1000 };
	int		n;

	while ((n = count_tasks()) > want && ms > 0) {
		nanosleep(&pause, NULL);
		ms -= 5;
	}
	return n;
}

/* The fake incumbent's sockets, then an event base, then a handle. */
static int
setup(void)
{
	memset(&F, 0, sizeof(F));
	F.conn = F.ctl = F.http = F.old = -1;
	if (peer_tmpdir(F.dir, sizeof(F.dir)) == -1) {
		CHECK(!"temporary directory");
		return -1;
	}
	snprintf(F.path, sizeof(F.path), "%s/ctl.sock", F.dir);
	F.ctl = seqpacket_listener(F.path);
	F.http = peer_tcp_listener();
	F.old = peer_tcp_listener();
	F.base = event_base_new();
	if (F.ctl == -1 || F.http == -1 || F.old == -1 || F.base == NULL) {
		CHECK(!"the fake incumbent's sockets");
		return -1;
	}
	F.fds_before = unit_count_fds();
	if ((F.h = handoff_new(F.base, F.path)) == NULL) {
		CHECK(!"handoff_new");
		return -1;
	}
	peer_app_watch(&F.app, F.h);
	handoff_set_io_timeout(F.h, IO_MS);
	CHECK_INT(handoff_set_tag(F.h, "v2"), 0);
	CHECK_INT(handoff_listen(F.h, "http", "tcp://127.0.0.1:0"), 0);
	CHECK_INT(handoff_listen(F.h, "new", "tcp://127.0.0.1:0"), 0);
	return 0;
}

static void
teardown(void)
{
	size_t	i;

	for (i = 0; i < F.nsteps; i++)
		json_decref(F.steps[i].msg);
	json_decref(F.hello);
	if (F.h != NULL)
		handoff_free(F.h);
	if (F.conn >= 0)
		close(F.conn);
	/* What the handle had is closed, and what the fake had is left. */
	CHECK_INT(unit_count_fds(), F.fds_before);
	if (F.ctl >= 0)
		close(F.ctl);
	if (F.http >= 0)
		close(F.http);
	if (F.old >= 0)
		close(F.old);
	if (F.base != NULL)
		event_base_free(F.base);
	peer_rmdir(F.dir);
}

static void
step(json_t *msg, const char *raw, int fd0, int fd1)
{
	struct step	*s = &F.steps[F.nsteps++];

	s->msg = msg;
	s->raw = raw;
	if (fd0 >= 0)
		s->fds[s->nfds++] = fd0;
	if (fd1 >= 0)
		s->fds[s->nfds++] = fd1;
}

static json_t *
offer_msg(long long pid, int count, int batches)
{
	return peer_msg("{s:s, s:i, s:I, s:i, s:s, s:i, s:i, s:{s:i}, "
	    "s:[s]}", "type", "offer", "proto", 1, "pid", (json_int_t)pid,
	    "generation", 3, "tag", "v1", "count", count, "batches", batches,
	    "state", "k", 1, "extensions", "superseded");
}

/* An "fds" message for fds, as an incumbent describes them: from the
 * fds themselves. */
static json_t *
fds_msg(int batch, const char *name0, int fd0, const char *name1, int fd1)
{
	const char	*names[2] = { name0, name1 };
	int		 fds[2] = { fd0, fd1 };
	json_t		*m, *c[7];
	char		 addr[64];
	size_t		 i, n = name1 != NULL ? 2 : 1;
	int		 unix_ctl;

	for (i = 0; i < 7; i++)
		c[i] = json_array();
	for (i = 0; i < n; i++) {
		unix_ctl = fds[i] == F.ctl;
		json_array_append_new(c[0], json_string(names[i]));
		json_array_append_new(c[1], json_string(unix_ctl ? "unix" :
		    "tcp"));
		json_array_append_new(c[2], json_string(unix_ctl ? "unix" :
		    "inet"));
		json_array_append_new(c[3], json_string(unix_ctl ?
		    "seqpacket" : "stream"));
		json_array_append_new(c[4], json_string(unix_ctl ? F.path :
		    peer_inet_name(fds[i], addr, sizeof(addr))));
		json_array_append_new(c[5], json_true());
		json_array_append_new(c[6], unix_ctl ? json_null() :
		    json_string("tcp://127.0.0.1:0"));
	}
	m = peer_msg("{s:s, s:i, s:i, s:{s:o, s:o, s:o, s:o, s:o, s:o, s:o}}",
	    "type", "fds", "proto", 1, "batch", batch, "listeners",
	    "name", c[0], "kind", c[1], "family", c[2], "socktype", c[3],
	    "address", c[4], "listening", c[5], "spec", c[6]);
	return m;
}

/*
 * The fake incumbent: accepts one connection, reads hello, sends the
 * script. The connection is handed back in F.conn (or closed, with
 * hang_up), for the test to go on with.
 */
static void *
fake_incumbent(void *arg)
{
	struct step	*s;
	size_t		 i;
	int		 r;

	if (wire_wait(F.ctl, POLLIN, PEER_STEP_MS) == -1 ||
	    (F.conn = accept4(F.ctl, NULL, NULL, SOCK_CLOEXEC)) == -1) {
		snprintf(F.err, sizeof(F.err), "nobody connected");
		return NULL;
	}
	if ((F.hello = peer_recv(F.conn, PEER_STEP_MS, F.err,
	    sizeof(F.err))) == NULL)
		return NULL;
	for (i = 0; i < F.nsteps; i++) {
		s = &F.steps[i];
		if (s->raw != NULL)
			r = wire_send(F.conn, s->raw, strlen(s->raw), s->fds,
			    s->nfds);
		else {
			r = peer_send_fds(F.conn, s->msg, s->fds, s->nfds);
			s->msg = NULL;
		}
		if (r == -1) {
			snprintf(F.err, sizeof(F.err), "step %zu: %s", i,
			    strerror(errno));
			break;
		}
	}
	if (F.hang_up) {
		close(F.conn);
		F.conn = -1;
	}
	return NULL;
}

/* handoff_start against the fake incumbent running its script. */
static int
start(void)
{
	int	r;

	if (pthread_create(&F.thread, NULL, fake_incumbent, NULL) != 0) {
		CHECK(!"pthread_create");
		return -1;
	}
	r = handoff_start(F.h);
	pthread_join(F.thread, NULL);
	CHECK_STR(F.err, "");
	/* Any thread of its own has exited by now (handoff.h). A joined
	 * thread's task may linger in /proc a moment after its join: a
	 * bounded wait for it to go, never for a thread still running. */
	CHECK_INT(wait_tasks(1, 2000), 1);
	return r;
}

/* hello says who we are and how many fds we can take. */
static void
check_hello(void)
{
	char	list[64];

	CHECK_STR(F.hello != NULL ? msg_type(F.hello) : "(none)", "hello");
	CHECK_INT(peer_int(F.hello, "proto"), 1);
	CHECK_INT(peer_int(F.hello, "pid"), getpid());
	CHECK_STR(peer_str(F.hello, "tag"), "v2");
	CHECK(peer_int(F.hello, "max_fds") > 0);
	CHECK_STR(peer_list(F.hello, "extensions", list, sizeof(list)),
	    "superseded,datagrams");
}

/* The fake's part after ready: reads it and answers released. */
static void
release(long long connections)
{
	json_t	*ready;
	char	 err[256], list[128];

	ready = peer_recv(F.conn, PEER_STEP_MS, err, sizeof(err));
	CHECK_STR(ready != NULL ? msg_type(ready) : err, "ready");
	CHECK_INT(peer_int(ready, "pid"), getpid());
	CHECK_STR(peer_list(ready, "adopted", list, sizeof(list)), "http");
	CHECK_STR(peer_list(ready, "added", list, sizeof(list)), "new");
	CHECK_STR(peer_list(ready, "retired", list, sizeof(list)), "old");
	CHECK_INT(peer_int(ready, "max_draining"), 4);
	CHECK_STR(peer_list(ready, "extensions", list, sizeof(list)),
	    "superseded,datagrams");
	json_decref(ready);
	CHECK_INT(peer_send(F.conn, peer_msg("{s:s, s:i, s:i, s:I, s:i}",
	    "type", "released", "proto", 1, "pid", (int)getpid(),
	    "connections", (json_int_t)connections, "deadline_ms", 30000)), 0);
}

/* A status request to whoever accepts on the control path. */
static json_t *
status(void)
{
	json_t	*r;
	size_t	 nfds;
	int	 fd, fds[WIRE_MAX_FDS];
	char	 err[256];

	if ((fd = peer_connect(F.path)) == -1) {
		CHECK(!"connect to the control path");
		return NULL;
	}
	CHECK_INT(peer_send(fd, msg_new("status")), 0);
	r = peer_loop_recv(F.base, fd, fds, WIRE_MAX_FDS, &nfds, err,
	    sizeof(err));
	wire_close_fds(fds, nfds);
	CHECK_STR(r != NULL ? msg_type(r) : err, "report");
	close(fd);
	return r;
}

/*
 * The takeover as it should go: two batches (so a second thread checks
 * them), "http" adopted by name, "new" bound, "old" retired; ready,
 * released, the handle serves on the control socket; a stop then tells
 * the predecessor that no rollback may come.
 */
static void
test_takeover(void)
{
	json_t	*r, *e, *sup;
	char	 addr[64], other[64], err[256];
	int	 fd;

	if (setup() == -1)
		goto out;
	step(offer_msg(getpid(), 3, 2), NULL, -1, -1);
	step(fds_msg(0, "@control", F.ctl, "http", F.http), NULL, F.ctl,
	    F.http);
	step(fds_msg(1, "old", F.old, NULL, -1), NULL, F.old, -1);
	if (start() == -1) {
		fprintf(stderr, "start: %s\n", handoff_strerror(F.h));
		CHECK(!"handoff_start");
		goto out;
	}
	CHECK_STR(handoff_strerror(F.h), "no error");
	check_hello();
	CHECK_INT(handoff_generation(F.h), 4);
	CHECK_INT(handoff_predecessor(F.h), getpid());
	CHECK_STR(handoff_predecessor_state(F.h), "{\"k\":1}");
	CHECK_INT(handoff_listener_count(F.h), 2);
	CHECK_STR(handoff_listener_name(F.h, 0), "http");
	CHECK_STR(handoff_listener_name(F.h, 1), "new");
	CHECK_INT(handoff_fd(F.h, "old"), -1);
	fd = handoff_fd(F.h, "http");
	CHECK(fd >= 0 && fd != F.http);
	CHECK(peer_same_socket(fd, F.http));
	CHECK_INT(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	CHECK_INT(fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	fd = handoff_fd(F.h, "new");
	CHECK_INT(peer_sockopt(fd, SO_ACCEPTCONN), 1);
	CHECK(strcmp(peer_inet_name(fd, addr, sizeof(addr)),
	    peer_inet_name(F.http, other, sizeof(other))) != 0);
	CHECK_INT(peer_copies(fd), 1);
	/* Ours and the handle's copies; the retired one is closed. */
	CHECK_INT(peer_copies(F.http), 2);
	CHECK_INT(peer_copies(F.ctl), 2);
	CHECK_INT(peer_copies(F.old), 1);

	CHECK_INT(handoff_ready(F.h), 0);
	release(2);
	CHECK_INT(peer_send(F.conn, peer_msg("{s:s, s:i, s:i, s:i, s:s, s:i, "
	    "s:i, s:[]}", "type", "progress", "proto", 1, "pid", (int)getpid(),
	    "generation", 3, "tag", "v1", "connections", 2, "remaining_ms",
	    29000, "draining")), 0);
	CHECK(wait_log("released by pid %ld: it drains 2 connections within "
	    "30000 ms", (long)getpid()));
	CHECK_STR(F.app.events, "");
	/* Released: it answers on the control socket, and says who drains. */
	if ((r = status()) != NULL) {
		CHECK_INT(peer_int(r, "pid"), getpid());
		CHECK_INT(peer_int(r, "generation"), 4);
		CHECK_STR(peer_str(r, "tag"), "v2");
		CHECK_STR(peer_str(r, "state"), "serving");
		CHECK_INT(peer_int(r, "predecessor"), getpid());
		e = json_array_get(json_object_get(r, "listeners"), 1);
		CHECK_STR(peer_str(e, "name"), "http");
		CHECK_STR(peer_str(e, "address"), peer_inet_name(F.http, addr,
		    sizeof(addr)));
		e = json_array_get(json_object_get(r, "draining"), 0);
		CHECK_INT(peer_int(e, "pid"), getpid());
		CHECK_INT(peer_int(e, "generation"), 3);
		CHECK_INT(peer_int(e, "connections"), 2);
		json_decref(r);
	}
	/* A stop: the predecessor, which named the extension, is told. */
	CHECK_INT(handoff_stop(F.h), 0);
	CHECK_STR(F.app.events, "PAUSE DRAIN SUPERSEDED");
	sup = peer_recv(F.conn, PEER_STEP_MS, err, sizeof(err));
	CHECK_STR(sup != NULL ? msg_type(sup) : err, "superseded");
	CHECK_INT(peer_int(sup, "pid"), getpid());
	CHECK_INT(peer_int(sup, "by"), 0);
	CHECK_INT(peer_int(sup, "keep"), 4);
	CHECK_INT(peer_int(sup, "max_draining"), 4);
	json_decref(sup);
	handoff_free(F.h);
	F.h = NULL;
	/* Its exit closes the connection the predecessor watches. */
	CHECK(peer_eof(F.conn, PEER_STEP_MS));
out:
	teardown();
}

/*
 * After ready, the incumbent closes, or answers error, instead of
 * released. Alive, it serves on: the successor hears PAUSE, ABORT, DRAIN
 * and handoff_strerror says why. Gone, the successor serves.
 */
static void
test_no_released(void)
{
	static const struct {
		long long	 pid;
		int		 answer;	/* error, or close */
		const char	*events, *why;
	} cases[] = {
		{ 0, 0, "PAUSE ABORT DRAIN", "takeover from pid %ld failed "
		    "after ready: it closed the connection; it keeps "
		    "serving" },
		{ 0, 1, "PAUSE ABORT DRAIN", "takeover from pid %ld failed "
		    "after ready: it answered timeout: no ready within 30000 "
		    "ms; still serving; it keeps serving" },
		{ GONE_PID, 0, "", NULL },
	};
	json_t	*r;
	char	 want[256];
	size_t	 i;
	long	 pid;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pid = cases[i].pid != 0 ? (long)cases[i].pid : (long)getpid();
		if (setup() == -1)
			goto next;
		step(offer_msg(pid, 2, 1), NULL, -1, -1);
		step(fds_msg(0, "@control", F.ctl, "http", F.http), NULL,
		    F.ctl, F.http);
		if (start() == -1) {
			CHECK(!"handoff_start");
			goto next;
		}
		CHECK_INT(handoff_predecessor(F.h), pid);
		CHECK_INT(handoff_ready(F.h), 0);
		r = peer_recv(F.conn, PEER_STEP_MS, want, sizeof(want));
		CHECK_STR(r != NULL ? msg_type(r) : want, "ready");
		json_decref(r);
		if (cases[i].answer)
			CHECK_INT(peer_send(F.conn, peer_msg("{s:s, s:i, s:s, "
			    "s:s}", "type", "error", "proto", 1, "code",
			    "timeout", "message", "no ready within 30000 ms; "
			    "still serving")), 0);
		close(F.conn);
		F.conn = -1;
		if (cases[i].why != NULL) {
			EXPECT_EVENTS(cases[i].events);
			snprintf(want, sizeof(want), cases[i].why, pid);
			CHECK_STR(handoff_strerror(F.h), want);
			CHECK(handoff_drain_remaining(F.h) > 0);
		} else {
			CHECK(wait_log("predecessor pid %ld died before "
			    "releasing us: serving", pid));
			CHECK_STR(F.app.events, "");
			r = status();
			CHECK_STR(r != NULL ? peer_str(r, "state") : "(none)",
			    "serving");
			CHECK_INT(peer_int(r, "pid"), getpid());
			json_decref(r);
		}
next:
		teardown();
	}
}

/*
 * The incumbent dies during the offer, after the first of two batches:
 * the successor keeps what arrived and starts fresh with it (6.3).
 */
static void
test_partial_offer(void)
{
	json_t	*r;

	if (setup() == -1)
		goto out;
	step(offer_msg(GONE_PID, 3, 2), NULL, -1, -1);
	step(fds_msg(0, "@control", F.ctl, "http", F.http), NULL, F.ctl,
	    F.http);
	F.hang_up = 1;
	if (start() == -1) {
		fprintf(stderr, "start: %s\n", handoff_strerror(F.h));
		CHECK(!"handoff_start");
		goto out;
	}
	CHECK_INT(handoff_predecessor(F.h), 0);
	CHECK(peer_same_socket(handoff_fd(F.h, "http"), F.http));
	CHECK_INT(peer_sockopt(handoff_fd(F.h, "new"), SO_ACCEPTCONN), 1);
	CHECK_INT(peer_copies(F.ctl), 2);
	CHECK_INT(handoff_ready(F.h), 0);
	r = status();
	CHECK_STR(r != NULL ? peer_str(r, "state") : "(none)", "serving");
	json_decref(r);
	CHECK_STR(F.app.events, "");
out:
	teardown();
}

/* Replaces every $PID, $PATH, $HTTP and $OTHER in tmpl. */
static const char *
expand(const char *tmpl, const char *other, char *out, size_t len)
{
	char		 pid[32], http[64];
	const struct {
		const char	*name, *value;
	} vars[] = {
		{ "$PID", pid }, { "$PATH", F.path }, { "$HTTP", http },
		{ "$OTHER", other },
	};
	const char	*p = tmpl;
	size_t		 off = 0, k, n;

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	peer_inet_name(F.http, http, sizeof(http));
	while (*p != '\0' && off + 1 < len) {
		for (k = 0; k < sizeof(vars) / sizeof(vars[0]); k++)
			if (strncmp(p, vars[k].name, strlen(vars[k].name)) == 0)
				break;
		if (k == sizeof(vars) / sizeof(vars[0])) {
			out[off++] = *p++;
			continue;
		}
		n = (size_t)snprintf(out + off, len - off, "%s", vars[k].value);
		off = off + n < len ? off + n : len - 1;
		p += strlen(vars[k].name);
	}
	out[off] = '\0';
	return out;
}

enum bad {
	BAD_FIELD, BAD_FDS_ON_OFFER, BAD_ADDRESS, BAD_ROWS, BAD_REFUSED,
	BAD_BATCH_NUMBER, BAD_BATCH_COUNT, BAD_CONTROL_PATH, BAD_NO_CONTROL,
	BAD_GARBAGE, BAD_HANG_UP, BAD_WRONG_TYPE, BAD_SILENT, BAD_TWICE,
	BAD_GONE_MID_OFFER, BAD_BIND,
};

static const struct {
	enum bad	 bad;
	const char	*why;
} bad_offers[] = {
	{ BAD_FIELD, "bad offer from incumbent pid $PID: offer: missing field "
	    "\"count\"" },
	{ BAD_FDS_ON_OFFER, "the offer carried 2 fds; they belong in "
	    "batches" },
	{ BAD_ADDRESS, "listener \"http\": the fd is inet stream $HTTP "
	    "listening but the offer says inet stream 127.0.0.1:1 "
	    "listening" },
	{ BAD_ROWS, "batch 0: 1 entries with 2 fds (0 of 3 received "
	    "before)" },
	{ BAD_REFUSED, "incumbent pid $PID refused the takeover: busy: pid 9 "
	    "is already taking over; one takeover at a time" },
	{ BAD_BATCH_NUMBER, "batch 1 arrived where batch 0 was due" },
	{ BAD_BATCH_COUNT, "offer of 1 listeners in 2 batches" },
	{ BAD_CONTROL_PATH, "the control socket offered is $OTHER, not a "
	    "listening seqpacket socket at $PATH" },
	{ BAD_NO_CONTROL, "incumbent pid $PID did not offer its control "
	    "socket" },
	{ BAD_GARBAGE, "bad offer from incumbent pid $PID: invalid JSON at "
	    "byte 7: '[' or '{' expected near 'garbage'" },
	{ BAD_HANG_UP, "incumbent pid $PID closed the connection while we "
	    "waited for offer" },
	{ BAD_WRONG_TYPE, "incumbent pid $PID sent \"report\" where \"offer\" "
	    "was due" },
	{ BAD_SILENT, "no offer within 2000 ms from the server on $PATH: it "
	    "may be stopped (SIGSTOP) or overloaded (the socket was created "
	    "by pid $PID, which may be an older generation)" },
	{ BAD_TWICE, "listener \"http\" offered twice" },
	/* Alive: nothing received is kept. */
	{ BAD_GONE_MID_OFFER, "incumbent pid $PID closed the connection "
	    "while we waited for fds" },
	{ BAD_BIND, "cannot bind tcp://$OTHER: Address already in use "
	    "(another process holds it)" },
};

/* The script for one bad offer; *other is a socket the case made. */
static void
script_bad(enum bad bad, int *other, char *other_path, size_t len)
{
	json_t	*m;
	pid_t	 pid = getpid();

	switch (bad) {
	case BAD_FIELD:
		m = offer_msg(pid, 2, 1);
		json_object_del(m, "count");
		step(m, NULL, -1, -1);
		break;
	case BAD_FDS_ON_OFFER:
		step(offer_msg(pid, 2, 1), NULL, F.ctl, F.http);
		break;
	case BAD_ADDRESS:
		step(offer_msg(pid, 2, 1), NULL, -1, -1);
		m = fds_msg(0, "@control", F.ctl, "http", F.http);
		json_array_set_new(json_object_get(json_object_get(m,
		    "listeners"), "address"), 1, json_string("127.0.0.1:1"));
		step(m, NULL, F.ctl, F.http);
		break;
	case BAD_ROWS:
		step(offer_msg(pid, 3, 1), NULL, -1, -1);
		step(fds_msg(0, "@control", F.ctl, NULL, -1), NULL, F.ctl,
		    F.http);
		break;
	case BAD_REFUSED:
		step(peer_msg("{s:s, s:i, s:s, s:s}", "type", "error", "proto",
		    1, "code", "busy", "message", "pid 9 is already taking "
		    "over; one takeover at a time"), NULL, -1, -1);
		break;
	case BAD_BATCH_NUMBER:
		step(offer_msg(pid, 2, 1), NULL, -1, -1);
		step(fds_msg(1, "@control", F.ctl, "http", F.http), NULL,
		    F.ctl, F.http);
		break;
	case BAD_BATCH_COUNT:
		step(offer_msg(pid, 1, 2), NULL, -1, -1);
		break;
	case BAD_CONTROL_PATH:
		snprintf(other_path, len, "%s/other.sock", F.dir);
		*other = seqpacket_listener(other_path);
		step(offer_msg(pid, 2, 1), NULL, -1, -1);
		m = fds_msg(0, "@control", F.ctl, "http", F.http);
		json_array_set_new(json_object_get(json_object_get(m,
		    "listeners"), "address"), 0, json_string(other_path));
		step(m, NULL, *other, F.http);
		break;
	case BAD_NO_CONTROL:
		step(offer_msg(pid, 1, 1), NULL, -1, -1);
		step(fds_msg(0, "http", F.http, NULL, -1), NULL, F.http, -1);
		break;
	case BAD_GARBAGE:
		step(NULL, "garbage", -1, -1);
		break;
	case BAD_HANG_UP:
		F.hang_up = 1;
		break;
	case BAD_WRONG_TYPE:
		step(peer_msg("{s:s, s:i, s:i, s:i, s:s, s:s, s:i, s:[]}",
		    "type", "report", "proto", 1, "pid", (int)pid,
		    "generation", 1, "tag", "v1", "state", "serving",
		    "connections", 0, "listeners"), NULL, -1, -1);
		break;
	case BAD_SILENT:
		break;
	case BAD_TWICE:
		step(offer_msg(pid, 3, 2), NULL, -1, -1);
		step(fds_msg(0, "@control", F.ctl, "http", F.http), NULL,
		    F.ctl, F.http);
		step(fds_msg(1, "http", F.old, NULL, -1), NULL, F.old, -1);
		break;
	case BAD_GONE_MID_OFFER:
		step(offer_msg(pid, 3, 2), NULL, -1, -1);
		step(fds_msg(0, "@control", F.ctl, "http", F.http), NULL,
		    F.ctl, F.http);
		F.hang_up = 1;
		break;
	case BAD_BIND:
		/* "busy" asks for a port somebody holds, and nobody offers. */
		*other = peer_tcp_listener();
		peer_inet_name(*other, other_path, len);
		step(offer_msg(pid, 2, 1), NULL, -1, -1);
		step(fds_msg(0, "@control", F.ctl, "http", F.http), NULL,
		    F.ctl, F.http);
		break;
	}
}

/*
 * Bad offers: handoff_start fails with the reason, answers error
 * (mismatch, or bind once matching has begun) unless the incumbent
 * hung up, leaves no fd of the offer open in this process, and leaves
 * the control socket where it was.
 */
static void
test_bad_offers(void)
{
	struct stat	 st;
	json_t		*e;
	char		 want[512], other_path[300], spec[128], err[256];
	size_t		 i;
	int		 other, before;

	for (i = 0; i < sizeof(bad_offers) / sizeof(bad_offers[0]); i++) {
		other = -1;
		other_path[0] = '\0';
		if (setup() == -1)
			goto next;
		script_bad(bad_offers[i].bad, &other, other_path,
		    sizeof(other_path));
		if (bad_offers[i].bad == BAD_BIND) {
			snprintf(spec, sizeof(spec), "tcp://%s", other_path);
			CHECK_INT(handoff_listen(F.h, "busy", spec), 0);
		}
		before = unit_count_fds();
		CHECK_INT(start(), -1);
		fprintf(stderr, "bad offer %zu: %s\n", i,
		    handoff_strerror(F.h));
		CHECK_STR(handoff_strerror(F.h), expand(bad_offers[i].why,
		    other_path, want, sizeof(want)));
		if (F.conn >= 0) {
			/* The reason goes to the incumbent too. */
			e = peer_recv(F.conn, PEER_STEP_MS, err, sizeof(err));
			CHECK_STR(e != NULL ? msg_type(e) : err, "error");
			CHECK_STR(peer_str(e, "code"), bad_offers[i].bad ==
			    BAD_BIND ? "bind" : "mismatch");
			CHECK_STR(peer_str(e, "message"),
			    handoff_strerror(F.h));
			json_decref(e);
		}
		if (F.conn >= 0)
			CHECK(peer_eof(F.conn, PEER_STEP_MS));
		/* Nothing received is kept, nothing bound stays bound. */
		CHECK_INT(peer_copies(F.ctl), 1);
		CHECK_INT(peer_copies(F.http), 1);
		CHECK_INT(peer_copies(F.old), 1);
		if (other >= 0)
			CHECK_INT(peer_copies(other), 1);
		CHECK_INT(handoff_listener_count(F.h), 0);
		CHECK_INT(handoff_fd(F.h, "http"), -1);
		CHECK(lstat(F.path, &st) == 0 && S_ISSOCK(st.st_mode));
		if (F.conn >= 0) {
			close(F.conn);
			F.conn = -1;
		}
		CHECK_INT(unit_count_fds(), before);
		CHECK_INT(handoff_start(F.h), -1);
		CHECK_STR(handoff_strerror(F.h), "handoff_start failed before; "
		    "make a new handle to try again");
		CHECK_STR(F.app.events, "");
next:
		if (other >= 0)
			close(other);
		teardown();
	}
}

int
main(void)
{
	alarm(300);	/* against a hang; every step has its own bound */
	unsetenv("NOTIFY_SOCKET");	/* no service manager of ours */
	test_takeover();
	test_no_released();
	test_partial_offer();
	test_bad_offers();
	return unit_done("test_successor");
}
