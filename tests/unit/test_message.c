/*
 * test_message: parsing and validation of protocol v1 messages. Every
 * rejection is checked against its exact text, since that text is what a
 * peer gets in an "error" reply and what an operator reads in the log.
 *
 * Tables write JSON and expected texts with ' for ", so they stay
 * readable; sq() turns them back.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "jtext.h"
#include "message.h"
#include "wire.h"
#include "unit.h"

#define ENTRY	"{'name':'http','kind':'tcp','family':'inet',"	\
		"'socktype':'stream','address':'127.0.0.1:8080',"	\
		"'listening':true,'spec':'tcp://127.0.0.1:8080'}"

#define HELLO	"{'type':'hello','proto':1,'pid':42,'tag':'v2','max_fds':252}"
#define OFFER	"{'type':'offer','proto':1,'pid':41,'generation':3,"	\
		"'tag':'v1','count':1,'batches':1,'state':{'k':1}}"
/* The same entry as the columns of an "fds" message. */
#define COLUMNS	"{'name':['http'],'kind':['tcp'],'family':['inet'],"	\
		"'socktype':['stream'],'address':['127.0.0.1:8080'],"	\
		"'listening':[true],'spec':['tcp://127.0.0.1:8080']}"
#define NO_ROWS	"{'name':[],'kind':[],'family':[],'socktype':[],"	\
		"'address':[],'listening':[],'spec':[]}"
#define FDS	"{'type':'fds','proto':1,'batch':0,'listeners':" COLUMNS "}"
#define READY	"{'type':'ready','proto':1,'pid':42,'adopted':['http'],"	\
		"'added':['admin'],'retired':[]}"
#define RELEASED "{'type':'released','proto':1,'pid':41,'connections':7,"	\
		"'deadline_ms':30000}"
#define REPORT	"{'type':'report','proto':1,'pid':41,'generation':3,"	\
		"'tag':'v1','state':'serving','connections':0,"		\
		"'listeners':[" ENTRY "]}"
#define STOPPING "{'type':'stopping','proto':1,'pid':41,'connections':0,"	\
		"'deadline_ms':0}"
#define ERROR	"{'type':'error','proto':1,'code':'busy',"		\
		"'message':'a takeover is already running'}"

/* Copies s with every ' turned into ". */
static const char *
sq(const char *s, char *out, size_t len)
{
	size_t	i;

	for (i = 0; s[i] != '\0' && i + 1 < len; i++)
		out[i] = s[i] == '\'' ? '"' : s[i];
	out[i] = '\0';
	return out;
}

static json_t *
load(const char *s)
{
	char	buf[4096];

	return json_loads(sq(s, buf, sizeof(buf)), JSON_DECODE_ANY, NULL);
}

/* Parses text; returns the error text, or "" if it parsed. */
static const char *
parse_err(const char *text, size_t len)
{
	static char	 err[1024];
	json_t		*o;

	memset(err, 'X', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	o = msg_parse(text, len, err, sizeof(err));
	if (o != NULL) {
		json_decref(o);
		return "";
	}
	return err;
}

/* Encodes o (taking the reference) and parses the encoding. */
static const char *
parse_obj_err(json_t *o)
{
	static char	 out[1024];
	const char	*r;
	char		*s;

	if (o == NULL)
		return "(test could not build the message)";
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		return "(test could not encode the message)";
	r = parse_err(s, strlen(s));
	snprintf(out, sizeof(out), "%s", r);
	free(s);
	return out;
}

static void
test_valid(void)
{
	static const struct {
		const char	*type, *json;
	} ok[] = {
		{ "hello", HELLO },
		{ "hello", "{'type':'hello','proto':1,'pid':1,'max_fds':0}" },
		{ "offer", OFFER },
		{ "offer", "{'type':'offer','proto':1,'pid':1,'generation':1,"
		    "'tag':'','count':0,'batches':0,'state':null}" },
		{ "fds", FDS },
		{ "fds", "{'type':'fds','proto':1,'batch':2,'listeners':"
		    NO_ROWS "}" },
		{ "ready", READY },
		{ "released", RELEASED },
		{ "hammer", "{'type':'hammer','proto':1}" },
		{ "status", "{'proto':1,'type':'status'}" },
		{ "report", REPORT },
		{ "stop", "{'type':'stop','proto':1,'unknown':[1,2]}" },
		{ "stopping", STOPPING },
		{ "error", ERROR },
	};
	char	 buf[2048], err[256];
	json_t	*o;
	size_t	 i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		sq(ok[i].json, buf, sizeof(buf));
		err[0] = '\0';
		o = msg_parse(buf, strlen(buf), err, sizeof(err));
		CHECK_STR(err, "");
		CHECK_STR(o != NULL ? msg_type(o) : NULL, ok[i].type);
		json_decref(o);
	}
}

static void
test_envelope(void)
{
	static const struct {
		const char	*json, *err;
	} bad[] = {
		{ "[1,2]", "message is not a JSON object" },
		{ "{'proto':1}", "message has no 'type' string" },
		{ "{'type':7,'proto':1}", "message has no 'type' string" },
		{ "{'type':null,'proto':1}", "message has no 'type' string" },
		{ "{'type':'hello'}", "hello: missing integer field 'proto'" },
		{ "{'type':'hello','proto':'1'}",
		    "hello: missing integer field 'proto'" },
		{ "{'type':'hello','proto':1.0}",
		    "hello: missing integer field 'proto'" },
		{ "{'type':'hello','proto':2}",
		    "protocol version 2 is not supported (this side speaks 1)" },
		{ "{'type':'hello','proto':0}",
		    "protocol version 0 is not supported (this side speaks 1)" },
		{ "{'type':'bogus','proto':1}", "unknown message type 'bogus'" },
		{ "{'type':'','proto':1}", "unknown message type ''" },
		{ "{'type':'Hello','proto':1}", "unknown message type 'Hello'" },
		/* Control bytes never reach a log line as they are. */
		{ "{'type':'a\\nb','proto':1}", "unknown message type 'a?b'" },
		{ "{'type':'x\\r\\nready: serving','proto':1}",
		    "unknown message type 'x??ready: serving'" },
		{ "{'type':'hello','proto':1,'pid':1,'max_fds':0,'tag':7}",
		    "hello: field 'tag' must be a string of at most 256 bytes" },
	};
	char	buf[256], want[256];
	size_t	i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sq(bad[i].json, buf, sizeof(buf));
		CHECK_STR(parse_err(buf, strlen(buf)),
		    sq(bad[i].err, want, sizeof(want)));
	}
}

