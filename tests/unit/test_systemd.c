/*
 * test_systemd: the service manager's two protocols as libhandoff speaks
 * them, against sockets and fds the test sets up itself. systemd_notify
 * sends one datagram to NOTIFY_SOCKET (a path, or an abstract name after
 * "@"), and says "not applicable" (0) without one; a fresh handoff_start
 * adopts the sockets passed in LISTEN_FDS (from fd 3) when LISTEN_PID is
 * ours, makes them CLOEXEC and non-blocking, and unsets the variables.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "handoff.h"
#include "peer.h"
#include "systemd.h"
#include "unit.h"

#define LISTEN_FDS_START	3

static char	dir[PATH_MAX];

/* The one datagram waiting on fd, or "(none)". */
static const char *
received(int fd)
{
	static char	buf[4096];
	ssize_t		n;

	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	if (n < 0)
		return "(none)";
	buf[n] = '\0';
	return buf;
}

/* No NOTIFY_SOCKET, or an empty one: not applicable, nothing sent. */
static void
test_not_applicable(void)
{
	int	before = unit_count_fds();

	unsetenv("NOTIFY_SOCKET");
	errno = 0;
	CHECK_INT(systemd_notify("READY=1"), 0);
	CHECK_INT(errno, 0);
	setenv("NOTIFY_SOCKET", "", 1);
	CHECK_INT(systemd_notify("READY=1"), 0);
	unsetenv("NOTIFY_SOCKET");
	CHECK_INT(unit_count_fds(), before);
}

/* A path and an abstract name get the text, exactly, in one datagram. */
static void
test_delivered(void)
{
	char	path[PATH_MAX + 16], abstract[64];
	int	fd, before;

	snprintf(path, sizeof(path), "%s/notify", dir);
	if ((fd = peer_dgram_at(path)) == -1) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		CHECK(!"notify socket");
		return;
	}
	before = unit_count_fds();
	setenv("NOTIFY_SOCKET", path, 1);
	CHECK_INT(systemd_notify("READY=1\nSTATUS=%s, generation %u",
	    "serving", 3u), 1);
	CHECK_STR(received(fd), "READY=1\nSTATUS=serving, generation 3");
	CHECK_INT(systemd_notify("STOPPING=1"), 1);
	CHECK_STR(received(fd), "STOPPING=1");
	CHECK_STR(received(fd), "(none)");
	CHECK_INT(unit_count_fds(), before);
	close(fd);
	unlink(path);

	snprintf(abstract, sizeof(abstract), "@handoff-unit-%ld",
	    (long)getpid());
	if ((fd = peer_dgram_at(abstract)) == -1) {
		CHECK(!"abstract notify socket");
		return;
	}
	setenv("NOTIFY_SOCKET", abstract, 1);
	CHECK_INT(systemd_notify("MAINPID=%ld", 4242L), 1);
	CHECK_STR(received(fd), "MAINPID=4242");
	close(fd);
	/* Nobody there now: a failure, with errno, and no fd left open. */
	before = unit_count_fds();
	errno = 0;
	CHECK_INT(systemd_notify("READY=1"), -1);
	CHECK_INT(errno, ECONNREFUSED);
	setenv("NOTIFY_SOCKET", path, 1);
	errno = 0;
	CHECK_INT(systemd_notify("READY=1"), -1);
	CHECK_INT(errno, ENOENT);
	CHECK_INT(unit_count_fds(), before);
	unsetenv("NOTIFY_SOCKET");
}

/*
 * sun_path holds 108 bytes: a path of 107 (and its NUL) is delivered;
 * one of 108 is refused with ENAMETOOLONG, and nothing is sent or left
 * open.
 */
static void
test_too_long(void)
{
	char	path[200];
	size_t	len = strlen(dir);
	int	fd, before;

	if (len + 2 >= 107) {
		CHECK(!"temporary directory short enough");
		return;
	}
	memset(path, 'n', sizeof(path));
	memcpy(path, dir, len);
	path[len] = '/';
	path[107] = '\0';
	if ((fd = peer_dgram_at(path)) == -1) {
		CHECK(!"notify socket of 107 bytes");
		return;
	}
	setenv("NOTIFY_SOCKET", path, 1);
	CHECK_INT(systemd_notify("READY=1"), 1);
	CHECK_STR(received(fd), "READY=1");
	close(fd);
	unlink(path);

	before = unit_count_fds();
	path[107] = 'n';
	path[108] = '\0';
	setenv("NOTIFY_SOCKET", path, 1);
	errno = 0;
	CHECK_INT(systemd_notify("READY=1"), -1);
	CHECK_INT(errno, ENAMETOOLONG);
	path[107] = '\0';
	CHECK(access(path, F_OK) == -1);
	CHECK_INT(unit_count_fds(), before);
	unsetenv("NOTIFY_SOCKET");
}

/* A TCP listener on 127.0.0.1, placed at fd `at`, inheritable as
 * systemd passes it (not CLOEXEC, blocking). */
