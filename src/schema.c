/*
 * schema: parse and validate protocol v1 messages. Validation errors name
 * the message type and the field, so a log line or an "error" reply tells
 * the peer exactly what was wrong.
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "field.h"
#include "message.h"
#include "wire.h"

typedef int (*msg_check_fn)(const json_t *, const char *, char *, size_t);

static int	check_none(const json_t *, const char *, char *, size_t);
static int	check_hello(const json_t *, const char *, char *, size_t);
static int	check_offer(const json_t *, const char *, char *, size_t);
static int	check_fds(const json_t *, const char *, char *, size_t);
static int	check_ready(const json_t *, const char *, char *, size_t);
static int	check_released(const json_t *, const char *, char *, size_t);
static int	check_progress(const json_t *, const char *, char *, size_t);
static int	check_report(const json_t *, const char *, char *, size_t);
static int	check_error(const json_t *, const char *, char *, size_t);
static int	check_superseded(const json_t *, const char *, char *, size_t);
static int	check_takeover(const json_t *, const char *, char *, size_t);
static int	check_predecessors(const json_t *, const char *, char *,
		    size_t);
static int	check_datagram(const json_t *, const char *, char *, size_t);
static int	check_conns(const json_t *, const char *, char *, size_t);
static int	check_conns_taken(const json_t *, const char *, char *,
		    size_t);

static const struct {
	const char	*type;
	msg_check_fn	 check;
} msg_types[] = {
	{ "hello",	check_hello },
	{ "offer",	check_offer },
	{ "fds",	check_fds },
	{ "ready",	check_ready },
	{ "released",	check_released },
	{ "hammer",	check_none },
	{ "status",	check_none },
	{ "report",	check_report },
	{ "stop",	check_none },
	{ "stopping",	check_released },
	{ "progress",	check_progress },
	{ "error",	check_error },
	{ "superseded",	check_superseded },
	{ "takeover",	check_takeover },
	{ "predecessors", check_predecessors },
	{ "datagram",	check_datagram },
	{ "conns",	check_conns },
	{ "conns_taken", check_conns_taken },
};

/* At most len - 1 bytes of s, cut at a UTF-8 character boundary. */
static void
utf8_prefix(const char *s, char *out, size_t len)
{
	size_t	n = strlen(s);

	if (n >= len) {
		n = len - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(out, s, n);
	out[n] = '\0';
}

/*
 * jansson quotes the offending token in its error text, cut anywhere, even
 * inside a UTF-8 character, which no "error" reply can carry (json_string
 * wants UTF-8): its bytes beyond ASCII become '?'.
 */
static void
ascii_only(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s > 0x7e)
			*s = '?';
}


static int
check_none(const json_t *o, const char *t, char *err, size_t len)
{
	return 0;
}

static int
check_hello(const json_t *o, const char *t, char *err, size_t len)
{
	if (field_int(o, t, "pid", 1, INT32_MAX, err, len) == -1 ||
	    field_str(o, t, "tag", MSG_NAME_MAX * 4, 1, err, len) == -1 ||
	    field_int(o, t, "max_fds", 0, INT32_MAX, err, len) == -1)
		return -1;
	return 0;
}

static int
check_offer(const json_t *o, const char *t, char *err, size_t len)
{
	json_t	*state;

	if (field_int(o, t, "pid", 1, INT32_MAX, err, len) == -1 ||
	    field_int(o, t, "generation", 1, INT32_MAX, err, len) == -1 ||
	    field_str(o, t, "tag", MSG_NAME_MAX * 4, 0, err, len) == -1 ||
	    field_int(o, t, "count", 0, INT32_MAX, err, len) == -1 ||
	    field_int(o, t, "batches", 0, INT32_MAX, err, len) == -1)
		return -1;
	state = json_object_get(o, "state");
	if (state == NULL || !(json_is_object(state) || json_is_null(state)))
		return field_fail(err, len, "%s: field \"state\" must be an object "
		    "or null", t);
	return 0;
}

