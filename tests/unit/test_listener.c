/*
 * test_listener: listen specs, binding, and what the kernel says a
 * socket is. Binds on ephemeral ports (loopback, and the wildcards for
 * the v6-only check) and in a private directory.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "listener.h"
#include "unit.h"

static char	tmpdir[64];

static unsigned
port_of(int fd)
{
	struct sockaddr_storage	ss;
	socklen_t		len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/* The spec as listener_format writes its address. */
static const char *
spec_address(const struct listener_spec *ls)
{
	static char	buf[LISTENER_ADDR_MAX];

	listener_format((const struct sockaddr *)&ls->addr, ls->addrlen, buf,
	    sizeof(buf));
	return buf;
}

static void
test_parse_ok(void)
{
	struct listener_spec	ls;
	char			err[256], path[128];
	const char		*a;

	err[0] = '\0';
	CHECK_INT(listener_spec_parse("tcp://127.0.0.1:8080", &ls, err,
	    sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK_INT(ls.kind, LISTENER_TCP);
	CHECK_INT(ls.family, AF_INET);
	CHECK_INT(ls.socktype, SOCK_STREAM);
	CHECK_INT(ls.addrlen, sizeof(struct sockaddr_in));
	CHECK_INT(ls.any_port, 0);
	CHECK_STR(spec_address(&ls), "127.0.0.1:8080");

	CHECK_INT(listener_spec_parse("tcp://[::1]:8080", &ls, err,
	    sizeof(err)), 0);
	CHECK_INT(ls.kind, LISTENER_TCP);
	CHECK_INT(ls.family, AF_INET6);
	CHECK_INT(ls.addrlen, sizeof(struct sockaddr_in6));
	CHECK_STR(spec_address(&ls), "[::1]:8080");

	/* A zone is kept, and written as the formatted address writes it. */
	CHECK_INT(listener_spec_parse("tcp://[fe80::1%lo]:8080", &ls, err,
	    sizeof(err)), 0);
	CHECK_INT(ls.family, AF_INET6);
	CHECK_STR(ls.address, "[fe80::1%lo]:8080");

	CHECK_INT(listener_spec_parse("tcp://*:0", &ls, err, sizeof(err)), 0);
	CHECK_INT(ls.kind, LISTENER_TCP);
	CHECK_INT(ls.any_port, 1);
	a = spec_address(&ls);
	CHECK(strcmp(a, "0.0.0.0:0") == 0 || strcmp(a, "[::]:0") == 0);

	CHECK_INT(listener_spec_parse("udp://127.0.0.1:53", &ls, err,
	    sizeof(err)), 0);
	CHECK_INT(ls.kind, LISTENER_UDP);
	CHECK_INT(ls.family, AF_INET);
	CHECK_INT(ls.socktype, SOCK_DGRAM);
	CHECK_INT(ls.any_port, 0);
	CHECK_STR(spec_address(&ls), "127.0.0.1:53");

	CHECK_INT(listener_spec_parse("unix:/abs/path", &ls, err,
	    sizeof(err)), 0);
	CHECK_INT(ls.kind, LISTENER_UNIX);
	CHECK_INT(ls.family, AF_UNIX);
	CHECK_INT(ls.socktype, SOCK_STREAM);
	CHECK_STR(((struct sockaddr_un *)&ls.addr)->sun_path, "/abs/path");
	CHECK_STR(spec_address(&ls), "/abs/path");

	/* 107 bytes of path is the most sun_path holds with its NUL. */
	memset(path, 'p', sizeof(path));
	memcpy(path, "unix:/", 6);
	path[5 + 107] = '\0';
	CHECK_INT(listener_spec_parse(path, &ls, err, sizeof(err)), 0);
	CHECK_INT(strlen(((struct sockaddr_un *)&ls.addr)->sun_path), 107);
}

static void
test_parse_bad(void)
{
	static const struct {
		const char	*spec, *err;
	} bad[] = {
		{ "127.0.0.1:8080", "listen spec \"127.0.0.1:8080\": expected "
		    "tcp://HOST:PORT, tcp://[V6]:PORT, udp://HOST:PORT, "
		    "unix:PATH or fd:" },
		{ "http://127.0.0.1:80", "listen spec \"http://127.0.0.1:80\": "
		    "expected tcp://HOST:PORT, tcp://[V6]:PORT, udp://HOST:PORT, "
		    "unix:PATH or fd:" },
		{ "fd:x", "listen spec \"fd:x\": expected tcp://HOST:PORT, "
		    "tcp://[V6]:PORT, udp://HOST:PORT, unix:PATH or fd:" },
		{ "tcp://127.0.0.1", "listen spec \"tcp://127.0.0.1\": "
		    "expected HOST:PORT" },
		{ "tcp://127.0.0.1:", "listen spec \"tcp://127.0.0.1:\": port "
		    "must be a number from 0 to 65535" },
		{ "tcp://127.0.0.1:65536", "listen spec \"tcp://127.0.0.1:65536"
		    "\": port must be a number from 0 to 65535" },
		{ "tcp://127.0.0.1:99999999999999999999999", "listen spec "
		    "\"tcp://127.0.0.1:99999999999999999999999\": port must be a "
		    "number from 0 to 65535" },
		{ "tcp://127.0.0.1:x", "listen spec \"tcp://127.0.0.1:x\": port "
		    "must be a number from 0 to 65535" },
		{ "udp://127.0.0.1:-1", "listen spec \"udp://127.0.0.1:-1\": port "
		    "must be a number from 0 to 65535" },
		{ "tcp://:80", "listen spec \"tcp://:80\": missing or overlong "
		    "host" },
		{ "tcp://[::1:8080", "listen spec \"tcp://[::1:8080\": expected "
		    "[IPV6]:PORT" },
		{ "tcp://[::1]8080", "listen spec \"tcp://[::1]8080\": expected "
		    "[IPV6]:PORT" },
		{ "tcp://[]:80", "listen spec \"tcp://[]:80\": missing or "
		    "overlong host" },
		{ "unix:run/app.sock", "listen spec \"unix:run/app.sock\": unix "
		    "path must be absolute" },
		{ "unix:", "listen spec \"unix:\": unix path must be absolute" },
	};
	struct listener_spec	ls;
	char			err[512], spec[256], want[512];
	size_t			i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK_INT(listener_spec_parse(bad[i].spec, &ls, err,
		    sizeof(err)), -1);
		CHECK_STR(err, bad[i].err);
	}

	/* 108 bytes of path do not fit. */
	memset(spec, 'p', sizeof(spec));
	memcpy(spec, "unix:/", 6);
	spec[5 + 108] = '\0';
	snprintf(want, sizeof(want), "listen spec \"%s\": unix path longer "
	    "than 107 bytes", spec);
	CHECK_INT(listener_spec_parse(spec, &ls, err, sizeof(err)), -1);
	CHECK_STR(err, want);
}

/*
 * The resolver's reason depends on the machine (no such name, or no DNS
 * at all), so the expected text takes it from getaddrinfo itself.
 */
static void
test_parse_unresolvable(void)
{
	struct listener_spec	 ls;
	struct addrinfo		 hints, *res = NULL;
	char			 err[512], want[512];
	int			 r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	r = getaddrinfo("no-such-host.invalid", "80", &hints, &res);
	if (res != NULL)
		freeaddrinfo(res);
	CHECK(r != 0);
	snprintf(want, sizeof(want), "listen spec \"tcp://no-such-host.invalid"
	    ":80\": cannot resolve \"no-such-host.invalid\": %s",
	    gai_strerror(r));
	CHECK_INT(listener_spec_parse("tcp://no-such-host.invalid:80", &ls,
	    err, sizeof(err)), -1);
	CHECK_STR(err, want);
}

static int
bind_spec(const char *spec, struct listener_spec *ls, char *err,
    size_t len)
{
	if (listener_spec_parse(spec, ls, err, len) == -1)
		return -1;
	err[0] = '\0';
	return listener_bind(ls, spec, err, len);
}

static void
test_bind_v4(void)
{
	struct listener_spec	ls, other;
	struct listener_id	id;
	char			err[512], spec[64], want[512];
	unsigned		port;
	int			fd, fd2, flags;

	fd = bind_spec("tcp://127.0.0.1:0", &ls, err, sizeof(err));
	CHECK(fd >= 0);
	if (fd == -1) {
		fprintf(stderr, "bind: %s\n", err);
		return;
	}
	flags = fcntl(fd, F_GETFD);
	CHECK(flags != -1 && (flags & FD_CLOEXEC));
	flags = fcntl(fd, F_GETFL);
	CHECK(flags != -1 && (flags & O_NONBLOCK));
	port = port_of(fd);
	CHECK(port != 0);
	CHECK_INT(listener_identify(fd, &id), 0);
	CHECK_INT(id.family, AF_INET);
	CHECK_INT(id.socktype, SOCK_STREAM);
	CHECK_INT(id.listening, 1);
	snprintf(want, sizeof(want), "127.0.0.1:%u", port);
	CHECK_STR(id.address, want);
	CHECK_INT(listener_kind_of(&id), LISTENER_TCP);

	/* Matching: any port, the same port, another port, another family. */
	CHECK_INT(listener_matches(&ls, &id), 1);
	snprintf(spec, sizeof(spec), "tcp://127.0.0.1:%u", port);
	CHECK_INT(listener_spec_parse(spec, &other, err, sizeof(err)), 0);
	CHECK_INT(listener_matches(&other, &id), 1);
	snprintf(spec, sizeof(spec), "tcp://127.0.0.1:%u", port == 1 ? 2 : 1);
	CHECK_INT(listener_spec_parse(spec, &other, err, sizeof(err)), 0);
	CHECK_INT(listener_matches(&other, &id), 0);
	snprintf(spec, sizeof(spec), "tcp://[::1]:%u", port);
	CHECK_INT(listener_spec_parse(spec, &other, err, sizeof(err)), 0);
	CHECK_INT(listener_matches(&other, &id), 0);
	snprintf(spec, sizeof(spec), "udp://127.0.0.1:%u", port);
	CHECK_INT(listener_spec_parse(spec, &other, err, sizeof(err)), 0);
	CHECK_INT(listener_matches(&other, &id), 0);

	/* The same fixed port again: refused, and the reason says so. */
	snprintf(spec, sizeof(spec), "tcp://127.0.0.1:%u", port);
	fd2 = bind_spec(spec, &other, err, sizeof(err));
	CHECK_INT(fd2, -1);
	CHECK_INT(errno, EADDRINUSE);
	CHECK(strstr(err, "Address already in use") != NULL);
	snprintf(want, sizeof(want), "cannot bind %s: %s (another process "
	    "holds it)", spec, strerror(EADDRINUSE));
	CHECK_STR(err, want);
	if (fd2 >= 0)
		close(fd2);
	close(fd);
}

static void
test_bind_v6(void)
{
	struct listener_spec	ls;
	struct listener_id	id;
	char			err[512], want[512], spec[64];
	int			fd, fd4, v6only = 0;
	socklen_t		olen = sizeof(v6only);

	fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		printf("test_listener: skipping IPv6 checks: no AF_INET6 "
		    "sockets (%s)\n", strerror(errno));
		return;
	}
	close(fd);
	fd = bind_spec("tcp://[::1]:0", &ls, err, sizeof(err));
	if (fd == -1 && strstr(err, strerror(EADDRNOTAVAIL)) != NULL) {
		printf("test_listener: skipping IPv6 checks: ::1 is not "
		    "configured (%s)\n", err);
		return;
	}
	CHECK(fd >= 0);
	if (fd == -1) {
		fprintf(stderr, "bind: %s\n", err);
		return;
	}
	CHECK_INT(listener_identify(fd, &id), 0);
	CHECK_INT(id.family, AF_INET6);
	CHECK_INT(id.socktype, SOCK_STREAM);
	CHECK_INT(id.listening, 1);
	snprintf(want, sizeof(want), "[::1]:%u", port_of(fd));
	CHECK_STR(id.address, want);
	CHECK_INT(listener_matches(&ls, &id), 1);
	close(fd);

	/*
	 * [::] is v6 only, so it can take the port of 0.0.0.0 beside it.
	 * (The kernel makes a socket bound to ::1 v6-only by itself.) The
	 * IPv4 side is bound first: the kernel may well pick for [::] a
	 * port that another process holds on 127.0.0.1, as a server with
	 * many listeners on port 0 does.
	 */
	fd4 = bind_spec("tcp://0.0.0.0:0", &ls, err, sizeof(err));
	CHECK(fd4 >= 0);
	if (fd4 == -1) {
		fprintf(stderr, "bind: %s\n", err);
		return;
	}
	snprintf(spec, sizeof(spec), "tcp://[::]:%u", port_of(fd4));
	fd = bind_spec(spec, &ls, err, sizeof(err));
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_INT(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
		    &olen), 0);
		CHECK_INT(v6only, 1);
		close(fd);
	} else
		fprintf(stderr, "bind: %s\n", err);
	close(fd4);
}

