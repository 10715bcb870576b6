/*
 * test_incumbent: the incumbent's side of the control socket, driven in
 * one process. A handle starts fresh on loopback listeners and serves;
 * the test plays the successor, or a client, over SOCK_SEQPACKET
 * connections to its control socket, and steps the event loop until the
 * answer it waits for has come. What it checks is what proto/PROTOCOL.md
 * and include/handoff.h say: the messages with their exact texts, the fds
 * passed, the events the application sees, and that every fd is closed.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "handoff.h"
#include "peer.h"
#include "unit.h"

/* Not the default, so that released and stopping show it is ours. */
#define DRAIN_MS	20000
#define STATE		"{\"server\":\"unit\"}"
#define MAX_LISTENERS	3

/* The listeners a handle may ask for, in this order. */
static const struct {
	const char	*name, *spec, *kind, *socktype;
	int		 listening;
} wanted[MAX_LISTENERS] = {
	{ "http", "tcp://127.0.0.1:0", "tcp", "stream", 1 },
	{ "api", "tcp://127.0.0.1:0", "tcp", "stream", 1 },
	{ "dns", "udp://127.0.0.1:0", "udp", "dgram", 0 },
};

/* One handle serving, and what its application has seen. */
static struct {
	struct event_base	*base;
	struct handoff		*h;
	size_t			 n;		/* listeners */
	int			 fds_before;
	unsigned		 conns;		/* what the count callback says */
	char			 dir[256];
	char			 path[300];
	struct peer_app		 app;
} F;

static unsigned
on_count(void *arg)
{
	return F.conns;
}

#define EXPECT_EVENTS(want)	PEER_EXPECT_EVENTS(F.base, &F.app, want)
#define wait_log(...)		peer_wait_log(F.base, &F.app, __VA_ARGS__)

/*
 * A handle serving fresh on the first n of wanted[], its control socket
 * in a new private directory. io_ms and ready_ms: 0 for the defaults.
 */
static int
setup(size_t n, unsigned io_ms, unsigned ready_ms)
{
	size_t	i;

	memset(&F, 0, sizeof(F));
	F.n = n;
	F.fds_before = unit_count_fds();
	if (peer_tmpdir(F.dir, sizeof(F.dir)) == -1 ||
	    (F.base = event_base_new()) == NULL) {
		CHECK(!"temporary directory and event base");
		return -1;
	}
	snprintf(F.path, sizeof(F.path), "%s/ctl.sock", F.dir);
	if ((F.h = handoff_new(F.base, F.path)) == NULL) {
		CHECK(!"handoff_new");
		return -1;
	}
	peer_app_watch(&F.app, F.h);
	handoff_set_count_cb(F.h, on_count, NULL);
	handoff_set_drain_timeout(F.h, DRAIN_MS);
	if (io_ms > 0)
		handoff_set_io_timeout(F.h, io_ms);
	if (ready_ms > 0)
		handoff_set_ready_timeout(F.h, ready_ms);
	CHECK_INT(handoff_set_tag(F.h, "v1"), 0);
	CHECK_INT(handoff_set_state(F.h, STATE), 0);
	for (i = 0; i < n; i++)
		CHECK_INT(handoff_listen(F.h, wanted[i].name, wanted[i].spec),
		    0);
	if (handoff_start(F.h) == -1 || handoff_ready(F.h) == -1) {
		fprintf(stderr, "start: %s\n", handoff_strerror(F.h));
		CHECK(!"handoff_start and handoff_ready");
		return -1;
	}
	CHECK_INT(handoff_generation(F.h), 1);
	CHECK_INT(handoff_predecessor(F.h), 0);
	CHECK_INT(handoff_listener_count(F.h), n);
	return 0;
}

/* Frees the handle; by then every fd the test opened must be closed. */
static void
teardown(void)
{
	if (F.h != NULL)
		handoff_free(F.h);
	if (F.base != NULL)
		event_base_free(F.base);
	peer_rmdir(F.dir);
	CHECK_INT(unit_count_fds(), F.fds_before);
}

static int
connect_control(void)
{
	int	fd;

	if ((fd = peer_connect(F.path)) == -1)
		fprintf(stderr, "connect %s: %s\n", F.path, strerror(errno));
	CHECK(fd >= 0);
	return fd;
}

static json_t *
hello_msg(long long max_fds)
{
	return peer_msg("{s:s, s:i, s:i, s:s, s:I}", "type", "hello",
	    "proto", 1, "pid", (int)getpid(), "tag", "v2", "max_fds",
	    (json_int_t)max_fds);
}

/* ready naming the lists given as JSON text; max_draining < 0: none. */
static json_t *
ready_msg(const char *adopted, const char *retired, int max_draining)
{
	json_t	*m;

	m = peer_msg("{s:s, s:i, s:i, s:o, s:[], s:o}", "type", "ready",
	    "proto", 1, "pid", (int)getpid(), "adopted",
	    json_loads(adopted, 0, NULL), "added", "retired",
	    json_loads(retired, 0, NULL));
	if (m != NULL && max_draining >= 0)
		json_object_set_new(m, "max_draining",
		    json_integer(max_draining));
	return m;
}

static void
show(const json_t *m)
{
	char	*s = json_dumps(m, JSON_COMPACT);

	fprintf(stderr, "got %s\n", s != NULL ? s : "(unprintable)");
	free(s);
}

