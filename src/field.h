/*
 * field: checks of one field of a message, with an error text that
 * names the message type t and the field key. 0, or -1 with err set.
 */
#ifndef HANDOFF_FIELD_H
#define HANDOFF_FIELD_H

#include <jansson.h>
#include <stddef.h>

/* err gets the text, control bytes as '?' (it ends up in a log line). */
int	field_fail(char *, size_t, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
int	field_opt_int(const json_t *, const char *, const char *, json_int_t,
	    json_int_t, char *, size_t);
int	field_int(const json_t *, const char *, const char *, json_int_t,
	    json_int_t, char *, size_t);
int	field_str_ok(const json_t *, size_t);
int	field_enum_ok(const json_t *, const char *const *);
/* A string of at most max bytes; optional: absence is fine. */
int	field_str(const json_t *, const char *, const char *, size_t, int,
	    char *, size_t);
int	field_bool(const json_t *, const char *, const char *, char *,
	    size_t);
int	field_enum(const json_t *, const char *, const char *,
	    const char *const *, char *, size_t);
/* An array of listener names (msg_name_valid). */
int	field_names(const json_t *, const char *, const char *, char *,
	    size_t);

#endif
