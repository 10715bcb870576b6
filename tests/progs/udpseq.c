/*
 * udpseq: sends numbered datagrams to one UDP address at a steady rate
 * and counts their answers: each number answered once, twice, or never.
 * The tests and tools/bench/udp-loss use it against handoff-httpd's and
 * tests/progs/udpecho's echo ("pid=P [tag=T gen=G ]" and the bytes sent)
 * and, with -d, against a DNS server (a query for q<N>.ZONE).
 *
 * With a window (-w) at most that many datagrams are unanswered at once,
 * so no socket buffer on the way can overflow: whatever is not answered
 * was lost by the server, not by the kernel. Without one the rate is
 * kept whatever comes back (a benchmark's open loop).
 *
 * SIGUSR1 writes a mark to the log (-l) once every answer already queued
 * has been read: "mark K" for the K-th signal. A test sends it when it
 * has seen a generation's "released"; no answer of that generation may
 * follow the mark.
 *
 * usage: udpseq [-d ZONE] [-l LOG] [-n MAX] [-r RATE] [-s STOPFILE]
 *               [-a AFTER] [-t MS] [-w WINDOW] HOST PORT
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_MAX	2048
#define NSOURCES	256		/* distinct pid/gen pairs counted */
#define RCVBUF		(8 << 20)
#define LATE_NS		20000000LL	/* behind by more: the schedule moves */
#define BURST		64		/* sends at most between two reads */

struct source {
	long		pid;
	long		gen;
	uint64_t	n;
};

struct seq {
	int		 fd;
	const char	*zone;		/* -d: DNS queries */
	FILE		*log;		/* -l: "SEQ PID GEN" per answer */
	uint64_t	 max, after, sent, answered, dup, wrong, marks;
	uint64_t	 window, rate;
	uint8_t		*seen;		/* answers per number, capped at 255 */
	struct source	 src[NSOURCES];
	size_t		 nsrc;
	uint32_t	 drops;		/* SO_RXQ_OVFL: ours, not the server's */
	int64_t		 late_ns;
};

static volatile sig_atomic_t	marks_asked;

static void
on_usr1(int sig)
{
	marks_asked++;
}

static int64_t
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A DNS query, id = low bits of n, for q<n>.zone, type A, class IN. */
static size_t
dns_query(const char *zone, uint64_t n, unsigned char *buf, size_t len)
{
	char		 name[300], *label, *save = NULL;
	size_t		 off = 12, l;

	if (len < 12 + sizeof(name) + 4)
		return 0;
	memset(buf, 0, 12);
	buf[0] = (unsigned char)(n >> 8);
	buf[1] = (unsigned char)n;
	buf[2] = 0x01;			/* RD */
	buf[5] = 1;			/* QDCOUNT */
	snprintf(name, sizeof(name), "q%" PRIu64 ".%s", n, zone);
	for (label = strtok_r(name, ".", &save); label != NULL;
	    label = strtok_r(NULL, ".", &save)) {
		if ((l = strlen(label)) > 63)
			return 0;
		buf[off++] = (unsigned char)l;
		memcpy(buf + off, label, l);
		off += l;
	}
	buf[off++] = 0;
	memcpy(buf + off, "\0\1\0\1", 4);
	return off + 4;
}

static size_t
payload(const struct seq *s, uint64_t n, unsigned char *buf, size_t len)
{
	int	l;

	if (s->zone != NULL)
		return dns_query(s->zone, n, buf, len);
	l = snprintf((char *)buf, len, "seq=%" PRIu64 ".", n);
	return l > 0 && (size_t)l < len ? (size_t)l : 0;
}

