/*
 * test_httpserv: tools/httpserv.c over real loopback TCP connections:
 * pipelining in order, HEAD, keep-alive, limits, Connection: close, the
 * read timeout, and a connection moved between two servers on one
 * event_base (hs_detach_idle, then hs_adopt with the unconsumed bytes),
 * each request answered once. Every fd is counted in /proc/self/fd.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "httpserv.h"
#include "unit.h"

/* Bound of every wait: against hangs only. */
#define WAIT_MS		10000
#define STREAM_MAX	65536

/* What one server saw; its request callback answers "NAME PATH\n". */
struct server {
	const char		*name;
	struct hs_server	*hs;
	struct hs_listener	*lis;
	char			 order[512];	/* paths, in dispatch order */
	struct hs_request	*held;		/* /hold, not yet answered */
	int			 accepted, idle, closed;
	struct hs_conn		*last;		/* last accepted */
	struct server		*move_to;	/* on IDLE: detach, adopt */
	int			 moved;
};

struct client {
	int	fd;
	char	buf[STREAM_MAX];
	size_t	len;
	int	eof;
};

static struct event_base	*base;

static void
answer(struct hs_request *req, void *arg)
{
	struct server	*s = arg;
	char		 body[128];
	const char	*path = hs_request_path(req);

	snprintf(s->order + strlen(s->order), sizeof(s->order) -
	    strlen(s->order), "%s ", path);
	if (strcmp(path, "/hold") == 0) {
		s->held = req;
		return;
	}
	snprintf(body, sizeof(body), "%s %s\n", s->name, path);
	hs_respond(req, 200, "OK", "text/plain", body, strlen(body));
}

/* Detaches c from its server and adopts it into to, with its bytes. */
static int
move_conn(struct hs_conn *c, struct server *to)
{
	struct evbuffer	*un = evbuffer_new();
	int		 fd = -1, rc = -1;

	if (un == NULL || hs_detach_idle(c, &fd, un) == -1)
		goto out;
	/* Still open, and ours now. */
	CHECK(fcntl(fd, F_GETFD) != -1);
	if (hs_adopt(to->hs, fd, evbuffer_pullup(un, -1),
	    evbuffer_get_length(un)) == NULL) {
		close(fd);
		goto out;
	}
	rc = 0;
out:
	if (un != NULL)
		evbuffer_free(un);
	return rc;
}

static void
conn_seen(struct hs_conn *c, enum hs_conn_event ev, void *arg)
{
	struct server	*s = arg;

	switch (ev) {
	case HS_CONN_ACCEPTED:
		s->accepted++;
		s->last = c;
		break;
	case HS_CONN_IDLE:
		s->idle++;
		if (s->move_to != NULL && move_conn(c, s->move_to) == 0)
			s->moved++;
		break;
	case HS_CONN_CLOSED:
		s->closed++;
		if (s->last == c)
			s->last = NULL;
		break;
	}
}

/* A server on a fresh loopback port: 0, or -1. */
static int
server_start(struct server *s, const char *name)
{
	struct sockaddr_in	sin;
	int			fd;

	memset(s, 0, sizeof(*s));
	s->name = name;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 16) == -1 || (s->hs = hs_new(base, answer, s)) == NULL ||
	    (s->lis = hs_listen(s->hs, fd)) == NULL) {
		if (fd != -1)
			close(fd);
		hs_free(s->hs);
		return -1;
	}
	hs_set_conn_cb(s->hs, conn_seen, s);
	return 0;
}

/* The listener's fd is ours (the test's), not the server's. */
static void
server_stop(struct server *s)
{
	int	fd = s->lis != NULL ? hs_listener_fd(s->lis) : -1;

	hs_free(s->hs);
	s->hs = NULL;
	if (fd != -1)
		close(fd);
}

static int
server_port(struct server *s)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);

	if (getsockname(hs_listener_fd(s->lis), (struct sockaddr *)&sin,
	    &len) == -1)
		return -1;
	return ntohs(sin.sin_port);
}

