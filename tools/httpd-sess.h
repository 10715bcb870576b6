/*
 * httpd-sess: the sessions a generation of handoff-httpd owns. A
 * datagram that begins "sess=ID" belongs to the generation that first
 * saw ID; the others hand it back along the line of generations
 * (handoff_flow_send) until its owner answers it.
 */
#ifndef HANDOFF_HTTPD_SESS_H
#define HANDOFF_HTTPD_SESS_H

#include <stddef.h>

#define SESS_ID_MAX	64	/* bytes of an id */
#define SESS_MAX	(1 << 20) /* ids one generation keeps at most */

struct sess_set;

struct sess_set	*sess_new(void);
void		 sess_free(struct sess_set *);
/* The id a datagram names ("sess=ID", then a space or its end), copied
 * into id[SESS_ID_MAX + 1]; 0 if it names none. */
int		 sess_id(const void *, size_t, char *);
int		 sess_owned(const struct sess_set *, const char *);
/* Claims id: 0, or -1 when the set is full or out of memory (the
 * datagram is answered all the same, by whoever has it). */
int		 sess_claim(struct sess_set *, const char *);
size_t		 sess_count(const struct sess_set *);

#endif
