/*
 * handoffctl: talk to a handoff server over its control socket.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "message.h"
#include "toolutil.h"

/* Exit codes, documented in --help. */
#define EX_OK		0
#define EX_FAIL		1
#define EX_USAGE	2
#define EX_NOSERVER	3
#define EX_REFUSED	4
#define EX_UPGRADE	5
#define EX_TIMEOUT	6

#define POLL_MS		20
#define TAIL_LINES	10
/* A server whose end of file we saw first: how long its exit may take. */
#define LATE_EXIT_MS	2000

static void
usage(FILE *f)
{
	fprintf(f,
"usage: handoffctl status --control PATH [--json]\n"
"       handoffctl stop --control PATH [--timeout SECONDS]\n"
"       handoffctl upgrade --control PATH [--timeout SECONDS] [--log FILE]\n"
"                  -- COMMAND [ARGS...]\n"
"\n"
"  status   who serves on the control socket: pid, generation, tag,\n"
"           state, connections and listeners\n"
"  stop     graceful stop: the server stops accepting, drains and exits;\n"
"           waits until it has exited (default timeout 60 s)\n"
"  upgrade  starts COMMAND in a session of its own (not a child once\n"
"           handoffctl exits) and waits until a newer generation than the\n"
"           one serving now answers on PATH (default timeout 60 s),\n"
"           whatever becomes of COMMAND's own process (it may daemonise);\n"
"           COMMAND's output goes to FILE if given, else where\n"
"           handoffctl's goes. If COMMAND fails (exits non-zero) or the\n"
"           timeout passes first, the running server keeps serving.\n"
"\n"
"exit status: 0 success, 1 failure, 2 usage, 3 no server at PATH,\n"
"             4 refused by the server, 5 upgrade failed (COMMAND failed),\n"
"             6 timed out\n");
}

static long	now_ms(void);
static int	quiet;	/* polling: failures are expected, say nothing */

static void
ctl_warn(const char *fmt, ...)
{
	va_list	ap;

	if (quiet)
		return;
	fprintf(stderr, "handoffctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static int
ctl_connect(const char *path)
{
	struct sockaddr_un	sun;
	int			fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		ctl_warn("control path %s is %zu bytes; a socket path holds "
		    "at most %zu: use a shorter one\n", path, strlen(path),
		    sizeof(sun.sun_path) - 1);
		return -EX_USAGE;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	/* Non-blocking: a server with a full backlog must not hang us. */
	if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) == -1) {
		ctl_warn("socket: %s\n", strerror(errno));
		return -EX_FAIL;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno == EAGAIN) {
			ctl_warn("%s is busy: its backlog is full; try "
			    "again\n", path);
			close(fd);
			return -EX_FAIL;
		}
		ctl_warn("no server at %s: %s%s\n", path,
		    strerror(errno), errno == ECONNREFUSED ?
		    " (stale socket: nobody accepts on it)" : "");
		close(fd);
		return -EX_NOSERVER;
	}
	return fd;
}

/* Sends a bare request and returns the reply of type want, or NULL with
 * *code set. */
static json_t *
ctl_request(int fd, const char *type, const char *want, const char *path,
    int ms, int *code)
{
	struct msg_fail	 f;
	json_t		*reply;

	*code = EX_FAIL;
	/* On EPIPE the server may have answered before closing: read on. */
	if (msg_send(fd, msg_new(type), 0) == -1 && errno != EPIPE &&
	    errno != ECONNRESET) {
		ctl_warn("cannot send %s to %s: %s\n", type, path,
		    strerror(errno));
		return NULL;
	}
	if ((reply = msg_expect(fd, want, ms, NULL, NULL, &f)) != NULL) {
		*code = EX_OK;
		return reply;
	}
	switch (f.why) {
	case MSG_TIMEOUT:
		ctl_warn("no answer from %s within %d ms\n", path, ms);
		*code = EX_TIMEOUT;
		break;
	case MSG_CLOSED:
		ctl_warn("%s closed the connection without an answer%s%s\n",
		    path, f.error != 0 ? ": " : "", f.error != 0 ?
		    strerror(f.error) : "");
		break;
	case MSG_REFUSED:
		ctl_warn("%s refused %s: %s: %s\n", path, type, f.code, f.err);
		*code = EX_REFUSED;
		break;
	case MSG_UNEXPECTED:
		ctl_warn("%s answered %s with \"%s\": is the server of "
		    "another version than handoffctl?\n", path, type, f.err);
		break;
	default:
		ctl_warn("bad answer from %s: %s\n", path, f.err);
	}
	return NULL;
}