static int
client_open(struct client *c, struct server *s)
{
	struct sockaddr_in	sin;

	memset(c, 0, sizeof(*c));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(server_port(s));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd == -1 || connect(c->fd, (struct sockaddr *)&sin,
	    sizeof(sin)) == -1) {
		if (c->fd != -1)
			close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

static void
client_close(struct client *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
}

/* Closes with a reset, as a client gone away does. */
static void
client_reset(struct client *c)
{
	struct linger	l = { 1, 0 };

	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	client_close(c);
}

static void
client_send(struct client *c, const char *text)
{
	CHECK_INT(send(c->fd, text, strlen(text), MSG_NOSIGNAL),
	    (ssize_t)strlen(text));
}

/* Takes what has arrived, without waiting. */
static void
client_poll(struct client *c)
{
	ssize_t	n;

	while (!c->eof && c->len < sizeof(c->buf) - 1) {
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len,
		    MSG_DONTWAIT);
		if (n == 0)
			c->eof = 1;
		if (n <= 0)
			break;
		c->len += (size_t)n;
	}
	c->buf[c->len] = '\0';
}

/* The client's stream with the Date lines (which change) taken out. */
static const char *
client_text(struct client *c)
{
	static char	text[STREAM_MAX];
	const char	*p = c->buf, *date, *end;
	size_t		 n = 0;

	while ((date = strstr(p, "\r\nDate: ")) != NULL &&
	    (end = strstr(date + 2, "\r\n")) != NULL) {
		memcpy(text + n, p, (size_t)(date - p));
		n += (size_t)(date - p);
		p = end;
	}
	snprintf(text + n, sizeof(text) - n, "%s", p);
	return text;
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
}

/*
 * Runs the loop until cond(arg) holds, polling the clients given (up to
 * two) before each look; 0 then, -1 after WAIT_MS.
 */
static int
run_until(int (*cond)(void *), void *arg, struct client *c1,
    struct client *c2)
{
	struct timeval	 start, now, d;
	struct event	*t = event_new(base, -1, EV_PERSIST, tick, NULL);
	struct timeval	 every = { 0, 2000 };
	int		 rc = -1;

	gettimeofday(&start, NULL);
	if (t == NULL || event_add(t, &every) == -1)
		goto out;
	for (;;) {
		if (c1 != NULL)
			client_poll(c1);
		if (c2 != NULL)
			client_poll(c2);
		if (cond(arg)) {
			rc = 0;
			break;
		}
		gettimeofday(&now, NULL);
		timersub(&now, &start, &d);
		if (d.tv_sec * 1000 + d.tv_usec / 1000 > WAIT_MS)
			break;
		event_base_loop(base, EVLOOP_ONCE);
	}
out:
	if (t != NULL)
		event_free(t);
	return rc;
}

struct want {
	struct client	*c;
	size_t		 len;
};

/* The stream holds at least want->len bytes (Dates aside), or ended. */
static int
has_len(void *arg)
{
	struct want	*w = arg;

	return w->c->eof || strlen(client_text(w->c)) >= w->len;
}

/* Waits for exactly the stream want (Dates aside). */
static void
expect_stream(struct client *c, const char *want)
{
	struct want	w = { c, strlen(want) };

	CHECK_INT(run_until(has_len, &w, c, NULL), 0);
	CHECK_STR(client_text(c), want);
}

static int
has_eof(void *arg)
{
	return ((struct client *)arg)->eof;
}

static int
flag_set(void *arg)
{
	return *(int *)arg != 0;
}

static int
held(void *arg)
{
	return ((struct server *)arg)->held != NULL;
}

/* The response of answer() to GET path on server name, keep-alive. */
static const char *
ok(const char *name, const char *path, int head)
{
	static char	r[8][256];
	static int	i;
	char		body[64];

	i = (i + 1) % 8;
	snprintf(body, sizeof(body), "%s %s\n", name, path);
	snprintf(r[i], sizeof(r[i]), "HTTP/1.1 200 OK\r\nContent-Type: "
	    "text/plain\r\nContent-Length: %zu\r\n\r\n%s", strlen(body),
	    head ? "" : body);
	return r[i];
}

#define GET(path)	"GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

/* Appends to the text want of size bytes. */
static void
want_add(char *want, size_t size, const char *text)
{
	size_t	n = strlen(want);

	snprintf(want + n, size - n, "%s", text);
}

/* A server and a client of it: 0, or -1 (said). */
static int
start_one(struct server *s, struct client *c)
{
	if (server_start(s, "A") == -1)
		return -1;
	if (client_open(c, s) == 0)
		return 0;
	server_stop(s);
	CHECK(!"client");
	return -1;
}