/* The number a DNS message asks about (its first label, "q<n>"); -1. */
static int64_t
dns_number(const unsigned char *m, size_t len)
{
	char		 digits[24];
	size_t		 l;
	char		*end;
	unsigned long long v;

	if (len < 13 || m[5] != 1 || (l = m[12]) < 2 || l > 21 ||
	    13 + l > len || m[13] != 'q')
		return -1;
	memcpy(digits, m + 14, l - 1);
	digits[l - 1] = '\0';
	errno = 0;
	v = strtoull(digits, &end, 10);
	if (errno != 0 || *end != '\0' || end == digits)
		return -1;
	return (int64_t)v;
}

/*
 * An echo's head: "pid=P " and, from handoff-httpd, "tag=T gen=G ".
 * Sets *pid, *gen (0 without) and returns the offset of the echoed
 * bytes, or 0 if this is no echo.
 */
static size_t
echo_head(const char *a, size_t len, long *pid, long *gen)
{
	const char	*p = a, *end = a + len, *sp;

	*pid = *gen = 0;
	if (len < 6 || strncmp(a, "pid=", 4) != 0)
		return 0;
	while (p < end && (sp = memchr(p, ' ', (size_t)(end - p))) != NULL) {
		if (strncmp(p, "pid=", 4) == 0)
			*pid = strtol(p + 4, NULL, 10);
		else if (strncmp(p, "gen=", 4) == 0)
			*gen = strtol(p + 4, NULL, 10);
		else if (strncmp(p, "tag=", 4) != 0)
			break;
		p = sp + 1;
	}
	return *pid > 0 ? (size_t)(p - a) : 0;
}

static void
count_source(struct seq *s, long pid, long gen)
{
	size_t	i;

	for (i = 0; i < s->nsrc; i++)
		if (s->src[i].pid == pid && s->src[i].gen == gen) {
			s->src[i].n++;
			return;
		}
	if (s->nsrc < NSOURCES) {
		s->src[s->nsrc].pid = pid;
		s->src[s->nsrc].gen = gen;
		s->src[s->nsrc++].n = 1;
	}
}

/* One answer: which number, from whom; wrong if it is not what we sent. */
static void
take_answer(struct seq *s, const unsigned char *a, size_t len)
{
	unsigned char	 want[400];
	size_t		 off, wl;
	long		 pid, gen;
	int64_t		 n = -1;

	off = echo_head((const char *)a, len, &pid, &gen);
	if (s->zone != NULL)
		n = dns_number(a + off, len - off);
	else if (off > 0 && sscanf((const char *)a + off, "seq=%" SCNd64,
	    &n) != 1)
		n = -1;
	if (n < 0 || (uint64_t)n >= s->sent) {
		s->wrong++;
		return;
	}
	/* An echo must give back exactly what was sent. */
	wl = payload(s, (uint64_t)n, want, sizeof(want));
	if (off > 0 && (len - off != wl || memcmp(a + off, want, wl) != 0)) {
		s->wrong++;
		return;
	}
	if (s->seen[n] == 0)
		s->answered++;
	else
		s->dup++;
	if (s->seen[n] < 255)
		s->seen[n]++;
	count_source(s, pid, gen);
	if (s->log != NULL)
		fprintf(s->log, "%" PRId64 " %ld %ld\n", n, pid, gen);
}

static void
drop_count(struct seq *s, struct msghdr *msg)
{
	struct cmsghdr	*c;

	for (c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c))
		if (c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SO_RXQ_OVFL &&
		    c->cmsg_len >= CMSG_LEN(sizeof(uint32_t)))
			memcpy(&s->drops, CMSG_DATA(c), sizeof(uint32_t));
}

/* Reads every answer queued now; the number read. */
static uint64_t
read_answers(struct seq *s)
{
	unsigned char	 a[ANSWER_MAX];
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(uint32_t))];
	} cbuf;
	struct msghdr	 msg;
	struct iovec	 iov;
	ssize_t		 n;
	uint64_t	 got = 0;

	for (;;) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = a;
		iov.iov_len = sizeof(a) - 1;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		if ((n = recvmsg(s->fd, &msg, MSG_DONTWAIT)) == -1)
			return got;
		drop_count(s, &msg);
		a[n] = '\0';
		take_answer(s, a, (size_t)n);
		got++;
	}
}