/* jansson's text may cut a UTF-8 character: only ASCII comes out. */
static void
test_error_text_ascii(void)
{
	const char	*in = "{\"type\":\"status\",\"proto\":1,\"x\":\"\\\xc3\xa9\"}";
	const char	*err = parse_err(in, strlen(in));
	json_t		*reply;
	const char	*p;

	CHECK(err != NULL && strncmp(err, "invalid JSON at byte ", 21) == 0);
	for (p = err; p != NULL && *p != '\0'; p++)
		CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
	reply = msg_error(MSG_E_MALFORMED, "%s", err);
	CHECK(reply != NULL);
	json_decref(reply);
}

/* Positions are jansson's: bytes read when the error was found. */
static void
test_invalid_json(void)
{
	static const struct {
		const char	*text, *err;
	} bad[] = {
		{ "", "invalid JSON at byte 0: '[' or '{' expected near end "
		    "of file" },
		{ "1", "invalid JSON at byte 1: '[' or '{' expected near '1'" },
		{ "{\"type\":", "invalid JSON at byte 8: unexpected token near "
		    "end of file" },
		{ "{\"type\": \"hello\",}", "invalid JSON at byte 18: string "
		    "or '}' expected near '}'" },
		{ "{\"type\":\"stop\",\"proto\":1} x", "invalid JSON at byte "
		    "27: end of file expected near 'x'" },
		{ "{\"type\":\"status\",\"proto\":1,\"proto\":1}",
		    "invalid JSON at byte 34: duplicate object key near "
		    "'\"proto\"'" },
		{ "{\"type\":\"status\",\"proto\":1,\"type\":\"stop\"}",
		    "invalid JSON at byte 33: duplicate object key near "
		    "'\"type\"'" },
	};
	size_t	i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_STR(parse_err(bad[i].text, strlen(bad[i].text)),
		    bad[i].err);
	/* The length given is the message: a NUL inside it is not its end. */
	CHECK_STR(parse_err("{\"type\":\"stop\",\"proto\":1}\0junk", 30),
	    "invalid JSON at byte 26: end of file expected near end of "
	    "file");
}

/*
 * Each field of each type, removed and then given a wrong value. A NULL
 * missing text means the field is optional.
 */
static const struct field_case {
	const char	*msg, *key, *wrong, *missing_err, *wrong_err;
} fields[] = {
	{ HELLO, "pid", "0", "hello: missing field 'pid'",
	    "hello: field 'pid' must be an integer from 1 to 2147483647" },
	{ HELLO, "pid", "2147483648", "hello: missing field 'pid'",
	    "hello: field 'pid' must be an integer from 1 to 2147483647" },
	{ HELLO, "pid", "'42'", "hello: missing field 'pid'",
	    "hello: field 'pid' must be an integer from 1 to 2147483647" },
	{ HELLO, "tag", "5", NULL,
	    "hello: field 'tag' must be a string of at most 256 bytes" },
	{ HELLO, "max_fds", "-1", "hello: missing field 'max_fds'",
	    "hello: field 'max_fds' must be an integer from 0 to 2147483647" },
	{ HELLO, "max_fds", "1.5", "hello: missing field 'max_fds'",
	    "hello: field 'max_fds' must be an integer from 0 to 2147483647" },
	{ OFFER, "pid", "null", "offer: missing field 'pid'",
	    "offer: field 'pid' must be an integer from 1 to 2147483647" },
	{ OFFER, "generation", "0", "offer: missing field 'generation'",
	    "offer: field 'generation' must be an integer from 1 to "
	    "2147483647" },
	{ OFFER, "tag", "['v1']", "offer: missing field 'tag'",
	    "offer: field 'tag' must be a string of at most 256 bytes" },
	{ OFFER, "count", "-1", "offer: missing field 'count'",
	    "offer: field 'count' must be an integer from 0 to 2147483647" },
	{ OFFER, "batches", "true", "offer: missing field 'batches'",
	    "offer: field 'batches' must be an integer from 0 to "
	    "2147483647" },
	{ OFFER, "state", "[]",
	    "offer: field 'state' must be an object or null",
	    "offer: field 'state' must be an object or null" },
	{ FDS, "batch", "-1", "fds: missing field 'batch'",
	    "fds: field 'batch' must be an integer from 0 to 2147483647" },
	{ FDS, "listeners", "[]",
	    "fds: field 'listeners' must be an object of columns",
	    "fds: field 'listeners' must be an object of columns" },
	{ READY, "pid", "-5", "ready: missing field 'pid'",
	    "ready: field 'pid' must be an integer from 1 to 2147483647" },
	{ READY, "adopted", "'http'", "ready: missing field 'adopted'",
	    "ready: field 'adopted' must be an array of names" },
	{ READY, "added", "['ok','bad name']", "ready: missing field 'added'",
	    "ready: added[1] is not a valid listener name" },
	{ READY, "retired", "[3]", "ready: missing field 'retired'",
	    "ready: retired[0] is not a valid listener name" },
	{ READY, "retired", "['']", "ready: missing field 'retired'",
	    "ready: retired[0] is not a valid listener name" },
	{ RELEASED, "pid", "0", "released: missing field 'pid'",
	    "released: field 'pid' must be an integer from 1 to 2147483647" },
	{ RELEASED, "connections", "-1", "released: missing field "
	    "'connections'", "released: field 'connections' must be an "
	    "integer from 0 to 2147483647" },
	{ RELEASED, "deadline_ms", "'soon'", "released: missing field "
	    "'deadline_ms'", "released: field 'deadline_ms' must be an "
	    "integer from 0 to 2147483647" },
	{ REPORT, "pid", "0", "report: missing field 'pid'",
	    "report: field 'pid' must be an integer from 1 to 2147483647" },
	{ REPORT, "generation", "0", "report: missing field 'generation'",
	    "report: field 'generation' must be an integer from 1 to "
	    "2147483647" },
	{ REPORT, "tag", "null", "report: missing field 'tag'",
	    "report: field 'tag' must be a string of at most 256 bytes" },
	{ REPORT, "state", "'sleeping'", "report: missing field 'state'",
	    "report: field 'state' has unknown value 'sleeping'" },
	{ REPORT, "state", "1", "report: missing field 'state'",
	    "report: field 'state' must be a string of at most 64 bytes" },
	{ REPORT, "connections", "-1", "report: missing field "
	    "'connections'", "report: field 'connections' must be an "
	    "integer from 0 to 2147483647" },
	{ REPORT, "listeners", "null",
	    "report: field 'listeners' must be an array",
	    "report: field 'listeners' must be an array" },
	{ STOPPING, "pid", "0", "stopping: missing field 'pid'",
	    "stopping: field 'pid' must be an integer from 1 to 2147483647" },
	{ STOPPING, "connections", "false", "stopping: missing field "
	    "'connections'", "stopping: field 'connections' must be an "
	    "integer from 0 to 2147483647" },
	{ STOPPING, "deadline_ms", "-1", "stopping: missing field "
	    "'deadline_ms'", "stopping: field 'deadline_ms' must be an "
	    "integer from 0 to 2147483647" },
	{ ERROR, "code", "404", "error: missing field 'code'",
	    "error: field 'code' must be a string of at most 64 bytes" },
	{ ERROR, "message", "{}", "error: missing field 'message'",
	    "error: field 'message' must be a string of at most 1024 bytes" },
};