static const char *const kinds[] = { "tcp", "udp", "unix", "fd", NULL };
static const char *const families[] = { "inet", "inet6", "unix", "other",
    NULL };
static const char *const socktypes[] = { "stream", "dgram", "seqpacket",
    "other", NULL };

int
msg_entry_check(const json_t *e, char *err, size_t len)
{
	const char	*t = "listener";

	if (!json_is_object(e))
		return field_fail(err, len, "listener entry is not an object");
	if (field_str(e, t, "name", MSG_NAME_MAX, 0, err, len) == -1)
		return -1;
	if (!msg_name_valid(json_string_value(json_object_get(e, "name"))))
		return field_fail(err, len, "listener: name \"%s\" is not 1 to %d of "
		    "A-Z a-z 0-9 _ . : @ -",
		    json_string_value(json_object_get(e, "name")),
		    MSG_NAME_MAX);
	if (field_enum(e, t, "kind", kinds, err, len) == -1 ||
	    field_enum(e, t, "family", families, err, len) == -1 ||
	    field_enum(e, t, "socktype", socktypes, err, len) == -1 ||
	    field_str(e, t, "address", MSG_ADDR_MAX, 0, err, len) == -1 ||
	    field_bool(e, t, "listening", err, len) == -1 ||
	    field_str(e, t, "spec", MSG_ADDR_MAX + 16, 1, err, len) == -1)
		return -1;
	return 0;
}

/*
 * The listeners of an "fds" message and the connections of "conns" are
 * tables in columns, one per field of an entry, each with one value per
 * attached fd: one array of 252 strings decodes much faster than 252
 * objects.
 */
struct column {
	const char		*key;
	const char *const	*values;	/* COL_ENUM */
	size_t			 max;		/* COL_STRING, COL_B64 */
	enum { COL_NAME, COL_ENUM, COL_STRING, COL_BOOL, COL_ID, COL_INODE,
	    COL_B64, COL_OBJECT } type;
	int			 nullable;
	int			 optional;	/* the column may be left out */
};

static const struct column fds_columns[MSG_NCOLUMNS] = {
	[MSG_COL_NAME] =	{ "name",	NULL,	   0, COL_NAME,	  0, 0 },
	[MSG_COL_KIND] =	{ "kind",	kinds,	   0, COL_ENUM,	  0, 0 },
	[MSG_COL_FAMILY] =	{ "family",	families,  0, COL_ENUM,	  0, 0 },
	[MSG_COL_SOCKTYPE] =	{ "socktype",	socktypes, 0, COL_ENUM,	  0, 0 },
	[MSG_COL_ADDRESS] =	{ "address",	NULL,	   MSG_ADDR_MAX,
	    COL_STRING, 0, 0 },
	[MSG_COL_LISTENING] =	{ "listening",	NULL,	   0, COL_BOOL,	  0, 0 },
	[MSG_COL_SPEC] =	{ "spec",	NULL,	   MSG_ADDR_MAX + 16,
	    COL_STRING, 1, 0 },
};

static const struct column conns_columns[MSG_NCONNCOLS] = {
	[MSG_CC_ID] =		{ "id",		NULL,	   0, COL_ID,	  0, 0 },
	[MSG_CC_INODE] =	{ "inode",	NULL,	   0, COL_INODE,  0, 1 },
	[MSG_CC_LISTENER] =	{ "listener",	NULL,	   0, COL_NAME,	  0, 0 },
	[MSG_CC_PEER] =		{ "peer",	NULL,	   MSG_ADDR_MAX,
	    COL_STRING, 0, 0 },
	[MSG_CC_LOCAL] =	{ "local",	NULL,	   MSG_ADDR_MAX,
	    COL_STRING, 0, 0 },
	[MSG_CC_DATA] =		{ "data",	NULL,
	    B64_LEN(MSG_CONN_DATA_MAX), COL_B64, 0, 0 },
	[MSG_CC_STATE] =	{ "state",	NULL,	   0, COL_OBJECT, 1, 1 },
};

