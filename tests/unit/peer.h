/*
 * peer: the test's end of a control connection, for unit tests that play
 * the other side of the protocol in the same process (test_incumbent,
 * test_successor). Messages go through wire.c and message.c, as the
 * library's own do; the event loop is stepped, bounded by a deadline,
 * never by a sleep.
 */
#ifndef HANDOFF_UNIT_PEER_H
#define HANDOFF_UNIT_PEER_H

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "handoff.h"
#include "message.h"
#include "wire.h"

/* An upper bound against hangs for each step, never a budget. */
#define PEER_STEP_MS	10000

static inline long long
peer_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A private 0700 directory for a control socket; dir holds its path. */
static inline int
peer_tmpdir(char *dir, size_t len)
{
	char	tmpl[] = "/tmp/handoff-unit.XXXXXX", *real;

	if (mkdtemp(tmpl) == NULL)
		return -1;
	/* The library makes the control path absolute through realpath. */
	if ((real = realpath(tmpl, NULL)) == NULL)
		return -1;
	snprintf(dir, len, "%s", real);
	free(real);
	return 0;
}

/* Removes what the tests leave in dir (sockets, lock files), then dir. */
static inline void
peer_rmdir(const char *dir)
{
	struct dirent	*e;
	DIR		*d;
	char		 path[512];

	if ((d = opendir(dir)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
}

static inline int
peer_connect(const char *path)
{
	struct sockaddr_un	sun;
	int			fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends msg (the reference is taken) with fds (still the caller's). */
static inline int
peer_send_fds(int fd, json_t *msg, const int *fds, size_t nfds)
{
	char	*buf;
	size_t	 len;
	int	 r;

	buf = msg != NULL ? msg_encode(msg, &len) : NULL;
	json_decref(msg);
	if (buf == NULL)
		return -1;
	r = wire_send(fd, buf, len, fds, nfds);
	free(buf);
	return r;
}

static inline int
peer_send(int fd, json_t *msg)
{
	return peer_send_fds(fd, msg, NULL, 0);
}

/* A message built from a jansson format; NULL if it cannot be. */
static inline json_t *
peer_msg(const char *fmt, ...)
{
	json_error_t	 jerr;
	json_t		*m;
	va_list		 ap;

	va_start(ap, fmt);
	m = json_vpack_ex(&jerr, 0, fmt, ap);
	va_end(ap);
	if (m == NULL)
		fprintf(stderr, "peer_msg: %s: %s\n", fmt, jerr.text);
	return m;
}

/*
 * Receives one message within ms. Returns it (a new reference) with its
 * fds in fds (the caller's, *nfds of them), or NULL with why in err:
 * "end of file", "timeout", or the receive or parse error.
 */
static inline json_t *
peer_recv_fds(int fd, int ms, int *fds, size_t max, size_t *nfds, char *err,
    size_t errlen)
{
	json_t		*msg = NULL;
	ssize_t		 n;
	char		*buf;

	*nfds = 0;
	if (wire_wait(fd, POLLIN, ms) == -1) {
		snprintf(err, errlen, "timeout");
		return NULL;
	}
	/* Not static: a fake peer may run in a thread of its own. */
	if ((buf = malloc(WIRE_MAX_MSG)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n = wire_recv(fd, buf, WIRE_MAX_MSG, fds, max, nfds);
	if (n <= 0)
		snprintf(err, errlen, "%s", n == 0 ? "end of file" :
		    strerror(errno));
	else if ((msg = msg_parse(buf, (size_t)n, err, errlen)) == NULL)
		wire_close_fds(fds, *nfds);
	free(buf);
	return msg;
}

/* One message without fds (any that come are closed and counted). */
static inline json_t *
peer_recv(int fd, int ms, char *err, size_t errlen)
{
	int	 fds[WIRE_MAX_FDS];
	size_t	 nfds;
	json_t	*msg;

	msg = peer_recv_fds(fd, ms, fds, WIRE_MAX_FDS, &nfds, err, errlen);
	if (msg != NULL && nfds > 0) {
		wire_close_fds(fds, nfds);
		snprintf(err, errlen, "%zu unexpected fds", nfds);
		json_decref(msg);
		return NULL;
	}
	return msg;
}

/* Waits for end of file on fd: 1 if it came within ms, 0 if not. */
static inline int
peer_eof(int fd, int ms)
{
	char	err[256];
	json_t	*msg;

	msg = peer_recv(fd, ms, err, sizeof(err));
	json_decref(msg);
	return msg == NULL && strcmp(err, "end of file") == 0;
}

static inline const char *
peer_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* An integer field, or -1 if it is not one. */
static inline long long
peer_int(const json_t *o, const char *key)
{
	const json_t	*v = json_object_get(o, key);

	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* The strings of an array field joined with commas, for one CHECK_STR. */
static inline const char *
peer_list(const json_t *o, const char *key, char *buf, size_t len)
{
	const json_t	*v;
	size_t		 i, off = 0;

	buf[0] = '\0';
	if (!json_is_array(json_object_get(o, key)))
		return "(not an array)";
	json_array_foreach(json_object_get(o, key), i, v) {
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
		    i > 0 ? "," : "", json_is_string(v) ?
		    json_string_value(v) : "(not a string)");
		if (off >= len)
			break;		/* cut: the CHECK_STR shows it */
	}
	return buf;
}

/* getsockname of an inet socket as the protocol writes it, A.B.C.D:PORT. */
static inline const char *
peer_inet_name(int fd, char *buf, size_t len)
{
	struct sockaddr_in	sin;
	socklen_t		slen = sizeof(sin);
	char			a[INET_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&sin, &slen) == -1 ||
	    sin.sin_family != AF_INET ||
	    inet_ntop(AF_INET, &sin.sin_addr, a, sizeof(a)) == NULL)
		return "(not an inet socket)";
	snprintf(buf, len, "%s:%u", a, (unsigned)ntohs(sin.sin_port));
	return buf;
}

/* The same socket: the same address, and the same open socket object. */
static inline int
peer_same_socket(int a, int b)
{
	struct sockaddr_storage	sa, sb;
	socklen_t		la = sizeof(sa), lb = sizeof(sb);
	struct stat		st_a, st_b;

	memset(&sa, 0, sizeof(sa));
	memset(&sb, 0, sizeof(sb));
	if (getsockname(a, (struct sockaddr *)&sa, &la) == -1 ||
	    getsockname(b, (struct sockaddr *)&sb, &lb) == -1 ||
	    fstat(a, &st_a) == -1 || fstat(b, &st_b) == -1)
		return 0;
	return la == lb && memcmp(&sa, &sb, la) == 0 &&
	    st_a.st_dev == st_b.st_dev && st_a.st_ino == st_b.st_ino;
}

/* How many fds of this process are copies of fd's socket, fd included. */
static inline int
peer_copies(int fd)
{
	struct dirent	*e;
	struct stat	 want, st;
	DIR		*d;
	int		 n = 0, f;

	if (fstat(fd, &want) == -1 || (d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		f = atoi(e->d_name);
		if (f != dirfd(d) && fstat(f, &st) == 0 &&
		    st.st_dev == want.st_dev && st.st_ino == want.st_ino)
			n++;
	}
	closedir(d);
	return n;
}

static inline int
peer_sockopt(int fd, int opt)
{
	int		v = -1;
	socklen_t	len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, opt, &v, &len) == -1)
		return -1;
	return v;
}

/* A TCP listener on 127.0.0.1, on a port the kernel chooses. */
static inline int
peer_tcp_listener(void)
{
	struct sockaddr_in	sin;
	int			fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 16) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A non-blocking datagram socket bound at name, a path or "@" and an
 * abstract name, as a service manager's NOTIFY_SOCKET.
 */
static inline int
peer_dgram_at(const char *name)
{
	struct sockaddr_un	sun;
	socklen_t		len;
	size_t			n = strlen(name);
	int			fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (n > sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, name, n);
	if (name[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, len) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Does a TCP connect to listener fd's address succeed? 1, 0, or -1. */
static inline int
peer_tcp_accepts(int listener)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	int			fd, r;

	if (getsockname(listener, (struct sockaddr *)&sin, &len) == -1 ||
	    (fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	/* Loopback: the handshake is done, or refused, within connect. */
	r = connect(fd, (struct sockaddr *)&sin, len);
	close(fd);
	if (r == 0)
		return 1;
	return errno == ECONNREFUSED ? 0 : -1;
}

/*
 * Steps the event loop until done(arg) says so, or ms have passed:
 * everything the library does here happens in the loop, so done is
 * asked after every round. 0 when done, -1 at the deadline.
 */
static inline void
peer_wake(evutil_socket_t fd, short what, void *arg)
{
}

static inline int
peer_loop_until(struct event_base *base, int (*done)(void *), void *arg,
    int ms)
{
	struct event	*wake;
	struct timeval	 tv;
	long long	 end = peer_now_ms() + ms, left;
	int		 r = -1;

	if ((wake = evtimer_new(base, peer_wake, NULL)) == NULL)
		return -1;
	for (;;) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (done(arg)) {
			r = 0;
			break;
		}
		if ((left = end - peer_now_ms()) <= 0)
			break;
		tv.tv_sec = left / 1000;
		tv.tv_usec = (left % 1000) * 1000;
		evtimer_add(wake, &tv);
		event_base_loop(base, EVLOOP_ONCE);
		evtimer_del(wake);
	}
	event_free(wake);
	return r;
}

/* For peer_loop_until: fd has something to read, or its end. */
static inline int
peer_readable(void *arg)
{
	struct pollfd	pfd = { .fd = *(int *)arg, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1;
}

/* Steps the loop until fd is readable, then receives what came. */
static inline json_t *
peer_loop_recv(struct event_base *base, int fd, int *fds, size_t max,
    size_t *nfds, char *err, size_t errlen)
{
	*nfds = 0;
	if (peer_loop_until(base, peer_readable, &fd, PEER_STEP_MS) == -1) {
		snprintf(err, errlen, "timeout");
		return NULL;
	}
	return peer_recv_fds(fd, 0, fds, max, nfds, err, errlen);
}

/* What the application sees: its events in order, and the log. */
struct peer_app {
	char	events[256];		/* "PAUSE DRAIN ..." */
	int	nevents;
	char	log[65536];
	size_t	loglen;
};

static inline void
peer_on_event(struct handoff *h, enum handoff_event ev, void *arg)
{
	static const char *const names[] = {
		[HANDOFF_PAUSE] = "PAUSE", [HANDOFF_DRAIN] = "DRAIN",
		[HANDOFF_RESUME] = "RESUME", [HANDOFF_HAMMER] = "HAMMER",
		[HANDOFF_ABORT] = "ABORT", [HANDOFF_HOLD] = "HOLD",
		[HANDOFF_SUPERSEDED] = "SUPERSEDED",
	};
	struct peer_app	*app = arg;
	size_t		 len = strlen(app->events);

	snprintf(app->events + len, sizeof(app->events) - len, "%s%s",
	    len > 0 ? " " : "", (unsigned)ev < sizeof(names) /
	    sizeof(names[0]) ? names[ev] : "?");
	app->nevents++;
}

/* Kept for the checks, and shown in the test's log. */
static inline void
peer_on_log(const char *line, void *arg)
{
	struct peer_app	*app = arg;
	int		 n;

	fprintf(stderr, "  | %s\n", line);
	n = snprintf(app->log + app->loglen, sizeof(app->log) - app->loglen,
	    "%s\n", line);
	if (n > 0 && app->loglen + (size_t)n < sizeof(app->log))
		app->loglen += (size_t)n;
}

static inline void
peer_app_watch(struct peer_app *app, struct handoff *h)
{
	memset(app, 0, sizeof(*app));
	handoff_set_event_cb(h, peer_on_event, app);
	handoff_set_log_cb(h, peer_on_log, app);
}

/* Events in a list like "PAUSE DRAIN". */
static inline int
peer_count_words(const char *s)
{
	int	n = 0;

	for (; *s != '\0'; s++)
		if (*s != ' ' && (s[1] == ' ' || s[1] == '\0'))
			n++;
	return n;
}

struct peer_wait {
	struct peer_app	*app;
	int		 nevents;
	const char	*text;
};

static inline int
peer_events_came(void *arg)
{
	struct peer_wait	*w = arg;

	return w->app->nevents >= w->nevents;
}

/* Steps the loop until the application has seen n events in all. */
static inline void
peer_wait_events(struct event_base *base, struct peer_app *app, int n)
{
	struct peer_wait	w = { app, n, NULL };

	peer_loop_until(base, peer_events_came, &w, PEER_STEP_MS);
}

/* The events seen are exactly want, once as many have come. */
#define PEER_EXPECT_EVENTS(base, app, want) do {			\
	peer_wait_events((base), (app), peer_count_words(want));	\
	CHECK_STR((app)->events, (want));				\
} while (0)

static inline int
peer_log_came(void *arg)
{
	struct peer_wait	*w = arg;

	return strstr(w->app->log, w->text) != NULL;
}

/* Steps the loop until the library has logged text: 1 if it did. */
static inline int
peer_wait_log(struct event_base *base, struct peer_app *app,
    const char *fmt, ...)
{
	struct peer_wait	w = { app, 0, NULL };
	char			text[1024];
	va_list			ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	w.text = text;
	if (peer_loop_until(base, peer_log_came, &w, PEER_STEP_MS) == 0)
		return 1;
	fprintf(stderr, "no log line \"%s\"\n", text);
	return 0;
}

/* Forgets the log so far, so that a line is waited for anew. */
static inline void
peer_app_forget_log(struct peer_app *app)
{
	app->loglen = 0;
	app->log[0] = '\0';
}

#endif