static int
listener_at(int at)
{
	struct sockaddr_in	sin;
	int			fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 16) == -1 || (fd != at && dup2(fd, at) == -1)) {
		close(fd);
		return -1;
	}
	if (fd != at)
		close(fd);
	return at;
}

static ino_t
inode(int fd)
{
	struct stat	st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static void
quiet(const char *line, void *arg)
{
	fprintf(stderr, "  | %s\n", line);
}

/*
 * LISTEN_FDS for us: "http" is adopted (fd 3 itself), "extra", which
 * nobody asked for, is not kept; the variables are unset so that our
 * children do not take the fds for theirs. LISTEN_PID of another
 * process: the fds are left alone, and the listeners bound fresh.
 */
static void
test_listen_fds(void)
{
	struct event_base	*base;
	struct handoff		*h;
	char			 ctl[PATH_MAX + 16], spec[96], addr[64],
				 pid[32];
	ino_t			 ino;
	int			 fd, ours;

	snprintf(ctl, sizeof(ctl), "%s/ctl.sock", dir);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	for (ours = 1; ours >= 0; ours--) {
		/* fds 3 and 4 first, before anything else takes them. */
		if (listener_at(LISTEN_FDS_START) == -1 ||
		    listener_at(LISTEN_FDS_START + 1) == -1) {
			CHECK(!"listeners at fds 3 and 4");
			return;
		}
		ino = inode(LISTEN_FDS_START);
		setenv("LISTEN_PID", ours ? pid : "1", 1);
		setenv("LISTEN_FDS", "2", 1);
		setenv("LISTEN_FDNAMES", "http:extra", 1);
		if ((base = event_base_new()) == NULL ||
		    (h = handoff_new(base, ctl)) == NULL) {
			CHECK(!"event base and handle");
			return;
		}
		handoff_set_log_cb(h, quiet, NULL);
		snprintf(spec, sizeof(spec), "tcp://%s", ours ?
		    peer_inet_name(LISTEN_FDS_START, addr, sizeof(addr)) :
		    "127.0.0.1:0");
		CHECK_INT(handoff_listen(h, "http", spec), 0);
		CHECK_INT(handoff_start(h), 0);
		fd = handoff_fd(h, "http");
		if (ours) {
			CHECK_INT(fd, LISTEN_FDS_START);
			CHECK(inode(fd) == ino);
			CHECK_INT(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
			CHECK_INT(fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
			CHECK(fcntl(LISTEN_FDS_START + 1, F_GETFD) == -1 &&
			    errno == EBADF);
			CHECK(getenv("LISTEN_PID") == NULL);
			CHECK(getenv("LISTEN_FDS") == NULL);
			CHECK(getenv("LISTEN_FDNAMES") == NULL);
		} else {
			CHECK(fd > LISTEN_FDS_START + 1);
			CHECK(inode(LISTEN_FDS_START) == ino);
			CHECK_INT(fcntl(LISTEN_FDS_START, F_GETFD), 0);
			CHECK_INT(fcntl(LISTEN_FDS_START + 1, F_GETFD), 0);
			close(LISTEN_FDS_START);
			close(LISTEN_FDS_START + 1);
		}
		handoff_free(h);
		event_base_free(base);
		unlink(ctl);
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_FDNAMES");
	}
}

/* A LISTEN_FDS that is not a count fails the start, saying so. */
static void
test_listen_fds_bad(void)
{
	struct event_base	*base;
	struct handoff		*h;
	char			 ctl[PATH_MAX + 16], pid[32];

	snprintf(ctl, sizeof(ctl), "%s/ctl.sock", dir);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "2x", 1);
	if ((base = event_base_new()) == NULL ||
	    (h = handoff_new(base, ctl)) == NULL) {
		CHECK(!"event base and handle");
		return;
	}
	handoff_set_log_cb(h, quiet, NULL);
	CHECK_INT(handoff_listen(h, "http", "tcp://127.0.0.1:0"), 0);
	CHECK_INT(handoff_start(h), -1);
	CHECK_STR(handoff_strerror(h), "LISTEN_FDS=2x is not a count of fds");
	CHECK(access(ctl, F_OK) == -1);
	handoff_free(h);
	event_base_free(base);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
}

int
main(void)
{
	char	tmpl[] = "/tmp/handoff-unit.XXXXXX", *real;
	int	before;

	alarm(60);	/* against a hang: nothing here waits */
	/* Ours to set: the environment we run in may have its own. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (mkdtemp(tmpl) == NULL || (real = realpath(tmpl, NULL)) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s", real);
	free(real);
	test_listen_fds();	/* first: it needs fds 3 and 4 */
	before = unit_count_fds();
	test_not_applicable();
	test_delivered();
	test_too_long();
	test_listen_fds_bad();
	CHECK_INT(unit_count_fds(), before);
	rmdir(dir);
	return unit_done("test_systemd");
}
