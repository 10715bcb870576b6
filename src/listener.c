/*
 * listener: parse "tcp://HOST:PORT", "tcp://[V6]:PORT", "udp://..." and
 * "unix:PATH"; bind them; and read back what a socket really is.
 */
#include "config.h"

#include <sys/stat.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listener.h"

static int
fail(char *err, size_t len, const char *fmt, const char *arg)
{
	snprintf(err, len, fmt, arg);
	return -1;
}

/* Numeric addresses need no resolver: 10000 specs parse in a blink. */
static int
parse_numeric(const char *host, in_port_t port, struct listener_spec *ls)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ls->addr;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ls->addr;

	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = ls->family = AF_INET;
		sin->sin_port = htons(port);
		ls->addrlen = sizeof(*sin);
		return 0;
	}
	memset(&ls->addr, 0, sizeof(ls->addr));
	if (strchr(host, '%') == NULL &&
	    inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = ls->family = AF_INET6;
		sin6->sin6_port = htons(port);
		ls->addrlen = sizeof(*sin6);
		return 0;
	}
	memset(&ls->addr, 0, sizeof(ls->addr));
	return -1;
}

/* The distinct addresses getaddrinfo gave (it may repeat one). */
static int
count_addresses(const struct addrinfo *res)
{
	const struct addrinfo	*a, *b;
	int			 n = 0;

	for (a = res; a != NULL; a = a->ai_next) {
		for (b = res; b != a; b = b->ai_next)
			if (b->ai_addrlen == a->ai_addrlen &&
			    memcmp(b->ai_addr, a->ai_addr, a->ai_addrlen) == 0)
				break;
		n += b == a;
	}
	return n;
}

static int
parse_inet(const char *spec, const char *rest, struct listener_spec *ls,
    char *err, size_t len)
{
	struct addrinfo	 hints, *res = NULL;
	char		 host[256];	/* a DNS name: at most 253 */
	const char	*colon, *port;
	size_t		 hlen;
	int		 r;

	if (rest[0] == '[') {
		colon = strchr(rest, ']');
		if (colon == NULL || colon[1] != ':')
			return fail(err, len, "listen spec \"%s\": expected "
			    "[IPV6]:PORT", spec);
		hlen = (size_t)(colon - rest - 1);
		port = colon + 2;
		rest++;
	} else {
		colon = strrchr(rest, ':');
		if (colon == NULL)
			return fail(err, len, "listen spec \"%s\": expected "
			    "HOST:PORT", spec);
		hlen = (size_t)(colon - rest);
		port = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return fail(err, len, "listen spec \"%s\": missing or overlong "
		    "host", spec);
	if (*port == '\0' || strspn(port, "0123456789") != strlen(port) ||
	    strtol(port, NULL, 10) > 65535)
		return fail(err, len, "listen spec \"%s\": port must be a "
		    "number from 0 to 65535", spec);
	memcpy(host, rest, hlen);
	host[hlen] = '\0';
	ls->any_port = strtol(port, NULL, 10) == 0;
	if (parse_numeric(host, (in_port_t)strtol(port, NULL, 10), ls) == 0)
		return 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = ls->socktype;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	r = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints,
	    &res);
	if (r != 0 || res == NULL) {
		snprintf(err, len, "listen spec \"%s\": cannot resolve \"%s\": "
		    "%s", spec, host, gai_strerror(r));
		return -1;
	}
	/* One name, one socket: the first address. The caller says so
	 * when there are more (naddrs). */
	memcpy(&ls->addr, res->ai_addr, res->ai_addrlen);
	ls->addrlen = res->ai_addrlen;
	ls->family = res->ai_family;
	ls->naddrs = count_addresses(res);
	freeaddrinfo(res);
	return 0;
}

static int	spec_parse(const char *, struct listener_spec *, char *,
		    size_t);

/* Formats the address once: matching compares it with 10000 fds. */
int
listener_spec_parse(const char *spec, struct listener_spec *ls, char *err,
    size_t len)
{
	if (spec_parse(spec, ls, err, len) == -1)
		return -1;
	if (ls->kind == LISTENER_FD)
		return 0;	/* names no address */
	listener_format((const struct sockaddr *)&ls->addr, ls->addrlen,
	    ls->address, sizeof(ls->address));
	return 0;
}

