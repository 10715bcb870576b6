/*
 * fuzz_message: arbitrary bytes into msg_parse_code, then what the library
 * does next with the result. A rejected message must come with a code and
 * a text that one log line and an "error" reply can carry: no control
 * bytes, valid UTF-8. An accepted one must have a known type, listener
 * entries that pass msg_entry_check, string lengths that msg_escaped_len
 * does not underestimate, and an encoding that parses back to the same
 * object. Any violation aborts.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "wire.h"
#include "fuzz.h"

/* The codes msg_parse_code may answer a bad message with. */
static int
code_known(const char *code)
{
	return code != NULL && (strcmp(code, MSG_E_MALFORMED) == 0 ||
	    strcmp(code, MSG_E_VERSION) == 0 ||
	    strcmp(code, MSG_E_UNKNOWN) == 0);
}

/*
 * What the incumbent does with a rejection: one log line with the text,
 * and an error reply carrying it. So: no control bytes, and valid UTF-8.
 */
static void
check_rejection(const char *code, const char *err, size_t errlen)
{
	json_t		*reply;
	const char	*p;
	char		*enc;
	size_t		 len;

	FUZZ_ASSERT(code_known(code));
	FUZZ_ASSERT(memchr(err, '\0', errlen) != NULL);
	FUZZ_ASSERT(err[0] != '\0');
	for (p = err; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			fprintf(stderr, "control byte 0x%02x at %zu in the "
			    "rejection text: %s\n", (unsigned char)*p,
			    (size_t)(p - err), err);
			abort();
		}
	}
	reply = msg_error(code, "%s", err);
	if (reply == NULL) {
		fprintf(stderr, "msg_error cannot carry this rejection "
		    "text (invalid UTF-8?): %s\n", err);
		abort();
	}
	enc = msg_encode(reply, &len);
	FUZZ_ASSERT(enc != NULL);
	free(enc);
	json_decref(reply);
}

/* Bytes jansson writes for the body of string s under JSON_COMPACT. */
static size_t
dumped_body_len(const json_t *s)
{
	char	*enc;
	size_t	 len;

	enc = json_dumps(s, JSON_COMPACT | JSON_ENCODE_ANY);
	FUZZ_ASSERT(enc != NULL);
	len = strlen(enc);
	free(enc);
	FUZZ_ASSERT(len >= 2);
	return len - 2;
}

/*
 * Every string in v: msg_escaped_len must not underestimate what jansson
 * writes, since batches are cut by it (msg_entry_len, msg_fds_row_len).
 */
static void
check_strings(const json_t *v, int depth)
{
	const char	*key;
	json_t		*e;
	size_t		 i;

	if (depth > 64)
		return;
	if (json_is_string(v)) {
		/* Strings with a NUL are rejected before the length is used. */
		if (strlen(json_string_value(v)) == json_string_length(v))
			FUZZ_ASSERT(msg_escaped_len(json_string_value(v)) >=
			    dumped_body_len(v));
		(void)msg_name_valid(json_string_value(v));
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			check_strings(e, depth + 1);
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, e)
			check_strings(e, depth + 1);
	}
}

/*
 * The listener entries of report were checked, and so were the columns of
 * fds (arrays, or one value for every row): each row of them, made an
 * entry, passes the entry check too.
 */
static void
check_entries(const json_t *msg)
{
	static const char *const keys[] = { "name", "kind", "family",
	    "socktype", "address", "listening", "spec" };
	json_t	*list = json_object_get(msg, "listeners"), *e, *v;
	size_t	 i, k, n;
	char	 err[256];

	if (strcmp(msg_type(msg), "report") == 0) {
		FUZZ_ASSERT(json_is_array(list));
		json_array_foreach(list, i, e)
			FUZZ_ASSERT(msg_entry_check(e, err, sizeof(err)) == 0);
		return;
	}
	if (strcmp(msg_type(msg), "fds") != 0)
		return;
	FUZZ_ASSERT(json_is_object(list));
	FUZZ_ASSERT(json_is_array(json_object_get(list, "name")));
	n = json_array_size(json_object_get(list, "name"));
	FUZZ_ASSERT(n <= WIRE_MAX_FDS);
	for (k = 0; k < 7; k++) {
		v = json_object_get(list, keys[k]);
		FUZZ_ASSERT(v != NULL);
		FUZZ_ASSERT(!json_is_array(v) || json_array_size(v) == n);
	}
	for (i = 0; i < n; i++) {
		FUZZ_ASSERT((e = json_object()) != NULL);
		for (k = 0; k < 7; k++) {
			v = json_object_get(list, keys[k]);
			if (json_is_array(v))
				v = json_array_get(v, i);
			if (!json_is_null(v))
				json_object_set(e, keys[k], v);
		}
		FUZZ_ASSERT(msg_entry_check(e, err, sizeof(err)) == 0);
		json_decref(e);
	}
}

static void
check_round_trip(const json_t *msg)
{
	json_t		*again;
	const char	*code = NULL;
	char		*enc, err[512];
	size_t		 len;

	errno = 0;
	enc = msg_encode(msg, &len);
	if (enc == NULL) {
		/* Reals and escapes can grow past the limit when re-encoded. */
		FUZZ_ASSERT(errno == EMSGSIZE || errno == ENOMEM);
		return;
	}
	FUZZ_ASSERT(len == strlen(enc) && len <= WIRE_MAX_MSG);
	again = msg_parse_code(enc, len, &code, err, sizeof(err));
	if (again == NULL) {
		fprintf(stderr, "re-encoded message rejected: %s\n%s\n", err,
		    enc);
		abort();
	}
	FUZZ_ASSERT(json_equal((json_t *)msg, again));
	FUZZ_ASSERT(strcmp(msg_type(msg), msg_type(again)) == 0);
	json_decref(again);
	free(enc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t		*msg;
	const char	*code = NULL, *type;
	char		 err[512];

	memset(err, 'x', sizeof(err));
	msg = msg_parse_code((const char *)data, size, &code, err,
	    sizeof(err));
	if (msg == NULL) {
		check_rejection(code, err, sizeof(err));
		return 0;
	}
	type = msg_type(msg);
	FUZZ_ASSERT(type != NULL && msg_name_valid(type));
	FUZZ_ASSERT(json_is_object(msg));
	FUZZ_ASSERT(json_integer_value(json_object_get(msg, "proto")) ==
	    MSG_PROTO);
	check_entries(msg);
	check_strings(msg, 0);
	check_round_trip(msg);
	/* msg_parse is the same parser without the code. */
	json_decref(msg);
	msg = msg_parse((const char *)data, size, err, sizeof(err));
	FUZZ_ASSERT(msg != NULL);
	json_decref(msg);
	return 0;
}
