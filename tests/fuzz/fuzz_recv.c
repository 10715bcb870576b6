/*
 * fuzz_recv: the receive path with ancillary data. The first PLAN_BYTES
 * bytes of the input are a plan, the rest is the payload:
 *
 *   byte 0  fds to attach, 0 to SCM_MAX_FD (253; larger values mean 253)
 *   byte 1  bits 0-1: SCM_RIGHTS cmsgs to spread them over, minus one
 *           bit 2: the sender adds SCM_CREDENTIALS
 *           bit 3: the receiver sets SO_PASSCRED (a cmsg before the fds)
 *           bit 4: a receive buffer shorter than the payload
 *           bit 5: the message is sent twice
 *           bit 6: the sender hangs up; the receiver reads until EOF
 *           bit 7: max fds is WIRE_MAX_FDS, else byte 2 modulo 253
 *   byte 2  max fds for wire_recv
 *   byte 3  receive buffer length when bit 4 is set (modulo the payload)
 *
 * The message goes out with a raw sendmsg over a fresh socketpair, carrying
 * real fds (/dev/null, both ends of a pipe, a socket), and comes back in
 * through wire_recv, then msg_parse. The result must be exactly what the
 * header of wire.h promises, every fd handed over must be CLOEXEC and be
 * the one sent in its position, and once the harness has closed what it
 * owns, the process must hold the same number of fds as before the input.
 * Any violation aborts, so libFuzzer reports it with the input.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "message.h"
#include "wire.h"
#include "fuzz.h"

#define PLAN_BYTES	4
#define SEND_MAX_FDS	253	/* SCM_MAX_FD: the kernel refuses more */
#define SEND_MAX_CMSGS	4
#define POOL_FDS	4
/* wire_recv's control buffer, to know how many fds the kernel can fit. */
#define RECV_CMSG_SPACE	CMSG_SPACE(WIRE_MAX_FDS * sizeof(int))

struct plan {
	size_t	nfds;
	size_t	ncmsgs;
	int	creds;
	int	passcred;
	int	small;
	int	twice;
	int	hangup;
	size_t	max;
	size_t	cap;
};

static int		pool[POOL_FDS];	/* the fds we send, opened once */
static struct stat	pool_st[POOL_FDS];
static int		fd_dir = -1;	/* /proc/self/fd, rewound per count */
static char		buf[WIRE_MAX_MSG];

/* Open fds of this process, from one getdents64 pass over /proc/self/fd. */
static long
fd_count(void)
{
	char	 d[8192];
	long	 n, off, count = 0;

	FUZZ_ASSERT(lseek(fd_dir, 0, SEEK_SET) == 0);
	while ((n = syscall(SYS_getdents64, fd_dir, d, sizeof(d))) > 0) {
		for (off = 0; off < n;) {
			unsigned short	reclen;
			const char	*name = d + off + 19;

			memcpy(&reclen, d + off + 16, sizeof(reclen));
			if (name[0] != '.')
				count++;
			off += reclen;
		}
	}
	FUZZ_ASSERT(n == 0);
	return count;
}

static void
fd_list(void)
{
	char	path[64], target[256];
	ssize_t	n;
	int	fd;

	for (fd = 0; fd < 1024; fd++) {
		if (fcntl(fd, F_GETFD) == -1)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		target[n < 0 ? 0 : n] = '\0';
		fprintf(stderr, "  fd %d -> %s\n", fd, target);
	}
}

static void
pool_open(void)
{
	int	p[2], s[2], i;

	FUZZ_ASSERT((pool[0] = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0);
	FUZZ_ASSERT(pipe2(p, O_CLOEXEC) == 0);
	FUZZ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) ==
	    0);
	close(s[1]);
	pool[1] = p[0];
	pool[2] = p[1];
	pool[3] = s[0];
	for (i = 0; i < POOL_FDS; i++)
		FUZZ_ASSERT(fstat(pool[i], &pool_st[i]) == 0);
	FUZZ_ASSERT((fd_dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) >= 0);
}

