/*
 * handoff-exec: zero-downtime upgrades for any program that understands
 * systemd socket activation. Each version is one handoff-exec and its
 * child: handoff-exec holds the listeners through libhandoff, passes them
 * to COMMAND as LISTEN_FDS, and the next handoff-exec takes them over.
 */
#include "config.h"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "handoff.h"
#include "systemd.h"	/* LISTEN_FDS_START, no more */
#include "toolutil.h"

#define NOTIFY_MAX		4096
#define NFORWARD		3
#define SETTLE_MS		2000	/* --settle default */
#define ROLLBACK_MS		10000	/* --rollback-window default */
#define NSIGNALS		(3 + NFORWARD)	/* watched: see watch_signals */

/* Long options without a short letter. */
enum {
	OPT_SETTLE = 256,
	OPT_ROLLBACK_WINDOW,
};

extern char **environ;

/* What the command line asks for. */
struct hexec_config {
	struct tool_server_opts	 srv;	/* the options handoff-httpd takes too */
	char			**argv;		/* COMMAND and its arguments */
	int			 notify;	/* --notify */
	int			 settle_set;	/* --settle given */
	unsigned		 settle_ms, rollback_ms;
	int			 stop_signal;
};

struct child {
	pid_t		 pid;
	int		 stopping;	/* sent the stop signal */
};

struct hexec {
	struct event_base	*base;
	struct handoff		*h;
	char			**argv;		/* COMMAND and its arguments */
	int			 exe_fd;	/* COMMAND's file, O_PATH */
	char			**envp;		/* the children's environment */
	char			*owned_env[3];	/* entries of envp we made */
	char			 pid_env[32];	/* LISTEN_PID=, set in the child */
	int			*tmp_fds;	/* scratch for the child */
	size_t			 nfds;
	int			 max_fd;	/* without close_range */
	int			 stop_signal;
	unsigned		 drain_ms, ready_ms, settle_ms, rollback_ms;
	int			 notify;	/* --notify */
	int			 notify_fd;
	struct event		*notify_ev;
	struct event		*ready_ev;	/* settle time, or READY=1 late */
	struct event		*straggler_ev;	/* old children after rollback */
	struct event		*window_ev;	/* end of the rollback window */
	struct event		*sigs[NSIGNALS];
	struct child		*kids;
	size_t			 nkids;
	pid_t			 current;	/* the child that serves */
	pid_t			 self;
	int			 ready;		/* handoff_ready done */
	int			 draining;	/* exit once no child is left */
	int			 lingering;	/* draining, a rollback may come */
	int			 held;		/* HANDOFF_HOLD: wait for word */
	int			 signals;
	int			 exit_code;
	int			 aborted;	/* takeover failed after ready */
};

static const struct {
	const char	*name;
	int		 sig;
} signames[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT },
	{ "KILL", SIGKILL }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
	{ "TERM", SIGTERM }, { "WINCH", SIGWINCH }, { "CONT", SIGCONT },
};

/* Passed on to the child that serves: its reload and log-reopen signals. */
static const int forwarded[NFORWARD] = { SIGHUP, SIGUSR1, SIGUSR2 };

static void
usage(FILE *f)
{
	fprintf(f,
"usage: handoff-exec --control PATH --listen NAME=SPEC... [--tag TEXT]\n"
"                    [--drain-timeout SECONDS] [--ready-timeout SECONDS]\n"
"                    [--notify | --settle SECONDS] [--rollback-window SECONDS]\n"
"                    [--max-draining N] [--stop-signal SIG]\n"
"                    -- COMMAND [ARGS...]\n"
"\n"
"Runs COMMAND with the listeners passed as systemd socket activation\n"
"(LISTEN_FDS, LISTEN_FDNAMES). If another handoff-exec serves on the same\n"
"control socket, takes its listeners over; once COMMAND is ready, the old\n"
"one stops its child, stays for the rollback window if one is set, in\n"
"case the new one fails, and exits 0. A COMMAND that exits before it is\n"
"ready leaves the old one serving.\n"
"\n"
"  --control PATH           control socket (required: one per service)\n"
"  --listen NAME=SPEC       tcp://HOST:PORT, tcp://[V6]:PORT, udp://HOST:PORT\n"
"                           or unix:PATH; repeatable; NAME without ':'\n"
"  --tag TEXT               version label shown in status\n"
"  --drain-timeout SECONDS  kill the child after this long stopping (default 30)\n"
"  --ready-timeout SECONDS  how long a successor, and with --notify the\n"
"                           child's READY=1, may take (default 30)\n"
"  --notify                 ready when COMMAND sends READY=1 to NOTIFY_SOCKET\n"
"  --settle SECONDS         without --notify, ready once COMMAND has run this\n"
"                           long without exiting (default 2)\n"
"  --rollback-window SECONDS  after handing over, how long to stay, holding\n"
"                           the listeners, to start COMMAND again if the new\n"
"                           version vanishes (default 10; 0: leave with the\n"
"                           child)\n"
"  --max-draining N         at most N older generations drain at once; the\n"
"                           oldest is hammered first (default 4)\n"
"  --stop-signal SIG        how to tell COMMAND to stop (default TERM)\n"
"  --help, --version\n"
"\n"
"Exit status: COMMAND's if it exits on its own (128+N if killed by signal\n"
"N; 1 if it exits 0 before it is ready); 0 after a handoff or a graceful\n"
"stop; 126 or 127 if COMMAND cannot be run; 1 on any other failure, 2 on a\n"
"usage error.\n");
}

