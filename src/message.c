/*
 * message: build, encode, send and receive protocol v1 messages, and
 * measure them: what a message will take is counted here, next to the
 * encoder, never by hand elsewhere.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "b64.h"
#include "jtext.h"
#include "message.h"
#include "wire.h"

/* Where messages are received, one a thread and kept: allocating and
 * freeing 64 KiB a message made malloc consolidate its free lists each
 * time (a tenth of a successor's time taking 10000 connections). Only
 * msg_recv uses it, and nothing it calls receives. */
static _Thread_local char	*recv_buf;

json_t *
msg_new(const char *type)
{
	return json_pack("{s:s, s:i}", "type", type, "proto", MSG_PROTO);
}

json_t *
msg_error(const char *code, const char *fmt, ...)
{
	json_t	*o;
	va_list	 ap;
	char	 text[MSG_TEXT_MAX];

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if ((o = msg_new("error")) == NULL)
		return NULL;
	if (json_object_set_new(o, "code", json_string(code)) == -1 ||
	    json_object_set_new(o, "message", json_string(text)) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* A new "superseded" from us (6.7): pid by serves now (0: we stop), keep
 * older generations may drain on; NULL when out of memory. */
json_t *
msg_superseded(pid_t by, unsigned keep, unsigned max)
{
	json_t	*m;

	m = msg_new("superseded");
	if (m != NULL && (json_object_set_new(m, "pid",
	    json_integer(getpid())) == -1 || json_object_set_new(m, "by",
	    json_integer(by)) == -1 || json_object_set_new(m, "keep",
	    json_integer(keep)) == -1 || json_object_set_new(m,
	    "max_draining", json_integer(max)) == -1)) {
		json_decref(m);
		m = NULL;
	}
	return m;
}

char *
msg_encode(const json_t *o, size_t *len)
{
	char	*s;

	s = json_dumps(o, JSON_COMPACT);
	if (s == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	*len = strlen(s);
	if (*len > WIRE_MAX_MSG) {
		free(s);
		errno = EMSGSIZE;
		return NULL;
	}
	return s;
}

/*
 * The "fds" message written as text. Building 7 JSON values a row and
 * dumping them cost an incumbent about 1.5 us a row, 15 ms at 10000
 * listeners, on every takeover.
 */
/* A value of column c: a string, NULL for null; "true" or "false" for
 * the boolean column. */
static void
put_cell(struct jtext *o, enum msg_column k, const char *v)
{
	if (v == NULL)
		jtext_put(o, "null", 4);
	else if (k == MSG_COL_LISTENING)
		jtext_put(o, v, strlen(v));
	else
		jtext_string(o, v);
}

static int
same_cell(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The start of an "fds" message, up to its columns; its length. */
static size_t
fds_head(char *buf, size_t len, size_t batch)
{
	int	n;

	n = snprintf(buf, len, "{\"type\":\"fds\",\"proto\":%d,\"batch\":"
	    "%zu,\"listeners\":{", MSG_PROTO, batch);
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

char *
msg_encode_fds(size_t batch, const char *const *cells, size_t rows,
    size_t *len)
{
	struct jtext	 o;
	const char	*const *row0 = cells;
	char		 head[96], *p;
	size_t		 i, k;

	if (jtext_begin(&o, WIRE_MAX_MSG) == -1)
		return NULL;
	if (rows == 0)
		o.bad = EINVAL;
	jtext_put(&o, head, fds_head(head, sizeof(head), batch));
	for (k = 0; k < MSG_NCOLUMNS; k++) {
		jtext_put(&o, k == 0 ? "\"" : ",\"", k == 0 ? 1 : 2);
		jtext_put(&o, msg_column(k), strlen(msg_column(k)));
		jtext_put(&o, "\":", 2);
		/* A column with the same value in every row is that value. */
		for (i = 1; k != MSG_COL_NAME && i < rows; i++)
			if (!same_cell(row0[k], cells[i * MSG_NCOLUMNS + k]))
				break;
		if (k != MSG_COL_NAME && i == rows) {
			put_cell(&o, k, row0[k]);
			continue;
		}
		for (i = 0; i < rows; i++) {
			jtext_put(&o, i == 0 ? "[" : ",", 1);
			put_cell(&o, k, cells[i * MSG_NCOLUMNS + k]);
		}
		jtext_put(&o, "]", 1);
	}
	jtext_put(&o, "}}", 2);
	if ((p = jtext_end(&o, len)) == NULL)
		return NULL;
	return realloc(p, *len + 1) ?: p;
}

/* Bytes of s once encoded as a JSON string body (jansson's escapes). */
size_t
msg_escaped_len(const char *s)
{
	size_t	n = 0;

	for (; *s != '\0'; s++) {
		/* jansson escapes '/' only with JSON_ESCAPE_SLASH. */
		if (*s == '"' || *s == '\\' || *s == '\b' || *s == '\f' ||
		    *s == '\n' || *s == '\r' || *s == '\t')
			n += 2;
		else if ((unsigned char)*s < 0x20)
			n += 6;
		else
			n++;
	}
	return n;
}

const char *
msg_type(const json_t *o)
{
	return json_string_value(json_object_get(o, "type"));
}

/*
 * Sends msg (taken, even on failure) on a non-blocking socket, waiting
 * at most wait_ms for room if it is full. 0, or -1 with errno.
 */
int
msg_send(int sock, json_t *msg, int wait_ms)
{
	char	*buf;
	size_t	 len;
	int	 r = -1, save_errno;

	if (msg == NULL || (buf = msg_encode(msg, &len)) == NULL) {
		json_decref(msg);
		errno = ENOMEM;
		return -1;
	}
	r = msg_send_text(sock, buf, len, wait_ms);
	save_errno = errno;
	free(buf);
	json_decref(msg);
	errno = save_errno;
	return r;
}

/* The same for a message already encoded (buf is the caller's). */
int
msg_send_text(int sock, const char *buf, size_t len, int wait_ms)
{
	int	r;

	while ((r = wire_send(sock, buf, len, NULL, 0)) == -1 &&
	    errno == EAGAIN && wire_wait(sock, POLLOUT, wait_ms) == 0)
		;
	return r;
}

/*
 * The "conns" messages (4.13, 4.14) written as text, as "fds" is: an
 * entry built with json_pack, measured with json_dumpb and dumped again
 * in its message took a third of a draining incumbent's time at 10000
 * connections.
 */

/*
 * One connection's values as JSON text (its row of a "conns" message), in
 * one new block: 0, or -1 with errno (EINVAL: a string that is not UTF-8;
 * ENOMEM). inode is the fd's st_ino; data is written in base64; state is
 * the compact text of an object, or NULL.
 */
int
msg_conn_cells(struct msg_conn *c, long long id, long long inode,
    const char *listener, const char *peer, const char *local,
    const void *data, size_t dlen, const char *state)
{
	struct jtext	o;
	size_t		at[MSG_NCONNCOLS + 1], k;

	/* Two integers of 20 bytes at most; every byte of a string
	 * escaped as \u00XX at most. */
	if (jtext_begin(&o, 48 + 6 * (strlen(listener) + strlen(peer) +
	    strlen(local)) + B64_LEN(dlen) + (state != NULL ? strlen(state) :
	    4) + 8) == -1)
		return -1;
	at[MSG_CC_ID] = 0;
	jtext_int(&o, id);
	at[MSG_CC_INODE] = o.len;
	jtext_int(&o, inode);
	at[MSG_CC_LISTENER] = o.len;
	jtext_string(&o, listener);
	at[MSG_CC_PEER] = o.len;
	jtext_string(&o, peer);
	at[MSG_CC_LOCAL] = o.len;
	jtext_string(&o, local);
	at[MSG_CC_DATA] = o.len;
	jtext_put(&o, "\"", 1);
	if (o.bad == 0 && B64_LEN(dlen) <= o.cap - o.len)
		o.len += b64_write(data, dlen, o.p + o.len);
	jtext_put(&o, "\"", 1);
	at[MSG_CC_STATE] = o.len;
	if (state != NULL)
		jtext_put(&o, state, strlen(state));
	else
		jtext_put(&o, "null", 4);
	at[MSG_NCONNCOLS] = o.len;
	if (o.bad != 0) {
		free(o.p);
		errno = o.bad;
		return -1;
	}
	c->block = o.p;
	for (k = 0; k < MSG_NCONNCOLS; k++) {
		c->cell[k] = o.p + at[k];
		c->len[k] = at[k + 1] - at[k];
	}
	return 0;
}

/* At most the bytes a connection adds to a "conns" message: a value and
 * a comma in every column (a column with one value for all takes less). */
size_t
msg_conn_row_len(const struct msg_conn *c)
{
	size_t	k, n = 0;

	for (k = 0; k < MSG_NCONNCOLS; k++)
		n += c->len[k] + 1;
	return n;
}

static int
same_conn_cell(const struct msg_conn *a, const struct msg_conn *b, size_t k)
{
	return a->len[k] == b->len[k] && memcmp(a->cell[k], b->cell[k],
	    a->len[k]) == 0;
}

/*
 * A "conns" message from pid with n connections, in buf (WIRE_MAX_MSG
 * bytes and a NUL, the caller's: a sender keeps one): its length, or 0
 * with errno EMSGSIZE past WIRE_MAX_MSG. A column with the same value in
 * every row is that value, but "id"; "state" is left out when none has
 * one.
 */
size_t
msg_encode_conns(char *buf, long pid, const struct msg_conn *const *row,
    size_t n)
{
	struct jtext	o;
	char		head[96];
	size_t		i, k;
	int		hl;

	jtext_use(&o, buf, WIRE_MAX_MSG);
	hl = snprintf(head, sizeof(head), "{\"type\":\"conns\",\"proto\":%d,"
	    "\"pid\":%ld,\"conns\":{", MSG_PROTO, pid);
	jtext_put(&o, head, (size_t)hl);
	for (k = 0; k < MSG_NCONNCOLS && n > 0; k++) {
		for (i = 1; i < n; i++)
			if (!same_conn_cell(row[0], row[i], k))
				break;
		if (k == MSG_CC_STATE && i == n && row[0]->len[k] == 4 &&
		    memcmp(row[0]->cell[k], "null", 4) == 0)
			continue;
		jtext_put(&o, k == 0 ? "\"" : ",\"", k == 0 ? 1 : 2);
		jtext_put(&o, msg_conn_column(k), strlen(msg_conn_column(k)));
		jtext_put(&o, "\":", 2);
		if (k != MSG_CC_ID && i == n) {
			jtext_put(&o, row[0]->cell[k], row[0]->len[k]);
			continue;
		}
		for (i = 0; i < n; i++) {
			jtext_put(&o, i == 0 ? "[" : ",", 1);
			jtext_put(&o, row[i]->cell[k], row[i]->len[k]);
		}
		jtext_put(&o, "]", 1);
	}
	jtext_put(&o, "}}", 2);
	if (o.bad != 0 || n == 0) {
		errno = o.bad != 0 ? o.bad : EINVAL;
		return 0;
	}
	buf[o.len] = '\0';
	return o.len;
}

static void
put_ids(struct jtext *o, const char *key, const long long *id, size_t n)
{
	size_t	i;

	jtext_put(o, key, strlen(key));
	for (i = 0; i < n; i++) {
		if (i > 0)
			jtext_put(o, ",", 1);
		jtext_int(o, id[i]);
	}
	jtext_put(o, "]", 1);
}

/* A "conns_taken" message from pid: a new string of *len bytes, or NULL
 * with errno. */
char *
msg_encode_conns_taken(long pid, const long long *taken, size_t nt,
    const long long *refused, size_t nr, size_t *len)
{
	struct jtext	o;
	char		head[96];
	int		hl;

	hl = snprintf(head, sizeof(head), "{\"type\":\"conns_taken\","
	    "\"proto\":%d,\"pid\":%ld", MSG_PROTO, pid);
	if (jtext_begin(&o, (size_t)hl + 24 * (nt + nr) + 32) == -1)
		return NULL;
	jtext_put(&o, head, (size_t)hl);
	put_ids(&o, ",\"taken\":[", taken, nt);
	put_ids(&o, ",\"refused\":[", refused, nr);
	jtext_put(&o, "}", 1);
	return jtext_end(&o, len);
}

/* Bytes of one value of column k once encoded (put_cell). */
static size_t
cell_len(enum msg_column k, const char *v)
{
	if (v == NULL)
		return 4;			/* null */
	if (k == MSG_COL_LISTENING)
		return strlen(v);		/* true or false */
	return 2 + msg_escaped_len(v);		/* quoted */
}

/*
 * Bytes of an "fds" message of batch number `batch` without its rows:
 * what msg_encode_fds writes around the values, every column an array.
 */
size_t
msg_fds_frame_len(size_t batch)
{
	char	head[96];
	size_t	k, n;

	n = fds_head(head, sizeof(head), batch);
	for (k = 0; k < MSG_NCOLUMNS; k++)	/* ,"key":[] */
		n += (k > 0) + strlen(msg_column(k)) + 3 + 2;
	return n + 2;				/* }} */
}

/* At most the bytes row adds to an "fds" message: a value and a comma
 * in every column (a column with one value for all takes less). */
size_t
msg_fds_row_len(const char *const row[MSG_NCOLUMNS])
{
	size_t	k, n = 0;

	for (k = 0; k < MSG_NCOLUMNS; k++)
		n += 1 + cell_len(k, row[k]);
	return n;
}

/* The listener entry of row (status reports): one object, no spec key
 * when it has none. */
json_t *
msg_entry(const char *const row[MSG_NCOLUMNS])
{
	json_t	*e;
	size_t	 k;

	if ((e = json_object()) == NULL)
		return NULL;
	for (k = 0; k < MSG_NCOLUMNS; k++) {
		if (row[k] == NULL && k == MSG_COL_SPEC)
			continue;
		if (json_object_set_new(e, msg_column(k),
		    k == MSG_COL_LISTENING ? json_boolean(strcmp(row[k],
		    "true") == 0) : json_string(row[k])) == -1) {
			json_decref(e);
			return NULL;
		}
	}
	return e;
}

/* Bytes of msg_entry(row) once encoded, without encoding it. */
size_t
msg_entry_len(const char *const row[MSG_NCOLUMNS])
{
	size_t	k, n = 2;				/* {} */

	for (k = 0; k < MSG_NCOLUMNS; k++) {
		if (row[k] == NULL && k == MSG_COL_SPEC)
			continue;
		/* ,"key":value */
		n += (k > 0) + strlen(msg_column(k)) + 3 + cell_len(k, row[k]);
	}
	return n;
}

/* Bytes s adds to an array of strings: quoted, and a comma. */
size_t
msg_list_item_len(const char *s)
{
	return 2 + msg_escaped_len(s) + 1;
}

/* The rest of msg_recv, once wire_recv returned n with got[ngot]. */
static json_t *
msg_recv_parse(const char *buf, ssize_t n, int *got, size_t ngot, int *fds,
    size_t *nfds, struct msg_fail *f)
{
	json_t		*msg;
	const char	*code;

	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		f->why = MSG_NONE;
		return NULL;
	}
	if (n == 0 || (n == -1 && errno == ECONNRESET)) {
		f->why = MSG_CLOSED;
		f->error = n == 0 ? 0 : errno;
		snprintf(f->err, sizeof(f->err), "%s", n == 0 ?
		    "closed the connection" : strerror(errno));
		return NULL;
	}
	if (n == -1) {
		/* wire_recv has closed whatever fds came with it. */
		f->error = errno;
		if (errno == EMSGSIZE)
			snprintf(f->err, sizeof(f->err), "receive failed: "
			    "message over %d bytes", WIRE_MAX_MSG);
		else if (errno == ETOOMANYREFS)
			snprintf(f->err, sizeof(f->err), "receive failed: %s",
			    MSG_FDS_LOST);
		else
			snprintf(f->err, sizeof(f->err), "receive failed: %s",
			    errno == EBADMSG ? "empty message carrying fds" :
			    strerror(errno));
		return NULL;
	}
	if (ngot > 0 && (fds == NULL || nfds == NULL)) {
		wire_close_fds(got, ngot);
		snprintf(f->err, sizeof(f->err), "%zu unsolicited fd%s closed",
		    ngot, ngot == 1 ? "" : "s");
		return NULL;
	}
	if ((msg = msg_parse_code(buf, (size_t)n, &code, f->err,
	    sizeof(f->err))) == NULL) {
		wire_close_fds(got, ngot);
		snprintf(f->code, sizeof(f->code), "%s", code);
		return NULL;
	}
	if (ngot > 0) {
		memcpy(fds, got, ngot * sizeof(*got));
		*nfds = ngot;
	}
	f->why = MSG_OK;
	return msg;
}

/* msg_recv and msg_recv_lossy. The buffer is the thread's own
 * (recv_buf): handles may live in threads of their own. */
static json_t *
recv_one(int sock, int *fds, size_t *nfds, struct msg_fail *f, int lossy)
{
	int		 got[WIRE_MAX_FDS], lost;
	size_t		 ngot;
	ssize_t		 n;
	json_t		*msg;
	char		*buf;

	f->why = MSG_BAD;
	f->fds_lost = 0;
	f->error = 0;
	f->err[0] = '\0';
	snprintf(f->code, sizeof(f->code), "%s", MSG_E_MALFORMED);
	if (nfds != NULL)
		*nfds = 0;
	if ((buf = recv_buf) == NULL &&
	    (buf = recv_buf = malloc(WIRE_MAX_MSG)) == NULL) {
		f->error = ENOMEM;
		snprintf(f->err, sizeof(f->err), "receive failed: %s",
		    strerror(ENOMEM));
		return NULL;
	}
	n = wire_recv_lossy(sock, buf, WIRE_MAX_MSG, got, WIRE_MAX_FDS, &ngot,
	    &lost);
	if (lost && !lossy) {
		n = -1;
		errno = ETOOMANYREFS;
	}
	if ((msg = msg_recv_parse(buf, n, got, ngot, fds, nfds, f)) != NULL)
		f->fds_lost = lost;
	return msg;
}

/* See message.h. */
json_t *
msg_recv(int sock, int *fds, size_t *nfds, struct msg_fail *f)
{
	return recv_one(sock, fds, nfds, f, 0);
}

/* See message.h. */
json_t *
msg_recv_lossy(int sock, int *fds, size_t *nfds, struct msg_fail *f)
{
	return recv_one(sock, fds, nfds, f, 1);
}

/* See message.h. */
json_t *
msg_expect(int sock, const char *want, int wait_ms, int *fds, size_t *nfds,
    struct msg_fail *f)
{
	json_t		*msg;
	const char	*type;

	if (nfds != NULL)
		*nfds = 0;
	if (wire_wait(sock, POLLIN, wait_ms) == -1) {
		f->why = MSG_TIMEOUT;
		f->code[0] = '\0';
		snprintf(f->err, sizeof(f->err), "nothing within %d ms",
		    wait_ms);
		return NULL;
	}
	msg = msg_recv(sock, fds, nfds, f);
	if (msg == NULL && f->why == MSG_CLOSED && f->error == ECONNRESET)
		msg = msg_recv(sock, fds, nfds, f);

	if (msg == NULL && f->why == MSG_NONE) {
		/* Readable, yet nothing queued: as a reset. */
		f->why = MSG_CLOSED;
		f->error = ECONNRESET;
		snprintf(f->err, sizeof(f->err), "%s", strerror(ECONNRESET));
	}
	if (msg == NULL)
		return NULL;
	type = msg_type(msg);
	if (strcmp(type, "error") == 0) {
		f->why = MSG_REFUSED;
		snprintf(f->code, sizeof(f->code), "%s", json_string_value(
		    json_object_get(msg, "code")));
		snprintf(f->err, sizeof(f->err), "%s", json_string_value(
		    json_object_get(msg, "message")));
	} else if (strcmp(type, want) != 0) {
		f->why = MSG_UNEXPECTED;
		f->code[0] = '\0';
		snprintf(f->err, sizeof(f->err), "%s", type);
	} else
		return msg;
	if (nfds != NULL) {
		wire_close_fds(fds, *nfds);
		*nfds = 0;
	}
	json_decref(msg);
	return NULL;
}

int
msg_has_extension(const json_t *msg, const char *ext)
{
	json_t	*v;
	size_t	 i;

	json_array_foreach(json_object_get(msg, "extensions"), i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), ext) == 0)
			return 1;
	return 0;
}
