/*
 * handoff: zero-downtime upgrades by starting the new binary.
 *
 * A server creates a struct handoff on its libevent base, names the
 * listeners it wants, and calls handoff_start(). If another process serves
 * on the same control socket, its listeners are taken over (the same
 * sockets, so nothing queued is lost); otherwise they are bound fresh. The
 * server then accepts on handoff_listener_fd() and calls handoff_ready().
 * From then on it is the incumbent: when a successor is ready, the library
 * tells it, through its event callback, to pause, to drain, to hammer, or
 * to resume (rollback).
 *
 * Errors: every function that returns int returns 0 (or a value >= 0) on
 * success and -1 on failure, and a pointer-returning function returns NULL;
 * handoff_strerror() then says what failed, where, and what to do. Nothing
 * here installs signal handlers or calls exit().
 *
 * Callbacks: the event callback may call handoff_stop(), the getters and
 * handoff_strerror(); never handoff_free(). Break out of the event loop
 * instead, and free after it.
 *
 * Fds: every listener fd belongs to the struct handoff, and is CLOEXEC and
 * non-blocking. The application may accept on it, must not close it, and must not use it after
 * handoff_free(), which closes them all.
 */
#ifndef HANDOFF_H
#define HANDOFF_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct handoff;

#define HANDOFF_PROTO_VERSION	1

enum handoff_event {
	HANDOFF_PAUSE,	/* stop accepting: a successor serves, or a stop
			 * began (but see handoff_listener_retiring) */
	HANDOFF_DRAIN,	/* finish in-flight work by handoff_drain_remaining();
			 * accept on no listener at all */
	HANDOFF_RESUME,	/* rollback: the successor vanished, accept again */
	HANDOFF_HAMMER,	/* the deadline passed: close what is left and exit */
	HANDOFF_ABORT,	/* after ready, the predecessor did not let go and
			 * serves on: after HANDOFF_PAUSE, before
			 * HANDOFF_DRAIN; exit non-zero once drained, with
			 * handoff_strerror() as the reason */
	HANDOFF_HOLD,	/* while draining, the successor vanished without
			 * saying it was superseded or stopping: neither
			 * accept nor exit, even when drained, while the
			 * library checks whether a newer generation serves;
			 * HANDOFF_RESUME (rollback) or HANDOFF_DRAIN (drain
			 * on) follows */
	HANDOFF_SUPERSEDED, /* while draining: our successor handed over in
			 * its turn, or stopped, or this is a stop (after
			 * its HANDOFF_DRAIN); no rollback can come any
			 * more, so an application that lingers after its
			 * drain for one may exit */
	HANDOFF_PREDECESSOR_GONE, /* after a takeover: the predecessor has
			 * exited, its drain over; what belonged to it
			 * (datagrams of its flows) is ours from now on,
			 * and handoff_flow_send() to it fails */
	HANDOFF_CONNS_SETTLED, /* while draining: every connection given
			 * with handoff_conn_give() has been taken by the
			 * successor or came back through the connection
			 * callback; none is pending */
};

/* Which of the two neighbours a datagram goes to, or came from. */
enum handoff_way {
	HANDOFF_PREDECESSOR,	/* the generation we took over from */
	HANDOFF_SUCCESSOR,	/* the one that took over from us */
};

typedef void	(*handoff_event_cb)(struct handoff *, enum handoff_event,
		    void *);
typedef void	(*handoff_log_cb)(const char *, void *);
typedef unsigned (*handoff_count_cb)(void *);
/* A connection arrives (handoff_set_conn_cb) from a neighbour: from
 * HANDOFF_PREDECESSOR, one it gave us (even while we drain in our turn:
 * its gift crossed our own takeover); from HANDOFF_SUCCESSOR, one we gave
 * that came back. fd is the application's if it returns 0 (it serves the
 * connection, beginning with the data bytes, already read from it, then
 * the socket); the library closes it on -1. listener names where it was
 * accepted; state is the giver's JSON text or NULL. All but fd borrowed. */
