/*
 * wire: framing of control messages on an AF_UNIX SOCK_SEQPACKET socket.
 * Every fd that arrives is either handed to the caller or closed here.
 */
#include "config.h"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <linux/sockios.h>

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "wire.h"

#define WIRE_CMSG_SPACE	CMSG_SPACE(WIRE_MAX_FDS * sizeof(int))

void
wire_close_fds(int *fds, size_t n)
{
	int	save_errno = errno;
	size_t	i;

	for (i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
	errno = save_errno;
}

/*
 * Sends one message; E2BIG for too many fds, EMSGSIZE for too long a
 * message, EAGAIN when a non-blocking socket is full.
 */
int
wire_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr	hdr;
		char		buf[WIRE_CMSG_SPACE];
	} cmsgbuf;
	struct iovec	 iov;
	struct msghdr	 msg;
	struct cmsghdr	*cmsg;
	ssize_t		 n;

	if (nfds > WIRE_MAX_FDS) {
		errno = E2BIG;
		return -1;
	}
	if (len == 0 || len > WIRE_MAX_MSG) {
		errno = EMSGSIZE;
		return -1;
	}
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)buf;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		memset(&cmsgbuf, 0, sizeof(cmsgbuf));
		msg.msg_control = cmsgbuf.buf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
	}
	do {
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if ((size_t)n != len) {
		/* SEQPACKET is all or nothing; anything else is a kernel surprise. */
		errno = EPROTO;
		return -1;
	}
	return 0;
}

/* Collects SCM_RIGHTS fds into fds[]; extras beyond max are closed. */
static int
wire_collect_fds(struct msghdr *msg, int *fds, size_t max, size_t *nfds)
{
	struct cmsghdr	*cmsg;
	size_t		 i, n;
	int		 fd, overflow = 0;

	*nfds = 0;
	for (cmsg = CMSG_FIRSTHDR(msg); cmsg != NULL;
	    cmsg = CMSG_NXTHDR(msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int),
			    sizeof(int));
			if (*nfds < max)
				fds[(*nfds)++] = fd;
			else {
				close(fd);
				overflow = 1;
			}
		}
	}
	return overflow ? -1 : 0;
}

/*
 * Receives one message into buf. Returns its length, 0 when the peer has
 * closed, or -1 with errno: EMSGSIZE (longer than cap), ETOOMANYREFS (more
 * fds than max, or control data truncated), or the recvmsg error.
 */
ssize_t
wire_recv(int sock, void *buf, size_t cap, int *fds, size_t max, size_t *nfds)
{
	ssize_t	n;
	int	lost;

	n = wire_recv_lossy(sock, buf, cap, fds, max, nfds, &lost);
	if (lost) {
		errno = ETOOMANYREFS;
		return -1;
	}
	return n;
}

/*
 * The same, but a message whose fds did not all arrive (more than max, or
 * control data truncated: our fd table is full) is still returned, its
 * fds closed, *nfds 0 and *lost 1: its sender can be answered.
 */
ssize_t
wire_recv_lossy(int sock, void *buf, size_t cap, int *fds, size_t max,
    size_t *nfds, int *lost)
{
	union {
		struct cmsghdr	hdr;
		char		buf[WIRE_CMSG_SPACE];
	} cmsgbuf;
	struct iovec	iov;
	struct msghdr	msg;
	ssize_t		n;

	*nfds = 0;
	*lost = 0;
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = buf;
	iov.iov_len = cap;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cmsgbuf.buf;
	msg.msg_controllen = sizeof(cmsgbuf.buf);
	do {
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if (wire_collect_fds(&msg, fds, max, nfds) == -1 ||
	    (msg.msg_flags & MSG_CTRUNC)) {
		wire_close_fds(fds, *nfds);
		*nfds = 0;
		*lost = 1;
	}
	if (msg.msg_flags & MSG_TRUNC) {
		wire_close_fds(fds, *nfds);
		*nfds = 0;
		errno = EMSGSIZE;
		return -1;
	}
	if (n == 0 && (*nfds > 0 || *lost)) {
		/* An empty datagram carrying fds is not a message. */
		wire_close_fds(fds, *nfds);
		*nfds = 0;
		errno = EBADMSG;
		return -1;
	}
	return n;
}

/*
 * Waits up to ms milliseconds for events on sock. Returns 0 when ready,
 * -1 with ETIMEDOUT or the poll error.
 */
int
wire_wait(int sock, short events, int ms)
{
	struct pollfd	pfd;
	int		r;

	pfd.fd = sock;
	pfd.events = events;
	do {
		r = poll(&pfd, 1, ms);
	} while (r == -1 && errno == EINTR);
	if (r == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	return r == -1 ? -1 : 0;
}

int
wire_unread(int sock)
{
	int	n;

	return ioctl(sock, SIOCOUTQ, &n) == -1 ? 0 : n;
}