static void
xlog(struct hexec *x, const char *fmt, ...)
{
	char	text[1024];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* The library's format; before there is a handle, its format of
	 * a handle without a generation. */
	if (x->h != NULL)
		handoff_log(x->h, "%s", text);
	else
		fprintf(stderr, "handoff-exec[%ld]: %s\n", (long)getpid(),
		    text);
}

/* Exit status in the shell's convention: 128+N for signal N. */
static int
status_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

static void
status_text(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "exited with status %d", status_code(status));
}

static void
ms_to_tv(unsigned ms, struct timeval *tv)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

static void
finish(struct hexec *x, int code)
{
	x->exit_code = code;
	event_base_loopexit(x->base, NULL);
}

/*
 * Draining ends in exit 0 (1 after an abort) once no child is left, no
 * rollback can come (window over, superseded, a signal) and the library
 * is not holding us while it looks for a newer generation.
 */
static void
maybe_exit(struct hexec *x)
{
	if (x->draining && x->nkids == 0 && !x->held && !x->lingering)
		finish(x, x->exit_code);
}

/* No rollback can come any more: the window closes. */
static void
stop_lingering(struct hexec *x, const char *why)
{
	if (!x->lingering)
		return;
	x->lingering = 0;
	evtimer_del(x->window_ev);
	xlog(x, "%s: no rollback any more", why);
}

/* Tells every child to stop; they finish their work and exit. */
static void
stop_children(struct hexec *x)
{
	size_t	i;

	for (i = 0; i < x->nkids; i++) {
		if (x->kids[i].stopping)
			continue;
		x->kids[i].stopping = 1;
		if (kill(x->kids[i].pid, x->stop_signal) == 0)
			xlog(x, "stopping child pid %ld with signal %d (%s)",
			    (long)x->kids[i].pid, x->stop_signal,
			    strsignal(x->stop_signal));
	}
	x->current = 0;
}

/* SIGKILL and reap: SIGKILL cannot be caught, so waitpid is bounded. */
static void
kill_children(struct hexec *x, const char *why)
{
	char	text[128];
	int	status;

	while (x->nkids > 0) {
		x->nkids--;
		kill(x->kids[x->nkids].pid, SIGKILL);
		if (waitpid(x->kids[x->nkids].pid, &status, 0) == -1)
			continue;
		status_text(status, text, sizeof(text));
		xlog(x, "%s: killed child pid %ld; it %s", why,
		    (long)x->kids[x->nkids].pid, text);
	}
	x->current = 0;
}

/* Writes "LISTEN_PID=<pid>" with async-signal-safe code only. */
static void
child_set_pid(char *buf, pid_t pid)
{
	char	digits[24];
	size_t	n = 0, off = strlen("LISTEN_PID=");
	long	v = (long)pid;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0 && n < sizeof(digits));
	while (n > 0)
		buf[off++] = digits[--n];
	buf[off] = '\0';
}

/*
 * Marks every fd from first on close-on-exec, async-signal-safe:
 * close_range does it in one call (glibc 2.34, Linux 5.11); without it,
 * or where the kernel refuses, one fcntl per possible fd below max_fd.
 */
