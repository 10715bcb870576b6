/*
 * test_wire: framing and fd ownership of src/wire.c over real
 * SOCK_SEQPACKET socketpairs. Every fd that arrives must be new, CLOEXEC
 * and the same object that was sent; every failure path must leave no fd
 * behind, which the tests count in /proc/self/fd.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "wire.h"
#include "unit.h"

#define MAX_TEST_FDS	1000

static int
seqpair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

/* n distinct objects: each AF_UNIX socket has its own inode. */
static int
open_objects(int *fds, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		fds[i] = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fds[i] == -1) {
			wire_close_fds(fds, i);
			return -1;
		}
	}
	return 0;
}

static int
same_object(int a, int b)
{
	struct stat	sa, sb;

	if (fstat(a, &sa) == -1 || fstat(b, &sb) == -1)
		return 0;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* got[i] is a new, CLOEXEC fd for the object of sent[i]. */
static void
check_received(const int *sent, const int *got, size_t n)
{
	size_t	i, new = 0, cloexec = 0, same = 0;
	int	flags;

	for (i = 0; i < n; i++) {
		if (got[i] >= 0 && got[i] != sent[i])
			new++;
		flags = fcntl(got[i], F_GETFD);
		if (flags != -1 && (flags & FD_CLOEXEC))
			cloexec++;
		if (same_object(sent[i], got[i]))
			same++;
	}
	CHECK_INT(new, n);
	CHECK_INT(cloexec, n);
	CHECK_INT(same, n);
}

/* Sends fds with one raw sendmsg, one SCM_RIGHTS cmsg per group. */
static ssize_t
raw_send(int sock, const void *buf, size_t len, const int *fds,
    const size_t *groups, size_t ngroups)
{
	static union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(512 * sizeof(int))];
	} cbuf;
	struct iovec	 iov;
	struct msghdr	 msg;
	struct cmsghdr	*cmsg;
	size_t		 g, space = 0, off = 0;

	for (g = 0; g < ngroups; g++)
		space += CMSG_SPACE(groups[g] * sizeof(int));
	if (space > sizeof(cbuf.buf)) {
		errno = E2BIG;
		return -1;
	}
	memset(&cbuf, 0, sizeof(cbuf));
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)buf;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = space;
	cmsg = CMSG_FIRSTHDR(&msg);
	for (g = 0; g < ngroups; g++) {
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(groups[g] * sizeof(int));
		memcpy(CMSG_DATA(cmsg), fds + off, groups[g] * sizeof(int));
		off += groups[g];
		cmsg = CMSG_NXTHDR(&msg, cmsg);
	}
	return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

/*
 * wire_recv on sock with room for cap bytes and max fds must fail with
 * want_errno, return no fds and leave the fd table as it was. Prints
 * what differed; returns 1 when all held.
 */
static int
recv_fails_clean(int sock, size_t cap, size_t max, int want_errno)
{
	static char	buf[WIRE_MAX_MSG];
	int		got[WIRE_MAX_FDS], before, after, ok = 1;
	size_t		i, ngot = 99;
	ssize_t		r;

	for (i = 0; i < WIRE_MAX_FDS; i++)
		got[i] = -1;
	before = unit_count_fds();
	errno = 0;
	r = wire_recv(sock, buf, cap, got, max, &ngot);
	if (r != -1 || errno != want_errno) {
		fprintf(stderr, "    wire_recv gave %zd, errno %d (%s); want -1, "
		    "errno %d (%s)\n", r, errno, strerror(errno), want_errno,
		    strerror(want_errno));
		ok = 0;
	}
	after = unit_count_fds();
	if (ngot != 0 || after != before) {
		fprintf(stderr, "    %zu fds returned, %d open before, %d "
		    "after\n", ngot, before, after);
		ok = 0;
	}
	for (i = 0; i < max && i < WIRE_MAX_FDS; i++)
		if (got[i] != -1)
			ok = 0;
	return ok;
}

static void
test_roundtrip(size_t n)
{
	int	sv[2], sent[WIRE_MAX_FDS], got[WIRE_MAX_FDS];
	char	buf[64];
	size_t	ngot = 99;
	ssize_t	r;

	if (seqpair(sv) == -1 || open_objects(sent, n) == -1) {
		CHECK(!"socketpair or sockets");
		return;
	}
	CHECK_INT(wire_send(sv[0], "{\"type\":\"fds\"}", 14, sent, n), 0);
	r = wire_recv(sv[1], buf, sizeof(buf), got, WIRE_MAX_FDS, &ngot);
	CHECK_INT(r, 14);
	CHECK(r == 14 && memcmp(buf, "{\"type\":\"fds\"}", 14) == 0);
	CHECK_INT(ngot, n);
	if (ngot == n)
		check_received(sent, got, n);
	wire_close_fds(got, ngot);
	wire_close_fds(sent, n);
	close(sv[0]);
	close(sv[1]);
}

