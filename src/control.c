/*
 * control: the control socket path, the lock beside it that serialises
 * start-up and takeover, and the listening control socket itself.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handoff-int.h"

/* Successors and requests waiting to be accepted: a few at once. */
#define CONTROL_BACKLOG	64

/*
 * Whoever may write to the control directory may replace the control
 * socket and the lock, and so pose as the incumbent: the directory must
 * belong to an allowed uid (ours or root), and others may not write to
 * it unless it is sticky (then only an entry's owner removes it, and
 * control_probe and control_lock check the owners of ours).
 */
int
control_check_dir(struct handoff *h)
{
	struct stat	 st;
	char		*dir, *slash;
	int		 r = 0;

	if ((dir = strdup(h->control_path)) == NULL)
		return herr(h, "out of memory");
	if ((slash = strrchr(dir, '/')) == NULL)
		memcpy(dir, ".", 2);	/* fits: the path is not empty */
	else if (slash == dir)
		slash[1] = '\0';	/* "/x" is in "/" */
	else
		*slash = '\0';
	if (stat(dir, &st) == -1)
		r = herr(h, "cannot use control directory %s: %s", dir,
		    strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		r = herr(h, "control directory %s is not a directory", dir);
	else if (!huid_allowed(h, st.st_uid))
		r = herr(h, "control directory %s belongs to uid %ld, who "
		    "could replace the control socket; use a directory of "
		    "uid %ld%s", dir, (long)st.st_uid, (long)geteuid(),
		    geteuid() != 0 ? " or root" : "");
	else if ((st.st_mode & (S_IWGRP | S_IWOTH)) &&
	    !(st.st_mode & S_ISVTX))
		r = herr(h, "control directory %s is writable by %s (mode "
		    "%04o), who could replace the control socket; run "
		    "chmod go-w %s (or chmod +t), or use another directory",
		    dir, st.st_mode & S_IWOTH ? "others" : "its group",
		    (unsigned)(st.st_mode & 07777), dir);
	free(dir);
	return r;
}

/*
 * The CONTROL_PATH_MAX bytes of a socket path hold the path made absolute
 * (its directory resolved, links and all), so that every spelling of it
 * is one control socket and one lock, wherever a start runs from.
 */
int
control_absolute(struct handoff *h)
{
	char	*dir, *base, *real = NULL, *path = NULL, *lock = NULL;
	int	 r = -1;

	if ((dir = strdup(h->control_path)) == NULL)
		return herr(h, "out of memory");
	if ((base = strrchr(dir, '/')) == NULL) {
		base = h->control_path;
		real = realpath(".", NULL);
	} else {
		*base++ = '\0';
		real = realpath(dir[0] != '\0' ? dir : "/", NULL);
	}
	if (real == NULL) {
		herr(h, "control path %s: cannot resolve its directory: %s",
		    h->control_path, strerror(errno));
		goto out;
	}
	if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		herr(h, "control path %s names a directory, not a socket",
		    h->control_path);
		goto out;
	}
	if (asprintf(&path, "%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/",
	    base) == -1 || asprintf(&lock, "%s.lock", path) == -1) {
		path = lock = NULL;
		herr(h, "out of memory");
		goto out;
	}
	if (strlen(path) > CONTROL_PATH_MAX) {
		herr(h, "control path %s is %zu bytes once absolute (%s); a "
		    "socket path holds at most %d: use a shorter one",
		    h->control_path, strlen(path), path, CONTROL_PATH_MAX);
		goto out;
	}
	free(h->control_path);
	free(h->lock_path);
	h->control_path = path;
	h->lock_path = lock;
	path = lock = NULL;
	r = 0;
out:
	free(path);
	free(lock);
	free(real);
	free(dir);
	return r;
}

/* The pid holding a lock on fd, 0 if none, -1 if it cannot be told. */
static pid_t
lock_holder(int fd)
{
	struct flock	fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_GETLK, &fl) == -1)
		return -1;
	return fl.l_type == F_UNLCK ? 0 : fl.l_pid;
}