static void
cloexec_from(int first, int max_fd)
{
	int	fd;

#if defined(HAVE_CLOSE_RANGE) && defined(CLOSE_RANGE_CLOEXEC)
	if (close_range((unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
#endif
	for (fd = first; fd < max_fd; fd++)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/*
 * In the forked child, up to exec: only async-signal-safe calls. Failures
 * go to the parent through errfd as { stage, errno }; stage 0 is the fd
 * setup, 1 is exec.
 */
static void
child_exec(struct hexec *x, int errfd)
{
	sigset_t	none;
	size_t		i;
	int		err[2] = { 0, 0 }, exe;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);	/* ignored here, not in COMMAND */
	/* If handoff-exec dies, nobody can take the listeners over: stop. */
	if (prctl(PR_SET_PDEATHSIG, x->stop_signal) == -1 ||
	    getppid() != x->self)
		goto fail;
	/* Everything that is in the way of 3..3+n-1 moves above it first. */
	if ((errfd = fcntl(errfd, F_DUPFD_CLOEXEC,
	    LISTEN_FDS_START + (int)x->nfds)) == -1)
		_exit(1);
	if ((exe = fcntl(x->exe_fd, F_DUPFD_CLOEXEC,
	    LISTEN_FDS_START + (int)x->nfds)) == -1)
		goto fail;
	for (i = 0; i < x->nfds; i++)
		if ((x->tmp_fds[i] = fcntl(handoff_listener_fd(x->h, i),
		    F_DUPFD_CLOEXEC, LISTEN_FDS_START + (int)x->nfds)) == -1)
			goto fail;
	/* dup2 leaves the new fd without FD_CLOEXEC: exactly these pass. */
	for (i = 0; i < x->nfds; i++)
		if (dup2(x->tmp_fds[i], LISTEN_FDS_START + (int)i) == -1)
			goto fail;
	/* Nothing else inherited above them: a stray pipe held by a
	 * long-lived server would keep whoever started us waiting. */
	cloexec_from(LISTEN_FDS_START + (int)x->nfds, x->max_fd);
	child_set_pid(x->pid_env, getpid());
	err[0] = 1;
	fexecve(exe, x->argv, x->envp);
	/* A #! script: the kernel gives the interpreter /dev/fd/N, which a
	 * close-on-exec fd would not outlive (ENOENT). So this one stays
	 * open in a script's interpreter. */
	if (errno == ENOENT && fcntl(exe, F_SETFD, 0) == 0)
		fexecve(exe, x->argv, x->envp);
fail:
	err[1] = errno;
	if (write(errfd, err, sizeof(err)) == -1)
		_exit(1);
	_exit(127);
}

/* Keeps path in x->exe_fd if it is an executable file; 0 or an errno. */
static int
command_try(struct hexec *x, const char *path)
{
	struct stat	st;
	int		fd, err = 0;

	if ((fd = open(path, O_PATH | O_CLOEXEC)) == -1)
		return errno;
	if (fstat(fd, &st) == -1 ||
	    faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) == -1)
		err = errno;
	else if (!S_ISREG(st.st_mode))
		err = EACCES;		/* what execve says of a directory */
	if (err != 0) {
		close(fd);
		return err;
	}
	x->exe_fd = fd;
	return 0;
}

/*
 * Opens COMMAND where execvp(3) would find it, once: every child, and a
 * rollback after a package upgrade renamed a new file over it, runs this
 * file. Returns 0, or the exit status after saying why.
 */
static int
command_open(struct hexec *x)
{
	const char	*name = x->argv[0], *dir, *end;
	char		 path[PATH_MAX];
	int		 err = ENOENT, e;
	size_t		 len;

	if (name[0] == '\0')
		err = ENOENT;
	else if (strchr(name, '/') != NULL)
		err = command_try(x, name);
	else {
		if ((dir = getenv("PATH")) == NULL)
			dir = "/bin:/usr/bin";
		for (;; dir = end + 1) {
			end = strchrnul(dir, ':');
			len = (size_t)(end - dir);
			/* An empty entry is the working directory. */
			if ((size_t)snprintf(path, sizeof(path), "%.*s%s%s",
			    (int)len, dir, len > 0 ? "/" : "", name) >=
			    sizeof(path))
				e = ENAMETOOLONG;
			else
				e = command_try(x, path);
			if (e == 0 || e == EACCES)
				err = e;	/* as execvp: EACCES wins */
			if (e == 0 || *end == '\0')
				break;
		}
	}
	if (err == 0)
		return 0;
	xlog(x, "cannot run %s: %s", name, strerror(err));
	return err == ENOENT ? 127 : 126;
}

/*
 * Starts COMMAND; returns its pid once it has exec'd (the CLOEXEC pipe
 * closes), or -1 with the reason logged and *code the exit status to use.
 */
static pid_t
spawn(struct hexec *x, int *code)
{
	struct child	*k;
	pid_t		 pid;
	ssize_t		 n;
	int		 p[2], err[2], status;

	*code = 1;
	if ((k = reallocarray(x->kids, x->nkids + 1, sizeof(*k))) == NULL) {
		xlog(x, "cannot start %s: out of memory", x->argv[0]);
		return -1;
	}
	x->kids = k;
	if (pipe2(p, O_CLOEXEC) == -1) {
		xlog(x, "cannot start %s: pipe: %s", x->argv[0],
		    strerror(errno));
		return -1;
	}
	if ((pid = fork()) == -1) {
		xlog(x, "cannot start %s: fork: %s", x->argv[0],
		    strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0)
		child_exec(x, p[1]);
	close(p[1]);
	do
		n = read(p[0], err, sizeof(err));
	while (n == -1 && errno == EINTR);
	close(p[0]);
	if (n == 0) {
		x->kids[x->nkids].pid = pid;
		x->kids[x->nkids++].stopping = 0;
		return pid;
	}
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (n != sizeof(err))
		xlog(x, "cannot start %s: the child exited before exec",
		    x->argv[0]);
	else if (err[0] == 0)
		xlog(x, "cannot start %s: passing %zu listener fds: %s",
		    x->argv[0], x->nfds, strerror(err[1]));
	else {
		*code = err[1] == ENOENT ? 127 : 126;
		xlog(x, "cannot run %s: %s", x->argv[0], strerror(err[1]));
	}
	return -1;
}

static void
become_ready(struct hexec *x)
{
	evtimer_del(x->ready_ev);
	if (handoff_ready(x->h) == -1) {
		xlog(x, "%s", handoff_strerror(x->h));
		stop_children(x);
		finish(x, 1);
		return;
	}
	x->ready = 1;
}

/* With --notify the ready timeout, without it the settle time. */
static void
ready_timer(evutil_socket_t fd, short what, void *arg)
{
	struct hexec	*x = arg;

	if (!x->notify) {
		xlog(x, "child pid %ld has run %u ms without exiting: ready",
		    (long)x->current, x->settle_ms);
		become_ready(x);
		return;
	}
	xlog(x, "child pid %ld sent no READY=1 within %u ms; giving up",
	    (long)x->current, x->ready_ms);
	stop_children(x);
	finish(x, 1);
}

/* Is READY=1 one of the newline-separated assignments? */
static int
says_ready(const char *text)
{
	const char	*p = text;
	size_t		 l;

	while (*p != '\0') {
		l = strcspn(p, "\n");
		if (l == 7 && strncmp(p, "READY=1", 7) == 0)
			return 1;
		p += l + (p[l] == '\n');
	}
	return 0;
}

/* Closes any fds that came with a message: FDSTORE=1 is not kept. */
static void
close_passed_fds(struct msghdr *msg)
{
	struct cmsghdr	*c;
	size_t		 i, n;
	int		*fds;

	for (c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		fds = (int *)CMSG_DATA(c);
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++)
			close(fds[i]);
	}
}

static pid_t
sender_pid(struct msghdr *msg)
{
	struct cmsghdr	*c;
	struct ucred	 cred;

	for (c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c))
		if (c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(cred))) {
			memcpy(&cred, CMSG_DATA(c), sizeof(cred));
			return cred.pid;
		}
	return -1;
}