typedef int	(*handoff_conn_cb)(struct handoff *, enum handoff_way, int,
		    const char *, const void *, size_t, const char *, void *);
/* A datagram from a neighbour (handoff_set_flow_cb): the listener it was
 * read on, by name, and our own fd of that socket, to answer on; the
 * peer's address; the bytes. All borrowed for the call. */
typedef void	(*handoff_flow_cb)(struct handoff *, enum handoff_way,
		    const char *, int, const struct sockaddr *, socklen_t,
		    const void *, size_t, void *);

/* Takes no ownership of base; copies control_path. */
struct handoff	*handoff_new(struct event_base *, const char *);
void		 handoff_free(struct handoff *);
const char	*handoff_strerror(const struct handoff *);

/* Settings; all before handoff_start(). */
int		 handoff_set_ident(struct handoff *, const char *);
int		 handoff_set_tag(struct handoff *, const char *);
void		 handoff_set_ready_timeout(struct handoff *, unsigned);
void		 handoff_set_drain_timeout(struct handoff *, unsigned);
void		 handoff_set_io_timeout(struct handoff *, unsigned);
/* At most this many older generations drain at once (default 4): a
 * takeover that would leave more hammers the oldest. 0: the incumbent
 * is hammered as soon as it has released. */
void		 handoff_set_max_draining(struct handoff *, unsigned);
int		 handoff_allow_uid(struct handoff *, uid_t);
void		 handoff_set_event_cb(struct handoff *, handoff_event_cb,
		    void *);
void		 handoff_set_log_cb(struct handoff *, handoff_log_cb, void *);
/* The application's own line, through the log callback, in the library's
 * format: "IDENT[PID] gen N: text". */