/* A message's connections, or "-" when its sender does not count them. */
static const char *
connections_text(json_t *m, char *buf, size_t len)
{
	if (json_is_false(json_object_get(m, "counted")))
		return "-";
	snprintf(buf, len, "%lld", (long long)json_integer_value(
	    json_object_get(m, "connections")));
	return buf;
}

static void
print_report(json_t *r)
{
	json_t		*l;
	json_int_t	 n;
	const char	*tag;
	size_t		 i;
	char		 conns[32];

	printf("pid %lld  generation %lld  tag %s  state %s  connections "
	    "%s\n", (long long)json_integer_value(json_object_get(r, "pid")),
	    (long long)json_integer_value(json_object_get(r, "generation")),
	    json_string_value(json_object_get(r, "tag"))[0] != '\0' ?
	    json_string_value(json_object_get(r, "tag")) : "-",
	    json_string_value(json_object_get(r, "state")),
	    connections_text(r, conns, sizeof(conns)));
	if (json_integer_value(json_object_get(r, "predecessor")) > 0)
		printf("predecessor pid %lld\n", (long long)json_integer_value(
		    json_object_get(r, "predecessor")));
	if (json_is_integer(json_object_get(r, "successor")))
		printf("successor pid %lld\n", (long long)json_integer_value(
		    json_object_get(r, "successor")));
	json_array_foreach(json_object_get(r, "draining"), i, l) {
		/* generation and tag: not from an older incumbent. */
		tag = json_string_value(json_object_get(l, "tag"));
		printf("draining: pid %lld", (long long)json_integer_value(
		    json_object_get(l, "pid")));
		if (json_is_integer(json_object_get(l, "generation")))
			printf("  generation %lld", (long long)
			    json_integer_value(json_object_get(l,
			    "generation")));
		if (tag != NULL)
			printf("  tag %s", tag[0] != '\0' ? tag : "-");
		printf("  connections %lld  %lld ms to the deadline\n",
		    (long long)json_integer_value(json_object_get(l,
		    "connections")), (long long)json_integer_value(
		    json_object_get(l, "remaining_ms")));
	}
	printf("listeners:\n");
	json_array_foreach(json_object_get(r, "listeners"), i, l)
		printf("  %-16s %-4s %-9s %s\n",
		    json_string_value(json_object_get(l, "name")),
		    json_string_value(json_object_get(l, "kind")),
		    json_string_value(json_object_get(l, "socktype")),
		    json_string_value(json_object_get(l, "address")));
	n = json_integer_value(json_object_get(r, "count"));
	if (n > (json_int_t)json_array_size(json_object_get(r, "listeners")))
		printf("  ... %lld more not shown\n", (long long)(n -
		    (json_int_t)json_array_size(json_object_get(r,
		    "listeners"))));
}

/* The report of whoever serves on path, or NULL (quietly). */
static json_t *
query_report(const char *path)
{
	json_t	*r;
	int	 fd, code;

	quiet = 1;
	fd = ctl_connect(path);
	r = fd >= 0 ? ctl_request(fd, "status", "report", path, 2000, &code) : NULL;
	if (fd >= 0)
		close(fd);
	quiet = 0;
	return r;
}

static int
cmd_status(const char *path, int as_json)
{
	json_t	*r;
	char	*s;
	int	 fd, code;

	if ((fd = ctl_connect(path)) < 0)
		return -fd;
	r = ctl_request(fd, "status", "report", path, 5000,
	    &code);
	close(fd);
	if (r == NULL)
		return code;
	if (as_json) {
		s = json_dumps(r, JSON_INDENT(2));
		printf("%s\n", s != NULL ? s : "null");
		free(s);
	} else
		print_report(r);
	json_decref(r);
	return EX_OK;
}

/*
 * The NSpid line of /proc/PID/status (or of self for 0): how many pid
 * namespaces the process is in, and its pid in the innermost; 0 if it
 * cannot be read.
 */