static void
notify_read(evutil_socket_t fd, short what, void *arg)
{
	struct hexec	*x = arg;
	char		 text[NOTIFY_MAX + 1];
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(struct ucred)) +
				    CMSG_SPACE(sizeof(int) * 253)];
	} cbuf;
	struct msghdr	 msg;
	struct iovec	 iov;
	ssize_t		 n;
	pid_t		 pid;

	for (;;) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = text;
		iov.iov_len = NOTIFY_MAX;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n == -1)
			return;
		close_passed_fds(&msg);
		text[n] = '\0';
		pid = sender_pid(&msg);
		if (!says_ready(text) || (msg.msg_flags & MSG_TRUNC))
			continue;
		if (pid != x->current || pid <= 0) {
			xlog(x, "READY=1 from pid %ld ignored: only child pid "
			    "%ld may send it", (long)pid, (long)x->current);
			continue;
		}
		xlog(x, "child pid %ld is ready (READY=1)", (long)pid);
		if (!x->ready)
			become_ready(x);
	}
}

/* A private datagram socket in the abstract namespace, named by the
 * kernel (autobind); only the child's pid is believed. */
static int
notify_open(struct hexec *x)
{
	struct sockaddr_un	sun;
	socklen_t		len = sizeof(sa_family_t);
	int			on = 1;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	x->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (x->notify_fd == -1 || setsockopt(x->notify_fd, SOL_SOCKET,
	    SO_PASSCRED, &on, sizeof(on)) == -1 || bind(x->notify_fd,
	    (struct sockaddr *)&sun, len) == -1)
		return -1;
	len = sizeof(sun);
	if (getsockname(x->notify_fd, (struct sockaddr *)&sun, &len) == -1)
		return -1;
	len -= offsetof(struct sockaddr_un, sun_path);
	if (len < 2 || sun.sun_path[0] != '\0') {
		errno = EAFNOSUPPORT;
		return -1;
	}
	if (asprintf(&x->owned_env[2], "NOTIFY_SOCKET=@%.*s", (int)len - 1,
	    sun.sun_path + 1) == -1) {
		x->owned_env[2] = NULL;
		return -1;
	}
	x->notify_ev = event_new(x->base, x->notify_fd, EV_READ | EV_PERSIST,
	    notify_read, x);
	if (x->notify_ev == NULL || event_add(x->notify_ev, NULL) == -1)
		return -1;
	return 0;
}

static int
is_activation_var(const char *e)
{
	static const char *const vars[] = { "LISTEN_PID=", "LISTEN_FDS=",
	    "LISTEN_FDNAMES=", "NOTIFY_SOCKET=" };
	size_t	i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if (strncmp(e, vars[i], strlen(vars[i])) == 0)
			return 1;
	return 0;
}

/*
 * Our environment, without what systemd may have set for us, plus
 * LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID (filled in by each child) and,
 * with --notify, our NOTIFY_SOCKET.
 */