static void
test_too_many_to_send(void)
{
	int	sv[2], fds[WIRE_MAX_FDS + 1];

	if (seqpair(sv) == -1 || open_objects(fds, WIRE_MAX_FDS + 1) == -1) {
		CHECK(!"socketpair or sockets");
		return;
	}
	errno = 0;
	CHECK_INT(wire_send(sv[0], "x", 1, fds, WIRE_MAX_FDS + 1), -1);
	CHECK_INT(errno, E2BIG);
	/* Nothing went out. */
	errno = 0;
	CHECK_INT(wire_wait(sv[1], POLLIN, 0), -1);
	CHECK_INT(errno, ETIMEDOUT);
	wire_close_fds(fds, WIRE_MAX_FDS + 1);
	close(sv[0]);
	close(sv[1]);
}

static void
test_sizes(void)
{
	static char	big[WIRE_MAX_MSG + 1], in[WIRE_MAX_MSG + 1];
	int		sv[2], fd;
	size_t		nfds = 99;

	if (seqpair(sv) == -1) {
		CHECK(!"socketpair");
		return;
	}
	memset(big, 'a', sizeof(big));
	big[0] = '{';
	big[WIRE_MAX_MSG - 1] = '}';
	CHECK_INT(wire_send(sv[0], big, WIRE_MAX_MSG, NULL, 0), 0);
	CHECK_INT(wire_recv(sv[1], in, sizeof(in), &fd, 1, &nfds),
	    WIRE_MAX_MSG);
	CHECK_INT(nfds, 0);
	CHECK(memcmp(in, big, WIRE_MAX_MSG) == 0);

	errno = 0;
	CHECK_INT(wire_send(sv[0], big, WIRE_MAX_MSG + 1, NULL, 0), -1);
	CHECK_INT(errno, EMSGSIZE);
	errno = 0;
	CHECK_INT(wire_send(sv[0], big, 0, NULL, 0), -1);
	CHECK_INT(errno, EMSGSIZE);
	errno = 0;
	CHECK_INT(wire_wait(sv[1], POLLIN, 0), -1);
	CHECK_INT(errno, ETIMEDOUT);
	close(sv[0]);
	close(sv[1]);
}

/* A message longer than the buffer: EMSGSIZE, and its fds are closed. */
static void
test_short_buffer(void)
{
	int	sv[2], sent[3];
	char	msg[100];

	if (seqpair(sv) == -1 || open_objects(sent, 3) == -1) {
		CHECK(!"socketpair or sockets");
		return;
	}
	memset(msg, 'm', sizeof(msg));
	CHECK_INT(wire_send(sv[0], msg, sizeof(msg), sent, 3), 0);
	CHECK(recv_fails_clean(sv[1], 50, 3, EMSGSIZE));
	wire_close_fds(sent, 3);
	close(sv[0]);
	close(sv[1]);
}

/* More fds than the caller can take: ETOOMANYREFS, every one closed. */
static void
test_too_many_to_receive(void)
{
	int	sv[2], sent[5];

	if (seqpair(sv) == -1 || open_objects(sent, 5) == -1) {
		CHECK(!"socketpair or sockets");
		return;
	}
	CHECK_INT(wire_send(sv[0], "x", 1, sent, 5), 0);
	CHECK(recv_fails_clean(sv[1], 16, 2, ETOOMANYREFS));
	wire_close_fds(sent, 5);
	close(sv[0]);
	close(sv[1]);
}

/* Several SCM_RIGHTS cmsgs on one sendmsg, as a foreign peer may send. */
static void
test_several_cmsgs(void)
{
	static const size_t groups[] = { 2, 3, 1 };
	int	sv[2], sent[6], got[WIRE_MAX_FDS];
	char	buf[16];
	size_t	ngot = 99;

	if (seqpair(sv) == -1 || open_objects(sent, 6) == -1) {
		CHECK(!"socketpair or sockets");
		return;
	}
	CHECK_INT(raw_send(sv[0], "abc", 3, sent, groups, 3), 3);
	CHECK_INT(wire_recv(sv[1], buf, sizeof(buf), got, WIRE_MAX_FDS,
	    &ngot), 3);
	CHECK_INT(ngot, 6);
	if (ngot == 6)
		check_received(sent, got, 6);
	wire_close_fds(got, ngot);

	/* The same, but the receiver takes only 4 of the 6. */
	CHECK_INT(raw_send(sv[0], "abc", 3, sent, groups, 3), 3);
	CHECK(recv_fails_clean(sv[1], 16, 4, ETOOMANYREFS));
	wire_close_fds(sent, 6);
	close(sv[0]);
	close(sv[1]);
}

