/*
 * httpserv: a small HTTP/1.1 server on libevent bufferevents, parsed by
 * http_parser. GET and HEAD (any other method: 501 with Allow),
 * HTTP/1.0 and 1.1, keep-alive and pipelining (one request at a time
 * per connection: the next is parsed once the previous response is
 * written, so answers keep the order of the requests).
 *
 * Unlike evhttp it can take over a connection another owner accepted,
 * with the bytes that owner already read (hs_adopt), and give up an
 * idle one with the bytes it read and did not answer (hs_detach_idle):
 * the two halves of moving a keep-alive connection between processes.
 *
 * Ownership of fds:
 *   - a listener's fd (hs_listen) stays the caller's: hs_free and
 *     hs_listener_free never close it;
 *   - an accepted connection's fd is the server's, closed when the
 *     connection ends or by hs_free;
 *   - hs_adopt takes the fd when it succeeds; when it fails the fd is
 *     still the caller's, open (perhaps made non-blocking);
 *   - hs_detach_idle gives the fd back: from then on it is the caller's,
 *     and the server has forgotten the connection.
 *
 * Errors: functions that can fail return -1 or NULL with errno set.
 * Callbacks never run from inside the call that set them up or from
 * hs_adopt; they run from the event loop.
 */
#ifndef HANDOFF_HTTPSERV_H
#define HANDOFF_HTTPSERV_H

#include <stddef.h>

struct event_base;
struct evbuffer;
struct hs_server;
struct hs_listener;
struct hs_conn;
struct hs_request;

/* Limits: a larger request head is answered 431, a larger body 413. */
#define HS_MAX_HEAD		8192
#define HS_MAX_BODY		16384

/*
 * A complete request: answer it with hs_respond, now or later (once,
 * always). The connection reads nothing more until then.
 */
typedef void	hs_request_cb(struct hs_request *, void *);

enum hs_conn_event {
	HS_CONN_ACCEPTED,	/* new from a listener (not from hs_adopt) */
	HS_CONN_IDLE,		/* a response written; nothing in flight:
				 * hs_detach_idle may take it now, before
				 * the next pipelined request is parsed */
	HS_CONN_CLOSED,		/* closed (by either side, or a timeout);
				 * the handle is invalid after the call */
};
/* Not called for hs_detach_idle, nor by hs_free. */
typedef void	hs_conn_cb(struct hs_conn *, enum hs_conn_event, void *);

/* accept(2) failed with err (not a retriable error): the listener stays
 * enabled unless the callback disables it. */
typedef void	hs_accept_error_cb(struct hs_listener *, int, void *);

struct hs_server	*hs_new(struct event_base *, hs_request_cb *, void *);
/* Closes every connection (without calling back) and listener watch;
 * requests not yet answered are freed: their handles are invalid. */
void			 hs_free(struct hs_server *);
void			 hs_set_conn_cb(struct hs_server *, hs_conn_cb *,
			    void *);
void			 hs_set_accept_error_cb(struct hs_server *,
			    hs_accept_error_cb *, void *);
/*
 * Milliseconds without a byte from the client while it owes us one (idle,
 * or a request half sent), and without progress writing to it; 0 for
 * none, the default (evhttp's, as handoff-httpd used it: a drain's
 * deadline bounds an idle connection). For connections made from then on.
 */
void			 hs_set_timeouts(struct hs_server *, unsigned,
			    unsigned);
/* On: every response from now on says Connection: close and its
 * connection is closed once it is written (a drain). Off: keep-alive
 * again for responses written from then on. */
void			 hs_set_close_all(struct hs_server *, int);
/* Connections open: accepted or adopted, not yet closed or detached. */
unsigned		 hs_conn_count(const struct hs_server *);

/* Accepts on the listening socket fd, which stays the caller's;
 * enabled from the start. NULL on failure. */
struct hs_listener	*hs_listen(struct hs_server *, int);
int			 hs_listener_fd(const struct hs_listener *);
int			 hs_listener_enable(struct hs_listener *, int);
void			 hs_listener_free(struct hs_listener *);

/*
 * Serves fd, a connected stream socket accepted elsewhere, whose first
 * len bytes were read already: they are parsed first, then what comes
 * from fd (from the event loop: no callback runs before hs_adopt
 * returns). The connection, or NULL with the fd left to the caller.
 */
struct hs_conn		*hs_adopt(struct hs_server *, int, const void *,
			    size_t);

/* A label of the caller's (borrowed: it must outlive its users): a
 * listener gives its own to the connections it accepts. NULL if none. */
void			 hs_listener_set_tag(struct hs_listener *,
			    const char *);
void			 hs_conn_set_tag(struct hs_conn *, const char *);
const char		*hs_conn_tag(const struct hs_conn *);

/* 1 if no request is in flight and no response is left to write. */
int			 hs_conn_idle(const struct hs_conn *);
/* Bytes read from the connection and not yet answered: what
 * hs_detach_idle would hand over. */
size_t			 hs_conn_pending(const struct hs_conn *);
/*
 * For an idle connection: stores its fd in *fd (the caller's from now
 * on, still open) and appends to unconsumed every byte read from it and
 * not yet answered (pipelined requests, a partial one), then forgets the
 * connection. -1 with errno EBUSY if it is not idle, and nothing moves;
 * -1 with ENOMEM if the bytes cannot be copied, and nothing moves.
 */
int			 hs_detach_idle(struct hs_conn *, int *,
			    struct evbuffer *);
/* Calls back for each idle connection, at most max of them, oldest
 * first; the callback may detach that one (only). The number of calls. */
size_t			 hs_foreach_idle(struct hs_server *,
			    void (*)(struct hs_conn *, void *), void *, size_t);

/* The path of the request target, and its query (NULL without '?'),
 * as sent (not percent-decoded). */
const char		*hs_request_path(const struct hs_request *);
const char		*hs_request_query(const struct hs_request *);
/*
 * Answers with status code, its reason phrase and a body of len bytes
 * of the given Content-Type (not sent for HEAD), then frees the request.
 * If the connection is gone meanwhile the request is only freed.
 */
void			 hs_respond(struct hs_request *, int, const char *,
			    const char *, const void *, size_t);

#endif