static int
build_env(struct hexec *x)
{
	size_t	 n = 0, i, j = 0, off = 0, len = 1;
	char	*names;

	for (i = 0; i < x->nfds; i++)
		len += strlen(handoff_listener_name(x->h, i)) + 1;
	if ((names = malloc(len)) == NULL)
		return -1;
	names[0] = '\0';
	for (i = 0; i < x->nfds; i++)
		off += (size_t)snprintf(names + off, len - off, "%s%s",
		    i > 0 ? ":" : "", handoff_listener_name(x->h, i));
	if (asprintf(&x->owned_env[0], "LISTEN_FDS=%zu", x->nfds) == -1)
		x->owned_env[0] = NULL;
	if (asprintf(&x->owned_env[1], "LISTEN_FDNAMES=%s", names) == -1)
		x->owned_env[1] = NULL;
	free(names);
	while (environ[n] != NULL)
		n++;
	x->envp = calloc(n + 5, sizeof(*x->envp));
	x->tmp_fds = calloc(x->nfds + 1, sizeof(*x->tmp_fds));
	if (x->owned_env[0] == NULL || x->owned_env[1] == NULL ||
	    x->envp == NULL || x->tmp_fds == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (!is_activation_var(environ[i]))
			x->envp[j++] = environ[i];
	snprintf(x->pid_env, sizeof(x->pid_env), "LISTEN_PID=");
	x->envp[j++] = x->pid_env;
	x->envp[j++] = x->owned_env[0];
	x->envp[j++] = x->owned_env[1];
	if (x->owned_env[2] != NULL)
		x->envp[j++] = x->owned_env[2];
	x->envp[j] = NULL;
	return 0;
}

/* The first child of this handoff-exec, or one after a rollback. */
static int
start_child(struct hexec *x, const char *why)
{
	struct timeval	tv;
	pid_t		pid;
	int		code;

	if ((pid = spawn(x, &code)) == -1)
		return code;
	x->current = pid;
	xlog(x, "%s child pid %ld: %s", why, (long)pid, x->argv[0]);
	if (x->ready)
		return 0;
	if (x->notify) {
		ms_to_tv(x->ready_ms, &tv);
		xlog(x, "waiting up to %u ms for READY=1 from child pid %ld",
		    x->ready_ms, (long)pid);
		evtimer_add(x->ready_ev, &tv);
	} else if (x->settle_ms > 0) {
		/* Until then the predecessor serves on and can carry on. */
		ms_to_tv(x->settle_ms, &tv);
		xlog(x, "child pid %ld is ready if it runs %u ms (settle time)",
		    (long)pid, x->settle_ms);
		evtimer_add(x->ready_ev, &tv);
	} else
		become_ready(x);
	return 0;
}

/* Why a start failed, in one line: the child, its status, who serves. */
static void
log_unready_exit(struct hexec *x, pid_t pid, const char *text)
{
	char	waiting[64], serves[64];

	if (x->notify)
		snprintf(waiting, sizeof(waiting), "no READY=1 yet");
	else
		snprintf(waiting, sizeof(waiting), "settle time %u ms",
		    x->settle_ms);
	if (handoff_predecessor(x->h) > 0)
		snprintf(serves, sizeof(serves), "pid %ld serves on",
		    (long)handoff_predecessor(x->h));
	else
		snprintf(serves, sizeof(serves), "nothing served before");
	xlog(x, "child pid %ld %s before it was ready (%s): not ready; %s",
	    (long)pid, text, waiting, serves);
}

static void
child_exited(struct hexec *x, pid_t pid, int status)
{
	char	text[128];
	size_t	i;
	int	stopping;

	for (i = 0; i < x->nkids && x->kids[i].pid != pid; i++)
		;
	if (i == x->nkids)
		return;		/* not ours: a grandchild reparented to us */
	stopping = x->kids[i].stopping;
	x->kids[i] = x->kids[--x->nkids];
	status_text(status, text, sizeof(text));
	if (pid == x->current && !stopping && !x->ready) {
		/* We never said ready: the predecessor carries on. */
		x->current = 0;
		evtimer_del(x->ready_ev);
		log_unready_exit(x, pid, text);
		finish(x, status_code(status) == 0 ? 1 : status_code(status));
		return;
	}
	xlog(x, "child pid %ld %s", (long)pid, text);
	if (pid == x->current && !stopping) {
		/* It died on its own: the supervisor decides what next. */
		x->current = 0;
		finish(x, status_code(status));
		return;
	}
	if (x->nkids == 0 && x->straggler_ev != NULL)
		evtimer_del(x->straggler_ev);
	maybe_exit(x);
}

static void
on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	struct hexec	*x = arg;
	pid_t		 pid;
	int		 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		child_exited(x, pid, status);
}

/* After a rollback: old children still draining get the drain timeout. */
static void
straggler_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct hexec	*x = arg;
	size_t		 i;

	for (i = 0; i < x->nkids; i++)
		if (x->kids[i].stopping) {
			xlog(x, "child pid %ld still running %u ms after "
			    "the stop signal: killing it",
			    (long)x->kids[i].pid, x->drain_ms);
			kill(x->kids[i].pid, SIGKILL);
		}
}

static void
rollback_window_over(evutil_socket_t fd, short what, void *arg)
{
	struct hexec	*x = arg;
	char		 why[64];

	snprintf(why, sizeof(why), "rollback window of %u ms over",
	    x->rollback_ms);
	stop_lingering(x, why);
	maybe_exit(x);
}

/*
 * Released (or stopping): drain. After a release to a successor, stay
 * for the rollback window even once our child is gone, holding the
 * listeners, so that HANDOFF_RESUME can start COMMAND again on them.
 */
static void
drain(struct hexec *x)
{
	struct timeval	tv;

	x->draining = 1;
	x->exit_code = x->aborted ? 1 : 0;
	/* After an abort we were never released; after a signal nobody
	 * wants the service back. */
	if (!x->aborted && x->signals == 0 && x->rollback_ms > 0) {
		x->lingering = 1;
		ms_to_tv(x->rollback_ms, &tv);
		evtimer_add(x->window_ev, &tv);
		xlog(x, "staying up to %u ms, holding the listeners, to roll "
		    "back if the successor vanishes", x->rollback_ms);
	}
	maybe_exit(x);
}