static void
plan_read(const uint8_t *data, size_t size, size_t len, struct plan *pl)
{
	uint8_t	b[PLAN_BYTES] = { 0 };

	memcpy(b, data, size < PLAN_BYTES ? size : PLAN_BYTES);
	pl->nfds = b[0] > SEND_MAX_FDS ? SEND_MAX_FDS : b[0];
	pl->ncmsgs = 1 + (b[1] & 3);
	pl->creds = (b[1] & 0x04) != 0;
	pl->passcred = (b[1] & 0x08) != 0;
	pl->small = (b[1] & 0x10) != 0;
	pl->twice = (b[1] & 0x20) != 0;
	pl->hangup = (b[1] & 0x40) != 0;
	pl->max = (b[1] & 0x80) ? WIRE_MAX_FDS : b[2] % (WIRE_MAX_FDS + 1);
	pl->cap = sizeof(buf);
	if (pl->small)
		pl->cap = len > 0 ? b[3] % len : 0;
}

/* Sends payload with the plan's fds spread over its SCM_RIGHTS cmsgs. */
static void
plan_send(int sock, const struct plan *pl, const void *payload, size_t len)
{
	static char	 ctl[SEND_MAX_CMSGS * CMSG_SPACE(SEND_MAX_FDS *
			    sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
	struct ucred	 cred;
	struct iovec	 iov;
	struct msghdr	 msg;
	struct cmsghdr	*cmsg;
	size_t		 i, k, chunk, sent = 0, space = 0;
	int		 fd;

	memset(&msg, 0, sizeof(msg));
	memset(ctl, 0, sizeof(ctl));
	iov.iov_base = (void *)payload;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl;
	msg.msg_controllen = sizeof(ctl);
	cmsg = CMSG_FIRSTHDR(&msg);
	if (pl->creds) {
		cred.pid = getpid();
		cred.uid = getuid();
		cred.gid = getgid();
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_CREDENTIALS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(cred));
		memcpy(CMSG_DATA(cmsg), &cred, sizeof(cred));
		space += CMSG_SPACE(sizeof(cred));
		cmsg = CMSG_NXTHDR(&msg, cmsg);
	}
	for (i = 0; i < pl->ncmsgs && (pl->nfds > 0 || i == 0); i++) {
		chunk = pl->nfds / pl->ncmsgs +
		    (i < pl->nfds % pl->ncmsgs ? 1 : 0);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(chunk * sizeof(int));
		for (k = 0; k < chunk; k++, sent++) {
			fd = pool[sent % POOL_FDS];
			memcpy(CMSG_DATA(cmsg) + k * sizeof(int), &fd,
			    sizeof(fd));
		}
		space += CMSG_SPACE(chunk * sizeof(int));
		cmsg = CMSG_NXTHDR(&msg, cmsg);
	}
	FUZZ_ASSERT(sent == pl->nfds);
	msg.msg_controllen = space;
	if (space == 0)
		msg.msg_control = NULL;
	if (sendmsg(sock, &msg, MSG_NOSIGNAL) != (ssize_t)len) {
		fprintf(stderr, "sendmsg of %zu bytes with %zu fds in %zu "
		    "cmsgs: %s\n", len, pl->nfds, pl->ncmsgs, strerror(errno));
		abort();
	}
}

/* The fd at position i was sent as pool[i % POOL_FDS]: same file, CLOEXEC. */
static void
check_fds(const int *fds, size_t n)
{
	struct stat	st;
	const struct stat *want;
	size_t		i;

	for (i = 0; i < n; i++) {
		want = &pool_st[i % POOL_FDS];
		FUZZ_ASSERT(fds[i] >= 0);
		FUZZ_ASSERT(fcntl(fds[i], F_GETFD) == FD_CLOEXEC);
		FUZZ_ASSERT(fstat(fds[i], &st) == 0);
		FUZZ_ASSERT(st.st_dev == want->st_dev &&
		    st.st_ino == want->st_ino);
	}
}

/* What wire.h promises for this plan: an errno, or 0 for success. */
static int
expected_errno(const struct plan *pl, size_t len)
{
	size_t	room = RECV_CMSG_SPACE - CMSG_LEN(0);

	if (pl->passcred)
		room -= CMSG_SPACE(sizeof(struct ucred));
	if (pl->nfds > pl->max || pl->nfds > room / sizeof(int))
		return ETOOMANYREFS;
	if (len > pl->cap)
		return EMSGSIZE;
	if (len == 0 && pl->nfds > 0)
		return EBADMSG;
	return 0;
}

/* One wire_recv of the message the plan sent, checked, then parsed. */
static void
recv_one(int sock, const struct plan *pl, const void *payload, size_t len)
{
	json_t	*msg;
	int	*fds;
	size_t	 nfds = 12345;
	ssize_t	 n;
	int	 want = expected_errno(pl, len);
	char	 err[512];

	/* Exactly max slots, so a write past them is an ASan report. */
	FUZZ_ASSERT((fds = malloc(pl->max * sizeof(int) + (pl->max == 0))) !=
	    NULL);
	errno = 0;
	n = wire_recv(sock, buf, pl->cap, fds, pl->max, &nfds);
	if (want != 0) {
		if (n != -1 || errno != want || nfds != 0) {
			fprintf(stderr, "wire_recv: got %zd (%s) with %zu fds, "
			    "want -1 (%s)\n", n, strerror(errno), nfds,
			    strerror(want));
			abort();
		}
		free(fds);
		return;
	}
	if (n != (ssize_t)len || nfds != pl->nfds) {
		fprintf(stderr, "wire_recv: got %zd (%s) with %zu fds, want "
		    "%zu with %zu fds\n", n, strerror(errno), nfds, len,
		    pl->nfds);
		abort();
	}
	FUZZ_ASSERT(memcmp(buf, payload, len) == 0);
	check_fds(fds, nfds);
	/* As the callers do: parse, and the fds are ours to close. */
	if ((msg = msg_parse(buf, (size_t)n, err, sizeof(err))) != NULL)
		FUZZ_ASSERT(msg_type(msg) != NULL);
	json_decref(msg);
	wire_close_fds(fds, nfds);
	free(fds);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct plan	 pl;
	const uint8_t	*payload = data + (size < PLAN_BYTES ? size : PLAN_BYTES);
	size_t		 len = size - (size_t)(payload - data), nfds;
	long		 before, after;
	int		 sv[2], on = 1, dummy[1];

	if (fd_dir == -1)
		pool_open();
	plan_read(data, size, len, &pl);
	before = fd_count();
	FUZZ_ASSERT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, sv) == 0);
	if (pl.passcred)
		FUZZ_ASSERT(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on,
		    sizeof(on)) == 0);
	plan_send(sv[0], &pl, payload, len);
	if (pl.twice)
		plan_send(sv[0], &pl, payload, len);
	if (pl.hangup)
		close(sv[0]);
	recv_one(sv[1], &pl, payload, len);
	if (pl.twice)
		recv_one(sv[1], &pl, payload, len);
	if (pl.hangup) {
		/* Nothing left but the hangup: 0, and no fds. */
		nfds = 1;
		FUZZ_ASSERT(wire_recv(sv[1], buf, sizeof(buf), dummy, 1,
		    &nfds) == 0 && nfds == 0);
	} else
		close(sv[0]);
	close(sv[1]);
	after = fd_count();
	if (after != before) {
		fprintf(stderr, "fd leak: %ld fds open before this input, %ld "
		    "after\n", before, after);
		fd_list();
		abort();
	}
	return 0;
}