static void
test_bind_udp(void)
{
	struct listener_spec	ls;
	struct listener_id	id;
	char			err[512], want[512];
	int			fd;

	fd = bind_spec("udp://127.0.0.1:0", &ls, err, sizeof(err));
	CHECK(fd >= 0);
	if (fd == -1) {
		fprintf(stderr, "bind: %s\n", err);
		return;
	}
	CHECK_INT(listener_identify(fd, &id), 0);
	CHECK_INT(id.family, AF_INET);
	CHECK_INT(id.socktype, SOCK_DGRAM);
	CHECK_INT(id.listening, 0);
	snprintf(want, sizeof(want), "127.0.0.1:%u", port_of(fd));
	CHECK_STR(id.address, want);
	CHECK_INT(listener_kind_of(&id), LISTENER_UDP);
	CHECK_INT(listener_matches(&ls, &id), 1);
	close(fd);
}

static void
test_bind_unix(void)
{
	struct listener_spec	ls;
	struct listener_id	id;
	char			err[512], want[512], path[128], spec[160];
	int			fd, fd2;

	snprintf(path, sizeof(path), "%s/app.sock", tmpdir);
	snprintf(spec, sizeof(spec), "unix:%s", path);
	fd = bind_spec(spec, &ls, err, sizeof(err));
	CHECK(fd >= 0);
	if (fd == -1) {
		fprintf(stderr, "bind: %s\n", err);
		return;
	}
	CHECK_INT(listener_identify(fd, &id), 0);
	CHECK_INT(id.family, AF_UNIX);
	CHECK_INT(id.socktype, SOCK_STREAM);
	CHECK_INT(id.listening, 1);
	CHECK_STR(id.address, path);
	CHECK_INT(listener_kind_of(&id), LISTENER_UNIX);
	CHECK_INT(listener_matches(&ls, &id), 1);

	/* In use: the path is not taken over. */
	CHECK_INT(listener_unix_stale(path, err, sizeof(err)), 0);
	fd2 = bind_spec(spec, &ls, err, sizeof(err));
	CHECK_INT(fd2, -1);
	snprintf(want, sizeof(want), "%s is in use by another process", path);
	CHECK_STR(err, want);
	if (fd2 >= 0)
		close(fd2);

	/* Stale once nobody listens: replaced. */
	close(fd);
	CHECK_INT(listener_unix_stale(path, err, sizeof(err)), 1);
	fd = bind_spec(spec, &ls, err, sizeof(err));
	CHECK(fd >= 0);
	CHECK_INT(listener_unix_stale(path, err, sizeof(err)), 0);
	if (fd >= 0)
		close(fd);
	unlink(path);
}