static int
spec_parse(const char *spec, struct listener_spec *ls, char *err,
    size_t len)
{
	struct sockaddr_un	*sun;
	const char		*path;

	memset(ls, 0, sizeof(*ls));
	if (strcmp(spec, "fd:") == 0) {
		/* The predecessor's fd of that name, whatever it is. */
		ls->kind = LISTENER_FD;
		return 0;
	}
	if (strncmp(spec, "tcp://", 6) == 0) {
		ls->kind = LISTENER_TCP;
		ls->socktype = SOCK_STREAM;
		return parse_inet(spec, spec + 6, ls, err, len);
	}
	if (strncmp(spec, "udp://", 6) == 0) {
		ls->kind = LISTENER_UDP;
		ls->socktype = SOCK_DGRAM;
		return parse_inet(spec, spec + 6, ls, err, len);
	}
	if (strncmp(spec, "unix:", 5) == 0) {
		path = spec + 5;
		sun = (struct sockaddr_un *)&ls->addr;
		if (path[0] != '/')
			return fail(err, len, "listen spec \"%s\": unix path "
			    "must be absolute", spec);
		if (strlen(path) >= sizeof(sun->sun_path))
			return fail(err, len, "listen spec \"%s\": unix path "
			    "longer than 107 bytes", spec);
		ls->kind = LISTENER_UNIX;
		ls->family = AF_UNIX;
		ls->socktype = SOCK_STREAM;
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, path);
		ls->addrlen = sizeof(*sun);
		return 0;
	}
	return fail(err, len, "listen spec \"%s\": expected tcp://HOST:PORT, "
	    "tcp://[V6]:PORT, udp://HOST:PORT, unix:PATH or fd:", spec);
}

/*
 * A unix socket file nobody accepts on is stale and may be replaced; one
 * that answers is somebody's. Returns 1 stale (or absent), 0 in use,
 * -1 not a socket or not checkable.
 */