/* HANDOFF_RESUME: the successor vanished and nobody newer serves. */
static void
roll_back(struct hexec *x)
{
	struct timeval	tv;
	int		code;

	x->held = 0;
	x->draining = 0;
	x->lingering = 0;
	evtimer_del(x->window_ev);
	if (x->signals > 0) {
		/* Told to stop while the library held us: stop, not serve. */
		xlog(x, "rolled back after a stop signal: stopping");
		if (handoff_stop(x->h) == -1) {
			xlog(x, "%s", handoff_strerror(x->h));
			kill_children(x, "stop failed");
			finish(x, 1);
		}
		return;
	}
	if ((code = start_child(x, "rolled back: started")) != 0) {
		finish(x, code);
		return;
	}
	ms_to_tv(x->drain_ms, &tv);
	if (x->straggler_ev == NULL)
		x->straggler_ev = evtimer_new(x->base, straggler_deadline, x);
	if (x->straggler_ev != NULL)
		evtimer_add(x->straggler_ev, &tv);
}

static void
on_event(struct handoff *h, enum handoff_event ev, void *arg)
{
	struct hexec	*x = arg;

	switch (ev) {
	case HANDOFF_PAUSE:
		stop_children(x);
		break;
	case HANDOFF_DRAIN:
		if (!x->held) {
			drain(x);
			break;
		}
		/* After HANDOFF_HOLD: a newer generation serves. The hold
		 * may have come before the first drain (released unsent). */
		x->held = 0;
		x->draining = 1;
		x->exit_code = x->aborted ? 1 : 0;
		stop_lingering(x, "a newer generation serves");
		maybe_exit(x);
		break;
	case HANDOFF_HOLD:
		/* The library says why; we only wait for its verdict. */
		x->held = 1;
		break;
	case HANDOFF_SUPERSEDED:
		stop_lingering(x, "our successor was superseded or stopped");
		maybe_exit(x);
		break;
	case HANDOFF_RESUME:
		roll_back(x);
		break;
	case HANDOFF_PREDECESSOR_GONE:
	case HANDOFF_CONNS_SETTLED:
		break;		/* the child has no flows or connections of ours */
	case HANDOFF_HAMMER:
		kill_children(x, "hammer");
		finish(x, x->aborted ? 1 : 0);
		break;
	case HANDOFF_ABORT:
		/* The predecessor serves on: our child stops, we fail. */
		x->aborted = 1;
		xlog(x, "%s", handoff_strerror(h));
		break;
	}
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct hexec	*x = arg;
	char		 why[32];

	if (x->signals++ > 0) {
		xlog(x, "signal %d again: killing the child now", (int)sig);
		kill_children(x, "second signal");
		finish(x, x->ready ? 0 : 1);
		return;
	}
	if (!x->ready) {
		xlog(x, "signal %d before the child was ready: stopping it",
		    (int)sig);
		evtimer_del(x->ready_ev);
		stop_children(x);
		x->draining = 1;
		x->exit_code = 1;
		if (x->nkids == 0)
			finish(x, 1);
		return;
	}
	if (x->draining) {
		/* Released already: only the rollback window is left. */
		snprintf(why, sizeof(why), "signal %d", (int)sig);
		stop_lingering(x, why);
		/* During a hold, a stop ends it: HANDOFF_DRAIN follows. */
		if (x->held && handoff_stop(x->h) == -1)
			xlog(x, "%s", handoff_strerror(x->h));
		maybe_exit(x);
		return;
	}
	if (handoff_stop(x->h) == -1) {
		xlog(x, "%s", handoff_strerror(x->h));
		kill_children(x, "stop failed");
		finish(x, 1);
	}
}

static void
on_forward(evutil_socket_t sig, short what, void *arg)
{
	struct hexec	*x = arg;

	if (x->current > 0)
		kill(x->current, (int)sig);
	else
		xlog(x, "signal %d (%s): no child serves now; ignored",
		    (int)sig, strsignal((int)sig));
}

static int
parse_signal(const char *s)
{
	const char	*n = strncmp(s, "SIG", 3) == 0 ? s + 3 : s;
	char		*end;
	long		 v;
	size_t		 i;

	for (i = 0; i < sizeof(signames) / sizeof(signames[0]); i++)
		if (strcasecmp(n, signames[i].name) == 0)
			return signames[i].sig;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno == 0 && *end == '\0' && end != s && v > 0 && v < NSIG)
		return (int)v;
	fprintf(stderr, "handoff-exec: --stop-signal: \"%s\" is not a signal; "
	    "use TERM, INT, QUIT, HUP, USR1, USR2, WINCH or a number\n", s);
	return -1;
}