/*
 * The reason for a failed unix bind must be this call's, whatever the
 * caller's buffer held before (here: an earlier, unrelated message).
 */
static void
test_bind_unix_error_text(void)
{
	struct listener_spec	ls;
	char			err[512], want[512], spec[160];
	int			fd;

	snprintf(spec, sizeof(spec), "unix:%s/no-such-dir/app.sock", tmpdir);
	CHECK_INT(listener_spec_parse(spec, &ls, err, sizeof(err)), 0);
	snprintf(err, sizeof(err), "an earlier message");
	fd = listener_bind(&ls, spec, err, sizeof(err));
	CHECK_INT(fd, -1);
	CHECK_INT(errno, ENOENT);
	snprintf(want, sizeof(want), "%s: bind: %s", spec, strerror(ENOENT));
	CHECK_STR(err, want);
	if (fd >= 0)
		close(fd);
}

static void
test_unix_stale(void)
{
	struct sockaddr_un	sun;
	char			err[512], want[512], path[100];
	int			fd;

	snprintf(path, sizeof(path), "%s/absent.sock", tmpdir);
	CHECK_INT(listener_unix_stale(path, err, sizeof(err)), 1);

	/* The control socket is SOCK_SEQPACKET: in use, then stale. */
	snprintf(path, sizeof(path), "%s/ctl.sock", tmpdir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	CHECK_INT(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	CHECK_INT(listen(fd, 1), 0);
	CHECK_INT(listener_unix_stale(path, err, sizeof(err)), 0);
	close(fd);
	CHECK_INT(listener_unix_stale(path, err, sizeof(err)), 1);
	unlink(path);

	/* A datagram socket is in use while bound. */
	snprintf(path, sizeof(path), "%s/dgram.sock", tmpdir);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	CHECK_INT(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	CHECK_INT(listener_unix_stale(path, err, sizeof(err)), 0);
	close(fd);
	CHECK_INT(listener_unix_stale(path, err, sizeof(err)), 1);
	unlink(path);

	/* A regular file is never removed. */
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	err[0] = '\0';
	CHECK_INT(listener_unix_stale(path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s exists and is not a socket; remove "
	    "it or choose another path", path);
	CHECK_STR(err, want);
	unlink(path);
}

/*
 * A listener whose backlog is full is busy, not stale, and checking it
 * must not block. The check runs in a child that SIGALRM ends if it
 * hangs, so a regression fails here instead of hanging the suite.
 */
static void
test_unix_stale_busy(void)
{
	struct sockaddr_un	sun;
	char			err[512];
	int			fd, c1, c2, status = 0;
	pid_t			pid;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/busy.sock", tmpdir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c1 = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	c2 = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	CHECK(fd >= 0 && c1 >= 0 && c2 >= 0);
	CHECK_INT(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	CHECK_INT(listen(fd, 0), 0);
	/* Backlog 0 queues one connection; the next finds it full. */
	CHECK_INT(connect(c1, (struct sockaddr *)&sun, sizeof(sun)), 0);
	CHECK_INT(connect(c2, (struct sockaddr *)&sun, sizeof(sun)), -1);
	CHECK_INT(errno, EAGAIN);
	pid = fork();
	if (pid == 0) {
		alarm(5);
		_exit(listener_unix_stale(sun.sun_path, err, sizeof(err)) == 0 ?
		    0 : 1);
	}
	CHECK(pid > 0);
	if (pid > 0) {
		CHECK_INT(waitpid(pid, &status, 0), pid);
		CHECK(!WIFSIGNALED(status));
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	close(c2);
	close(c1);
	close(fd);
	unlink(sun.sun_path);
}

static void
test_matches_by_hand(void)
{
	struct listener_spec	ls;
	struct listener_id	id;
	char			err[256];

	memset(&id, 0, sizeof(id));
	id.family = AF_INET;
	id.socktype = SOCK_STREAM;
	id.listening = 1;
	snprintf(id.address, sizeof(id.address), "127.0.0.1:8080");
	CHECK_INT(listener_spec_parse("tcp://127.0.0.1:8080", &ls, err,
	    sizeof(err)), 0);
	CHECK_INT(listener_matches(&ls, &id), 1);
	CHECK_INT(listener_spec_parse("tcp://127.0.0.1:8081", &ls, err,
	    sizeof(err)), 0);
	CHECK_INT(listener_matches(&ls, &id), 0);
	CHECK_INT(listener_spec_parse("tcp://127.0.0.1:0", &ls, err,
	    sizeof(err)), 0);
	CHECK_INT(listener_matches(&ls, &id), 1);
	CHECK_INT(listener_spec_parse("tcp://127.0.0.2:0", &ls, err,
	    sizeof(err)), 0);
	CHECK_INT(listener_matches(&ls, &id), 0);
	/* Any port, but the host must be whole: 127.0.0.1 is not 127.0.0.11. */
	snprintf(id.address, sizeof(id.address), "127.0.0.11:8080");
	CHECK_INT(listener_spec_parse("tcp://127.0.0.1:0", &ls, err,
	    sizeof(err)), 0);
	CHECK_INT(listener_matches(&ls, &id), 0);

	id.family = AF_INET6;
	snprintf(id.address, sizeof(id.address), "[::1]:8080");
	CHECK_INT(listener_spec_parse("tcp://[::1]:0", &ls, err,
	    sizeof(err)), 0);
	CHECK_INT(listener_matches(&ls, &id), 1);
	CHECK_INT(listener_spec_parse("tcp://127.0.0.1:8080", &ls, err,
	    sizeof(err)), 0);
	CHECK_INT(listener_matches(&ls, &id), 0);

	id.family = AF_UNIX;
	snprintf(id.address, sizeof(id.address), "/run/app.sock");
	CHECK_INT(listener_spec_parse("unix:/run/app.sock", &ls, err,
	    sizeof(err)), 0);
	CHECK_INT(listener_matches(&ls, &id), 1);
	CHECK_INT(listener_spec_parse("unix:/run/app.sock2", &ls, err,
	    sizeof(err)), 0);
	CHECK_INT(listener_matches(&ls, &id), 0);
}

static void
test_format(void)
{
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;
	struct sockaddr_un	sun;
	struct sockaddr		sa;
	char			buf[LISTENER_ADDR_MAX], want[32];
	socklen_t		base = offsetof(struct sockaddr_un, sun_path);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(80);
	inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
	listener_format((struct sockaddr *)&sin, sizeof(sin), buf, sizeof(buf));
	CHECK_STR(buf, "10.1.2.3:80");

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(443);
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	listener_format((struct sockaddr *)&sin6, sizeof(sin6), buf,
	    sizeof(buf));
	CHECK_STR(buf, "[2001:db8::1]:443");
	/* A link-local address says its zone: the interface's name, or
	 * its index when it has none. */
	inet_pton(AF_INET6, "fe80::1", &sin6.sin6_addr);
	sin6.sin6_scope_id = if_nametoindex("lo");
	listener_format((struct sockaddr *)&sin6, sizeof(sin6), buf,
	    sizeof(buf));
	CHECK_STR(buf, "[fe80::1%lo]:443");
	sin6.sin6_scope_id = 999999;
	listener_format((struct sockaddr *)&sin6, sizeof(sin6), buf,
	    sizeof(buf));
	CHECK_STR(buf, "[fe80::1%999999]:443");

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, "/run/app.sock");
	listener_format((struct sockaddr *)&sun, base + 14, buf, sizeof(buf));
	CHECK_STR(buf, "/run/app.sock");
	listener_format((struct sockaddr *)&sun, sizeof(sun), buf, sizeof(buf));
	CHECK_STR(buf, "/run/app.sock");

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, "\0handoff", 8);
	listener_format((struct sockaddr *)&sun, base + 8, buf, sizeof(buf));
	CHECK_STR(buf, "@handoff");

	listener_format((struct sockaddr *)&sun, base, buf, sizeof(buf));
	CHECK_STR(buf, "(unnamed)");

	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_APPLETALK;
	listener_format(&sa, sizeof(sa), buf, sizeof(buf));
	snprintf(want, sizeof(want), "(family %d)", AF_APPLETALK);
	CHECK_STR(buf, want);
}

/* A TCP socket bound to loopback port 0: not listening, then listening. */
static void
test_tcp_states(int family)
{
	struct sockaddr_in6	sin6;
	struct sockaddr_in	sin;
	struct listener_id	id;
	int			fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = in6addr_loopback;
	CHECK((fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	CHECK_INT(family == AF_INET ? bind(fd, (struct sockaddr *)&sin,
	    sizeof(sin)) : bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)),
	    0);
	CHECK_INT(listener_identify(fd, &id), 0);
	CHECK_INT(id.family, family);
	CHECK_INT(id.socktype, SOCK_STREAM);
	CHECK_INT(id.listening, 0);
	CHECK(strncmp(id.address, family == AF_INET ? "127.0.0.1:" : "[::1]:",
	    family == AF_INET ? 10 : 6) == 0);
	CHECK_INT(listen(fd, 8), 0);
	CHECK_INT(listener_identify(fd, &id), 0);
	CHECK_INT(id.socktype, SOCK_STREAM);
	CHECK_INT(id.listening, 1);
	close(fd);
}

static void
test_identify_other(void)
{
	struct listener_id	id;
	int			p[2], sv[2];

	/* Not a socket: family and type other, its /proc link, which a
	 * dup shares. */
	CHECK_INT(pipe2(p, O_CLOEXEC), 0);
	CHECK_INT(listener_identify(p[0], &id), 0);
	CHECK_INT(id.family, AF_UNSPEC);
	CHECK_INT(id.socktype, 0);
	CHECK_INT(id.listening, 0);
	CHECK(strncmp(id.address, "pipe:[", 6) == 0);
	CHECK_STR(listener_kind_name(listener_kind_of(&id)), "fd");
	CHECK_STR(listener_family_name(id.family), "other");
	{
		struct listener_id	id2;
		int			d = dup(p[1]);

		CHECK_INT(listener_identify(d, &id2), 0);
		CHECK_STR(id2.address, id.address);
		close(d);
	}
	close(p[0]);
	close(p[1]);

	CHECK_INT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv),
	    0);
	CHECK_INT(listener_identify(sv[0], &id), 0);
	CHECK_INT(id.family, AF_UNIX);
	CHECK_INT(id.socktype, SOCK_SEQPACKET);
	CHECK_INT(id.listening, 0);
	CHECK_STR(id.address, "(unnamed)");
	close(sv[0]);
	close(sv[1]);

	/* TCP answers TCP_INFO: bound and then listening, v4 and v6. */
	test_tcp_states(AF_INET);
	test_tcp_states(AF_INET6);
}

/* Specs one process cannot both hold; port 0 never clashes. */
static void
test_clash(void)
{
	static const struct {
		const char	*a, *b;
		int		 clash;
	} cases[] = {
		{ "tcp://127.0.0.1:8080", "tcp://127.0.0.1:8080", 1 },
		{ "tcp://127.0.0.1:8080", "tcp://127.0.0.2:8080", 0 },
		{ "tcp://127.0.0.1:8080", "tcp://127.0.0.1:8081", 0 },
		{ "tcp://0.0.0.0:8080", "tcp://127.0.0.1:8080", 1 },
		{ "tcp://127.0.0.1:8080", "tcp://0.0.0.0:8080", 1 },
		{ "tcp://[::]:8080", "tcp://[::1]:8080", 1 },
		{ "tcp://[::]:8080", "tcp://0.0.0.0:8080", 0 },	/* v6-only */
		{ "tcp://127.0.0.1:8080", "udp://127.0.0.1:8080", 0 },
		{ "udp://127.0.0.1:53", "udp://127.0.0.1:53", 1 },
		{ "udp://0.0.0.0:53", "udp://127.0.0.1:53", 0 },
		{ "tcp://127.0.0.1:0", "tcp://127.0.0.1:0", 0 },
		{ "unix:/run/a.sock", "unix:/run/a.sock", 1 },
		{ "unix:/run/a.sock", "unix:/run/b.sock", 0 },
	};
	struct listener_spec	a, b;
	char			err[256];
	size_t			i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_INT(listener_spec_parse(cases[i].a, &a, err,
		    sizeof(err)), 0);
		CHECK_INT(listener_spec_parse(cases[i].b, &b, err,
		    sizeof(err)), 0);
		if (listener_spec_clash(&a, &b) != cases[i].clash)
			fprintf(stderr, "clash %s %s\n", cases[i].a, cases[i].b);
		CHECK_INT(listener_spec_clash(&a, &b), cases[i].clash);
		/* Two that clash sort next to each other. */
		if (cases[i].clash)
			CHECK_INT(listener_spec_cmp(&a, &b), 0);
	}
	/* A numeric host names one address; "*" names the wildcard of
	 * each family getaddrinfo knows. */
	CHECK_INT(listener_spec_parse("tcp://127.0.0.1:80", &a, err,
	    sizeof(err)), 0);
	CHECK_INT(a.naddrs, 0);
	CHECK_INT(listener_spec_parse("tcp://*:80", &a, err, sizeof(err)), 0);
	CHECK(a.naddrs >= 1);
}

static void
test_names(void)
{
	struct listener_id	id;

	CHECK_STR(listener_kind_name(LISTENER_TCP), "tcp");
	CHECK_STR(listener_kind_name(LISTENER_UDP), "udp");
	CHECK_STR(listener_kind_name(LISTENER_UNIX), "unix");
	CHECK_STR(listener_kind_name(LISTENER_FD), "fd");
	CHECK_STR(listener_family_name(AF_INET), "inet");
	CHECK_STR(listener_family_name(AF_INET6), "inet6");
	CHECK_STR(listener_family_name(AF_UNIX), "unix");
	CHECK_STR(listener_family_name(AF_NETLINK), "other");
	CHECK_STR(listener_socktype_name(SOCK_STREAM), "stream");
	CHECK_STR(listener_socktype_name(SOCK_DGRAM), "dgram");
	CHECK_STR(listener_socktype_name(SOCK_SEQPACKET), "seqpacket");
	CHECK_STR(listener_socktype_name(SOCK_RAW), "other");
	memset(&id, 0, sizeof(id));
	id.family = AF_NETLINK;
	CHECK_INT(listener_kind_of(&id), LISTENER_FD);
}

/* A peer's address, written by listener_format, read back for sendto. */
static void
test_addr_parse(void)
{
	static const char *const good[] = { "127.0.0.1:53", "[::1]:5353",
	    "0.0.0.0:1", "/run/x.sock", "@abstract", "[::ffff:1.2.3.4]:9" };
	static const char *const bad[] = { "", "127.0.0.1", "localhost:53",
	    "127.0.0.1:x", "[::1]53", "[::1]:", ":53", "1.2.3.4:65536",
	    "127.0.0.1:0", "127.1:53", "::1:53", "[127.0.0.1]:53",
	    "@" "0123456789012345678901234567890123456789012345678901234567"
	    "890123456789012345678901234567890123456789012345678" };
	struct sockaddr_storage	ss;
	socklen_t		len;
	char			buf[LISTENER_ADDR_MAX];
	size_t			i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK_INT(listener_addr_parse(good[i], &ss, &len), 0);
		listener_format((struct sockaddr *)&ss, len, buf, sizeof(buf));
		CHECK_STR(buf, good[i]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(listener_addr_parse(bad[i], &ss, &len), -1);
}

int
main(void)
{
	int	before;

	before = unit_count_fds();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/handoff-unit.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_parse_ok();
	test_parse_bad();
	test_parse_unresolvable();
	test_bind_v4();
	test_bind_v6();
	test_bind_udp();
	test_bind_unix();
	test_bind_unix_error_text();
	test_unix_stale();
	test_unix_stale_busy();
	test_matches_by_hand();
	test_format();
	test_addr_parse();
	test_clash();
	test_identify_other();
	test_names();
	CHECK_INT(rmdir(tmpdir), 0);
	CHECK_INT(unit_count_fds(), before);
	return unit_done("test_listener");
}