/* The end of a test whose client used one connection throughout. */
static void
finish_one(struct server *s, struct client *c)
{
	CHECK(!c->eof);
	CHECK_INT(s->accepted, 1);
	CHECK_INT(hs_conn_count(s->hs), 1);
	client_close(c);
	server_stop(s);
}

/* Two requests in one write: answered in order, the second only once the
 * first (held) is answered. */
static void
test_pipelined(void)
{
	struct server	s;
	struct client	c;
	char		want[1024] = "";

	if (start_one(&s, &c) == -1)
		return;
	client_send(&c, GET("/1") GET("/2"));
	want_add(want, sizeof(want), ok("A", "/1", 0));
	want_add(want, sizeof(want), ok("A", "/2", 0));
	expect_stream(&c, want);
	CHECK_STR(s.order, "/1 /2 ");

	client_send(&c, GET("/hold") GET("/3"));
	CHECK_INT(run_until(held, &s, &c, NULL), 0);
	/* Read together with /hold, /3 waits for its answer. */
	CHECK_STR(s.order, "/1 /2 /hold ");
	if (s.held != NULL)
		hs_respond(s.held, 200, "OK", "text/plain", "held\n", 5);
	s.held = NULL;
	want_add(want, sizeof(want), "HTTP/1.1 200 OK\r\nContent-Type: "
	    "text/plain\r\nContent-Length: 5\r\n\r\nheld\n");
	want_add(want, sizeof(want), ok("A", "/3", 0));
	expect_stream(&c, want);
	CHECK_STR(s.order, "/1 /2 /hold /3 ");
	finish_one(&s, &c);
}

/* HEAD: the headers of GET (its Content-Length too), no body; the next
 * response follows at once. Then keep-alive: one connection, serially. */
static void
test_head_keepalive(void)
{
	struct server	s;
	struct client	c;
	char		want[1024] = "";

	if (start_one(&s, &c) == -1)
		return;
	client_send(&c, "HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n" GET("/g"));
	want_add(want, sizeof(want), ok("A", "/h", 1));
	want_add(want, sizeof(want), ok("A", "/g", 0));
	expect_stream(&c, want);
	client_send(&c, GET("/again"));
	want_add(want, sizeof(want), ok("A", "/again", 0));
	expect_stream(&c, want);
	finish_one(&s, &c);
}

/* Connection: close, HTTP/1.0 with and without keep-alive, another
 * method, and the drain's close-all. */
static void
test_close(void)
{
	struct server	s;
	struct client	c;

	if (server_start(&s, "A") == -1) {
		CHECK(!"server");
		return;
	}
	if (client_open(&c, &s) == 0) {
		client_send(&c, "GET /c HTTP/1.1\r\nConnection: close\r\n\r\n"
		    GET("/never"));
		CHECK_INT(run_until(has_eof, &c, &c, NULL), 0);
		CHECK_STR(client_text(&c), "HTTP/1.1 200 OK\r\nContent-Type: "
		    "text/plain\r\nContent-Length: 5\r\nConnection: close\r\n"
		    "\r\nA /c\n");
		client_close(&c);
	}
	if (client_open(&c, &s) == 0) {
		client_send(&c, "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n"
		    "\r\nGET /z HTTP/1.0\r\n\r\n");
		CHECK_INT(run_until(has_eof, &c, &c, NULL), 0);
		CHECK_STR(client_text(&c), "HTTP/1.0 200 OK\r\nContent-Type: "
		    "text/plain\r\nContent-Length: 5\r\nConnection: keep-alive"
		    "\r\n\r\nA /k\nHTTP/1.0 200 OK\r\nContent-Type: text/plain"
		    "\r\nContent-Length: 5\r\nConnection: close\r\n\r\nA /z\n");
		client_close(&c);
	}
	if (client_open(&c, &s) == 0) {
		client_send(&c, "POST /p HTTP/1.1\r\nHost: t\r\n"
		    "Content-Length: 3\r\n\r\nabc");
		expect_stream(&c, "HTTP/1.1 501 Not Implemented\r\n"
		    "Content-Type: text/plain\r\nContent-Length: 16\r\n"
		    "Allow: GET, HEAD\r\n\r\nNot Implemented\n");
		hs_set_close_all(s.hs, 1);
		client_send(&c, GET("/after"));
		CHECK_INT(run_until(has_eof, &c, &c, NULL), 0);
		CHECK_STR(client_text(&c), "HTTP/1.1 501 Not Implemented\r\n"
		    "Content-Type: text/plain\r\nContent-Length: 16\r\n"
		    "Allow: GET, HEAD\r\n\r\nNot Implemented\n"
		    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		    "Content-Length: 9\r\nConnection: close\r\n\r\nA /after\n");
		client_close(&c);
	}
	CHECK_STR(s.order, "/c /k /z /after ");
	CHECK_INT(run_until(flag_set, &s.closed, NULL, NULL), 0);
	server_stop(&s);
}