/* NAME=SPEC; NAME may not hold ':', which separates LISTEN_FDNAMES. */
static int
add_listen(struct handoff *h, const char *arg)
{
	const char	*eq = strchr(arg, '=');
	char		 name[128];

	if (eq == NULL || eq == arg || (size_t)(eq - arg) >= sizeof(name) ||
	    memchr(arg, ':', (size_t)(eq - arg)) != NULL) {
		fprintf(stderr, "handoff-exec: --listen \"%s\": use NAME=SPEC "
		    "with a NAME of A-Z a-z 0-9 _ . - (no ':', which separates "
		    "LISTEN_FDNAMES)\n", arg);
		return -1;
	}
	snprintf(name, sizeof(name), "%.*s", (int)(eq - arg), arg);
	if (handoff_listen(h, name, eq + 1) == -1) {
		fprintf(stderr, "handoff-exec: --listen \"%s\": %s\n", arg,
		    handoff_strerror(h));
		return -1;
	}
	return 0;
}

/* Fds 0-2 must be open, or a listener could land there and reach the
 * child as its stdout. */
static void
open_std_fds(void)
{
	int	fd;

	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
}

static int
watch_signals(struct hexec *x)
{
	size_t	i;

	x->sigs[0] = evsignal_new(x->base, SIGTERM, on_signal, x);
	x->sigs[1] = evsignal_new(x->base, SIGINT, on_signal, x);
	x->sigs[2] = evsignal_new(x->base, SIGCHLD, on_sigchld, x);
	for (i = 0; i < NFORWARD; i++)
		x->sigs[3 + i] = evsignal_new(x->base, forwarded[i], on_forward,
		    x);
	for (i = 0; i < NSIGNALS; i++)
		if (x->sigs[i] == NULL || evsignal_add(x->sigs[i], NULL) == -1)
			return -1;
	return 0;
}

/* One of handoff-exec's own options: 0, or -1 after saying why. */
static int
hexec_option(struct hexec_config *cfg, int c, const char *arg)
{
	switch (c) {
	case 'n':
		cfg->notify = 1;
		return 0;
	case OPT_SETTLE:
		cfg->settle_set = 1;
		return tool_seconds("handoff-exec", "--settle", arg,
		    &cfg->settle_ms);
	case OPT_ROLLBACK_WINDOW:
		return tool_seconds("handoff-exec", "--rollback-window", arg,
		    &cfg->rollback_ms);
	case 's':
		return (cfg->stop_signal = parse_signal(arg)) == -1 ? -1 : 0;
	default:
		usage(stderr);
		return -1;
	}
}

/* The options together, and COMMAND: 0, or -1 after saying why. */
static int
hexec_check(struct hexec_config *cfg, int argc, char *argv[])
{
	if (cfg->notify && cfg->settle_set) {
		fprintf(stderr, "handoff-exec: --settle is for COMMANDs "
		    "without --notify: with it, READY=1 says when COMMAND is "
		    "ready\n");
		return -1;
	}
	if (cfg->srv.control == NULL || cfg->srv.nlisten == 0 ||
	    optind == argc) {
		fprintf(stderr, "handoff-exec: %s\n", cfg->srv.control ==
		    NULL ? "--control PATH is required (one control socket "
		    "per service)" : cfg->srv.nlisten == 0 ? "at least one "
		    "--listen NAME=SPEC is required" : "no COMMAND given "
		    "after --");
		usage(stderr);
		return -1;
	}
	cfg->argv = argv + optind;
	return 0;
}

/*
 * The command line into cfg: 0 to run, or -1 with the exit status in
 * *code (0 after --help or --version, 2 after a usage error said on
 * stderr, 1 out of memory).
 */
static int
hexec_parse(struct hexec_config *cfg, int argc, char *argv[], int *code)
{
	static const struct option opts[] = {
		TOOL_SERVER_LONGOPTS,
		{ "notify",		no_argument,		NULL, 'n' },
		{ "settle",		required_argument,	NULL, OPT_SETTLE },
		{ "rollback-window",	required_argument,	NULL,
		    OPT_ROLLBACK_WINDOW },
		{ "stop-signal",	required_argument,	NULL, 's' },
		{ NULL, 0, NULL, 0 }
	};
	int	c;

	cfg->stop_signal = SIGTERM;
	cfg->settle_ms = SETTLE_MS;
	cfg->rollback_ms = ROLLBACK_MS;
	/* '+': the options of COMMAND are its own. */
	while ((c = getopt_long(argc, argv, "+" TOOL_SERVER_SHORTOPTS "ns:",
	    opts, NULL)) != -1) {
		switch (tool_server_option(&cfg->srv, c, optarg, code)) {
		case TOOL_OPT_TAKEN:
			break;
		case TOOL_OPT_EXIT:
			return -1;
		case TOOL_OPT_OTHER:
			if (hexec_option(cfg, c, optarg) == -1) {
				*code = 2;
				return -1;
			}
			break;
		}
	}
	if (hexec_check(cfg, argc, argv) == -1) {
		*code = 2;
		return -1;
	}
	return 0;
}

/*
 * The handoff on control, with the options and the listeners, not yet
 * started: 0, or -1 after saying why with x->exit_code set.
 */