/*
 * Who is starting on the control path, if anybody: the pid holding the
 * lock, 0 if nobody does (or there is no lock file yet), -1 on error.
 */
pid_t
control_lock_holder(struct handoff *h)
{
	pid_t	pid;
	int	fd;

	fd = open(h->lock_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return errno == ENOENT ? 0 : -1;
	pid = lock_holder(fd);
	close(fd);
	return pid;
}

/*
 * What the lock file on fd must be: a regular file of an allowed uid (in
 * a sticky directory another uid could have made it first), that nobody
 * else may write to (they could hold it, or forge what it says). 0 if
 * it is, else -1 with *writable saying which test failed.
 */
static int
lock_file_ok(const struct handoff *h, int fd, struct stat *st,
    int *writable)
{
	*writable = 0;
	if (fstat(fd, st) == -1 || !S_ISREG(st->st_mode) ||
	    !huid_allowed(h, st->st_uid))
		return -1;
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		*writable = 1;
		return -1;
	}
	return 0;
}

/*
 * A POSIX record lock, not flock(2), so a failed attempt can name the pid
 * that holds it. Released on close, or when the process dies.
 */
int
control_lock(struct handoff *h)
{
	struct flock	fl;
	struct stat	st;
	pid_t		holder;
	int		fd, writable;

	fd = open(h->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd == -1 && errno == ELOOP)
		return herr(h, "lock file %s is a symbolic link, which is "
		    "never followed; remove it", h->lock_path);
	if (fd == -1)
		return herr(h, "cannot open lock file %s: %s (is the "
		    "directory writable?)", h->lock_path, strerror(errno));
	if (lock_file_ok(h, fd, &st, &writable) == -1) {
		if (writable)
			herr(h, "lock file %s is writable by others (mode "
			    "%04o), who could hold it or forge what it says; "
			    "run chmod 600 %s", h->lock_path,
			    (unsigned)(st.st_mode & 07777), h->lock_path);
		else
			herr(h, "lock file %s is not a regular file of an "
			    "allowed uid; remove it", h->lock_path);
		close(fd);
		return -1;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_SETLK, &fl) == -1) {
		if ((errno == EACCES || errno == EAGAIN) &&
		    (holder = lock_holder(fd)) > 0)
			herr(h, "another start or takeover is under way on %s "
			    "(pid %ld holds %s); try again when it has "
			    "finished", h->control_path, (long)holder,
			    h->lock_path);
		else if (errno == EACCES || errno == EAGAIN)
			herr(h, "another start or takeover is under way on %s; "
			    "try again when it has finished", h->control_path);
		else
			herr(h, "cannot lock %s: %s", h->lock_path,
			    strerror(errno));
		close(fd);
		return -1;
	}
	h->lock_fd = fd;
	return 0;
}

void
control_unlock(struct handoff *h)
{
	if (h->lock_fd >= 0)
		close(h->lock_fd);
	h->lock_fd = -1;
}

/*
 * The end of a start that serves. Before letting go, "serving PID
 * GENERATION" goes into PATH.lock: an older generation holding for a
 * vanished successor learns from it that a newer one served, even one
 * that has stopped since and so answers no status (chain.c). Best
 * effort: a reader that finds no whole line asks on the control socket.
 */
void
control_unlock_serving(struct handoff *h)
{
	char	line[CONTROL_SERVING_LEN];
	int	n;

	n = snprintf(line, sizeof(line), "serving %ld %u\n", (long)getpid(),
	    h->generation);
	if (h->lock_fd >= 0 && (pwrite(h->lock_fd, line, (size_t)n, 0) != n ||
	    ftruncate(h->lock_fd, n) == -1))
		hlog(h, "cannot note in %s that we serve: %s", h->lock_path,
		    strerror(errno));
	control_unlock(h);
}

/*
 * The generation the last start that served noted in PATH.lock, and its
 * pid (as it saw itself); 0 if there is no such note.
 */
