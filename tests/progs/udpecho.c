/*
 * udpecho: a socket-activated UDP echo server, written against the
 * documented protocol (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES,
 * NOTIFY_SOCKET) and nothing of libhandoff, as any program handoff-exec
 * runs. Each datagram on a passed datagram socket is answered with
 * "pid=<pid> " and its own bytes. Sends READY=1 once it reads, if
 * NOTIFY_SOCKET is set. SIGTERM: it stops reading, answers nothing more,
 * and exits 0; every datagram it read has been answered by then.
 *
 * Says on stderr which sockets it got: "udpecho: pid P serves N
 * datagram sockets (NAMES)".
 *
 * usage: udpecho
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FDS_START	3
#define FDS_MAX		64
#define DGRAM_MAX	65536
#define BATCH		64

static volatile sig_atomic_t	stopping;

static void
on_term(int sig)
{
	stopping = 1;
}

/* The passed fds, if they are for us; 0 when none were passed. */
static int
listen_fds(void)
{
	const char	*pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	char		*end;
	long		 n;

	if (pid == NULL || fds == NULL || strtol(pid, &end, 10) != getpid() ||
	    *end != '\0')
		return 0;
	n = strtol(fds, &end, 10);
	if (*end != '\0' || n < 0 || n > FDS_MAX)
		return 0;
	return (int)n;
}

/* The passed datagram sockets into pfd (others are not ours): how many. */
static int
dgram_fds(struct pollfd *pfd)
{
	socklen_t	len;
	int		n = listen_fds(), i, np = 0, type;

	for (i = 0; i < n; i++) {
		len = sizeof(type);
		if (getsockopt(FDS_START + i, SOL_SOCKET, SO_TYPE, &type,
		    &len) == -1 || type != SOCK_DGRAM)
			continue;
		pfd[np].fd = FDS_START + i;
		pfd[np++].events = POLLIN;
	}
	return np;
}

/* READY=1 to NOTIFY_SOCKET ("@" for the abstract namespace); 0 if unset. */
static int
notify_ready(void)
{
	const char		*path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un	 sun;
	socklen_t		 len;
	int			 fd, rc = -1;

	if (path == NULL || path[0] == '\0')
		return 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -1;
	memcpy(sun.sun_path, path, strlen(path));
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sun, len) == 7)
		rc = 0;
	close(fd);
	return rc;
}

/* Answers what is queued on fd, BATCH at most. */
static void
echo(int fd, const char *head, size_t hlen)
{
	static char		 buf[DGRAM_MAX];
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	ssize_t			 n;
	int			 i;

	memcpy(buf, head, hlen);
	for (i = 0; i < BATCH; i++) {
		len = sizeof(ss);
		n = recvfrom(fd, buf + hlen, sizeof(buf) - hlen, MSG_DONTWAIT,
		    (struct sockaddr *)&ss, &len);
		if (n == -1)
			return;
		sendto(fd, buf, hlen + (size_t)n, MSG_DONTWAIT,
		    (struct sockaddr *)&ss, len);
	}
}

int
main(void)
{
	struct pollfd		 pfd[FDS_MAX];
	struct sigaction	 sa;
	sigset_t		 term, none;
	char			 head[32];
	const char		*names = getenv("LISTEN_FDNAMES");
	int			 i, np, hlen;

	if ((np = dgram_fds(pfd)) == 0) {
		fprintf(stderr, "udpecho: no datagram socket passed "
		    "(LISTEN_PID, LISTEN_FDS)\n");
		return 1;
	}
	/* SIGTERM only while waiting: a batch read is a batch answered. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	sigemptyset(&none);
	hlen = snprintf(head, sizeof(head), "pid=%ld ", (long)getpid());
	fprintf(stderr, "udpecho: pid %ld serves %d datagram sockets (%s)\n",
	    (long)getpid(), np, names != NULL ? names : "-");
	if (notify_ready() == -1) {
		fprintf(stderr, "udpecho: cannot send READY=1: %s\n",
		    strerror(errno));
		return 1;
	}
	while (!stopping) {
		if (ppoll(pfd, (nfds_t)np, NULL, &none) == -1) {
			if (errno == EINTR)
				continue;
			perror("udpecho: poll");
			return 1;
		}
		for (i = 0; i < np; i++)
			if (pfd[i].revents & POLLIN)
				echo(pfd[i].fd, head, (size_t)hlen);
	}
	fprintf(stderr, "udpecho: pid %ld stops\n", (long)getpid());
	return 0;
}