struct closed_all {
	struct server	*s;
	int		 n;
};

static int
closed_n(void *arg)
{
	struct closed_all	*w = arg;

	return w->s->closed >= w->n;
}

/* A head over the limit, ended or not: 431 and closed. */
static void
test_limits(void)
{
	struct server		s;
	struct client		c;
	struct closed_all	w = { &s, 2 };
	char			*big;
	const char		*want = "HTTP/1.1 431 Request Header Fields "
	    "Too Large\r\nContent-Type: text/plain\r\nContent-Length: 32\r\n"
	    "Connection: close\r\n\r\nRequest Header Fields Too Large\n";

	if (server_start(&s, "A") == -1 || (big = malloc(HS_MAX_HEAD +
	    64)) == NULL) {
		CHECK(!"server");
		return;
	}
	memset(big, 'a', HS_MAX_HEAD + 63);
	big[HS_MAX_HEAD + 63] = '\0';
	if (client_open(&c, &s) == 0) {
		client_send(&c, "GET / HTTP/1.1\r\nX-Big: ");
		client_send(&c, big);
		client_send(&c, "\r\n\r\n");
		CHECK_INT(run_until(has_eof, &c, &c, NULL), 0);
		CHECK_STR(client_text(&c), want);
		client_close(&c);
	}
	/* No end of the head in sight. */
	if (client_open(&c, &s) == 0) {
		client_send(&c, "GET /");
		client_send(&c, big);
		CHECK_INT(run_until(has_eof, &c, &c, NULL), 0);
		CHECK_STR(client_text(&c), want);
		client_close(&c);
	}
	CHECK_INT(run_until(closed_n, &w, NULL, NULL), 0);
	CHECK_STR(s.order, "");
	CHECK_INT(hs_conn_count(s.hs), 0);
	free(big);
	server_stop(&s);
}

/* The read timeout closes a half-sent request, not one we hold. */
static void
test_timeout(void)
{
	struct server	s;
	struct client	half, hold;

	if (server_start(&s, "A") == -1) {
		CHECK(!"server");
		return;
	}
	hs_set_timeouts(s.hs, 100, 1000);
	if (client_open(&hold, &s) == 0 && client_open(&half, &s) == 0) {
		client_send(&hold, GET("/hold"));
		CHECK_INT(run_until(held, &s, NULL, NULL), 0);
		client_send(&half, "GET / HTTP/1.1\r\nHost: ");
		CHECK_INT(run_until(has_eof, &half, &half, &hold), 0);
		CHECK_STR(client_text(&half), "");
		/* Sent before half's, and idle as long: still served. */
		CHECK(!hold.eof);
		CHECK_INT(hs_conn_count(s.hs), 1);
		if (s.held != NULL)
			hs_respond(s.held, 200, "OK", "text/plain", "late\n",
			    5);
		s.held = NULL;
		expect_stream(&hold, "HTTP/1.1 200 OK\r\nContent-Type: "
		    "text/plain\r\nContent-Length: 5\r\n\r\nlate\n");
		client_close(&half);
		client_close(&hold);
	}
	server_stop(&s);
}

/* Bytes read elsewhere: a whole request and half the next, the rest
 * from the socket later. */