unsigned
control_last_serving(struct handoff *h, long *pid)
{
	struct stat	st;
	char		buf[CONTROL_SERVING_LEN], *p, *end;
	unsigned long	gen;
	ssize_t		n;
	int		fd, writable;

	if ((fd = open(h->lock_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return 0;
	/* Only what an allowed uid alone could have written counts. */
	n = lock_file_ok(h, fd, &st, &writable) == -1 ? -1 :
	    pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (strncmp(buf, "serving ", 8) != 0)
		return 0;
	errno = 0;
	*pid = strtol(buf + 8, &p, 10);
	if (p == buf + 8 || *p != ' ' || *pid <= 0)
		return 0;
	gen = strtoul(p + 1, &end, 10);
	if (end == p + 1 || *end != '\n' || errno != 0 || gen > UINT_MAX)
		return 0;
	return (unsigned)gen;
}

/*
 * A non-blocking connection to the control path, or -1 with errno: a
 * full backlog must not hang a start (EAGAIN).
 */
int
control_connect(struct handoff *h)
{
	struct sockaddr_un	sun;
	int			fd, save_errno;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, h->control_path, sizeof(sun.sun_path) - 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	save_errno = errno;
	close(fd);
	errno = save_errno;
	return -1;
}

/*
 * Is anybody serving at the control path? Sets *sock to a connected
 * socket if so, to -1 if not (absent or stale); -1 on a path we must not
 * touch. Runs with the lock held, so a stale file can be removed safely.
 */
int
control_probe(struct handoff *h, int *sock)
{
	struct stat		st;
	int			fd;

	*sock = -1;
	if (lstat(h->control_path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		return herr(h, "cannot stat control socket %s: %s",
		    h->control_path, strerror(errno));
	}
	/* Never followed, and nothing but our own socket is removed. */
	if (S_ISLNK(st.st_mode))
		return herr(h, "control path %s is a symbolic link, which is "
		    "never followed; give the socket's own path or remove "
		    "the link", h->control_path);
	if (!S_ISSOCK(st.st_mode))
		return herr(h, "control path %s exists and is not a socket; "
		    "remove it or choose another --control", h->control_path);
	if (!huid_allowed(h, st.st_uid))
		return herr(h, "control socket %s belongs to uid %ld, which is "
		    "not allowed; remove it or choose another --control",
		    h->control_path, (long)st.st_uid);
	if ((fd = control_connect(h)) >= 0) {
		*sock = fd;
		return 0;
	}
	if (errno == EMFILE || errno == ENFILE)
		return herr(h, "socket: %s", strerror(errno));
	if (errno == EAGAIN)
		return herr(h, "control socket %s is in use and its backlog is "
		    "full; try again", h->control_path);
	if (errno == ECONNREFUSED || errno == ENOENT) {
		hlog(h, "stale control socket %s (nobody accepts on it): "
		    "replacing it", h->control_path);
		if (unlink(h->control_path) == -1 && errno != ENOENT)
			return herr(h, "cannot remove stale control socket "
			    "%s: %s", h->control_path, strerror(errno));
		return 0;
	}
	if (errno == EPROTOTYPE)
		return herr(h, "%s is a socket of another type, not a handoff "
		    "control socket; remove it or choose another --control",
		    h->control_path);
	return herr(h, "cannot connect to control socket %s: %s",
	    h->control_path, strerror(errno));
}

/* Binds the control socket fresh; the path is free (control_probe). */
int
control_bind(struct handoff *h)
{
	struct sockaddr_un	sun;
	int			fd;
	mode_t			old;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, h->control_path, sizeof(sun.sun_path) - 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		return herr(h, "socket: %s", strerror(errno));
	/* Only our uid (and root) may connect; the peer check is the rule. */
	old = umask(0077);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		herr(h, "cannot bind control socket %s: %s", h->control_path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	if (listen(fd, CONTROL_BACKLOG) == -1) {
		herr(h, "listen on %s: %s", h->control_path, strerror(errno));
		close(fd);
		return -1;
	}
	if (hlistener_set(&h->control, CONTROL_NAME, NULL, fd, NULL) == -1)
		return herr(h, "cannot identify control socket %s",
		    h->control_path);
	return 0;
}

/*
 * One fd kept open on /dev/null while we accept on the control socket,
 * and given up to take a connection in when the fd table is full: a
 * successor, the way out for a server short of fds, can always be
 * accepted. Opened again when it can be; a failure only leaves it out.
 */
void
control_spare(struct handoff *h)
{
	if (h->spare_fd < 0)
		h->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Starts, or resumes, accepting on the control socket: cb takes each
 * connection, with control_accept. */
int
control_listen(struct handoff *h, event_callback_fn cb)
{
	control_spare(h);
	h->control_paused = 0;
	if (h->control_ev != NULL && h->control_cb != cb) {
		event_free(h->control_ev);
		h->control_ev = NULL;
	}
	h->control_cb = cb;
	if (h->control_ev == NULL) {
		h->control_ev = event_new(h->base, h->control.fd,
		    EV_READ | EV_PERSIST, cb, h);
		if (h->control_ev == NULL)
			return herr(h, "cannot create control event");
	}
	if (event_add(h->control_ev, NULL) == -1)
		return herr(h, "cannot watch control socket");
	return 0;
}

void
control_pause(struct handoff *h)
{
	h->control_paused = 1;
	if (h->control_ev != NULL)
		event_del(h->control_ev);
}

static void
control_retry(evutil_socket_t fd, short what, void *arg)
{
	struct handoff	*h = arg;

	/* Not once the caller paused it (draining: our successor accepts
	 * there now). */
	if (!h->control_paused)
		control_listen(h, h->control_cb);
}

/*
 * Accepts one control connection. With the fd table full, the spare
 * fd's slot takes it in (*spared says so), so that a successor, the way
 * out for a server short of fds, is never left in the backlog (*spared
 * is then EMFILE or ENFILE). -1 with errno when nothing is queued, or
 * when there is no room even so.
 */
static int
accept_control(struct handoff *h, int lfd, int *spared)
{
	int	fd;

	*spared = 0;
	control_spare(h);	/* a slot may have come free since */
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1 && (errno == EMFILE || errno == ENFILE) &&
	    h->spare_fd >= 0) {
		*spared = errno;
		close(h->spare_fd);
		h->spare_fd = -1;
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	}
	return fd;
}

/* Out of fds with the spare in use: retry later, not in a loop. */
static void
accept_later(struct handoff *h)
{
	static const struct timeval retry = { 1, 0 };

	if (!h->fds_short)
		hlog(h, "control: accept: %s, and the spare fd is in use; "
		    "pausing the control socket, trying again every 1 s "
		    "(raise RLIMIT_NOFILE)", strerror(errno));
	h->fds_short = 1;
	if (h->control_ev != NULL)
		event_del(h->control_ev);	/* not control_pause: ours */
	if (h->retry_ev == NULL)
		h->retry_ev = evtimer_new(h->base, control_retry, h);
	if (h->retry_ev != NULL)
		evtimer_add(h->retry_ev, &retry);
}

/*
 * The next connection queued on the control socket lfd, with its peer's
 * credentials, or -1 when there is none (or no room: then accepting
 * pauses, and is tried again later). *last says the caller is to stop
 * there: the spare fd took it in, and accept says EMFILE even with
 * nothing queued.
 */
int
control_accept(struct handoff *h, int lfd, struct ucred *cred, int *last)
{
	socklen_t	len;
	int		fd, spared;

	while ((fd = accept_control(h, lfd, &spared)) >= 0) {
		len = sizeof(*cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred,
		    &len) == -1) {
			hlog(h, "control: SO_PEERCRED: %s", strerror(errno));
			close(fd);
			continue;
		}
		if (spared)
			hlog(h, "control: accept: %s: took pid %ld (uid %ld) "
			    "in with the spare fd (raise RLIMIT_NOFILE)",
			    strerror(spared), (long)cred->pid, (long)cred->uid);
		else
			h->fds_short = 0;
		*last = spared != 0;
		return fd;
	}
	if (errno == EMFILE || errno == ENFILE)
		accept_later(h);
	return -1;
}
