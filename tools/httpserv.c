/*
 * httpserv: HTTP/1.1 on bufferevents, parsed by http_parser (see
 * httpserv.h). A connection's input buffer keeps every byte of the
 * request being parsed until that request is complete: what the parser
 * has seen of a partial request is still there to hand over with the
 * fd, and the next owner parses it again from its start.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <http_parser.h>

#include "httpserv.h"

/* Input read ahead of the parser at most: a client that pipelines
 * without reading its answers is not read further. Above one head and
 * one body, so that a request always fits. */
#define HS_INPUT_MAX	65536
#define HS_ALLOW	"GET, HEAD"

struct hs_request {
	TAILQ_ENTRY(hs_request)	 entry;
	struct hs_server	*srv;
	struct hs_conn		*conn;		/* NULL once it is gone */
	int			 head;		/* HEAD: no body sent */
	int			 close;		/* the client will not reuse */
	unsigned short		 minor;		/* HTTP/1.minor */
	char			*query;		/* in buf, or NULL */
	char			 buf[];		/* path, then query */
};

struct hs_conn {
	TAILQ_ENTRY(hs_conn)	 entry;
	struct hs_server	*srv;
	struct bufferevent	*bev;
	int			 fd;		/* ours; -1 once detached */
	http_parser		 parser;
	size_t			 fed;		/* input bytes parsed, all of
						 * the request not yet whole */
	size_t			 head_len, body_len;
	char			*url;
	size_t			 url_len, url_cap;
	int			 error;		/* status to answer, or 0 */
	int			 headers_done;
	int			 complete;	/* a request parsed whole */
	struct hs_request	*req;		/* in flight */
	int			 writing;	/* a response not yet written */
	int			 closing;	/* close once written */
	int			 eof;		/* the client sends no more */
	int			 busy;		/* calling back: free later */
	int			 gone;		/* closed or detached */
	const char		*tag;		/* the caller's, borrowed */
	struct event		*park;		/* adopted idle: no bufferevent
						 * until the client sends */
};

struct hs_listener {
	TAILQ_ENTRY(hs_listener) entry;
	struct hs_server	*srv;
	const char		*tag;		/* given to its connections */
	struct evconnlistener	*lev;
};

struct hs_server {
	struct event_base	*base;
	hs_request_cb		*request_cb;
	void			*request_arg;
	hs_conn_cb		*conn_cb;
	void			*conn_arg;
	hs_accept_error_cb	*accept_error_cb;
	void			*accept_error_arg;
	struct timeval		 read_timeout, write_timeout;
	int			 close_all;
	unsigned		 nconns;
	TAILQ_HEAD(, hs_conn)	 conns;
	TAILQ_HEAD(, hs_request) requests;	/* not yet answered */
	TAILQ_HEAD(, hs_listener) listeners;
	time_t			 date_at;
	char			 date[64];	/* Date: of date_at */
};

static int	parse_begin(http_parser *);
static int	parse_url(http_parser *, const char *, size_t);
static int	parse_header(http_parser *, const char *, size_t);
static int	parse_headers_done(http_parser *);
static int	parse_body(http_parser *, const char *, size_t);
static int	parse_complete(http_parser *);

static const http_parser_settings parse_settings = {
	.on_message_begin = parse_begin,
	.on_url = parse_url,
	.on_header_field = parse_header,
	.on_header_value = parse_header,
	.on_headers_complete = parse_headers_done,
	.on_body = parse_body,
	.on_message_complete = parse_complete,
};

static void	conn_read(struct bufferevent *, void *);
static void	conn_written(struct bufferevent *, void *);
static void	conn_event(struct bufferevent *, short, void *);

struct hs_server *
hs_new(struct event_base *base, hs_request_cb *cb, void *arg)
{
	struct hs_server	*srv;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return NULL;
	srv->base = base;
	srv->request_cb = cb;
	srv->request_arg = arg;
	TAILQ_INIT(&srv->conns);
	TAILQ_INIT(&srv->requests);
	TAILQ_INIT(&srv->listeners);
	return srv;
}

void
hs_set_conn_cb(struct hs_server *srv, hs_conn_cb *cb, void *arg)
{
	srv->conn_cb = cb;
	srv->conn_arg = arg;
}

