/*
 * field: the checks of one field of a message, for schema.c. Each
 * returns 0, or -1 with err saying which message type t and which field
 * key were wrong, and how. A leaf: it calls no other module.
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "field.h"
#include "message.h"

/*
 * Error texts quote what the peer sent and end up in one log line: a
 * control byte (a newline forging a second line) becomes '?'.
 */
int
field_fail(char *err, size_t len, const char *fmt, ...)
{
	va_list	 ap;
	char	*p;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	for (p = err; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return -1;
}

/* An optional integer: absent is fine, present must be in range. */
int
field_opt_int(const json_t *o, const char *t, const char *key, json_int_t min,
    json_int_t max, char *err, size_t len)
{
	if (json_object_get(o, key) == NULL)
		return 0;
	return field_int(o, t, key, min, max, err, len);
}

int
field_int(const json_t *o, const char *t, const char *key, json_int_t min,
    json_int_t max, char *err, size_t len)
{
	json_t	*v = json_object_get(o, key);

	if (v == NULL)
		return field_fail(err, len, "%s: missing field \"%s\"", t, key);
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max)
		return field_fail(err, len, "%s: field \"%s\" must be an integer "
		    "from %lld to %lld", t, key, (long long)min,
		    (long long)max);
	return 0;
}

/* A string of at most max bytes without NUL. */
int
field_str_ok(const json_t *v, size_t max)
{
	return json_is_string(v) && json_string_length(v) <= max &&
	    strlen(json_string_value(v)) == json_string_length(v);
}

int
field_enum_ok(const json_t *v, const char *const *allowed)
{
	size_t	i;

	for (i = 0; allowed[i] != NULL; i++)
		if (strcmp(json_string_value(v), allowed[i]) == 0)
			return 1;
	return 0;
}

int
field_str(const json_t *o, const char *t, const char *key, size_t max,
    int optional, char *err, size_t len)
{
	json_t	*v = json_object_get(o, key);

	if (v == NULL) {
		if (optional)
			return 0;
		return field_fail(err, len, "%s: missing field \"%s\"", t, key);
	}
	if (!field_str_ok(v, max))
		return field_fail(err, len, "%s: field \"%s\" must be a string of "
		    "at most %zu bytes", t, key, max);
	return 0;
}

int
field_bool(const json_t *o, const char *t, const char *key, char *err,
    size_t len)
{
	json_t	*v = json_object_get(o, key);

	if (v == NULL)
		return field_fail(err, len, "%s: missing field \"%s\"", t, key);
	if (!json_is_boolean(v))
		return field_fail(err, len, "%s: field \"%s\" must be true or false",
		    t, key);
	return 0;
}

int
field_enum(const json_t *o, const char *t, const char *key,
    const char *const *allowed, char *err, size_t len)
{
	json_t	*v = json_object_get(o, key);

	if (field_str(o, t, key, MSG_NAME_MAX, 0, err, len) == -1)
		return -1;
	if (!field_enum_ok(v, allowed))
		return field_fail(err, len, "%s: field \"%s\" has unknown value "
		    "\"%s\"", t, key, json_string_value(v));
	return 0;
}

/* Names: 1 to 64 of [A-Za-z0-9_.:@-], so they are safe in logs and env. */
int
msg_name_valid(const char *s)
{
	size_t		n;
	unsigned char	c;

	for (n = 0; (c = (unsigned char)s[n]) != '\0'; n++)
		if (n == MSG_NAME_MAX || !((c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == ':' || c == '@' || c == '-'))
			return 0;
	return n > 0;
}

int
field_names(const json_t *o, const char *t, const char *key, char *err,
    size_t len)
{
	json_t	*v = json_object_get(o, key), *e;
	size_t	 i;

	if (v == NULL)
		return field_fail(err, len, "%s: missing field \"%s\"", t, key);
	if (!json_is_array(v))
		return field_fail(err, len, "%s: field \"%s\" must be an array of "
		    "names", t, key);
	json_array_foreach(v, i, e) {
		if (!json_is_string(e) || !msg_name_valid(json_string_value(e)))
			return field_fail(err, len, "%s: %s[%zu] is not a valid "
			    "listener name", t, key, i);
	}
	return 0;
}