static int
nspid(pid_t pid, long long *inner)
{
	char		 path[64], line[256], *p, *end;
	long long	 v;
	FILE		*f;
	int		 n = 0;

	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "NSpid:", 6) != 0)
			continue;
		/* The last number read is the innermost pid. */
		for (p = line + 6; (v = strtoll(p, &end, 10)), end != p;
		    p = end, n++)
			*inner = v;
		break;
	}
	fclose(f);
	return n;
}

/*
 * Our pid for the server that answered `stopping` as pid, which is its
 * pid in its own namespace: SO_PEERCRED names the process that created
 * the shared control socket (in our namespace), which is the server or
 * an older generation still alive (draining, or serving again after a
 * rollback). That process is the server if its innermost pid is the one
 * answered (a server in a container, say); else the answer is ours to use
 * only when that process shares our pid namespace. 0 if it cannot be
 * known.
 */
static pid_t
server_pid(int fd, long long pid)
{
	struct ucred	cred;
	socklen_t	len = sizeof(cred);
	long long	inner, mine;
	int		n;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
	    cred.pid <= 0 || (n = nspid(cred.pid, &inner)) == 0)
		return pid > 0 && pid <= INT32_MAX ? (pid_t)pid : 0;
	if (inner == pid)
		return cred.pid;
	return n == nspid(0, &mine) && pid > 0 && pid <= INT32_MAX ?
	    (pid_t)pid : 0;
}

/*
 * A pidfd of the server that answered `stopping` as pid, on connection
 * fd; -1 if the kernel has none or its pid is not known here
 * (server_pid). The server holds fd open until it frees its handle, just
 * before it exits, so while fd shows no end of file after the pidfd is
 * opened, the pid was not reused under us. *late is 1 if it showed one
 * already: the server is in its last moments, or gone and its pid free.
 */
static int
server_pidfd(int fd, long long pid, int *late)
{
	struct pollfd	pfd = { .fd = fd, .events = POLLIN };
	char		c;
	pid_t		ours;
	int		pidfd;

	*late = 0;
	if ((ours = server_pid(fd, pid)) == 0 ||
	    (pidfd = (int)syscall(SYS_pidfd_open, ours, 0)) == -1)
		return -1;
	if (poll(&pfd, 1, 0) == 1 && recv(fd, &c, 1, MSG_PEEK) == 0)
		*late = 1;
	return pidfd;
}

/*
 * Waits until the server has exited: its pidfd turns readable. The
 * connection's EOF comes a little earlier (fds close before the process
 * is gone), so it is only the sign used when there is no pidfd.
 */