static void
test_fields(void)
{
	const struct field_case	*c;
	json_t			*o;
	char			 want[512];
	size_t			 i;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		c = &fields[i];
		o = load(c->msg);
		CHECK(o != NULL && json_object_del(o, c->key) == 0);
		CHECK_STR(parse_obj_err(o), c->missing_err == NULL ? "" :
		    sq(c->missing_err, want, sizeof(want)));
		o = load(c->msg);
		CHECK(o != NULL && json_object_set_new(o, c->key,
		    load(c->wrong)) == 0);
		CHECK_STR(parse_obj_err(o), sq(c->wrong_err, want,
		    sizeof(want)));
	}
}

/* Strings at their limit pass; one byte more fails. */
static void
test_string_limits(void)
{
	char	 s[MSG_TEXT_MAX + 2];
	json_t	*o;

	memset(s, 't', sizeof(s));
	s[MSG_NAME_MAX * 4] = '\0';
	o = load(HELLO);
	json_object_set_new(o, "tag", json_string(s));
	CHECK_STR(parse_obj_err(o), "");
	s[MSG_NAME_MAX * 4] = 't';
	s[MSG_NAME_MAX * 4 + 1] = '\0';
	o = load(HELLO);
	json_object_set_new(o, "tag", json_string(s));
	CHECK_STR(parse_obj_err(o),
	    "hello: field \"tag\" must be a string of at most 256 bytes");

	memset(s, 'm', sizeof(s));
	s[MSG_TEXT_MAX] = '\0';
	o = load(ERROR);
	json_object_set_new(o, "message", json_string(s));
	CHECK_STR(parse_obj_err(o), "");
	s[MSG_TEXT_MAX] = 'm';
	s[MSG_TEXT_MAX + 1] = '\0';
	o = load(ERROR);
	json_object_set_new(o, "message", json_string(s));
	CHECK_STR(parse_obj_err(o), "error: field \"message\" must be a "
	    "string of at most 1024 bytes");
}

/* One listener entry, changed, inside "report". */
static const char *
entry_err(const char *key, json_t *value)
{
	json_t	*o, *e;

	o = load(REPORT);
	e = json_array_get(json_object_get(o, "listeners"), 0);
	if (value == NULL)
		json_object_del(e, key);
	else
		json_object_set_new(e, key, value);
	return parse_obj_err(o);
}