void
hs_set_accept_error_cb(struct hs_server *srv, hs_accept_error_cb *cb,
    void *arg)
{
	srv->accept_error_cb = cb;
	srv->accept_error_arg = arg;
}

static void
ms_to_tv(unsigned ms, struct timeval *tv)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

void
hs_set_timeouts(struct hs_server *srv, unsigned read_ms, unsigned write_ms)
{
	ms_to_tv(read_ms, &srv->read_timeout);
	ms_to_tv(write_ms, &srv->write_timeout);
}

void
hs_set_close_all(struct hs_server *srv, int on)
{
	srv->close_all = on != 0;
}

unsigned
hs_conn_count(const struct hs_server *srv)
{
	return srv->nconns;
}

/* ---------------------------------------------------------- connections */

/*
 * Lets go of everything the connection holds but the struct, which a
 * caller up the stack may still look at (busy): conn_put frees it.
 */
static void
conn_release(struct hs_conn *c)
{
	struct hs_server	*srv = c->srv;

	c->gone = 1;
	TAILQ_REMOVE(&srv->conns, c, entry);
	srv->nconns--;
	if (c->req != NULL) {
		c->req->conn = NULL;	/* answered later into the void */
		c->req = NULL;
	}
	if (c->park != NULL)
		event_free(c->park);
	c->park = NULL;
	/* Disabled first: its events leave the loop now, before the fd
	 * may be closed or go to another owner. */
	if (c->bev != NULL) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		bufferevent_free(c->bev);
	}
	c->bev = NULL;
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	free(c->url);
	c->url = NULL;
}

/* Frees a released connection unless a caller up the stack has it. */
static void
conn_put(struct hs_conn *c)
{
	if (c->busy == 0)
		free(c);
}

/* Undoes a connection that is not serving yet: its fd stays the
 * caller's. */
static void
conn_unmake(struct hs_conn *c)
{
	c->fd = -1;
	conn_release(c);
	conn_put(c);
}

/* Calls the connection callback: 0, or -1 if the connection is gone
 * since (detached, or closed), and freed. */
static int
conn_notify(struct hs_conn *c, enum hs_conn_event ev)
{
	struct hs_server	*srv = c->srv;

	if (srv->conn_cb == NULL)
		return 0;
	c->busy++;
	srv->conn_cb(c, ev, srv->conn_arg);
	c->busy--;
	if (!c->gone)
		return 0;
	conn_put(c);
	return -1;
}

static void
conn_close(struct hs_conn *c)
{
	struct hs_server	*srv = c->srv;

	conn_release(c);
	if (srv->conn_cb != NULL) {
		c->busy++;
		srv->conn_cb(c, HS_CONN_CLOSED, srv->conn_arg);
		c->busy--;
	}
	conn_put(c);
}

/* A connection on fd, in the list, without its bufferevent yet: NULL if
 * out of memory. */
static struct hs_conn *
conn_alloc(struct hs_server *srv, int fd)
{
	struct hs_conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->srv = srv;
	c->fd = fd;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	TAILQ_INSERT_TAIL(&srv->conns, c, entry);
	srv->nconns++;
	return c;
}

/* Its bufferevent, reading: 0, or -1 if out of memory. */
static int
conn_attach(struct hs_conn *c)
{
	struct hs_server	*srv = c->srv;

	/* Not BEV_OPT_CLOSE_ON_FREE: a detached fd must stay open. */
	if ((c->bev = bufferevent_socket_new(srv->base, c->fd, 0)) == NULL)
		return -1;
	bufferevent_setcb(c->bev, conn_read, conn_written, conn_event, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, HS_INPUT_MAX);
	bufferevent_set_timeouts(c->bev, timerisset(&srv->read_timeout) ?
	    &srv->read_timeout : NULL, timerisset(&srv->write_timeout) ?
	    &srv->write_timeout : NULL);
	return 0;
}

/* A connection on fd, which it owns from here on: NULL with fd still
 * the caller's if it cannot be made. */
static struct hs_conn *
conn_new(struct hs_server *srv, int fd)
{
	struct hs_conn	*c;

	if ((c = conn_alloc(srv, fd)) == NULL)
		return NULL;
	if (conn_attach(c) == -1) {
		conn_unmake(c);
		return NULL;
	}
	return c;
}