const char *
msg_column(enum msg_column c)
{
	return fds_columns[c].key;
}

const char *
msg_conn_column(enum msg_conn_column c)
{
	return conns_columns[c].key;
}

/* Is v a value of column c? */
static int
cell_ok(const struct column *c, const json_t *v)
{
	if (c->nullable && json_is_null(v))
		return 1;
	switch (c->type) {
	case COL_BOOL:
		return json_is_boolean(v);
	case COL_STRING:
		return field_str_ok(v, c->max);
	case COL_ENUM:
		return field_str_ok(v, MSG_NAME_MAX) && field_enum_ok(v, c->values);
	case COL_NAME:
		return field_str_ok(v, MSG_NAME_MAX) &&
		    msg_name_valid(json_string_value(v));
	case COL_ID:
		return json_is_integer(v) && json_integer_value(v) >= 1 &&
		    json_integer_value(v) <= INT64_MAX / 2;
	case COL_INODE:
		return json_is_integer(v) && json_integer_value(v) >= 1;
	case COL_B64:
		return field_str_ok(v, c->max) && b64_decode(
		    json_string_value(v), NULL, MSG_CONN_DATA_MAX) != -1;
	case COL_OBJECT:
		return json_is_object(v);
	}
	return 0;
}

/* A value of column c of table what: row i, or the column's one value if
 * i is -1. */
static int
check_cell(const char *what, const struct column *c, const json_t *v,
    long i, char *err, size_t len)
{
	char	at[32];

	if (cell_ok(c, v))
		return 0;
	if (i >= 0)
		snprintf(at, sizeof(at), "[%ld]", i);
	else
		at[0] = '\0';
	switch (c->type) {
	case COL_BOOL:
		return field_fail(err, len, "%s: %s%s must be true or false",
		    what, c->key, at);
	case COL_STRING:
		return field_fail(err, len, "%s: %s%s must be a string of at "
		    "most %zu bytes%s", what, c->key, at, c->max,
		    c->nullable ? " or null" : "");
	case COL_ENUM:
		/* Each enumeration has four values. */
		return field_fail(err, len, "%s: %s%s must be one of %s %s %s "
		    "%s", what, c->key, at, c->values[0], c->values[1],
		    c->values[2], c->values[3]);
	case COL_ID:
		return field_fail(err, len, "%s: %s%s must be an integer from "
		    "1 to %lld", what, c->key, at, (long long)(INT64_MAX / 2));
	case COL_INODE:
		return field_fail(err, len, "%s: %s%s must be a positive "
		    "integer", what, c->key, at);
	case COL_B64:
		return field_fail(err, len, "%s: %s%s is not base64 of at most "
		    "%d bytes", what, c->key, at, MSG_CONN_DATA_MAX);
	case COL_OBJECT:
		return field_fail(err, len, "%s: %s%s must be an object%s",
		    what, c->key, at, c->nullable ? " or null" : "");
	case COL_NAME:
		break;
	}
	return field_fail(err, len, "%s: %s%s is not 1 to %d of A-Z a-z 0-9 _ "
	    ". : @ -", what, c->key, at, MSG_NAME_MAX);
}

/*
 * A table of columns (tab, named what in errors): each column an array
 * of one value per row, the first (which counts the rows) of at most
 * WIRE_MAX_FDS, or, but for the first, one value (not an array) that
 * holds for every row; an optional column may be left out.
 */