int
listener_unix_stale(const char *path, char *err, size_t len)
{
	struct sockaddr_un	sun;
	struct stat		st;
	int			fd, r, type, save;
	static const int	types[] = { SOCK_STREAM, SOCK_SEQPACKET,
				    SOCK_DGRAM };

	if (lstat(path, &st) == -1)
		return errno == ENOENT ? 1 : fail(err, len, "%s: cannot stat",
		    path);
	if (!S_ISSOCK(st.st_mode))
		return fail(err, len, "%s exists and is not a socket; remove "
		    "it or choose another path", path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	for (type = 0; type < 3; type++) {
		/* Non-blocking: a full backlog must not hang us; it means
		 * somebody listens. */
		fd = socket(AF_UNIX, types[type] | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0);
		if (fd == -1)
			return fail(err, len, "%s: socket failed", path);
		r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
		save = errno;
		close(fd);
		if (r == 0 || save == EAGAIN || save == EINPROGRESS)
			return 0;
		if (save != EPROTOTYPE && save != ECONNREFUSED)
			return fail(err, len, "%s: cannot check whether the "
			    "socket is in use", path);
		if (save == ECONNREFUSED)
			return 1;
	}
	return 1;
}

static int
bind_unix(const struct listener_spec *ls, int fd, const char *spec,
    char *err, size_t len)
{
	const char	*path = ((const struct sockaddr_un *)&ls->addr)->sun_path;
	char		 sub[256];
	int		 save;

	switch (listener_unix_stale(path, sub, sizeof(sub))) {
	case -1:
		return fail(err, len, "%s", sub);
	case 0:
		return fail(err, len, "%s is in use by another process", path);
	default:
		break;
	}
	if (unlink(path) == -1 && errno != ENOENT)
		return fail(err, len, "cannot remove stale socket %s", path);
	if (bind(fd, (const struct sockaddr *)&ls->addr, ls->addrlen) == -1) {
		save = errno;
		snprintf(err, len, "%s: bind: %s", spec, strerror(save));
		errno = save;
		return -1;
	}
	return 0;
}

/* Returns a bound, listening (for streams), CLOEXEC, non-blocking fd. */
int
listener_bind(const struct listener_spec *ls, const char *spec, char *err,
    size_t len)
{
	int	fd, one = 1, save;

	fd = socket(ls->family, ls->socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	if (fd == -1) {
		snprintf(err, len, "%s: socket: %s", spec, strerror(errno));
		return -1;
	}
	if (ls->family == AF_UNIX) {
		if (bind_unix(ls, fd, spec, err, len) == -1)
			goto bad;
	} else {
		/* TCP only: for UDP SO_REUSEADDR lets another process bind
		 * the same address, and take its datagrams. */
		if (ls->socktype == SOCK_STREAM && setsockopt(fd, SOL_SOCKET,
		    SO_REUSEADDR, &one, sizeof(one)) == -1)
			goto syserr;
		if (ls->family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
		    IPV6_V6ONLY, &one, sizeof(one)) == -1)
			goto syserr;
		if (bind(fd, (const struct sockaddr *)&ls->addr,
		    ls->addrlen) == -1) {
			save = errno;
			snprintf(err, len, "cannot bind %s: %s%s", spec,
			    strerror(save), save == EADDRINUSE ?
			    " (another process holds it)" : "");
			goto bad;
		}
	}
	if (ls->socktype != SOCK_DGRAM && listen(fd, LISTENER_BACKLOG) == -1)
		goto syserr;
	return fd;
syserr:
	snprintf(err, len, "%s: %s", spec, strerror(errno));
bad:
	save = errno;
	close(fd);
	errno = save;
	return -1;
}

static char *
put_uint(char *p, unsigned v)
{
	char	tmp[10];
	int	n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

/* "A.B.C.D:PORT" without printf: identify runs for every passed fd. */
static void
format_inet(uint32_t a, unsigned port, char *buf, size_t len)
{
	char	tmp[sizeof("255.255.255.255:65535")], *p = tmp;

	p = put_uint(p, a >> 24);
	*p++ = '.';
	p = put_uint(p, (a >> 16) & 0xff);
	*p++ = '.';
	p = put_uint(p, (a >> 8) & 0xff);
	*p++ = '.';
	p = put_uint(p, a & 0xff);
	*p++ = ':';
	p = put_uint(p, port);
	if (len == 0)
		return;
	if ((size_t)(p - tmp) >= len)
		p = tmp + len - 1;
	memcpy(buf, tmp, (size_t)(p - tmp));
	buf[p - tmp] = '\0';
}

void
listener_format(const struct sockaddr *sa, socklen_t salen, char *buf,
    size_t len)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	const struct sockaddr_un	*sun;
	char				 ip[INET6_ADDRSTRLEN], zone[IF_NAMESIZE];
	size_t				 plen;

	switch (sa->sa_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)sa;
		format_inet(ntohl(sin->sin_addr.s_addr), ntohs(sin->sin_port),
		    buf, len);
		break;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		/* fe80::1 on two interfaces is two addresses: the zone, as
		 * RFC 4007 writes it, tells them apart. */
		if (sin6->sin6_scope_id == 0)
			snprintf(buf, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
		else if (if_indextoname(sin6->sin6_scope_id, zone) != NULL)
			snprintf(buf, len, "[%s%%%s]:%u", ip, zone,
			    ntohs(sin6->sin6_port));
		else
			snprintf(buf, len, "[%s%%%u]:%u", ip,
			    (unsigned)sin6->sin6_scope_id,
			    ntohs(sin6->sin6_port));
		break;
	case AF_UNIX:
		sun = (const struct sockaddr_un *)sa;
		plen = salen > offsetof(struct sockaddr_un, sun_path) ?
		    salen - offsetof(struct sockaddr_un, sun_path) : 0;
		if (plen == 0)
			snprintf(buf, len, "(unnamed)");
		else if (sun->sun_path[0] == '\0')
			snprintf(buf, len, "@%.*s", (int)plen - 1,
			    sun->sun_path + 1);
		else
			snprintf(buf, len, "%.*s", (int)strnlen(sun->sun_path,
			    plen), sun->sun_path);
		break;
	default:
		snprintf(buf, len, "(family %d)", sa->sa_family);
		break;
	}
}

/*
 * An address as listener_format wrote it ("1.2.3.4:53", "[::1]:53",
 * "[fe80::1%eth0]:53", "/path", "@abstract"), for sendto: numeric only,
 * never resolved. 0, or -1 if s is not one.
 */
int
listener_addr_parse(const char *s, struct sockaddr_storage *ss,
    socklen_t *sslen)
{
	struct addrinfo		 hints, *res = NULL;
	struct sockaddr_un	*sun = (struct sockaddr_un *)ss;
	struct in_addr		 in4;
	struct in6_addr		 in6;
	char			 host[LISTENER_ADDR_MAX], v6[LISTENER_ADDR_MAX];
	const char		*end, *port;
	char			*zone;
	size_t			 n;
	int			 v6_form = s[0] == '[';

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '/' || s[0] == '@') {
		if ((n = strlen(s)) >= sizeof(sun->sun_path))
			return -1;
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, s, n);
		if (s[0] == '@')
			sun->sun_path[0] = '\0';
		*sslen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
		    n + (s[0] == '/'));
		return 0;
	}
	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL || end[1] != ':')
			return -1;
		port = end + 2;
		s++;
	} else {
		if ((end = strrchr(s, ':')) == NULL)
			return -1;
		port = end + 1;
	}
	/* A peer has a port (getaddrinfo would take 65536 for 0). */
	if ((n = (size_t)(end - s)) == 0 || n >= sizeof(host) ||
	    *port == '\0' || strspn(port, "0123456789") != strlen(port) ||
	    strlen(port) > 5 || strtol(port, NULL, 10) > 65535 ||
	    strtol(port, NULL, 10) == 0)
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	/* As listener_format writes them: no "127.1", IPv6 in brackets. */
	memcpy(v6, host, n + 1);
	if ((zone = strchr(v6, '%')) != NULL)
		*zone = '\0';
	if (v6_form ? inet_pton(AF_INET6, v6, &in6) != 1 :
	    inet_pton(AF_INET, host, &in4) != 1)
		return -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL ||
	    res->ai_addrlen > sizeof(*ss)) {
		if (res != NULL)
			freeaddrinfo(res);
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/*
 * Not a socket (a memfd, a pipe, an eventfd, a file): family and type
 * "other", and for address what the kernel calls it in /proc/self/fd,
 * the same in every process that holds it ("pipe:[1234]",
 * "/memfd:state (deleted)", "anon_inode:[eventfd]"), cut to fit.
 */
static int
identify_other(int fd, struct listener_id *id)
{
	char	path[64];
	ssize_t	n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if ((n = readlink(path, id->address, sizeof(id->address) - 1)) == -1)
		return -1;
	id->address[n] = '\0';
	for (n--; n >= 0; n--)		/* a message carries UTF-8 only */
		if ((unsigned char)id->address[n] >= 0x80)
			id->address[n] = '?';
	id->family = AF_UNSPEC;
	return 0;
}

/*
 * Returns 0, or -1 with errno (ENOTSOCK for a non-socket fd). It runs for
 * every fd a successor receives, so it asks little: getsockname gives the
 * family (as SO_DOMAIN would), and for inet sockets TCP_INFO, which only
 * a TCP socket answers, says both "stream" and whether it listens.
 */
int
listener_identify(int fd, struct listener_id *id)
{
	struct sockaddr_storage	ss;
	struct tcp_info		ti;
	socklen_t		sslen = sizeof(ss), olen;

	memset(id, 0, sizeof(*id));
	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1)
		return errno == ENOTSOCK ? identify_other(fd, id) : -1;
	id->family = ss.ss_family;
	listener_format((struct sockaddr *)&ss, sslen, id->address,
	    sizeof(id->address));
	olen = sizeof(ti);
	if ((id->family == AF_INET || id->family == AF_INET6) &&
	    getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &olen) == 0) {
		id->socktype = SOCK_STREAM;
		id->listening = ti.tcpi_state == TCP_LISTEN;
		return 0;
	}
	olen = sizeof(id->socktype);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &id->socktype, &olen) == -1)
		return -1;
	olen = sizeof(id->listening);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &id->listening,
	    &olen) == -1)
		return -1;
	id->listening = id->listening != 0;
	return 0;
}