/* A parked connection's client sent, or closed, or was silent too long:
 * now a whole one, which reads what is there. */
static void
conn_unpark(evutil_socket_t fd, short what, void *arg)
{
	struct hs_conn	*c = arg;

	event_free(c->park);
	c->park = NULL;
	if ((what & EV_TIMEOUT) ||
	    evutil_make_socket_nonblocking(c->fd) == -1 ||
	    conn_attach(c) == -1) {
		conn_close(c);
		return;
	}
	bufferevent_enable(c->bev, EV_READ);
}

int
hs_conn_idle(const struct hs_conn *c)
{
	return !c->gone && c->req == NULL && !c->closing && (c->bev == NULL ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0);
}

size_t
hs_conn_pending(const struct hs_conn *c)
{
	return c->bev != NULL ? evbuffer_get_length(bufferevent_get_input(
	    c->bev)) : 0;
}

int
hs_detach_idle(struct hs_conn *c, int *fd, struct evbuffer *unconsumed)
{
	if (!hs_conn_idle(c)) {
		errno = EBUSY;
		return -1;
	}
	if (c->bev != NULL && evbuffer_add_buffer(unconsumed,
	    bufferevent_get_input(c->bev)) == -1) {
		errno = ENOMEM;
		return -1;
	}
	*fd = c->fd;
	c->fd = -1;
	conn_release(c);
	conn_put(c);
	return 0;
}

size_t
hs_foreach_idle(struct hs_server *srv, void (*cb)(struct hs_conn *, void *),
    void *arg, size_t max)
{
	struct hs_conn	*c, *next;
	size_t		 n = 0;

	for (c = TAILQ_FIRST(&srv->conns); c != NULL && n < max; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (hs_conn_idle(c)) {
			cb(c, arg);
			n++;
		}
	}
	return n;
}

/* ---------------------------------------------------------- parsing */

static int
parse_begin(http_parser *p)
{
	struct hs_conn	*c = p->data;

	c->head_len = c->body_len = c->url_len = 0;
	c->headers_done = 0;
	return 0;
}

/* Adds n to *count: 0, or -1 past max, with status to answer. */
static int
parse_count(struct hs_conn *c, size_t *count, size_t n, size_t max,
    int status)
{
	*count += n;
	if (*count <= max)
		return 0;
	c->error = status;
	return -1;
}

static int
parse_url(http_parser *p, const char *at, size_t len)
{
	struct hs_conn	*c = p->data;
	char		*n;
	size_t		 cap;

	if (parse_count(c, &c->head_len, len, HS_MAX_HEAD, 431) == -1)
		return -1;
	if (c->url_len + len + 1 > c->url_cap) {
		cap = c->url_cap ? c->url_cap : 64;
		while (cap < c->url_len + len + 1)
			cap *= 2;
		if ((n = realloc(c->url, cap)) == NULL) {
			c->error = 500;
			return -1;
		}
		c->url = n;
		c->url_cap = cap;
	}
	memcpy(c->url + c->url_len, at, len);
	c->url_len += len;
	c->url[c->url_len] = '\0';
	return 0;
}

static int
parse_header(http_parser *p, const char *at, size_t len)
{
	struct hs_conn	*c = p->data;

	/* ": " and CRLF around each field and value, roughly. */
	return parse_count(c, &c->head_len, len + 2, HS_MAX_HEAD, 431);
}

static int
parse_headers_done(http_parser *p)
{
	((struct hs_conn *)p->data)->headers_done = 1;
	return 0;
}

static int
parse_body(http_parser *p, const char *at, size_t len)
{
	struct hs_conn	*c = p->data;

	/* Not kept: GET and HEAD have no use for one. */
	return parse_count(c, &c->body_len, len, HS_MAX_BODY, 413);
}

/* One request at a time: the parser stops just after it. */
static int
parse_complete(http_parser *p)
{
	((struct hs_conn *)p->data)->complete = 1;
	http_parser_pause(p, 1);
	return 0;
}

/*
 * Feeds the parser the input it has not seen, until a request is whole
 * (c->complete), the input ends, or it is malformed (c->error set).
 */