static void
test_adopt(void)
{
	static const char	pre[] = GET("/1") "GET /2 HTTP/1.1\r\nHo";
	struct server		s, other;
	struct client		c;
	int			fd;
	char			want[1024];

	if (server_start(&s, "A") == -1 || server_start(&other, "X") == -1 ||
	    client_open(&c, &other) == -1) {
		CHECK(!"servers or client");
		return;
	}
	/* Accepted by hand: other's listener is disabled meanwhile. */
	hs_listener_enable(other.lis, 0);
	fd = accept4(hs_listener_fd(other.lis), NULL, NULL, SOCK_CLOEXEC);
	CHECK(fd != -1);
	if (fd != -1 && hs_adopt(s.hs, fd, pre, sizeof(pre) - 1) == NULL) {
		CHECK(!"hs_adopt");
		close(fd);
	}
	/* Nothing is answered from inside hs_adopt. */
	CHECK_STR(s.order, "");
	expect_stream(&c, ok("A", "/1", 0));
	client_send(&c, "st: t\r\n\r\n");
	snprintf(want, sizeof(want), "%s%s", ok("A", "/1", 0),
	    ok("A", "/2", 0));
	expect_stream(&c, want);
	CHECK_STR(s.order, "/1 /2 ");
	CHECK_INT(s.accepted, 0);
	CHECK_INT(hs_conn_count(s.hs), 1);
	client_close(&c);
	server_stop(&s);
	server_stop(&other);
}

/* An fd of other's, accepted by hand, for s to adopt; -1 on failure. */
static int
hand_accept(struct server *other)
{
	int	fd;

	hs_listener_enable(other->lis, 0);
	fd = accept4(hs_listener_fd(other->lis), NULL, NULL, SOCK_CLOEXEC);
	CHECK(fd != -1);
	return fd;
}

static int
closed_one(void *arg)
{
	return ((struct server *)arg)->closed == 1;
}

/*
 * Adopted idle, a connection is parked (no bufferevent until its client
 * sends): it counts, is idle with nothing pending, is answered once its
 * client sends, closes (calling back) when its client does, detaches
 * with no bytes, and hs_free closes it.
 */
static void
test_parked(void)
{
	struct server	s, other;
	struct client	c, d, e;
	struct hs_conn	*pc;
	struct evbuffer	*un;
	int		fd;

	if (server_start(&s, "A") == -1 || server_start(&other, "X") == -1 ||
	    (un = evbuffer_new()) == NULL) {
		CHECK(!"servers");
		return;
	}
	if (client_open(&c, &other) == 0 && (fd = hand_accept(&other)) != -1) {
		if ((pc = hs_adopt(s.hs, fd, "", 0)) == NULL) {
			CHECK(!"hs_adopt");
			close(fd);
		} else {
			CHECK(hs_conn_idle(pc));
			CHECK_INT(hs_conn_pending(pc), 0);
			/* Accepted blocking: made non-blocking once the
			 * client sends, not while parked. */
			CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK));
		}
		CHECK_INT(hs_conn_count(s.hs), 1);
		client_send(&c, GET("/p"));
		expect_stream(&c, ok("A", "/p", 0));
		CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
		client_close(&c);
		CHECK_INT(run_until(closed_one, &s, NULL, NULL), 0);
		CHECK_INT(hs_conn_count(s.hs), 0);
	}
	if (client_open(&d, &other) == 0 && (fd = hand_accept(&other)) != -1) {
		if ((pc = hs_adopt(s.hs, fd, "", 0)) == NULL) {
			CHECK(!"hs_adopt");
			close(fd);
		} else if (hs_detach_idle(pc, &fd, un) == 0) {
			CHECK_INT(evbuffer_get_length(un), 0);
			CHECK_INT(hs_conn_count(s.hs), 0);
			close(fd);
		} else
			CHECK(!"hs_detach_idle");
		CHECK_INT(run_until(has_eof, &d, &d, NULL), 0);
		client_close(&d);
	}
	if (client_open(&e, &other) == 0 && (fd = hand_accept(&other)) != -1) {
		if (hs_adopt(s.hs, fd, "", 0) == NULL) {
			CHECK(!"hs_adopt");
			close(fd);
		}
		server_stop(&s);	/* closes it, calling nobody */
		CHECK_INT(run_until(has_eof, &e, &e, NULL), 0);
		client_close(&e);
	} else
		server_stop(&s);
	evbuffer_free(un);
	server_stop(&other);
}

static int
pending_is(void *arg)
{
	struct server	*s = arg;

	return s->last != NULL && hs_conn_pending(s->last) ==
	    strlen("GET /1 HTTP/1.1\r\nHost: t\r\n");
}