/* 253 fds (the kernel's limit) truncate the control data: all closed. */
static void
test_control_truncated(void)
{
	size_t	group = WIRE_MAX_FDS + 1;
	int	sv[2], sent[WIRE_MAX_FDS + 1];

	if (seqpair(sv) == -1 || open_objects(sent, group) == -1) {
		CHECK(!"socketpair or sockets");
		return;
	}
	CHECK_INT(raw_send(sv[0], "abc", 3, sent, &group, 1), 3);
	CHECK(recv_fails_clean(sv[1], 16, WIRE_MAX_FDS, ETOOMANYREFS));
	wire_close_fds(sent, group);
	close(sv[0]);
	close(sv[1]);
}

/* An empty datagram with fds is not a message; nor is it "closed". */
static void
test_empty_with_fds(void)
{
	size_t	group = 2;
	int	sv[2], sent[2];

	if (seqpair(sv) == -1 || open_objects(sent, 2) == -1) {
		CHECK(!"socketpair or sockets");
		return;
	}
	CHECK_INT(raw_send(sv[0], "", 0, sent, &group, 1), 0);
	CHECK(recv_fails_clean(sv[1], 16, 2, EBADMSG));
	wire_close_fds(sent, 2);
	close(sv[0]);
	close(sv[1]);
}

static void
test_peer_closed_and_wait(void)
{
	int	sv[2], fd;
	char	buf[16];
	size_t	nfds = 99;

	if (seqpair(sv) == -1) {
		CHECK(!"socketpair");
		return;
	}
	errno = 0;
	CHECK_INT(wire_wait(sv[1], POLLIN, 0), -1);
	CHECK_INT(errno, ETIMEDOUT);
	CHECK_INT(wire_wait(sv[0], POLLOUT, 0), 0);
	CHECK_INT(wire_send(sv[0], "x", 1, NULL, 0), 0);
	CHECK_INT(wire_wait(sv[1], POLLIN, 0), 0);
	CHECK_INT(wire_recv(sv[1], buf, sizeof(buf), &fd, 1, &nfds), 1);
	close(sv[0]);
	CHECK_INT(wire_wait(sv[1], POLLIN, 0), 0);
	CHECK_INT(wire_recv(sv[1], buf, sizeof(buf), &fd, 1, &nfds), 0);
	CHECK_INT(nfds, 0);
	close(sv[1]);
}

/*
 * n fds as ceil(n / 252) messages of the given sizes, one send and one
 * receive at a time; all arrive, none leak.
 */
static void
test_batches(size_t n, const size_t *sizes, size_t nsizes)
{
	static int	sent[MAX_TEST_FDS], got[MAX_TEST_FDS + WIRE_MAX_FDS];
	int		sv[2], before, sizes_ok = 1;
	char		buf[16];
	size_t		off = 0, k, ngot, batches = 0;

	before = unit_count_fds();
	if (seqpair(sv) == -1 || open_objects(sent, n) == -1) {
		CHECK(!"socketpair or sockets");
		return;
	}
	while (off < n) {
		k = n - off < WIRE_MAX_FDS ? n - off : WIRE_MAX_FDS;
		if (wire_send(sv[0], "b", 1, sent + off, k) == -1 ||
		    wire_recv(sv[1], buf, sizeof(buf), got + off, WIRE_MAX_FDS,
		    &ngot) != 1 || ngot == 0)
			break;
		if (batches >= nsizes || ngot != sizes[batches])
			sizes_ok = 0;
		off += ngot;
		batches++;
	}
	CHECK_INT(off, n);
	CHECK_INT(batches, nsizes);
	CHECK(sizes_ok);
	if (off == n)
		check_received(sent, got, n);
	CHECK_INT(unit_count_fds(), before + 2 + 2 * (int)n);
	wire_close_fds(got, off);
	wire_close_fds(sent, n);
	close(sv[0]);
	close(sv[1]);
	CHECK_INT(unit_count_fds(), before);
}

static void
test_close_fds(void)
{
	int	fds[3];

	fds[0] = dup(0);
	fds[1] = -1;
	fds[2] = dup(0);
	errno = EINTR;
	wire_close_fds(fds, 3);
	CHECK_INT(errno, EINTR);
	CHECK(fds[0] == -1 && fds[1] == -1 && fds[2] == -1);
}

int
main(void)
{
	static const size_t	b253[] = { 252, 1 }, b504[] = { 252, 252 },
				b1000[] = { 252, 252, 252, 244 };
	int			before;

	CHECK(unit_raise_nofile() >= 2 * MAX_TEST_FDS + 64);
	before = unit_count_fds();
	CHECK(before > 0);

	test_roundtrip(0);
	test_roundtrip(1);
	test_roundtrip(WIRE_MAX_FDS);
	test_too_many_to_send();
	test_sizes();
	test_short_buffer();
	test_too_many_to_receive();
	test_several_cmsgs();
	test_control_truncated();
	test_empty_with_fds();
	test_peer_closed_and_wait();
	test_batches(253, b253, 2);
	test_batches(504, b504, 2);
	test_batches(1000, b1000, 4);
	test_close_fds();

	CHECK_INT(unit_count_fds(), before);
	return unit_done("test_wire");
}