static void
conn_parse(struct hs_conn *c)
{
	struct evbuffer		*in = bufferevent_get_input(c->bev);
	struct evbuffer_ptr	 at;
	struct evbuffer_iovec	 v[4];
	enum http_errno		 e;
	size_t			 got;
	int			 i, n;

	while (!c->complete && c->error == 0 &&
	    c->fed < evbuffer_get_length(in)) {
		if (evbuffer_ptr_set(in, &at, c->fed, EVBUFFER_PTR_SET) == -1)
			break;
		if ((n = evbuffer_peek(in, -1, &at, v, 4)) <= 0)
			break;
		for (i = 0; i < n && i < 4; i++) {
			got = http_parser_execute(&c->parser, &parse_settings,
			    v[i].iov_base, v[i].iov_len);
			c->fed += got;
			e = HTTP_PARSER_ERRNO(&c->parser);
			if (e == HPE_PAUSED)
				break;
			if (e != HPE_OK) {
				if (c->error == 0)
					c->error = e == HPE_HEADER_OVERFLOW ?
					    431 : 400;
				break;
			}
		}
	}
	/* A head still unfinished past the limit (blank lines, a field
	 * without end): the callbacks have not counted all of it. */
	if (!c->complete && c->error == 0 && !c->headers_done &&
	    c->fed > HS_MAX_HEAD)
		c->error = 431;
}

/* ---------------------------------------------------------- responses */

static const char *
date_header(struct hs_server *srv)
{
	struct timeval	now;
	struct tm	tm;

	event_base_gettimeofday_cached(srv->base, &now);
	if (now.tv_sec != srv->date_at && gmtime_r(&now.tv_sec, &tm) != NULL) {
		strftime(srv->date, sizeof(srv->date),
		    "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
		srv->date_at = now.tv_sec;
	}
	return srv->date;
}

/*
 * Writes one response: status line in the request's HTTP version,
 * headers (extra: more header lines, or ""), then the body unless head.
 * Marks the connection to close once written when close is set.
 */
static void
conn_reply(struct hs_conn *c, unsigned short minor, int code,
    const char *reason, const char *type, const char *extra,
    const void *body, size_t len, int head, int close)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);

	evbuffer_add_printf(out, "HTTP/1.%u %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%s%s%s\r\n", minor, code, reason, type,
	    len, minor >= 1 ? date_header(c->srv) : "", close ?
	    "Connection: close\r\n" : minor == 0 ?
	    "Connection: keep-alive\r\n" : "", extra);
	if (!head)
		evbuffer_add(out, body, len);
	c->writing = 1;
	if (close) {
		c->closing = 1;
		/* Nothing more is read: what comes is not answered. */
		bufferevent_disable(c->bev, EV_READ);
	}
}

/* A request the parser refused or we do not serve: said, then closed
 * unless the request itself was fine (501). */
static void
conn_refuse(struct hs_conn *c, int code, int keep)
{
	const char	*reason, *extra = "";
	char		 body[64];
	int		 n;

	switch (code) {
	case 413:
		reason = "Payload Too Large";
		break;
	case 431:
		reason = "Request Header Fields Too Large";
		break;
	case 500:
		reason = "Internal Server Error";
		break;
	case 501:
		reason = "Not Implemented";
		extra = "Allow: " HS_ALLOW "\r\n";
		break;
	case 505:
		reason = "HTTP Version Not Supported";
		break;
	default:
		code = 400;
		reason = "Bad Request";
		break;
	}
	n = snprintf(body, sizeof(body), "%s\n", reason);
	conn_reply(c, c->parser.http_major == 1 ? c->parser.http_minor : 1,
	    code, reason, "text/plain", extra, body, (size_t)n,
	    c->parser.method == HTTP_HEAD, !keep || c->srv->close_all ||
	    !http_should_keep_alive(&c->parser));
}

void
hs_respond(struct hs_request *req, int code, const char *reason,
    const char *type, const void *body, size_t len)
{
	struct hs_conn	*c = req->conn;

	TAILQ_REMOVE(&req->srv->requests, req, entry);
	if (c != NULL) {
		c->req = NULL;
		conn_reply(c, req->minor, code, reason, type, "", body, len,
		    req->head, req->close || c->srv->close_all);
	}
	free(req);
}

const char *
hs_request_path(const struct hs_request *req)
{
	return req->buf;
}