static void
test_entries(void)
{
	static const struct {
		const char	*key, *value, *err;
	} bad[] = {
		{ "name", "'a b'", "listener: name 'a b' is not 1 to 64 of "
		    "A-Z a-z 0-9 _ . : @ -" },
		{ "name", "'a/b'", "listener: name 'a/b' is not 1 to 64 of "
		    "A-Z a-z 0-9 _ . : @ -" },
		{ "name", "''", "listener: name '' is not 1 to 64 of "
		    "A-Z a-z 0-9 _ . : @ -" },
		{ "name", "'" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaa" "'", "listener: field 'name' must be a "
		    "string of at most 64 bytes" },
		{ "name", "1", "listener: field 'name' must be a string of "
		    "at most 64 bytes" },
		{ "name", NULL, "listener: missing field 'name'" },
		{ "kind", "'sctp'", "listener: field 'kind' has unknown value "
		    "'sctp'" },
		{ "kind", NULL, "listener: missing field 'kind'" },
		{ "family", "'inet4'", "listener: field 'family' has unknown "
		    "value 'inet4'" },
		{ "family", NULL, "listener: missing field 'family'" },
		{ "socktype", "'raw'", "listener: field 'socktype' has unknown "
		    "value 'raw'" },
		{ "socktype", "2", "listener: field 'socktype' must be a "
		    "string of at most 64 bytes" },
		{ "address", "8080", "listener: field 'address' must be a "
		    "string of at most 256 bytes" },
		{ "address", NULL, "listener: missing field 'address'" },
		{ "listening", "'yes'", "listener: field 'listening' must be "
		    "true or false" },
		{ "listening", "1", "listener: field 'listening' must be "
		    "true or false" },
		{ "listening", NULL, "listener: missing field 'listening'" },
		{ "spec", "[]", "listener: field 'spec' must be a string of "
		    "at most 272 bytes" },
	};
	json_t	*e;
	char	want[512], sub[256];
	size_t	i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(want, sizeof(want), "report: listeners[0]: %s",
		    sq(bad[i].err, sub, sizeof(sub)));
		CHECK_STR(entry_err(bad[i].key, bad[i].value ?
		    load(bad[i].value) : NULL), want);
	}
	/* "spec" is optional; every value of the enums is known. */
	CHECK_STR(entry_err("spec", NULL), "");
	CHECK_STR(entry_err("kind", json_string("fd")), "");
	CHECK_STR(entry_err("family", json_string("other")), "");
	CHECK_STR(entry_err("socktype", json_string("seqpacket")), "");
	CHECK_STR(entry_err("name", json_string("@control")), "");

	/* msg_entry_check on its own. */
	e = load(ENTRY);
	CHECK_INT(msg_entry_check(e, sub, sizeof(sub)), 0);
	json_decref(e);
	CHECK_INT(msg_entry_check(json_null(), sub, sizeof(sub)), -1);
	CHECK_STR(sub, "listener entry is not an object");
}

/*
 * An "fds" message's first row, changed in column key (value NULL: the
 * column removed; extra: a second value appended to that column only).
 */
static const char *
cell_err(const char *key, json_t *value, int extra)
{
	json_t	*o, *col;

	o = load(FDS);
	col = json_object_get(json_object_get(o, "listeners"), key);
	if (value == NULL)
		json_object_del(json_object_get(o, "listeners"), key);
	else if (extra)
		json_array_append_new(col, value);
	else
		json_array_set_new(col, 0, value);
	return parse_obj_err(o);
}

/* An "fds" message with column key replaced by value. */
static const char *
col_err(const char *key, json_t *value)
{
	json_t	*o;

	o = load(FDS);
	json_object_set_new(json_object_get(o, "listeners"), key, value);
	return parse_obj_err(o);
}

static void
test_columns(void)
{
	static const struct {
		const char	*key, *value, *err;
	} bad[] = {
		{ "name", "'a b'", "name[0] is not 1 to 64 of A-Z a-z 0-9 _ . "
		    ": @ -" },
		{ "name", "''", "name[0] is not 1 to 64 of A-Z a-z 0-9 _ . : "
		    "@ -" },
		{ "name", "'" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaa" "'", "name[0] is not 1 to 64 of A-Z a-z "
		    "0-9 _ . : @ -" },
		{ "name", "null", "name[0] is not 1 to 64 of A-Z a-z 0-9 _ . "
		    ": @ -" },
		{ "kind", "'sctp'", "kind[0] must be one of tcp udp unix fd" },
		{ "kind", "1", "kind[0] must be one of tcp udp unix fd" },
		{ "family", "'inet4'", "family[0] must be one of inet inet6 "
		    "unix other" },
		{ "socktype", "'raw'", "socktype[0] must be one of stream "
		    "dgram seqpacket other" },
		{ "address", "8080", "address[0] must be a string of at most "
		    "256 bytes" },
		{ "address", "null", "address[0] must be a string of at most "
		    "256 bytes" },
		{ "listening", "'yes'", "listening[0] must be true or false" },
		{ "listening", "null", "listening[0] must be true or false" },
		{ "spec", "[]", "spec[0] must be a string of at most 272 bytes "
		    "or null" },
	};
	static const char *const keys[] = { "name", "kind", "family",
	    "socktype", "address", "listening", "spec" };
	char	want[512], sub[256];
	size_t	i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(want, sizeof(want), "fds: listeners: %s",
		    sq(bad[i].err, sub, sizeof(sub)));
		CHECK_STR(cell_err(bad[i].key, load(bad[i].value), 0), want);
	}
	/* Every column is required and has one value per fd. */
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(want, sizeof(want), "fds: listeners: column \"%s\" "
		    "must be an array of at most 252 values%s", keys[i],
		    i > 0 ? ", or one value" : "");
		CHECK_STR(cell_err(keys[i], NULL, 0), want);
		if (i == 0)
			continue;
		snprintf(want, sizeof(want), "fds: listeners: column \"%s\" "
		    "has 2 values, column \"name\" 1", keys[i]);
		CHECK_STR(cell_err(keys[i], json_null(), 1), want);
	}
	/* A column but "name" may be one value for every row. */
	CHECK_STR(col_err("kind", load("'udp'")), "");
	CHECK_STR(col_err("spec", json_null()), "");
	CHECK_STR(col_err("listening", json_false()), "");
	CHECK_STR(col_err("kind", load("'sctp'")), "fds: listeners: kind must "
	    "be one of tcp udp unix fd");
	CHECK_STR(col_err("address", load("[[]]")), "fds: listeners: "
	    "address[0] must be a string of at most 256 bytes");
	CHECK_STR(col_err("address", load("{}")), "fds: listeners: address "
	    "must be a string of at most 256 bytes");
	CHECK_STR(col_err("listening", load("'yes'")), "fds: listeners: "
	    "listening must be true or false");
	CHECK_STR(col_err("name", load("'http'")), "fds: listeners: column "
	    "\"name\" must be an array of at most 252 values");

	/* A null spec is no spec; every value of the enums is known. */
	CHECK_STR(cell_err("spec", json_null(), 0), "");
	CHECK_STR(cell_err("kind", json_string("fd"), 0), "");
	CHECK_STR(cell_err("family", json_string("other"), 0), "");
	CHECK_STR(cell_err("socktype", json_string("seqpacket"), 0), "");
	CHECK_STR(cell_err("name", json_string("@control"), 0), "");
	CHECK_STR(cell_err("listening", json_false(), 0), "");
}