static int
check_columns(const json_t *tab, const char *what,
    const struct column *cols, size_t ncols, char *err, size_t len)
{
	const struct column	*c;
	json_t			*col, *v;
	size_t			 i, k, n = 0;

	for (k = 0; k < ncols; k++) {
		c = &cols[k];
		col = json_object_get(tab, c->key);
		if (col == NULL && c->optional)
			continue;
		if (col != NULL && !json_is_array(col) && k > 0) {
			if (check_cell(what, c, col, -1, err, len) == -1)
				return -1;
			continue;
		}
		if (!json_is_array(col) || json_array_size(col) > WIRE_MAX_FDS)
			return field_fail(err, len, "%s: column \"%s\" must be "
			    "an array of at most %d values%s", what, c->key,
			    WIRE_MAX_FDS, k > 0 ? ", or one value" : "");
		if (k == 0)
			n = json_array_size(col);
		else if (json_array_size(col) != n)
			return field_fail(err, len, "%s: column \"%s\" has %zu "
			    "values, column \"%s\" %zu", what, c->key,
			    json_array_size(col), cols[0].key, n);
		json_array_foreach(col, i, v) {
			if (check_cell(what, c, v, (long)i, err, len) == -1)
				return -1;
		}
	}
	return 0;
}

static int
check_fds(const json_t *o, const char *t, char *err, size_t len)
{
	json_t	*list;

	if (field_int(o, t, "batch", 0, INT32_MAX, err, len) == -1)
		return -1;
	list = json_object_get(o, "listeners");
	if (!json_is_object(list))
		return field_fail(err, len, "%s: field \"listeners\" must be an "
		    "object of columns", t);
	return check_columns(list, "fds: listeners", fds_columns,
	    MSG_NCOLUMNS, err, len);
}

static int
check_ready(const json_t *o, const char *t, char *err, size_t len)
{
	if (field_int(o, t, "pid", 1, INT32_MAX, err, len) == -1 ||
	    field_names(o, t, "adopted", err, len) == -1 ||
	    field_names(o, t, "added", err, len) == -1 ||
	    field_names(o, t, "retired", err, len) == -1 ||
	    field_opt_int(o, t, "max_draining", 0, INT32_MAX, err, len) == -1)
		return -1;
	return 0;
}

static int
check_released(const json_t *o, const char *t, char *err, size_t len)
{
	if (field_int(o, t, "pid", 1, INT32_MAX, err, len) == -1 ||
	    field_int(o, t, "connections", 0, INT32_MAX, err, len) == -1 ||
	    field_int(o, t, "deadline_ms", 0, INT32_MAX, err, len) == -1)
		return -1;
	return 0;
}

/* A draining generation: {pid, connections, remaining_ms[, generation,
 * tag]}. */
static int
check_drainer(const json_t *o, const char *t, char *err, size_t len)
{
	if (!json_is_object(o))
		return field_fail(err, len, "%s: a draining entry is not an object",
		    t);
	if (field_int(o, t, "pid", 1, INT32_MAX, err, len) == -1 ||
	    field_int(o, t, "connections", 0, INT32_MAX, err, len) == -1 ||
	    field_int(o, t, "remaining_ms", 0, INT32_MAX, err, len) == -1 ||
	    field_opt_int(o, t, "generation", 1, INT32_MAX, err, len) == -1 ||
	    field_str(o, t, "tag", MSG_NAME_MAX * 4, 1, err, len) == -1)
		return -1;
	return 0;
}

/* Optional "draining": the older generations still draining. */
static int
check_drainers(const json_t *o, const char *t, char *err, size_t len)
{
	json_t	*list = json_object_get(o, "draining"), *e;
	size_t	 i;

	if (list == NULL)
		return 0;
	if (!json_is_array(list) || json_array_size(list) > MSG_DRAINERS_MAX)
		return field_fail(err, len, "%s: field \"draining\" must be an "
		    "array of at most %d entries", t, MSG_DRAINERS_MAX);
	json_array_foreach(list, i, e)
		if (check_drainer(e, t, err, len) == -1)
			return -1;
	return 0;
}