/* Sends msg (taken; NULL: nothing) and expects one message back of type want. */
static json_t *
ask(int fd, json_t *msg, const char *want)
{
	json_t	*reply;
	size_t	 nfds;
	int	 fds[WIRE_MAX_FDS];
	char	 err[512];

	if (msg != NULL)
		CHECK_INT(peer_send(fd, msg), 0);
	reply = peer_loop_recv(F.base, fd, fds, WIRE_MAX_FDS, &nfds, err,
	    sizeof(err));
	CHECK_INT(nfds, 0);
	wire_close_fds(fds, nfds);
	CHECK_STR(reply != NULL ? msg_type(reply) : err, want);
	if (reply != NULL && strcmp(msg_type(reply), want) != 0) {
		show(reply);
		json_decref(reply);
		return NULL;
	}
	return reply;
}

/* Steps the loop until fd's end of file: the incumbent closed it. */
static int
wait_eof(int fd)
{
	char	err[256];
	json_t	*m;

	if (peer_loop_until(F.base, peer_readable, &fd, PEER_STEP_MS) == -1)
		return 0;
	m = peer_recv(fd, 0, err, sizeof(err));
	if (m != NULL)
		fprintf(stderr, "got \"%s\" where end of file was due\n",
		    msg_type(m));
	json_decref(m);
	return m == NULL && strcmp(err, "end of file") == 0;
}

/* The reply to msg (taken) is error code: message, then end of file. */
static void
expect_refusal(int fd, json_t *msg, const char *code, const char *text)
{
	json_t	*e;

	if ((e = ask(fd, msg, "error")) != NULL) {
		CHECK_STR(peer_str(e, "code"), code);
		CHECK_STR(peer_str(e, "message"), text);
		json_decref(e);
	}
	CHECK(wait_eof(fd));
}

/* A status request on a new connection: the report, then the close. */
static json_t *
status(void)
{
	json_t	*r;
	int	 fd;

	if ((fd = connect_control()) == -1)
		return NULL;
	r = ask(fd, msg_new("status"), "report");
	CHECK(wait_eof(fd));
	close(fd);
	return r;
}

static void
check_state(const char *want)
{
	json_t	*r = status();

	CHECK_STR(r != NULL ? peer_str(r, "state") : "(no report)", want);
	json_decref(r);
}

/* Row i of an "fds" message's column: its own value or the column's. */
static json_t *
cell(const json_t *fdsmsg, const char *column, size_t i)
{
	json_t	*c = json_object_get(json_object_get(fdsmsg, "listeners"),
	    column);

	return json_is_array(c) ? json_array_get(c, i) : c;
}

static const char *
cell_str(const json_t *fdsmsg, const char *column, size_t i)
{
	const char	*s = json_string_value(cell(fdsmsg, column, i));

	return s != NULL ? s : "(none)";
}

/* Row 0 is the listening control socket, at the control path. */
static void
check_control_row(const json_t *b, int fd)
{
	struct sockaddr_un	sun;
	socklen_t		len = sizeof(sun);

	CHECK_STR(cell_str(b, "name", 0), "@control");
	CHECK_STR(cell_str(b, "kind", 0), "unix");
	CHECK_STR(cell_str(b, "family", 0), "unix");
	CHECK_STR(cell_str(b, "socktype", 0), "seqpacket");
	CHECK_STR(cell_str(b, "address", 0), F.path);
	CHECK(json_is_true(cell(b, "listening", 0)));
	CHECK(json_is_null(cell(b, "spec", 0)));
	memset(&sun, 0, sizeof(sun));
	CHECK(getsockname(fd, (struct sockaddr *)&sun, &len) == 0);
	CHECK_STR(sun.sun_path, F.path);
	CHECK_INT(peer_sockopt(fd, SO_TYPE), SOCK_SEQPACKET);
	CHECK_INT(peer_sockopt(fd, SO_ACCEPTCONN), 1);
}