void		 handoff_log(struct handoff *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
void		 handoff_set_count_cb(struct handoff *, handoff_count_cb,
		    void *);
/*
 * The application serves what is queued on a TCP listener its successor
 * retires (a port moved or dropped): from HANDOFF_PAUSE it goes on
 * accepting on the listeners handoff_listener_retiring() names, until
 * HANDOFF_DRAIN. Off by default: such a listener is then shut at once,
 * and connections queued on it are reset.
 */
void		 handoff_set_serve_retired(struct handoff *, int);

/* Application state offered to the successor: a JSON object, as text. */
int		 handoff_set_state(struct handoff *, const char *);
/* The predecessor's state as JSON text, or NULL after a fresh start. */
const char	*handoff_predecessor_state(const struct handoff *);

/* Asks for a listener: NAME and tcp://HOST:PORT, tcp://[V6]:PORT,
 * udp://HOST:PORT or unix:PATH; or, with "fd:", for the fd the
 * predecessor passed as NAME (handoff_pass_fd), whatever it is: after
 * handoff_start handoff_fd(NAME) is it, or -1 if none was passed (a
 * fresh start), and it is offered on as the listeners are. */
int		 handoff_listen(struct handoff *, const char *, const char *);

/* Takes over from the incumbent or binds fresh. Blocks, bounded by the
 * I/O timeout. On failure nothing is left bound and the incumbent, if
 * any, carries on. Fails, touching nothing there, on a control directory
 * of another uid than an allowed one (ours, root) or that others may
 * write to without the sticky bit, and on a symbolic link, a file or a
 * socket of another uid at the control path (proto/PROTOCOL.md 6.1).
 * An offer sent in more than one batch (more than 252 listeners, or
 * fewer with long addresses) is checked by a second thread as it
 * arrives, with every signal blocked; it has exited when this returns. */
int		 handoff_start(struct handoff *);

size_t		 handoff_listener_count(const struct handoff *);
const char	*handoff_listener_name(const struct handoff *, size_t);
int		 handoff_listener_fd(const struct handoff *, size_t);
/*
 * 1 while listener i, retired by our successor, still had connections
 * queued at its ready (with handoff_set_serve_retired): accept and serve
 * them. The library shuts it to new connections once its queue is seen
 * empty, 1 s at most after ready, and only then says HANDOFF_DRAIN. 0
 * otherwise.
 */
int		 handoff_listener_retiring(const struct handoff *, size_t);
/* The fd of a listener, or of an fd kept or passed, by name; -1 if none.
 * The library's: never close it. */
int		 handoff_fd(const struct handoff *, const char *);
/*
 * Offers any fd to successors under NAME (a memfd, a pipe, an eventfd, a
 * connected socket): after handoff_start, not during a takeover. Takes
 * the fd, even on failure; one already passed or kept by that name is
 * closed and replaced. A successor asks for it with "fd:". What is
 * checked on the way is what the kernel says of it (its /proc/self/fd
 * link for a non-socket).
 */
int		 handoff_pass_fd(struct handoff *, const char *, int);

/*
 * Flows that belong to another generation: a session, or a QUIC
 * connection id, that a draining predecessor created. After a takeover,
 * while the two still speak (from the successor's ready until the
 * predecessor exits), either may send the other a datagram it read on a
 * UDP (or Unix datagram) listener they share: the successor one that
 * belongs to its predecessor, the predecessor one that is not its own
 * after all. The receiver gets it through the flow callback, with its
 * own fd of the same socket, and answers the peer on it. Both sides must
 * speak the "datagrams" extension (proto/PROTOCOL.md 6.8). A datagram of
 * more than HANDOFF_FLOW_MAX bytes is refused; one that finds its
 * neighbour's socket full is dropped (-1), as the network may drop it.
 * handoff_flow_send fails (-1, handoff_strerror says why) with no such
 * neighbour, or one that does not speak the extension, or gone
 * (HANDOFF_PREDECESSOR_GONE said so).
 */
#define HANDOFF_FLOW_MAX	32768
void		 handoff_set_flow_cb(struct handoff *, handoff_flow_cb,
		    void *);
int		 handoff_flow_send(struct handoff *, enum handoff_way,
		    const char *, const struct sockaddr *, socklen_t,
		    const void *, size_t);

/*
 * Established connections migrate: while we drain, the application may
 * give a connection it holds, idle or with bytes read and not consumed,
 * to the successor, which serves it from there (no reconnect, nothing
 * read lost). Both sides must speak the "conns" extension, which the
 * library announces when a connection callback is set before
 * handoff_start (proto/PROTOCOL.md 6.9). handoff_conn_give takes the fd
 * on success (not on failure: -1, handoff_strerror says why, and the
 * application serves it itself); until the successor takes it the
 * library keeps it, and if the successor refuses it or goes away first,
 * it comes back through the connection callback: nothing is lost. data
 * (at most HANDOFF_CONN_DATA_MAX bytes) is what was read and not
 * consumed; state a JSON object as text, or NULL. handoff_conns_pending
 * says how many are given and not yet settled: a draining application
 * waits for 0 (HANDOFF_CONNS_SETTLED) as for its own connections.
 */
#define HANDOFF_CONN_DATA_MAX	16384
void		 handoff_set_conn_cb(struct handoff *, handoff_conn_cb,
		    void *);
int		 handoff_conn_give(struct handoff *, int, const char *,
		    const void *, size_t, const char *);
size_t		 handoff_conns_pending(const struct handoff *);

/* The application serves: tell the predecessor, open the control socket. */
int		 handoff_ready(struct handoff *);
/* Graceful stop: HANDOFF_PAUSE, HANDOFF_DRAIN, then at the deadline
 * HANDOFF_HAMMER, unless the application has exited first. */
int		 handoff_stop(struct handoff *);

unsigned	 handoff_generation(const struct handoff *);
pid_t		 handoff_predecessor(const struct handoff *);
/* Milliseconds left before the hammer, while draining; 0 otherwise. */
unsigned	 handoff_drain_remaining(const struct handoff *);

#ifdef __cplusplus
}
#endif

#endif