int
listener_matches(const struct listener_spec *ls, const struct listener_id *id)
{
	const char	*p, *q;

	if (ls->kind == LISTENER_FD)
		return 1;	/* taken by name alone, whatever it is */
	if (ls->family != id->family || ls->socktype != id->socktype)
		return 0;
	if (!ls->any_port)
		return strcmp(ls->address, id->address) == 0;
	/* Port 0 asks for any port: compare the host part only. */
	p = strrchr(ls->address, ':');
	q = strrchr(id->address, ':');
	return p != NULL && q != NULL && p - ls->address ==
	    q - id->address && strncmp(ls->address, id->address,
	    (size_t)(p - ls->address)) == 0;
}

static unsigned
spec_port(const struct listener_spec *ls)
{
	if (ls->family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&ls->addr)->sin_port);
	if (ls->family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&ls->addr)->
		    sin6_port);
	return 0;
}

static int
spec_wildcard(const struct listener_spec *ls)
{
	if (ls->family == AF_INET)
		return ((const struct sockaddr_in *)&ls->addr)->sin_addr.s_addr ==
		    htonl(INADDR_ANY);
	return ls->family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(
	    &((const struct sockaddr_in6 *)&ls->addr)->sin6_addr);
}

/*
 * Orders specs so that any two that may clash (listener_spec_clash) are
 * in one run of equal ones: family, type, then port (inet) or path.
 */