static void
detach_one(struct hs_conn *c, void *arg)
{
	struct server	*to = arg;

	CHECK_INT(move_conn(c, to), 0);
}

/*
 * From A to B: a connection idle in A with half a request read is
 * detached and adopted by B, which answers it and the next; then one
 * detached on IDLE in A, between a pipelined request A answered and two
 * more read with it, which B answers. Each request once.
 */
static void
test_move(void)
{
	struct server	a, b;
	struct client	c;
	struct evbuffer	*busy;
	char		 want[2048];
	int		 fd;

	if (server_start(&a, "A") == -1 || server_start(&b, "B") == -1 ||
	    (busy = evbuffer_new()) == NULL) {
		CHECK(!"servers");
		return;
	}
	if (client_open(&c, &a) == 0) {
		client_send(&c, "GET /1 HTTP/1.1\r\nHost: t\r\n");
		CHECK_INT(run_until(pending_is, &a, &c, NULL), 0);
		CHECK_INT(hs_foreach_idle(a.hs, detach_one, &b, 5), 1);
		CHECK_INT(hs_conn_count(a.hs), 0);
		CHECK_INT(hs_conn_count(b.hs), 1);
		client_send(&c, "\r\n" GET("/2"));
		snprintf(want, sizeof(want), "%s%s", ok("B", "/1", 0),
		    ok("B", "/2", 0));
		expect_stream(&c, want);
		client_close(&c);
	}
	CHECK_STR(a.order, "");
	CHECK_STR(b.order, "/1 /2 ");

	a.order[0] = b.order[0] = '\0';
	a.move_to = &b;
	if (client_open(&c, &a) == 0) {
		client_send(&c, GET("/1") GET("/2") "GET /3 HTTP/1.1\r\nHo");
		CHECK_INT(run_until(flag_set, &a.moved, &c, NULL), 0);
		client_send(&c, "st: t\r\n\r\n");
		snprintf(want, sizeof(want), "%s%s%s", ok("A", "/1", 0),
		    ok("B", "/2", 0), ok("B", "/3", 0));
		expect_stream(&c, want);
		client_close(&c);
	}
	CHECK_STR(a.order, "/1 ");
	CHECK_STR(b.order, "/2 /3 ");
	CHECK_INT(a.moved, 1);

	/* Not idle: a request in flight stays where it is. */
	a.move_to = NULL;
	if (client_open(&c, &a) == 0) {
		client_send(&c, GET("/hold"));
		CHECK_INT(run_until(held, &a, &c, NULL), 0);
		fd = -1;
		CHECK(a.last != NULL && hs_detach_idle(a.last, &fd,
		    busy) == -1 && errno == EBUSY);
		CHECK_INT(fd, -1);
		CHECK_INT(evbuffer_get_length(busy), 0);
		/* Reset with its request in flight: the answer goes
		 * nowhere, and frees it. */
		client_reset(&c);
		CHECK_INT(run_until(flag_set, &a.closed, NULL, NULL), 0);
		if (a.held != NULL)
			hs_respond(a.held, 200, "OK", "text/plain", "x\n", 2);
		a.held = NULL;
	}
	evbuffer_free(busy);
	server_stop(&a);
	server_stop(&b);
}

/* hs_free closes the connections it still has, calling nobody back. */
static void
test_free_open(void)
{
	struct server	s;
	struct client	c;

	if (start_one(&s, &c) == -1)
		return;
	client_send(&c, GET("/hold"));
	CHECK_INT(run_until(held, &s, &c, NULL), 0);
	server_stop(&s);
	CHECK_INT(s.closed, 0);
	CHECK_INT(run_until(has_eof, &c, &c, NULL), 0);
	client_close(&c);
}

int
main(void)
{
	int	fds;

	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL) {
		fprintf(stderr, "test_httpserv: cannot make an event base\n");
		return 1;
	}
	fds = unit_count_fds();
	test_pipelined();
	test_head_keepalive();
	test_close();
	test_limits();
	test_timeout();
	test_adopt();
	test_parked();
	test_move();
	test_free_open();
	CHECK_INT(unit_count_fds(), fds);
	event_base_free(base);
	return unit_done("test_httpserv");
}