static int
wait_exit(int fd, int pidfd, int ms)
{
	struct pollfd	pfd;
	char		c;
	long		end, left;
	ssize_t		n;

	end = now_ms() + ms;
	pfd.fd = pidfd != -1 ? pidfd : fd;
	pfd.events = POLLIN;
	for (;;) {
		if ((left = end - now_ms()) <= 0)
			return -1;
		if (poll(&pfd, 1, (int)left) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (pfd.revents == 0)
			continue;
		if (pidfd != -1)
			return 0;
		n = recv(fd, &c, 1, 0);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			return 0;
	}
}

static int
cmd_stop(const char *path, int ms)
{
	json_t		*r;
	int		 fd, pidfd, code, late;
	long long	 pid, n;
	char		 conns[64];

	if ((fd = ctl_connect(path)) < 0)
		return -fd;
	if ((r = ctl_request(fd, "stop", "stopping", path, 5000,
	    &code)) == NULL) {
		close(fd);
		return code;
	}
	n = json_integer_value(json_object_get(r, "connections"));
	pid = json_integer_value(json_object_get(r, "pid"));
	pidfd = server_pidfd(fd, pid, &late);
	if (json_is_false(json_object_get(r, "counted")))
		snprintf(conns, sizeof(conns), "its connections (not counted)");
	else
		snprintf(conns, sizeof(conns), "%lld connection%s", n, n == 1 ?
		    "" : "s");
	printf("stopping pid %lld: draining %s, deadline %lld ms\n", pid,
	    conns, (long long)json_integer_value(json_object_get(r,
	    "deadline_ms")));
	/* Said now, not when we exit: the drain may take a while. */
	fflush(stdout);
	json_decref(r);
	/* Its end of file came before we had the pidfd: the exit follows
	 * at once, unless the pid is another's by now; a bounded wait on
	 * the pidfd, then the end of file's word. */
	if (late && wait_exit(fd, pidfd, ms < LATE_EXIT_MS ? ms :
	    LATE_EXIT_MS) == -1) {
		close(pidfd);
		pidfd = -1;
	}
	code = wait_exit(fd, pidfd, ms);
	if (pidfd != -1)
		close(pidfd);
	close(fd);
	if (code == -1) {
		fprintf(stderr, "handoffctl: pid %lld still running after %d "
		    "ms\n", pid, ms);
		return EX_TIMEOUT;
	}
	printf("pid %lld exited\n", pid);
	return EX_OK;
}

static long
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
print_tail(const char *log)
{
	char	*lines[TAIL_LINES] = { NULL }, *line = NULL;
	size_t	 cap = 0, n = 0, i;
	FILE	*f;

	if (log == NULL || (f = fopen(log, "re")) == NULL)
		return;
	while (getline(&line, &cap, f) != -1) {
		free(lines[n % TAIL_LINES]);
		lines[n++ % TAIL_LINES] = strdup(line);
	}
	free(line);
	fclose(f);
	fprintf(stderr, "handoffctl: last lines of %s:\n", log);
	for (i = n > TAIL_LINES ? n - TAIL_LINES : 0; i < n; i++) {
		fprintf(stderr, "  %s", lines[i % TAIL_LINES] ?
		    lines[i % TAIL_LINES] : "\n");
		free(lines[i % TAIL_LINES]);
	}
}

/* In the child: its own session, output to log, then exec. */
static void
spawn_child(char **argv, const char *log, int errpipe)
{
	int	fd, e;

	setsid();
	if ((fd = open("/dev/null", O_RDONLY)) >= 0) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	if (log != NULL) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd == -1)
			goto bad;
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
	execvp(argv[0], argv);
bad:
	e = errno;
	(void)write(errpipe, &e, sizeof(e));
	_exit(127);
}

static int
stop_child(pid_t pid)
{
	long	end = now_ms() + 2000;
	int	st;

	kill(pid, SIGTERM);
	while (now_ms() < end) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return 0;
		poll(NULL, 0, POLL_MS);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return 0;
}

/* Who served on the control socket when the upgrade began; pid 0: nobody. */
struct serving {
	long long	pid;
	long long	generation;
};

/*
 * Has the upgrade happened? Yes when a newer generation than `before`
 * answers status on path (or any server, if nobody served before), or
 * another process does once the one of before is gone (it started fresh
 * after a crash): prints the success line and returns 1. Else 0, with
 * *offering set if a takeover is under way there.
 */
static int
upgrade_served(const char *path, const struct serving *before, int *offering)
{
	json_t		*r;
	const char	*state;
	long long	 pid, gen;
	int		 newer;

	*offering = 0;
	if ((r = query_report(path)) == NULL)
		return 0;
	pid = json_integer_value(json_object_get(r, "pid"));
	gen = json_integer_value(json_object_get(r, "generation"));
	state = json_string_value(json_object_get(r, "state"));
	newer = before->pid == 0 || gen > before->generation ||
	    (pid != before->pid && kill((pid_t)before->pid, 0) == -1 &&
	    errno == ESRCH);
	if (!newer)
		*offering = state != NULL && strcmp(state, "offering") == 0;
	else if (before->pid > 0)
		printf("upgraded: pid %lld -> pid %lld (generation %lld)\n",
		    before->pid, pid, gen);
	else
		printf("started: pid %lld (generation %lld)\n", pid, gen);
	json_decref(r);
	return newer;
}

/* Why COMMAND's own process ended, for a failure message. */
static void
exit_text(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else
		snprintf(buf, len, "was killed by signal %d", WTERMSIG(st));
}

/*
 * Starts COMMAND and decides by the control socket, whatever becomes of
 * COMMAND's own process (DESIGN.md 6): a COMMAND that daemonises exits 0
 * while its child takes over, and a wrapper may stay in the foreground
 * as the server's parent. A COMMAND that fails (exits non-zero) ends the
 * wait at once unless a takeover is under way; one that exits 0 may have
 * left a child starting, so the wait goes on to the timeout.
 */