/* The fds message written as text: what msg_parse reads back. */
static void
test_encode_fds(void)
{
	static const char *const rows[] = {
		"a", "unix", "unix", "stream", "/run/q\"b\\s\nt\x01\xc3\xa9",
		"true", NULL,
		"b", "unix", "unix", "stream", "@abstract", "false", NULL,
		"c", "unix", "unix", "stream", "/run/c", "true", NULL,
	};
	static const char *const one[] = {
		"a", "tcp", "inet", "stream", "127.0.0.1:80", "true",
		"tcp://127.0.0.1:80",
	};
	static const char *const bad_utf8[] = { "\xff", "\xc0\xaf",
	    "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82" };
	const char	*cells[WIRE_MAX_FDS * MSG_NCOLUMNS];
	static char	 addr[WIRE_MAX_FDS][260];
	char		 err[256], *buf;
	json_t		*m, *l;
	size_t		 len, i, k;

	buf = msg_encode_fds(3, one, 1, &len);
	CHECK_STR(buf, "{\"type\":\"fds\",\"proto\":1,\"batch\":3,"
	    "\"listeners\":{\"name\":[\"a\"],\"kind\":\"tcp\","
	    "\"family\":\"inet\",\"socktype\":\"stream\",\"address\":"
	    "\"127.0.0.1:80\",\"listening\":true,\"spec\":"
	    "\"tcp://127.0.0.1:80\"}}");
	CHECK_INT(len, buf != NULL ? strlen(buf) : 0);
	free(buf);

	buf = msg_encode_fds(0, rows, 3, &len);
	CHECK(buf != NULL);
	m = buf != NULL ? msg_parse(buf, len, err, sizeof(err)) : NULL;
	CHECK(m != NULL);
	l = json_object_get(m, "listeners");
	CHECK_STR(json_string_value(json_object_get(l, "kind")), "unix");
	CHECK(json_is_null(json_object_get(l, "spec")));
	CHECK_INT(json_array_size(json_object_get(l, "name")), 3);
	CHECK_INT(json_array_size(json_object_get(l, "address")), 3);
	CHECK_STR(json_string_value(json_array_get(json_object_get(l,
	    "address"), 0)), rows[4]);
	CHECK_STR(json_string_value(json_array_get(json_object_get(l,
	    "address"), 1)), "@abstract");
	CHECK(json_is_false(json_array_get(json_object_get(l, "listening"),
	    1)));
	CHECK(json_is_true(json_array_get(json_object_get(l, "listening"),
	    2)));
	/* As long as msg_escaped_len says: the offer is planned by it. */
	CHECK(strstr(buf, "\\u0001") != NULL);
	CHECK_INT(len, strlen("{\"type\":\"fds\",\"proto\":1,\"batch\":0,"
	    "\"listeners\":{\"name\":[\"a\",\"b\",\"c\"],\"kind\":\"unix\","
	    "\"family\":\"unix\",\"socktype\":\"stream\",\"address\":["
	    "\"\",\"@abstract\",\"/run/c\"],\"listening\":[true,false,true],"
	    "\"spec\":null}}") + msg_escaped_len(rows[4]));
	json_decref(m);
	free(buf);

	for (i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
		memcpy(cells, one, sizeof(one));
		cells[MSG_COL_SPEC] = bad_utf8[i];
		errno = 0;
		CHECK(msg_encode_fds(0, cells, 1, &len) == NULL);
		CHECK_INT(errno, EINVAL);
	}
	errno = 0;
	CHECK(msg_encode_fds(0, one, 0, &len) == NULL);
	CHECK_INT(errno, EINVAL);
	/* 252 addresses of 256 bytes do not fit in one message. */
	for (i = 0; i < WIRE_MAX_FDS; i++) {
		memset(addr[i], 'x', 256);
		snprintf(addr[i] + 250, 7, "%06zu", i);
		for (k = 0; k < MSG_NCOLUMNS; k++)
			cells[i * MSG_NCOLUMNS + k] = k == MSG_COL_ADDRESS ?
			    addr[i] : one[k];
	}
	errno = 0;
	CHECK(msg_encode_fds(0, cells, WIRE_MAX_FDS, &len) == NULL);
	CHECK_INT(errno, EMSGSIZE);

	/* Escapes and UTF-8 as jansson writes and reads them. */
	memcpy(cells, one, sizeof(one));
	cells[MSG_COL_SPEC] = "\x1f\x7f/\xf4\x8f\xbf\xbf";
	buf = msg_encode_fds(0, cells, 1, &len);
	CHECK(buf != NULL && strstr(buf, "\"spec\":\"\\u001F\x7f/"
	    "\xf4\x8f\xbf\xbf\"}}") != NULL);
	m = buf != NULL ? msg_parse(buf, len, err, sizeof(err)) : NULL;
	CHECK_STR(json_string_value(json_object_get(json_object_get(m,
	    "listeners"), "spec")), cells[MSG_COL_SPEC]);
	json_decref(m);
	free(buf);
}