/* Row i (1 on) is listener i - 1, and fd the very socket it holds. */
static void
check_listener_row(const json_t *b, size_t i, int fd)
{
	int	mine = handoff_listener_fd(F.h, i - 1);
	char	addr[64];

	CHECK_STR(cell_str(b, "name", i), wanted[i - 1].name);
	CHECK_STR(cell_str(b, "kind", i), wanted[i - 1].kind);
	CHECK_STR(cell_str(b, "family", i), "inet");
	CHECK_STR(cell_str(b, "socktype", i), wanted[i - 1].socktype);
	CHECK_STR(cell_str(b, "address", i), peer_inet_name(mine, addr,
	    sizeof(addr)));
	CHECK_INT(json_is_true(cell(b, "listening", i)),
	    wanted[i - 1].listening);
	CHECK_STR(cell_str(b, "spec", i), wanted[i - 1].spec);
	CHECK(fd != mine);
	CHECK(peer_same_socket(fd, mine));
	CHECK_INT(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

/*
 * Says hello and takes the offer and its batch: fds[0] is @control,
 * fds[i] listener i - 1. Returns the fds received (1 + F.n), or -1.
 */
static int
take_offer(int fd, int *fds)
{
	json_t	*offer, *b, *state;
	size_t	 nfds, i;
	char	 err[512], list[128];

	if ((offer = ask(fd, hello_msg(1000), "offer")) == NULL)
		return -1;
	CHECK_INT(peer_int(offer, "pid"), getpid());
	CHECK_INT(peer_int(offer, "generation"), 1);
	CHECK_STR(peer_str(offer, "tag"), "v1");
	CHECK_INT(peer_int(offer, "count"), F.n + 1);
	CHECK_INT(peer_int(offer, "batches"), 1);
	CHECK_STR(peer_list(offer, "extensions", list, sizeof(list)),
	    "superseded,datagrams");
	state = json_loads(STATE, 0, NULL);
	CHECK(json_equal(json_object_get(offer, "state"), state));
	json_decref(state);
	json_decref(offer);

	b = peer_loop_recv(F.base, fd, fds, WIRE_MAX_FDS, &nfds, err,
	    sizeof(err));
	CHECK_STR(b != NULL ? msg_type(b) : err, "fds");
	if (b == NULL)
		return -1;
	CHECK_INT(nfds, F.n + 1);
	CHECK_INT(peer_int(b, "batch"), 0);
	CHECK_INT(json_array_size(json_object_get(json_object_get(b,
	    "listeners"), "name")), F.n + 1);
	if (nfds != F.n + 1) {
		wire_close_fds(fds, nfds);
		json_decref(b);
		return -1;
	}
	check_control_row(b, fds[0]);
	for (i = 1; i < nfds; i++)
		check_listener_row(b, i, fds[i]);
	json_decref(b);
	return (int)nfds;
}

/*
 * Sends ready and takes released and the first progress. The retired
 * listeners are closed first, as a successor does.
 */
static int
take_release(int fd, const char *adopted, const char *retired,
    int max_draining)
{
	json_t	*rel, *prog;

	if ((rel = ask(fd, ready_msg(adopted, retired, max_draining),
	    "released")) == NULL)
		return -1;
	CHECK_INT(peer_int(rel, "pid"), getpid());
	CHECK_INT(peer_int(rel, "connections"), F.conns);
	CHECK_INT(peer_int(rel, "deadline_ms"), DRAIN_MS);
	json_decref(rel);
	/* Right after released, with the time left (4.6a). */
	if ((prog = ask(fd, NULL, "progress")) == NULL)
		return -1;
	CHECK_INT(peer_int(prog, "pid"), getpid());
	CHECK_INT(peer_int(prog, "generation"), 1);
	CHECK_STR(peer_str(prog, "tag"), "v1");
	CHECK_INT(peer_int(prog, "connections"), F.conns);
	CHECK(peer_int(prog, "remaining_ms") > 0 &&
	    peer_int(prog, "remaining_ms") <= DRAIN_MS);
	json_decref(prog);
	return 0;
}

/* The whole way to released; the successor's connection, or -1. */
static int
released_successor(int *fds, int *nfds)
{
	int	fd;

	if ((fd = connect_control()) == -1)
		return -1;
	if ((*nfds = take_offer(fd, fds)) == -1 ||
	    take_release(fd, "[\"http\"]", "[]", -1) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Every listener is still the handle's, listening, and takes clients. */
static void
check_serving_listeners(void)
{
	size_t	i;
	int	fd;

	for (i = 0; i < F.n; i++) {
		fd = handoff_listener_fd(F.h, i);
		CHECK(fd >= 0 && fcntl(fd, F_GETFD) != -1);
		CHECK_INT(peer_sockopt(fd, SO_ACCEPTCONN),
		    wanted[i].listening);
		if (wanted[i].listening)
			CHECK_INT(peer_tcp_accepts(fd), 1);
	}
}

/*
 * The whole takeover: hello, offer, ready, released, then the
 * successor vanishes while we drain and nothing said a takeover of it
 * was under way: rollback. The retired TCP listener refuses from
 * released on and listens again, on the same port, at the rollback.
 */
static void
test_takeover_rollback(void)
{
	json_t	*r;
	char	 api_before[64], api_after[64];
	int	 fd, fds[WIRE_MAX_FDS], nfds, api;

	if (setup(3, 0, 0) == -1 || (fd = connect_control()) == -1)
		goto out;
	F.conns = 2;
	api = handoff_fd(F.h, "api");
	peer_inet_name(api, api_before, sizeof(api_before));
	if ((nfds = take_offer(fd, fds)) == -1)
		goto out_fd;
	CHECK_STR(F.app.events, "");
	/* Between hello and ready a report says who takes over. */
	if ((r = status()) != NULL) {
		CHECK_STR(peer_str(r, "state"), "offering");
		CHECK_INT(peer_int(r, "successor"), getpid());
		json_decref(r);
	}
	close(fds[2]);		/* "api" retired: the successor's copy */
	fds[2] = -1;
	if (take_release(fd, "[\"http\",\"dns\"]", "[\"api\"]", -1) == -1)
		goto out_fds;
	CHECK_STR(F.app.events, "PAUSE DRAIN");
	CHECK(handoff_drain_remaining(F.h) > 0 &&
	    handoff_drain_remaining(F.h) <= DRAIN_MS);
	CHECK_INT(peer_tcp_accepts(api), 0);
	CHECK_INT(peer_tcp_accepts(handoff_fd(F.h, "http")), 1);
	CHECK(wait_log("released to pid %ld", (long)getpid()));

	/* The successor vanishes without a word. */
	wire_close_fds(fds, (size_t)nfds);
	close(fd);
	EXPECT_EVENTS("PAUSE DRAIN RESUME");
	CHECK(wait_log("rolled back: successor pid %ld vanished while we "
	    "drained; accepting again", (long)getpid()));
	CHECK_INT(handoff_drain_remaining(F.h), 0);
	CHECK_INT(handoff_fd(F.h, "api"), api);
	CHECK_STR(peer_inet_name(api, api_after, sizeof(api_after)),
	    api_before);
	check_serving_listeners();
	check_state("serving");

	/* And the next successor is offered the same listeners. */
	if ((fd = released_successor(fds, &nfds)) == -1)
		goto out;
	CHECK_STR(F.app.events, "PAUSE DRAIN RESUME PAUSE DRAIN");
	CHECK_INT(peer_send(fd, msg_new("hammer")), 0);
	EXPECT_EVENTS("PAUSE DRAIN RESUME PAUSE DRAIN HAMMER");
out_fds:
	wire_close_fds(fds, (size_t)nfds);
out_fd:
	close(fd);
out:
	teardown();
}

/* status: a report of who serves on what, then the connection closes. */
static void
test_status(void)
{
	json_t	*r, *l, *e;
	char	 addr[64];
	size_t	 i;

	if (setup(2, 0, 0) == -1)
		goto out;
	F.conns = 7;
	if ((r = status()) == NULL)
		goto out;
	CHECK_INT(peer_int(r, "pid"), getpid());
	CHECK_INT(peer_int(r, "generation"), 1);
	CHECK_STR(peer_str(r, "tag"), "v1");
	CHECK_STR(peer_str(r, "state"), "serving");
	CHECK_INT(peer_int(r, "connections"), 7);
	CHECK_INT(peer_int(r, "count"), 3);
	CHECK_INT(peer_int(r, "predecessor"), 0);
	CHECK(json_is_null(json_object_get(r, "successor")));
	l = json_object_get(r, "listeners");
	CHECK_INT(json_array_size(l), 3);
	e = json_array_get(l, 0);
	CHECK_STR(peer_str(e, "name"), "@control");
	CHECK_STR(peer_str(e, "kind"), "unix");
	CHECK_STR(peer_str(e, "socktype"), "seqpacket");
	CHECK_STR(peer_str(e, "address"), F.path);
	CHECK(json_is_true(json_object_get(e, "listening")));
	CHECK(json_object_get(e, "spec") == NULL);
	for (i = 1; i < json_array_size(l); i++) {
		e = json_array_get(l, i);
		CHECK_STR(peer_str(e, "name"), wanted[i - 1].name);
		CHECK_STR(peer_str(e, "kind"), "tcp");
		CHECK_STR(peer_str(e, "family"), "inet");
		CHECK_STR(peer_str(e, "socktype"), "stream");
		CHECK_STR(peer_str(e, "address"), peer_inet_name(
		    handoff_listener_fd(F.h, i - 1), addr, sizeof(addr)));
		CHECK(json_is_true(json_object_get(e, "listening")));
		CHECK_STR(peer_str(e, "spec"), wanted[i - 1].spec);
	}
	json_decref(r);
	CHECK_STR(F.app.events, "");
out:
	teardown();
}

/*
 * handoff_pass_fd: takes the fd even when it refuses; refuses a bad
 * name, a listener's name, and is counted in the offer and in status.
 */
static void
test_pass_fd(void)
{
	json_t	*r;
	int	 p[2], before;

	if (setup(1, 0, 0) == -1)
		goto out;
	before = unit_count_fds();
	CHECK_INT(pipe2(p, O_CLOEXEC), 0);
	CHECK_INT(handoff_pass_fd(F.h, wanted[0].name, p[0]), -1);
	CHECK(strstr(handoff_strerror(F.h), "a listener has that name") !=
	    NULL);
	CHECK_INT(handoff_pass_fd(F.h, "@x", p[1]), -1);
	CHECK_INT(unit_count_fds(), before);	/* both taken, and closed */
	CHECK_INT(pipe2(p, O_CLOEXEC), 0);
	CHECK_INT(handoff_pass_fd(F.h, "state", p[0]), 0);
	CHECK_INT(handoff_fd(F.h, "state"), p[0]);
	CHECK_INT(handoff_pass_fd(F.h, "state", p[1]), 0);	/* replaced */
	CHECK_INT(handoff_fd(F.h, "state"), p[1]);
	CHECK_INT(unit_count_fds(), before + 1);
	/* The handle's own fds are refused, and left open. */
	CHECK_INT(handoff_pass_fd(F.h, "again", p[1]), -1);
	CHECK_INT(handoff_pass_fd(F.h, "alias", handoff_listener_fd(F.h, 0)),
	    -1);
	CHECK(strstr(handoff_strerror(F.h), "is the handle's already") !=
	    NULL);
	CHECK_INT(fcntl(p[1], F_GETFD) != -1, 1);
	CHECK_INT(fcntl(handoff_listener_fd(F.h, 0), F_GETFD) != -1, 1);
	CHECK_INT(unit_count_fds(), before + 1);
	if ((r = status()) != NULL) {
		CHECK_INT(peer_int(r, "count"), 3);
		CHECK_STR(peer_str(json_array_get(json_object_get(r,
		    "listeners"), 2), "kind"), "fd");
		json_decref(r);
	}
out:
	teardown();
}

/* What may open a conversation: hello, status, stop; nothing else. */
static void
test_opening(void)
{
	static const struct {
		const char	*json, *code, *message;
	} bad[] = {
		{ "{\"type\":\"ready\",\"proto\":1,\"pid\":5,\"adopted\":[],"
		    "\"added\":[],\"retired\":[]}", "unexpected",
		    "\"ready\" cannot open a conversation; send hello, status "
		    "or stop" },
		{ "{\"type\":\"hammer\",\"proto\":1}", "unexpected",
		    "\"hammer\" cannot open a conversation; send hello, status "
		    "or stop" },
		{ "{\"type\":\"error\",\"proto\":1,\"code\":\"x\","
		    "\"message\":\"y\"}", "unexpected", "\"error\" cannot "
		    "open a conversation; send hello, status or stop" },
		{ "{\"type\":\"bogus\",\"proto\":1}", "unknown-type",
		    "unknown message type \"bogus\"" },
		{ "{\"type\":\"hello\",\"proto\":2,\"pid\":5,\"max_fds\":9}",
		    "version", "protocol version 2 is not supported (this "
		    "side speaks 1)" },
		{ "{\"type\":\"hello\",\"proto\":1,\"pid\":5}", "malformed",
		    "hello: missing field \"max_fds\"" },
		/* Two listeners and @control, for a successor with room for
		 * one fd. */
		{ "{\"type\":\"hello\",\"proto\":1,\"pid\":5,\"max_fds\":1}",
		    "too-many-fds", "3 listeners to pass but the successor "
		    "can take 1 more fds; raise its RLIMIT_NOFILE" },
	};
	size_t	i;
	int	fd;

	if (setup(2, 0, 0) == -1)
		goto out;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if ((fd = connect_control()) == -1)
			break;
		expect_refusal(fd, json_loads(bad[i].json, 0, NULL),
		    bad[i].code, bad[i].message);
		close(fd);
	}
	CHECK_STR(F.app.events, "");
	check_state("serving");
out:
	teardown();
}

/* Sends raw bytes with fds, as a hostile peer may: no checks. */
static int
raw_send(int fd, const void *buf, size_t len, const int *fds, size_t nfds)
{
	char		 cbuf[CMSG_SPACE(253 * sizeof(int))];
	struct iovec	 iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr	 msg;
	struct cmsghdr	*c;

	memset(&msg, 0, sizeof(msg));
	memset(cbuf, 0, sizeof(cbuf));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		msg.msg_control = cbuf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	return sendmsg(fd, &msg, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/*
 * Garbage, an oversized message, unsolicited fds: each gets error
 * malformed and the close, every fd that came with it is closed, and a
 * well-behaved successor is served afterwards.
 */
static void
test_hostile(void)
{
	static const struct {
		const char	*text;
		size_t		 len, nfds;
		const char	*message;
	} bad[] = {
		{ "garbage", 7, 0, "invalid JSON at byte 7: '[' or '{' "
		    "expected near 'garbage'" },
		{ NULL, WIRE_MAX_MSG + 1, 0, "receive failed: message over "
		    "65536 bytes" },
		{ NULL, 3 * WIRE_MAX_MSG, 0, "receive failed: message over "
		    "65536 bytes" },
		{ "{\"type\":\"status\",\"proto\":1}", 27, 1,
		    "1 unsolicited fd closed" },
		{ "\x00\x01garbage", 9, 3, "3 unsolicited fds closed" },
		{ "", 0, 1, "receive failed: empty message carrying fds" },
		{ "{\"type\":\"status\",\"proto\":1}", 27, 253,
		    "receive failed: " MSG_FDS_LOST },
	};
	static char	 big[3 * WIRE_MAX_MSG];
	json_t		*e;
	int		 fd, sent, fds[253], rfds[WIRE_MAX_FDS], nfds, before;
	size_t		 i, k;

	if (setup(2, 0, 0) == -1)
		goto out;
	memset(big, 'x', sizeof(big));
	/* A socket of its own: no other fd here shares its inode. */
	if ((sent = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		CHECK(!"socket");
		goto out;
	}
	for (k = 0; k < 253; k++)
		fds[k] = sent;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		before = unit_count_fds();
		if ((fd = connect_control()) == -1)
			break;
		CHECK_INT(raw_send(fd, bad[i].text != NULL ? bad[i].text :
		    big, bad[i].len, fds, bad[i].nfds), 0);
		if ((e = ask(fd, NULL, "error")) != NULL) {
			CHECK_STR(peer_str(e, "code"), "malformed");
			CHECK_STR(peer_str(e, "message"), bad[i].message);
			json_decref(e);
		}
		CHECK(wait_eof(fd));
		/* The incumbent kept none of the fds it was sent. */
		CHECK_INT(peer_copies(sent), 1);
		close(fd);
		CHECK_INT(unit_count_fds(), before);
	}
	close(sent);
	CHECK_STR(F.app.events, "");
	check_state("serving");
	if ((fd = released_successor(rfds, &nfds)) == -1)
		goto out;
	CHECK_STR(F.app.events, "PAUSE DRAIN");
	wire_close_fds(rfds, (size_t)nfds);
	close(fd);
	EXPECT_EVENTS("PAUSE DRAIN RESUME");
out:
	teardown();
}

/*
 * A successor that leaves between hello and ready, however it leaves,
 * changes nothing: the incumbent serves on, its listeners untouched,
 * and offers them again to the next one.
 */
static void
test_gone_before_ready(void)
{
	enum { CLOSE, GIVE_UP, WRONG_MESSAGE };
	int	fd, fds[WIRE_MAX_FDS], nfds, how;
	json_t	*offer;

	if (setup(2, 0, 0) == -1)
		goto out;
	for (how = CLOSE; how <= WRONG_MESSAGE; how++) {
		if ((fd = connect_control()) == -1)
			break;
		if ((nfds = take_offer(fd, fds)) == -1) {
			close(fd);
			break;
		}
		wire_close_fds(fds, (size_t)nfds);
		if (how == GIVE_UP) {
			/* An error is not answered: the incumbent closes. */
			CHECK_INT(peer_send(fd, peer_msg("{s:s, s:i, s:s, "
			    "s:s}", "type", "error", "proto", 1, "code",
			    "mismatch", "message", "no room")), 0);
			CHECK(wait_log("successor pid %ld gave up: mismatch: "
			    "no room", (long)getpid()));
			CHECK(wait_eof(fd));
		} else if (how == WRONG_MESSAGE)
			expect_refusal(fd, msg_new("status"), "unexpected",
			    "expected ready, got \"status\"");
		close(fd);
		CHECK(wait_log("successor pid %ld went away before ready: "
		    "still serving", (long)getpid()));
		peer_app_forget_log(&F.app);
		CHECK_STR(F.app.events, "");
		check_serving_listeners();
		check_state("serving");
	}
	/* Offered again, as before. */
	if ((fd = connect_control()) == -1)
		goto out;
	offer = ask(fd, hello_msg(1000), "offer");
	CHECK_INT(peer_int(offer, "count"), 3);
	json_decref(offer);
	close(fd);
out:
	teardown();
}

/* One takeover at a time: a second hello while one is offered is busy. */
static void
test_busy(void)
{
	int	fd, other, fds[WIRE_MAX_FDS], nfds;
	char	text[128];

	if (setup(1, 0, 0) == -1 || (fd = connect_control()) == -1)
		goto out;
	if ((nfds = take_offer(fd, fds)) == -1)
		goto out_fd;
	if ((other = connect_control()) >= 0) {
		snprintf(text, sizeof(text), "pid %ld is already taking over; "
		    "one takeover at a time", (long)getpid());
		expect_refusal(other, hello_msg(1000), "busy", text);
		close(other);
	}
	/* The first one goes on as if nothing happened. */
	close(fds[1]);
	fds[1] = -1;
	CHECK_INT(take_release(fd, "[]", "[\"http\"]", -1), 0);
	CHECK_STR(F.app.events, "PAUSE DRAIN");
	wire_close_fds(fds, (size_t)nfds);
out_fd:
	close(fd);
out:
	teardown();
}

/*
 * stop: stopping, the application pauses and drains, the connection
 * stays open until the handle is gone; meanwhile status says stopping,
 * and hello and stop are busy.
 */
static void
test_stop(void)
{
	json_t	*m;
	char	 text[128];
	int	 fd, other;

	if (setup(1, 0, 0) == -1 || (fd = connect_control()) == -1)
		goto out;
	F.conns = 4;
	if ((m = ask(fd, msg_new("stop"), "stopping")) != NULL) {
		CHECK_INT(peer_int(m, "pid"), getpid());
		CHECK_INT(peer_int(m, "connections"), 4);
		CHECK_INT(peer_int(m, "deadline_ms"), DRAIN_MS);
		json_decref(m);
	}
	CHECK_STR(F.app.events, "PAUSE DRAIN SUPERSEDED");
	CHECK(handoff_drain_remaining(F.h) > 0 &&
	    handoff_drain_remaining(F.h) <= DRAIN_MS);
	event_base_loop(F.base, EVLOOP_NONBLOCK);
	CHECK(!peer_readable(&fd));	/* held open */
	check_state("stopping");
	if ((other = connect_control()) >= 0) {
		snprintf(text, sizeof(text), "this server is stopping or "
		    "draining (pid %ld)", (long)getpid());
		expect_refusal(other, hello_msg(1000), "busy", text);
		close(other);
	}
	if ((other = connect_control()) >= 0) {
		expect_refusal(other, msg_new("stop"), "busy",
		    "a takeover or stop is under way");
		close(other);
	}
	CHECK_STR(F.app.events, "PAUSE DRAIN SUPERSEDED");
	/* Its exit is what ends the stop's connection. */
	handoff_free(F.h);
	F.h = NULL;
	CHECK(peer_eof(fd, PEER_STEP_MS));
	close(fd);
out:
	teardown();
}

/* A graceful stop while a successor is offered refuses it. */
static void
test_stop_during_offer(void)
{
	int	fd, fds[WIRE_MAX_FDS], nfds;
	json_t	*e;

	if (setup(1, 0, 0) == -1 || (fd = connect_control()) == -1)
		goto out;
	if ((nfds = take_offer(fd, fds)) == -1)
		goto out_fd;
	wire_close_fds(fds, (size_t)nfds);
	CHECK_INT(handoff_stop(F.h), 0);
	if ((e = ask(fd, NULL, "error")) != NULL) {
		CHECK_STR(peer_str(e, "code"), "stopping");
		CHECK_STR(peer_str(e, "message"), "this server is stopping");
		json_decref(e);
	}
	CHECK(wait_eof(fd));
	CHECK_STR(F.app.events, "PAUSE DRAIN SUPERSEDED");
	check_state("stopping");
out_fd:
	close(fd);
out:
	teardown();
}

/*
 * Nothing said in the I/O timeout; no ready in the ready timeout. Short
 * timeouts, but far longer than the test's own steps between them.
 */
static void
test_timeouts(void)
{
	int	fd, fds[WIRE_MAX_FDS], nfds;

	if (setup(1, 500, 500) == -1)
		goto out;
	if ((fd = connect_control()) >= 0) {
		expect_refusal(fd, NULL, "timeout", "nothing received within "
		    "500 ms");
		close(fd);
	}
	if ((fd = connect_control()) == -1)
		goto out;
	if ((nfds = take_offer(fd, fds)) >= 0) {
		wire_close_fds(fds, (size_t)nfds);
		expect_refusal(fd, NULL, "timeout", "no ready within 500 ms; "
		    "still serving");
	}
	close(fd);
	CHECK_STR(F.app.events, "");
	check_serving_listeners();
	check_state("serving");
out:
	teardown();
}

/*
 * Is fd still open at the incumbent's end? What came meanwhile (the
 * progress sent every second) is read and dropped.
 */
static int
still_open(int fd)
{
	json_t	*m;
	char	 err[256];

	while (peer_readable(&fd)) {
		if ((m = peer_recv(fd, 0, err, sizeof(err))) == NULL)
			return 0;
		json_decref(m);
	}
	return 1;
}

/*
 * What a released successor says while we drain: hammer cuts the drain
 * short; superseded means no rollback ever (keep 0: hammered at once);
 * garbage and unsolicited fds are only logged (its fds closed), since it
 * serves. And a ready that caps draining at 0.
 */
static void
test_while_draining(void)
{
	static const struct {
		const char	*say;		/* sent as it is */
		size_t		 nfds;		/* with this many fds */
		int		 max_draining;	/* in ready; -1: none */
		const char	*events;	/* before the close */
		const char	*after;		/* after the close */
		const char	*ignored;	/* logged: "successor pid P: " */
	} cases[] = {
		{ "{\"type\":\"hammer\",\"proto\":1}", 0, -1,
		    "PAUSE DRAIN HAMMER", "PAUSE DRAIN HAMMER RESUME", NULL },
		{ "{\"type\":\"superseded\",\"proto\":1,\"pid\":9,\"by\":10,"
		    "\"keep\":1,\"max_draining\":2}", 0, -1,
		    "PAUSE DRAIN SUPERSEDED", "PAUSE DRAIN SUPERSEDED", NULL },
		{ "{\"type\":\"superseded\",\"proto\":1,\"pid\":9,\"by\":10,"
		    "\"keep\":0,\"max_draining\":1}", 0, -1,
		    "PAUSE DRAIN SUPERSEDED HAMMER",
		    "PAUSE DRAIN SUPERSEDED HAMMER", NULL },
		{ "garbage", 0, -1, "PAUSE DRAIN", "PAUSE DRAIN RESUME",
		    "malformed: invalid JSON at byte 7: '[' or '{' expected "
		    "near 'garbage'; ignored" },
		{ "{\"type\":\"status\",\"proto\":1}", 2, -1, "PAUSE DRAIN",
		    "PAUSE DRAIN RESUME",
		    "malformed: 2 unsolicited fds closed; ignored" },
		{ NULL, 0, 0, "PAUSE DRAIN HAMMER", "PAUSE DRAIN HAMMER RESUME",
		    NULL },
	};
	int	fd, fds[WIRE_MAX_FDS], nfds, sent[2];
	size_t	i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (setup(1, 0, 0) == -1 || (fd = connect_control()) == -1)
			goto next;
		if ((nfds = take_offer(fd, fds)) == -1 ||
		    take_release(fd, "[\"http\"]", "[]",
		    cases[i].max_draining) == -1) {
			close(fd);
			goto next;
		}
		wire_close_fds(fds, (size_t)nfds);
		/* Two objects of their own, whose copies can be counted. */
		sent[0] = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		sent[1] = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (cases[i].say != NULL)
			CHECK_INT(raw_send(fd, cases[i].say,
			    strlen(cases[i].say), sent, cases[i].nfds), 0);
		EXPECT_EVENTS(cases[i].events);
		if (cases[i].ignored != NULL) {
			CHECK(wait_log("successor pid %ld: %s", (long)getpid(),
			    cases[i].ignored));
			CHECK(still_open(fd));
		}
		CHECK_INT(peer_copies(sent[0]), 1);
		CHECK_INT(peer_copies(sent[1]), 1);
		close(sent[0]);
		close(sent[1]);
		close(fd);
		if (strstr(cases[i].after, "RESUME") == NULL)
			CHECK(wait_log("successor pid %ld has exited, after "
			    "it handed over or stopped: draining on",
			    (long)getpid()));
		EXPECT_EVENTS(cases[i].after);
next:
		teardown();
	}
}

/*
 * The successor said a takeover of it was under way (takeover, by a
 * pid), then vanished: the incumbent holds and asks status on the
 * control path. The test, holding the successor's copy of the control
 * socket, is whoever serves there now: a report from another pid means
 * a newer generation serves (drain on, never roll back); no answer
 * means nobody does (roll back).
 */
static void
test_hold(void)
{
	json_t	*req;
	char	 err[256];
	int	 fd, fds[WIRE_MAX_FDS], nfds, ctl, probe, newer;

	for (newer = 1; newer >= 0; newer--) {
		if (setup(1, 0, 0) == -1 || (fd = released_successor(fds,
		    &nfds)) == -1)
			goto next;
		CHECK_INT(peer_send(fd, peer_msg("{s:s, s:i, s:i, s:i}",
		    "type", "takeover", "proto", 1, "pid", (int)getpid(), "by",
		    4242)), 0);
		CHECK(wait_log("successor pid %ld is being taken over by pid "
		    "4242", (long)getpid()));
		ctl = fds[0];
		fds[0] = -1;
		wire_close_fds(fds, (size_t)nfds);
		close(fd);
		EXPECT_EVENTS("PAUSE DRAIN HOLD");
		CHECK_INT(handoff_drain_remaining(F.h), 0);
		/* Its status request waits on the control socket we hold. */
		CHECK_INT(peer_loop_until(F.base, peer_readable, &ctl,
		    PEER_STEP_MS), 0);
		probe = accept4(ctl, NULL, NULL, SOCK_CLOEXEC);
		CHECK(probe >= 0);
		close(ctl);
		req = probe >= 0 ? peer_recv(probe, PEER_STEP_MS, err,
		    sizeof(err)) : NULL;
		CHECK_STR(req != NULL ? msg_type(req) : err, "status");
		json_decref(req);
		if (newer) {
			CHECK_INT(peer_send(probe, peer_msg("{s:s, s:i, s:i, "
			    "s:i, s:s, s:s, s:i, s:[]}", "type", "report",
			    "proto", 1, "pid", 4242, "generation", 3, "tag",
			    "v3", "state", "serving", "connections", 0,
			    "listeners")), 0);
			EXPECT_EVENTS("PAUSE DRAIN HOLD DRAIN");
			CHECK(wait_log("pid 4242 (generation 3, tag \"v3\") "
			    "serves on %s: no rollback; draining on", F.path));
			CHECK(handoff_drain_remaining(F.h) > 0);
		} else {
			close(probe);
			probe = -1;
			EXPECT_EVENTS("PAUSE DRAIN HOLD RESUME");
			CHECK(wait_log("our status request on %s got no "
			    "answer: no newer generation serves", F.path));
			check_serving_listeners();
			check_state("serving");
		}
		if (probe >= 0)
			close(probe);
next:
		teardown();
	}
}

/*
 * What every datagram waiting on fd says, without the informative
 * STATUS= and MONOTONIC_USEC= lines: "A;B | C" for two datagrams.
 */
static const char *
notices(int fd, char *out, size_t len)
{
	char	buf[4096], *line, *save;
	size_t	off = 0;
	ssize_t	n;
	int	first;

	out[0] = '\0';
	while ((n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) >= 0) {
		buf[n] = '\0';
		if (off > 0 && off + 3 < len)
			off += (size_t)snprintf(out + off, len - off, " | ");
		first = 1;
		for (line = strtok_r(buf, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save)) {
			if (strncmp(line, "STATUS=", 7) == 0 ||
			    strncmp(line, "MONOTONIC_USEC=", 15) == 0 ||
			    off + strlen(line) + 2 >= len)
				continue;
			off += (size_t)snprintf(out + off, len - off, "%s%s",
			    first ? "" : ";", line);
			first = 0;
		}
	}
	return out;
}

/*
 * Under a service manager (NOTIFY_SOCKET, README "systemd"): READY=1
 * once serving, RELOADING=1 at a successor's hello, MAINPID= the
 * successor (of our unit: here, ourselves) at its ready; at a rollback
 * MAINPID= ourselves and READY=1 again; STOPPING=1 on a stop.
 */
static void
test_notify(void)
{
	char	name[64], got[512], want[512];
	int	ns, fd, fds[WIRE_MAX_FDS], nfds;
	long	pid = (long)getpid();

	snprintf(name, sizeof(name), "@handoff-unit-notify-%ld", pid);
	if ((ns = peer_dgram_at(name)) == -1) {
		CHECK(!"notify socket");
		return;
	}
	setenv("NOTIFY_SOCKET", name, 1);
	if (setup(1, 0, 0) == -1)
		goto out;
	CHECK_STR(notices(ns, got, sizeof(got)), "READY=1");
	if ((fd = connect_control()) == -1)
		goto out;
	if ((nfds = take_offer(fd, fds)) == -1)
		goto out_fd;
	CHECK_STR(notices(ns, got, sizeof(got)), "RELOADING=1");
	if (take_release(fd, "[\"http\"]", "[]", -1) == 0) {
		snprintf(want, sizeof(want), "MAINPID=%ld", pid);
		CHECK_STR(notices(ns, got, sizeof(got)), want);
	}
	wire_close_fds(fds, (size_t)nfds);
	close(fd);
	EXPECT_EVENTS("PAUSE DRAIN RESUME");
	snprintf(want, sizeof(want), "MAINPID=%ld;READY=1", pid);
	CHECK_STR(notices(ns, got, sizeof(got)), want);
	CHECK_INT(handoff_stop(F.h), 0);
	CHECK_STR(notices(ns, got, sizeof(got)), "STOPPING=1");
	goto out;
out_fd:
	close(fd);
out:
	unsetenv("NOTIFY_SOCKET");
	teardown();
	close(ns);
}

int
main(void)
{
	alarm(300);	/* against a hang; every step has its own bound */
	unsetenv("NOTIFY_SOCKET");	/* ours to set, in test_notify */
	test_takeover_rollback();
	test_status();
	test_pass_fd();
	test_opening();
	test_hostile();
	test_gone_before_ready();
	test_busy();
	test_stop();
	test_stop_during_offer();
	test_timeouts();
	test_while_draining();
	test_hold();
	test_notify();
	return unit_done("test_incumbent");
}