static int
cmd_upgrade(const char *path, int ms, const char *log, char **argv)
{
	struct serving	 before = { 0, 0 };
	json_t		*r;
	long		 end;
	pid_t		 pid;
	int		 p[2], e, st = 0, exited = 0, offering;
	char		 how[64];

	if ((r = query_report(path)) != NULL) {
		before.pid = json_integer_value(json_object_get(r, "pid"));
		before.generation = json_integer_value(json_object_get(r,
		    "generation"));
		json_decref(r);
	}
	if (pipe2(p, O_CLOEXEC) == -1 || (pid = fork()) == -1) {
		fprintf(stderr, "handoffctl: cannot start %s: %s\n", argv[0],
		    strerror(errno));
		return EX_FAIL;
	}
	if (pid == 0)
		spawn_child(argv, log, p[1]);
	close(p[1]);
	if (read(p[0], &e, sizeof(e)) == sizeof(e)) {
		close(p[0]);
		waitpid(pid, &st, 0);
		fprintf(stderr, "handoffctl: cannot run %s: %s\n", argv[0],
		    strerror(e));
		return EX_UPGRADE;
	}
	close(p[0]);
	end = now_ms() + ms;
	for (;;) {
		/* Reaped first, so the check below is the last word. */
		if (!exited && waitpid(pid, &st, WNOHANG) == pid)
			exited = 1;
		if (upgrade_served(path, &before, &offering))
			return EX_OK;
		if (exited && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) &&
		    !offering) {
			exit_text(st, how, sizeof(how));
			fprintf(stderr, "handoffctl: %s (pid %ld) %s before "
			    "serving on %s\n", argv[0], (long)pid, how, path);
			print_tail(log);
			if (before.pid > 0)
				fprintf(stderr, "handoffctl: pid %lld still "
				    "serves\n", before.pid);
			return EX_UPGRADE;
		}
		if (now_ms() >= end)
			break;
		poll(NULL, 0, POLL_MS);
	}
	if (exited)
		fprintf(stderr, "handoffctl: %s (pid %ld) exited with status "
		    "0, and no newer generation served on %s within %d ms\n",
		    argv[0], (long)pid, path, ms);
	else {
		fprintf(stderr, "handoffctl: %s (pid %ld) did not serve on %s "
		    "within %d ms; stopping it\n", argv[0], (long)pid, path,
		    ms);
		stop_child(pid);
	}
	print_tail(log);
	return EX_TIMEOUT;
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "control",	required_argument,	NULL, 'c' },
		{ "json",	no_argument,		NULL, 'j' },
		{ "timeout",	required_argument,	NULL, 't' },
		{ "log",	required_argument,	NULL, 'l' },
		{ "help",	no_argument,		NULL, 'h' },
		{ "version",	no_argument,		NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char	*cmd, *path = NULL, *log = NULL;
	unsigned	 ms = 60000;
	int		 c, as_json = 0;

	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return EX_OK;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("handoffctl %s (protocol %d)\n", PACKAGE_VERSION,
		    MSG_PROTO);
		return EX_OK;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "+c:jt:l:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'j':
			as_json = 1;
			break;
		case 'l':
			log = optarg;
			break;
		case 't':
			if (tool_seconds("handoffctl", "--timeout", optarg,
			    &ms) == -1)
				return EX_USAGE;
			if (ms == 0) {
				fprintf(stderr, "handoffctl: --timeout must be "
				    "more than 0\n");
				return EX_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (path == NULL) {
		fprintf(stderr, "handoffctl: %s needs --control PATH\n", cmd);
		return EX_USAGE;
	}
	if (strcmp(cmd, "upgrade") == 0) {
		if (optind == argc) {
			fprintf(stderr, "handoffctl: upgrade needs -- COMMAND "
			    "[ARGS...]\n");
			return EX_USAGE;
		}
		return cmd_upgrade(path, (int)ms, log, argv + optind);
	}
	if (optind != argc) {
		fprintf(stderr, "handoffctl: unexpected argument \"%s\"\n",
		    argv[optind]);
		return EX_USAGE;
	}
	if (strcmp(cmd, "status") == 0)
		return cmd_status(path, as_json);
	if (strcmp(cmd, "stop") == 0)
		return cmd_stop(path, (int)ms);
	fprintf(stderr, "handoffctl: unknown command \"%s\"\n", cmd);
	usage(stderr);
	return EX_USAGE;
}