/* 252 rows fit in one "fds" message; 253 do not. */
static void
test_row_count(void)
{
	static const char *const keys[] = { "name", "kind", "family",
	    "socktype", "address", "listening", "spec" };
	json_t	*o, *cols, *one;
	size_t	 i, k;

	o = load("{'type':'fds','proto':1,'batch':0,'listeners':" NO_ROWS "}");
	cols = json_object_get(o, "listeners");
	one = load(COLUMNS);
	for (i = 0; i <= WIRE_MAX_FDS; i++) {
		if (i == WIRE_MAX_FDS) {
			json_incref(o);
			CHECK_STR(parse_obj_err(o), "");
		}
		for (k = 0; k < 7; k++)
			json_array_append(json_object_get(cols, keys[k]),
			    json_array_get(json_object_get(one, keys[k]), 0));
	}
	json_decref(one);
	CHECK_STR(parse_obj_err(o), "fds: listeners: column \"name\" must be "
	    "an array of at most 252 values");
}

/* A message of exactly 65536 bytes parses; 65537 is refused unread. */
static void
test_size_limit(void)
{
	static char	buf[WIRE_MAX_MSG + 2];
	const char	*head = "{\"type\":\"status\",\"proto\":1,\"pad\":\"";
	size_t		hlen = strlen(head);

	memset(buf, 'p', sizeof(buf));
	memcpy(buf, head, hlen);
	memcpy(buf + WIRE_MAX_MSG - 2, "\"}", 2);
	CHECK_STR(parse_err(buf, WIRE_MAX_MSG), "");
	memcpy(buf + WIRE_MAX_MSG - 2, "p\"}", 3);
	CHECK_STR(parse_err(buf, WIRE_MAX_MSG + 1),
	    "message of 65537 bytes is over the limit of 65536");
}

static void
test_build(void)
{
	json_t	*o, *back;
	char	*s, err[256], big[WIRE_MAX_MSG + 1];
	size_t	 len = 0;

	o = msg_new("status");
	s = msg_encode(o, &len);
	CHECK_STR(s, "{\"type\":\"status\",\"proto\":1}");
	CHECK_INT(len, 27);
	err[0] = '\0';
	back = s != NULL ? msg_parse(s, len, err, sizeof(err)) : NULL;
	CHECK_STR(err, "");
	CHECK(json_equal(o, back));
	CHECK_STR(msg_type(back), "status");
	json_decref(back);
	free(s);
	json_decref(o);

	o = msg_error(MSG_E_BUSY, "a takeover by pid %d is running", 42);
	s = msg_encode(o, &len);
	CHECK_STR(s, "{\"type\":\"error\",\"proto\":1,\"code\":\"busy\","
	    "\"message\":\"a takeover by pid 42 is running\"}");
	CHECK_INT(len, s != NULL ? strlen(s) : 0);
	back = s != NULL ? msg_parse(s, len, err, sizeof(err)) : NULL;
	CHECK_STR(err, "");
	CHECK(json_equal(o, back));
	CHECK_STR(json_string_value(json_object_get(back, "code")), "busy");
	json_decref(back);
	free(s);
	json_decref(o);

	/* A message text over the limit is cut, and still parses. */
	memset(big, 'x', 2000);
	big[2000] = '\0';
	o = msg_error(MSG_E_INTERNAL, "%s", big);
	CHECK_INT(json_string_length(json_object_get(o, "message")),
	    MSG_TEXT_MAX - 1);
	CHECK_STR(parse_obj_err(o), "");

	/* msg_encode: 65536 bytes fit, 65537 do not. */
	memset(big, 'p', sizeof(big));
	big[WIRE_MAX_MSG - 36] = '\0';
	o = msg_new("status");
	json_object_set_new(o, "pad", json_string(big));
	s = msg_encode(o, &len);
	CHECK(s != NULL);
	CHECK_INT(len, WIRE_MAX_MSG);
	free(s);
	big[WIRE_MAX_MSG - 36] = 'p';
	big[WIRE_MAX_MSG - 35] = '\0';
	json_object_set_new(o, "pad", json_string(big));
	CHECK(msg_encode(o, &len) == NULL);
	json_decref(o);
}

static void
test_names(void)
{
	char	s[MSG_NAME_MAX + 2];

	CHECK_INT(msg_name_valid(""), 0);
	CHECK_INT(msg_name_valid("a"), 1);
	CHECK_INT(msg_name_valid("@control"), 1);
	CHECK_INT(msg_name_valid("http-2_alt.v1:x"), 1);
	CHECK_INT(msg_name_valid("a b"), 0);
	CHECK_INT(msg_name_valid("a/b"), 0);
	CHECK_INT(msg_name_valid("a=b"), 0);
	CHECK_INT(msg_name_valid("caf\xc3\xa9"), 0);
	CHECK_INT(msg_name_valid("a\n"), 0);
	memset(s, 'n', sizeof(s));
	s[MSG_NAME_MAX] = '\0';
	CHECK_INT(msg_name_valid(s), 1);
	s[MSG_NAME_MAX] = 'n';
	s[MSG_NAME_MAX + 1] = '\0';
	CHECK_INT(msg_name_valid(s), 0);
}

/*
 * The sizes message.c measures are what its encoders write: a row with
 * every column an array (distinct values in two rows) adds exactly
 * msg_fds_row_len, the frame is msg_fds_frame_len, an entry is
 * msg_entry_len, a list item msg_list_item_len.
 */