int
listener_spec_cmp(const struct listener_spec *a, const struct listener_spec *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	if (a->socktype != b->socktype)
		return a->socktype < b->socktype ? -1 : 1;
	if (a->family != AF_INET && a->family != AF_INET6)
		return strcmp(a->address, b->address);
	if (spec_port(a) != spec_port(b))
		return spec_port(a) < spec_port(b) ? -1 : 1;
	return 0;
}

/*
 * Can one process not hold both? The same socket asked for twice, or,
 * for TCP, one port on a wildcard address and on another address of the
 * family (the wildcard takes it on every address). Port 0 asks for a
 * port of its own each time, so it never clashes.
 */
int
listener_spec_clash(const struct listener_spec *a,
    const struct listener_spec *b)
{
	if (listener_spec_cmp(a, b) != 0 || a->any_port || b->any_port ||
	    a->kind == LISTENER_FD)
		return 0;
	if (strcmp(a->address, b->address) == 0)
		return 1;
	return a->socktype == SOCK_STREAM && a->family != AF_UNIX &&
	    (spec_wildcard(a) || spec_wildcard(b));
}

enum listener_kind
listener_kind_of(const struct listener_id *id)
{
	if (id->family == AF_UNIX)
		return LISTENER_UNIX;
	if (id->family == AF_INET || id->family == AF_INET6)
		return id->socktype == SOCK_DGRAM ? LISTENER_UDP : LISTENER_TCP;
	return LISTENER_FD;
}

const char *
listener_kind_name(enum listener_kind k)
{
	switch (k) {
	case LISTENER_TCP:	return "tcp";
	case LISTENER_UDP:	return "udp";
	case LISTENER_UNIX:	return "unix";
	default:		return "fd";
	}
}

const char *
listener_family_name(int family)
{
	switch (family) {
	case AF_INET:	return "inet";
	case AF_INET6:	return "inet6";
	case AF_UNIX:	return "unix";
	default:	return "other";
	}
}

const char *
listener_socktype_name(int type)
{
	switch (type) {
	case SOCK_STREAM:	return "stream";
	case SOCK_DGRAM:	return "dgram";
	case SOCK_SEQPACKET:	return "seqpacket";
	default:		return "other";
	}
}