/* Marks asked for since the last look, each after the queue is read. */
static void
write_marks(struct seq *s)
{
	while (s->marks < (uint64_t)marks_asked) {
		read_answers(s);
		s->marks++;
		if (s->log != NULL) {
			fprintf(s->log, "mark %" PRIu64 "\n", s->marks);
			fflush(s->log);
		}
	}
}

static int
open_socket(struct seq *s, const char *host, const char *port)
{
	struct sockaddr_in	sin;
	int			big = RCVBUF, on = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(port));
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		fprintf(stderr, "udpseq: %s: not an IPv4 address\n", host);
		return -1;
	}
	if ((s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		perror("udpseq: socket");
		return -1;
	}
	/* Room for every answer we could be behind on; FORCE needs root. */
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &big,
	    sizeof(big)) == -1)
		setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(s->fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof(on));
	if (connect(s->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		fprintf(stderr, "udpseq: connect %s:%s: %s\n", host, port,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static int
stop_asked(const char *path, int64_t now, int64_t *next_look)
{
	struct stat	st;

	if (path == NULL || now < *next_look)
		return 0;
	*next_look = now + 10000000LL;
	return stat(path, &st) == 0;
}

/* Waits up to ns for an answer (or a signal); then reads them all. */
static void
wait_answers(struct seq *s, int64_t ns)
{
	struct pollfd	pfd = { s->fd, POLLIN, 0 };
	struct timespec	ts;
	sigset_t	none;

	if (ns < 0)
		ns = 0;
	ts.tv_sec = ns / 1000000000LL;
	ts.tv_nsec = ns % 1000000000LL;
	sigemptyset(&none);
	ppoll(&pfd, 1, &ts, &none);
	read_answers(s);
	write_marks(s);
}

/*
 * Sends at the rate until max, or until the stop file exists and after
 * more went; with a window, gives up once none of a full window is
 * answered for stall_ns. Returns 0, or -1 on a stall.
 */
static int
send_all(struct seq *s, const char *stop, int64_t stall_ns)
{
	unsigned char	 buf[400];
	int64_t		 start = now_ns(), now, due, gap, look = 0;
	int64_t		 last_answer = start;
	uint64_t	 limit = s->max, before, burst;
	size_t		 len;

	gap = s->rate > 0 ? 1000000000LL / (int64_t)s->rate : 0;
	while (s->sent < limit) {
		now = now_ns();
		if (limit == s->max && stop_asked(stop, now, &look))
			limit = s->sent + s->after < s->max ?
			    s->sent + s->after : s->max;
		due = start + s->late_ns + (int64_t)s->sent * gap;
		if (now - due > LATE_NS) {
			/* Descheduled: no burst to catch up, the rate holds. */
			s->late_ns += now - due;
			due = now;
		}
		burst = 0;
		while (s->sent < limit && due <= now && burst++ < BURST &&
		    (s->window == 0 || s->sent - s->answered < s->window)) {
			len = payload(s, s->sent, buf, sizeof(buf));
			if (send(s->fd, buf, len, 0) == -1 && errno != EINTR &&
			    errno != ECONNREFUSED && errno != ENOBUFS &&
			    errno != EAGAIN) {
				perror("udpseq: send");
				return -1;
			}
			s->sent++;
			due += gap;
		}
		before = s->answered;
		if (s->window > 0 && s->sent - s->answered >= s->window)
			wait_answers(s, stall_ns);
		else
			wait_answers(s, due - now_ns());
		now = now_ns();
		if (s->answered > before || s->window == 0 ||
		    s->sent - s->answered < s->window)
			last_answer = now;
		else if (now - last_answer >= stall_ns) {
			fprintf(stderr, "udpseq: no answer for %" PRId64 " ms "
			    "with %" PRIu64 " unanswered: giving up\n",
			    stall_ns / 1000000, s->sent - s->answered);
			return -1;
		}
	}
	return 0;
}

/* After the last send: answers until all came or none came for ns. */
static void
drain_answers(struct seq *s, int64_t ns)
{
	int64_t		last = now_ns();
	uint64_t	before;

	while (s->answered < s->sent && now_ns() - last < ns) {
		before = s->answered + s->dup + s->wrong;
		wait_answers(s, 10000000LL);
		if (s->answered + s->dup + s->wrong > before)
			last = now_ns();
	}
}

static void
report(struct seq *s, int64_t took_ns, int64_t send_ns)
{
	size_t	i;

	for (i = 0; i < s->nsrc; i++)
		printf("pid %ld gen %ld: %" PRIu64 "\n", s->src[i].pid,
		    s->src[i].gen, s->src[i].n);
	printf("sent %" PRIu64 " answered %" PRIu64 " lost %" PRIu64
	    " duplicate %" PRIu64 " wrong %" PRIu64 " client-drops %" PRIu32
	    " ms %" PRId64 " send-ms %" PRId64 " late-ms %" PRId64 "\n",
	    s->sent, s->answered, s->sent - s->answered, s->dup, s->wrong,
	    s->drops, took_ns / 1000000, send_ns / 1000000,
	    s->late_ns / 1000000);
}

static void
usage(void)
{
	fprintf(stderr, "usage: udpseq [-d ZONE] [-l LOG] [-n MAX] [-r RATE] "
	    "[-s STOPFILE] [-a AFTER]\n"
	    "              [-t MS] [-w WINDOW] HOST PORT\n");
}

int
main(int argc, char *argv[])
{
	struct seq		 s;
	struct sigaction	 sa;
	sigset_t		 usr1;
	const char		*stop = NULL, *logpath = NULL;
	int64_t			 start, sent_at, stall_ms = 5000;
	int			 c, code = 0;

	memset(&s, 0, sizeof(s));
	s.fd = -1;
	s.max = 100000;
	s.rate = 1000;
	while ((c = getopt(argc, argv, "a:d:l:n:r:s:t:w:")) != -1) {
		switch (c) {
		case 'a': s.after = strtoull(optarg, NULL, 10); break;
		case 'd': s.zone = optarg; break;
		case 'l': logpath = optarg; break;
		case 'n': s.max = strtoull(optarg, NULL, 10); break;
		case 'r': s.rate = strtoull(optarg, NULL, 10); break;
		case 's': stop = optarg; break;
		case 't': stall_ms = strtoll(optarg, NULL, 10); break;
		case 'w': s.window = strtoull(optarg, NULL, 10); break;
		default: usage(); return 2;
		}
	}
	if (argc - optind != 2 || s.max == 0 || s.max > 100000000 ||
	    stall_ms <= 0) {
		usage();
		return 2;
	}
	if ((s.seen = calloc(s.max, 1)) == NULL ||
	    (logpath != NULL && (s.log = fopen(logpath, "w")) == NULL)) {
		perror("udpseq");
		return 1;
	}
	if (s.log != NULL)
		setvbuf(s.log, NULL, _IOLBF, 0);	/* tests poll it */
	/* SIGUSR1 only inside ppoll: a mark is written between reads. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	if (open_socket(&s, argv[optind], argv[optind + 1]) == -1)
		code = 1;
	else {
		start = now_ns();
		if (send_all(&s, stop, stall_ms * 1000000LL) == -1)
			code = 1;
		sent_at = now_ns();
		drain_answers(&s, stall_ms * 1000000LL);
		report(&s, now_ns() - start, sent_at - start);
	}
	if (s.log != NULL)
		fclose(s.log);
	if (s.fd >= 0)
		close(s.fd);
	free(s.seen);
	return code;
}
