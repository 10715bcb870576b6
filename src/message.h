/*
 * message: the JSON messages of protocol v1 (proto/PROTOCOL.md).
 *
 * msg_parse returns a new reference, or NULL with the exact reason in err.
 * msg_new returns a new object with "type" and "proto" set. msg_encode
 * returns a malloc'd compact encoding, or NULL if it would not fit in one
 * message.
 */
#ifndef HANDOFF_MESSAGE_H
#define HANDOFF_MESSAGE_H

#include <sys/types.h>

#include <jansson.h>
#include <stddef.h>

#define MSG_PROTO	1
#define MSG_NAME_MAX	64
#define MSG_ADDR_MAX	256
#define MSG_TEXT_MAX	1024
#define MSG_DRAINERS_MAX	64	/* generations listed as draining */
#define MSG_DATAGRAM_MAX	32768	/* bytes of a datagram, before base64 */
#define MSG_CONN_DATA_MAX	16384	/* a connection's unread bytes, before base64 */
/* Why fds attached to a message are missing (MSG_CTRUNC). */
#define MSG_FDS_LOST	"the fds attached did not all arrive (more than " \
			"252, or our fd table is full: raise RLIMIT_NOFILE); " \
			"those that did were closed"

/* Error codes carried by "error" messages. */
#define MSG_E_FORBIDDEN		"forbidden"
#define MSG_E_BUSY		"busy"
#define MSG_E_VERSION		"version"
#define MSG_E_MALFORMED		"malformed"
#define MSG_E_UNKNOWN		"unknown-type"
#define MSG_E_UNEXPECTED	"unexpected"
#define MSG_E_TIMEOUT		"timeout"
#define MSG_E_TOOMANYFDS	"too-many-fds"
#define MSG_E_MISMATCH		"mismatch"
#define MSG_E_BIND		"bind"
#define MSG_E_STOPPING		"stopping"
#define MSG_E_INTERNAL		"internal"

/* The columns of an "fds" message's listeners, in this order. */
enum msg_column {
	MSG_COL_NAME, MSG_COL_KIND, MSG_COL_FAMILY, MSG_COL_SOCKTYPE,
	MSG_COL_ADDRESS, MSG_COL_LISTENING, MSG_COL_SPEC, MSG_NCOLUMNS
};

/* The columns of a "conns" message (4.13), and one connection's values
 * as JSON text, all in one block (msg_conn_cells). */
enum msg_conn_column {
	MSG_CC_ID, MSG_CC_INODE, MSG_CC_LISTENER, MSG_CC_PEER, MSG_CC_LOCAL,
	MSG_CC_DATA, MSG_CC_STATE, MSG_NCONNCOLS
};

struct msg_conn {
	char		*block;		/* NULL: none */
	const char	*cell[MSG_NCONNCOLS];
	size_t		 len[MSG_NCONNCOLS];
};

/* Why msg_recv or msg_expect returned no message. */
struct msg_fail {
	enum {
		MSG_OK,		/* a message came */
		MSG_NONE,	/* nothing queued (msg_recv) */
		MSG_TIMEOUT,	/* nothing in time (msg_expect) */
		MSG_CLOSED,	/* the peer closed; err says how */
		MSG_BAD,	/* unreadable: code is what to answer */
		MSG_REFUSED,	/* an "error" came: its code and message */
		MSG_UNEXPECTED,	/* another type came: err names it */
	}		 why;
	int		 error;		/* MSG_CLOSED: errno, 0 if orderly */
	int		 fds_lost;	/* MSG_OK from msg_recv_lossy: the
					 * fds attached did not all arrive;
					 * none is given */
	char		 code[MSG_NAME_MAX + 1];
	char		 err[MSG_TEXT_MAX];
};

/* schema.c */
json_t		*msg_parse(const char *, size_t, char *, size_t);
json_t		*msg_parse_code(const char *, size_t, const char **, char *,
		    size_t);
int		 msg_entry_check(const json_t *, char *, size_t);
int		 msg_name_valid(const char *);
const char	*msg_column(enum msg_column);

/* message.c */
json_t		*msg_new(const char *);
json_t		*msg_superseded(pid_t, unsigned, unsigned);
json_t		*msg_error(const char *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
char		*msg_encode(const json_t *, size_t *);
/* Takes the message; waits at most the ms given for room. */
int		 msg_send(int, json_t *, int);
int		 msg_send_text(int, const char *, size_t, int);
const char	*msg_conn_column(enum msg_conn_column);
int		 msg_conn_cells(struct msg_conn *, long long, long long,
		    const char *, const char *, const char *, const void *,
		    size_t, const char *);
size_t		 msg_conn_row_len(const struct msg_conn *);
size_t		 msg_encode_conns(char *, long, const struct msg_conn *const *,
		    size_t);
char		*msg_encode_conns_taken(long, const long long *, size_t,
		    const long long *, size_t, size_t *);
/* cells[i * MSG_NCOLUMNS + k] is row i's value in column k (NULL for
 * null; "true" or "false" for listening). NULL with errno EINVAL for no
 * rows or a string that is not UTF-8, EMSGSIZE if it is too long, ENOMEM. */
char		*msg_encode_fds(size_t, const char *const *, size_t,
		    size_t *);
const char	*msg_type(const json_t *);
size_t		 msg_escaped_len(const char *);
/* Sizes, as the encoder writes them. */
size_t		 msg_fds_frame_len(size_t);
size_t		 msg_fds_row_len(const char *const [MSG_NCOLUMNS]);
size_t		 msg_list_item_len(const char *);
/* A listener entry from a row of cells, and its encoded size. */
json_t		*msg_entry(const char *const [MSG_NCOLUMNS]);
size_t		 msg_entry_len(const char *const [MSG_NCOLUMNS]);
/*
 * msg_recv receives one message if one is queued on a non-blocking
 * socket. It returns the message (MSG_OK), with the fds that came with it
 * in fds[*nfds] (fds holds WIRE_MAX_FDS): the caller's from then on. With
 * fds or nfds NULL, fds that come are closed and the message is refused
 * as malformed. NULL otherwise, with every fd that came closed and f
 * saying why: MSG_NONE, nothing queued; MSG_CLOSED, the peer closed
 * (error 0) or reset (ECONNRESET); MSG_BAD, f->code is the error code to
 * answer with and f->err the reason, f->error the errno when the receive
 * itself failed (0 when what came was not a valid message).
 * msg_recv_lossy is msg_recv but for a message whose fds did not all
 * arrive (more than WIRE_MAX_FDS, or our fd table full): returned without
 * any, f->fds_lost 1, so that its sender can be answered.
 *
 * msg_expect waits at most wait_ms for a message of type want and
 * receives it as msg_recv does. Besides msg_recv's failures: MSG_TIMEOUT,
 * nothing in time; MSG_REFUSED, an "error" came (f->code and f->err are
 * the peer's); MSG_UNEXPECTED, another type came (f->err names it). A
 * read that shows ECONNRESET is tried once more: a peer that closed with
 * something of ours unread may have queued its answer first
 * (PROTOCOL.md 2.8).
 */
json_t		*msg_recv(int, int *, size_t *, struct msg_fail *);
json_t		*msg_recv_lossy(int, int *, size_t *, struct msg_fail *);
json_t		*msg_expect(int, const char *, int, int *, size_t *,
		    struct msg_fail *);
/* Does msg's "extensions" array name ext? */
int		 msg_has_extension(const json_t *, const char *);

#endif
