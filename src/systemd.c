/*
 * systemd: tell the service manager what happens (READY=1, RELOADING=1,
 * MAINPID=, STOPPING=1, STATUS=) and accept first-start sockets from it.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adopt.h"
#include "handoff-int.h"
#include "message.h"
#include "systemd.h"

int
systemd_applies(void)
{
	const char	*e = getenv("NOTIFY_SOCKET");

	return e != NULL && (e[0] == '/' || e[0] == '@');
}

int
systemd_notify(const char *fmt, ...)
{
	struct sockaddr_un	 sun;
	const char		*path = getenv("NOTIFY_SOCKET");
	char			 text[1024];
	socklen_t		 len;
	va_list			 ap;
	ssize_t			 n;
	int			 fd, save, want;

	if (!systemd_applies())
		return 0;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	va_start(ap, fmt);
	want = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (want < 0 || (size_t)want >= sizeof(text)) {
		errno = EMSGSIZE;	/* not cut: a cut line lies */
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (path[0] == '@')
		sun.sun_path[0] = '\0';	/* abstract namespace */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(path) + (path[0] == '@' ? 0 : 1));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	n = sendto(fd, text, strlen(text), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, len);
	save = errno;
	close(fd);
	errno = save;
	return n == (ssize_t)strlen(text) ? 1 : -1;
}

static int
read_cgroup(const char *path, char *buf, size_t len)
{
	FILE	*f;
	size_t	 n;

	if ((f = fopen(path, "re")) == NULL)
		return -1;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	return 0;
}

/*
 * Is pid in our cgroup, so in our unit? A successor started by
 * ExecReload is; an instance of a template unit is not, and is the main
 * pid of its own unit.
 */
int
systemd_same_unit(pid_t pid)
{
	char	mine[4096], theirs[4096], path[64];

	snprintf(path, sizeof(path), "/proc/%ld/cgroup", (long)pid);
	if (read_cgroup("/proc/self/cgroup", mine, sizeof(mine)) == -1 ||
	    read_cgroup(path, theirs, sizeof(theirs)) == -1)
		return 1;
	return strcmp(mine, theirs) == 0;
}

/* The n-th name of LISTEN_FDNAMES, or a made-up one if none or unusable. */
static void
fd_name(const char *names, size_t n, int fd, char *buf, size_t len)
{
	const char	*p = names;
	size_t		 i, l;

	for (i = 0; p != NULL && i < n; i++) {
		p = strchr(p, ':');
		if (p != NULL)
			p++;
	}
	if (p != NULL) {
		l = strcspn(p, ":");
		if (l > 0 && l < len) {
			memcpy(buf, p, l);
			buf[l] = '\0';
			if (msg_name_valid(buf) && buf[0] != '@')
				return;
		}
	}
	snprintf(buf, len, "fd%d", fd);
}

/*
 * systemd names every fd of a socket unit after the unit unless told
 * otherwise: "app.socket:app.socket" is normal, so repeated names get
 * ".2", ".3"... and the listeners still match by address.
 */
static void
unique_name(struct adopt_set *set, char *name, size_t len)
{
	char	base[MSG_NAME_MAX + 1];
	size_t	i, k;

	snprintf(base, sizeof(base), "%s", name);
	for (k = 2;; k++) {
		for (i = 0; i < set->n; i++)
			if (strcmp(set->l[i].name, name) == 0)
				break;
		if (i == set->n)
			return;
		snprintf(name, len, "%.*s.%zu", MSG_NAME_MAX - 8, base, k);
	}
}

/* Only sockets are ours to adopt; anything else is left as it is. */
static int
is_socket(int fd)
{
	struct stat	st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

int
systemd_listen_fds(struct handoff *h, struct adopt_set *set)
{
	const char	*pid_s = getenv("LISTEN_PID");
	const char	*fds_s = getenv("LISTEN_FDS");
	const char	*names = getenv("LISTEN_FDNAMES");
	char		*end, name[MSG_NAME_MAX + 1];
	long		 pid, n, i;
	int		 fd;

	memset(set, 0, sizeof(*set));
	if (pid_s == NULL || fds_s == NULL)
		return 0;
	errno = 0;
	pid = strtol(pid_s, &end, 10);
	if (errno != 0 || *end != '\0' || pid != (long)getpid())
		return 0;	/* meant for another process */
	n = strtol(fds_s, &end, 10);
	if (errno != 0 || *end != '\0' || n < 0 || n > 65536)
		return herr(h, "LISTEN_FDS=%s is not a count of fds", fds_s);
	if (n == 0 || adopt_init(h, set, (size_t)n) == -1)
		return n == 0 ? 0 : -1;
	for (i = 0; i < n; i++) {
		fd = LISTEN_FDS_START + (int)i;
		fd_name(names, (size_t)i, fd, name, sizeof(name));
		if (!is_socket(fd)) {
			hlog(h, "LISTEN_FDS: fd %d (%s) is not an open socket: "
			    "left alone", fd, name);
			continue;
		}
		unique_name(set, name, sizeof(name));
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1 ||
		    hlistener_set(&set->l[set->n], name, NULL, fd,
		    NULL) == -1) {
			herr(h, "LISTEN_FDS: fd %d (%s): %s", fd, name,
			    strerror(errno));
			adopt_free(set);
			return -1;
		}
		set->n++;
	}
	/* Our children must not take these for theirs. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (set->n == 0)
		adopt_free(set);
	return (int)set->n;
}

/* Tells the service manager, if there is one; failures are logged. */
void
hnotify(struct handoff *h, const char *fmt, ...)
{
	char	text[1024];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(text))
		hlog(h, "NOTIFY_SOCKET %s: a line of %d bytes is too long; "
		    "not sent", getenv("NOTIFY_SOCKET"), n);
	else if (systemd_notify("%s", text) == -1)
		hlog(h, "NOTIFY_SOCKET %s: %s", getenv("NOTIFY_SOCKET"),
		    strerror(errno));
}