static void
test_sizes(void)
{
	static const char *const rows[][MSG_NCOLUMNS] = {
		{ "http", "tcp", "inet", "stream", "127.0.0.1:80", "true",
		    NULL },
		{ "q\"uote\\d\n\x01", "unix", "unix", "seqpacket",
		    "/run/x y.sock", "false", "unix:/run/x y.sock" },
		{ "caf\xc3\xa9", "udp", "inet6", "dgram", "[::1]:53", "false",
		    "udp://[::1]:53" },
	};
	static const size_t pairs[][2] = { { 0, 1 }, { 1, 0 }, { 0, 2 },
	    { 2, 0 } };
	const char	*cells[2 * MSG_NCOLUMNS];
	size_t		 i, j, k, len, batch;
	char		*buf;
	json_t		*e;

	for (i = 0; i < 3; i++) {
		e = msg_entry(rows[i]);
		CHECK(e != NULL);
		buf = json_dumps(e, JSON_COMPACT);
		CHECK(buf != NULL);
		if (buf != NULL)
			CHECK_INT(msg_entry_len(rows[i]), strlen(buf));
		CHECK((json_object_get(e, "spec") != NULL) ==
		    (rows[i][MSG_COL_SPEC] != NULL));
		free(buf);
		json_decref(e);
		CHECK_INT(msg_list_item_len(rows[i][MSG_COL_NAME]),
		    msg_escaped_len(rows[i][MSG_COL_NAME]) + 3);
	}
	/* Row 0 and another differ in every column: each is an array of
	 * two (rows 1 and 2 share "listening", which would be one value). */
	for (batch = 0; batch < 1000; batch += 999)
		for (k = 0; k < 4; k++) {
			i = pairs[k][0];
			j = pairs[k][1];
			memcpy(cells, rows[i], sizeof(rows[i]));
			memcpy(cells + MSG_NCOLUMNS, rows[j], sizeof(rows[j]));
			buf = msg_encode_fds(batch, cells, 2, &len);
			CHECK(buf != NULL);
			CHECK_INT(len, msg_fds_frame_len(batch) +
			    msg_fds_row_len(rows[i]) +
			    msg_fds_row_len(rows[j]) - MSG_NCOLUMNS);
			free(buf);
		}
}