static int
check_progress(const json_t *o, const char *t, char *err, size_t len)
{
	if (check_drainer(o, t, err, len) == -1)
		return -1;
	return check_drainers(o, t, err, len);
}

static int
check_report(const json_t *o, const char *t, char *err, size_t len)
{
	static const char *const states[] = { "starting", "serving",
	    "offering", "draining", "stopping", NULL };
	json_t	*list, *e;
	size_t	 i;
	char	 sub[256];

	if (field_int(o, t, "pid", 1, INT32_MAX, err, len) == -1 ||
	    field_int(o, t, "generation", 1, INT32_MAX, err, len) == -1 ||
	    field_str(o, t, "tag", MSG_NAME_MAX * 4, 0, err, len) == -1 ||
	    field_enum(o, t, "state", states, err, len) == -1 ||
	    field_int(o, t, "connections", 0, INT32_MAX, err, len) == -1)
		return -1;
	if (check_drainers(o, t, err, len) == -1)
		return -1;
	list = json_object_get(o, "listeners");
	if (!json_is_array(list))
		return field_fail(err, len, "%s: field \"listeners\" must be an "
		    "array", t);
	json_array_foreach(list, i, e) {
		if (msg_entry_check(e, sub, sizeof(sub)) == -1)
			return field_fail(err, len, "%s: listeners[%zu]: %s", t, i,
			    sub);
	}
	return 0;
}

static int
check_superseded(const json_t *o, const char *t, char *err, size_t len)
{
	if (field_int(o, t, "pid", 1, INT32_MAX, err, len) == -1 ||
	    field_int(o, t, "by", 0, INT32_MAX, err, len) == -1 ||
	    field_int(o, t, "keep", 0, INT32_MAX, err, len) == -1 ||
	    field_opt_int(o, t, "max_draining", 0, INT32_MAX, err, len) == -1)
		return -1;
	return 0;
}

static int
check_takeover(const json_t *o, const char *t, char *err, size_t len)
{
	if (field_int(o, t, "pid", 1, INT32_MAX, err, len) == -1 ||
	    field_int(o, t, "by", 0, INT32_MAX, err, len) == -1)
		return -1;
	return 0;
}

static int
check_predecessors(const json_t *o, const char *t, char *err, size_t len)
{
	return field_int(o, t, "pid", 1, INT32_MAX, err, len);
}

static int
check_error(const json_t *o, const char *t, char *err, size_t len)
{
	if (field_str(o, t, "code", MSG_NAME_MAX, 0, err, len) == -1 ||
	    field_str(o, t, "message", MSG_TEXT_MAX, 0, err, len) == -1)
		return -1;
	return 0;
}

/*
 * Parses one message. On failure *code (if not NULL) is the error code to
 * answer with: version, unknown-type or malformed.
 */
json_t *
msg_parse_code(const char *buf, size_t len, const char **code, char *err,
    size_t errlen)
{
	json_error_t	 jerr;
	json_t		*o = NULL, *v;
	const char	*bad_code = MSG_E_MALFORMED;
	char		 short_type[MSG_NAME_MAX + 1];
	const char	*type;
	size_t		 i;

	if (len > WIRE_MAX_MSG) {
		field_fail(err, errlen, "message of %zu bytes is over the limit of "
		    "%d", len, WIRE_MAX_MSG);
		goto bad;
	}
	o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL) {
		ascii_only(jerr.text);
		field_fail(err, errlen, "invalid JSON at byte %d: %s", jerr.position,
		    jerr.text);
		goto bad;
	}
	if (!json_is_object(o)) {
		field_fail(err, errlen, "message is not a JSON object");
		goto bad;
	}
	v = json_object_get(o, "type");
	if (!json_is_string(v)) {
		field_fail(err, errlen, "message has no \"type\" string");
		goto bad;
	}
	type = json_string_value(v);
	utf8_prefix(type, short_type, sizeof(short_type));
	v = json_object_get(o, "proto");
	if (!json_is_integer(v)) {
		field_fail(err, errlen, "%s: missing integer field \"proto\"",
		    short_type);
		goto bad;
	}
	if (json_integer_value(v) != MSG_PROTO) {
		bad_code = MSG_E_VERSION;
		field_fail(err, errlen, "protocol version %lld is not supported "
		    "(this side speaks %d)", (long long)json_integer_value(v),
		    MSG_PROTO);
		goto bad;
	}
	for (i = 0; i < sizeof(msg_types) / sizeof(msg_types[0]); i++) {
		if (strcmp(type, msg_types[i].type) != 0)
			continue;
		if (msg_types[i].check(o, msg_types[i].type, err, errlen) == -1)
			goto bad;
		return o;
	}
	bad_code = MSG_E_UNKNOWN;
	field_fail(err, errlen, "unknown message type \"%s\"", short_type);
