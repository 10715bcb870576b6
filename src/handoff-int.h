/*
 * The struct handoff shared by the modules of libhandoff. Not installed.
 */
#ifndef HANDOFF_INT_H
#define HANDOFF_INT_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <stdarg.h>

#include <event2/event.h>
#include <jansson.h>

#include "handoff.h"
struct adopt_set;

#include "listener.h"
#include "message.h"

#define CONTROL_NAME		"@control"
/* Connections to older draining generations a successor holds. */
#define CHAIN_LINKS_MAX		64

/* The longest control path: what sun_path holds, its NUL aside. */
#define CONTROL_PATH_MAX \
	((int)sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
/* "serving PID GENERATION\n" in PATH.lock: two numbers and the words. */
#define CONTROL_SERVING_LEN	64
#define HANDOFF_MAX_ALLOW	16
#define HANDOFF_ERR_MAX		512
/* A log line's worth of hchanges: a few names of each kind. */
#define HCHANGES_MAX		768
/* How long a full socket may hold up a message of ours. */
#define SEND_WAIT_MS		5000
/* Bytes of listener names in ready; the rest are counted, not named. */
#define READY_NAMES_BYTES	16384

/* One listener; fd owned by this struct until closed or handed over. */
struct hlistener {
	char			*name;		/* owns spec's bytes too */
	char			*spec;		/* as asked for, or NULL */
	int			 fd;
	struct listener_id	 id;
	int			 refusing;	/* retired: shut until rollback */
	int			 retiring;	/* retired, its queue served */
	int			 bound_here;	/* not the predecessor's socket */
	int			 unshared;	/* retired: not the successor's */
};

struct request {
	char			*name;		/* owns spec's bytes too */
	char			*spec;
	struct listener_spec	 ls;
};

enum hstate {
	HS_NEW,		/* before handoff_start */
	HS_STARTED,	/* listeners held, application not yet ready */
	HS_WAITING,	/* successor: ready sent, waiting for released */
	HS_SERVING,
	HS_OFFERING,	/* incumbent: a takeover is under way */
	HS_DRAINING,	/* incumbent: released, draining */
	HS_STOPPING,	/* graceful stop, draining */
	HS_FAILED,	/* handoff_start failed: the handle is spent */
};

struct outmsg;		/* peer.c's queue */

/* A connection given to our successor, ours until taken (conn.c). */
struct hconn {
	long			 id;
	int			 fd;
	struct msg_conn		 row;		/* in "conns"; its block NULL
						 * once settled */
	int			 sent;
};

/* One "fds" message of the offer, encoded once for every successor. */
struct hbatch {
	char			*buf;
	size_t			 len;
	size_t			 first, end;	/* its entries: [first, end) */
};

enum peer_state {
	PEER_NEW,	/* waiting for the first message */
	PEER_FORBIDDEN,	/* wrong uid: refused at its first message */
	PEER_OFFERED,	/* offer sent, waiting for ready */
	PEER_RELEASED,	/* our successor; we drain */
	PEER_HOLD,	/* asked us to stop; closed when we exit */
	PEER_CLOSING,	/* close once the queue is written */
};

struct peer {
	LIST_ENTRY(peer)	 entry;
	struct handoff		*h;
	int			 fd;
	uid_t			 uid;
	pid_t			 pid;
	enum peer_state		 state;
	size_t			 next_batch;	/* offer: the next to send */
	struct event		*rev;
	struct event		*wev;
	struct event		*timer;
	STAILQ_HEAD(, outmsg)	 queue;
	/* What a message means, and what its end does: the incumbent's. */
	void			(*dispatch)(struct peer *, json_t *);
	void			(*gone)(struct peer *, int);
	/* All queued is written: what else the owner has for it. */
	void			(*writable)(struct peer *);
};

struct handoff {
	struct event_base	*base;
	char			*control_path;
	char			*lock_path;
	int			 lock_fd;
	char			*ident;
	char			*tag;
	unsigned		 ready_timeout;	/* ms */
	unsigned		 drain_timeout;	/* ms */
	unsigned		 io_timeout;	/* ms */
	unsigned		 max_draining;	/* older generations at once */
	uid_t			 allow[HANDOFF_MAX_ALLOW];
	size_t			 nallow;

	handoff_event_cb	 event_cb;
	void			*event_arg;
	handoff_log_cb		 log_cb;
	void			*log_arg;
	handoff_count_cb	 count_cb;
	void			*count_arg;
	handoff_flow_cb		 flow_cb;
	void			*flow_arg;
	handoff_conn_cb		 conn_cb;
	void			*conn_arg;
	struct hconn		*conns;		/* given, by id; settled ones
						 * until the next compaction */
	size_t			 nconns, capconns;
	size_t			 nlive;		/* given, not yet settled */
	size_t			 nunsent;	/* given, not yet sent */
	size_t			 conn_first;	/* below it all are sent or
						 * settled */
	int			 conn_blocked;	/* the successor's socket is
						 * full: it says when not */
	int			 conn_busy;	/* settling: indices hold */
	int			 conn_kept;	/* we give no more: our
						 * successor stops, or is gone */
	long			 conn_next;	/* the last id given */
	size_t			 conn_room;	/* fds our successor said it had */
	size_t			 conn_sent;	/* connections given it, all told */
	struct event		*conn_ev;	/* sends what was given */
	char			*conn_msg;	/* where "conns" is written */

	json_t			*state;		/* ours, offered */
	char			*pred_state;	/* the predecessor's, as text */

	struct request		*requests;
	size_t			 nrequests;
	size_t			 caprequests;
	struct hlistener	*listeners;
	size_t			 nlisteners;
	struct hlistener	*kept;		/* other fds (fd:, pass_fd) */
	size_t			 nkept, capkept;
	struct hlistener	 control;
	struct hbatch		*batches;	/* the offer, planned once */
	size_t			 nbatches;

	enum hstate		 hstate;
	unsigned		 generation;
	int			 main_pid;	/* the service manager's */
	pid_t			 gave_main;	/* MAINPID passed to it */
	int			 pred_same_unit;
	pid_t			 predecessor;
	struct event		*control_ev;
	event_callback_fn	 control_cb;	/* takes its connections */
	int			 control_paused; /* by control_pause */
	struct event		*retry_ev;	/* accept again after EMFILE */
	int			 spare_fd;	/* given up to accept at EMFILE */
	int			 fds_short;	/* EMFILE said, until an accept */
	struct event		*drain_ev;
	unsigned		 drain_ms;	/* the clock's, as started */
	int			 serve_retired;	/* the application serves... */
	size_t			 nretiring;	/* ...what these have queued */
	struct event		*retire_ev;	/* looks at their queues */
	struct timeval		 retire_end;	/* shut even if not empty */
	struct event		*progress_ev;	/* tells our successor */
	json_t			*pred_progress;	/* our predecessor's */
	struct timeval		 pred_at;	/* when it came */
	json_t			*older;		/* older drainers, once it left */
	struct timeval		 older_at;	/* when they were last heard of */
	struct timeval		 drain_end;
	LIST_HEAD(, peer)	 peers;
	int			 npeers;
	int			 peers_full;	/* logged once while full */
	int			 told_stopping;	/* STOPPING=1 sent, as main */
	struct peer		*successor;	/* the peer taking over from us */

	json_t			*changes;	/* adopted, added, retired */
	int			 pred_fd;	/* successor side */
	struct event		*pred_ev;
	int			 pred_chain;	/* it understands superseded */
	int			 pred_flows;	/* it takes datagrams */
	int			 succ_flows;	/* our successor takes them */
	int			 pred_conns;	/* it gives connections */
	int			 succ_conns;	/* our successor takes them */

	/* The line of succession (chain.c). */
	int			 superseded;	/* no rollback can come now */
	pid_t			 chain_takeover; /* our successor's successor */
	struct event		*check_ev;	/* who serves, after a vanish */
	int			 check_fd;	/* the status probe, or -1 */
	pid_t			 check_gone;	/* the successor that vanished */
	pid_t			 check_holder;	/* lock holder last logged */
	struct timeval		 check_end;	/* of the wait for the lock */
	json_t			*chain_out[2];	/* the latest word, unsent */
	struct event		*chain_ev;	/* sends it when it can */
	struct hlink {
		int		 fd;
		struct event	*ev;		/* reads what it gives */
	}			 links[CHAIN_LINKS_MAX]; /* older drainers */
	size_t			 nlinks;	/* newest first, beyond pred */
	int			 succ_chain;	/* our successor takes links */
	unsigned		 hold_left;	/* drain ms left at the vanish */
	void			(*check_done)(struct handoff *, int);

	char			 err[HANDOFF_ERR_MAX];
};

/* util.c: the leaf every module calls */
void	 hvlog(struct handoff *, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));
void	 hlog(struct handoff *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	 herr(struct handoff *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 hevent(struct handoff *, enum handoff_event);
json_t	*hextensions(const struct handoff *);
void	 hchanges(const json_t *, char *, size_t);
char	*hpack(const char *const [], char *[], size_t);
char	*hnames(const char *, const char *, char **);
int	 hnonblock(int);
void	 hlistener_close(struct hlistener *);
int	 hlistener_set(struct hlistener *, const char *, const char *, int,
	    const struct listener_id *);
void	 hlistener_cells(const struct hlistener *, const char *[MSG_NCOLUMNS]);
size_t	 hentries(const struct handoff *);
void	 hlisteners_close(struct handoff *);
struct hlistener *hentry(struct handoff *, size_t);
unsigned hcount(struct handoff *);
int	 huid_allowed(const struct handoff *, uid_t);

/* conn.c: connections given to the successor, and taken */
void	 conn_flush(struct handoff *);
void	 conn_writable(struct peer *);
void	 conn_on_taken(struct handoff *, pid_t, const json_t *);
void	 conn_all_back(struct handoff *, const char *);
void	 conn_keep_unsent(struct handoff *);

/* conntake.c: the successor's half, and what conn.c shares of it. */
int	 conn_addresses(int, char *, char *);
int	 conn_offer(struct handoff *, enum handoff_way, int, const char *,
	    const char *, const char *);
void	 conn_receive(struct handoff *, const json_t *, int *, size_t,
	    int, int);
void	 conn_free(struct handoff *);

/* flow.c: datagrams to and from the neighbours */
void	 flow_receive(struct handoff *, enum handoff_way, pid_t,
	    const json_t *);

/* drain.c: the drain clock (the drain itself begins in retire.c) */
void	 drain_clock(struct handoff *, unsigned);
void	 drain_cancel(struct handoff *);
unsigned drain_remaining(const struct handoff *);

/* control.c */
int	 control_absolute(struct handoff *);
int	 control_check_dir(struct handoff *);
int	 control_connect(struct handoff *);
pid_t	 control_lock_holder(struct handoff *);
int	 control_lock(struct handoff *);
void	 control_unlock(struct handoff *);
void	 control_unlock_serving(struct handoff *);
unsigned control_last_serving(struct handoff *, long *);
int	 control_probe(struct handoff *, int *);
int	 control_bind(struct handoff *);
int	 control_listen(struct handoff *, event_callback_fn);
int	 control_accept(struct handoff *, int, struct ucred *, int *);
void	 control_pause(struct handoff *);
void	 control_spare(struct handoff *);

/* offer.c */
int	 offer_plan(struct handoff *);
void	 offer_free(struct handoff *);
json_t	*offer_build(struct handoff *, size_t, int);
const char *offer_batch(struct handoff *, size_t, size_t *, int *,
	    size_t *, char *, size_t);

/* peer.c */
struct peer *peer_new(struct handoff *, int, const struct ucred *,
	    void (*)(struct peer *, json_t *), void (*)(struct peer *, int));
void	 peer_arm(struct peer *, unsigned);
int	 peer_queue(struct peer *, json_t *);
void	 peer_send(struct peer *, json_t *);
int	 peer_flush(struct peer *);
void	 peer_refuse(struct peer *, const char *, const char *);
void	 peer_free(struct peer *, int);
void	 peer_free_all(struct handoff *);
int	 peer_idle(const struct peer *);
int	 peer_offer_sent(const struct peer *);

/* chain.c */
#define CHAIN_EXTENSION	"superseded"
/* Datagrams of flows another generation owns (flow.c). */
#define FLOW_EXTENSION	"datagrams"
/* Established connections given to the successor (conn.c). */
#define CONN_EXTENSION	"conns"
#define CHAIN_TAKEOVER		0	/* chain_out[]: sent in this order */
#define CHAIN_SUPERSEDED	1
#define CHAIN_NOUT		2
void	 chain_tell(struct handoff *, pid_t, unsigned, unsigned);
int	 chain_flush(struct handoff *, int);
int	 chain_on_superseded(struct handoff *, pid_t, const json_t *);

/* links.c: links to older drainers, handed over by an exiting middle
 * generation. */
void	 links_adopt(struct handoff *, int *, size_t);
void	 links_take(struct handoff *);
void	 links_pass(struct handoff *, int);
void	 links_tell(struct handoff *, pid_t, unsigned, unsigned);
void	 links_close(struct handoff *);
void	 chain_tell_takeover(struct handoff *, pid_t);
void	 chain_on_takeover(struct handoff *, pid_t, const json_t *);
int	 chain_may_be_newer(const struct handoff *);
void	 chain_check(struct handoff *, pid_t,
	    void (*)(struct handoff *, int));
int	 chain_checking(const struct handoff *);
void	 chain_check_cancel(struct handoff *);
json_t	*chain_drainers(struct handoff *);
void	 chain_predecessor_left(struct handoff *);

/* report.c */
int	 report_connections(struct handoff *, json_t *);
json_t	*report_build(struct handoff *);

/* retire.c */
void	 retire_refuse(struct handoff *, json_t *);
void	 retire_watch(struct handoff *);
void	 retire_cancel(struct handoff *);
void	 retire_listen_again(struct handoff *);
void	 retire_then_drain(struct handoff *, unsigned);

/* incumbent.c */
int	 incumbent_listen(struct handoff *);
int	 incumbent_stop(struct handoff *);
int	 incumbent_offer_sent(const struct handoff *);

/* intake.c */
int	 intake_offer(struct handoff *, struct adopt_set *);
int	 intake_control(struct handoff *, struct adopt_set *);
void	 intake_fd_check(struct handoff *);

/* successor.c */
int	 successor_takeover(struct handoff *, int);
int	 successor_ready(struct handoff *);

#endif