const char *
hs_request_query(const struct hs_request *req)
{
	return req->query;
}

/* The parsed request as one for the callback: NULL if its target is
 * not a URL (c->error set). */
static struct hs_request *
request_new(struct hs_conn *c)
{
	struct http_parser_url	 u;
	struct hs_request	*req;
	const char		*path = "/";
	size_t			 plen = 1, qlen = 0;

	http_parser_url_init(&u);
	if (c->url == NULL || http_parser_parse_url(c->url, c->url_len, 0,
	    &u) != 0) {
		c->error = 400;
		return NULL;
	}
	if (u.field_set & (1 << UF_PATH)) {
		path = c->url + u.field_data[UF_PATH].off;
		plen = u.field_data[UF_PATH].len;
	}
	if (u.field_set & (1 << UF_QUERY))
		qlen = u.field_data[UF_QUERY].len + 1;
	if ((req = malloc(sizeof(*req) + plen + 1 + qlen)) == NULL) {
		c->error = 500;
		return NULL;
	}
	req->srv = c->srv;
	req->conn = c;
	req->head = c->parser.method == HTTP_HEAD;
	req->close = !http_should_keep_alive(&c->parser);
	req->minor = c->parser.http_minor;
	memcpy(req->buf, path, plen);
	req->buf[plen] = '\0';
	req->query = NULL;
	if (qlen > 0) {
		req->query = req->buf + plen + 1;
		memcpy(req->query, c->url + u.field_data[UF_QUERY].off,
		    qlen - 1);
		req->query[qlen - 1] = '\0';
	}
	return req;
}

/* The request just parsed, dropped from the input: to the callback. */
static void
conn_dispatch(struct hs_conn *c)
{
	struct hs_server	*srv = c->srv;
	struct hs_request	*req;
	unsigned		 method = c->parser.method;

	evbuffer_drain(bufferevent_get_input(c->bev), c->fed);
	c->fed = 0;
	c->complete = 0;
	http_parser_pause(&c->parser, 0);
	if (c->parser.http_major != 1) {
		conn_refuse(c, 505, 0);
		return;
	}
	if (method != HTTP_GET && method != HTTP_HEAD) {
		conn_refuse(c, 501, 1);
		return;
	}
	if ((req = request_new(c)) == NULL) {
		conn_refuse(c, c->error, 0);
		return;
	}
	TAILQ_INSERT_TAIL(&srv->requests, req, entry);
	c->req = req;
	c->busy++;
	srv->request_cb(req, srv->request_arg);
	c->busy--;
	if (c->gone)
		conn_put(c);
}

/*
 * Serves the next request in the input, if the last one is answered
 * and written: one at a time, so responses keep the requests' order and
 * an idle connection can be handed over between two of them.
 */
static void
conn_serve(struct hs_conn *c)
{
	if (c->req != NULL || c->closing ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
		return;
	conn_parse(c);
	if (c->complete)
		conn_dispatch(c);
	else if (c->error != 0)
		conn_refuse(c, c->error, 0);
	else if (c->eof)
		conn_close(c);	/* nothing more will complete a request */
}

static void
conn_read(struct bufferevent *bev, void *arg)
{
	conn_serve(arg);
}

/* The output is written out: close, or say idle and go on reading. */
static void
conn_written(struct bufferevent *bev, void *arg)
{
	struct hs_conn	*c = arg;

	/* Also called when the socket first turns writable. */
	if (!c->writing)
		return;
	c->writing = 0;
	if (c->closing) {
		conn_close(c);
		return;
	}
	if (c->req != NULL)
		return;
	if (!c->eof && conn_notify(c, HS_CONN_IDLE) == -1)
		return;
	conn_serve(c);
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct hs_conn	*c = arg;

	if (what & BEV_EVENT_EOF) {
		/* Half closed: requests already sent are still answered. */
		c->eof = 1;
		conn_serve(c);
	} else if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    (c->req != NULL || evbuffer_get_length(
	    bufferevent_get_output(c->bev)) > 0)) {
		/* Waiting on us, not on the client: the write timeout
		 * covers a client that does not read. */
		bufferevent_enable(c->bev, EV_READ);
	} else
		conn_close(c);
}

/* ---------------------------------------------------------- adopting */