static int
hexec_new_handoff(struct hexec *x, const struct tool_server_opts *o)
{
	size_t	i;

	if ((x->h = handoff_new(x->base, o->control)) == NULL) {
		fprintf(stderr, "handoff-exec: --control %s: %s\n", o->control,
		    tool_control_error(errno));
		return -1;
	}
	handoff_set_ident(x->h, "handoff-exec");
	handoff_set_event_cb(x->h, on_event, x);
	handoff_set_drain_timeout(x->h, x->drain_ms);
	handoff_set_ready_timeout(x->h, x->ready_ms);
	/* Unless asked, the library's default. */
	if (o->max_draining_set)
		handoff_set_max_draining(x->h, o->max_draining);
	if (handoff_set_tag(x->h, o->tag) == -1) {
		fprintf(stderr, "handoff-exec: --tag: %s\n",
		    handoff_strerror(x->h));
		return -1;
	}
	for (i = 0; i < o->nlisten; i++)
		if (add_listen(x->h, o->listens[i]) == -1) {
			x->exit_code = 2;
			return -1;
		}
	return 0;
}

/*
 * Signals, timers and the notify socket watched, the listeners taken
 * over or bound, the child's environment and COMMAND's file ready: 0, or
 * -1 after saying why with x->exit_code set.
 */
static int
hexec_prepare(struct hexec *x)
{
	int	code;

	/* SIGCHLD is watched before any child exists, so no exit is missed. */
	if (watch_signals(x) == -1 ||
	    (x->ready_ev = evtimer_new(x->base, ready_timer, x)) == NULL ||
	    (x->window_ev = evtimer_new(x->base, rollback_window_over,
	    x)) == NULL) {
		fprintf(stderr, "handoff-exec: cannot watch signals\n");
		return -1;
	}
	if (x->notify && notify_open(x) == -1) {
		fprintf(stderr, "handoff-exec: cannot open a notify socket: "
		    "%s\n", strerror(errno));
		return -1;
	}
	if (handoff_start(x->h) == -1) {
		fprintf(stderr, "handoff-exec: %s\n", handoff_strerror(x->h));
		return -1;
	}
	x->nfds = handoff_listener_count(x->h);
	if (build_env(x) == -1) {
		fprintf(stderr, "handoff-exec: out of memory\n");
		return -1;
	}
	if ((code = command_open(x)) != 0) {
		x->exit_code = code;
		return -1;
	}
	return 0;
}

/*
 * Everything up to the first child, each piece kept in x for
 * hexec_free: 0, or -1 after saying why with x->exit_code set.
 */
static int
hexec_setup(struct hexec *x, const struct hexec_config *cfg)
{
	x->argv = cfg->argv;
	x->notify = cfg->notify;
	x->stop_signal = cfg->stop_signal;
	x->drain_ms = cfg->srv.drain_ms;
	x->ready_ms = cfg->srv.ready_ms;
	x->settle_ms = cfg->settle_ms;
	x->rollback_ms = cfg->rollback_ms;
	x->self = getpid();
	x->max_fd = (int)sysconf(_SC_OPEN_MAX) > 0 ?
	    (int)sysconf(_SC_OPEN_MAX) : 65536;
	open_std_fds();
	signal(SIGPIPE, SIG_IGN);

	if ((x->base = event_base_new()) == NULL) {
		fprintf(stderr, "handoff-exec: cannot create event base\n");
		return -1;
	}
	if (hexec_new_handoff(x, &cfg->srv) == -1 || hexec_prepare(x) == -1)
		return -1;
	return 0;
}

/* Starts COMMAND and runs until the loop ends: the exit status. */
static int
hexec_run(struct hexec *x)
{
	int	code;

	if ((code = start_child(x, "started")) != 0)
		return code;
	event_base_dispatch(x->base);
	if (x->exit_code == 0)
		xlog(x, "exiting");
	return x->exit_code;
}

/* Frees what hexec_setup made, however far it got. */
static void
hexec_free(struct hexec *x)
{
	size_t	i;

	for (i = 0; i < NSIGNALS; i++)
		if (x->sigs[i] != NULL)
			event_free(x->sigs[i]);
	if (x->notify_ev != NULL)
		event_free(x->notify_ev);
	if (x->ready_ev != NULL)
		event_free(x->ready_ev);
	if (x->straggler_ev != NULL)
		event_free(x->straggler_ev);
	if (x->window_ev != NULL)
		event_free(x->window_ev);
	if (x->notify_fd >= 0)
		close(x->notify_fd);
	if (x->exe_fd >= 0)
		close(x->exe_fd);
	handoff_free(x->h);
	if (x->base != NULL)
		event_base_free(x->base);
	for (i = 0; i < 3; i++)
		free(x->owned_env[i]);
	free(x->envp);
	free(x->tmp_fds);
	free(x->kids);
}

int
main(int argc, char *argv[])
{
	struct hexec_config	cfg;
	struct hexec		x;
	int			code;

	memset(&cfg, 0, sizeof(cfg));
	memset(&x, 0, sizeof(x));
	x.exit_code = 1;
	x.notify_fd = -1;
	x.exe_fd = -1;
	tool_server_init(&cfg.srv, "handoff-exec", usage);
	if (hexec_parse(&cfg, argc, argv, &code) == 0)
		code = hexec_setup(&x, &cfg) == 0 ? hexec_run(&x) :
		    x.exit_code;
	hexec_free(&x);
	tool_server_clear(&cfg.srv);
	return code;
}