bad:
	if (code != NULL)
		*code = bad_code;
	json_decref(o);
	return NULL;
}

json_t *
msg_parse(const char *buf, size_t len, char *err, size_t errlen)
{
	return msg_parse_code(buf, len, NULL, err, errlen);
}

static int
check_datagram(const json_t *o, const char *t, char *err, size_t len)
{
	const json_t	*v = json_object_get(o, "listener");

	if (field_int(o, t, "pid", 1, INT32_MAX, err, len) == -1 ||
	    field_str(o, t, "listener", MSG_NAME_MAX, 0, err, len) == -1)
		return -1;
	if (!msg_name_valid(json_string_value(v)))
		return field_fail(err, len, "%s: field \"listener\" is not a valid "
		    "listener name", t);
	if (field_str(o, t, "peer", MSG_ADDR_MAX, 0, err, len) == -1 ||
	    field_str(o, t, "data", B64_LEN(MSG_DATAGRAM_MAX), 0, err,
	    len) == -1)
		return -1;
	if (b64_decode(json_string_value(json_object_get(o, "data")),
	    NULL, MSG_DATAGRAM_MAX) == -1)
		return field_fail(err, len, "%s: field \"data\" is not base64 (RFC "
		    "4648, padded) of at most %d bytes", t, MSG_DATAGRAM_MAX);
	return 0;
}

static int
check_conns(const json_t *o, const char *t, char *err, size_t len)
{
	const json_t	*tab = json_object_get(o, "conns");

	if (field_int(o, t, "pid", 1, INT32_MAX, err, len) == -1)
		return -1;
	if (!json_is_object(tab))
		return field_fail(err, len, "%s: field \"conns\" must be an "
		    "object of columns", t);
	return check_columns(tab, "conns: conns", conns_columns,
	    MSG_NCONNCOLS, err, len);
}

/* An array of at most WIRE_MAX_FDS connection ids. */
static int
need_ids(const json_t *o, const char *t, const char *key, char *err,
    size_t len)
{
	const json_t	*v = json_object_get(o, key), *e;
	size_t		 i;

	if (!json_is_array(v) || json_array_size(v) > WIRE_MAX_FDS)
		return field_fail(err, len, "%s: field \"%s\" must be an array of at "
		    "most %d connection ids", t, key, WIRE_MAX_FDS);
	json_array_foreach(v, i, e)
		if (!json_is_integer(e) || json_integer_value(e) < 1 ||
		    json_integer_value(e) > INT64_MAX / 2)
			return field_fail(err, len, "%s: %s[%zu] is not a connection "
			    "id (an integer from 1 to %lld, as in conns)", t, key, i,
			    (long long)(INT64_MAX / 2));
	return 0;
}

static int
check_conns_taken(const json_t *o, const char *t, char *err, size_t len)
{
	if (field_int(o, t, "pid", 1, INT32_MAX, err, len) == -1 ||
	    need_ids(o, t, "taken", err, len) == -1 ||
	    need_ids(o, t, "refused", err, len) == -1)
		return -1;
	return 0;
}