/* Base64 both ways (RFC 4648 section 10 vectors), and what is refused. */
static void
test_base64(void)
{
	static const char *const vec[][2] = { { "", "" }, { "f", "Zg==" },
	    { "fo", "Zm8=" }, { "foo", "Zm9v" }, { "foob", "Zm9vYg==" },
	    { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" } };
	static const char *const bad[] = { "Zg=", "Z===", "Zg==Zg==", "Zm9*",
	    "=Zm9", "Zm=v", "Zg\n==" };
	unsigned char	 bin[256], out[256];
	char		*s;
	size_t		 i, n;

	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		s = b64_encode(vec[i][0], strlen(vec[i][0]));
		CHECK_STR(s, vec[i][1]);
		free(s);
		CHECK_INT(b64_decode(vec[i][1], out, sizeof(out)),
		    strlen(vec[i][0]));
		CHECK(memcmp(out, vec[i][0], strlen(vec[i][0])) == 0);
		CHECK_INT(b64_decode(vec[i][1], NULL, 6),
		    strlen(vec[i][0]));
	}
	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(i * 7 + 3);
	for (n = 0; n <= sizeof(bin); n++) {
		s = b64_encode(bin, n);
		CHECK(s != NULL && strlen(s) == B64_LEN(n));
		CHECK_INT(b64_decode(s, out, n), n);
		CHECK(memcmp(out, bin, n) == 0);
		/* One byte short of room: refused, nothing written past it. */
		if (n > 0) {
			out[n - 1] = 0xa5;
			CHECK_INT(b64_decode(s, out, n - 1), -1);
		}
		free(s);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(b64_decode(bad[i], out, sizeof(out)), -1);
}

/* Integers as the messages write them, without printf, and the answer
 * that lists ids. */
static void
test_ints(void)
{
	static const struct {
		long long	 v;
		const char	*text;
	} table[] = {
		{ 0, "0" }, { 7, "7" }, { -42, "-42" }, { 1000, "1000" },
		{ 4611686018427387903LL, "4611686018427387903" },
		{ LLONG_MAX, "9223372036854775807" },
		{ LLONG_MIN, "-9223372036854775808" },
	};
	const long long	 taken[] = { 1, 20, 300 }, refused[] = { 4000 };
	struct jtext	 o;
	char		 buf[32], *text;
	size_t		 i, len;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		jtext_use(&o, buf, sizeof(buf) - 1);
		jtext_int(&o, table[i].v);
		buf[o.len] = '\0';
		CHECK_STR(buf, table[i].text);
	}
	/* Past the buffer: the failure sticks. */
	jtext_use(&o, buf, 3);
	jtext_int(&o, 1234);
	CHECK_INT(o.bad, EMSGSIZE);
	CHECK_INT(o.len, 0);

	text = msg_encode_conns_taken(9, taken, 3, refused, 1, &len);
	CHECK_STR(text, "{\"type\":\"conns_taken\",\"proto\":1,\"pid\":9,"
	    "\"taken\":[1,20,300],\"refused\":[4000]}");
	CHECK_INT(len, text != NULL ? strlen(text) : 0);
	free(text);
	text = msg_encode_conns_taken(9, taken, 0, refused, 0, &len);
	CHECK_STR(text, "{\"type\":\"conns_taken\",\"proto\":1,\"pid\":9,"
	    "\"taken\":[],\"refused\":[]}");
	free(text);
	/* Ids in the answer have the bounds of ids in conns. */
	CHECK_STR(parse_obj_err(load("{'type':'conns_taken','proto':1,'pid':9,"
	    "'taken':[4611686018427387903],'refused':[4611686018427387904]}")),
	    "conns_taken: refused[0] is not a connection id (an integer from 1 "
	    "to 4611686018427387903, as in conns)");
	CHECK_STR(parse_obj_err(load("{'type':'conns_taken','proto':1,'pid':9,"
	    "'taken':[0],'refused':[]}")), "conns_taken: taken[0] is not a "
	    "connection id (an integer from 1 to 4611686018427387903, as in "
	    "conns)");
	CHECK_STR(parse_obj_err(load("{'type':'conns_taken','proto':1,'pid':9,"
	    "'taken':[9223372036854775807],'refused':[]}")), "conns_taken: "
	    "taken[0] is not a connection id (an integer from 1 to "
	    "4611686018427387903, as in conns)");
}

/* A "conns" table with two rows, changed in column key (value NULL: the
 * column removed). */
static const char *
conns_err(const char *key, json_t *value)
{
	json_t	*o;

	o = load("{'type':'conns','proto':1,'pid':1,'conns':{'id':[1,2],"
	    "'inode':[7,8],'listener':'http','peer':['127.0.0.1:5',"
	    "'127.0.0.1:6'],'local':'127.0.0.1:80','data':['','eA=='],"
	    "'state':[null,{'n':1}]}}");
	if (value == NULL)
		json_object_del(json_object_get(o, "conns"), key);
	else
		json_object_set_new(json_object_get(o, "conns"), key, value);
	return parse_obj_err(o);
}

/* The connections of "conns" in columns: written once a row, read back,
 * and checked. */
static void
test_conns(void)
{
	/* A column changed to value (NULL: left out), and what is wrong. */
	static const struct {
		const char	*key, *value, *err;
	} table[] = {
		{ "state", NULL, "" },
		{ "inode", NULL, "" },
		{ "peer", "'127.0.0.1:5'", "" },
		{ "id", "1", "column \"id\" must be an array of at most 252 "
		    "values" },
		{ "local", NULL, "column \"local\" must be an array of at most "
		    "252 values, or one value" },
		{ "peer", "['127.0.0.1:5']", "column \"peer\" has 1 values, "
		    "column \"id\" 2" },
		{ "id", "[1,0]", "id[1] must be an integer from 1 to "
		    "4611686018427387903" },
		{ "inode", "[1,'2']", "inode[1] must be a positive integer" },
		{ "data", "'x'", "data is not base64 of at most 16384 bytes" },
		{ "state", "[null,5]", "state[1] must be an object or null" },
		{ "listener", "'a b'", "listener is not 1 to 64 of A-Z a-z 0-9 _ "
		    ". : @ -" },
	};
	struct msg_conn	 c[3];
	const struct msg_conn *row[3] = { &c[0], &c[1], &c[2] };
	char		 err[256], *buf;
	json_t		*m, *t;
	size_t		 len, budget = 256;
	int		 i;

	CHECK_INT(msg_conn_cells(&c[0], 1, 70, "http", "127.0.0.1:5",
	    "127.0.0.1:80", "", 0, NULL), 0);
	CHECK_INT(msg_conn_cells(&c[1], 2, 71, "http", "/run/q\"b",
	    "127.0.0.1:80", "GET", 3, NULL), 0);
	CHECK_INT(msg_conn_cells(&c[2], 3, 72, "http", "127.0.0.1:7",
	    "127.0.0.1:80", "", 0, "{\"n\":2}"), 0);
	for (i = 0; i < 3; i++)
		budget += msg_conn_row_len(&c[i]);
	if ((buf = malloc(WIRE_MAX_MSG + 1)) == NULL) {
		CHECK(!"memory");
		return;
	}
	/* One row: every column but id is its value; no state, none. */
	len = msg_encode_conns(buf, 9, row, 1);
	CHECK_STR(buf, "{\"type\":\"conns\",\"proto\":1,\"pid\":9,"
	    "\"conns\":{\"id\":[1],\"inode\":70,\"listener\":\"http\","
	    "\"peer\":\"127.0.0.1:5\",\"local\":\"127.0.0.1:80\","
	    "\"data\":\"\"}}");
	CHECK_INT(len, strlen(buf));
	len = msg_encode_conns(buf, 9, row, 3);
	CHECK(len > 0 && len <= budget);
	m = msg_parse(buf, len, err, sizeof(err));
	CHECK(m != NULL);
	t = json_object_get(m, "conns");
	CHECK_STR(json_string_value(json_object_get(t, "listener")), "http");
	CHECK_STR(json_string_value(json_array_get(json_object_get(t,
	    "peer"), 1)), "/run/q\"b");
	CHECK_STR(json_string_value(json_array_get(json_object_get(t,
	    "data"), 1)), "R0VU");
	CHECK(json_is_null(json_array_get(json_object_get(t, "state"), 0)));
	CHECK_INT(json_integer_value(json_object_get(json_array_get(
	    json_object_get(t, "state"), 2), "n")), 2);
	CHECK_INT(json_integer_value(json_array_get(json_object_get(t,
	    "inode"), 2)), 72);
	json_decref(m);
	errno = 0;
	CHECK_INT(msg_encode_conns(buf, 9, row, 0), 0);
	CHECK_INT(errno, EINVAL);
	for (i = 0; i < 3; i++)
		free(c[i].block);
	free(buf);
	errno = 0;
	CHECK_INT(msg_conn_cells(&c[0], 1, 1, "http", "\xff", "x", "", 0,
	    NULL), -1);
	CHECK_INT(errno, EINVAL);

	for (i = 0; i < (int)(sizeof(table) / sizeof(table[0])); i++) {
		snprintf(err, sizeof(err), "%s%s", *table[i].err != '\0' ?
		    "conns: conns: " : "", table[i].err);
		CHECK_STR(conns_err(table[i].key, table[i].value != NULL ?
		    load(table[i].value) : NULL), err);
	}
}

int
main(void)
{
	test_valid();
	test_base64();
	test_envelope();
	test_error_text_ascii();
	test_invalid_json();
	test_fields();
	test_string_limits();
	test_entries();
	test_columns();
	test_row_count();
	test_encode_fds();
	test_conns();
	test_ints();
	test_size_limit();
	test_build();
	test_names();
	test_sizes();
	return unit_done("test_message");
}