struct hs_conn *
hs_adopt(struct hs_server *srv, int fd, const void *bytes, size_t len)
{
	const struct timeval	*tmo = timerisset(&srv->read_timeout) ?
				    &srv->read_timeout : NULL;
	struct hs_conn		*c;
	struct evbuffer		*in;
	int			 rc;

	/* Idle, it is parked: a read event, and the rest of it (a
	 * bufferevent, its buffers, non-blocking mode) only once the
	 * client sends. Ten thousand come at once in a takeover. */
	if (len == 0) {
		if ((c = conn_alloc(srv, fd)) == NULL)
			return NULL;
		if ((c->park = event_new(srv->base, fd, EV_READ, conn_unpark,
		    c)) == NULL || event_add(c->park, tmo) == -1) {
			conn_unmake(c);
			errno = ENOMEM;
			return NULL;
		}
		return c;
	}
	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    (c = conn_new(srv, fd)) == NULL)
		return NULL;
	/* The bufferevent alone appends to its input: it keeps the end
	 * frozen otherwise. */
	in = bufferevent_get_input(c->bev);
	evbuffer_unfreeze(in, 0);
	rc = evbuffer_add(in, bytes, len);
	evbuffer_freeze(in, 0);
	if (rc == -1) {
		conn_unmake(c);
		errno = ENOMEM;
		return NULL;
	}
	bufferevent_enable(c->bev, EV_READ);
	/* Parsed from the loop, like what the socket brings. */
	bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS |
	    BEV_TRIG_DEFER_CALLBACKS);
	return c;
}

/* ---------------------------------------------------------- listening */

static void
listener_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct hs_listener	*l = arg;
	struct hs_conn		*c;

	if ((c = conn_new(l->srv, fd)) == NULL) {
		close(fd);
		return;
	}
	c->tag = l->tag;
	bufferevent_enable(c->bev, EV_READ);
	conn_notify(c, HS_CONN_ACCEPTED);
}

static void
listener_error(struct evconnlistener *lev, void *arg)
{
	struct hs_listener	*l = arg;
	int			 err = EVUTIL_SOCKET_ERROR();

	if (l->srv->accept_error_cb != NULL)
		l->srv->accept_error_cb(l, err, l->srv->accept_error_arg);
}

struct hs_listener *
hs_listen(struct hs_server *srv, int fd)
{
	struct hs_listener	*l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->srv = srv;
	/* Backlog 0: the socket listens already. No LEV_OPT_CLOSE_ON_FREE:
	 * the fd is the caller's. */
	l->lev = evconnlistener_new(srv->base, listener_accept, l,
	    LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (l->lev == NULL) {
		free(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->lev, listener_error);
	TAILQ_INSERT_TAIL(&srv->listeners, l, entry);
	return l;
}

int
hs_listener_fd(const struct hs_listener *l)
{
	return evconnlistener_get_fd((struct evconnlistener *)l->lev);
}

int
hs_listener_enable(struct hs_listener *l, int on)
{
	return on ? evconnlistener_enable(l->lev) :
	    evconnlistener_disable(l->lev);
}

void
hs_listener_free(struct hs_listener *l)
{
	TAILQ_REMOVE(&l->srv->listeners, l, entry);
	evconnlistener_free(l->lev);
	free(l);
}

void
hs_free(struct hs_server *srv)
{
	struct hs_listener	*l;
	struct hs_conn		*c;
	struct hs_request	*req;

	if (srv == NULL)
		return;
	while ((l = TAILQ_FIRST(&srv->listeners)) != NULL)
		hs_listener_free(l);
	/* Not from a callback: nobody up the stack has a connection. */
	while ((c = TAILQ_FIRST(&srv->conns)) != NULL) {
		conn_release(c);
		conn_put(c);
	}
	while ((req = TAILQ_FIRST(&srv->requests)) != NULL) {
		TAILQ_REMOVE(&srv->requests, req, entry);
		free(req);
	}
	free(srv);
}

void
hs_listener_set_tag(struct hs_listener *l, const char *tag)
{
	l->tag = tag;
}

void
hs_conn_set_tag(struct hs_conn *c, const char *tag)
{
	c->tag = tag;
}

const char *
hs_conn_tag(const struct hs_conn *c)
{
	return c->tag;
}
